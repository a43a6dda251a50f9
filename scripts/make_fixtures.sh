#!/usr/bin/env bash
# Rebuilds tests/fixtures/quant: blocks cut from real files and gguf-py 0.19.0's dequantization.
# Types the real SmolLM2 / Gemma 3 files lack (F16, BF16, Q4_0, Q5_1, Q5_K, Q2_K, Q3_K, IQ4_NL,
# IQ4_XS) come from
# llama-quantize, built here from the llama.cpp that the llama-cpp-python 0.3.36 sdist vendors
# (commit 0c1e57098); `--pure` without an imatrix (an imatrix changes quality, not the format).
# Needs about 5 minutes on 2 cores the first time. WORK defaults to
# ~/.cache/rocmforge/fixture-work and is kept for the next run.
set -euo pipefail
cd "$(dirname "$0")/.."
work="${WORK:-${XDG_CACHE_HOME:-$HOME/.cache}/rocmforge/fixture-work}"
mkdir -p "$work"
models=$(python3 scripts/fetch_models.py smollm2 gemma3 | tail -n 1)

bin="$(bash scripts/build_llama_cpp.sh)"
export LD_LIBRARY_PATH="$bin${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
q="$bin/llama-quantize"
smol="$models/SmolLM2-135M-Instruct.Q4_1.gguf"
[ -f "$work/smol-f32.gguf" ] || "$q" --allow-requantize "$smol" "$work/smol-f32.gguf" F32 >/dev/null 2>&1
for t in F16 BF16 Q4_0 Q5_1 Q5_K Q2_K Q3_K IQ4_NL IQ4_XS; do
  [ -f "$work/smol-pure-$t.gguf" ] || "$q" --pure "$work/smol-f32.gguf" "$work/smol-pure-$t.gguf" "$t" >/dev/null 2>&1
done

python3 -c 'import gguf' 2>/dev/null && [ "$(python3 -c 'from importlib.metadata import version; print(version("gguf"))')" = 0.19.0 ] \
  || python3 -m pip install -q --user --break-system-packages gguf==0.19.0 2>/dev/null || python3 -m pip install -q gguf==0.19.0
rm -rf tests/fixtures/quant
python3 tests/fixtures/make_quant_fixtures.py tests/fixtures/quant "$smol" "$models/gemma-3-270m-q4_k_m.gguf" \
  "$work"/smol-pure-{F16,BF16,Q4_0,Q5_1,Q5_K,Q2_K,Q3_K,IQ4_NL,IQ4_XS}.gguf
