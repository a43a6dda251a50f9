//! Q4_K: a 256-value super-block of eight 32-value sub-blocks, each with a 6-bit scale and a
//! 6-bit minimum (packed in 12 bytes), under f16 `d` and `dmin`; w = (d·sc)·q − (dmin·m).
//! Sub-block 2g takes the low nibbles of `qs[32g..32g+32]`, sub-block 2g+1 the high nibbles.

use super::q8_1::Q8Slice;
use super::q8_k::{KParts, VecDotQ8K};
use super::vec_dot::{abs_idot, abs_qsum, DotTerms, SumTerm, VecDotQ8_1};
use super::{f16_le, Block};
use crate::dtype::{GgmlType, QK_K};

#[repr(C)]
pub struct BlockQ4K {
    pub d: [u8; 2],
    pub dmin: [u8; 2],
    pub scales: [u8; 12],
    pub qs: [u8; QK_K / 2],
}
const _: () = assert!(std::mem::size_of::<BlockQ4K>() == 2 + 2 + 12 + QK_K / 2);

/// Unpacks the eight 6-bit (scale, min) pairs shared by Q4_K and Q5_K:
/// bytes 0-3 hold scales 0-3 (low 6 bits) and the top bits of scales 4-7, bytes 4-7 the same for
/// mins, bytes 8-11 the low nibbles of scales 4-7 (low) and mins 4-7 (high).
pub fn get_scale_min_k4(scales: &[u8; 12]) -> ([u8; 8], [u8; 8]) {
    let (mut sc, mut mn) = ([0u8; 8], [0u8; 8]);
    for j in 0..4 {
        sc[j] = scales[j] & 0x3F;
        mn[j] = scales[j + 4] & 0x3F;
        sc[j + 4] = (scales[j + 8] & 0x0F) | ((scales[j] >> 2) & 0x30);
        mn[j + 4] = (scales[j + 8] >> 4) | ((scales[j + 4] >> 2) & 0x30);
    }
    (sc, mn)
}

// SAFETY: repr(C) of byte arrays; every bit pattern is a valid block.
unsafe impl Block for BlockQ4K {
    const TYPE: GgmlType = GgmlType::Q4_K;
    const ELEMS: usize = QK_K;

    fn dequantize(&self, out: &mut [f32]) {
        dequantize_k4(self.d, self.dmin, &self.scales, &self.qs, None, out);
    }
}

/// The sub-block loop Q4_K and Q5_K share: value l of sub-block `sub` is the nibble of
/// `qs[32·(sub/2) + l]` (low for even sub-blocks), plus bit `sub` of `qh[l]` as its fifth bit for
/// Q5_K; w = (d·sc)·q − (dmin·m), in gguf-py's order of operations.
pub(crate) fn dequantize_k4(
    d: [u8; 2],
    dmin: [u8; 2],
    scales: &[u8; 12],
    qs: &[u8; 128],
    qh: Option<&[u8; 32]>,
    out: &mut [f32],
) {
    let (d, dmin) = (f16_le(d), f16_le(dmin));
    let (sc, mn) = get_scale_min_k4(scales);
    for sub in 0..8 {
        let scale = d * sc[sub] as f32;
        let min = dmin * mn[sub] as f32;
        let bytes = &qs[(sub / 2) * 32..(sub / 2) * 32 + 32];
        let shift = 4 * (sub % 2);
        for (l, &b) in bytes.iter().enumerate() {
            let high = qh.map_or(0, |h| ((h[l] >> sub) & 1) << 4);
            out[sub * 32 + l] = scale * (((b >> shift) & 0x0F) | high) as f32 - min;
        }
    }
}

/// The 32 unsigned quants of sub-block `sub` of a Q4_K (`qh` None) or Q5_K block.
#[inline]
fn k4_quants(qs: &[u8; 128], qh: Option<&[u8; 32]>, sub: usize) -> [i32; 32] {
    let shift = 4 * (sub % 2);
    std::array::from_fn(|l| {
        let high = qh.map_or(0, |h| ((h[l] >> sub) & 1) << 4);
        (((qs[(sub / 2) * 32 + l] >> shift) & 0x0F) | high) as i32
    })
}

