//! Q8_0: 32 signed bytes and one f16 scale; w = q·d.

use super::{f16_le, Block};
use crate::dtype::GgmlType;

#[repr(C)]
pub struct BlockQ8_0 {
    pub d: [u8; 2],
    pub qs: [u8; 32],
}
const _: () = assert!(std::mem::size_of::<BlockQ8_0>() == 2 + 32);

// SAFETY: repr(C) of byte arrays; every bit pattern is a valid block.
unsafe impl Block for BlockQ8_0 {
    const TYPE: GgmlType = GgmlType::Q8_0;
    const ELEMS: usize = 32;

    fn dequantize(&self, out: &mut [f32]) {
        let d = f16_le(self.d);
        for (o, &q) in out.iter_mut().zip(&self.qs) {
            *o = (q as i8) as f32 * d;
        }
    }

    fn dot(&self, x: &[f32]) -> f32 {
        let d = f16_le(self.d);
        self.qs.iter().zip(x).map(|(&q, &x)| (q as i8) as f32 * d * x).sum()
    }
}
