//! Q2_K: 256 two-bit values in sixteen 16-value groups, each with a 4-bit scale (low nibble) and
//! a 4-bit minimum (high nibble) under f16 `d` and `dmin`; w = (d·sc)·q − (dmin·m).
//! Element e = 128h + 32j + l takes bits 2j..2j+2 of `qs[32h + l]`; its group is e / 16.

use super::q8_1::Q8Slice;
use super::q8_k::{KParts, VecDotQ8K};
use super::vec_dot::{halves_idot, DotTerms, SumTerm, VecDotQ8_1};
use super::{f16_le, Block};
use crate::dtype::{GgmlType, QK_K};

#[repr(C)]
pub struct BlockQ2K {
    pub scales: [u8; QK_K / 16],
    pub qs: [u8; QK_K / 4],
    pub d: [u8; 2],
    pub dmin: [u8; 2],
}
const _: () = assert!(std::mem::size_of::<BlockQ2K>() == QK_K / 16 + QK_K / 4 + 2 + 2);

impl BlockQ2K {
    /// The 32 two-bit quants of activation block b (elements 32b..32b+32).
    #[inline]
    fn quants(&self, b: usize) -> [i32; 32] {
        let (h, j) = (b / 4, b % 4);
        std::array::from_fn(|l| ((self.qs[32 * h + l] >> (2 * j)) & 3) as i32)
    }
}

// SAFETY: repr(C) of byte arrays; every bit pattern is a valid block.
unsafe impl Block for BlockQ2K {
    const TYPE: GgmlType = GgmlType::Q2_K;
    const ELEMS: usize = QK_K;

    fn dequantize(&self, out: &mut [f32]) {
        let (d, dmin) = (f16_le(self.d), f16_le(self.dmin));
        for b in 0..8 {
            let q = self.quants(b);
            for (l, &q) in q.iter().enumerate() {
                let g = 2 * b + l / 16;
                // gguf-py: dl = d·(sc & 15), ml = dmin·(sc >> 4), then dl·q − ml.
                let dl = d * (self.scales[g] & 0x0F) as f32;
                let ml = dmin * (self.scales[g] >> 4) as f32;
                out[32 * b + l] = dl * q as f32 - ml;
            }
        }
    }
}

impl VecDotQ8_1 for BlockQ2K {
    const BIAS: u8 = 0;
    const SUM_TERM: SumTerm = SumTerm::DSum16;

    /// Per activation block b, its two 16-value groups summed in integers with their scales
    /// (Σ sc·Σq·a) and minimums (Σ m·Σa), each times d8, then d·Σ − dmin·Σ
    /// (`vec_dot_q2_K_q8_1_impl_mmq`); every integer is below 2·15·16·3·127 < 2^24.
    fn vec_dot_q8_1_terms(&self, a: Q8Slice<'_>) -> DotTerms {
        let (d, dmin) = (f16_le(self.d), f16_le(self.dmin));
        let (mut sumf_d, mut sumf_m, mut mag_d, mut mag_m) = (0f32, 0f32, 0f32, 0f32);
        for b in 0..8 {
            let (s0, s1) = (self.scales[2 * b], self.scales[2 * b + 1]);
            let (sc0, sc1, m0, m1) = ((s0 & 15) as i32, (s1 & 15) as i32, (s0 >> 4) as i32, (s1 >> 4) as i32);
            let aq = &a.qs[32 * b..32 * b + 32];
            let (sum0, sum1): (i32, i32) =
                (aq[..16].iter().map(|&v| v as i32).sum(), aq[16..].iter().map(|&v| v as i32).sum());
            let (abs0, abs1): (i32, i32) =
                (aq[..16].iter().map(|&v| (v as i32).abs()).sum(), aq[16..].iter().map(|&v| (v as i32).abs()).sum());
            // The scales are 4-bit, never negative: the magnitude part takes them as they are.
            let (isum_d, iabs_d) = halves_idot(&a, b, &self.quants(b), [sc0, sc1]);
            let isum_m = m0 * sum0 + m1 * sum1;
            sumf_d += a.d[b] * isum_d as f32;
            sumf_m += a.d[b] * isum_m as f32;
            mag_d += a.d[b] * iabs_d as f32;
            mag_m += a.d[b] * (m0 * abs0 + m1 * abs1) as f32;
        }
        DotTerms { value: d * sumf_d - dmin * sumf_m, magnitude: (d * mag_d).abs() + (dmin * mag_m).abs() }
    }

    fn unpack(&self, u: &mut [u8], lane_scale: &mut [f32], offset: &mut [f32]) {
        let (d, dmin) = (f16_le(self.d), f16_le(self.dmin));
        for b in 0..8 {
            for (o, q) in u[b * 32..(b + 1) * 32].iter_mut().zip(self.quants(b)) {
                *o = q as u8;
            }
        }
        for (g, &s) in self.scales.iter().enumerate() {
            lane_scale[4 * g..4 * g + 4].fill(d * (s & 0x0F) as f32);
            offset[g] = -(dmin * (s >> 4) as f32);
        }
    }
}

impl VecDotQ8K for BlockQ2K {
    /// Unsigned 2-bit quants, scale `sc & 15` and minimum `sc >> 4` per 16.
    fn k_parts(&self) -> KParts {
        let mut w = [0i32; QK_K];
        for b in 0..8 {
            w[32 * b..32 * b + 32].copy_from_slice(&self.quants(b));
        }
        KParts {
            w,
            sc: self.scales.map(|s| (s & 0x0F) as i32),
            m: self.scales.map(|s| (s >> 4) as i32),
            d: f16_le(self.d),
            dmin: f16_le(self.dmin),
        }
    }
}
