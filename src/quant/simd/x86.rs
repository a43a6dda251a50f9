//! x86-64 kernels: AVX2 (`maddubs` + `madd` for the 8-bit products) and AVX-512 VNNI
//! (`vpdpbusd`). Each weight row is unpacked with 256-bit byte operations (AVX-512BW masks where
//! they save work), then dotted with every activation row asked for, four at a time so the
//! unpacked weights are loaded once per four tokens.
//!
//! Every function here is `unsafe` with `#[target_feature]`: [`row_q8_1`] and [`row_f32`] are the
//! safe entry points and are reached only through `gemm_*` in the parent module, which asserts
//! `Isa::supported()` first.

// Tiles index several parallel arrays (accumulators, row pointers) by token.
#![allow(clippy::needless_range_loop)]

use std::arch::x86_64::*;

use super::Isa;
use super::Unpacked;
use crate::dtype::GgmlType;
use crate::quant::get_scale_min_k4;
use crate::quant::q8_1::Q8Rows;
use crate::quant::vec_dot::{SumTerm, VecDotQ8_1};

/// One weight row (blocks of `B`) against activation rows `toks` of `a`; `out[i]` for row
/// `toks.start + i`.
pub(super) fn row_q8_1<B: VecDotQ8_1>(
    isa: Isa,
    row: &[B],
    a: &Q8Rows,
    toks: std::ops::Range<usize>,
    un: &mut Unpacked,
    out: &mut [f32],
) {
    // SAFETY: B is a Block (repr(C) byte arrays, alignment 1), so its slice is readable as bytes.
    let bytes = unsafe { std::slice::from_raw_parts(row.as_ptr().cast::<u8>(), std::mem::size_of_val(row)) };
    assert!(out.len() == toks.len() && toks.end <= a.n());
    // SAFETY: `gemm_q8_1` asserted that `isa` runs on this host; AVX-512 VNNI implies AVX2.
    unsafe {
        match isa {
            Isa::Avx512Vnni => {
                unpack_avx512(B::TYPE, bytes, un);
                dot_avx512(un, a, toks, out);
            }
            _ => {
                unpack_avx2(B::TYPE, bytes, un);
                dot_avx2(un, a, toks, out);
            }
        }
    }
}

/// One float weight row (F32, F16, BF16) against every f32 activation row of `x`.
pub(super) fn row_f32(isa: Isa, ty: GgmlType, row: &[u8], x: &[f32], out: &mut [f32]) {
    let k = row.len() / ty.block_bytes();
    assert_eq!(x.len(), out.len() * k);
    // SAFETY: `gemm_f32` asserted that `isa` runs on this host; lengths checked above.
    unsafe {
        match isa {
            Isa::Avx512Vnni => float_rows_avx512(ty, row, k, x, out),
            _ => float_rows_avx2(ty, row, k, x, out),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Unpacking (AVX2 byte operations; AVX-512BW masks for the fifth bits).

/// The f16 at `p`, widened.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
pub(super) unsafe fn f16_at(p: *const u8) -> f32 {
    let bits = std::ptr::read_unaligned(p.cast::<u16>());
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(bits as i32)))
}

/// The 32 nibbles of a 16-byte `qs` in element order (low nibbles, then high).
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn nibbles32(qs: *const u8) -> __m256i {
    let x = _mm_loadu_si128(qs.cast());
    let m = _mm_set1_epi8(0x0F);
    _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16::<4>(x), m), _mm_and_si128(x, m))
}

/// `kvalues_iq4nl` + 128 in both 128-bit lanes (a `pshufb` table from nibble to biased byte).
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn iq4_table() -> __m256i {
    let t: [u8; 16] = std::array::from_fn(|n| (crate::quant::KVALUES_IQ4NL[n] as i32 + 128) as u8);
    _mm256_broadcastsi128_si256(_mm_loadu_si128(t.as_ptr().cast()))
}

