//! Q2_K weights dotted with ggml-cpu's Q8_K activations in the f32 order llama.cpp's CPU backend
//! uses on x86-64 with AVX-512 VNNI, so the fast path's sums are its sums to the bit.
//!
//! - Passes of 8 or more tokens take ggml-cpu's tiled K-quant product (`tiled/tiled-kernel.cpp`,
//!   `tiled_run_micro_vnni_8x16`): per super-block the exact integers s1 = Σ sc·Σ w·q and
//!   s2 = Σ m·bsum, then r = fnmadd(dmin, s2, s1·d) and out = fma(r, d8, out) (GCC contracts
//!   the kernel's add of a product), super-block after super-block from 0.
//! - Shorter passes take `ggml_vec_dot_q2_K_q8_K` (its AVX2 branch): eight f32 lanes, lane l
//!   holding the integer Σ of products 4l..4l+4 of each 32 quants times their scale and
//!   `m[2l]·bsum[2l] + m[2l+1]·bsum[2l+1]`; per super-block lane = fma(−d8·dmin, mins, lane)
//!   then fma(d8·d, sums, lane); then ggml's `hsum_float_8`.
//!
//! Every integer here is exact in i32 and in f32 (at most 16·15·16·3·127 < 2^24).

use super::q2_k::BlockQ2K;
use super::q8_0_lanes::hsum8;
use super::q8_1::Q8Rows;
use super::q8_k::{KParts, VecDotQ8K};
use super::ActFormat;
use crate::dtype::QK_K;

/// Passes of at least this many tokens take ggml-cpu's tiled product (`ggml_tiled_min_batch`).
pub const TILED_MIN_TOKENS: usize = 8;

/// Whether Q2_K weights meeting activation rows of `format` take this order.
pub fn applies(format: ActFormat) -> bool {
    format == ActFormat::Q8K
}

/// One super-block of a Q2_K row, unpacked once for every token it meets.
pub struct Unpacked {
    parts: KParts,
}

impl Unpacked {
    pub fn new(block: &BlockQ2K) -> Unpacked {
        Unpacked { parts: block.k_parts() }
    }
}

/// (Σ_e w·q per 16-value group, Σ q per group) of super-block `sb` of token `t` of `a`.
#[inline]
fn group_sums(p: &KParts, a: &Q8Rows, t: usize, sb: usize) -> ([i32; 16], [i32; 16]) {
    let q = &a.qs[t * a.k() + sb * QK_K..t * a.k() + (sb + 1) * QK_K];
    let raw = std::array::from_fn(|g| (0..16).map(|e| p.w[16 * g + e] * q[16 * g + e] as i32).sum());
    let bsum = std::array::from_fn(|g| q[16 * g..16 * g + 16].iter().map(|&v| v as i32).sum());
    (raw, bsum)
}

/// A row (its super-blocks unpacked) against token `t` of `a` (Q8_K rows), in the tiled order.
pub fn dot_tiled(row: &[Unpacked], a: &Q8Rows, t: usize) -> f32 {
    let nb = a.blocks_per_row();
    let mut out = 0f32;
    for (sb, u) in row.iter().enumerate() {
        let p = &u.parts;
        let (raw, bsum) = group_sums(p, a, t, sb);
        let s1: i32 = (0..16).map(|g| p.sc[g] * raw[g]).sum();
        let s2: i32 = (0..16).map(|g| p.m[g] * bsum[g]).sum();
        let r = (-p.dmin).mul_add(s2 as f32, s1 as f32 * p.d);
        // GCC contracts the kernel's `_mm512_add_ps(buf, _mm512_mul_ps(r, d8))` into one fma.
        out = r.mul_add(a.d[t * nb + 8 * sb], out);
    }
    out
}

