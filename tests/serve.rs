//! `rocmforge serve` on the real SmolLM2, on 127.0.0.1 at a port the system picks, driven by curl
//! and by the official `openai` Python package (tests/serve_openai.py): chat completions streamed
//! and not, a completion, /v1/models, 8 concurrent clients, a client that leaves mid-stream, bad
//! requests that each get a 4xx JSON error while the server goes on; a second server with a queue
//! of one answers 503 past it. The `serve_client` example streams from it too.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A running server, stopped when dropped.
struct Server {
    child: Child,
    url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(model: &Path, extra: &[&str]) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_rocmforge"))
        .args(["serve", "--host", "127.0.0.1", "--port", "0", "--device", "cpu"])
        .args(extra)
        .arg(model)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("rocmforge serve should start");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(|l| l.ok()) {
            eprintln!("[serve] {line}");
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut seen = Vec::new();
    while let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        if let Some(at) = line.find("on http://") {
            let url = line[at + 3..].split_whitespace().next().unwrap().to_string();
            assert!(url.starts_with("http://127.0.0.1:"), "loopback only: {url}");
            return Server { child, url };
        }
        seen.push(line);
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("the server did not report its address within 120 s: {seen:?}");
}

fn curl(args: &[&str]) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "60", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .expect("curl should run");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

/// `python3` with the `openai` package, or `None` (a failure when ROCMFORGE_REQUIRE_MODELS=1).
fn python_with_openai() -> Option<&'static str> {
    let ok = Command::new("python3").args(["-c", "import openai"]).status().is_ok_and(|s| s.success());
    if ok {
        return Some("python3");
    }
    if std::env::var("ROCMFORGE_REQUIRE_MODELS").as_deref() == Ok("1") {
        panic!("python3 cannot import openai: `python3 -m pip install openai` (scripts/test.sh does)");
    }
    eprintln!("skipping: python3 cannot import openai");
    None
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/serve_openai.py")
}

#[test]
fn serve_answers_curl_and_the_openai_client_and_survives_bad_requests() {
    let Some(model) = common::model("SmolLM2-135M-Instruct.Q4_1.gguf") else { return };
    let Some(python) = python_with_openai() else { return };
    let started = Instant::now();
    let server = start(&model, &["--ctx", "512"]);
    let url = &server.url;
    println!("server up in {:.2} s at {url}", started.elapsed().as_secs_f64());

    let (code, body) = curl(&[&format!("{url}/v1/models")]);
    assert_eq!(code, 200, "{body}");
    let models: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(models["data"][0]["id"], "SmolLM2-135M-Instruct.Q4_1", "{body}");

    let chat = r#"{"messages": [{"role": "user", "content": "What is the capital of France?"}], "max_tokens": 16, "temperature": 0}"#;
    let (code, body) =
        curl(&["-H", "Content-Type: application/json", "-d", chat, &format!("{url}/v1/chat/completions")]);
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let answer = v["choices"][0]["message"]["content"].as_str().unwrap().to_string();
    assert!(answer.contains("Paris"), "{body}");
    assert_eq!(v["object"], "chat.completion");
    assert!(v["usage"]["prompt_tokens"].as_u64().unwrap() > 10, "{body}");

    let streamed = chat.replace("\"temperature\": 0", "\"temperature\": 0, \"stream\": true");
    let (code, body) =
        curl(&["-N", "-H", "Content-Type: application/json", "-d", &streamed, &format!("{url}/v1/chat/completions")]);
    assert_eq!(code, 200, "{body}");
    let events: Vec<&str> = body.lines().filter_map(|l| l.strip_prefix("data: ")).collect();
    assert_eq!(events.last(), Some(&"[DONE]"), "{body}");
    let text: String = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str::<serde_json::Value>(e).unwrap())
        .filter_map(|v| v["choices"][0]["delta"]["content"].as_str().map(str::to_string))
        .collect();
    assert_eq!(text, answer, "streamed and whole answers agree");

    let completion = r#"{"prompt": "The capital of France is", "max_tokens": 6, "temperature": 0}"#;
    let (code, body) = curl(&["-d", completion, &format!("{url}/v1/completions")]);
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("\"text_completion\""), "{body}");

    let (code, body) = curl(&["-d", "{not json", &format!("{url}/v1/completions")]);
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("\"invalid_request_error\""), "{body}");

    // The streaming HTTP client example (std only) against the same server.
    if let Some(example) = common::example_binary("serve_client") {
        let out = Command::new(example)
            .args([url.as_str(), "Name three colors."])
            .output()
            .expect("the serve_client example should run");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
        assert!(stdout.trim().len() > 3, "it streamed an answer: {stdout:?}");
    }

    let out = Command::new(python).arg(script()).args(["main", url]).output().unwrap();
    println!("{}", String::from_utf8_lossy(&out.stdout));
    assert!(out.status.success(), "tests/serve_openai.py main failed:\n{}", String::from_utf8_lossy(&out.stderr));
    drop(server);

    let busy = start(&model, &["--ctx", "256", "--queue", "1"]);
    let out = Command::new(python).arg(script()).args(["busy", &busy.url]).output().unwrap();
    println!("{}", String::from_utf8_lossy(&out.stdout));
    assert!(out.status.success(), "tests/serve_openai.py busy failed:\n{}", String::from_utf8_lossy(&out.stderr));
    println!("whole server test: {:.1} s", started.elapsed().as_secs_f64());
}

#[test]
fn serve_refuses_a_bad_address_and_a_missing_model_cleanly() {
    let out = Command::new(env!("CARGO_BIN_EXE_rocmforge"))
        .args(["serve", "--host", "not-an-ip", "--port", "0", "missing.gguf"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not an IP address"));
    let out = Command::new(env!("CARGO_BIN_EXE_rocmforge"))
        .args(["serve", "--port", "0", "--device", "cpu", "missing.gguf"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("missing.gguf") && err.starts_with("loading the model\nerror:"), "{err}");
}
