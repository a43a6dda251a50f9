#!/usr/bin/env python3
"""Drives `rocmforge serve` with the official `openai` package (tests/serve.rs starts the server).

    python3 tests/serve_openai.py main URL     # completions, streaming, 8 clients, a disconnect, bad requests
    python3 tests/serve_openai.py busy URL     # a server started with --queue 1 answers 503 past its queue

Only loopback URLs; every loop is bounded; each request has a timeout. Prints what it measured and
exits non-zero on the first failed check.
"""
import http.client
import json
import sys
import threading
import time
import urllib.parse

import openai

TIMEOUT = 60


def check(cond, what):
    if not cond:
        raise SystemExit(f"FAILED: {what}")
    print(f"ok: {what}")


def raw(url, method, path, body=None, headers=None):
    """One HTTP request without the openai package: (status, parsed JSON or text)."""
    u = urllib.parse.urlparse(url)
    assert u.hostname in ("127.0.0.1", "localhost", "::1"), "loopback only"
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=TIMEOUT)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        data = r.read()
    finally:
        conn.close()
    try:
        return r.status, json.loads(data)
    except ValueError:
        return r.status, data.decode(errors="replace")


def healthy(url):
    status, body = raw(url, "GET", "/health")
    return status == 200 and body.get("status") == "ok", body


def expect_error(url, label, status, fn):
    """`fn` (an openai call, or a raw request returning (status, body)) must fail with `status`
    and an OpenAI-style JSON error body; the server must go on serving."""
    try:
        got = fn()
    except openai.APIStatusError as e:
        got = (e.status_code, e.response.json())
    if not isinstance(got, tuple):
        raise SystemExit(f"FAILED: {label} was accepted")
    code, body = got
    message = body.get("error", {}).get("message") if isinstance(body, dict) else None
    check(code == status and message, f"{label}: {code} {str(message)[:100]!r}")
    ok, _ = healthy(url)
    check(ok, f"still serving after {label}")