/// A row against token `t` of `a` in `ggml_vec_dot_q2_K_q8_K`'s order.
pub fn dot_vec(row: &[Unpacked], a: &Q8Rows, t: usize) -> f32 {
    let nb = a.blocks_per_row();
    let mut lanes = [0f32; 8];
    for (sb, u) in row.iter().enumerate() {
        let p = &u.parts;
        let d8 = a.d[t * nb + 8 * sb];
        let (d, dmin) = (d8 * p.d, -d8 * p.dmin);
        let (_, bsum) = group_sums(p, a, t, sb);
        let q = &a.qs[t * a.k() + sb * QK_K..t * a.k() + (sb + 1) * QK_K];
        for (l, lane) in lanes.iter_mut().enumerate() {
            let mins = p.m[2 * l] * bsum[2 * l] + p.m[2 * l + 1] * bsum[2 * l + 1];
            // Lane l: products 4l..4l+4 of each 32 quants, times the scale of their 16.
            let sums: i32 = (0..8)
                .map(|c| {
                    let e = 32 * c + 4 * l;
                    p.sc[e / 16] * (e..e + 4).map(|e| p.w[e] * q[e] as i32).sum::<i32>()
                })
                .sum();
            *lane = dmin.mul_add(mins as f32, *lane);
            *lane = d.mul_add(sums as f32, *lane);
        }
    }
    hsum8(lanes)
}

/// Every row of `row_blocks` (rows of `per_row` super-blocks) against every token of `a`, into
/// `set(row, token, value)`.
pub fn gemm(row_blocks: &[BlockQ2K], per_row: usize, a: &Q8Rows, mut set: impl FnMut(usize, usize, f32)) {
    let tiled = a.n() >= TILED_MIN_TOKENS;
    let mut row = Vec::with_capacity(per_row);
    for (r, blocks) in row_blocks.chunks_exact(per_row).enumerate() {
        row.clear();
        row.extend(blocks.iter().map(Unpacked::new));
        for t in 0..a.n() {
            set(r, t, if tiled { dot_tiled(&row, a, t) } else { dot_vec(&row, a, t) });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::q8_k::{quantize_row_q8_k, BlockQ8K};

    /// Both orders within f32 rounding of the integer-exact sum, on random rows.
    #[test]
    fn both_orders_equal_the_exact_sum_up_to_rounding() {
        let (k, rows, toks) = (1536, 5, 9);
        let mut s = 0x9e37_79b9u32;
        let mut next = || {
            s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            s
        };
        let blocks: Vec<BlockQ2K> = (0..rows * k / QK_K)
            .map(|_| BlockQ2K {
                scales: std::array::from_fn(|_| next() as u8),
                qs: std::array::from_fn(|_| next() as u8),
                d: half::f16::from_f32(0.01 + (next() % 100) as f32 * 1e-4).to_le_bytes(),
                dmin: half::f16::from_f32(0.005 + (next() % 100) as f32 * 1e-4).to_le_bytes(),
            })
            .collect();
        let x: Vec<f32> = (0..toks * k).map(|_| (next() % 20001) as f32 / 1000.0 - 10.0).collect();
        let mut a = Q8Rows::new();
        a.quantize_as(&x, k, ActFormat::Q8K);
        for (tiled, n) in [(true, toks), (false, 1)] {
            let mut a1 = Q8Rows::new();
            a1.quantize_as(&x[..n * k], k, ActFormat::Q8K);
            let a = if n == toks { &a } else { &a1 };
            assert_eq!(a.n() >= TILED_MIN_TOKENS, tiled);
            let mut got = vec![0f32; rows * n];
            gemm(&blocks, k / QK_K, a, |r, t, v| got[r * n + t] = v);
            for t in 0..n {
                let mut q8: Vec<_> = (0..k / QK_K).map(|_| BlockQ8K::new(0.0, [0; QK_K])).collect();
                quantize_row_q8_k(&x[t * k..(t + 1) * k], &mut q8);
                for r in 0..rows {
                    let row = &blocks[r * k / QK_K..(r + 1) * k / QK_K];
                    let (want, mag) = crate::quant::q8_k::vec_dot_row_q8_k(row, &q8);
                    let v = got[r * n + t];
                    assert!((v - want).abs() <= 64.0 * f32::EPSILON * mag, "tiled {tiled} r {r} t {t}: {v} vs {want}");
                }
            }
        }
    }
}
