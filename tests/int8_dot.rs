//! The int8 path: Q8_1 activations and each weight format's integer dot with them.
//!
//! - The quantizer against gguf-py: its Q8_0 computes d and qs exactly as ggml's
//!   quantize_row_q8_1_ref does (tests/fixtures/make_q8_1_fixture.py), so our blocks must match.
//! - The scalar reference (`VecDotQ8_1`) against a float computation on dequantized weights (our
//!   gguf-py-exact dequantizers) × dequantized activations, on blocks cut from real files
//!   (tests/fixtures/quant) and on random blocks. Bound: the f16 rounding of s (types whose offset
//!   goes through s) plus f32 rounding of the combine, `(terms + 8)·2⁻²⁴·Σ|terms|`.
//! - Every SIMD instruction set this host runs against the scalar reference: within 1e-6 of the
//!   terms' magnitude on random data of many row lengths (32…11008, odd block counts for the tails,
//!   1 to 6 tokens so the 4-token tiles and their remainders run), and bit for bit where every f32
//!   step is exact (power-of-two scales, small quants), which checks the integer sums exactly.

use std::path::PathBuf;

use rocmforge::dtype::GgmlType;
use rocmforge::quant::simd::{unpacked_dot_portable, vec_dot_row_terms};
use rocmforge::quant::{
    self, blocks, gemm_f32, gemm_q8_1, gemm_q8_1_with, BlockIQ4NL, BlockIQ4XS, BlockQ2K, BlockQ3K, BlockQ4K, BlockQ4_0,
    BlockQ4_1, BlockQ5K, BlockQ5_0, BlockQ5_1, BlockQ6K, BlockQ8_0, BlockQ8_1, Isa, Kernel, Q8Rows, VecDotQ8_1,
};

const INT8_TYPES: [GgmlType; 12] = [
    GgmlType::Q8_0,
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q5_1,
    GgmlType::Q4_K,
    GgmlType::Q5_K,
    GgmlType::Q6_K,
    GgmlType::Q2_K,
    GgmlType::Q3_K,
    GgmlType::IQ4_NL,
    GgmlType::IQ4_XS,
];

/// Every instruction set of this host with each kernel shape (shapes an instruction set or host
/// lacks fall back to another, which then runs twice). AMX takes whole 16×16 tiles of weight rows
/// and tokens only, so the tests that should reach it use at least 16 of each.
fn kernels() -> Vec<(Isa, Kernel)> {
    Isa::available().into_iter().flat_map(|i| [(i, Kernel::Fused), (i, Kernel::Unpacked), (i, Kernel::Amx)]).collect()
}

fn label(isa: Isa, kernel: Kernel) -> String {
    format!("{} {kernel:?}", isa.name())
}

fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/quant").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("fixture {} should be readable: {e}", path.display()))
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn byte(&mut self) -> u8 {
        (self.next() >> 32) as u8
    }
    /// Roughly normal (sum of uniforms), with a rare large outlier.
    fn activation(&mut self) -> f32 {
        let s: f32 = (0..4).map(|_| (self.next() >> 40) as f32 / (1u64 << 24) as f32 - 0.5).sum();
        if self.next().is_multiple_of(100) {
            s * 30.0
        } else {
            s
        }
    }
}

/// Offsets of the f16 scale fields of each format's block.
fn f16_fields(ty: GgmlType) -> &'static [usize] {
    match ty {
        GgmlType::Q8_0 | GgmlType::Q4_0 | GgmlType::Q5_0 | GgmlType::IQ4_NL | GgmlType::IQ4_XS => &[0],
        GgmlType::Q2_K => &[80, 82],
        GgmlType::Q3_K => &[108],
        GgmlType::Q4_1 | GgmlType::Q5_1 | GgmlType::Q4_K | GgmlType::Q5_K => &[0, 2],
        GgmlType::Q6_K => &[208],
        _ => &[],
    }
}

/// `n_blocks` random blocks of `ty` whose f16 fields hold modest values (random signs for the
/// minimums too, as real Q4_1/Q5_1 files have).
fn random_blocks(ty: GgmlType, n_blocks: usize, rng: &mut Rng) -> Vec<u8> {
    let bb = ty.block_bytes();
    let mut bytes: Vec<u8> = (0..n_blocks * bb).map(|_| rng.byte()).collect();
    for b in 0..n_blocks {
        for &f in f16_fields(ty) {
            let v = (rng.next() % 2000) as f32 / 2000.0 * 0.05 * if rng.next().is_multiple_of(2) { 1.0 } else { -1.0 };
            bytes[b * bb + f..b * bb + f + 2].copy_from_slice(&half::f16::from_f32(v).to_le_bytes());
        }
    }
    bytes
}

fn quantized_activations(n: usize, k: usize, rng: &mut Rng) -> Q8Rows {
    let x: Vec<f32> = (0..n * k).map(|_| rng.activation()).collect();
    let mut a = Q8Rows::new();
    a.quantize(&x, k);
    a
}

