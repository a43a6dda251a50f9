//! F16: IEEE half precision, widened exactly.

use super::{f16_le, Block};
use crate::dtype::GgmlType;

#[repr(C)]
pub struct BlockF16 {
    pub bits: [u8; 2],
}
const _: () = assert!(std::mem::size_of::<BlockF16>() == 2);

// SAFETY: repr(C) of one byte array; every bit pattern is a valid block.
unsafe impl Block for BlockF16 {
    const TYPE: GgmlType = GgmlType::F16;
    const ELEMS: usize = 1;

    fn dequantize(&self, out: &mut [f32]) {
        out[0] = f16_le(self.bits);
    }
}
