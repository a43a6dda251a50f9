//! Q5_K: Q4_K plus a fifth bit per value: bit `sub` of `qh[l]` belongs to value l of sub-block
//! `sub`; w = (d·sc)·q − (dmin·m).

use super::{f16_le, get_scale_min_k4, Block};
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
        let (d, dmin) = (f16_le(self.d), f16_le(self.dmin));
        let (sc, mn) = get_scale_min_k4(&self.scales);
        for sub in 0..8 {
            let scale = d * sc[sub] as f32;
            let min = dmin * mn[sub] as f32;
            let bytes = &self.qs[(sub / 2) * 32..(sub / 2) * 32 + 32];
            let shift = 4 * (sub % 2);
            for (l, &b) in bytes.iter().enumerate() {
                let q = ((b >> shift) & 0x0F) | (((self.qh[l] >> sub) & 1) << 4);
                out[sub * 32 + l] = scale * q as f32 - min;
            }
        }
    }
}