fn f16_at(bytes: &[u8], off: usize) -> f64 {
    half::f16::from_le_bytes([bytes[off], bytes[off + 1]]).to_f64()
}

/// Σ_b |c_b|·|s8_b − d8_b·Σq_b|: what storing s in f16 can move the value of a format whose
/// offset term goes through s (c = 8d for Q4_0, 16d for Q5_0, m for Q4_1/Q5_1).
fn s_rounding_bound(ty: GgmlType, row: &[u8], a: &Q8Rows, t: usize) -> f64 {
    let blocks_q8 = a.to_blocks(t);
    let bb = ty.block_bytes();
    row.chunks_exact(bb)
        .zip(&blocks_q8)
        .map(|(w, q8)| {
            let c = match ty {
                GgmlType::Q4_0 => 8.0 * f16_at(w, 0).abs(),
                GgmlType::Q5_0 => 16.0 * f16_at(w, 0).abs(),
                GgmlType::Q4_1 | GgmlType::Q5_1 => f16_at(w, 2).abs(),
                _ => 0.0,
            };
            let exact = q8.d() as f64 * q8.qs.iter().map(|&q| q as f64).sum::<f64>();
            c * (q8.s() as f64 - exact).abs()
        })
        .sum()
}

/// The scalar reference of one row against token t, with the magnitude of its terms.
fn reference(ty: GgmlType, row: &[u8], a: &Q8Rows, t: usize) -> (f32, f32) {
    fn go<B: VecDotQ8_1>(row: &[u8], a: &Q8Rows, t: usize) -> (f32, f32) {
        vec_dot_row_terms(blocks::<B>(row).unwrap(), a, t)
    }
    match ty {
        GgmlType::Q8_0 => go::<BlockQ8_0>(row, a, t),
        GgmlType::Q4_0 => go::<BlockQ4_0>(row, a, t),
        GgmlType::Q4_1 => go::<BlockQ4_1>(row, a, t),
        GgmlType::Q5_0 => go::<BlockQ5_0>(row, a, t),
        GgmlType::Q5_1 => go::<BlockQ5_1>(row, a, t),
        GgmlType::Q4_K => go::<BlockQ4K>(row, a, t),
        GgmlType::Q5_K => go::<BlockQ5K>(row, a, t),
        GgmlType::Q6_K => go::<BlockQ6K>(row, a, t),
        GgmlType::Q2_K => go::<BlockQ2K>(row, a, t),
        GgmlType::Q3_K => go::<BlockQ3K>(row, a, t),
        GgmlType::IQ4_NL => go::<BlockIQ4NL>(row, a, t),
        GgmlType::IQ4_XS => go::<BlockIQ4XS>(row, a, t),
        other => panic!("{other} has no int8 dot"),
    }
}

/// Checks the scalar reference against dequantized weights × dequantized activations (f64) for
/// every row of `w` and token of `a`; returns the largest error as a fraction of its bound.
fn check_reference_against_floats(ty: GgmlType, w: &[u8], k: usize, a: &Q8Rows) -> f64 {
    let row_bytes = k / ty.block_elems() * ty.block_bytes();
    let mut worst = 0f64;
    for row in w.chunks_exact(row_bytes) {
        let wf = quant::dequantize_to_vec(ty, row).unwrap();
        for t in 0..a.n() {
            let x = a.dequantize_row(t);
            let want: f64 = wf.iter().zip(&x).map(|(&p, &q)| p as f64 * q as f64).sum();
            let (got, magnitude) = reference(ty, row, a, t);
            let terms = (k / 32) as f64 * 4.0 + 8.0;
            let bound = s_rounding_bound(ty, row, a, t) + terms * 2f64.powi(-24) * magnitude as f64 + 1e-30;
            let err = (got as f64 - want).abs();
            assert!(
                err <= bound,
                "{ty}, k {k}, token {t}: reference {got} vs float {want}: |Δ| {err:.3e} > bound {bound:.3e}"
            );
            worst = worst.max(err / bound);
        }
    }
    worst
}

/// Checks every instruction set's gemm against the scalar reference within `rel`·magnitude;
/// returns the largest |Δ|/magnitude seen.
fn check_simd_against_reference(ty: GgmlType, w: &[u8], k: usize, a: &Q8Rows, rel: f64) -> f64 {
    let row_bytes = k / ty.block_elems() * ty.block_bytes();
    let rows = w.len() / row_bytes;
    let mut worst = 0f64;
    for (isa, kernel) in kernels() {
        let mut out = vec![0f32; rows * a.n()];
        gemm_q8_1_with(isa, kernel, ty, w, k, a, &mut out).unwrap();
        for (r, row) in w.chunks_exact(row_bytes).enumerate() {
            for t in 0..a.n() {
                let (want, magnitude) = reference(ty, row, a, t);
                let got = out[r * a.n() + t];
                let err = (got as f64 - want as f64).abs() / (magnitude as f64).max(1e-30);
                assert!(
                    err <= rel,
                    "{ty} on {}: k {k}, row {r}, token {t}: {got} vs reference {want} (|Δ|/magnitude {err:.3e})",
                    label(isa, kernel)
                );
                worst = worst.max(err);
            }
        }
    }
    // The unpacked form itself, dotted without SIMD.
    for row in w.chunks_exact(row_bytes) {
        let got = unpacked_dot_portable(ty, row, k, a).unwrap();
        for (t, &g) in got.iter().enumerate() {
            let (want, magnitude) = reference(ty, row, a, t);
            let err = (g as f64 - want as f64).abs() / (magnitude as f64).max(1e-30);
            assert!(err <= rel, "{ty} unpacked: k {k}, token {t}: {g} vs reference {want} ({err:.3e})");
        }
    }
    worst
}

