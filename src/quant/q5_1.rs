//! Q5_1: 32 five-bit values, an f16 scale and an f16 minimum; w = d·q + m. Bits as Q5_0.

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
