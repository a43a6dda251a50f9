//! F32: one little-endian float per "block".

use super::Block;
use crate::dtype::GgmlType;

#[repr(C)]
pub struct BlockF32 {
    pub bits: [u8; 4],
}
const _: () = assert!(std::mem::size_of::<BlockF32>() == 4);

// SAFETY: repr(C) of one byte array; every bit pattern is a valid block.
unsafe impl Block for BlockF32 {
    const TYPE: GgmlType = GgmlType::F32;
    const ELEMS: usize = 1;

    fn dequantize(&self, out: &mut [f32]) {
        out[0] = f32::from_le_bytes(self.bits);
    }
}
