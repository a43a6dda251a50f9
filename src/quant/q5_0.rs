//! Q5_0: 32 five-bit values around 16 and one f16 scale; w = d·(q − 16).
//! Low four bits as Q4_0; bit j of the little-endian u32 `qh` is element j's fifth bit.

use super::q8_1::Q8Slice;
use super::vec_dot::{abs_idot, DotTerms, SumTerm, VecDotQ8_1};
use super::{f16_le, Block};
use crate::dtype::GgmlType;

#[repr(C)]
pub struct BlockQ5_0 {
    pub d: [u8; 2],
    pub qh: [u8; 4],
    pub qs: [u8; 16],
}
const _: () = assert!(std::mem::size_of::<BlockQ5_0>() == 2 + 4 + 16);

// SAFETY: repr(C) of byte arrays; every bit pattern is a valid block.
unsafe impl Block for BlockQ5_0 {
    const TYPE: GgmlType = GgmlType::Q5_0;
    const ELEMS: usize = 32;

    fn dequantize(&self, out: &mut [f32]) {
        let d = f16_le(self.d);
        let qh = u32::from_le_bytes(self.qh);
        for (j, &b) in self.qs.iter().enumerate() {
            let lo = (b & 0x0F) | (((qh >> j) & 1) as u8) << 4;
            let hi = (b >> 4) | (((qh >> (j + 16)) & 1) as u8) << 4;
            out[j] = d * (lo as i8 - 16) as f32;
            out[j + 16] = d * (hi as i8 - 16) as f32;
        }
    }
}

/// The 32 unsigned 5-bit quants of a Q5_0/Q5_1 block in element order.
pub(crate) fn five_bit(qs: &[u8; 16], qh: [u8; 4]) -> [i32; 32] {
    let qh = u32::from_le_bytes(qh);
    std::array::from_fn(|j| {
        let lo = if j < 16 { qs[j] & 0x0F } else { qs[j - 16] >> 4 };
        (lo | (((qh >> j) & 1) as u8) << 4) as i32
    })
}

impl VecDotQ8_1 for BlockQ5_0 {
    const BIAS: u8 = 0;
    const SUM_TERM: SumTerm = SumTerm::S;

    fn vec_dot_q8_1_terms(&self, a: Q8Slice<'_>) -> DotTerms {
        let u = five_bit(&self.qs, self.qh);
        let d = f16_le(self.d);
        // The second part subtracts 16 from every quant through s = d8·Σa.
        let value = d * (a.idot(0, &u) as f32 * a.d[0] - 16.0 * a.s[0]);
        let magnitude = d.abs() * (abs_idot(&a, 0, &u) as f32 * a.d[0] + 16.0 * a.s[0].abs());
        DotTerms { value, magnitude }
    }

    fn unpack(&self, u: &mut [u8], lane_scale: &mut [f32], offset: &mut [f32]) {
        for (o, n) in u.iter_mut().zip(five_bit(&self.qs, self.qh)) {
            *o = n as u8;
        }
        let d = f16_le(self.d);
        lane_scale[..8].fill(d);
        offset[0] = -16.0 * d;
    }

    fn scale_and_signed(&self) -> Option<(f32, [i8; 32])> {
        let u = five_bit(&self.qs, self.qh);
        Some((f16_le(self.d), std::array::from_fn(|j| (u[j] - 16) as i8)))
    }
}
