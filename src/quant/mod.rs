//! Quantized block formats: the CPU reference for every GPU kernel.
//!
//! Each format is a `#[repr(C)]` struct of byte arrays, laid out exactly as ggml's
//! `ggml-common.h` (sizes asserted at compile time), so a tensor's bytes are viewed as blocks with
//! no copy and no alignment requirement. Dequantization reproduces gguf-py's arithmetic operation
//! for operation (same f32 products in the same order), which makes it bit-exact; the dot product
//! is a plain scalar sum over the dequantized values.
//!
//! The int8 path: activations quantized to [`BlockQ8_1`] (`q8_1`), each weight format's integer
//! dot with them ([`VecDotQ8_1`], the scalar reference) and its SIMD kernels ([`simd`]). The CPU
//! fast path quantizes as llama.cpp's CPU backend does for each weight type instead
//! ([`ActFormat`], `q8_k`: Q8_0, Q8_1 or Q8_K), which the same kernels take.

mod bf16;
mod f16;
mod f32;
mod iq4;
mod q2_k;
pub mod q2_k_ggml;
mod q3_k;
mod q4_0;
mod q4_1;
mod q4_k;
mod q5_0;
mod q5_1;
mod q5_k;
mod q6_k;
mod q8_0;
pub mod q8_0_lanes;
mod q8_1;
mod q8_k;
pub mod simd;
mod vec_dot;

pub use bf16::BlockBF16;
pub use f16::BlockF16;
pub use f32::BlockF32;
pub use iq4::{BlockIQ4NL, BlockIQ4XS, KVALUES_IQ4NL};
pub use q2_k::BlockQ2K;
pub use q3_k::{q3_k_scales, BlockQ3K};
pub use q4_0::BlockQ4_0;
pub use q4_1::BlockQ4_1;
pub use q4_k::{get_scale_min_k4, BlockQ4K};
pub use q5_0::BlockQ5_0;
pub use q5_1::BlockQ5_1;
pub use q5_k::BlockQ5K;
pub use q6_k::BlockQ6K;
pub use q8_0::BlockQ8_0;
pub use q8_1::{quantize_block_q8_1, quantize_row_q8_1, BlockQ8_1, Q8Rows, Q8Slice, QK8_1};
pub use q8_k::{
    matmul_q8_k_reference, quantize_block_q8_k, quantize_row_q8_k, vec_dot_row_q8_k, ActFormat, BlockQ8K, KParts,
    VecDotQ8K,
};
pub use simd::{gemm_f32, gemm_f32_into, gemm_q8_1, gemm_q8_1_into, gemm_q8_1_with, Isa, Kernel, OutMatrix};
pub use vec_dot::{matmul_q8_1, matvec_q8_1, matvec_q8_1_exact, DotTerms, SumTerm, VecDotQ8_1};

use crate::dtype::{GgmlType, QK_K};

/// A block of `ELEMS` weights stored in `size_of::<Self>()` bytes.
///
/// # Safety
/// Implementors must be `#[repr(C)]`, contain only `u8` arrays (alignment 1, no padding), and
/// accept every bit pattern: `blocks()` reinterprets arbitrary file bytes as `[Self]`.
pub unsafe trait Block: Sized {
    const TYPE: GgmlType;
    const ELEMS: usize;

    /// Writes the block's `ELEMS` values to `out[..ELEMS]`.
    fn dequantize(&self, out: &mut [f32]);

    /// Σ w·x over the block, `x` holding `ELEMS` activations.
    fn dot(&self, x: &[f32]) -> f32 {
        let mut w = [0f32; QK_K];
        self.dequantize(&mut w[..Self::ELEMS]);
        w[..Self::ELEMS].iter().zip(x).map(|(a, b)| a * b).sum()
    }
}

/// The f16 stored little-endian in `b`, widened to f32 (exactly).
#[inline]
pub(crate) fn f16_le(b: [u8; 2]) -> f32 {
    half::f16::from_le_bytes(b).to_f32()
}

/// Errors from viewing bytes as blocks.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum QuantError {
    #[error("{ty}: {len} bytes is not a whole number of {block_bytes}-byte blocks")]
    PartialBlock { ty: GgmlType, len: usize, block_bytes: usize },
    #[error("{ty}: {n_elems} values do not fill whole blocks of {block_elems}")]
    PartialOutput { ty: GgmlType, n_elems: usize, block_elems: usize },
    #[error("{ty}: {blocks} blocks hold {have} values, but {want} were given")]
    LengthMismatch { ty: GgmlType, blocks: usize, have: usize, want: usize },
    #[error("no CPU dequantizer for type {0}")]
    Unsupported(GgmlType),
}

