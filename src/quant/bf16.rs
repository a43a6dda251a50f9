//! BF16: the top half of an f32 (gguf-py: `(bits as i32) << 16` viewed as f32).

use super::Block;
use crate::dtype::GgmlType;

#[repr(C)]
pub struct BlockBF16 {
    pub bits: [u8; 2],
}
const _: () = assert!(std::mem::size_of::<BlockBF16>() == 2);

// SAFETY: repr(C) of one byte array; every bit pattern is a valid block.
unsafe impl Block for BlockBF16 {
    const TYPE: GgmlType = GgmlType::BF16;
    const ELEMS: usize = 1;

    fn dequantize(&self, out: &mut [f32]) {
        out[0] = f32::from_bits((u16::from_le_bytes(self.bits) as u32) << 16);
    }
}
