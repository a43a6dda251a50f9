//! IQ4_NL and IQ4_XS: 4-bit indices into ggml's non-linear table `kvalues_iq4nl`
//! (ggml-common.h), w = scale·table[q]. IQ4_NL: 32 values under one f16 `d`, byte j holding element
//! j (low nibble) and j+16 (high nibble). IQ4_XS: a 256-value super-block of eight 32-value
//! sub-blocks laid out as IQ4_NL's, each with a 6-bit scale around 32 (low nibble from
//! `scales_l[ib/2]`, top two bits from bits 2ib.. of the u16 `scales_h`) under an f16 `d`.

use super::q8_1::Q8Slice;
use super::q8_k::{KParts, VecDotQ8K};
use super::vec_dot::{abs_idot, DotTerms, SumTerm, VecDotQ8_1};
use super::{f16_le, Block};
use crate::dtype::{GgmlType, QK_K};

/// ggml's `kvalues_iq4nl`.
pub const KVALUES_IQ4NL: [i8; 16] = [-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113];

/// The 32 table values of 16 bytes of nibbles (low nibbles first, then high).
#[inline]
fn iq4_values(qs: &[u8]) -> [i32; 32] {
    std::array::from_fn(|j| {
        let n = if j < 16 { qs[j] & 0x0F } else { qs[j - 16] >> 4 };
        KVALUES_IQ4NL[n as usize] as i32
    })
}

#[repr(C)]
pub struct BlockIQ4NL {
    pub d: [u8; 2],
    pub qs: [u8; 16],
}
const _: () = assert!(std::mem::size_of::<BlockIQ4NL>() == 2 + 16);

// SAFETY: repr(C) of byte arrays; every bit pattern is a valid block.
unsafe impl Block for BlockIQ4NL {
    const TYPE: GgmlType = GgmlType::IQ4_NL;
    const ELEMS: usize = 32;

    fn dequantize(&self, out: &mut [f32]) {
        let d = f16_le(self.d);
        for (o, v) in out.iter_mut().zip(iq4_values(&self.qs)) {
            *o = d * v as f32;
        }
    }
}

impl VecDotQ8_1 for BlockIQ4NL {
    const BIAS: u8 = 128;
    const SUM_TERM: SumTerm = SumTerm::None;

    /// (d·d8)·Σ table(q)·a (`vec_dot_iq4_nl_q8_1`).
    fn vec_dot_q8_1_terms(&self, a: Q8Slice<'_>) -> DotTerms {
        let v = iq4_values(&self.qs);
        let dd = f16_le(self.d) * a.d[0];
        DotTerms { value: dd * a.idot(0, &v) as f32, magnitude: (dd * abs_idot(&a, 0, &v) as f32).abs() }
    }

    fn unpack(&self, u: &mut [u8], lane_scale: &mut [f32], offset: &mut [f32]) {
        for (o, v) in u.iter_mut().zip(iq4_values(&self.qs)) {
            *o = (v + 128) as u8;
        }
        lane_scale[..8].fill(f16_le(self.d));
        offset[0] = 0.0;
    }

    fn scale_and_signed(&self) -> Option<(f32, [i8; 32])> {
        let v = iq4_values(&self.qs);
        Some((f16_le(self.d), std::array::from_fn(|j| v[j] as i8)))
    }
}

#[repr(C)]
pub struct BlockIQ4XS {
    pub d: [u8; 2],
    pub scales_h: [u8; 2],
    pub scales_l: [u8; QK_K / 64],
    pub qs: [u8; QK_K / 2],
}
const _: () = assert!(std::mem::size_of::<BlockIQ4XS>() == 2 + 2 + QK_K / 64 + QK_K / 2);

impl BlockIQ4XS {
    /// The eight sub-block scales, minus 32.
    pub fn scales(&self) -> [i32; 8] {
        let h = u16::from_le_bytes(self.scales_h);
        std::array::from_fn(|ib| {
            let lo = (self.scales_l[ib / 2] >> (4 * (ib % 2))) & 0x0F;
            let hi = ((h >> (2 * ib)) & 3) as u8;
            (lo | (hi << 4)) as i32 - 32
        })
    }
}

// SAFETY: repr(C) of byte arrays; every bit pattern is a valid block.
unsafe impl Block for BlockIQ4XS {
    const TYPE: GgmlType = GgmlType::IQ4_XS;
    const ELEMS: usize = QK_K;

    fn dequantize(&self, out: &mut [f32]) {
        let d = f16_le(self.d);
        for (ib, s) in self.scales().into_iter().enumerate() {
            let dl = d * s as f32;
            for (o, v) in out[32 * ib..32 * ib + 32].iter_mut().zip(iq4_values(&self.qs[16 * ib..16 * ib + 16])) {
                *o = dl * v as f32;
            }
        }
    }
}

impl VecDotQ8_1 for BlockIQ4XS {
    const BIAS: u8 = 128;
    const SUM_TERM: SumTerm = SumTerm::None;

    /// Per sub-block (d·d8)·(Σ table(q)·a·(sc − 32)) (`vec_dot_iq4_xs_q8_1`); the integer is at
    /// most 32·127·127·32 < 2^24.
    fn vec_dot_q8_1_terms(&self, a: Q8Slice<'_>) -> DotTerms {
        let d = f16_le(self.d);
        let (mut value, mut magnitude) = (0f32, 0f32);
        for (ib, s) in self.scales().into_iter().enumerate() {
            let v = iq4_values(&self.qs[16 * ib..16 * ib + 16]);
            let dd = d * a.d[ib];
            value += dd * (a.idot(ib, &v) * s) as f32;
            magnitude += (dd * (abs_idot(&a, ib, &v) * s.abs()) as f32).abs();
        }
        DotTerms { value, magnitude }
    }

    fn unpack(&self, u: &mut [u8], lane_scale: &mut [f32], offset: &mut [f32]) {
        let d = f16_le(self.d);
        for (ib, s) in self.scales().into_iter().enumerate() {
            for (o, v) in u[32 * ib..32 * ib + 32].iter_mut().zip(iq4_values(&self.qs[16 * ib..16 * ib + 16])) {
                *o = (v + 128) as u8;
            }
            lane_scale[8 * ib..8 * ib + 8].fill(d * s as f32);
            offset[ib] = 0.0;
        }
    }
}

impl VecDotQ8K for BlockIQ4XS {
    /// The table values, each 32's scale minus 32 for both of its 16s, no minimums.
    fn k_parts(&self) -> KParts {
        let mut w = [0i32; QK_K];
        for ib in 0..8 {
            w[32 * ib..32 * ib + 32].copy_from_slice(&iq4_values(&self.qs[16 * ib..16 * ib + 16]));
        }
        let s = self.scales();
        KParts { w, sc: std::array::from_fn(|g| s[g / 2]), m: [0; 16], d: f16_le(self.d), dmin: 0.0 }
    }
}
