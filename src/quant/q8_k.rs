//! Activations quantized the way llama.cpp's CPU backend (ggml-cpu) quantizes them for each weight
//! type, and the q8_K dot products of the k-quants and IQ4_XS.
//!
//! ggml-cpu multiplies a quantized weight with its `vec_dot_type` (`type_traits_cpu` in
//! `ggml-cpu.c`): Q4_0, Q5_0, Q8_0 and IQ4_NL with Q8_0 activations, Q4_1 and Q5_1 with Q8_1,
//! Q2_K…Q6_K and IQ4_XS with Q8_K. [`ActFormat`] names each, and [`super::Q8Rows::quantize_as`]
//! quantizes to it with the quantizer ggml-cpu runs on this host:
//!
//! - Q8_0 / Q8_1 (`arch/x86/quants.c` `quantize_row_q8_0` / `_q8_1`, the AVX2 code every x86-64
//!   build with AVX2 runs): 32 values, d = max|x| / 127 stored in f16, q = x·(127 / max|x|)
//!   rounded to nearest, ties to even (`_mm256_round_ps(…, _MM_ROUND_NEAREST)`); on aarch64
//!   (`arch/arm/quants.c`) x·(1/d), also ties to even. Q8_1's s = d·Σq in f16 from the f32 d.
//!   These differ from `quantize_row_q8_1_ref` (x·(1/d), ties away from zero), which
//!   [`ActFormat::Q8_1Ref`] keeps for the GPU kernels.
//! - Q8_K (`quantize_row_q8_K_ref`, which `quantize_row_q8_K` calls on x86 and ARM): 256 values,
//!   `max` the signed value of the first largest |x|, iscale = −127 / max, q = min(127,
//!   nearest_int(iscale·x)) (ties to even), d = 1 / iscale in f32, `bsums` the sums of each 16.
//!
//! A Q8_K block is held in [`super::Q8Rows`] as eight 32-value blocks that share its f32 d, so
//! every int8 kernel (scalar, SIMD, AMX) computes the q8_K product with the same integer sums as
//! llama.cpp. [`VecDotQ8K`] is the scalar reference of that product, written from ggml's
//! `ggml_vec_dot_*_q8_K`: per super-block two integer sums, Σ_g sc_g·Σ w·q and Σ_g m_g·bsum_g, then
//! (d8·d)·Σ − (d8·dmin)·Σ.

use super::vec_dot::DotTerms;
use super::Block;
use crate::dtype::{GgmlType, QK_K};

/// How activations are quantized before an int8 matrix product.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ActFormat {
    /// `quantize_row_q8_1_ref`: what the GPU kernels quantize to and are held to on the CPU.
    #[default]
    Q8_1Ref,
    /// ggml-cpu's Q8_0 (f16 d per 32, ties to even; s = d·Σq exactly).
    Q8_0,
    /// ggml-cpu's Q8_1 (as Q8_0, s = d·Σq in f16).
    Q8_1,
    /// ggml-cpu's Q8_K (f32 d per 256, ties to even).
    Q8K,
}

impl ActFormat {
    /// Every format, in the order [`ActFormat::index`] numbers them.
    pub const ALL: [ActFormat; 4] = [ActFormat::Q8_1Ref, ActFormat::Q8_0, ActFormat::Q8_1, ActFormat::Q8K];

    /// The format ggml-cpu quantizes activations to for weights of `ty` (its `vec_dot_type`), for
    /// the weight types with an int8 dot here.
    pub fn ggml_cpu(ty: GgmlType) -> Option<ActFormat> {
        match ty {
            GgmlType::Q4_0 | GgmlType::Q5_0 | GgmlType::Q8_0 | GgmlType::IQ4_NL => Some(ActFormat::Q8_0),
            GgmlType::Q4_1 | GgmlType::Q5_1 => Some(ActFormat::Q8_1),
            GgmlType::Q2_K | GgmlType::Q3_K | GgmlType::Q4_K | GgmlType::Q5_K | GgmlType::Q6_K | GgmlType::IQ4_XS => {
                Some(ActFormat::Q8K)
            }
            _ => None,
        }
    }

    /// Values per scale.
    pub const fn block(self) -> usize {
        match self {
            ActFormat::Q8K => QK_K,
            _ => 32,
        }
    }

    pub const fn index(self) -> usize {
        self as usize
    }

    pub fn name(self) -> &'static str {
        match self {
            ActFormat::Q8_1Ref => "q8_1 (ref)",
            ActFormat::Q8_0 => "q8_0",
            ActFormat::Q8_1 => "q8_1",
            ActFormat::Q8K => "q8_K",
        }
    }
}

