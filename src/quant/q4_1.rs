//! Q4_1: 32 four-bit values, an f16 scale and an f16 minimum; w = d·q + m.
//! Nibble order as Q4_0.

use super::{f16_le, Block};
use crate::dtype::GgmlType;

#[repr(C)]
pub struct BlockQ4_1 {
    pub d: [u8; 2],
    pub m: [u8; 2],
    pub qs: [u8; 16],
}
const _: () = assert!(std::mem::size_of::<BlockQ4_1>() == 2 + 2 + 16);

// SAFETY: repr(C) of byte arrays; every bit pattern is a valid block.
unsafe impl Block for BlockQ4_1 {
    const TYPE: GgmlType = GgmlType::Q4_1;
    const ELEMS: usize = 32;

    fn dequantize(&self, out: &mut [f32]) {
        let (d, m) = (f16_le(self.d), f16_le(self.m));
        for (j, &b) in self.qs.iter().enumerate() {
            out[j] = d * (b & 0x0F) as f32 + m;
            out[j + 16] = d * (b >> 4) as f32 + m;
        }
    }
}