#[test]
fn q8_1_blocks_match_gguf_py_q8_0_scales_and_quants() {
    let x: Vec<f32> =
        fixture("q8_1_activations.f32").chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
    let q8_0 = fixture("q8_1_activations.q8_0");
    let k = 1536;
    let mut a = Q8Rows::new();
    a.quantize(&x, k);
    let mut checked = 0;
    for t in 0..a.n() {
        for (b, ours) in a.to_blocks(t).iter().enumerate() {
            let theirs = &q8_0[(t * k / 32 + b) * 34..(t * k / 32 + b + 1) * 34];
            assert_eq!(ours.d, [theirs[0], theirs[1]], "row {t} block {b}: d");
            let qs: Vec<i8> = theirs[2..].iter().map(|&q| q as i8).collect();
            assert_eq!(ours.qs.to_vec(), qs, "row {t} block {b}: quants");
            let sum: i32 = ours.qs.iter().map(|&q| q as i32).sum();
            let d = x[(t * k + 32 * b)..(t * k + 32 * b + 32)].iter().fold(0f32, |m, v| m.max(v.abs())) / 127.0;
            assert_eq!(ours.s, half::f16::from_f32(sum as f32 * d).to_le_bytes(), "row {t} block {b}: s = d·Σq");
            checked += 1;
        }
    }
    // The ties block rounds halves away from zero: −15.5 → −16, 15.5 → 16, 0.5 → 1.
    let ties = &a.to_blocks(2)[2];
    assert_eq!((ties.qs[0], ties.qs[1], ties.qs[15], ties.qs[16], ties.qs[31]), (127, -15, -1, 1, 16));
    eprintln!("{checked} q8_1 blocks match gguf-py's Q8_0 d and quants");
}

#[test]
fn the_reference_equals_floats_on_real_blocks() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for ty in INT8_TYPES {
        let w = fixture(&format!("{}.blocks", ty.name()));
        let n_values = w.len() / ty.block_bytes() * ty.block_elems();
        for k in [512, n_values] {
            let a = quantized_activations(3, k, &mut rng);
            let worst =
                check_reference_against_floats(ty, &w[..n_values / k * k / ty.block_elems() * ty.block_bytes()], k, &a);
            eprintln!("{ty}: real blocks, k {k}: worst error {worst:.3} of its bound");
        }
    }
}

#[test]
fn the_reference_equals_floats_on_random_blocks() {
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    for ty in INT8_TYPES {
        let k = if ty.block_elems() == 256 { 2048 } else { 1056 };
        let w = random_blocks(ty, 4 * k / ty.block_elems(), &mut rng);
        let a = quantized_activations(2, k, &mut rng);
        let worst = check_reference_against_floats(ty, &w, k, &a);
        eprintln!("{ty}: random blocks, k {k}: worst error {worst:.3} of its bound");
    }
}

#[test]
fn every_instruction_set_matches_the_reference_on_real_blocks() {
    eprintln!("instruction sets on this host: {:?}", Isa::available().iter().map(|i| i.name()).collect::<Vec<_>>());
    let mut rng = Rng(0x1234_5678_9ABC_DEF1);
    for ty in INT8_TYPES {
        let w = fixture(&format!("{}.blocks", ty.name()));
        let k = 512;
        let n = w.len() / ty.block_bytes() * ty.block_elems() / k;
        let w = &w[..n * k / ty.block_elems() * ty.block_bytes()];
        let a = quantized_activations(5, k, &mut rng);
        let worst = check_simd_against_reference(ty, w, k, &a, 1e-6);
        eprintln!("{ty}: real blocks: worst |Δ|/magnitude {worst:.2e}");
    }
}

#[test]
fn every_instruction_set_matches_the_reference_over_row_lengths_32_to_11008() {
    let mut rng = Rng(0xD1B5_4A32_D192_ED03);
    for ty in INT8_TYPES {
        let lengths: &[usize] = if ty.block_elems() == 256 {
            &[256, 512, 768, 1536, 2816, 5632, 11008]
        } else {
            &[32, 64, 96, 160, 576, 1056, 2080, 4192, 11008]
        };
        let mut worst = 0f64;
        for &k in lengths {
            let rows = 3;
            let w = random_blocks(ty, rows * k / ty.block_elems(), &mut rng);
            let n_tok = 1 + (k / 32) % 6;
            let a = quantized_activations(n_tok, k, &mut rng);
            worst = worst.max(check_simd_against_reference(ty, &w, k, &a, 1e-6));
        }
        eprintln!("{ty}: lengths {lengths:?}: worst |Δ|/magnitude {worst:.2e}");
    }
}

