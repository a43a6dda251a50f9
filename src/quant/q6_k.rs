//! Q6_K: 256 six-bit values around 32 in sixteen 16-value groups, each with an i8 scale, under an
//! f16 `d`; w = (d·sc)·(q − 32). Each 128-value half h takes low bits from `ql[64h..64h+64]`
//! (low nibbles, then high) and two high bits from `qh[32h..32h+32]` (shifts 0, 2, 4, 6).

use super::q8_1::Q8Slice;
use super::q8_k::{KParts, VecDotQ8K};
use super::vec_dot::{halves_idot, DotTerms, SumTerm, VecDotQ8_1};
use super::{f16_le, Block};
use crate::dtype::{GgmlType, QK_K};

#[repr(C)]
pub struct BlockQ6K {
    pub ql: [u8; QK_K / 2],
    pub qh: [u8; QK_K / 4],
    pub scales: [u8; QK_K / 16],
    pub d: [u8; 2],
}
const _: () = assert!(std::mem::size_of::<BlockQ6K>() == QK_K / 2 + QK_K / 4 + QK_K / 16 + 2);

// SAFETY: repr(C) of byte arrays; every bit pattern is a valid block.
unsafe impl Block for BlockQ6K {
    const TYPE: GgmlType = GgmlType::Q6_K;
    const ELEMS: usize = QK_K;

    fn dequantize(&self, out: &mut [f32]) {
        let d = f16_le(self.d);
        let mut group_scale = [0f32; 16];
        for (g, &s) in group_scale.iter_mut().zip(&self.scales) {
            *g = d * (s as i8) as f32;
        }
        for half in 0..2 {
            let ql = &self.ql[64 * half..64 * half + 64];
            let qh = &self.qh[32 * half..32 * half + 32];
            // Quarter k of this half: low nibble (k < 2) or high nibble (k >= 2) of
            // ql[32·(k % 2) + l], with bits 2k..2k+2 of qh[l] on top.
            for k in 0..4 {
                for l in 0..32 {
                    let lo = (ql[32 * (k % 2) + l] >> (4 * (k / 2))) & 0x0F;
                    let hi = (qh[l] >> (2 * k)) & 0x03;
                    let q = (lo | (hi << 4)) as i8 - 32;
                    let e = 128 * half + 32 * k + l;
                    out[e] = group_scale[e / 16] * q as f32;
                }
            }
        }
    }
}

impl BlockQ6K {
    /// The 32 unsigned 6-bit quants of activation block b (elements 32b..32b+32): half h = b/4,
    /// quarter k = b%4 of the layout in this file's header.
    #[inline]
    fn quants(&self, b: usize) -> [i32; 32] {
        let (half, k) = (b / 4, b % 4);
        std::array::from_fn(|l| {
            let lo = (self.ql[64 * half + 32 * (k % 2) + l] >> (4 * (k / 2))) & 0x0F;
            let hi = (self.qh[32 * half + l] >> (2 * k)) & 0x03;
            (lo | (hi << 4)) as i32
        })
    }
}

impl VecDotQ8_1 for BlockQ6K {
    const BIAS: u8 = 32;
    const SUM_TERM: SumTerm = SumTerm::None;

    /// Per activation block, the two 16-value groups' sums times their scales in integers
    /// (`vec_dot_q6_K_q8_1_impl_mmq`); |Σ| ≤ 2·16·32·127·128 < 2^24, exact in f32.
    fn vec_dot_q8_1_terms(&self, a: Q8Slice<'_>) -> DotTerms {
        let d = f16_le(self.d);
        let (mut sumf, mut mag) = (0f32, 0f32);
        for b in 0..8 {
            let w = self.quants(b).map(|u| u - 32);
            let sc = [self.scales[2 * b] as i8 as i32, self.scales[2 * b + 1] as i8 as i32];
            let (isum, iabs) = halves_idot(&a, b, &w, sc);
            sumf += a.d[b] * isum as f32;
            mag += a.d[b] * iabs as f32;
        }
        DotTerms { value: d * sumf, magnitude: (d * mag).abs() }
    }

    fn unpack(&self, u: &mut [u8], lane_scale: &mut [f32], offset: &mut [f32]) {
        let d = f16_le(self.d);
        for b in 0..8 {
            for (o, q) in u[b * 32..(b + 1) * 32].iter_mut().zip(self.quants(b)) {
                *o = q as u8;
            }
            lane_scale[b * 8..b * 8 + 4].fill(d * self.scales[2 * b] as i8 as f32);
            lane_scale[b * 8 + 4..b * 8 + 8].fill(d * self.scales[2 * b + 1] as i8 as f32);
            offset[b] = 0.0;
        }
    }
}

impl VecDotQ8K for BlockQ6K {
    /// The 6-bit quants minus 32, the i8 scale per 16, no minimums.
    fn k_parts(&self) -> KParts {
        let mut w = [0i32; QK_K];
        for b in 0..8 {
            w[32 * b..32 * b + 32].copy_from_slice(&self.quants(b).map(|u| u - 32));
        }
        KParts { w, sc: self.scales.map(|s| s as i8 as i32), m: [0; 16], d: f16_le(self.d), dmin: 0.0 }
    }
}
