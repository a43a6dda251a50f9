//! Q4_0: 32 four-bit values around 8 and one f16 scale; w = d·(q − 8).
//! Byte j holds element j in its low nibble and element j+16 in its high nibble.

use super::q8_1::Q8Slice;
use super::vec_dot::{abs_idot, DotTerms, SumTerm, VecDotQ8_1};
use super::{f16_le, Block};
use crate::dtype::GgmlType;

#[repr(C)]
pub struct BlockQ4_0 {
    pub d: [u8; 2],
    pub qs: [u8; 16],
}
const _: () = assert!(std::mem::size_of::<BlockQ4_0>() == 2 + 16);

// SAFETY: repr(C) of byte arrays; every bit pattern is a valid block.
unsafe impl Block for BlockQ4_0 {
    const TYPE: GgmlType = GgmlType::Q4_0;
    const ELEMS: usize = 32;

    fn dequantize(&self, out: &mut [f32]) {
        let d = f16_le(self.d);
        for (j, &b) in self.qs.iter().enumerate() {
            out[j] = d * ((b & 0x0F) as i8 - 8) as f32;
            out[j + 16] = d * ((b >> 4) as i8 - 8) as f32;
        }
    }
}

impl BlockQ4_0 {
    /// The 32 unsigned nibbles in element order.
    fn nibbles(&self) -> [i32; 32] {
        std::array::from_fn(|j| if j < 16 { self.qs[j] & 0x0F } else { self.qs[j - 16] >> 4 } as i32)
    }
}

impl VecDotQ8_1 for BlockQ4_0 {
    const BIAS: u8 = 0;
    const SUM_TERM: SumTerm = SumTerm::S;

    fn vec_dot_q8_1_terms(&self, a: Q8Slice<'_>) -> DotTerms {
        let u = self.nibbles();
        let d = f16_le(self.d);
        // The second part subtracts 8 from every quant through s = d8·Σa.
        let value = d * (a.idot(0, &u) as f32 * a.d[0] - 8.0 * a.s[0]);
        let magnitude = d.abs() * (abs_idot(&a, 0, &u) as f32 * a.d[0] + 8.0 * a.s[0].abs());
        DotTerms { value, magnitude }
    }

    fn unpack(&self, u: &mut [u8], lane_scale: &mut [f32], offset: &mut [f32]) {
        for (o, n) in u.iter_mut().zip(self.nibbles()) {
            *o = n as u8;
        }
        let d = f16_le(self.d);
        lane_scale[..8].fill(d);
        offset[0] = -8.0 * d;
    }

    fn scale_and_signed(&self) -> Option<(f32, [i8; 32])> {
        let u = self.nibbles();
        Some((f16_le(self.d), std::array::from_fn(|j| (u[j] - 8) as i8)))
    }
}
