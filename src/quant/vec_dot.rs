//! Weight blocks dotted with Q8_1 activations in integers: the contract each quantized format
//! carries (as candle's `GgmlType::VecDotType` and llama.cpp's `vec_dot_*_q8_1`).
//!
//! For each 32-value activation block the weight's integer quants are multiplied with the
//! activation's int8 quants and summed exactly in i32; the sums are then combined in f32 with the
//! weight's and the activation's scales. The integer sums and the f32 combine follow llama.cpp's
//! CUDA `vec_dot_*_q8_1` (`ggml-cuda/vecdotq.cuh`), so the GPU int8 kernels are held to this code:
//!
//! | weight | per 32-value activation block b (d8 = d, s8 = s of the Q8_1 block) |
//! | --- | --- |
//! | Q8_0 | (d·d8)·Σ q·a |
//! | Q4_0 / Q5_0 | d·(d8·Σ u·a − 8·s8) / d·(d8·Σ u·a − 16·s8), u the unsigned 4/5-bit quant |
//! | Q4_1 / Q5_1 | (d·d8)·Σ u·a + m·s8 |
//! | Q4_K / Q5_K | d·Σ_b d8·(sc_b·Σ u·a) − dmin·Σ_b d8·(m_b·Σ a) over a super-block's 8 sub-blocks |
//! | Q6_K | d·Σ_b d8·(sc_2b·Σ (u−32)·a + sc_2b+1·Σ (u−32)·a), the two 16-value groups of block b summed in integers as `vec_dot_q6_K_q8_1_impl_mmq` does |
//! | Q3_K | as Q6_K with the signed 3-bit quants q and scales sc − 32 |
//! | Q2_K | d·Σ_b d8·(sc_2b·Σ q·a + sc_2b+1·Σ q·a) − dmin·Σ_b d8·(m_2b·Σ a + m_2b+1·Σ a), sums over the 16-value halves of block b |
//! | IQ4_NL | (d·d8)·Σ t·a, t = `kvalues_iq4nl`[q] |
//! | IQ4_XS | Σ_b (d·d8)·((sc_b − 32)·Σ t·a) over the 8 sub-blocks |
//!
//! Every integer sum and product of integers above fits in 24 bits, so its conversion to f32 is
//! exact. A row's value is the blocks' values summed in order (the scalar reference); SIMD kernels
//! sum in other orders and are held to it within f32 rounding of the combine.
//!
//! The SIMD kernels read a weight row in one unpacked form, whatever its format: per weight an
//! unsigned byte `u` (the weight's integer is `u − BIAS`), per group of 4 weights an f32 scale,
//! and per 32-value block the coefficient of the activation block's sum term.

use super::q8_1::{Q8Rows, Q8Slice, QK8_1};
use super::{Block, QuantError};
use crate::dtype::GgmlType;

/// A block's value and the sum of the absolute values of the f32 terms its combine adds (what
/// rounding error of a reordered combine is measured against).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct DotTerms {
    pub value: f32,
    pub magnitude: f32,
}

/// Which activation sum a block's offset term multiplies.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SumTerm {
    /// No offset term (signed weights).
    #[default]
    None,
    /// The stored f16 `s` of the Q8_1 block (Q4_0, Q4_1, Q5_0, Q5_1, as vecdotq).
    S,
    /// d·Σq from the integer sum (the k-quants' minimums, as vecdotq's `dp4a(0x01010101, u)`).
    DSum,
    /// d·Σq of each 16-value half of a block (Q2_K's per-group minimums): offsets come one per
    /// 16 values instead of one per 32.
    DSum16,
}

impl SumTerm {
    /// Values per offset of the unpacked form (32, or 16 for [`SumTerm::DSum16`]).
    pub const fn group(self) -> usize {
        match self {
            SumTerm::DSum16 => 16,
            _ => QK8_1,
        }
    }
}

/// A weight format's int8 dot product with Q8_1 activations.
pub trait VecDotQ8_1: Block {
    /// The unpacked byte `u` stands for the integer `u − BIAS` (0, 32 or 128).
    const BIAS: u8;
    /// The activation sum the per-block offsets of [`VecDotQ8_1::unpack`] multiply.
    const SUM_TERM: SumTerm;

