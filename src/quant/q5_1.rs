//! Q5_1: 32 five-bit values, an f16 scale and an f16 minimum; w = d·q + m. Bits as Q5_0.

use super::q5_0::five_bit;
use super::q8_1::Q8Slice;
use super::vec_dot::{abs_idot, DotTerms, SumTerm, VecDotQ8_1};
use super::{f16_le, Block};
use crate::dtype::GgmlType;

#[repr(C)]
pub struct BlockQ5_1 {
    pub d: [u8; 2],
    pub m: [u8; 2],
    pub qh: [u8; 4],
    pub qs: [u8; 16],
}
const _: () = assert!(std::mem::size_of::<BlockQ5_1>() == 2 + 2 + 4 + 16);

// SAFETY: repr(C) of byte arrays; every bit pattern is a valid block.
unsafe impl Block for BlockQ5_1 {
    const TYPE: GgmlType = GgmlType::Q5_1;
    const ELEMS: usize = 32;

    fn dequantize(&self, out: &mut [f32]) {
        let (d, m) = (f16_le(self.d), f16_le(self.m));
        let qh = u32::from_le_bytes(self.qh);
        for (j, &b) in self.qs.iter().enumerate() {
            let lo = (b & 0x0F) | (((qh >> j) & 1) as u8) << 4;
            let hi = (b >> 4) | (((qh >> (j + 16)) & 1) as u8) << 4;
            out[j] = d * lo as f32 + m;
            out[j + 16] = d * hi as f32 + m;
        }
    }
}

impl VecDotQ8_1 for BlockQ5_1 {
    const BIAS: u8 = 0;
    const SUM_TERM: SumTerm = SumTerm::S;

    fn vec_dot_q8_1_terms(&self, a: Q8Slice<'_>) -> DotTerms {
        let u = five_bit(&self.qs, self.qh);
        let (d, m) = (f16_le(self.d), f16_le(self.m));
        let dd = d * a.d[0];
        let value = a.idot(0, &u) as f32 * dd + m * a.s[0];
        let magnitude = abs_idot(&a, 0, &u) as f32 * dd.abs() + (m * a.s[0]).abs();
        DotTerms { value, magnitude }
    }

    fn unpack(&self, u: &mut [u8], lane_scale: &mut [f32], offset: &mut [f32]) {
        for (o, n) in u.iter_mut().zip(five_bit(&self.qs, self.qh)) {
            *o = n as u8;
        }
        lane_scale[..8].fill(f16_le(self.d));
        offset[0] = f16_le(self.m);
    }
}
