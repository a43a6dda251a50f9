//! Q6_K: 256 six-bit values around 32 in sixteen 16-value groups, each with an i8 scale, under an
//! f16 `d`; w = (d·sc)·(q − 32). Each 128-value half h takes low bits from `ql[64h..64h+64]`
//! (low nibbles, then high) and two high bits from `qh[32h..32h+32]` (shifts 0, 2, 4, 6).

use super::{f16_le, Block};
use crate::dtype::{GgmlType, QK_K};

#[repr(C)]
pub struct BlockQ6K {
    pub ql: [u8; QK_K / 2],
    pub qh: [u8; QK_K / 4],
    pub scales: [u8; QK_K / 16],
    pub d: [u8; 2],
}
const _: () = assert!(std::mem::size_of::<BlockQ6K>() == QK_K / 2 + QK_K / 4 + QK_K / 16 + 2);

// SAFETY: repr(C) of byte arrays; every bit pattern is a valid block.
unsafe impl Block for BlockQ6K {
    const TYPE: GgmlType = GgmlType::Q6_K;
    const ELEMS: usize = QK_K;

    fn dequantize(&self, out: &mut [f32]) {
        let d = f16_le(self.d);
        let mut group_scale = [0f32; 16];
        for (g, &s) in group_scale.iter_mut().zip(&self.scales) {
            *g = d * (s as i8) as f32;
        }
        for half in 0..2 {
            let ql = &self.ql[64 * half..64 * half + 64];
            let qh = &self.qh[32 * half..32 * half + 32];
            // Quarter k of this half: low nibble (k < 2) or high nibble (k >= 2) of
            // ql[32·(k % 2) + l], with bits 2k..2k+2 of qh[l] on top.
            for k in 0..4 {
                for l in 0..32 {
                    let lo = (ql[32 * (k % 2) + l] >> (4 * (k / 2))) & 0x0F;
                    let hi = (qh[l] >> (2 * k)) & 0x03;
                    let q = (lo | (hi << 4)) as i8 - 32;
                    let e = 128 * half + 32 * k + l;
                    out[e] = group_scale[e / 16] * q as f32;
                }
            }
        }
    }
}
