#!/usr/bin/env bash
# rocmforge's CPU fast path beside llama.cpp on the same cores and threads (issue 13):
# `rocmforge bench --device cpu --prompt 64 --gen 32` (release build, 2 rayon threads) and
# `llama-bench -p 64 -n 32 -t 2` on SmolLM2 Q4_K_M, the published SmolLM2 Q4_1 and Gemma 3 270M,
# run back to back ROUNDS times (default 5) so both meet the same background load; prints every
# round, then per model the best and the median of each engine and their ratios.
#
# llama.cpp is the CPU build of scripts/build_llama_cpp.sh (GGML_NATIVE, so AVX-512 VNNI and AMX
# where the host has them); llama-bench is built there if missing. When its default weight
# repacking fails (its AMX kernels crash on some hosts) it runs with --repack 0, and says so.
#
# usage: scripts/cpu_bench.sh [ROUNDS]      (models from $ROCMFORGE_MODELS or ~/.cache/rocmforge/models)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
rounds="${1:-5}"
threads=2
models_dir="${ROCMFORGE_MODELS:-${XDG_CACHE_HOME:-$HOME/.cache}/rocmforge/models}"
models=(
  "smollm2-q4_k_m:$models_dir/variants/smol-Q4_K_M.gguf"
  "smollm2-q4_1:$models_dir/SmolLM2-135M-Instruct.Q4_1.gguf"
  "gemma3-270m-q4_k_m:$models_dir/gemma-3-270m-q4_k_m.gguf"
)
for m in "${models[@]}"; do
  [ -f "${m#*:}" ] || { echo "missing ${m#*:} (scripts/fetch_models.py, scripts/make_variants.sh)" >&2; exit 1; }
done

bin="$("$root/scripts/build_llama_cpp.sh")"
if [ ! -x "$bin/llama-bench" ]; then
  ninja -C "$bin/.." llama-bench >/dev/null
fi
export LD_LIBRARY_PATH="$bin${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
(cd "$root" && cargo build --release --quiet)
ours="$root/target/release/rocmforge"

echo "host: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | xargs), $(nproc) cores; $threads threads each"
echo "rocmforge $(git -C "$root" rev-parse --short HEAD)$(git -C "$root" diff --quiet || echo '+dirty'); llama.cpp $(cat "$bin/../../VERSION" 2>/dev/null || echo "build under $bin")"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"

repack_flag=()
if ! llama_out="$("$bin/llama-bench" -m "${models[0]#*:}" -p 8 -n 2 -t "$threads" -r 1 -o csv 2>/dev/null)"; then
  echo "note: llama-bench with its default weight repacking (AMX/extra buffers) failed on this host; using --repack 0"
  repack_flag=(--repack 0)
fi

results="$(mktemp)"
trap 'rm -f "$results"' EXIT
for round in $(seq 1 "$rounds"); do
  for m in "${models[@]}"; do
    name="${m%%:*}"
    path="${m#*:}"
    out="$(RAYON_NUM_THREADS=$threads "$ours" bench --device cpu --prompt 64 --gen 32 "$path")"
    pp="$(echo "$out" | awk '/^prefill/ {print $2}')"
    tg="$(echo "$out" | awk '/^decode/ {print $2}')"
    echo "$name rocmforge $pp $tg" >>"$results"
    csv="$("$bin/llama-bench" -m "$path" -p 64 -n 32 -t "$threads" "${repack_flag[@]}" -o csv 2>/dev/null)"
    lpp="$(echo "$csv" | python3 -c 'import csv,sys; r=[x for x in csv.DictReader(sys.stdin)]; print(next(x["avg_ts"] for x in r if x["n_prompt"]=="64"))')"
    ltg="$(echo "$csv" | python3 -c 'import csv,sys; r=[x for x in csv.DictReader(sys.stdin)]; print(next(x["avg_ts"] for x in r if x["n_gen"]=="32"))')"
    echo "$name llama.cpp $lpp $ltg" >>"$results"
    printf 'round %d %-20s rocmforge pp64 %8.1f tg32 %7.1f | llama.cpp pp64 %8.1f tg32 %7.1f  (load %s)\n' \
      "$round" "$name" "$pp" "$tg" "$lpp" "$ltg" "$(cut -d' ' -f1 /proc/loadavg)"
  done
done

python3 - "$results" <<'EOF'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
targets = {"smollm2-q4_k_m": 1.0, "smollm2-q4_1": 1.0, "gemma3-270m-q4_k_m": 0.8}
print()
print(f"{'model':20} {'':5} {'rocmforge best/median':>22} {'llama.cpp best/median':>22} {'ratio best':>10} {'ratio median':>12} target")
for name, target in targets.items():
    for i, what in ((2, "pp64"), (3, "tg32")):
        ours = [float(r[i]) for r in rows if r[0] == name and r[1] == "rocmforge"]
        theirs = [float(r[i]) for r in rows if r[0] == name and r[1] == "llama.cpp"]
        if not ours:
            continue
        ob, om, tb, tm = max(ours), statistics.median(ours), max(theirs), statistics.median(theirs)
        ok = "met" if ob / tb >= target else "NOT met"
        print(f"{name:20} {what:5} {ob:10.1f} /{om:9.1f} {tb:10.1f} /{tm:9.1f} {ob / tb:9.2f}x {om / tm:11.2f}x ≥ {target}x: {ok}")
EOF