/// Power-of-two scales and small quants make every f32 step exact, so any difference between an
/// instruction set and the reference would be a wrong integer sum.
#[test]
fn integer_sums_are_bit_exact_on_every_instruction_set() {
    let mut rng = Rng(0xA076_1D64_78BD_642F);
    for ty in INT8_TYPES {
        for k in [256, 2816] {
            let bb = ty.block_bytes();
            let n_rows = 18;
            let mut w = random_blocks(ty, n_rows * k / ty.block_elems(), &mut rng);
            for b in 0..w.len() / bb {
                for &f in f16_fields(ty) {
                    let v = [0.25f32, 0.5, 1.0, -0.5][(rng.next() % 4) as usize];
                    w[b * bb + f..b * bb + f + 2].copy_from_slice(&half::f16::from_f32(v).to_le_bytes());
                }
            }
            // Activation blocks with d = 1/64 and quants in −6..=6 (s = d·Σq is then exact in f16).
            let n_tok = 17;
            let q8: Vec<BlockQ8_1> = (0..n_tok * k / 32)
                .map(|_| {
                    let qs: [i8; 32] = std::array::from_fn(|_| (rng.next() % 13) as i8 - 6);
                    let d = 1.0f32 / 64.0;
                    let sum: i32 = qs.iter().map(|&q| q as i32).sum();
                    BlockQ8_1 {
                        d: half::f16::from_f32(d).to_le_bytes(),
                        s: half::f16::from_f32(sum as f32 * d).to_le_bytes(),
                        qs,
                    }
                })
                .collect();
            let a = Q8Rows::from_blocks(&q8, k);
            let row_bytes = k / ty.block_elems() * bb;
            for (isa, kernel) in kernels() {
                let mut out = vec![0f32; n_rows * n_tok];
                gemm_q8_1_with(isa, kernel, ty, &w, k, &a, &mut out).unwrap();
                for (r, row) in w.chunks_exact(row_bytes).enumerate() {
                    let wf = quant::dequantize_to_vec(ty, row).unwrap();
                    for t in 0..n_tok {
                        let x = a.dequantize_row(t);
                        let exact: f64 = wf.iter().zip(&x).map(|(&p, &q)| p as f64 * q as f64).sum();
                        let (want, _) = reference(ty, row, &a, t);
                        assert_eq!(want as f64, exact, "{ty} k {k}: the reference is exact on this data");
                        let got = out[r * n_tok + t];
                        assert_eq!(
                            got.to_bits(),
                            want.to_bits(),
                            "{ty} on {}: k {k} row {r} token {t}: {got} vs {want}",
                            label(isa, kernel)
                        );
                    }
                }
            }
        }
        eprintln!("{ty}: bit-exact on {:?}", Isa::available().iter().map(|i| i.name()).collect::<Vec<_>>());
    }
}

#[test]
fn whole_tiles_and_remainders_match_the_reference() {
    eprintln!("AMX usable here: {}", rocmforge::quant::simd::amx_usable());
    let mut rng = Rng(0x94D0_49BB_1331_11EB);
    for ty in INT8_TYPES {
        let lengths: &[usize] = if ty.block_elems() == 256 { &[256, 1536, 2816] } else { &[32, 96, 576, 1056] };
        let mut worst = 0f64;
        for &k in lengths {
            let rows = 37;
            let w = random_blocks(ty, rows * k / ty.block_elems(), &mut rng);
            let a = quantized_activations(35, k, &mut rng);
            worst = worst.max(check_simd_against_reference(ty, &w, k, &a, 1e-6));
        }
        eprintln!("{ty}: 37 rows × 35 tokens, lengths {lengths:?}: worst |Δ|/magnitude {worst:.2e}");
    }
}

#[test]
fn many_tokens_at_once_equal_one_token_at_a_time() {
    let mut rng = Rng(0x5851_F42D_4C95_7F2D);
    for ty in INT8_TYPES {
        let k = 768;
        let w = random_blocks(ty, 5 * k / ty.block_elems(), &mut rng);
        let a = quantized_activations(27, k, &mut rng);
        // AMX tiles combine in another order than the per-token kernels; they are held to the
        // reference by the tolerance tests instead.
        for (isa, kernel) in kernels().into_iter().filter(|&(_, k)| k != Kernel::Amx) {
            let mut all = vec![0f32; 5 * 27];
            gemm_q8_1_with(isa, kernel, ty, &w, k, &a, &mut all).unwrap();
            for t in 0..27 {
                let one = Q8Rows::from_blocks(&a.to_blocks(t), k);
                let mut single = vec![0f32; 5];
                gemm_q8_1_with(isa, kernel, ty, &w, k, &one, &mut single).unwrap();
                for r in 0..5 {
                    assert_eq!(
                        single[r].to_bits(),
                        all[r * 27 + t].to_bits(),
                        "{ty} on {}: row {r} token {t}",
                        label(isa, kernel)
                    );
                }
            }
        }
    }
}

