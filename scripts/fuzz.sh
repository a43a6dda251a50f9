#!/usr/bin/env bash
# Fuzzes with libFuzzer (cargo fuzz): the GGUF reader, seeded with small valid models, and the
# kernel cache's entry and code-object checks, seeded with real hipRTC entries (when hipRTC is
# installed) and minimal code objects.
# usage: scripts/fuzz.sh [SECONDS] [TARGET...]   (default 600 seconds each; gguf_reader cache_entry)
# cargo fuzz needs nightly flags; RUSTC_BOOTSTRAP lets the stable toolchain accept them.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-600}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(gguf_reader cache_entry)
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz
export RUSTC_BOOTSTRAP=1
for target in "${targets[@]}"; do
    mkdir -p "fuzz/corpus/$target"
    case "$target" in
        gguf_reader) cargo run -q --example write_fuzz_seeds -- "fuzz/corpus/$target" ;;
        cache_entry) cargo run -q --example write_cache_fuzz_seeds -- "fuzz/corpus/$target" ;;
        *) echo "unknown fuzz target $target" >&2; exit 2 ;;
    esac
    # One job, so that the machine stays usable. -rss_limit_mb: an allocation the input did not
    # pay for shows up as an out-of-memory crash.
    cargo fuzz run "$target" -- -max_total_time="$secs" -rss_limit_mb=1024 -max_len=65536 -jobs=1 \
        -print_final_stats=1
    # libFuzzer writes a -jobs run's output to fuzz-0.log: keep each target's (its final stats say
    # how many inputs ran).
    mv fuzz-0.log "fuzz-$target.log"
    grep -E "^Done|stat::number_of_executed_units" "fuzz-$target.log" || true
done
