//! Fused AVX-512 VNNI row kernels for a few tokens (decode): each weight row is unpacked in
//! registers, two 32-value blocks (or a k-quant's two sub-blocks) per 512-bit vector, and dotted
//! at once with up to four activation rows; nothing is stored between the unpack and the dot.
//!
//! Per block b the integer lanes are those of the unpacked path (`vpdpbusd` of biased unsigned
//! weights, started at −bias·Σ4a where there is a bias); the lane scale is the weight scale times
//! the activation's d8, from a register of per-block products (weight scales gathered once per
//! row, times each token's d8) with one permute per chunk and token. The offset terms (m·s, −8d·s, −16d·s, −dmin·m·d8Σa) go into the same accumulators
//! (every lane is summed at the end).
//!
//! All functions are `unsafe` with `#[target_feature]`; [`gemm`] is reached only through
//! `gemm_q8_1` in the parent module after `Isa::Avx512Vnni.supported()` was asserted.

// Tiles index several parallel arrays (accumulators, row pointers) by token.
#![allow(clippy::needless_range_loop)]

use std::arch::x86_64::*;

use super::x86::f16_at;
use super::OutMatrix;
use crate::dtype::GgmlType;
use crate::quant::q8_1::Q8Rows;

/// Tokens a fused pass takes at once.
const NT_MAX: usize = 8;

/// Whether [`gemm`] has a kernel for `ty`.
pub(super) fn has_kernel(ty: GgmlType) -> bool {
    matches!(
        ty,
        GgmlType::Q8_0
            | GgmlType::Q4_0
            | GgmlType::Q4_1
            | GgmlType::Q5_0
            | GgmlType::Q5_1
            | GgmlType::Q4_K
            | GgmlType::Q5_K
            | GgmlType::Q6_K
    )
}

/// Row r, token t of the product for every row of `w` (rows of `k` values of `ty`) and the
/// activation rows `toks` of `a`.
/// Returns false (computing nothing) for a type without a fused kernel.
///
/// # Safety
/// The host must support AVX-512 F/BW/VL/VNNI, AVX2, FMA and F16C; `w` must hold whole rows of
/// `k` values of `ty`, `a` rows of `k` values, `out` one row per weight row and a column per
/// activation row.
pub(super) unsafe fn gemm(
    ty: GgmlType,
    w: &[u8],
    k: usize,
    a: &Q8Rows,
    out: &mut OutMatrix<'_>,
    toks: std::ops::Range<usize>,
) -> bool {
    let code = match ty {
        GgmlType::Q8_0 => Q8_0,
        GgmlType::Q4_0 => Q4_0,
        GgmlType::Q4_1 => Q4_1,
        GgmlType::Q5_0 => Q5_0,
        GgmlType::Q5_1 => Q5_1,
        GgmlType::Q4_K => Q4_K,
        GgmlType::Q5_K => Q5_K,
        GgmlType::Q6_K => Q6_K,
        _ => return false,
    };
    let row_bytes = k / ty.block_elems() * ty.block_bytes();
    let rows = w.len() / row_bytes;
    let n = a.n();
    assert!(a.k() == k && out.rows() == rows && out.toks() == n && rows * row_bytes == w.len());
    assert!(toks.end <= n);
    // The first lines of the matrix, before the in-loop prefetches reach ahead of it.
    for off in (0..w.len().min(PREFETCH_BYTES)).step_by(64) {
        _mm_prefetch::<_MM_HINT_T0>(w.as_ptr().add(off).cast());
    }
    let (mut t, n) = (toks.start, toks.end);
    while t < n {
        let nt = [8, 4, 2, 1].into_iter().find(|&c| c <= (n - t).min(NT_MAX)).expect("1 fits");
        macro_rules! go {
            ($nt:literal) => {
                match code {
                    Q4_K | Q5_K => rows_k4::<$nt>(code, w, rows, k, a, t, out),
                    Q6_K => rows_q6_k::<$nt>(w, rows, k, a, t, out),
                    Q8_0 => rows32::<Q8_0, $nt>(w, rows, k, a, t, out),
                    Q4_0 => rows32::<Q4_0, $nt>(w, rows, k, a, t, out),
                    Q4_1 => rows32::<Q4_1, $nt>(w, rows, k, a, t, out),
                    Q5_0 => rows32::<Q5_0, $nt>(w, rows, k, a, t, out),
                    _ => rows32::<Q5_1, $nt>(w, rows, k, a, t, out),
                }
            };
        }
        match nt {
            8 => go!(8),
            4 => go!(4),
            2 => go!(2),
            _ => go!(1),
        }
        t += nt;
    }
    true
}

