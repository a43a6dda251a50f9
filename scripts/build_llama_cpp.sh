#!/usr/bin/env bash
# Builds llama.cpp's CPU tools (llama-quantize, llama-debug, llama-tokenize) from the copy the
# llama-cpp-python 0.3.36 sdist vendors (commit 0c1e57098), once, under WORK (default
# ~/.cache/rocmforge/fixture-work), and prints the folder holding the binaries.
# About 5 minutes on 2 cores the first time. Used to make reference fixtures, never by tests.
set -euo pipefail
work="${WORK:-${XDG_CACHE_HOME:-$HOME/.cache}/rocmforge/fixture-work}"
mkdir -p "$work"
bin="$work/llama.cpp/build/bin"
tools=(llama-quantize llama-debug llama-tokenize)
ready=1
for t in "${tools[@]}"; do [ -x "$bin/$t" ] || ready=0; done
if [ "$ready" = 0 ]; then
  command -v cmake >/dev/null && command -v ninja >/dev/null || apt-get install -y -qq cmake ninja-build >/dev/null
  if [ ! -d "$work/llama.cpp" ]; then
    python3 -m pip download -q --no-deps --no-binary llama-cpp-python llama-cpp-python==0.3.36 -d "$work" >&2
    tar xzf "$work"/llama_cpp_python-0.3.36.tar.gz -C "$work"
    mv "$work/llama_cpp_python-0.3.36/vendor/llama.cpp" "$work/llama.cpp"
  fi
  (cd "$work/llama.cpp" && cmake -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON \
     -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_USE_PREBUILT_UI=OFF \
     -DLLAMA_BUILD_APP=OFF >/dev/null && ninja -C build -j"$(nproc)" "${tools[@]}" >/dev/null)
fi
echo "$bin"
