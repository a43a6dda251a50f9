//! x86-64 kernels of the Q8_0-lane order ([`crate::quant::q8_0_lanes`]): Q4_0, Q5_0, Q8_0 and
//! IQ4_NL weights against Q8_0 activation rows, each output accumulated in eight f32 lanes of four
//! products, `fma(d_w·d_a, lane, acc)` block after block, then summed as ggml's `hsum`. The same
//! operations in the same order as the scalar reference, so the results are its bits.
//!
//! - AVX-512 VNNI: one 512-bit accumulator holds two weight rows' eight lanes for one token (rows
//!   in the low and high 256 bits, the activation block broadcast to both), two such pairs and up
//!   to eight tokens a pass; the integer lanes come from `vpdpbusd` of the biased unsigned weights
//!   started at −bias·Σ4a (exactly the signed sums).
//! - AVX-512 VNNI, passes of 16+ tokens ([`gemm_panels_avx512`]): 16 rows unpacked once into
//!   lane-major vectors (lane l of a block for all 16 rows in one register), so one `vpdpbusd`
//!   gives one of ggml's lanes for 16 outputs and one multiply scales a block for all of them.
//! - AVX2: one row per 256-bit accumulator and up to four tokens a pass; ggml's own `maddubs` of
//!   |w| with sign(a, w) (no 16-bit pair can saturate: |w| ≤ 128, |a| ≤ 127).
//!
//! All functions are `unsafe` with `#[target_feature]`; they are reached only through
//! `gemm_q8_1_into` after the instruction set was asserted to run here.

// Tiles index parallel arrays (accumulators, row pointers) by token and pair.
#![allow(clippy::needless_range_loop)]

use std::arch::x86_64::*;

// The f16 scale, the 8-lane sum in ggml's order, the prefetch and the f16 gathers are the other
// x86 kernels'.
use super::x86::{f16_at, hsum_avx2};
use super::x86_fused::{gather_f16, prefetch_ahead};
use super::OutMatrix;
use crate::dtype::GgmlType;
use crate::quant::q8_1::Q8Rows;
use crate::quant::KVALUES_IQ4NL;

const Q8_0: u8 = 0;
const Q4_0: u8 = 1;
const Q5_0: u8 = 2;
const IQ4_NL: u8 = 3;

fn code(ty: GgmlType) -> u8 {
    match ty {
        GgmlType::Q8_0 => Q8_0,
        GgmlType::Q4_0 => Q4_0,
        GgmlType::Q5_0 => Q5_0,
        GgmlType::IQ4_NL => IQ4_NL,
        other => unreachable!("{other} does not take the q8_0-lane order"),
    }
}

/// (block bytes, offset of the quants, of the fifth bits, log2 of the unsigned form's bias).
const fn layout(ty: u8) -> (usize, usize, usize, i32) {
    match ty {
        Q8_0 => (34, 2, 0, 7),
        Q4_0 => (18, 2, 0, 3),
        Q5_0 => (22, 6, 2, 4),
        _ => (18, 2, 0, 7),
    }
}

/// Bytes a weight row and weight rows of a product, after the shape checks every entry makes (the
/// kernels read by raw pointer within these bounds).
fn checked_shape(
    ty: GgmlType,
    w: &[u8],
    k: usize,
    a: &Q8Rows,
    out: &OutMatrix<'_>,
    toks: &std::ops::Range<usize>,
) -> (usize, usize) {
    let row_bytes = k / 32 * ty.block_bytes();
    let rows = w.len() / row_bytes;
    assert!(a.k() == k && out.rows() == rows && out.toks() == a.n() && rows * row_bytes == w.len());
    assert!(toks.end <= a.n());
    (row_bytes, rows)
}

/// Token tiles: the largest of 8, 4, 2, 1 (at most `max`) that fits what is left.
fn tiles(toks: std::ops::Range<usize>, max: usize) -> impl Iterator<Item = (usize, usize)> {
    let mut t = toks.start;
    std::iter::from_fn(move || {
        (t < toks.end).then(|| {
            let nt = [8, 4, 2, 1].into_iter().find(|&c| c <= (toks.end - t).min(max)).expect("1 fits");
            t += nt;
            (t - nt, nt)
        })
    })
}

