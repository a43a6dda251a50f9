//! Q5_0: 32 five-bit values around 16 and one f16 scale; w = d·(q − 16).
//! Low four bits as Q4_0; bit j of the little-endian u32 `qh` is element j's fifth bit.

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
