#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs what it needs, fetches the real models once
# into ~/.cache/rocmforge/models (or $ROCMFORGE_MODELS) and derives the quantized variants the
# end-to-end tests compare with llama.cpp, then runs every test.
# GPU tests are #[ignore]d here; scripts/gpu_tests.sh runs them on a machine with a GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install_deps.sh
export PATH="$HOME/.cargo/bin:$PATH"
python3 scripts/fetch_models.py >/dev/null
# (serve helper, issue 11) The official OpenAI client that tests/serve.rs drives `rocmforge serve` with, and
# the examples as programs (`--all-targets` builds them only as test harnesses) for tests/examples.rs.
{ python3 -m pip install -q --disable-pip-version-check openai || python3 -m pip install -q --disable-pip-version-check --break-system-packages openai; } && cargo build --locked -q --profile test --examples
# Requantized SmolLM2 variants and the synthetic qwen2 (builds llama-quantize once, ~5 min).
bash scripts/make_variants.sh >/dev/null
# Tests that need a fetched model or hipRTC fail (rather than skip) when it is missing: both ROCm
# toolchains, Debian 12's 5.2 on the host and 6.4 in the sid root install_deps.sh built (its
# tests chroot into it, so the suite runs as root, as CI does).
export ROCMFORGE_REQUIRE_MODELS=1 ROCMFORGE_REQUIRE_HIPRTC="${ROCMFORGE_REQUIRE_HIPRTC:-1}"
cargo test --locked --all-targets "$@"
cargo test --locked --doc
