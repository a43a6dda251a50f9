#!/usr/bin/env bash
# Host emulation of the prefill kernels (mmq, flash_attn) without a GPU: the rendered source is
# compiled with g++ (C++20) over shim.h, each GPU thread a std::thread, __syncthreads a barrier,
# warp shuffles and the matrix instructions (mma.sync m16n8k32/k16, MFMA 16x16x16i8/16x16x32_i8,
# WMMA gfx11/gfx12 iu8) emulated from the fragment layouts the ISA guides give, written
# independently of kernel_templates/mma.h. harness.cpp holds each output to a double reference
# (the f32 path's dequantizer times the q8_1 activations; attention in double).
#   scripts/kernel_emulation/run.sh            every matrix back end × a few weight types, flash
# A development check (slow, minutes): it catches tile, index and fragment-layout mistakes before a
# GPU run; it does not replace the case table on a GPU.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build -q --example render_kernel
R=target/debug/examples/render_kernel
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
# build TARGET MODE(native|mma) ARGS... -> $W/h
build() {
  local t=$1 mode=$2
  shift 2
  "$R" "$t" "$@" >"$W/raw.h"
  python3 - "$mode" "$W" <<'PY'
import re, sys
mode, w = sys.argv[1], sys.argv[2]
s = open(w + '/raw.h').read()
# The int8 dot through the prelude's plain fallback; vector types as g++ spells them.
for d in ('SDOT4', 'SUDOT4'):
    s = s.replace('#define RF_DOT_I8_%s 1' % d, '#define RF_DOT_I8_%s 0' % d)
for n, b in ((2, 8), (4, 16), (8, 32)):
    s = s.replace('__attribute__((ext_vector_type(%d)))' % n, '__attribute__((vector_size(%d)))' % b)
# mmq's dynamic shared memory: a block-wide static array of the rendered size.
s = s.replace('extern __shared__ __attribute__((aligned(16))) unsigned char mmq_smem[];',
              'alignas(16) static unsigned char mmq_smem[MMQ_SMEM];')
if mode == 'mma':  # the CUDA mma.sync path, its inline PTX replaced by the emulation
    s = s.replace('#define RF_MATRIX_MMA_SYNC 0', '#define RF_MATRIX_MMA_SYNC 1')
    s = re.sub(r'asm\("mma\.sync\.aligned\.m16n8k32.*?\);',
               'EMU_K32(d, a.x[0], a.x[1], a.x[2], a.x[3], b.x[2 * h], b.x[2 * h + 1]);', s, flags=re.S)
    s = re.sub(r'asm\("mma\.sync\.aligned\.m16n8k16.*?\);',
               'EMU_K16(d, a.x[2 * (HALF > 0)], a.x[2 * (HALF > 0) + 1], b.x[2 * h + (HALF > 0)]);', s, flags=re.S)
open(w + '/kernel.h', 'w').write('#define STR2(x) #x\n#define STR(x) STR2(x)\n' + s)
PY
  g++ -std=c++20 -O1 -w -Wno-psabi -pthread -I"$W" ${FLASH:+-DFLASH} scripts/kernel_emulation/harness.cpp -o "$W/h"
}
status=0
# gfx1030 / gfx906: the int8-dot tile (wave32 / wave64); gfx1030 rendered with mma.sync: CUDA's
# path; gfx90a, gfx942: MFMA; gfx1100, gfx1201: WMMA.
for tm in "gfx1030 native" "gfx906 native" "gfx1030 mma" "gfx90a native" "gfx942 native" "gfx1100 native" "gfx1201 native"; do
  set -- $tm
  for ty in q4_0 q4_1 q5_0 q5_1 q8_0 q4_k q5_k q6_k; do
    case $ty in q4_k | q5_k | q6_k) k=512 ;; *) k=576 ;; esac
    build "$1" "$2" mmq "$ty" "$k"
    echo -n "$1 $2: "
    "$W/h" 133 70 || status=1
  done
done
for c in "gfx1030 128 1 0 0 70 0 0 0" "gfx1030 64 3 1 1 40 50 20 30" "gfx1030 256 4 0 1 33 100 0 50" \
  "gfx906 128 2 0 0 70 3 0 0" "gfx906 256 1 1 1 20 90 37 30" "gfx906 96 4 1 0 65 0 16 0"; do
  set -- $c
  FLASH=1 build "$1" native flash "$2" "$3" "$4" "$5"
  echo -n "$1: "
  "$W/h" "$6" "$7" "$8" "$9" || status=1
done
exit $status