#[test]
fn float_weights_match_on_every_instruction_set() {
    let mut rng = Rng(0x8CB9_2BA7_2F3D_8DD7);
    for ty in [GgmlType::F32, GgmlType::F16, GgmlType::BF16] {
        for k in [1, 15, 64, 576, 1000] {
            let rows = 3;
            let mut w = Vec::new();
            for _ in 0..rows * k {
                let v = rng.activation() * 0.1;
                match ty {
                    GgmlType::F32 => w.extend(v.to_le_bytes()),
                    GgmlType::F16 => w.extend(half::f16::from_f32(v).to_le_bytes()),
                    _ => w.extend(half::bf16::from_f32(v).to_le_bytes()),
                }
            }
            let n = 5;
            let x: Vec<f32> = (0..n * k).map(|_| rng.activation()).collect();
            let wf = quant::dequantize_to_vec(ty, &w).unwrap();
            for isa in Isa::available() {
                let mut out = vec![0f32; rows * n];
                gemm_f32(isa, ty, &w, k, &x, &mut out).unwrap();
                for r in 0..rows {
                    for t in 0..n {
                        let (wr, xr) = (&wf[r * k..(r + 1) * k], &x[t * k..(t + 1) * k]);
                        let want: f64 = wr.iter().zip(xr).map(|(&p, &q)| p as f64 * q as f64).sum();
                        let mag: f64 = wr.iter().zip(xr).map(|(&p, &q)| (p as f64 * q as f64).abs()).sum();
                        let err = (out[r * n + t] as f64 - want).abs() / mag.max(1e-30);
                        assert!(err <= 1e-6, "{ty} on {}: k {k}: {} vs {want} ({err:.2e})", isa.name(), out[r * n + t]);
                    }
                }
            }
        }
    }
}

#[test]
fn bad_shapes_are_errors_not_panics() {
    let a = quantized_activations(1, 64, &mut Rng(7));
    let mut out = vec![0f32; 1];
    assert!(
        gemm_q8_1(Isa::Portable, GgmlType::Q4_K, &[0u8; 144], 64, &a, &mut out).is_err(),
        "64 is not whole Q4_K blocks"
    );
    assert!(
        gemm_q8_1(Isa::Portable, GgmlType::Q8_0, &[0u8; 35], 32, &a, &mut out).is_err(),
        "35 bytes are not whole rows"
    );
    assert!(
        gemm_q8_1(Isa::Portable, GgmlType::Q2_K, &[0u8; 84], 256, &a, &mut out).is_err(),
        "Q2_K has no int8 kernel"
    );
}

/// Our quantizers for the CPU fast path against llama.cpp's CPU backend itself: the
/// `from_float` of Q8_0, Q8_1 and Q8_K in the llama.cpp build the logits references come from,
/// run on the same activations (tests/fixtures/make_act_quant_fixture.sh). Every byte must match:
/// scales, quants, Q8_1's s and Q8_K's sums.
#[test]
fn fast_path_activations_match_llama_cpp_cpu_quantizers_byte_for_byte() {
    use rocmforge::quant::ActFormat;
    let x: Vec<f32> =
        fixture("q8_1_activations.f32").chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
    let k = 1536;
    for (format, ext) in [(ActFormat::Q8_0, "q8_0"), (ActFormat::Q8_1, "q8_1"), (ActFormat::Q8K, "q8_K")] {
        let theirs = fixture(&format!("q8_1_activations.ggml_cpu.{ext}"));
        let mut a = Q8Rows::new();
        a.quantize_as(&x, k, format);
        let mut ours = Vec::new();
        for t in 0..a.n() {
            if format == ActFormat::Q8K {
                for b in a.to_q8k_blocks(t) {
                    ours.extend(b.d);
                    ours.extend(b.qs.map(|q| q as u8));
                    b.bsums.iter().for_each(|s| ours.extend(s));
                }
            } else {
                for blk in a.to_blocks(t) {
                    ours.extend(blk.d);
                    if format == ActFormat::Q8_1 {
                        ours.extend(blk.s);
                    }
                    ours.extend(blk.qs.map(|q| q as u8));
                }
            }
        }
        assert_eq!(ours.len(), theirs.len(), "{ext}: sizes");
        let block_bytes = theirs.len() / (a.n() * k / format.block());
        let differing: Vec<usize> = (0..ours.len()).filter(|&i| ours[i] != theirs[i]).collect();
        assert!(
            differing.is_empty(),
            "{ext}: {} bytes differ, the first at byte {} of block {}",
            differing.len(),
            differing[0] % block_bytes,
            differing[0] / block_bytes
        );
        eprintln!("{ext}: {} rows of {k} match llama.cpp's CPU quantizer byte for byte", a.n());
    }
}