/// Row r, token t of the product for every row of `w` (rows of `k` values of `ty`) and the
/// activation rows `toks` of `a` (Q8_0 rows).
///
/// # Safety
/// The host must support AVX-512 F/BW/DQ/VL/VNNI, AVX2, FMA and F16C; `w` must hold whole rows of
/// `k` values of `ty`, `a` rows of `k` values, `out` one row per weight row and a column per
/// activation row.
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(super) unsafe fn gemm_avx512(
    ty: GgmlType,
    w: &[u8],
    k: usize,
    a: &Q8Rows,
    out: &mut OutMatrix<'_>,
    toks: std::ops::Range<usize>,
) {
    let (row_bytes, rows) = checked_shape(ty, w, k, a, out, &toks);
    for (t0, nt) in tiles(toks, 8) {
        macro_rules! go {
            ($ty:ident, $nt:literal) => {{
                let mut r = 0;
                while r + 4 <= rows {
                    tile512::<$ty, $nt, 2>(w, row_bytes, [r, r + 1, r + 2, r + 3], k, a, t0, out, 4);
                    r += 4;
                }
                if r + 2 <= rows {
                    tile512::<$ty, $nt, 1>(w, row_bytes, [r, r + 1, 0, 0], k, a, t0, out, 2);
                    r += 2;
                }
                if r < rows {
                    // A lone row pairs with itself; its copy is not stored.
                    tile512::<$ty, $nt, 1>(w, row_bytes, [r, r, 0, 0], k, a, t0, out, 1);
                }
            }};
        }
        macro_rules! by_nt {
            ($ty:ident) => {
                match nt {
                    8 => go!($ty, 8),
                    4 => go!($ty, 4),
                    2 => go!($ty, 2),
                    _ => go!($ty, 1),
                }
            };
        }
        match code(ty) {
            Q8_0 => by_nt!(Q8_0),
            Q4_0 => by_nt!(Q4_0),
            Q5_0 => by_nt!(Q5_0),
            _ => by_nt!(IQ4_NL),
        }
    }
}

/// Passes of at least this many tokens take [`gemm_panels_avx512`]: its unpacking of 16 rows
/// at a time pays for itself over this many tokens.
pub(super) const PANEL_MIN_TOKENS: usize = 16;

thread_local! {
    /// A panel's weights (per block: 8 lanes × 16 rows × 4 biased bytes) and scales (16 per
    /// block), and the activations' lane starts −bias·Σ4a per token and group of 4.
    static PANEL: std::cell::RefCell<(Vec<__m512i>, Vec<f32>, Vec<i32>)> =
        const { std::cell::RefCell::new((Vec::new(), Vec::new(), Vec::new())) };
}

/// As [`gemm_avx512`], for passes of many tokens: 16 weight rows at a time, unpacked once into
/// lane-major vectors (lane l of block b of all 16 rows in one register, row i in int32 lane
/// i), so each `vpdpbusd` yields one of ggml's eight lanes for 16 outputs and the block scale is
/// one multiply for all of them. The arithmetic of every output is [`tile512`]'s, in the same
/// order: the same bits.
///
/// # Safety
/// As [`gemm_avx512`].
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(super) unsafe fn gemm_panels_avx512(
    ty: GgmlType,
    w: &[u8],
    k: usize,
    a: &Q8Rows,
    out: &mut OutMatrix<'_>,
    toks: std::ops::Range<usize>,
) {
    let (row_bytes, rows) = checked_shape(ty, w, k, a, out, &toks);
    match code(ty) {
        Q8_0 => panels::<Q8_0>(w, row_bytes, rows, k, a, out, toks),
        Q4_0 => panels::<Q4_0>(w, row_bytes, rows, k, a, out, toks),
        Q5_0 => panels::<Q5_0>(w, row_bytes, rows, k, a, out, toks),
        _ => panels::<IQ4_NL>(w, row_bytes, rows, k, a, out, toks),
    }
}

