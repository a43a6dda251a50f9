//! Q4_0: 32 four-bit values around 8 and one f16 scale; w = d·(q − 8).
//! Byte j holds element j in its low nibble and element j+16 in its high nibble.

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