// ---------------------------------------------------------------------------------------------
// Q8_K activations (llama.cpp's CPU backend's for the k-quants and IQ4_XS): the scalar q8_K dot
// (`VecDotQ8K`, ggml's two integer sums per super-block) against floats, and every instruction
// set's kernels on Q8_K rows against it.

const Q8K_TYPES: [GgmlType; 6] =
    [GgmlType::Q2_K, GgmlType::Q3_K, GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K, GgmlType::IQ4_XS];

fn q8k_activations(n: usize, k: usize, rng: &mut Rng) -> Q8Rows {
    let x: Vec<f32> = (0..n * k).map(|_| rng.activation()).collect();
    let mut a = Q8Rows::new();
    a.quantize_as(&x, k, rocmforge::quant::ActFormat::Q8K);
    a
}

fn q8k_blocks(a: &Q8Rows) -> Vec<rocmforge::quant::BlockQ8K> {
    (0..a.n()).flat_map(|t| a.to_q8k_blocks(t)).collect()
}

/// The q8_K reference against dequantized weights × dequantized Q8_K activations in f64: within
/// f32 rounding of its combine and of the dequantization, (k/32·4 + 8)·2⁻²⁴ of the terms'
/// magnitude plus 4·2⁻²⁴·Σ|w·x|. Returns the largest error as a fraction of its bound.
fn check_q8k_reference_against_floats(ty: GgmlType, w: &[u8], k: usize, a: &Q8Rows) -> f64 {
    let blocks = q8k_blocks(a);
    let refs = rocmforge::quant::matmul_q8_k_reference(ty, w, k, &blocks).unwrap();
    let row_bytes = k / ty.block_elems() * ty.block_bytes();
    let mut worst = 0f64;
    for (r, row) in w.chunks_exact(row_bytes).enumerate() {
        let wf = quant::dequantize_to_vec(ty, row).unwrap();
        for t in 0..a.n() {
            let x: Vec<f64> = blocks[t * k / 256..(t + 1) * k / 256]
                .iter()
                .flat_map(|b| b.qs.iter().map(move |&q| b.d() as f64 * q as f64))
                .collect();
            let want: f64 = wf.iter().zip(&x).map(|(&p, &q)| p as f64 * q).sum();
            let abs: f64 = wf.iter().zip(&x).map(|(&p, &q)| (p as f64 * q).abs()).sum();
            let (got, magnitude) = refs[r * a.n() + t];
            let bound =
                ((k / 32) as f64 * 4.0 + 8.0) * 2f64.powi(-24) * magnitude as f64 + 4.0 * 2f64.powi(-24) * abs + 1e-30;
            let err = (got as f64 - want).abs();
            assert!(
                err <= bound,
                "{ty}, k {k}, row {r}, token {t}: q8_K reference {got} vs float {want}: {err:.3e} > {bound:.3e}"
            );
            worst = worst.max(err / bound);
        }
    }
    worst
}

/// Every instruction set and kernel shape on Q8_K rows against the q8_K reference, within `rel`
/// of the terms' magnitude; returns the largest |Δ|/magnitude.
fn check_simd_against_q8k_reference(ty: GgmlType, w: &[u8], k: usize, a: &Q8Rows, rel: f64) -> f64 {
    let refs = rocmforge::quant::matmul_q8_k_reference(ty, w, k, &q8k_blocks(a)).unwrap();
    let rows = w.len() / (k / ty.block_elems() * ty.block_bytes());
    let mut worst = 0f64;
    for (isa, kernel) in kernels() {
        let mut out = vec![0f32; rows * a.n()];
        gemm_q8_1_with(isa, kernel, ty, w, k, a, &mut out).unwrap();
        for (i, (&got, &(want, magnitude))) in out.iter().zip(&refs).enumerate() {
            let err = (got as f64 - want as f64).abs() / (magnitude as f64).max(1e-30);
            assert!(
                err <= rel,
                "{ty} on {} (q8_K): k {k}, row {}, token {}: {got} vs reference {want} (|Δ|/magnitude {err:.3e})",
                label(isa, kernel),
                i / a.n(),
                i % a.n()
            );
            worst = worst.max(err);
        }
    }
    worst
}

#[test]
fn the_q8_k_reference_equals_floats_on_real_and_random_blocks() {
    let mut rng = Rng(0x3C6E_F372_FE94_F82B);
    for ty in Q8K_TYPES {
        let real = fixture(&format!("{}.blocks", ty.name()));
        let n_values = real.len() / ty.block_bytes() * ty.block_elems();
        let k = 512;
        let real = &real[..n_values / k * k / ty.block_elems() * ty.block_bytes()];
        let a = q8k_activations(3, k, &mut rng);
        let worst_real = check_q8k_reference_against_floats(ty, real, k, &a);
        let k = 2048;
        let random = random_blocks(ty, 4 * k / 256, &mut rng);
        let a = q8k_activations(2, k, &mut rng);
        let worst_random = check_q8k_reference_against_floats(ty, &random, k, &a);
        eprintln!("{ty} × q8_K: worst error {worst_real:.3} (real blocks), {worst_random:.3} (random) of its bound");
    }
}