#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn panels<const TY: u8>(
    w: &[u8],
    row_bytes: usize,
    rows: usize,
    k: usize,
    a: &Q8Rows,
    out: &mut OutMatrix<'_>,
    toks: std::ops::Range<usize>,
) {
    let (bb, _, _, shift) = layout(TY);
    let nb = k / 32;
    PANEL.with(|cell| {
        let (wv, dw, init) = &mut *cell.borrow_mut();
        wv.resize(nb * 8, _mm512_setzero_si512());
        dw.resize(nb * 16, 0.0);
        // −bias·Σ4a per token and group, as the vectors' starting values read it.
        init.clear();
        init.extend(a.nsum4[toks.start * k / 4..toks.end * k / 4].iter().map(|&v| v << shift));
        let mut bytes = [[0u8; 32]; 16];
        // Lane l of the 16 rows: u32 l of each row's 32 bytes.
        let lane_index = _mm512_mullo_epi32(
            _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
            _mm512_set1_epi32(8),
        );
        let row_offsets = _mm512_mullo_epi32(
            _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
            _mm512_set1_epi32(row_bytes as i32),
        );
        for r0 in (0..rows).step_by(16) {
            let live = (rows - r0).min(16);
            let mask: __mmask16 = if live == 16 { 0xFFFF } else { (1u16 << live) - 1 };
            let base = w.as_ptr().add(r0 * row_bytes);
            for b in 0..nb {
                let row = |i: usize| base.add(i.min(live - 1) * row_bytes + b * bb);
                for i in (0..16).step_by(2) {
                    _mm512_storeu_si512(bytes[i..].as_mut_ptr().cast(), pair_weights::<TY>(row(i), row(i + 1)));
                }
                for l in 0..8 {
                    let idx = _mm512_add_epi32(lane_index, _mm512_set1_epi32(l as i32));
                    wv[8 * b + l] = _mm512_i32gather_epi32::<4>(idx, bytes.as_ptr().cast());
                }
                // The 16 rows' f16 scales (0 past the last row).
                let g = _mm512_mask_i32gather_epi32::<1>(
                    _mm512_setzero_si512(),
                    mask,
                    row_offsets,
                    base.add(b * bb).cast(),
                );
                _mm512_storeu_ps(dw.as_mut_ptr().add(16 * b), _mm512_cvtph_ps(_mm512_cvtepi32_epi16(g)));
            }
            let mut t = toks.start;
            while t < toks.end {
                if t + 2 <= toks.end {
                    panel_tokens::<2>(wv, dw, init, k, a, toks.start, t, r0, live, out);
                    t += 2;
                } else {
                    panel_tokens::<1>(wv, dw, init, k, a, toks.start, t, r0, live, out);
                    t += 1;
                }
            }
        }
    });
}

/// Tokens t0..t0+NT against one unpacked panel (rows r0..r0+live).
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,avx2,fma,f16c")]
#[inline]
unsafe fn panel_tokens<const NT: usize>(
    wv: &[__m512i],
    dw: &[f32],
    init: &[i32],
    k: usize,
    a: &Q8Rows,
    first_tok: usize,
    t0: usize,
    r0: usize,
    live: usize,
    out: &mut OutMatrix<'_>,
) {
    let nb = k / 32;
    let mut acc = [[_mm512_setzero_ps(); 8]; NT];
    let qs = a.qs.as_ptr();
    for b in 0..nb {
        let dwb = _mm512_loadu_ps(dw.as_ptr().add(16 * b));
        for j in 0..NT {
            let t = t0 + j;
            let dd = _mm512_mul_ps(dwb, _mm512_set1_ps(a.d[t * nb + b]));
            let aq = qs.add(t * k + 32 * b).cast::<i32>();
            let st = init.as_ptr().add((t - first_tok) * k / 4 + 8 * b);
            for l in 0..8 {
                let av = _mm512_set1_epi32(std::ptr::read_unaligned(aq.add(l)));
                let lanes = _mm512_dpbusd_epi32(_mm512_set1_epi32(*st.add(l)), wv[8 * b + l], av);
                acc[j][l] = _mm512_fmadd_ps(dd, _mm512_cvtepi32_ps(lanes), acc[j][l]);
            }
        }
    }
    for j in 0..NT {
        let l = &acc[j];
        // ggml's hsum of each row's eight lanes, 16 rows at once.
        let h: [__m512; 4] = std::array::from_fn(|i| _mm512_add_ps(l[i], l[i + 4]));
        let sum = _mm512_add_ps(_mm512_add_ps(h[0], h[2]), _mm512_add_ps(h[1], h[3]));
        let mut v = [0f32; 16];
        _mm512_storeu_ps(v.as_mut_ptr(), sum);
        for (i, &x) in v[..live].iter().enumerate() {
            out.set(r0 + i, t0 + j, x);
        }
    }
}

