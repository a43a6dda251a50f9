#!/usr/bin/env bash
# The main job on a default that needs nothing else: fetch SmolLM2-135M once, build rocmforge,
# show what the model file holds, JIT-compile every kernel it needs (for three AMD GPU targets
# when there is no GPU; no GPU is needed to compile) into ./cache, and answer a prompt on the best
# device there is. Pass another GGUF path to use that model instead.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install_deps.sh
export PATH="$HOME/.cargo/bin:$PATH"
models=$(python3 scripts/fetch_models.py smollm2 | tail -n 1)
model="${1:-$models/SmolLM2-135M-Instruct.Q4_1.gguf}"
cargo build --release --locked -q
./target/release/rocmforge inspect "$model"
echo
export ROCMFORGE_CACHE_DIR="${ROCMFORGE_CACHE_DIR:-$PWD/cache}"
./target/release/rocmforge warm "$model" --target gfx906,gfx90a,gfx1030
echo
./target/release/rocmforge run "$model" --chat -p "${PROMPT:-What is the capital of France?}" -n 64 --temp 0
