//! Q3_K: 256 three-bit values around 4 in sixteen 16-value groups with 6-bit scales around 32,
//! under an f16 `d`; w = (d·(sc − 32))·q with q ∈ −4..3. Element e = 128h + 32j + l takes its low
//! two bits from bits 2j..2j+2 of `qs[32h + l]`, and q = low − 4 unless bit e/32 of `hmask[l]`
//! is set. Scale s: low nibble from `scales[s % 8]` (high nibble for s ≥ 8), top two bits from
//! bits 2·(s/4).. of `scales[8 + s % 4]`.

use super::q8_1::Q8Slice;
use super::q8_k::{KParts, VecDotQ8K};
use super::vec_dot::{halves_idot, DotTerms, SumTerm, VecDotQ8_1};
use super::{f16_le, Block};
use crate::dtype::{GgmlType, QK_K};

#[repr(C)]
pub struct BlockQ3K {
    pub hmask: [u8; QK_K / 8],
    pub qs: [u8; QK_K / 4],
    pub scales: [u8; 12],
    pub d: [u8; 2],
}
const _: () = assert!(std::mem::size_of::<BlockQ3K>() == QK_K / 8 + QK_K / 4 + 12 + 2);

/// The sixteen 6-bit scales of a Q3_K block, minus 32.
pub fn q3_k_scales(s: &[u8; 12]) -> [i32; 16] {
    std::array::from_fn(|g| {
        let lo = (s[g % 8] >> (4 * (g / 8))) & 0x0F;
        let hi = (s[8 + g % 4] >> (2 * (g / 4))) & 0x03;
        (lo | (hi << 4)) as i32 - 32
    })
}

impl BlockQ3K {
    /// The 32 signed quants (−4..3) of activation block b (elements 32b..32b+32).
    #[inline]
    fn quants(&self, b: usize) -> [i32; 32] {
        let (h, j) = (b / 4, b % 4);
        std::array::from_fn(|l| {
            let low = ((self.qs[32 * h + l] >> (2 * j)) & 3) as i32;
            let high = (self.hmask[l] >> b) & 1;
            low - if high == 0 { 4 } else { 0 }
        })
    }
}

// SAFETY: repr(C) of byte arrays; every bit pattern is a valid block.
unsafe impl Block for BlockQ3K {
    const TYPE: GgmlType = GgmlType::Q3_K;
    const ELEMS: usize = QK_K;

    fn dequantize(&self, out: &mut [f32]) {
        let d = f16_le(self.d);
        let sc = q3_k_scales(&self.scales);
        for b in 0..8 {
            for (l, q) in self.quants(b).into_iter().enumerate() {
                out[32 * b + l] = d * sc[2 * b + l / 16] as f32 * q as f32;
            }
        }
    }
}

impl VecDotQ8_1 for BlockQ3K {
    // q + 32 as the unpacked byte: the bias the SIMD kernels already take for Q6_K.
    const BIAS: u8 = 32;
    const SUM_TERM: SumTerm = SumTerm::None;

    /// Per activation block, the two 16-value groups' sums times their scales in integers, times
    /// d8, then d·Σ (`vec_dot_q3_K_q8_1_impl_mmq`); |Σ| ≤ 2·16·4·127·32 < 2^24.
    fn vec_dot_q8_1_terms(&self, a: Q8Slice<'_>) -> DotTerms {
        let d = f16_le(self.d);
        let sc = q3_k_scales(&self.scales);
        let (mut sumf, mut mag) = (0f32, 0f32);
        for b in 0..8 {
            let (isum, iabs) = halves_idot(&a, b, &self.quants(b), [sc[2 * b], sc[2 * b + 1]]);
            sumf += a.d[b] * isum as f32;
            mag += a.d[b] * iabs as f32;
        }
        DotTerms { value: d * sumf, magnitude: (d * mag).abs() }
    }

    fn unpack(&self, u: &mut [u8], lane_scale: &mut [f32], offset: &mut [f32]) {
        let d = f16_le(self.d);
        for b in 0..8 {
            for (o, q) in u[b * 32..(b + 1) * 32].iter_mut().zip(self.quants(b)) {
                *o = (q + 32) as u8;
            }
            offset[b] = 0.0;
        }
        for (g, s) in q3_k_scales(&self.scales).into_iter().enumerate() {
            lane_scale[4 * g..4 * g + 4].fill(d * s as f32);
        }
    }
}

impl VecDotQ8K for BlockQ3K {
    /// Signed 3-bit quants, the 6-bit scales minus 32 per 16, no minimums.
    fn k_parts(&self) -> KParts {
        let mut w = [0i32; QK_K];
        for b in 0..8 {
            w[32 * b..32 * b + 32].copy_from_slice(&self.quants(b));
        }
        KParts { w, sc: q3_k_scales(&self.scales), m: [0; 16], d: f16_le(self.d), dmin: 0.0 }
    }
}