#[test]
fn every_instruction_set_matches_the_q8_k_reference_over_row_lengths_256_to_11008() {
    let mut rng = Rng(0x1F83_D9AB_FB41_BD6B);
    for ty in Q8K_TYPES {
        let mut worst = 0f64;
        let lengths = [256, 512, 768, 1536, 2816, 5632, 11008];
        for k in lengths {
            let w = random_blocks(ty, 3 * k / 256, &mut rng);
            let a = q8k_activations(1 + (k / 256) % 6, k, &mut rng);
            worst = worst.max(check_simd_against_q8k_reference(ty, &w, k, &a, 1e-6));
        }
        // Whole AMX tiles (16 rows × 16 tokens) and their remainders, on real blocks too.
        let w = random_blocks(ty, 37 * 1536 / 256, &mut rng);
        worst = worst.max(check_simd_against_q8k_reference(ty, &w, 1536, &q8k_activations(35, 1536, &mut rng), 1e-6));
        let real = fixture(&format!("{}.blocks", ty.name()));
        let rows = real.len() / (512 / 256 * ty.block_bytes());
        let real = &real[..rows * 512 / 256 * ty.block_bytes()];
        worst = worst.max(check_simd_against_q8k_reference(ty, real, 512, &q8k_activations(5, 512, &mut rng), 1e-6));
        eprintln!("{ty} × q8_K: lengths {lengths:?}, 37 × 35 tiles, real blocks: worst |Δ|/magnitude {worst:.2e}");
    }
}

/// Power-of-two scales (weights' f16 fields, d = 1/64 for the activations) and small quants make
/// every f32 step exact, so each instruction set must give the q8_K reference's bits: its integer
/// sums are ggml's.
#[test]
fn q8_k_integer_sums_are_bit_exact_on_every_instruction_set() {
    let mut rng = Rng(0x6A09_E667_F3BC_C909);
    for ty in Q8K_TYPES {
        for k in [256, 2816] {
            let bb = ty.block_bytes();
            let n_rows = 18;
            let mut w = random_blocks(ty, n_rows * k / 256, &mut rng);
            for b in 0..w.len() / bb {
                for &f in f16_fields(ty) {
                    let v = [0.25f32, 0.5, 1.0, -0.5][(rng.next() % 4) as usize];
                    w[b * bb + f..b * bb + f + 2].copy_from_slice(&half::f16::from_f32(v).to_le_bytes());
                }
            }
            let n_tok = 17;
            let blocks: Vec<rocmforge::quant::BlockQ8K> = (0..n_tok * k / 256)
                .map(|_| {
                    rocmforge::quant::BlockQ8K::new(1.0 / 64.0, std::array::from_fn(|_| (rng.next() % 13) as i8 - 6))
                })
                .collect();
            let a = Q8Rows::from_q8k_blocks(&blocks, k);
            assert_eq!(q8k_blocks(&a), blocks, "Q8_K rows give their blocks back");
            let refs = rocmforge::quant::matmul_q8_k_reference(ty, &w, k, &blocks).unwrap();
            let row_bytes = k / 256 * bb;
            for (r, row) in w.chunks_exact(row_bytes).enumerate() {
                let wf = quant::dequantize_to_vec(ty, row).unwrap();
                for t in 0..n_tok {
                    let x = a.dequantize_row(t);
                    let exact: f64 = wf.iter().zip(&x).map(|(&p, &q)| p as f64 * q as f64).sum();
                    assert_eq!(refs[r * n_tok + t].0 as f64, exact, "{ty} k {k}: the q8_K reference is exact here");
                }
            }
            for (isa, kernel) in kernels() {
                let mut out = vec![0f32; n_rows * n_tok];
                gemm_q8_1_with(isa, kernel, ty, &w, k, &a, &mut out).unwrap();
                for (i, (&got, &(want, _))) in out.iter().zip(&refs).enumerate() {
                    assert_eq!(
                        got.to_bits(),
                        want.to_bits(),
                        "{ty} on {} (q8_K): k {k} row {} token {}: {got} vs {want}",
                        label(isa, kernel),
                        i / n_tok,
                        i % n_tok
                    );
                }
            }
        }
        eprintln!("{ty} × q8_K: bit-exact on {:?}", Isa::available().iter().map(|i| i.name()).collect::<Vec<_>>());
    }
}

