//! AMX-INT8 tile products for many tokens (prefill) on x86-64 hosts that have them (Sapphire
//! Rapids and later), for every int8 format.
//!
//! Sixteen weight rows are unpacked side by side ([16][k] biased bytes, the unpacked form of
//! [`super::VecDotQ8_1::unpack`]); for each 32-value block b a `tdpbusd` multiplies their 16×32
//! bytes with the activations' 32×16 panel of that block (16 tokens, see `Q8Rows::amx_qs`), so
//! the 16×16 i32 results are exactly the per-block integer sums Σ u·a. AVX-512 then subtracts
//! bias·Σa, scales by the weight scale × d8 of the block and adds the offset term, as the other
//! kernels do lane by lane. Q6_K's 16-value groups take two 16-deep products per block.
//!
//! AMX is enabled per process (`arch_prctl(ARCH_REQ_XCOMP_PERM, XTILEDATA)`, see
//! [`super::amx_usable`]); each call loads its tile configuration on its own thread and releases
//! the tiles before returning. The instructions are written with `asm!` (Rust has no stable AMX
//! intrinsics); tile registers are never touched by compiled code, so no clobbers are needed.

#![allow(clippy::needless_range_loop)]

use std::arch::asm;
use std::arch::x86_64::*;

use super::x86::{bias_and_sum_term, unpack_row_avx512};
use super::{OutMatrix, SumTerm};
use crate::dtype::GgmlType;
use crate::quant::q8_1::Q8Rows;

/// Weight rows and tokens per tile product.
pub(super) const TILE: usize = 16;

/// A palette-1 tile configuration: tmm0/tmm4 the weight rows (16 × `a_bytes`), tmm1/tmm5 the
/// activation panel (`b_rows` × 64), tmm2/tmm3 the 16 × 16 i32 results.
#[repr(C, align(64))]
struct TileConfig([u8; 64]);

impl TileConfig {
    fn new(a_bytes: u16, b_rows: u8) -> TileConfig {
        let mut c = [0u8; 64];
        c[0] = 1;
        let mut set = |tmm: usize, rows: u8, bytes: u16| {
            c[16 + 2 * tmm..18 + 2 * tmm].copy_from_slice(&bytes.to_le_bytes());
            c[48 + tmm] = rows;
        };
        set(0, 16, a_bytes);
        set(4, 16, a_bytes);
        set(1, b_rows, 64);
        set(5, b_rows, 64);
        set(2, 16, 64);
        set(3, 16, 64);
        TileConfig(c)
    }
}

/// Per-thread unpacked panel of 16 weight rows and a result tile.
#[derive(Default)]
struct Scratch {
    u: Vec<u8>,
    lane_scale: Vec<f32>,
    offset: Vec<f32>,
}

#[repr(C, align(64))]
struct ResultTile([[i32; 16]; 16]);

thread_local! {
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::new(Scratch::default());
}

