#!/usr/bin/env bash
# Requantizes the fetched SmolLM2 into the variants the end-to-end tests use (F32, F16, Q8_0,
# Q6_K, Q4_K_M, and Q3_K_M, Q2_K, IQ4_XS, made without an imatrix: it changes their quality, not
# their format; SmolLM2's 576-wide rows are no whole 256-value super-blocks, so llama.cpp gives
# those Q4_0/Q5_0/IQ4_NL and only its ffn_down takes a k-quant: Q2_K itself appears only in
# smol-Q2_K-pure, all-Q2_K where the shape allows) and writes the synthetic qwen2 Q4_K, gemma2 F32,
# and Llama 3 (rope_freqs), qwen3, phi3 (LongRoPE), Mistral and YaRN qwen2 F32 and Q4_K_M models,
# with llama.cpp's llama-quantize
# (scripts/build_llama_cpp.sh), into <models>/variants. Quantization there is ggml's scalar
# reference code, so the files are the same bytes on every x86-64 machine; the tests check their
# SHA256 against tests/fixtures/logits/manifest.tsv. Idempotent; prints the variants folder.
set -euo pipefail
cd "$(dirname "$0")/.."
models="$(python3 scripts/fetch_models.py | tail -n 1)"
out="$models/variants"
mkdir -p "$out"
need=0
# tests/fixtures/synth_archs.py's models, and the llama.cpp vocabulary each is written with.
synth_archs="phi3 mistral qwen2-yarn"
# The lower-bit variants each synthetic architecture also gets (its rows are whole 256-value blocks).
low_bit="Q3_K_M Q2_K IQ4_XS"
declare -A archs_vocab=([phi3]=phi-3 [mistral]=llama-spm [qwen2-yarn]=qwen2)
for f in smol-F32 smol-F16 smol-Q8_0 smol-Q6_K smol-Q4_K_M smol-Q3_K_M smol-Q2_K smol-Q2_K-pure smol-IQ4_XS \
  qwen2-synth-Q4_K gemma2-synth-F32 llama3-synth-F32 llama3-synth-Q4_K_M qwen3-synth-F32 qwen3-synth-Q4_K_M \
  $(for a in $synth_archs; do echo "$a-synth-F32 $a-synth-Q4_K_M"; done) \
  $(for a in llama3 qwen3 $synth_archs; do for t in $low_bit; do echo "$a-synth-$t"; done; done); do
  [ -f "$out/$f.gguf" ] || need=1
done
if [ "$need" = 1 ]; then
  bin="$(bash scripts/build_llama_cpp.sh)"
  export LD_LIBRARY_PATH="$bin${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  q="$bin/llama-quantize"
  [ -f "$out/smol-F32.gguf" ] || "$q" --allow-requantize "$models/SmolLM2-135M-Instruct.Q4_1.gguf" "$out/smol-F32.gguf" F32 >/dev/null 2>&1
  for t in F16 Q8_0 Q6_K Q4_K_M Q3_K_M Q2_K IQ4_XS; do
    [ -f "$out/smol-$t.gguf" ] || "$q" "$out/smol-F32.gguf" "$out/smol-$t.gguf" "$t" >/dev/null 2>&1
  done
  [ -f "$out/smol-Q2_K-pure.gguf" ] || "$q" --pure "$out/smol-F32.gguf" "$out/smol-Q2_K-pure.gguf" Q2_K >/dev/null 2>&1
  # The synthetic models are written with gguf-py.
  python3 -c 'import gguf, numpy' 2>/dev/null || python3 -m pip install -q --user --break-system-packages gguf==0.19.0 numpy 2>/dev/null \
    || python3 -m pip install -q gguf==0.19.0 numpy
  if [ ! -f "$out/qwen2-synth-Q4_K.gguf" ]; then
    python3 tests/fixtures/synth_qwen2.py "$out/qwen2-synth-F32.gguf" --vocab-from "$models/vocab/ggml-vocab-qwen2.gguf"
    "$q" --pure "$out/qwen2-synth-F32.gguf" "$out/qwen2-synth-Q4_K.gguf" Q4_K >/dev/null 2>&1
    rm -f "$out/qwen2-synth-F32.gguf"
  fi
  if [ ! -f "$out/llama3-synth-F32.gguf" ]; then
    (cd tests/fixtures && python3 synth_llama3.py "$out/llama3-synth-F32.gguf" --vocab-from "$models/vocab/ggml-vocab-llama-bpe.gguf")
  fi
  # Q4_K_M as llama.cpp lays it out (Q6_K for the tied embedding and some attn_v / ffn_down);
  # rope_freqs.weight stays F32.
  [ -f "$out/llama3-synth-Q4_K_M.gguf" ] || "$q" "$out/llama3-synth-F32.gguf" "$out/llama3-synth-Q4_K_M.gguf" Q4_K_M >/dev/null 2>&1
  if [ ! -f "$out/qwen3-synth-F32.gguf" ]; then
    (cd tests/fixtures && python3 synth_qwen3.py "$out/qwen3-synth-F32.gguf" --vocab-from "$models/vocab/ggml-vocab-qwen2.gguf")
  fi
  [ -f "$out/qwen3-synth-Q4_K_M.gguf" ] || "$q" "$out/qwen3-synth-F32.gguf" "$out/qwen3-synth-Q4_K_M.gguf" Q4_K_M >/dev/null 2>&1
  for a in $synth_archs; do
    if [ ! -f "$out/$a-synth-F32.gguf" ]; then
      (cd tests/fixtures && python3 synth_archs.py "$a" "$out/$a-synth-F32.gguf" --vocab-from "$models/vocab/ggml-vocab-${archs_vocab[$a]}.gguf")
    fi
    [ -f "$out/$a-synth-Q4_K_M.gguf" ] || "$q" "$out/$a-synth-F32.gguf" "$out/$a-synth-Q4_K_M.gguf" Q4_K_M >/dev/null 2>&1
  done
  for a in llama3 qwen3 $synth_archs; do
    for t in $low_bit; do
      [ -f "$out/$a-synth-$t.gguf" ] || "$q" "$out/$a-synth-F32.gguf" "$out/$a-synth-$t.gguf" "$t" >/dev/null 2>&1
    done
  done
  if [ ! -f "$out/gemma2-synth-F32.gguf" ]; then
    # Kept in F32: with random weights, llama.cpp's 8-bit activations would blur the comparison.
    (cd tests/fixtures && python3 synth_gemma2.py "$out/gemma2-synth-F32.gguf" --vocab-from "$models/gemma-3-270m-q4_k_m.gguf")
  fi
fi
echo "$out"