def main(url):
    client = openai.OpenAI(base_url=url + "/v1", api_key="unused", timeout=TIMEOUT, max_retries=0)
    models = client.models.list()
    ids = [m.id for m in models.data]
    check(len(ids) == 1, f"/v1/models lists one model: {ids}")
    model = ids[0]

    t = time.time()
    r = client.chat.completions.create(model=model, temperature=0, max_tokens=24,
                                       messages=[{"role": "user", "content": "What is the capital of France?"}])
    text = r.choices[0].message.content
    check(r.object == "chat.completion" and text and r.choices[0].finish_reason in ("stop", "length"),
          f"chat completion in {time.time() - t:.2f} s: {text!r}")
    check(r.usage.prompt_tokens > 10 and 0 < r.usage.completion_tokens <= 24
          and r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens, f"usage {r.usage}")
    check("Paris" in text, "greedy SmolLM2 knows the capital of France")

    pieces, reasons, usage = [], [], None
    stream = client.chat.completions.create(model=model, temperature=0, max_tokens=24, stream=True,
                                            stream_options={"include_usage": True},
                                            messages=[{"role": "user", "content": "What is the capital of France?"}])
    for chunk in stream:
        if chunk.usage:
            usage = chunk.usage
        for c in chunk.choices:
            pieces.append(c.delta.content or "")
            if c.finish_reason:
                reasons.append(c.finish_reason)
    streamed = "".join(pieces)
    check(streamed == text, f"the streamed answer ({len(pieces)} chunks) equals the non-streamed one")
    check(reasons in (["stop"], ["length"]) and usage and usage.completion_tokens == r.usage.completion_tokens,
          f"stream ends with {reasons} and usage {usage}")

    c = client.completions.create(model=model, prompt="The capital of France is", max_tokens=8, temperature=0)
    check(c.object == "text_completion" and c.choices[0].text and c.usage.completion_tokens <= 8,
          f"completion: {c.choices[0].text!r}")
    c = client.completions.create(model=model, prompt="1, 2, 3, 4,", max_tokens=16, temperature=0, stop=["7"])
    check("7" not in c.choices[0].text and c.choices[0].finish_reason == "stop",
          f"a stop string ends it, unreturned: {c.choices[0].text!r}")

    # Eight clients at once: every one answered.
    answers, errors = {}, []

    def ask(i):
        try:
            r = client.chat.completions.create(model=model, max_tokens=8, seed=i,
                                               messages=[{"role": "user", "content": f"Name a color. ({i})"}])
            answers[i] = r.choices[0].message.content
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(f"{i}: {e}")

    t = time.time()
    threads = [threading.Thread(target=ask, args=(i,)) for i in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(TIMEOUT)
    check(not errors and len(answers) == 8, f"8 concurrent clients all answered in {time.time() - t:.2f} s {errors}")

    # A client that leaves mid-stream: the others are not disturbed and its generation stops.
    before = raw(url, "GET", "/health")[1]["requests"]
    others, other_errors = {}, []

    def other(i):
        try:
            s = client.chat.completions.create(model=model, max_tokens=12, seed=i, stream=True,
                                               messages=[{"role": "user", "content": "Tell me about the sea."}])
            others[i] = "".join((ch.choices[0].delta.content or "") for ch in s if ch.choices)
        except Exception as e:  # noqa: BLE001
            other_errors.append(f"{i}: {e}")

    leaver = client.chat.completions.create(model=model, max_tokens=400, stream=True, temperature=1.0,
                                            messages=[{"role": "user", "content": "Write a very long story."}])
    got = 0
    for chunk in leaver:
        got += 1
        if got == 3:
            break
    threads = [threading.Thread(target=other, args=(i,)) for i in range(3)]
    for th in threads:
        th.start()
    leaver.close()  # the connection goes away mid-stream
    for th in threads:
        th.join(TIMEOUT)
    check(not other_errors and len(others) == 3 and all(others.values()),
          f"3 clients beside the one that left were answered: {other_errors}")
    after = before
    for _ in range(100):  # bounded: up to 10 s for the cancel to be counted
        after = raw(url, "GET", "/health")[1]["requests"]
        if after["cancelled"] > before["cancelled"]:
            break
        time.sleep(0.1)
    check(after["cancelled"] == before["cancelled"] + 1, f"the left client's generation was cancelled: {after}")

    # Bad requests: a 4xx JSON error each, and the server keeps serving.
    json_header = {"Content-Type": "application/json"}
    expect_error(url, "malformed JSON", 400, lambda: raw(
        url, "POST", "/v1/chat/completions", body=b'{"messages": [', headers=json_header))
    expect_error(url, "an unknown model", 404, lambda: client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "hi"}]))
    expect_error(url, "negative max_tokens", 400, lambda: client.chat.completions.create(
        model=model, max_tokens=-5, messages=[{"role": "user", "content": "hi"}]))
    expect_error(url, "a negative temperature", 400, lambda: client.chat.completions.create(
        model=model, temperature=-1, messages=[{"role": "user", "content": "hi"}]))
    expect_error(url, "a 10 MB body", 413, lambda: raw(
        url, "POST", "/v1/completions", body=b'{"prompt": "' + b"a" * (10 * 1024 * 1024) + b'"}', headers=json_header))
    long_prompt = "hello " * 2000
    expect_error(url, "a prompt over the context", 400, lambda: client.completions.create(
        model=model, prompt=long_prompt, max_tokens=4))
    r = client.chat.completions.create(model=model, temperature=0, max_tokens=4,
                                       messages=[{"role": "user", "content": "Hi"}])
    check(r.choices[0].message.content is not None, "a request after all the bad ones is answered")
    print("health:", raw(url, "GET", "/health")[1])


def busy(url):
    """Queue of one: of 6 requests at once, some get 503 with a JSON error; all others are answered."""
    client = openai.OpenAI(base_url=url + "/v1", api_key="unused", timeout=TIMEOUT, max_retries=0)
    codes, lock = [], threading.Lock()

    def ask(i):
        try:
            client.completions.create(model=client.models.list().data[0].id, prompt="Once upon a time",
                                      max_tokens=24, seed=i)
            code = 200
        except openai.APIStatusError as e:
            code = e.status_code
            assert e.response.json()["error"]["code"] == "server_busy", e.response.text
        with lock:
            codes.append(code)

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(6)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(TIMEOUT)
    check(len(codes) == 6 and set(codes) <= {200, 503} and 503 in codes and codes.count(200) >= 2,
          f"queue of one: {sorted(codes)}")
    ok, body = healthy(url)
    check(ok and body["requests"]["refused_busy"] == codes.count(503), f"health counts the refusals: {body}")


if __name__ == "__main__":
    {"main": main, "busy": busy}[sys.argv[1]](sys.argv[2].rstrip("/"))
    print("all checks passed")