/// Computes rows 0..16·⌊rows/16⌋ × tokens 0..16·`a.amx_groups()` of the product into `out`;
/// returns (rows, tokens) covered (the caller takes the rest).
///
/// # Safety
/// AMX must be usable ([`super::amx_usable`]) and AVX-512 F/BW/DQ/VL/VNNI present; `w` whole rows
/// of `k` values of `ty` (an int8 format), `a` rows of `k`, `out` one row per weight row and a
/// column per activation row.
pub(super) unsafe fn gemm(ty: GgmlType, w: &[u8], k: usize, a: &Q8Rows, out: &mut OutMatrix<'_>) -> (usize, usize) {
    let row_bytes = k / ty.block_elems() * ty.block_bytes();
    let rows = w.len() / row_bytes;
    let (panels, groups) = (rows / TILE, a.amx_groups());
    if panels == 0 || groups == 0 {
        return (0, 0);
    }
    assert!(a.k() == k && out.rows() == rows && out.toks() == a.n() && rows * row_bytes == w.len());
    // Formats with a scale per 16 values take two 16-deep products per block.
    let six = matches!(ty, GgmlType::Q6_K | GgmlType::Q3_K | GgmlType::Q2_K);
    let group = bias_and_sum_term(ty).1.group();
    let cfg = if six { TileConfig::new(16, 4) } else { TileConfig::new(32, 8) };
    // SAFETY: the configuration is 64 bytes, aligned, palette 1 with in-range shapes.
    asm!("ldtilecfg [{}]", in(reg) cfg.0.as_ptr(), options(nostack, readonly));
    SCRATCH.with(|s| {
        let s = &mut *s.borrow_mut();
        s.u.resize(TILE * k, 0);
        s.lane_scale.resize(TILE * k / 4, 0.0);
        s.offset.resize(TILE * k / group, 0.0);
        for p in 0..panels {
            for r in 0..TILE {
                let row = &w[(p * TILE + r) * row_bytes..(p * TILE + r + 1) * row_bytes];
                unpack_row_avx512(
                    ty,
                    row,
                    &mut s.u[r * k..(r + 1) * k],
                    &mut s.lane_scale[r * k / 4..(r + 1) * k / 4],
                    &mut s.offset[r * k / group..(r + 1) * k / group],
                );
            }
            for g in 0..groups {
                let sums = if six { panel16(ty, s, k, a, g) } else { panel32(ty, s, k, a, g) };
                for (r, v) in sums.iter().enumerate() {
                    let mut vals = [0f32; TILE];
                    _mm512_storeu_ps(vals.as_mut_ptr(), *v);
                    out.set_row(p * TILE + r, g * TILE, &vals);
                }
            }
        }
    });
    // SAFETY: releases this thread's tile state (configured above).
    asm!("tilerelease", options(nostack, nomem));
    (panels * TILE, groups * TILE)
}

/// One 16-row panel (unpacked in `s`) × token group `g`, for the 32-value-scale formats.
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn panel32(ty: GgmlType, s: &Scratch, k: usize, a: &Q8Rows, g: usize) -> [__m512; TILE] {
    let nb = k / 32;
    let (bias, sum_term) = bias_and_sum_term(ty);
    let sums: Option<&[f32]> = match sum_term {
        SumTerm::S => Some(&a.amx_s),
        SumTerm::DSum => Some(&a.amx_dsum),
        SumTerm::None => None,
        SumTerm::DSum16 => unreachable!("16-value minimums go through panel16"),
    };
    let mut acc = [_mm512_setzero_ps(); TILE];
    let mut c = ResultTile([[0; 16]; 16]);
    for b in 0..nb {
        let gb = g * nb + b;
        let panel = a.amx_qs.as_ptr().add(gb * 512);
        // SAFETY: tmm0 reads 16 rows of 32 bytes k apart from the unpacked rows, tmm1 the 8×64
        // panel of block b, tmm2 is stored to the 1 KiB result tile; all inside their buffers.
        asm!(
            "tilezero tmm2",
            "tileloadd tmm0, [{u} + {k} * 1]",
            "tileloadd tmm1, [{b} + {s64} * 1]",
            "tdpbusd tmm2, tmm0, tmm1",
            "tilestored [{c} + {s64} * 1], tmm2",
            u = in(reg) s.u.as_ptr().add(32 * b),
            k = in(reg) k,
            b = in(reg) panel,
            c = in(reg) c.0.as_mut_ptr(),
            s64 = in(reg) 64usize,
            options(nostack),
        );
        let d8 = _mm512_loadu_ps(a.amx_d.as_ptr().add(gb * 16));
        let qsum = _mm512_add_epi32(
            _mm512_loadu_si512(a.amx_qsum16.as_ptr().add(gb * 32).cast()),
            _mm512_loadu_si512(a.amx_qsum16.as_ptr().add(gb * 32 + 16).cast()),
        );
        let correction = _mm512_mullo_epi32(qsum, _mm512_set1_epi32(bias as i32));
        let sv = sums.map(|v| _mm512_loadu_ps(v.as_ptr().add(gb * 16)));
        for r in 0..TILE {
            let v = _mm512_sub_epi32(_mm512_load_si512(c.0[r].as_ptr().cast()), correction);
            let scale = _mm512_mul_ps(_mm512_set1_ps(*s.lane_scale.get_unchecked(r * k / 4 + 8 * b)), d8);
            acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(v), scale, acc[r]);
            if let Some(sv) = sv {
                acc[r] = _mm512_fmadd_ps(_mm512_set1_ps(*s.offset.get_unchecked(r * nb + b)), sv, acc[r]);
            }
        }
    }
    acc
}