/// 0x10 in byte j where bit j of `bits` is set.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn fifth_bits_avx2(bits: u32) -> __m256i {
    let shuf = _mm256_setr_epi8(
        0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3,
    );
    let spread = _mm256_shuffle_epi8(_mm256_set1_epi32(bits as i32), shuf);
    let bit = _mm256_set1_epi64x(0x8040_2010_0804_0201u64 as i64);
    let set = _mm256_cmpeq_epi8(_mm256_and_si256(spread, bit), bit);
    _mm256_and_si256(set, _mm256_set1_epi8(0x10))
}

/// Unpacks a row of `ty` with AVX2 byte operations (the k-quants' scales in scalar code).
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn unpack_avx2(ty: GgmlType, row: &[u8], un: &mut Unpacked) {
    unpack_x86::<false>(ty, row, un)
}

/// As [`unpack_avx2`], with AVX-512BW masks for the 5-bit formats.
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn unpack_avx512(ty: GgmlType, row: &[u8], un: &mut Unpacked) {
    unpack_x86::<true>(ty, row, un)
}

#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn fifth_bits<const BW: bool>(nib: __m256i, bits: u32) -> __m256i {
    if BW {
        fifth_bits_bw(nib, bits)
    } else {
        _mm256_or_si256(nib, fifth_bits_avx2(bits))
    }
}

#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma,f16c")]
#[inline]
unsafe fn fifth_bits_bw(nib: __m256i, bits: u32) -> __m256i {
    _mm256_mask_add_epi8(nib, bits, nib, _mm256_set1_epi8(0x10))
}

#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn unpack_x86<const BW: bool>(ty: GgmlType, row: &[u8], un: &mut Unpacked) {
    let k = row.len() / ty.block_bytes() * ty.block_elems();
    let (bias, sum_term) = bias_and_sum_term(ty);
    un.reshape(k, bias, sum_term);
    unpack_into::<BW>(ty, row, &mut un.u, &mut un.lane_scale, &mut un.offset);
}

/// The bias and offset term of `ty`'s unpacked form (as its `VecDotQ8_1` impl says).
pub(super) fn bias_and_sum_term(ty: GgmlType) -> (u8, SumTerm) {
    match ty {
        GgmlType::Q8_0 => (128, SumTerm::None),
        GgmlType::Q6_K | GgmlType::Q3_K => (32, SumTerm::None),
        GgmlType::IQ4_NL | GgmlType::IQ4_XS => (128, SumTerm::None),
        GgmlType::Q4_K | GgmlType::Q5_K => (0, SumTerm::DSum),
        GgmlType::Q2_K => (0, SumTerm::DSum16),
        _ => (0, SumTerm::S),
    }
}

/// Unpacks one row of `ty` into `u` (k bytes), `lane_scale` (k/4) and `offset` (k/32, or k/16
/// for Q2_K), with
/// AVX-512BW masks for the fifth bits (`unpack_rows_avx512` for several rows).
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(super) unsafe fn unpack_row_avx512(
    ty: GgmlType,
    row: &[u8],
    u: &mut [u8],
    lane_scale: &mut [f32],
    offset: &mut [f32],
) {
    unpack_into::<true>(ty, row, u, lane_scale, offset)
}

