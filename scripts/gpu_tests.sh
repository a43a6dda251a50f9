#!/usr/bin/env bash
# GPU tests in two halves, for a GPU machine that has no Rust toolchain:
#   scripts/gpu_tests.sh build   (here, with Rust) builds the test binaries and the CLI in release
#                                mode into device-bin/ (git-ignored; carry it to the GPU machine)
#   scripts/gpu_tests.sh run [ARGS]  (there) runs every GPU test (the #[ignore]d ones), passing
#                                ARGS to each test binary (a filter, --skip NAME); exits non-zero
#                                if any failed. The end-to-end tests find models in
#                                $ROCMFORGE_MODELS and the synthetic 7B at $ROCMFORGE_SYN7B; a
#                                missing one fails the run (ROCMFORGE_REQUIRE_MODELS=1 unless set
#                                otherwise). ROCMFORGE_CASE=text runs only the op cases whose name
#                                holds it (e.g. ROCMFORGE_CASE=rope).
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-}" in
build)
  mkdir -p device-bin
  cargo build --release --locked -q
  cp target/release/rocmforge device-bin/
  # Every integration test binary that holds an ignored (GPU) test.
  cargo test --release --locked --no-run --message-format=json -q 2>/dev/null |
    python3 -c '
import json, sys, shutil
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["kind"] == ["test"]:
        src = open(m["target"]["src_path"]).read()
        if "#[ignore = \"needs a GPU" in src:
            shutil.copy(m["executable"], "device-bin/" + m["target"]["name"])
            print("device-bin/" + m["target"]["name"])
'
  strip device-bin/* 2>/dev/null || true
  du -sh device-bin
  ;;
run)
  export LD_LIBRARY_PATH="/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
  export ROCMFORGE_REQUIRE_MODELS="${ROCMFORGE_REQUIRE_MODELS:-1}"
  status=0
  for t in device-bin/*; do
    case "$(basename "$t")" in rocmforge|*.tar*|*.gguf|*.py|*.part*) continue ;; esac
    echo "== $(basename "$t")"
    if ! "$t" --ignored --nocapture --test-threads=1 "${@:2}" 2>&1; then status=1; fi
  done
  exit $status
  ;;
*)
  echo "usage: scripts/gpu_tests.sh build|run" >&2
  exit 2
  ;;
esac