/// The int8 dot of a Q4_K/Q5_K super-block with its 8 activation blocks, as
/// `vec_dot_q4_K_q8_1_impl_vmmq`: per sub-block d8·(Σu·a · sc) and d8·(Σa · m) in f32, then
/// d·Σ − dmin·Σ.
pub(crate) fn k4_vec_dot(
    d: [u8; 2],
    dmin: [u8; 2],
    scales: &[u8; 12],
    qs: &[u8; 128],
    qh: Option<&[u8; 32]>,
    a: &Q8Slice<'_>,
) -> DotTerms {
    let (d, dmin) = (f16_le(d), f16_le(dmin));
    let (sc, mn) = get_scale_min_k4(scales);
    let (mut sumf_d, mut sumf_m, mut mag_d, mut mag_m) = (0f32, 0f32, 0f32, 0f32);
    for sub in 0..8 {
        let u = k4_quants(qs, qh, sub);
        let d8 = a.d[sub];
        sumf_d += d8 * (a.idot(sub, &u) * sc[sub] as i32) as f32;
        sumf_m += d8 * (a.qsum[sub] * mn[sub] as i32) as f32;
        mag_d += d8 * (abs_idot(a, sub, &u) * sc[sub] as i32) as f32;
        mag_m += d8 * (abs_qsum(a, sub) * mn[sub] as i32) as f32;
    }
    DotTerms { value: d * sumf_d - dmin * sumf_m, magnitude: (d * mag_d).abs() + (dmin * mag_m).abs() }
}

/// The unpacked form of a Q4_K/Q5_K super-block: lane scales d·sc, offsets −dmin·m (× d8·Σa).
#[allow(clippy::too_many_arguments)]
pub(crate) fn k4_unpack(
    d: [u8; 2],
    dmin: [u8; 2],
    scales: &[u8; 12],
    qs: &[u8; 128],
    qh: Option<&[u8; 32]>,
    u: &mut [u8],
    lane_scale: &mut [f32],
    offset: &mut [f32],
) {
    let (d, dmin) = (f16_le(d), f16_le(dmin));
    let (sc, mn) = get_scale_min_k4(scales);
    for sub in 0..8 {
        for (o, q) in u[sub * 32..(sub + 1) * 32].iter_mut().zip(k4_quants(qs, qh, sub)) {
            *o = q as u8;
        }
        lane_scale[sub * 8..(sub + 1) * 8].fill(d * sc[sub] as f32);
        offset[sub] = -(dmin * mn[sub] as f32);
    }
}

impl VecDotQ8_1 for BlockQ4K {
    const BIAS: u8 = 0;
    const SUM_TERM: SumTerm = SumTerm::DSum;

    fn vec_dot_q8_1_terms(&self, a: Q8Slice<'_>) -> DotTerms {
        k4_vec_dot(self.d, self.dmin, &self.scales, &self.qs, None, &a)
    }

    fn unpack(&self, u: &mut [u8], lane_scale: &mut [f32], offset: &mut [f32]) {
        k4_unpack(self.d, self.dmin, &self.scales, &self.qs, None, u, lane_scale, offset);
    }
}

/// A Q4_K/Q5_K super-block in the terms of ggml's q8_K dot: unsigned quants, each 32's scale
/// and minimum for both of its 16s, d and dmin.
pub(crate) fn k4_parts(d: [u8; 2], dmin: [u8; 2], scales: &[u8; 12], qs: &[u8; 128], qh: Option<&[u8; 32]>) -> KParts {
    let (sc, mn) = get_scale_min_k4(scales);
    let mut w = [0i32; QK_K];
    for sub in 0..8 {
        w[32 * sub..32 * sub + 32].copy_from_slice(&k4_quants(qs, qh, sub));
    }
    KParts {
        w,
        sc: std::array::from_fn(|g| sc[g / 2] as i32),
        m: std::array::from_fn(|g| mn[g / 2] as i32),
        d: f16_le(d),
        dmin: f16_le(dmin),
    }
}

impl VecDotQ8K for BlockQ4K {
    fn k_parts(&self) -> KParts {
        k4_parts(self.d, self.dmin, &self.scales, &self.qs, None)
    }
}