const Q8_0: u8 = 0;
const Q4_0: u8 = 1;
const Q4_1: u8 = 2;
const Q5_0: u8 = 3;
const Q5_1: u8 = 4;
const Q4_K: u8 = 5;
const Q5_K: u8 = 6;
const Q6_K: u8 = 7;

/// The two 256-bit halves of `v` added.
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,avx2,fma,f16c")]
#[inline]
unsafe fn halves(v: __m512) -> __m256 {
    _mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps::<1>(v))
}

/// The lane sums of `acc[..NT]` written to `out[..NT]`: eight at a time through hadds (a fixed
/// order, so a token's value does not depend on its tile).
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,avx2,fma,f16c")]
#[inline]
unsafe fn store_sums<const NT: usize>(acc: &[__m512; NT], out: &mut [f32]) {
    let mut j = 0;
    while j + 8 <= NT {
        let mut h = [_mm256_setzero_ps(); 8];
        for i in 0..8 {
            h[i] = halves(acc[j + i]);
        }
        let h01 = _mm256_hadd_ps(h[0], h[1]);
        let h23 = _mm256_hadd_ps(h[2], h[3]);
        let h45 = _mm256_hadd_ps(h[4], h[5]);
        let h67 = _mm256_hadd_ps(h[6], h[7]);
        let h0123 = _mm256_hadd_ps(h01, h23);
        let h4567 = _mm256_hadd_ps(h45, h67);
        let sum =
            _mm256_add_ps(_mm256_permute2f128_ps::<0x20>(h0123, h4567), _mm256_permute2f128_ps::<0x31>(h0123, h4567));
        _mm256_storeu_ps(out.as_mut_ptr().add(j), sum);
        j += 8;
    }
    while j < NT {
        // The same pairing as above for one vector: halves, then hadd twice, then 128-bit halves.
        let h = halves(acc[j]);
        let h = _mm256_hadd_ps(h, h);
        let h = _mm256_hadd_ps(h, h);
        out[j] = _mm_cvtss_f32(_mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps::<1>(h)));
        j += 1;
    }
}

/// How far ahead of the weights being read the kernels ask for cache lines: decode streams
/// hundreds of small matrices, and the hardware prefetchers restart at each one (and at every
/// 4 KiB page); about two microseconds of reading at ~10 GB/s covers the memory latency.
const PREFETCH_BYTES: usize = 4096;

#[inline(always)]
pub(super) unsafe fn prefetch_ahead(p: *const u8) {
    // A prefetch never faults, even past the end of the mapping.
    _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(PREFETCH_BYTES).cast());
}

/// (block bytes, offset of the quants, of the fifth bits, of m) of a 32-value format.
const fn layout32(ty: u8) -> (usize, usize, usize, usize) {
    match ty {
        Q8_0 => (34, 2, 0, 0),
        Q4_0 => (18, 2, 0, 0),
        Q4_1 => (20, 4, 0, 2),
        Q5_0 => (22, 6, 2, 0),
        _ => (24, 8, 4, 2),
    }
}

/// The f16 at byte `off` of each of the first blocks of `block` bytes from `p` that `mask` selects
/// (at most 16), widened to f32 (0 where not selected).
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,avx2,fma,f16c")]
#[inline]
pub(super) unsafe fn gather_f16(p: *const u8, block_offsets: __m512i, mask: __mmask16, off: usize) -> __m512 {
    let g = _mm512_mask_i32gather_epi32::<1>(_mm512_setzero_si512(), mask, block_offsets, p.add(off).cast());
    _mm512_cvtph_ps(_mm512_cvtepi32_epi16(g))
}