    /// Σ w·a of this block with the `ELEMS / 32` activation blocks of `a`, combined as the table in
    /// this module's header says, with the magnitude of its terms.
    fn vec_dot_q8_1_terms(&self, a: Q8Slice<'_>) -> DotTerms;

    /// Σ w·a of this block with its activation blocks (the scalar reference).
    #[inline]
    fn vec_dot_q8_1(&self, a: Q8Slice<'_>) -> f32 {
        self.vec_dot_q8_1_terms(a).value
    }

    /// Writes the block's unpacked form: `u[..ELEMS]` the biased weight integers,
    /// `lane_scale[..ELEMS / 4]` the f32 scale of each group of 4, `offset[..ELEMS / G]` the
    /// coefficient of each sum term (G = `SUM_TERM.group()`: one per activation block, or per
    /// half block for [`SumTerm::DSum16`]). Then for every activation block b,
    /// Σ_{j in b} (u_j − BIAS)·a_j·lane_scale[j/4]·d8_b + Σ offset·sum over its groups equals the
    /// reference combine up to f32 rounding.
    fn unpack(&self, u: &mut [u8], lane_scale: &mut [f32], offset: &mut [f32]);

    /// The block's scale and its 32 signed integer weights in element order, for the formats
    /// ggml-cpu dots with Q8_0 activations in eight lanes of four (Q4_0, Q5_0, Q8_0, IQ4_NL;
    /// see [`super::q8_0_lanes`]); `None` for the others.
    fn scale_and_signed(&self) -> Option<(f32, [i8; QK8_1])> {
        None
    }
}

/// Σ |u_j · a_j| over 32 integers (the magnitude helpers' integer part).
#[inline]
pub(crate) fn abs_idot(a: &Q8Slice<'_>, b: usize, u: &[i32; QK8_1]) -> i32 {
    a.qs[b * QK8_1..(b + 1) * QK8_1].iter().zip(u).map(|(&q, &w)| (q as i32 * w).abs()).sum()
}

/// Activation block b dotted in integers with 32 weights whose two halves of 16 take the scales
/// `sc` (Q2_K, Q3_K, Q6_K): (Σ_h sc_h·Σ w·a, Σ_h |sc_h|·Σ |w·a|), the value and magnitude parts.
#[inline]
pub(crate) fn halves_idot(a: &Q8Slice<'_>, b: usize, w: &[i32; QK8_1], sc: [i32; 2]) -> (i32, i32) {
    let (mut lo, mut hi) = (*w, *w);
    lo[16..].fill(0);
    hi[..16].fill(0);
    let value = sc[0] * a.idot(b, &lo) + sc[1] * a.idot(b, &hi);
    let magnitude = sc[0].abs() * abs_idot(a, b, &lo) + sc[1].abs() * abs_idot(a, b, &hi);
    (value, magnitude)
}

/// Σ |a_j| over activation block b.
#[inline]
pub(crate) fn abs_qsum(a: &Q8Slice<'_>, b: usize) -> i32 {
    a.qs[b * QK8_1..(b + 1) * QK8_1].iter().map(|&q| (q as i32).abs()).sum()
}

/// Calls `$f::<Block>(args)` for a weight type with an int8 dot.
macro_rules! by_vec_dot_type {
    ($ty:expr, $f:ident, $($arg:expr),*) => {
        match $ty {
            GgmlType::Q8_0 => $f::<super::BlockQ8_0>($($arg),*),
            GgmlType::Q4_0 => $f::<super::BlockQ4_0>($($arg),*),
            GgmlType::Q4_1 => $f::<super::BlockQ4_1>($($arg),*),
            GgmlType::Q5_0 => $f::<super::BlockQ5_0>($($arg),*),
            GgmlType::Q5_1 => $f::<super::BlockQ5_1>($($arg),*),
            GgmlType::Q4_K => $f::<super::BlockQ4K>($($arg),*),
            GgmlType::Q5_K => $f::<super::BlockQ5K>($($arg),*),
            GgmlType::Q6_K => $f::<super::BlockQ6K>($($arg),*),
            GgmlType::Q2_K => $f::<super::BlockQ2K>($($arg),*),
            GgmlType::Q3_K => $f::<super::BlockQ3K>($($arg),*),
            GgmlType::IQ4_NL => $f::<super::BlockIQ4NL>($($arg),*),
            GgmlType::IQ4_XS => $f::<super::BlockIQ4XS>($($arg),*),
            other => Err(QuantError::Unsupported(other)),
        }
    };
}

/// The weight rows of `k` values of `ty` in `w` as blocks, checked whole.
fn weight_rows<'w, B: VecDotQ8_1>(w: &'w [u8], k: usize, a: &Q8Rows) -> Result<(usize, &'w [B]), QuantError> {
    let (elems, ty) = (B::ELEMS, B::TYPE);
    if k == 0 || !k.is_multiple_of(elems) || a.k() != k || a.n() == 0 {
        return Err(QuantError::PartialOutput { ty, n_elems: k, block_elems: elems });
    }
    let blocks = super::blocks::<B>(w)?;
    let per_row = k / elems;
    if !blocks.len().is_multiple_of(per_row) {
        return Err(QuantError::PartialBlock { ty, len: w.len(), block_bytes: per_row * ty.block_bytes() });
    }
    Ok((per_row, blocks))
}

