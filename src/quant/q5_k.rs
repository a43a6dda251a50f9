//! Q5_K: Q4_K plus a fifth bit per value: bit `sub` of `qh[l]` belongs to value l of sub-block
//! `sub`; w = (d·sc)·q − (dmin·m).

use super::q4_k::{dequantize_k4, k4_parts, k4_unpack, k4_vec_dot};
use super::q8_1::Q8Slice;
use super::q8_k::{KParts, VecDotQ8K};
use super::vec_dot::{DotTerms, SumTerm, VecDotQ8_1};
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

impl VecDotQ8_1 for BlockQ5K {
    const BIAS: u8 = 0;
    const SUM_TERM: SumTerm = SumTerm::DSum;

    fn vec_dot_q8_1_terms(&self, a: Q8Slice<'_>) -> DotTerms {
        k4_vec_dot(self.d, self.dmin, &self.scales, &self.qs, Some(&self.qh), &a)
    }

    fn unpack(&self, u: &mut [u8], lane_scale: &mut [f32], offset: &mut [f32]) {
        k4_unpack(self.d, self.dmin, &self.scales, &self.qs, Some(&self.qh), u, lane_scale, offset);
    }
}

impl VecDotQ8K for BlockQ5K {
    fn k_parts(&self) -> KParts {
        k4_parts(self.d, self.dmin, &self.scales, &self.qs, Some(&self.qh))
    }
}