#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn unpack_into<const BW: bool>(ty: GgmlType, row: &[u8], u: &mut [u8], ls: &mut [f32], off: &mut [f32]) {
    let bb = ty.block_bytes();
    let nb = row.len() / bb;
    let k = nb * ty.block_elems();
    let group = bias_and_sum_term(ty).1.group();
    assert!(u.len() >= k && ls.len() >= k / 4 && off.len() >= k / group, "unpack buffers hold the row");
    let (u, ls, off) = (u.as_mut_ptr(), ls.as_mut_ptr(), off.as_mut_ptr());
    let p0 = row.as_ptr();
    let m0f = _mm256_set1_epi8(0x0F);
    for i in 0..nb {
        let p = p0.add(i * bb);
        match ty {
            GgmlType::Q8_0 => {
                let q = _mm256_loadu_si256(p.add(2).cast());
                _mm256_storeu_si256(u.add(32 * i).cast(), _mm256_xor_si256(q, _mm256_set1_epi8(-128)));
                _mm256_storeu_ps(ls.add(8 * i), _mm256_set1_ps(f16_at(p)));
                *off.add(i) = 0.0;
            }
            GgmlType::Q4_0 => {
                _mm256_storeu_si256(u.add(32 * i).cast(), nibbles32(p.add(2)));
                let d = f16_at(p);
                _mm256_storeu_ps(ls.add(8 * i), _mm256_set1_ps(d));
                *off.add(i) = -8.0 * d;
            }
            GgmlType::Q4_1 => {
                _mm256_storeu_si256(u.add(32 * i).cast(), nibbles32(p.add(4)));
                _mm256_storeu_ps(ls.add(8 * i), _mm256_set1_ps(f16_at(p)));
                *off.add(i) = f16_at(p.add(2));
            }
            GgmlType::Q5_0 => {
                let qh = std::ptr::read_unaligned(p.add(2).cast::<u32>());
                let v = fifth_bits::<BW>(nibbles32(p.add(6)), qh);
                _mm256_storeu_si256(u.add(32 * i).cast(), v);
                let d = f16_at(p);
                _mm256_storeu_ps(ls.add(8 * i), _mm256_set1_ps(d));
                *off.add(i) = -16.0 * d;
            }
            GgmlType::Q5_1 => {
                let qh = std::ptr::read_unaligned(p.add(4).cast::<u32>());
                let v = fifth_bits::<BW>(nibbles32(p.add(8)), qh);
                _mm256_storeu_si256(u.add(32 * i).cast(), v);
                _mm256_storeu_ps(ls.add(8 * i), _mm256_set1_ps(f16_at(p)));
                *off.add(i) = f16_at(p.add(2));
            }
            GgmlType::Q4_K | GgmlType::Q5_K => {
                let (d, dmin) = (f16_at(p), f16_at(p.add(2)));
                let scales: &[u8; 12] = &*p.add(4).cast::<[u8; 12]>();
                let (sc, mn) = get_scale_min_k4(scales);
                let (qs, qh) = if ty == GgmlType::Q5_K { (p.add(48), Some(p.add(16))) } else { (p.add(16), None) };
                let h = qh.map(|q| _mm256_loadu_si256(q.cast()));
                for g in 0..4 {
                    let x = _mm256_loadu_si256(qs.add(32 * g).cast());
                    let mut lo = _mm256_and_si256(x, m0f);
                    let mut hi = _mm256_and_si256(_mm256_srli_epi16::<4>(x), m0f);
                    if let Some(h) = h {
                        // Bit `sub` of qh[l] is the fifth bit of value l of sub-block `sub`.
                        let one = _mm256_set1_epi8(1);
                        let b0 = _mm256_and_si256(_mm256_srl_epi16(h, _mm_cvtsi32_si128(2 * g as i32)), one);
                        let b1 = _mm256_and_si256(_mm256_srl_epi16(h, _mm_cvtsi32_si128(2 * g as i32 + 1)), one);
                        lo = _mm256_or_si256(lo, _mm256_slli_epi16::<4>(b0));
                        hi = _mm256_or_si256(hi, _mm256_slli_epi16::<4>(b1));
                    }
                    _mm256_storeu_si256(u.add(256 * i + 64 * g).cast(), lo);
                    _mm256_storeu_si256(u.add(256 * i + 64 * g + 32).cast(), hi);
                }
                for sub in 0..8 {
                    _mm256_storeu_ps(ls.add(64 * i + 8 * sub), _mm256_set1_ps(d * sc[sub] as f32));
                    *off.add(8 * i + sub) = -(dmin * mn[sub] as f32);
                }
            }
            GgmlType::Q6_K => {
                let (ql, qh, sc) = (p, p.add(128), p.add(192));
                let d = f16_at(p.add(208));
                let m3 = _mm256_set1_epi8(3);
                for half in 0..2 {
                    let ql0 = _mm256_loadu_si256(ql.add(64 * half).cast());
                    let ql1 = _mm256_loadu_si256(ql.add(64 * half + 32).cast());
                    let h = _mm256_loadu_si256(qh.add(32 * half).cast());
                    let quarters = [
                        (_mm256_and_si256(ql0, m0f), _mm256_and_si256(h, m3)),
                        (_mm256_and_si256(ql1, m0f), _mm256_and_si256(_mm256_srli_epi16::<2>(h), m3)),
                        (
                            _mm256_and_si256(_mm256_srli_epi16::<4>(ql0), m0f),
                            _mm256_and_si256(_mm256_srli_epi16::<4>(h), m3),
                        ),
                        (
                            _mm256_and_si256(_mm256_srli_epi16::<4>(ql1), m0f),
                            _mm256_and_si256(_mm256_srli_epi16::<6>(h), m3),
                        ),
                    ];
                    for (q, (lo, hi)) in quarters.into_iter().enumerate() {
                        let v = _mm256_or_si256(lo, _mm256_slli_epi16::<4>(hi));
                        _mm256_storeu_si256(u.add(256 * i + 128 * half + 32 * q).cast(), v);
                    }
                }
                for g in 0..16 {
                    let s = d * (*sc.add(g) as i8) as f32;
                    _mm_storeu_ps(ls.add(64 * i + 4 * g), _mm_set1_ps(s));
                }
                for b in 0..8 {
                    *off.add(8 * i + b) = 0.0;
                }
            }
            GgmlType::Q2_K => {
                // scales[16], qs[64], d, dmin: u = bits 2j.. of qs[32h + l] for value 128h + 32j + l.
                let (sc, qs) = (p, p.add(16));
                let (d, dmin) = (f16_at(p.add(80)), f16_at(p.add(82)));
                let m3 = _mm256_set1_epi8(3);
                for h in 0..2 {
                    let x = _mm256_loadu_si256(qs.add(32 * h).cast());
                    let parts = [x, _mm256_srli_epi16::<2>(x), _mm256_srli_epi16::<4>(x), _mm256_srli_epi16::<6>(x)];
                    for (j, v) in parts.into_iter().enumerate() {
                        _mm256_storeu_si256(u.add(256 * i + 128 * h + 32 * j).cast(), _mm256_and_si256(v, m3));
                    }
                }
                for g in 0..16 {
                    let s = *sc.add(g);
                    _mm_storeu_ps(ls.add(64 * i + 4 * g), _mm_set1_ps(d * (s & 0x0F) as f32));
                    *off.add(16 * i + g) = -(dmin * (s >> 4) as f32);
                }
            }
            GgmlType::Q3_K => {
                // hmask[32], qs[64], scales[12], d: u = low | 4·hbit + 28 (q + 32).
                let (hm, qs) = (p, p.add(32));
                let d = f16_at(p.add(108));
                let scales = crate::quant::q3_k_scales(&*p.add(96).cast::<[u8; 12]>());
                let (m3, one, k28) = (_mm256_set1_epi8(3), _mm256_set1_epi8(1), _mm256_set1_epi8(28));
                let h = _mm256_loadu_si256(hm.cast());
                for half in 0..2 {
                    let x = _mm256_loadu_si256(qs.add(32 * half).cast());
                    for j in 0..4 {
                        let b = 4 * half + j;
                        let low = _mm256_and_si256(_mm256_srl_epi16(x, _mm_cvtsi32_si128(2 * j as i32)), m3);
                        let hb = _mm256_and_si256(_mm256_srl_epi16(h, _mm_cvtsi32_si128(b as i32)), one);
                        let v = _mm256_add_epi8(_mm256_or_si256(low, _mm256_slli_epi16::<2>(hb)), k28);
                        _mm256_storeu_si256(u.add(256 * i + 32 * b).cast(), v);
                    }
                }
                for (g, s) in scales.into_iter().enumerate() {
                    _mm_storeu_ps(ls.add(64 * i + 4 * g), _mm_set1_ps(d * s as f32));
                }
                for b in 0..8 {
                    *off.add(8 * i + b) = 0.0;
                }
            }
            GgmlType::IQ4_NL => {
                let v = _mm256_shuffle_epi8(iq4_table(), nibbles32(p.add(2)));
                _mm256_storeu_si256(u.add(32 * i).cast(), v);
                _mm256_storeu_ps(ls.add(8 * i), _mm256_set1_ps(f16_at(p)));
                *off.add(i) = 0.0;
            }
            GgmlType::IQ4_XS => {
                // d, scales_h (u16), scales_l[4], qs[128]: sub-block ib as an IQ4_NL block.
                let d = f16_at(p);
                let sh = std::ptr::read_unaligned(p.add(2).cast::<u16>());
                let table = iq4_table();
                for ib in 0..8 {
                    let v = _mm256_shuffle_epi8(table, nibbles32(p.add(8 + 16 * ib)));
                    _mm256_storeu_si256(u.add(256 * i + 32 * ib).cast(), v);
                    let lo = (*p.add(4 + ib / 2) >> (4 * (ib % 2))) & 0x0F;
                    let hi = ((sh >> (2 * ib)) & 3) as u8;
                    let s = (lo | (hi << 4)) as i32 - 32;
                    _mm256_storeu_ps(ls.add(64 * i + 8 * ib), _mm256_set1_ps(d * s as f32));
                    *off.add(8 * i + ib) = 0.0;
                }
            }
            other => unreachable!("{other} has no int8 kernel"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Dots of an unpacked row with activation rows.

/// Σ_b offset_b · sum_b over the row's activation blocks, 8 at a time.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn offset_dot_avx2(un: &Unpacked, a: &Q8Rows, t: usize) -> f32 {
    let nb = un.offset.len();
    let sums = un.sums(a, t);
    if sums.is_empty() {
        return 0.0;
    }
    let mut acc = _mm256_setzero_ps();
    let mut b = 0;
    while b + 8 <= nb {
        acc = _mm256_fmadd_ps(_mm256_loadu_ps(un.offset.as_ptr().add(b)), _mm256_loadu_ps(sums.as_ptr().add(b)), acc);
        b += 8;
    }
    let mut tail = 0f32;
    while b < nb {
        tail += un.offset[b] * sums[b];
        b += 1;
    }
    hsum_avx2(acc) + tail
}

/// The sum of eight lanes in ggml's `hsum_float_8` order: 128-bit halves added, the upper pair onto
/// the lower, the two left.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
pub(super) unsafe fn hsum_avx2(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)))
}