/// The Q8_0 and Q8_1 rows of ggml-cpu's quantizer through every kernel (the weight types that
/// take them), against the scalar reference as for the GPU's q8_1 rows.
#[test]
fn every_instruction_set_matches_the_reference_on_ggml_cpu_q8_0_and_q8_1_rows() {
    use rocmforge::quant::ActFormat;
    let mut rng = Rng(0xBB67_AE85_84CA_A73B);
    for ty in [GgmlType::Q8_0, GgmlType::Q4_0, GgmlType::Q5_0, GgmlType::IQ4_NL, GgmlType::Q4_1, GgmlType::Q5_1] {
        let format = ActFormat::ggml_cpu(ty).unwrap();
        let mut worst = 0f64;
        for (k, rows, n_tok) in [(32, 3, 1), (576, 3, 5), (1056, 37, 35), (11008, 3, 2)] {
            let w = random_blocks(ty, rows * k / 32, &mut rng);
            let x: Vec<f32> = (0..n_tok * k).map(|_| rng.activation()).collect();
            let mut a = Q8Rows::new();
            a.quantize_as(&x, k, format);
            worst = worst.max(check_simd_against_reference(ty, &w, k, &a, 1e-6));
        }
        eprintln!("{ty} × {}: worst |Δ|/magnitude {worst:.2e}", format.name());
    }
}

/// The weights ggml-cpu dots with Q8_0 activations (Q4_0, Q5_0, Q8_0, IQ4_NL) meet ggml-cpu's Q8_0
/// rows in llama.cpp's own f32 order (`quant::q8_0_lanes`: eight lanes of four products, one
/// fma per block and lane, ggml's `hsum`): every instruction set and kernel shape equals that
/// scalar reference bit for bit, over row lengths with tails, 1 to 35 tokens and row counts that
/// leave lone rows and pairs; and the reference is within f32 rounding of the f64 product of the
/// dequantized operands ((k/32 + 8)·2⁻²⁴ of its terms' magnitude: one rounding per block and lane,
/// three in the final sum).
#[test]
fn q8_0_rows_take_llama_cpp_lane_order_bit_for_bit_on_every_instruction_set() {
    use rocmforge::quant::{q8_0_lanes, ActFormat};
    fn reference<B: VecDotQ8_1>(row: &[u8], a: &Q8Rows, t: usize) -> (f32, f32) {
        q8_0_lanes::dot_row_terms(blocks::<B>(row).unwrap(), a, t)
    }
    let mut rng = Rng(0x3C6E_F372_FE94_F82B);
    for ty in [GgmlType::Q8_0, GgmlType::Q4_0, GgmlType::Q5_0, GgmlType::IQ4_NL] {
        let mut worst = 0f64;
        for (k, rows, n_tok) in
            [(32, 1, 1), (64, 2, 2), (96, 3, 3), (576, 5, 13), (1056, 7, 35), (4192, 6, 9), (11008, 3, 2)]
        {
            let w = random_blocks(ty, rows * k / 32, &mut rng);
            let x: Vec<f32> = (0..n_tok * k).map(|_| rng.activation()).collect();
            let mut a = Q8Rows::new();
            a.quantize_as(&x, k, ActFormat::Q8_0);
            let row_bytes = k / 32 * ty.block_bytes();
            let refs: Vec<(f32, f32)> = w
                .chunks_exact(row_bytes)
                .flat_map(|row| {
                    (0..n_tok)
                        .map(|t| match ty {
                            GgmlType::Q8_0 => reference::<BlockQ8_0>(row, &a, t),
                            GgmlType::Q4_0 => reference::<BlockQ4_0>(row, &a, t),
                            GgmlType::Q5_0 => reference::<BlockQ5_0>(row, &a, t),
                            _ => reference::<BlockIQ4NL>(row, &a, t),
                        })
                        .collect::<Vec<_>>()
                })
                .collect();
            for (r, row) in w.chunks_exact(row_bytes).enumerate() {
                let wf = quant::dequantize_to_vec(ty, row).unwrap();
                for t in 0..n_tok {
                    let x = a.dequantize_row(t);
                    let want: f64 = wf.iter().zip(&x).map(|(&p, &q)| p as f64 * q as f64).sum();
                    let (got, magnitude) = refs[r * n_tok + t];
                    let bound = ((k / 32) as f64 + 8.0) * 2f64.powi(-24) * magnitude as f64 + 1e-30;
                    let err = (got as f64 - want).abs();
                    assert!(
                        err <= bound,
                        "{ty}, k {k}, row {r}, token {t}: {got} vs float {want}: {err:.3e} > {bound:.3e}"
                    );
                    worst = worst.max(err / bound);
                }
            }
            for (isa, kernel) in kernels() {
                let mut out = vec![0f32; rows * n_tok];
                gemm_q8_1_with(isa, kernel, ty, &w, k, &a, &mut out).unwrap();
                for (i, (&got, &(want, _))) in out.iter().zip(&refs).enumerate() {
                    assert_eq!(
                        got.to_bits(),
                        want.to_bits(),
                        "{ty} on {}: k {k}, row {}, token {}: {got} vs {want}",
                        label(isa, kernel),
                        i / n_tok,
                        i % n_tok
                    );
                }
            }
        }
        eprintln!(
            "{ty} × q8_0: bit for bit on {:?}; the reference within {worst:.3} of its bound from floats",
            Isa::available().iter().map(|i| i.name()).collect::<Vec<_>>()
        );
    }
}