/// The biased unsigned weights of block A at `p` and, if `two`, block B right after it: bytes
/// 0..32 block A in element order, 32..64 block B (zero when absent).
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,avx2,fma,f16c")]
#[inline]
unsafe fn weights32<const TY: u8>(p: *const u8, two: bool) -> __m512i {
    let (bb, qs, qh, _) = layout32(TY);
    if TY == Q8_0 {
        let a = _mm256_loadu_si256(p.add(qs).cast());
        let z = if two {
            _mm512_inserti64x4::<1>(_mm512_castsi256_si512(a), _mm256_loadu_si256(p.add(bb + qs).cast()))
        } else {
            _mm512_zextsi256_si512(a)
        };
        // q + 128; a missing block B meets zero activations.
        return _mm512_xor_si512(z, _mm512_set1_epi8(-128));
    }
    let x = _mm_loadu_si128(p.add(qs).cast());
    let y = if two {
        _mm256_inserti128_si256::<1>(_mm256_castsi128_si256(x), _mm_loadu_si128(p.add(bb + qs).cast()))
    } else {
        _mm256_zextsi128_si256(x)
    };
    let z = _mm512_castsi256_si512(y);
    // 128-bit lanes [A, A, B, B], the second of each pair shifted to its high nibbles.
    let z = _mm512_shuffle_i64x2::<0b01_01_00_00>(z, z);
    let z = _mm512_mask_srli_epi16::<4>(z, 0xFF00_FF00, z);
    let mut z = _mm512_and_si512(z, _mm512_set1_epi8(0x0F));
    if TY == Q5_0 || TY == Q5_1 {
        let ha = std::ptr::read_unaligned(p.add(qh).cast::<u32>()) as u64;
        let hb = if two { std::ptr::read_unaligned(p.add(bb + qh).cast::<u32>()) as u64 } else { 0 };
        z = _mm512_mask_add_epi8(z, ha | (hb << 32), z, _mm512_set1_epi8(0x10));
    }
    z
}

/// Rows of a 32-value format against activation rows t0..t0+NT.
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn rows32<const TY: u8, const NT: usize>(
    w: &[u8],
    rows: usize,
    k: usize,
    a: &Q8Rows,
    t0: usize,
    out: &mut OutMatrix<'_>,
) {
    let (bb, _, _, m_off) = layout32(TY);
    let nb = k / 32;
    let row_bytes = nb * bb;
    let block_offsets = _mm512_mullo_epi32(
        _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
        _mm512_set1_epi32(bb as i32),
    );
    let pair = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
    // Q4_1/Q5_1 add m·s; Q4_0/Q5_0 subtract 8d·s / 16d·s.
    let factor = _mm512_set1_ps(match TY {
        Q4_0 => -8.0,
        Q5_0 => -16.0,
        _ => 1.0,
    });
    for r in 0..rows {
        let p = w.as_ptr().add(r * row_bytes);
        let mut acc = [_mm512_setzero_ps(); NT];
        let mut g = 0;
        while g < nb {
            let m = (nb - g).min(16);
            let mask: __mmask16 = if m == 16 { 0xFFFF } else { (1u16 << m) - 1 };
            let pg = p.add(g * bb);
            let dw = gather_f16(pg, block_offsets, mask, 0);
            let mut sd = [_mm512_setzero_ps(); NT];
            for j in 0..NT {
                sd[j] = _mm512_mul_ps(dw, _mm512_maskz_loadu_ps(mask, a.d.as_ptr().add((t0 + j) * nb + g)));
            }
            if TY != Q8_0 {
                // The offset terms go straight into the accumulators (every lane is summed).
                let coef = match TY {
                    Q4_1 | Q5_1 => gather_f16(pg, block_offsets, mask, m_off),
                    _ => _mm512_mul_ps(factor, dw),
                };
                for j in 0..NT {
                    let s8 = _mm512_maskz_loadu_ps(mask, a.s.as_ptr().add((t0 + j) * nb + g));
                    acc[j] = _mm512_fmadd_ps(coef, s8, acc[j]);
                }
            }
            let mut c = 0;
            while 2 * c < m {
                let two = 2 * c + 1 < m;
                let b = g + 2 * c;
                prefetch_ahead(p.add(b * bb));
                let wv = weights32::<TY>(p.add(b * bb), two);
                let perm = _mm512_add_epi32(pair, _mm512_set1_epi32(2 * c as i32));
                for j in 0..NT {
                    let t = t0 + j;
                    let qs = a.qs.as_ptr().add(t * k + 32 * b);
                    let av = if two {
                        _mm512_loadu_si512(qs.cast())
                    } else {
                        _mm512_zextsi256_si512(_mm256_loadu_si256(qs.cast()))
                    };
                    let init = if TY == Q8_0 {
                        let ns = a.nsum4.as_ptr().add(t * k / 4 + 8 * b);
                        let v = if two {
                            _mm512_loadu_si512(ns.cast())
                        } else {
                            _mm512_zextsi256_si512(_mm256_loadu_si256(ns.cast()))
                        };
                        _mm512_slli_epi32::<7>(v)
                    } else {
                        _mm512_setzero_si512()
                    };
                    let lanes = _mm512_dpbusd_epi32(init, wv, av);
                    acc[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(lanes), _mm512_permutexvar_ps(perm, sd[j]), acc[j]);
                }
                c += 1;
            }
            g += 16;
        }
        let mut sums = [0f32; NT];
        store_sums::<NT>(&acc, &mut sums);
        out.set_row(r, t0, &sums);
    }
}