/// Pointers to activation rows t0..t0+NT.
struct ActRows<const NT: usize> {
    qs: [*const i8; NT],
    d_lanes: [*const f32; NT],
    nsum4: [*const i32; NT],
}

impl<const NT: usize> ActRows<NT> {
    fn new(a: &Q8Rows, t0: usize) -> Self {
        let k = a.k();
        assert!(t0 + NT <= a.n() && a.qs.len() >= a.n() * k && a.d_lanes.len() >= a.n() * k / 4);
        ActRows {
            qs: std::array::from_fn(|j| a.qs[(t0 + j) * k..].as_ptr()),
            d_lanes: std::array::from_fn(|j| a.d_lanes[(t0 + j) * k / 4..].as_ptr()),
            nsum4: std::array::from_fn(|j| a.nsum4[(t0 + j) * k / 4..].as_ptr()),
        }
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot_avx2(un: &Unpacked, a: &Q8Rows, toks: std::ops::Range<usize>, out: &mut [f32]) {
    assert!(un.k == a.k() && un.u.len() >= un.k && un.lane_scale.len() >= un.k / 4);
    let (t0, n) = (toks.start, toks.end);
    let mut t = t0;
    while t + 4 <= n {
        tile_avx2::<4>(un, a, t, &mut out[t - t0..t - t0 + 4]);
        t += 4;
    }
    while t < n {
        tile_avx2::<1>(un, a, t, &mut out[t - t0..t - t0 + 1]);
        t += 1;
    }
}

/// NT activation rows against the unpacked row, one 32-value block (8 lanes) at a time.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn tile_avx2<const NT: usize>(un: &Unpacked, a: &Q8Rows, t0: usize, out: &mut [f32]) {
    let rows = ActRows::<NT>::new(a, t0);
    let (u, ls) = (un.u.as_ptr(), un.lane_scale.as_ptr());
    let ones = _mm256_set1_epi16(1);
    let mut acc = [_mm256_setzero_ps(); NT];
    for c in 0..un.k / 32 {
        let w = _mm256_loadu_si256(u.add(32 * c).cast());
        let sc = _mm256_loadu_ps(ls.add(8 * c));
        // Signed weights (bias 128): |w| times a with w's sign, so the pair sums stay below 2^15.
        let ws = _mm256_xor_si256(w, _mm256_set1_epi8(-128));
        let wabs = _mm256_sign_epi8(ws, ws);
        for j in 0..NT {
            let av = _mm256_loadu_si256(rows.qs[j].add(32 * c).cast());
            let lanes = match un.bias {
                128 => _mm256_madd_epi16(_mm256_maddubs_epi16(wabs, _mm256_sign_epi8(av, ws)), ones),
                0 => _mm256_madd_epi16(_mm256_maddubs_epi16(w, av), ones),
                _ => {
                    // Bias 32: start from −32·Σ of each 4 activations.
                    let init = _mm256_slli_epi32::<5>(_mm256_loadu_si256(rows.nsum4[j].add(8 * c).cast()));
                    _mm256_add_epi32(_mm256_madd_epi16(_mm256_maddubs_epi16(w, av), ones), init)
                }
            };
            let s = _mm256_mul_ps(sc, _mm256_loadu_ps(rows.d_lanes[j].add(8 * c)));
            acc[j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(lanes), s, acc[j]);
        }
    }
    for j in 0..NT {
        out[j] = hsum_avx2(acc[j]) + offset_dot_avx2(un, a, t0 + j);
    }
}

#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn dot_avx512(un: &Unpacked, a: &Q8Rows, toks: std::ops::Range<usize>, out: &mut [f32]) {
    assert!(un.k == a.k() && un.u.len() >= un.k && un.lane_scale.len() >= un.k / 4);
    match un.bias {
        0 => dot512::<0>(un, a, toks, out),
        32 => dot512::<5>(un, a, toks, out),
        128 => dot512::<7>(un, a, toks, out),
        b => unreachable!("bias {b}"),
    }
}

