#!/usr/bin/env bash
# On the GPU machine (no Rust, nothing fetchable): builds llama.cpp with CUDA and writes the models
# the GPU tests and benches use, from a payload carried in parts (a tar of llama-src.tar.xz,
# tools/synth_q4km.py, models/SmolLM2-135M-Instruct.Q4_1.gguf, models/gemma-3-270m-q4_k_m.gguf and
# models/vocab/ggml-vocab-{llama-spm,llama-bpe,qwen2}.gguf; see docs/measurements/README.md).
#
#   gpu_prepare.sh append PART   appends one carried part to $W/payload.tar
#   gpu_prepare.sh llama SRC     builds llama-bench and llama-quantize (CUDA, sm_90) from the
#                                llama.cpp source tarball SRC into $W/llama/build/bin (~5 min)
#   gpu_prepare.sh llama-bin TAR unpacks a build/bin carried from an earlier session's `llama`
#                                (tar.xz of bin/, 43 MB) instead of building
#   gpu_prepare.sh models        unpacks the payload into $W, writes the variants and synthetic
#                                models (as scripts/make_variants.sh does here) and the 7B
#                                ($W/syn7b.gguf, ../shared/tools/synth_q4km.py)
#   gpu_prepare.sh env           prints the exports scripts/gpu_tests.sh run needs
# $W is $ROCMFORGE_WORK, default /root/rf.
set -euo pipefail
W="${ROCMFORGE_WORK:-/root/rf}"
mkdir -p "$W"
here="$(cd "$(dirname "$0")/.." && pwd)"
case "${1:-}" in
append)
  cat "$2" >>"$W/payload.tar"
  ls -l "$W/payload.tar"
  ;;
llama)
  mkdir -p "$W/llama"
  tar xJf "$2" -C "$W/llama" --strip-components=1
  cd "$W/llama"
  cmake -B build -G Ninja -DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 -DCMAKE_BUILD_TYPE=Release \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_OPENSSL=OFF \
    -DLLAMA_BUILD_APP=OFF -DLLAMA_USE_PREBUILT_UI=OFF >"$W/llama-cmake.log" 2>&1
  ninja -C build -j16 llama-bench llama-quantize >"$W/llama-build.log" 2>&1
  touch "$W/llama.done"
  ;;
llama-bin)
  mkdir -p "$W/llama/build"
  tar xJf "$2" -C "$W/llama/build"
  touch "$W/llama.done"
  ;;
models)
  tar xf "$W/payload.tar" -C "$W"
  # gguf-py for the synthetic models, from the llama.cpp source in the payload.
  [ -d "$W/llama/gguf-py" ] || tar xJf "$W/llama-src.tar.xz" -C "$W/llama" --strip-components=1 llama.cpp/gguf-py
  m="$W/models" v="$W/models/variants" q="$W/llama/build/bin/llama-quantize"
  mkdir -p "$v"
  export PYTHONPATH="$W/llama/gguf-py${PYTHONPATH:+:$PYTHONPATH}"
  "$q" --allow-requantize "$m/SmolLM2-135M-Instruct.Q4_1.gguf" "$v/smol-F32.gguf" F32 >/dev/null 2>&1
  for t in F16 Q8_0 Q6_K Q4_K_M Q3_K_M Q2_K IQ4_XS; do "$q" "$v/smol-F32.gguf" "$v/smol-$t.gguf" "$t" >/dev/null 2>&1 & done
  "$q" --pure "$v/smol-F32.gguf" "$v/smol-Q2_K-pure.gguf" Q2_K >/dev/null 2>&1 &
  # Vocabularies the payload lacks may ride along in device-bin/ (e.g. ggml-vocab-phi-3.gguf).
  cp "$here"/device-bin/ggml-vocab-*.gguf "$m/vocab/" 2>/dev/null || true
  cd "$here/tests/fixtures"
  declare -A archs_vocab=([phi3]=phi-3 [mistral]=llama-spm [qwen2-yarn]=qwen2)
  for a in phi3 mistral qwen2-yarn; do
    python3 synth_archs.py "$a" "$v/$a-synth-F32.gguf" --vocab-from "$m/vocab/ggml-vocab-${archs_vocab[$a]}.gguf" >/dev/null
    "$q" "$v/$a-synth-F32.gguf" "$v/$a-synth-Q4_K_M.gguf" Q4_K_M >/dev/null 2>&1
  done
  python3 synth_qwen2.py "$v/qwen2-synth-F32.gguf" --vocab-from "$m/vocab/ggml-vocab-qwen2.gguf" >/dev/null
  "$q" --pure "$v/qwen2-synth-F32.gguf" "$v/qwen2-synth-Q4_K.gguf" Q4_K >/dev/null 2>&1
  python3 synth_llama3.py "$v/llama3-synth-F32.gguf" --vocab-from "$m/vocab/ggml-vocab-llama-bpe.gguf" >/dev/null
  "$q" "$v/llama3-synth-F32.gguf" "$v/llama3-synth-Q4_K_M.gguf" Q4_K_M >/dev/null 2>&1
  python3 synth_qwen3.py "$v/qwen3-synth-F32.gguf" --vocab-from "$m/vocab/ggml-vocab-qwen2.gguf" >/dev/null
  "$q" "$v/qwen3-synth-F32.gguf" "$v/qwen3-synth-Q4_K_M.gguf" Q4_K_M >/dev/null 2>&1
  python3 synth_gemma2.py "$v/gemma2-synth-F32.gguf" --vocab-from "$m/gemma-3-270m-q4_k_m.gguf" >/dev/null
  python3 "$W/tools/synth_q4km.py" "$W/syn7b.gguf" --vocab-from "$m/vocab/ggml-vocab-llama-spm.gguf" >/dev/null
  wait
  ls -l "$m" "$v" "$W/syn7b.gguf"
  ;;
env)
  echo "export ROCMFORGE_MODELS=$W/models ROCMFORGE_SYN7B=$W/syn7b.gguf LLAMA_BIN=$W/llama/build/bin"
  ;;
*)
  sed -n '2,15p' "$0"
  exit 2
  ;;
esac
