//! 32-value weights (Q4_0, Q5_0, Q8_0, IQ4_NL) dotted with ggml-cpu's Q8_0 activations in the f32
//! order llama.cpp's CPU backend uses on x86-64, so the fast path's sums are its sums to the bit.
//!
//! llama.cpp runs these products through llamafile's `tinyBLAS_Q0_AVX` when a pass has two or
//! more tokens and through `ggml_vec_dot_*_q8_0` (its AVX2 branch, which AVX-512 builds take too)
//! for one; both do, per output, the same arithmetic:
//!
//! - eight f32 lanes; lane i of block b takes the integer sum of the four products of elements
//!   4i..4i+4 (exact in i32, then exact in f32: at most 4·128·127);
//! - each lane accumulates `fma(d_w·d_a, sum, lane)` block after block (d_w·d_a is the f32
//!   product of the two f16 scales, exact);
//! - the lanes are summed as `hsum`: ((l0 + l4) + (l2 + l6)) + ((l1 + l5) + (l3 + l7)).
//!
//! This module is that arithmetic in scalar code (the reference every SIMD kernel must equal bit
//! for bit); [`super::simd`] runs it on rows of this shape whose activations are Q8_0
//! ([`super::ActFormat::Q8_0`]). Other activation formats (the GPU's q8_1) keep the
//! [`super::VecDotQ8_1`] combine.

use super::q8_1::{Q8Rows, QK8_1};
use super::vec_dot::VecDotQ8_1;
use super::ActFormat;
use crate::dtype::GgmlType;

/// Whether weights of `ty` meeting activation rows of `format` take this order.
pub fn applies(ty: GgmlType, format: ActFormat) -> bool {
    format == ActFormat::Q8_0 && matches!(ty, GgmlType::Q4_0 | GgmlType::Q5_0 | GgmlType::Q8_0 | GgmlType::IQ4_NL)
}

/// ggml's horizontal sum of eight lanes (`hsum` of sgemm.cpp, `hsum_float_8` of quants.c): the
/// 128-bit halves added, then the upper pair onto the lower, then the two left.
#[inline]
pub fn hsum8(l: [f32; 8]) -> f32 {
    let h = [l[0] + l[4], l[1] + l[5], l[2] + l[6], l[3] + l[7]];
    (h[0] + h[2]) + (h[1] + h[3])
}

/// Row `row` against activation row `t` of `a` (Q8_0 rows), in ggml's order, with the sum of
/// the absolute values of the f32 terms (what a reordered sum's rounding is measured against).
pub fn dot_row_terms<B: VecDotQ8_1>(row: &[B], a: &Q8Rows, t: usize) -> (f32, f32) {
    assert_eq!(B::ELEMS, QK8_1, "{} is not a 32-value format", B::TYPE);
    let nb = a.blocks_per_row();
    assert_eq!(row.len(), nb, "one weight block per activation block");
    let (qs, d) = (&a.qs[t * a.k()..(t + 1) * a.k()], &a.d[t * nb..(t + 1) * nb]);
    // IQ4_NL's one-token dot (`ggml_vec_dot_iq4_nl_q8_0`) keeps even and odd blocks in two sets
    // of lanes, adds them before the horizontal sum, and takes an odd last block whole.
    let split = B::TYPE == GgmlType::IQ4_NL && a.n() == 1;
    let paired = if split { nb & !1 } else { nb };
    let mut lanes = [[0f32; 8]; 2];
    let mut magnitude = 0f32;
    let mut tail = None;
    for (b, blk) in row.iter().enumerate() {
        let (dw, w) = blk.scale_and_signed().unwrap_or_else(|| panic!("{} has no signed 32-value form", B::TYPE));
        let dd = dw * d[b];
        let sums: [i32; 8] =
            std::array::from_fn(|i| (4 * i..4 * i + 4).map(|j| w[j] as i32 * qs[32 * b + j] as i32).sum());
        magnitude += sums.iter().map(|&s| (dd * s as f32).abs()).sum::<f32>();
        if b >= paired {
            tail = Some((dd, sums.iter().sum::<i32>()));
            continue;
        }
        let set = &mut lanes[if split { b % 2 } else { 0 }];
        for (lane, s) in set.iter_mut().zip(sums) {
            *lane = dd.mul_add(s as f32, *lane);
        }
    }
    let sum = hsum8(std::array::from_fn(|i| if split { lanes[0][i] + lanes[1][i] } else { lanes[0][i] }));
    // The scalar tail `sumf += d·Σ`, which GCC contracts into one fma.
    let sum = tail.map_or(sum, |(dd, s)| dd.mul_add(s as f32, sum));
    (sum, magnitude)
}

/// [`dot_row_terms`]'s value.
pub fn dot_row<B: VecDotQ8_1>(row: &[B], a: &Q8Rows, t: usize) -> f32 {
    dot_row_terms(row, a, t).0
}