/// Views `bytes` as blocks of `B`, without copying.
pub fn blocks<B: Block>(bytes: &[u8]) -> Result<&[B], QuantError> {
    let size = std::mem::size_of::<B>();
    if !bytes.len().is_multiple_of(size) {
        return Err(QuantError::PartialBlock { ty: B::TYPE, len: bytes.len(), block_bytes: size });
    }
    // SAFETY: `Block` implementors are repr(C) byte arrays: alignment 1, no padding, every bit
    // pattern valid; the length is a whole number of blocks and the lifetime is the input's.
    Ok(unsafe { std::slice::from_raw_parts(bytes.as_ptr().cast::<B>(), bytes.len() / size) })
}

fn check_len<B: Block>(bytes: &[u8], n: usize) -> Result<&[B], QuantError> {
    let b = blocks::<B>(bytes)?;
    if b.len() * B::ELEMS != n {
        return Err(QuantError::LengthMismatch { ty: B::TYPE, blocks: b.len(), have: b.len() * B::ELEMS, want: n });
    }
    Ok(b)
}

fn dequantize_as<B: Block>(bytes: &[u8], out: &mut [f32]) -> Result<(), QuantError> {
    let b = check_len::<B>(bytes, out.len())?;
    for (block, chunk) in b.iter().zip(out.chunks_exact_mut(B::ELEMS)) {
        block.dequantize(chunk);
    }
    Ok(())
}

fn dot_as<B: Block>(bytes: &[u8], x: &[f32]) -> Result<f32, QuantError> {
    let b = check_len::<B>(bytes, x.len())?;
    Ok(b.iter().zip(x.chunks_exact(B::ELEMS)).map(|(block, xs)| block.dot(xs)).sum())
}

macro_rules! by_type {
    ($ty:expr, $f:ident, $($arg:expr),*) => {
        match $ty {
            GgmlType::F32 => $f::<BlockF32>($($arg),*),
            GgmlType::F16 => $f::<BlockF16>($($arg),*),
            GgmlType::BF16 => $f::<BlockBF16>($($arg),*),
            GgmlType::Q8_0 => $f::<BlockQ8_0>($($arg),*),
            GgmlType::Q4_0 => $f::<BlockQ4_0>($($arg),*),
            GgmlType::Q4_1 => $f::<BlockQ4_1>($($arg),*),
            GgmlType::Q5_0 => $f::<BlockQ5_0>($($arg),*),
            GgmlType::Q5_1 => $f::<BlockQ5_1>($($arg),*),
            GgmlType::Q2_K => $f::<BlockQ2K>($($arg),*),
            GgmlType::Q3_K => $f::<BlockQ3K>($($arg),*),
            GgmlType::Q4_K => $f::<BlockQ4K>($($arg),*),
            GgmlType::Q5_K => $f::<BlockQ5K>($($arg),*),
            GgmlType::Q6_K => $f::<BlockQ6K>($($arg),*),
            GgmlType::IQ4_NL => $f::<BlockIQ4NL>($($arg),*),
            GgmlType::IQ4_XS => $f::<BlockIQ4XS>($($arg),*),
            other => Err(QuantError::Unsupported(other)),
        }
    };
}

/// The types with a CPU reference here.
pub const SUPPORTED: &[GgmlType] = &[
    GgmlType::F32,
    GgmlType::F16,
    GgmlType::BF16,
    GgmlType::Q8_0,
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q5_1,
    GgmlType::Q2_K,
    GgmlType::Q3_K,
    GgmlType::Q4_K,
    GgmlType::Q5_K,
    GgmlType::Q6_K,
    GgmlType::IQ4_NL,
    GgmlType::IQ4_XS,
];

/// Dequantizes `bytes` of type `ty` into `out`, which must hold exactly the values they encode.
pub fn dequantize(ty: GgmlType, bytes: &[u8], out: &mut [f32]) -> Result<(), QuantError> {
    by_type!(ty, dequantize_as, bytes, out)
}

