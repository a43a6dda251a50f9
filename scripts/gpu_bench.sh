#!/usr/bin/env bash
# The speed comparison of the issues, on the GPU machine after `scripts/gpu_prepare.sh models`:
# rocmforge bench and llama-bench in the same call, on the same GPU, for the synthetic 7B Q4_K_M
# and SmolLM2-135M Q4_K_M. rocmforge runs its exact plan (the default: f16 prefill products,
# PrefillProducts::F16Exact, and the f32 decode) and its fast plan (int8 prefill and decode), the
# latter fused, also without programmatic launch (ROCMFORGE_PDL=0), unfused (ROCMFORGE_FUSE=0) and
# with its prefill without stream-K products (ROCMFORGE_STREAMK=0);
# llama.cpp `-p 512 -n 128 -fa 0,1 -d 0,512`.
#
#   gpu_bench.sh [MODEL ...]   default: $ROCMFORGE_SYN7B and $ROCMFORGE_MODELS/variants/smol-Q4_K_M.gguf
# Needs the exports of `gpu_prepare.sh env` and device-bin/rocmforge (scripts/gpu_tests.sh build).
set -euo pipefail
cd "$(dirname "$0")/.."
: "${ROCMFORGE_SYN7B:?run: eval \"\$(bash scripts/gpu_prepare.sh env)\"}" "${LLAMA_BIN:?}" "${ROCMFORGE_MODELS:?}"
export LD_LIBRARY_PATH="/usr/local/cuda/lib64:$LLAMA_BIN${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
models=("$@")
[ ${#models[@]} -gt 0 ] || models=("$ROCMFORGE_SYN7B" "$ROCMFORGE_MODELS/variants/smol-Q4_K_M.gguf")
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
bench=(device-bin/rocmforge bench --prompt 512 --gen 128 --depth 0,512)
for m in "${models[@]}"; do
  echo "### $m"
  echo "## rocmforge, int8 decode, fused, int8 prefill (--gpu-precision fast)"
  "${bench[@]}" "$m" --gpu-precision fast --profile
  echo "## rocmforge, int8 decode, fused, without programmatic launch (ROCMFORGE_PDL=0)"
  ROCMFORGE_PDL=0 "${bench[@]}" "$m" --gpu-precision fast
  echo "## rocmforge, prefill with a block a tile everywhere (ROCMFORGE_STREAMK=0)"
  ROCMFORGE_STREAMK=0 device-bin/rocmforge bench --prompt 512 --gen 4 --depth 0,512 "$m" --gpu-precision fast
  echo "## rocmforge, int8 decode, unfused (ROCMFORGE_FUSE=0)"
  ROCMFORGE_FUSE=0 "${bench[@]}" "$m" --gpu-precision fast
  echo "## rocmforge, exact decode, f16 prefill (the default plan)"
  "${bench[@]}" "$m" --gpu-precision exact
  echo "## llama.cpp"
  "$LLAMA_BIN/llama-bench" -m "$m" -p 512 -n 128 -fa 0,1 -d 0,512 -ngl 99
done