/// ggml's `block_q8_K`: f32 `d`, 256 quants, the sums of each 16 quants (all little-endian).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockQ8K {
    pub d: [u8; 4],
    pub qs: [i8; QK_K],
    pub bsums: [[u8; 2]; QK_K / 16],
}
const _: () = assert!(std::mem::size_of::<BlockQ8K>() == 4 + QK_K + QK_K / 16 * 2);

impl BlockQ8K {
    pub fn d(&self) -> f32 {
        f32::from_le_bytes(self.d)
    }

    pub fn bsum(&self, g: usize) -> i32 {
        i16::from_le_bytes(self.bsums[g]) as i32
    }

    /// The block of quants `qs` under scale `d`, its sums computed.
    pub fn new(d: f32, qs: [i8; QK_K]) -> BlockQ8K {
        let bsums = std::array::from_fn(|g| {
            let s: i32 = qs[16 * g..16 * g + 16].iter().map(|&q| q as i32).sum();
            (s as i16).to_le_bytes()
        });
        BlockQ8K { d: d.to_le_bytes(), qs, bsums }
    }
}

/// ggml's `nearest_int`: the f32 sum with 1.5·2²³ rounds to an integer (to nearest, ties to even)
/// held in the low mantissa bits. Exact for |v| < 2²².
#[inline(always)]
pub(crate) fn nearest_int(v: f32) -> i32 {
    ((v + 12_582_912.0).to_bits() & 0x007F_FFFF) as i32 - 0x0040_0000
}

/// One block of `quantize_row_q8_K_ref`.
pub fn quantize_block_q8_k(x: &[f32]) -> BlockQ8K {
    assert_eq!(x.len(), QK_K, "a q8_K block holds 256 values");
    let (mut amax, mut max) = (0f32, 0f32);
    for &v in x {
        if v.abs() > amax {
            amax = v.abs();
            max = v;
        }
    }
    if amax == 0.0 {
        return BlockQ8K::new(0.0, [0; QK_K]);
    }
    let iscale = -127.0 / max;
    let qs = std::array::from_fn(|j| nearest_int(iscale * x[j]).min(127) as i8);
    BlockQ8K::new(1.0 / iscale, qs)
}

/// `quantize_row_q8_K_ref` over a row whose length is a multiple of 256.
pub fn quantize_row_q8_k(x: &[f32], out: &mut [BlockQ8K]) {
    assert_eq!(x.len(), out.len() * QK_K, "one q8_K block per 256 values");
    for (b, chunk) in out.iter_mut().zip(x.chunks_exact(QK_K)) {
        *b = quantize_block_q8_k(chunk);
    }
}

/// A 32-value block as ggml-cpu's Q8_0/Q8_1 quantizer makes it: (d widened from f16, the f32 d
/// before rounding, the quants).
#[inline(always)]
pub(crate) fn quantize_32_ggml_cpu(x: &[f32; 32]) -> (f32, f32, [i8; 32]) {
    // max|x| as the largest bit pattern of |x| (integer maxima vectorize; same order for floats
    // that are not NaN).
    let amax = f32::from_bits(x.iter().fold(0u32, |m, v| m.max(v.to_bits() & 0x7FFF_FFFF)));
    let d = amax / 127.0;
    #[cfg(not(target_arch = "aarch64"))]
    let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
    #[cfg(target_arch = "aarch64")]
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    let qs = std::array::from_fn(|j| nearest_int(x[j] * id) as i8);
    (half::f16::from_f32(d).to_f32(), d, qs)
}

/// A weight super-block in the terms of ggml's q8_K dot products: signed integers `w`, an integer
/// scale `sc` and minimum `m` per 16 values, and the f32 factors of Σ sc·Σ w·q and Σ m·bsum.
pub struct KParts {
    pub w: [i32; QK_K],
    pub sc: [i32; 16],
    pub m: [i32; 16],
    pub d: f32,
    pub dmin: f32,
}

/// A weight format ggml-cpu multiplies with Q8_K activations.
pub trait VecDotQ8K: Block {
    /// This super-block's integers and scales.
    fn k_parts(&self) -> KParts;

    /// Σ w·x of this super-block with one Q8_K block, as ggml's `ggml_vec_dot_*_q8_K`: the two
    /// integer sums exact in i32, then (d8·d)·Σ sc·Σ w·q − (d8·dmin)·Σ m·bsum; with the
    /// magnitude of the terms the SIMD kernels add.
    fn vec_dot_q8_k_terms(&self, a: &BlockQ8K) -> DotTerms {
        let p = self.k_parts();
        let (mut isum, mut iabs, mut msum, mut mabs) = (0i32, 0i32, 0i32, 0i32);
        for g in 0..16 {
            let (w, q) = (&p.w[16 * g..16 * g + 16], &a.qs[16 * g..16 * g + 16]);
            let dot: i32 = w.iter().zip(q).map(|(&w, &q)| w * q as i32).sum();
            let abs: i32 = w.iter().zip(q).map(|(&w, &q)| (w * q as i32).abs()).sum();
            isum += p.sc[g] * dot;
            iabs += p.sc[g].abs() * abs;
            msum += p.m[g] * a.bsum(g);
            mabs += p.m[g].abs() * a.bsum(g).abs();
        }
        let (dd, dm) = (a.d() * p.d, a.d() * p.dmin);
        DotTerms {
            value: dd * isum as f32 - dm * msum as f32,
            magnitude: (dd * iabs as f32).abs() + (dm * mabs as f32).abs(),
        }
    }
}

