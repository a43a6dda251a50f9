//! Q8_0: 32 signed bytes and one f16 scale; w = q·d.

use super::q8_1::Q8Slice;
use super::vec_dot::{abs_idot, DotTerms, SumTerm, VecDotQ8_1};
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

impl VecDotQ8_1 for BlockQ8_0 {
    const BIAS: u8 = 128;
    const SUM_TERM: SumTerm = SumTerm::None;

    fn vec_dot_q8_1_terms(&self, a: Q8Slice<'_>) -> DotTerms {
        let u: [i32; 32] = std::array::from_fn(|j| self.qs[j] as i8 as i32);
        let dd = f16_le(self.d) * a.d[0];
        DotTerms { value: dd * a.idot(0, &u) as f32, magnitude: (dd * abs_idot(&a, 0, &u) as f32).abs() }
    }

    fn unpack(&self, u: &mut [u8], lane_scale: &mut [f32], offset: &mut [f32]) {
        for (o, &q) in u.iter_mut().zip(&self.qs) {
            *o = q ^ 0x80; // q + 128
        }
        lane_scale[..8].fill(f16_le(self.d));
        offset[0] = 0.0;
    }

    fn scale_and_signed(&self) -> Option<(f32, [i8; 32])> {
        Some((f16_le(self.d), self.qs.map(|q| q as i8)))
    }
}
