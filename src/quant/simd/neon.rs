//! aarch64 kernels: NEON, with `sdot` where the dot-product extension is present. The weight row
//! is unpacked by the portable code; the biased bytes become signed (u − bias fits in i8 for every
//! format), and each 16-byte step gives 4 i32 lanes of 4 products, the same lanes as the x86
//! kernels: `sdot` directly, plain NEON through `smull` + pairwise adds. Both then combine in f32
//! identically, so the two give the same bits.
//!
//! The safe entry points are reached only through `gemm_*` in the parent module, which asserts
//! `Isa::supported()` first.

// Tiles index several parallel arrays (accumulators, row pointers) by token.
#![allow(clippy::needless_range_loop)]

use std::arch::aarch64::*;

use super::{Isa, Unpacked};
use crate::dtype::GgmlType;
use crate::quant::q8_1::Q8Rows;
use crate::quant::vec_dot::VecDotQ8_1;

/// One weight row (blocks of `B`) against every activation row of `a`; `out[t]` for row t.
pub(super) fn row_q8_1<B: VecDotQ8_1>(isa: Isa, row: &[B], a: &Q8Rows, un: &mut Unpacked, out: &mut [f32]) {
    un.unpack_blocks(row);
    assert!(un.k == a.k() && out.len() == a.n());
    // SAFETY: `gemm_q8_1` asserted that `isa` runs on this host; lengths checked above.
    unsafe {
        if isa == Isa::NeonDotprod {
            dot_rows::<true>(un, a, out)
        } else {
            dot_rows::<false>(un, a, out)
        }
    }
}

/// Σ_b offset_b · sum_b over the row's activation blocks.
fn offset_dot(un: &Unpacked, a: &Q8Rows, t: usize) -> f32 {
    un.offset.iter().zip(un.sums(a, t)).map(|(o, s)| o * s).sum()
}

#[target_feature(enable = "neon,dotprod")]
#[inline]
unsafe fn lanes_sdot(w: int8x16_t, a: int8x16_t) -> int32x4_t {
    // `vdotq_s32` is not stable yet; the instruction is (this function requires `dotprod`).
    let mut acc = vdupq_n_s32(0);
    std::arch::asm!(
        "sdot {acc:v}.4s, {w:v}.16b, {a:v}.16b",
        acc = inout(vreg) acc,
        w = in(vreg) w,
        a = in(vreg) a,
        options(pure, nomem, nostack)
    );
    acc
}

#[target_feature(enable = "neon")]
#[inline]
unsafe fn lanes_smull(w: int8x16_t, a: int8x16_t) -> int32x4_t {
    let lo = vpaddlq_s16(vmull_s8(vget_low_s8(w), vget_low_s8(a)));
    let hi = vpaddlq_s16(vmull_high_s8(w, a));
    vpaddq_s32(lo, hi)
}

#[target_feature(enable = "neon")]
unsafe fn dot_rows<const DOT: bool>(un: &Unpacked, a: &Q8Rows, out: &mut [f32]) {
    let n = a.n();
    let mut t = 0;
    while t + 4 <= n {
        tile::<DOT, 4>(un, a, t, &mut out[t..t + 4]);
        t += 4;
    }
    while t < n {
        tile::<DOT, 1>(un, a, t, &mut out[t..t + 1]);
        t += 1;
    }
}

/// NT activation rows against the unpacked row, 16 bytes (4 lanes) at a time.
#[target_feature(enable = "neon")]
#[inline]
unsafe fn tile<const DOT: bool, const NT: usize>(un: &Unpacked, a: &Q8Rows, t0: usize, out: &mut [f32]) {
    let k = un.k;
    assert!(t0 + NT <= a.n() && un.u.len() >= k && un.lane_scale.len() >= k / 4);
    let qs: [*const i8; NT] = std::array::from_fn(|j| a.qs[(t0 + j) * k..].as_ptr());
    let dl: [*const f32; NT] = std::array::from_fn(|j| a.d_lanes[(t0 + j) * k / 4..].as_ptr());
    let bias = vdupq_n_u8(un.bias);
    let mut acc = [vdupq_n_f32(0.0); NT];
    for c in 0..k / 16 {
        let w = vreinterpretq_s8_u8(vsubq_u8(vld1q_u8(un.u.as_ptr().add(16 * c)), bias));
        let sc = vld1q_f32(un.lane_scale.as_ptr().add(4 * c));
        for j in 0..NT {
            let av = vld1q_s8(qs[j].add(16 * c));
            let lanes = if DOT { lanes_sdot(w, av) } else { lanes_smull(w, av) };
            let s = vmulq_f32(sc, vld1q_f32(dl[j].add(4 * c)));
            acc[j] = vfmaq_f32(acc[j], vcvtq_f32_s32(lanes), s);
        }
    }
    for j in 0..NT {
        out[j] = vaddvq_f32(acc[j]) + offset_dot(un, a, t0 + j);
    }
}

/// One float weight row (F32, F16, BF16) against every f32 activation row of `x`: the weights
/// widened 64 at a time (the half crate uses the hardware conversion), then NEON FMAs.
pub(super) fn row_f32(ty: GgmlType, row: &[u8], x: &[f32], out: &mut [f32]) {
    let k = row.len() / ty.block_bytes();
    assert_eq!(x.len(), out.len() * k);
    let mut acc = vec![[0f32; 4]; out.len()];
    let mut w = [0f32; 64];
    for c0 in (0..k).step_by(64) {
        let len = (k - c0).min(64);
        for (i, v) in w[..len].iter_mut().enumerate() {
            let j = c0 + i;
            *v = match ty {
                GgmlType::F32 => f32::from_le_bytes(row[4 * j..4 * j + 4].try_into().expect("4 bytes")),
                GgmlType::F16 => half::f16::from_le_bytes([row[2 * j], row[2 * j + 1]]).to_f32(),
                _ => half::bf16::from_le_bytes([row[2 * j], row[2 * j + 1]]).to_f32(),
            };
        }
        for (t, a) in acc.iter_mut().enumerate() {
            let xr = &x[t * k + c0..t * k + c0 + len];
            // SAFETY: NEON is part of the aarch64 baseline; every pointer stays inside `w`/`xr`.
            unsafe {
                let mut v = vld1q_f32(a.as_ptr());
                let mut i = 0;
                while i + 4 <= len {
                    v = vfmaq_f32(v, vld1q_f32(w.as_ptr().add(i)), vld1q_f32(xr.as_ptr().add(i)));
                    i += 4;
                }
                vst1q_f32(a.as_mut_ptr(), v);
                for i in len / 4 * 4..len {
                    a[0] += w[i] * xr[i];
                }
            }
        }
    }
    for (o, a) in out.iter_mut().zip(&acc) {
        *o = (a[0] + a[1]) + (a[2] + a[3]);
    }
}