/// One 16-row panel × token group `g` for the formats with a scale per 16 values (Q6_K, Q3_K,
/// Q2_K): each block's two 16-value groups as two 16-deep products; Q2_K adds its minimums
/// (offset × d8·Σa of each half).
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn panel16(ty: GgmlType, s: &Scratch, k: usize, a: &Q8Rows, g: usize) -> [__m512; TILE] {
    let nb = k / 32;
    let (bias, sum_term) = bias_and_sum_term(ty);
    let mins = sum_term == SumTerm::DSum16;
    let mut acc = [_mm512_setzero_ps(); TILE];
    let mut c0 = ResultTile([[0; 16]; 16]);
    let mut c1 = ResultTile([[0; 16]; 16]);
    for b in 0..nb {
        let gb = g * nb + b;
        let panel = a.amx_qs.as_ptr().add(gb * 512);
        // SAFETY: as in `panel32`, with 16-byte halves of the rows and 4-row halves of the panel.
        asm!(
            "tilezero tmm2",
            "tilezero tmm3",
            "tileloadd tmm0, [{u0} + {k} * 1]",
            "tileloadd tmm4, [{u1} + {k} * 1]",
            "tileloadd tmm1, [{b0} + {s64} * 1]",
            "tileloadd tmm5, [{b1} + {s64} * 1]",
            "tdpbusd tmm2, tmm0, tmm1",
            "tdpbusd tmm3, tmm4, tmm5",
            "tilestored [{c0} + {s64} * 1], tmm2",
            "tilestored [{c1} + {s64} * 1], tmm3",
            u0 = in(reg) s.u.as_ptr().add(32 * b),
            u1 = in(reg) s.u.as_ptr().add(32 * b + 16),
            k = in(reg) k,
            b0 = in(reg) panel,
            b1 = in(reg) panel.add(256),
            c0 = in(reg) c0.0.as_mut_ptr(),
            c1 = in(reg) c1.0.as_mut_ptr(),
            s64 = in(reg) 64usize,
            options(nostack),
        );
        let d8 = _mm512_loadu_ps(a.amx_d.as_ptr().add(gb * 16));
        // Σ (u − bias)·a = Σ u·a − bias·Σa over each half.
        let sum0 = _mm512_loadu_si512(a.amx_qsum16.as_ptr().add(gb * 32).cast());
        let sum1 = _mm512_loadu_si512(a.amx_qsum16.as_ptr().add(gb * 32 + 16).cast());
        let q0 = _mm512_mullo_epi32(sum0, _mm512_set1_epi32(bias as i32));
        let q1 = _mm512_mullo_epi32(sum1, _mm512_set1_epi32(bias as i32));
        // d8·Σa of each half (exact in f32, as Q8Rows::dsum16).
        let (m0, m1) = (_mm512_mul_ps(_mm512_cvtepi32_ps(sum0), d8), _mm512_mul_ps(_mm512_cvtepi32_ps(sum1), d8));
        for r in 0..TILE {
            let v0 = _mm512_sub_epi32(_mm512_load_si512(c0.0[r].as_ptr().cast()), q0);
            let v1 = _mm512_sub_epi32(_mm512_load_si512(c1.0[r].as_ptr().cast()), q1);
            let s0 = _mm512_mul_ps(_mm512_set1_ps(*s.lane_scale.get_unchecked(r * k / 4 + 8 * b)), d8);
            let s1 = _mm512_mul_ps(_mm512_set1_ps(*s.lane_scale.get_unchecked(r * k / 4 + 8 * b + 4)), d8);
            acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(v0), s0, acc[r]);
            acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(v1), s1, acc[r]);
            if mins {
                let o = s.offset.as_ptr().add(r * 2 * nb + 2 * b);
                acc[r] = _mm512_fmadd_ps(_mm512_set1_ps(*o), m0, acc[r]);
                acc[r] = _mm512_fmadd_ps(_mm512_set1_ps(*o.add(1)), m1, acc[r]);
            }
        }
    }
    acc
}