/// Block b of two weight rows as biased unsigned bytes: bytes 0..32 row A (at `pa`), 32..64 row
/// B, each in element order.
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,avx2,fma,f16c")]
#[inline]
unsafe fn pair_weights<const TY: u8>(pa: *const u8, pb: *const u8) -> __m512i {
    let (_, qs, qh, _) = layout(TY);
    if TY == Q8_0 {
        let z = _mm512_inserti64x4::<1>(
            _mm512_castsi256_si512(_mm256_loadu_si256(pa.add(qs).cast())),
            _mm256_loadu_si256(pb.add(qs).cast()),
        );
        return _mm512_xor_si512(z, _mm512_set1_epi8(-128)); // q + 128
    }
    let y = _mm256_inserti128_si256::<1>(
        _mm256_castsi128_si256(_mm_loadu_si128(pa.add(qs).cast())),
        _mm_loadu_si128(pb.add(qs).cast()),
    );
    let z = _mm512_castsi256_si512(y);
    // 128-bit lanes [A, A, B, B], the second of each pair shifted to its high nibbles.
    let z = _mm512_shuffle_i64x2::<0b01_01_00_00>(z, z);
    let z = _mm512_mask_srli_epi16::<4>(z, 0xFF00_FF00, z);
    let z = _mm512_and_si512(z, _mm512_set1_epi8(0x0F));
    match TY {
        Q5_0 => {
            let ha = std::ptr::read_unaligned(pa.add(qh).cast::<u32>()) as u64;
            let hb = std::ptr::read_unaligned(pb.add(qh).cast::<u32>()) as u64;
            _mm512_mask_add_epi8(z, ha | (hb << 32), z, _mm512_set1_epi8(0x10))
        }
        IQ4_NL => {
            let table: [u8; 16] = std::array::from_fn(|i| (KVALUES_IQ4NL[i] as i32 + 128) as u8);
            _mm512_shuffle_epi8(_mm512_broadcast_i32x4(_mm_loadu_si128(table.as_ptr().cast())), z)
        }
        _ => z,
    }
}

/// Weight rows `r[..2·RP]` (pairs 2p, 2p+1) against tokens t0..t0+NT; stores the first `store`
/// rows of the list.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn tile512<const TY: u8, const NT: usize, const RP: usize>(
    w: &[u8],
    row_bytes: usize,
    r: [usize; 4],
    k: usize,
    a: &Q8Rows,
    t0: usize,
    out: &mut OutMatrix<'_>,
    store: usize,
) {
    let (bb, _, _, shift) = layout(TY);
    let nb = k / 32;
    let shift = _mm_cvtsi32_si128(shift);
    let p: [*const u8; 4] = std::array::from_fn(|i| w.as_ptr().add(r[i] * row_bytes));
    let (qs, nsum4, d8) = (a.qs.as_ptr(), a.nsum4.as_ptr(), a.d.as_ptr());
    let mut acc = [[_mm512_setzero_ps(); NT]; RP];
    let block_offsets = _mm512_mullo_epi32(
        _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
        _mm512_set1_epi32(bb as i32),
    );
    // Block c of the 16 gathered: its scale from row A's vector in the low half, B's in the high.
    let pair = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 16, 16, 16, 16, 16, 16, 16, 16);
    let mut g = 0;
    while g < nb {
        let m = (nb - g).min(16);
        let mask: __mmask16 = if m == 16 { 0xFFFF } else { (1u16 << m) - 1 };
        // The f16 scales of these 16 blocks of every row, widened (one gather a row).
        let mut dws = [_mm512_setzero_ps(); 4];
        for i in 0..2 * RP {
            dws[i] = gather_f16(p[i].add(g * bb), block_offsets, mask, 0);
        }
        for c in 0..m {
            let b = g + c;
            let idx = _mm512_add_epi32(pair, _mm512_set1_epi32(c as i32));
            let mut wv = [_mm512_setzero_si512(); RP];
            let mut dw = [_mm512_setzero_ps(); RP];
            for q in 0..RP {
                let (pa, pb) = (p[2 * q].add(b * bb), p[2 * q + 1].add(b * bb));
                // Every block (two of them would skip lines of Q8_0 rows): four rows are read
                // side by side, so the hardware prefetchers see four short streams.
                prefetch_ahead(pa);
                prefetch_ahead(pb);
                wv[q] = pair_weights::<TY>(pa, pb);
                dw[q] = _mm512_permutex2var_ps(dws[2 * q], idx, dws[2 * q + 1]);
            }
            for j in 0..NT {
                let t = t0 + j;
                let av = _mm512_broadcast_i64x4(_mm256_loadu_si256(qs.add(t * k + 32 * b).cast()));
                let ns = _mm512_broadcast_i64x4(_mm256_loadu_si256(nsum4.add(t * k / 4 + 8 * b).cast()));
                let init = _mm512_sll_epi32(ns, shift);
                let da = _mm512_set1_ps(*d8.add(t * nb + b));
                for q in 0..RP {
                    let lanes = _mm512_dpbusd_epi32(init, wv[q], av);
                    acc[q][j] = _mm512_fmadd_ps(_mm512_mul_ps(dw[q], da), _mm512_cvtepi32_ps(lanes), acc[q][j]);
                }
            }
        }
        g += 16;
    }
    for q in 0..RP {
        for j in 0..NT {
            let v = acc[q][j];
            out.set(r[2 * q], t0 + j, hsum_avx2(_mm512_castps512_ps256(v)));
            if 2 * q + 1 < store {
                out.set(r[2 * q + 1], t0 + j, hsum_avx2(_mm512_extractf32x8_ps::<1>(v)));
            }
        }
    }
}