/// The eight 6-bit (scale, min) pairs of a Q4_K/Q5_K block from its 12 packed bytes, as two
/// u64 of bytes (the u32 arithmetic of ggml's x86 kernels; same values as `get_scale_min_k4`).
#[inline]
fn scales_mins_k4(s: &[u8; 12]) -> (u64, u64) {
    let u = |i: usize| u32::from_le_bytes([s[4 * i], s[4 * i + 1], s[4 * i + 2], s[4 * i + 3]]);
    let (u0, u1, u2) = (u(0), u(1), u(2));
    const LOW6: u32 = 0x3f3f_3f3f;
    const LOW4: u32 = 0x0f0f_0f0f;
    const TOP2: u32 = 0x0303_0303;
    let sc_lo = u0 & LOW6;
    let sc_hi = (u2 & LOW4) | (((u0 >> 6) & TOP2) << 4);
    let mn_lo = u1 & LOW6;
    let mn_hi = ((u2 >> 4) & LOW4) | (((u1 >> 6) & TOP2) << 4);
    (sc_lo as u64 | (sc_hi as u64) << 32, mn_lo as u64 | (mn_hi as u64) << 32)
}

/// Eight bytes widened to eight f32.
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,avx2,fma,f16c")]
#[inline]
unsafe fn bytes8_f32(b: u64) -> __m256 {
    _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_cvtsi64_si128(b as i64)))
}

/// Rows of Q4_K (code Q4_K) or Q5_K against activation rows t0..t0+NT.
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn rows_k4<const NT: usize>(
    ty: u8,
    w: &[u8],
    rows: usize,
    k: usize,
    a: &Q8Rows,
    t0: usize,
    out: &mut OutMatrix<'_>,
) {
    let five = ty == Q5_K;
    let bb = if five { 176 } else { 144 };
    let (nsb, nb) = (k / 256, k / 32);
    let row_bytes = nsb * bb;
    let pair = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
    let m0f = _mm512_set1_epi8(0x0F);
    for r in 0..rows {
        let p0 = w.as_ptr().add(r * row_bytes);
        let mut acc = [_mm512_setzero_ps(); NT];
        for i in 0..nsb {
            let p = p0.add(i * bb);
            let (d, dmin) = (f16_at(p), f16_at(p.add(2)));
            let (sc, mn) = scales_mins_k4(&*p.add(4).cast::<[u8; 12]>());
            let dsc = _mm512_zextps256_ps512(_mm256_mul_ps(_mm256_set1_ps(d), bytes8_f32(sc)));
            // −dmin·m times d8·Σa, straight into the accumulators' low lanes.
            let dmn = _mm512_zextps256_ps512(_mm256_mul_ps(_mm256_set1_ps(-dmin), bytes8_f32(mn)));
            let mut sd = [_mm512_setzero_ps(); NT];
            for j in 0..NT {
                let b0 = (t0 + j) * nb + 8 * i;
                sd[j] = _mm512_mul_ps(dsc, _mm512_maskz_loadu_ps(0xFF, a.d.as_ptr().add(b0)));
                acc[j] = _mm512_fmadd_ps(dmn, _mm512_maskz_loadu_ps(0xFF, a.dsum.as_ptr().add(b0)), acc[j]);
            }
            prefetch_ahead(p);
            prefetch_ahead(p.add(64));
            prefetch_ahead(p.add(128));
            let (qs, qh) = if five { (p.add(48), p.add(16)) } else { (p.add(16), p) };
            let h = if five { _mm512_broadcast_i64x4(_mm256_loadu_si256(qh.cast())) } else { _mm512_setzero_si512() };
            for g in 0..4 {
                let x = _mm512_broadcast_i64x4(_mm256_loadu_si256(qs.add(32 * g).cast()));
                // Low nibbles are sub-block 2g, high nibbles 2g+1.
                let mut wv = _mm512_and_si512(_mm512_mask_srli_epi16::<4>(x, 0xFFFF_0000, x), m0f);
                if five {
                    let bit = _mm512_inserti64x4::<1>(
                        _mm512_set1_epi8(1 << (2 * g)),
                        _mm256_set1_epi8((1u8 << (2 * g + 1)) as i8),
                    );
                    wv = _mm512_mask_add_epi8(wv, _mm512_test_epi8_mask(h, bit), wv, _mm512_set1_epi8(0x10));
                }
                let perm = _mm512_add_epi32(pair, _mm512_set1_epi32(2 * g as i32));
                for j in 0..NT {
                    let av = _mm512_loadu_si512(a.qs.as_ptr().add((t0 + j) * k + 256 * i + 64 * g).cast());
                    let lanes = _mm512_dpbusd_epi32(_mm512_setzero_si512(), wv, av);
                    acc[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(lanes), _mm512_permutexvar_ps(perm, sd[j]), acc[j]);
                }
            }
        }
        let mut sums = [0f32; NT];
        store_sums::<NT>(&acc, &mut sums);
        out.set_row(r, t0, &sums);
    }
}