#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,avx2,fma,f16c")]
#[inline]
unsafe fn dot512<const SHIFT: u32>(un: &Unpacked, a: &Q8Rows, toks: std::ops::Range<usize>, out: &mut [f32]) {
    let (t0, n) = (toks.start, toks.end);
    let mut t = t0;
    while t + 4 <= n {
        tile512::<SHIFT, 4>(un, a, t, &mut out[t - t0..t - t0 + 4]);
        t += 4;
    }
    while t < n {
        tile512::<SHIFT, 1>(un, a, t, &mut out[t - t0..t - t0 + 1]);
        t += 1;
    }
}

/// The lanes of one 64-value chunk (or a 32-value tail under masks): `vpdpbusd` from −bias·Σ4a
/// (SHIFT = log2 bias; 0 means no bias), then lane scale × d8 into the accumulator.
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,avx2,fma,f16c")]
#[inline]
unsafe fn tile512<const SHIFT: u32, const NT: usize>(un: &Unpacked, a: &Q8Rows, t0: usize, out: &mut [f32]) {
    let rows = ActRows::<NT>::new(a, t0);
    let (u, ls) = (un.u.as_ptr(), un.lane_scale.as_ptr());
    let mut acc = [_mm512_setzero_ps(); NT];
    let full = un.k / 64;
    for c in 0..full {
        let w = _mm512_loadu_si512(u.add(64 * c).cast());
        let sc = _mm512_loadu_ps(ls.add(16 * c));
        for j in 0..NT {
            let av = _mm512_loadu_si512(rows.qs[j].add(64 * c).cast());
            let init = if SHIFT == 0 {
                _mm512_setzero_si512()
            } else {
                _mm512_slli_epi32::<SHIFT>(_mm512_loadu_si512(rows.nsum4[j].add(16 * c).cast()))
            };
            let lanes = _mm512_dpbusd_epi32(init, w, av);
            let s = _mm512_mul_ps(sc, _mm512_loadu_ps(rows.d_lanes[j].add(16 * c)));
            acc[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(lanes), s, acc[j]);
        }
    }
    if !un.k.is_multiple_of(64) {
        let c = full;
        let (mb, ml): (__mmask64, __mmask16) = (0xFFFF_FFFF, 0x00FF);
        let w = _mm512_maskz_loadu_epi8(mb, u.add(64 * c).cast());
        let sc = _mm512_maskz_loadu_ps(ml, ls.add(16 * c));
        for j in 0..NT {
            let av = _mm512_maskz_loadu_epi8(mb, rows.qs[j].add(64 * c));
            let init = if SHIFT == 0 {
                _mm512_setzero_si512()
            } else {
                _mm512_slli_epi32::<SHIFT>(_mm512_maskz_loadu_epi32(ml, rows.nsum4[j].add(16 * c)))
            };
            let lanes = _mm512_dpbusd_epi32(init, w, av);
            let s = _mm512_mul_ps(sc, _mm512_maskz_loadu_ps(ml, rows.d_lanes[j].add(16 * c)));
            acc[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(lanes), s, acc[j]);
        }
    }
    for j in 0..NT {
        out[j] = _mm512_reduce_add_ps(acc[j]) + offset_dot_avx2(un, a, t0 + j);
    }
}

