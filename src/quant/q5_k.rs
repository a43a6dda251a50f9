//! Q5_K: Q4_K plus a fifth bit per value: bit `sub` of `qh[l]` belongs to value l of sub-block
//! `sub`; w = (d·sc)·q − (dmin·m).

use super::q4_k::dequantize_k4;
use super::Block;
use crate::dtype::{GgmlType, QK_K};

#[repr(C)]
pub struct BlockQ5K {
    pub d: [u8; 2],
    pub dmin: [u8; 2],
    pub scales: [u8; 12],
    pub qh: [u8; QK_K / 8],
    pub qs: [u8; QK_K / 2],
}
const _: () = assert!(std::mem::size_of::<BlockQ5K>() == 2 + 2 + 12 + QK_K / 8 + QK_K / 2);

// SAFETY: repr(C) of byte arrays; every bit pattern is a valid block.
unsafe impl Block for BlockQ5K {
    const TYPE: GgmlType = GgmlType::Q5_K;
    const ELEMS: usize = QK_K;

    fn dequantize(&self, out: &mut [f32]) {
        dequantize_k4(self.d, self.dmin, &self.scales, &self.qs, Some(&self.qh), out);
    }
}