/// Dequantizes into a new vector.
pub fn dequantize_to_vec(ty: GgmlType, bytes: &[u8]) -> Result<Vec<f32>, QuantError> {
    let size = ty.block_bytes();
    if !bytes.len().is_multiple_of(size) {
        return Err(QuantError::PartialBlock { ty, len: bytes.len(), block_bytes: size });
    }
    let mut out = vec![0f32; bytes.len() / size * ty.block_elems()];
    dequantize(ty, bytes, &mut out)?;
    Ok(out)
}

/// Σ w·x for one row of weights `bytes` (type `ty`) against f32 activations `x`: the row is
/// dequantized into a per-thread buffer, then summed with four accumulators.
pub fn dot(ty: GgmlType, bytes: &[u8], x: &[f32]) -> Result<f32, QuantError> {
    thread_local! {
        static ROW: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    ROW.with(|row| {
        let mut row = row.borrow_mut();
        row.resize(x.len(), 0.0);
        dequantize(ty, bytes, &mut row)?;
        Ok(dot_f32(&row, x))
    })
}

/// Σ a·b with four accumulators (faster than one running sum, and a little more accurate).
pub fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 4];
    let (ca, cb) = (a.chunks_exact(4), b.chunks_exact(4));
    let tail: f32 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..4 {
            acc[i] += x[i] * y[i];
        }
    }
    (acc[0] + acc[1]) + (acc[2] + acc[3]) + tail
}

/// Σ w·x block by block through each format's own `Block::dot` (the per-block reference).
pub fn dot_by_blocks(ty: GgmlType, bytes: &[u8], x: &[f32]) -> Result<f32, QuantError> {
    by_type!(ty, dot_as, bytes, x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_supported_type_matches_the_ggml_block_size() {
        fn size_of_block(ty: GgmlType) -> usize {
            fn s<B: Block>() -> Result<usize, QuantError> {
                assert_eq!(B::ELEMS, B::TYPE.block_elems());
                Ok(std::mem::size_of::<B>())
            }
            by_type!(ty, s,).unwrap()
        }
        for &ty in SUPPORTED {
            assert_eq!(size_of_block(ty), ty.block_bytes(), "{ty}");
        }
    }

    #[test]
    fn partial_blocks_and_length_mismatches_are_errors() {
        assert!(matches!(dequantize_to_vec(GgmlType::Q4_K, &[0u8; 143]), Err(QuantError::PartialBlock { .. })));
        let mut out = [0f32; 31];
        assert!(matches!(dequantize(GgmlType::Q8_0, &[0u8; 34], &mut out), Err(QuantError::LengthMismatch { .. })));
        assert_eq!(dot(GgmlType::IQ2_XS, &[], &[]), Err(QuantError::Unsupported(GgmlType::IQ2_XS)));
    }

    #[test]
    fn dot_equals_the_sum_over_dequantized_values() {
        // Pseudo-random bytes with small f16 scales, so every type decodes to finite values.
        let mut state = 0x1234_5678u32;
        for &ty in SUPPORTED {
            let mut bytes: Vec<u8> = (0..ty.block_bytes() * 4)
                .map(|_| {
                    state = state.wrapping_mul(1664525).wrapping_add(1013904223);
                    (state >> 24) as u8
                })
                .collect();
            // Clearing the top bits of every odd byte keeps each f16/bf16/f32 scale or value finite
            // and modest (their high bytes sit at odd offsets in every layout).
            for b in bytes.iter_mut().skip(1).step_by(2) {
                *b &= 0x3f;
            }
            let w = dequantize_to_vec(ty, &bytes).unwrap();
            let x: Vec<f32> = (0..w.len()).map(|i| ((i * 7919) % 23) as f32 / 23.0 - 0.5).collect();
            let want: f64 = w.iter().zip(&x).map(|(a, b)| *a as f64 * *b as f64).sum();
            let got = dot(ty, &bytes, &x).unwrap() as f64;
            let by_blocks = dot_by_blocks(ty, &bytes, &x).unwrap() as f64;
            let scale: f64 = w.iter().zip(&x).map(|(a, b)| (*a as f64 * *b as f64).abs()).sum::<f64>().max(1e-30);
            assert!(((got - want) / scale).abs() < 1e-5, "{ty}: dot {got} vs {want}");
            assert!(((by_blocks - want) / scale).abs() < 1e-5, "{ty}: block dot {by_blocks} vs {want}");
        }
    }
}