/// As [`gemm_avx512`] with AVX2 (256-bit, one row per accumulator).
///
/// # Safety
/// The host must support AVX2, FMA and F16C; shapes as [`gemm_avx512`].
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn gemm_avx2(
    ty: GgmlType,
    w: &[u8],
    k: usize,
    a: &Q8Rows,
    out: &mut OutMatrix<'_>,
    toks: std::ops::Range<usize>,
) {
    let (row_bytes, rows) = checked_shape(ty, w, k, a, out, &toks);
    for (t0, nt) in tiles(toks, 4) {
        macro_rules! by_nt {
            ($ty:ident) => {
                for r in 0..rows {
                    let p = w.as_ptr().add(r * row_bytes);
                    match nt {
                        4 => row256::<$ty, 4>(p, r, k, a, t0, out),
                        2 => row256::<$ty, 2>(p, r, k, a, t0, out),
                        _ => row256::<$ty, 1>(p, r, k, a, t0, out),
                    }
                }
            };
        }
        match code(ty) {
            Q8_0 => by_nt!(Q8_0),
            Q4_0 => by_nt!(Q4_0),
            Q5_0 => by_nt!(Q5_0),
            _ => by_nt!(IQ4_NL),
        }
    }
}

/// The block at `p` as 32 signed weights in element order.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn signed_weights<const TY: u8>(p: *const u8) -> __m256i {
    let (_, qs, qh, _) = layout(TY);
    if TY == Q8_0 {
        return _mm256_loadu_si256(p.add(qs).cast());
    }
    let x = _mm_loadu_si128(p.add(qs).cast());
    let m = _mm_set1_epi8(0x0F);
    let u = _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16::<4>(x), m), _mm_and_si128(x, m));
    match TY {
        Q4_0 => _mm256_sub_epi8(u, _mm256_set1_epi8(8)),
        Q5_0 => {
            // Byte j takes bit j of qh as its fifth bit.
            let h = _mm256_set1_epi32(std::ptr::read_unaligned(p.add(qh).cast::<u32>()) as i32);
            let spread = _mm256_shuffle_epi8(
                h,
                _mm256_set_epi64x(0x0303_0303_0303_0303, 0x0202_0202_0202_0202, 0x0101_0101_0101_0101, 0),
            );
            let bit = _mm256_set1_epi64x(0x8040_2010_0804_0201u64 as i64);
            let set = _mm256_cmpeq_epi8(_mm256_and_si256(spread, bit), bit);
            _mm256_sub_epi8(_mm256_or_si256(u, _mm256_and_si256(set, _mm256_set1_epi8(0x10))), _mm256_set1_epi8(16))
        }
        _ => {
            let table = _mm_loadu_si128(KVALUES_IQ4NL.as_ptr().cast());
            _mm256_shuffle_epi8(_mm256_set_m128i(table, table), u)
        }
    }
}

/// One weight row (at `p`, row `r` of `out`) against tokens t0..t0+NT on AVX2.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn row256<const TY: u8, const NT: usize>(
    p: *const u8,
    r: usize,
    k: usize,
    a: &Q8Rows,
    t0: usize,
    out: &mut OutMatrix<'_>,
) {
    let (bb, ..) = layout(TY);
    let nb = k / 32;
    let ones = _mm256_set1_epi16(1);
    let mut acc = [_mm256_setzero_ps(); NT];
    for b in 0..nb {
        let pb = p.add(b * bb);
        let wv = signed_weights::<TY>(pb);
        let aw = _mm256_sign_epi8(wv, wv);
        let dw = _mm256_set1_ps(f16_at(pb));
        for j in 0..NT {
            let t = t0 + j;
            let av = _mm256_loadu_si256(a.qs.as_ptr().add(t * k + 32 * b).cast());
            let lanes = _mm256_madd_epi16(ones, _mm256_maddubs_epi16(aw, _mm256_sign_epi8(av, wv)));
            let dd = _mm256_mul_ps(dw, _mm256_set1_ps(a.d[t * nb + b]));
            acc[j] = _mm256_fmadd_ps(dd, _mm256_cvtepi32_ps(lanes), acc[j]);
        }
    }
    for j in 0..NT {
        out.set(r, t0 + j, hsum_avx2(acc[j]));
    }
}