// ---------------------------------------------------------------------------------------------
// Float weights.

/// 8 (AVX2) or 16 (AVX-512) weights widened to f32.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn widen8(ty: GgmlType, p: *const u8) -> __m256 {
    match ty {
        GgmlType::F32 => _mm256_loadu_ps(p.cast()),
        GgmlType::F16 => _mm256_cvtph_ps(_mm_loadu_si128(p.cast())),
        _ => _mm256_castsi256_ps(_mm256_slli_epi32::<16>(_mm256_cvtepu16_epi32(_mm_loadu_si128(p.cast())))),
    }
}

#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma,f16c")]
#[inline]
unsafe fn widen16(ty: GgmlType, p: *const u8) -> __m512 {
    match ty {
        GgmlType::F32 => _mm512_loadu_ps(p.cast()),
        GgmlType::F16 => _mm512_cvtph_ps(_mm256_loadu_si256(p.cast())),
        _ => _mm512_castsi512_ps(_mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(_mm256_loadu_si256(p.cast())))),
    }
}

/// The scalar value j of a float row.
fn float_at(ty: GgmlType, row: &[u8], j: usize) -> f32 {
    match ty {
        GgmlType::F32 => f32::from_le_bytes(row[4 * j..4 * j + 4].try_into().expect("4 bytes")),
        GgmlType::F16 => half::f16::from_le_bytes([row[2 * j], row[2 * j + 1]]).to_f32(),
        _ => half::bf16::from_le_bytes([row[2 * j], row[2 * j + 1]]).to_f32(),
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn float_rows_avx2(ty: GgmlType, row: &[u8], k: usize, x: &[f32], out: &mut [f32]) {
    let es = ty.block_bytes();
    let main = k / 8 * 8;
    for (t, o) in out.iter_mut().enumerate() {
        let xr = &x[t * k..(t + 1) * k];
        let mut acc = _mm256_setzero_ps();
        for c in (0..main).step_by(8) {
            acc = _mm256_fmadd_ps(widen8(ty, row.as_ptr().add(c * es)), _mm256_loadu_ps(xr.as_ptr().add(c)), acc);
        }
        let tail: f32 = (main..k).map(|j| float_at(ty, row, j) * xr[j]).sum();
        *o = hsum_avx2(acc) + tail;
    }
}

#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma,f16c")]
unsafe fn float_rows_avx512(ty: GgmlType, row: &[u8], k: usize, x: &[f32], out: &mut [f32]) {
    let es = ty.block_bytes();
    let main = k / 16 * 16;
    let n = out.len();
    let mut t = 0;
    while t < n {
        // Up to four activation rows share each widened chunk of weights.
        let nt = (n - t).min(4);
        let mut acc = [_mm512_setzero_ps(); 4];
        for c in (0..main).step_by(16) {
            let w = widen16(ty, row.as_ptr().add(c * es));
            for j in 0..nt {
                acc[j] = _mm512_fmadd_ps(w, _mm512_loadu_ps(x.as_ptr().add((t + j) * k + c)), acc[j]);
            }
        }
        for j in 0..nt {
            let xr = &x[(t + j) * k..(t + j + 1) * k];
            let tail: f32 = (main..k).map(|i| float_at(ty, row, i) * xr[i]).sum();
            out[t + j] = _mm512_reduce_add_ps(acc[j]) + tail;
        }
        t += nt;
    }
}