/// `out[r]` = weight row r (rows of `k` values of `ty`) dotted with activation row 0 of `a` by
/// the scalar reference ([`VecDotQ8_1::vec_dot_q8_1`], blocks summed in order): the int8 matvec
/// the GPU kernels are held to on the same q8_1 input.
pub fn matvec_q8_1(ty: GgmlType, w: &[u8], k: usize, a: &Q8Rows, out: &mut [f32]) -> Result<(), QuantError> {
    fn go<B: VecDotQ8_1 + Sync>(w: &[u8], k: usize, a: &Q8Rows, out: &mut [f32]) -> Result<(), QuantError> {
        use rayon::prelude::*;
        let (per_row, blocks) = weight_rows::<B>(w, k, a)?;
        // Rows in parallel (each row's sum stays in order): a 7B's decode on the CPU device.
        out.par_iter_mut().zip(blocks.par_chunks_exact(per_row)).for_each(|(o, row)| {
            *o = super::simd::vec_dot_row(row, a, 0);
        });
        Ok(())
    }
    by_vec_dot_type!(ty, go, w, k, a, out)
}

/// `out[t · rows + r]` = weight row r dotted with activation row t of `a` by the scalar reference,
/// for every row of `a` (tokens): the int8 matrix product the GPU's tiled kernel (`mmq`) is held
/// to on the same q8_1 input.
pub fn matmul_q8_1(ty: GgmlType, w: &[u8], k: usize, a: &Q8Rows, out: &mut [f32]) -> Result<(), QuantError> {
    fn go<B: VecDotQ8_1 + Sync>(w: &[u8], k: usize, a: &Q8Rows, out: &mut [f32]) -> Result<(), QuantError> {
        use rayon::prelude::*;
        let (per_row, blocks) = weight_rows::<B>(w, k, a)?;
        let rows = blocks.len() / per_row;
        if out.len() != rows * a.n() {
            return Err(QuantError::LengthMismatch {
                ty: B::TYPE,
                blocks: blocks.len(),
                have: out.len(),
                want: rows * a.n(),
            });
        }
        out.par_chunks_mut(rows.max(1)).enumerate().for_each(|(t, o)| {
            for (o, row) in o.iter_mut().zip(blocks.chunks_exact(per_row)) {
                *o = super::simd::vec_dot_row(row, a, t);
            }
        });
        Ok(())
    }
    by_vec_dot_type!(ty, go, w, k, a, out)
}

/// Per weight row, the reference's combine done in f64 from the same integers and scales (the
/// unpacked form, whose scales are exact products of the stored ones), and the sum of the
/// absolute values of its terms: what the tests' error bounds are measured against.
pub fn matvec_q8_1_exact(ty: GgmlType, w: &[u8], k: usize, a: &Q8Rows) -> Result<Vec<(f64, f64)>, QuantError> {
    fn go<B: VecDotQ8_1>(w: &[u8], k: usize, a: &Q8Rows) -> Result<Vec<(f64, f64)>, QuantError> {
        let (per_row, blocks) = weight_rows::<B>(w, k, a)?;
        let mut un = super::simd::Unpacked::default();
        let nb = k / QK8_1;
        Ok(blocks
            .chunks_exact(per_row)
            .map(|row| {
                un.unpack_blocks(row);
                let (mut value, mut magnitude) = (0f64, 0f64);
                for b in 0..nb {
                    let d8 = a.d[b] as f64;
                    for j in 32 * b..32 * b + 32 {
                        let t = (un.u[j] as f64 - un.bias as f64) * a.qs[j] as f64 * un.lane_scale[j / 4] as f64 * d8;
                        value += t;
                        magnitude += t.abs();
                    }
                    let sums = match un.sum_term {
                        SumTerm::None => [(0.0, 0.0); 2],
                        SumTerm::S => [(un.offset[b] as f64, a.s[b] as f64), (0.0, 0.0)],
                        SumTerm::DSum => [(un.offset[b] as f64, d8 * a.qsum[b] as f64), (0.0, 0.0)],
                        SumTerm::DSum16 => {
                            let half = |h: usize| -> f64 {
                                a.qs[32 * b + 16 * h..32 * b + 16 * h + 16].iter().map(|&q| q as f64).sum()
                            };
                            [(un.offset[2 * b] as f64, d8 * half(0)), (un.offset[2 * b + 1] as f64, d8 * half(1))]
                        }
                    };
                    for (o, sum) in sums {
                        let t = o * sum;
                        value += t;
                        magnitude += t.abs();
                    }
                }
                (value, magnitude)
            })
            .collect())
    }
    by_vec_dot_type!(ty, go, w, k, a)
}
