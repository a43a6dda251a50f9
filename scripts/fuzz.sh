#!/usr/bin/env bash
# Fuzzes the GGUF reader with libFuzzer (cargo fuzz), seeded with small valid models.
# usage: scripts/fuzz.sh [SECONDS]   (default 600)
# cargo fuzz needs nightly flags; RUSTC_BOOTSTRAP lets the stable toolchain accept them.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-600}"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz
mkdir -p fuzz/corpus/gguf_reader
cargo run -q --example write_fuzz_seeds -- fuzz/corpus/gguf_reader
export RUSTC_BOOTSTRAP=1
# -rss_limit_mb: an allocation the input did not pay for shows up as an out-of-memory crash.
cargo fuzz run gguf_reader -- -max_total_time="$secs" -rss_limit_mb=1024 -max_len=65536 -print_final_stats=1