/// Rows of Q6_K against activation rows t0..t0+NT.
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn rows_q6_k<const NT: usize>(w: &[u8], rows: usize, k: usize, a: &Q8Rows, t0: usize, out: &mut OutMatrix<'_>) {
    const BB: usize = 210;
    let (nsb, nb) = (k / 256, k / 32);
    let row_bytes = nsb * BB;
    // Group g (16 values) of a super-block belongs to activation block g/2.
    let group_block = _mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
    let quad = _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);
    let (m0f, m3) = (_mm512_set1_epi8(0x0F), _mm512_set1_epi8(3));
    for r in 0..rows {
        let p0 = w.as_ptr().add(r * row_bytes);
        let mut acc = [_mm512_setzero_ps(); NT];
        for i in 0..nsb {
            let p = p0.add(i * BB);
            for line in 0..4 {
                prefetch_ahead(p.add(64 * line));
            }
            let d = f16_at(p.add(208));
            let dsc = _mm512_mul_ps(
                _mm512_set1_ps(d),
                _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(p.add(192).cast()))),
            );
            let mut sg = [_mm512_setzero_ps(); NT];
            for j in 0..NT {
                let d8 = _mm512_castps256_ps512(_mm256_loadu_ps(a.d.as_ptr().add((t0 + j) * nb + 8 * i)));
                sg[j] = _mm512_mul_ps(dsc, _mm512_permutexvar_ps(group_block, d8));
            }
            for half in 0..2 {
                let ql = _mm512_loadu_si512(p.add(64 * half).cast());
                let qh = _mm512_broadcast_i64x4(_mm256_loadu_si256(p.add(128 + 32 * half).cast()));
                // Quarters 0 and 1: low nibbles of ql[0..32], ql[32..64] with qh bits 0-1 and 2-3;
                // quarters 2 and 3: high nibbles with qh bits 4-5 and 6-7.
                let h01 = _mm512_and_si512(_mm512_mask_srli_epi16::<2>(qh, 0xFFFF_0000, qh), m3);
                let qh4 = _mm512_srli_epi16::<4>(qh);
                let h23 = _mm512_and_si512(_mm512_mask_srli_epi16::<2>(qh4, 0xFFFF_0000, qh4), m3);
                let w01 = _mm512_or_si512(_mm512_and_si512(ql, m0f), _mm512_slli_epi16::<4>(h01));
                let w23 =
                    _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16::<4>(ql), m0f), _mm512_slli_epi16::<4>(h23));
                for (q, wv) in [w01, w23].into_iter().enumerate() {
                    let cc = 2 * half + q;
                    let perm = _mm512_add_epi32(quad, _mm512_set1_epi32(4 * cc as i32));
                    for j in 0..NT {
                        let t = t0 + j;
                        let av = _mm512_loadu_si512(a.qs.as_ptr().add(t * k + 256 * i + 64 * cc).cast());
                        let ns = _mm512_loadu_si512(a.nsum4.as_ptr().add(t * k / 4 + 64 * i + 16 * cc).cast());
                        // Start from −32·Σ4a: the lanes are then Σ (q − 32)·a.
                        let lanes = _mm512_dpbusd_epi32(_mm512_slli_epi32::<5>(ns), wv, av);
                        acc[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(lanes), _mm512_permutexvar_ps(perm, sg[j]), acc[j]);
                    }
                }
            }
        }
        let mut sums = [0f32; NT];
        store_sums::<NT>(&acc, &mut sums);
        out.set_row(r, t0, &sums);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn packed_scales_match_get_scale_min_k4() {
        let mut s = 0x1234_5678u32;
        for _ in 0..1000 {
            let bytes: [u8; 12] = std::array::from_fn(|_| {
                s = s.wrapping_mul(1664525).wrapping_add(1013904223);
                (s >> 24) as u8
            });
            let (sc, mn) = crate::quant::get_scale_min_k4(&bytes);
            let (psc, pmn) = super::scales_mins_k4(&bytes);
            assert_eq!((psc.to_le_bytes(), pmn.to_le_bytes()), (sc, mn));
        }
    }
}