/// Σ w·a over one row of super-blocks against one row of Q8_K blocks, summed in order, with the
/// magnitude of the terms.
pub fn vec_dot_row_q8_k<B: VecDotQ8K>(row: &[B], a: &[BlockQ8K]) -> (f32, f32) {
    assert_eq!(row.len(), a.len(), "one activation block per weight super-block");
    row.iter().zip(a).fold((0.0, 0.0), |(v, m), (w, a)| {
        let t = w.vec_dot_q8_k_terms(a);
        (v + t.value, m + t.magnitude)
    })
}

/// [`vec_dot_row_q8_k`] for weights of type `ty` given as bytes (rows of `k` values): one
/// (value, magnitude) per weight row and activation row, `out[r·n + t]`.
pub fn matmul_q8_k_reference(
    ty: GgmlType,
    w: &[u8],
    k: usize,
    a: &[BlockQ8K],
) -> Result<Vec<(f32, f32)>, super::QuantError> {
    fn go<B: VecDotQ8K>(w: &[u8], k: usize, a: &[BlockQ8K]) -> Result<Vec<(f32, f32)>, super::QuantError> {
        let blocks = super::blocks::<B>(w)?;
        let per_row = k / QK_K;
        let rows = a.chunks_exact(per_row);
        Ok(blocks.chunks_exact(per_row).flat_map(|row| rows.clone().map(move |t| vec_dot_row_q8_k(row, t))).collect())
    }
    if k == 0 || !k.is_multiple_of(QK_K) || !a.len().is_multiple_of(k / QK_K) {
        return Err(super::QuantError::PartialOutput { ty, n_elems: k, block_elems: QK_K });
    }
    match ty {
        GgmlType::Q2_K => go::<super::BlockQ2K>(w, k, a),
        GgmlType::Q3_K => go::<super::BlockQ3K>(w, k, a),
        GgmlType::Q4_K => go::<super::BlockQ4K>(w, k, a),
        GgmlType::Q5_K => go::<super::BlockQ5K>(w, k, a),
        GgmlType::Q6_K => go::<super::BlockQ6K>(w, k, a),
        GgmlType::IQ4_XS => go::<super::BlockIQ4XS>(w, k, a),
        other => Err(super::QuantError::Unsupported(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_int_rounds_ties_to_even() {
        let cases = [(0.5, 0), (1.5, 2), (2.5, 2), (-0.5, 0), (-1.5, -2), (-2.5, -2), (126.6, 127), (-127.0, -127)];
        for (v, want) in cases {
            assert_eq!(nearest_int(v), want, "nearest_int({v})");
            assert_eq!(want as f32, v.round_ties_even(), "{v}");
        }
    }

    #[test]
    fn a_q8_k_block_takes_the_sign_of_its_first_largest_value() {
        let mut x = [0f32; QK_K];
        x[3] = -127.0;
        x[7] = 127.0;
        x[9] = 62.5;
        x[10] = -2.5;
        let b = quantize_block_q8_k(&x);
        // max = −127 (the first of the two largest), iscale = −127/max = 1, d = 1 (the second
        // would give iscale −1, d −1 and every quant negated); halves round to even.
        assert_eq!(b.d(), 1.0);
        assert_eq!((b.qs[3], b.qs[7], b.qs[9], b.qs[10]), (-127, 127, 62, -2));
        assert_eq!(b.bsum(0), 60, "−127 + 127 + 62 − 2");
        assert_eq!(quantize_block_q8_k(&[0.0; QK_K]), BlockQ8K::new(0.0, [0; QK_K]));
    }

    #[test]
    fn ggml_cpu_q8_0_rounds_ties_to_even() {
        let mut x = [0f32; 32];
        x[0] = 127.0;
        x[1] = 2.5;
        x[2] = -3.5;
        x[3] = 0.5;
        let (dw, d, qs) = quantize_32_ggml_cpu(&x);
        assert_eq!((dw, d), (1.0, 1.0));
        assert_eq!((qs[0], qs[1], qs[2], qs[3]), (127, 2, -4, 0));
    }
}
