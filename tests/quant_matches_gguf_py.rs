//! Our dequantizers against gguf-py 0.19.0, bit for bit, on blocks cut from real GGUF files
//! (SmolLM2, Gemma 3 270M, and llama-quantize output). Fixtures: tests/fixtures/quant, made by
//! tests/fixtures/make_quant_fixtures.py.

use std::path::PathBuf;

use rocmforge::dtype::GgmlType;
use rocmforge::quant;

fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/quant").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("fixture {} should be readable: {e}", path.display()))
}

fn check_type(ty: GgmlType) {
    let blocks = fixture(&format!("{}.blocks", ty.name()));
    let want: Vec<f32> = fixture(&format!("{}.f32", ty.name()))
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    let got = quant::dequantize_to_vec(ty, &blocks).expect("fixture blocks should dequantize");
    assert_eq!(got.len(), want.len(), "{ty}: value count");
    let mismatches: Vec<usize> = (0..got.len()).filter(|&i| got[i].to_bits() != want[i].to_bits()).collect();
    assert!(
        mismatches.is_empty(),
        "{ty}: {} of {} values differ from gguf-py; first at {}: ours {:e} vs gguf-py {:e}",
        mismatches.len(),
        got.len(),
        mismatches[0],
        got[mismatches[0]],
        want[mismatches[0]]
    );
    // The fixtures must exercise the format: many distinct values, not a run of zeros.
    let mut distinct: Vec<u32> = want.iter().map(|v| v.to_bits()).collect();
    distinct.sort_unstable();
    distinct.dedup();
    assert!(distinct.len() >= 16, "{ty}: fixture has only {} distinct values", distinct.len());
}

macro_rules! bit_exact {
    ($($test:ident => $ty:ident,)*) => {$(
        #[test]
        fn $test() {
            check_type(GgmlType::$ty);
        }
    )*};
}

bit_exact! {
    f32_matches_gguf_py_bit_for_bit => F32,
    f16_matches_gguf_py_bit_for_bit => F16,
    bf16_matches_gguf_py_bit_for_bit => BF16,
    q8_0_matches_gguf_py_bit_for_bit => Q8_0,
    q4_0_matches_gguf_py_bit_for_bit => Q4_0,
    q4_1_matches_gguf_py_bit_for_bit => Q4_1,
    q5_0_matches_gguf_py_bit_for_bit => Q5_0,
    q5_1_matches_gguf_py_bit_for_bit => Q5_1,
    q2_k_matches_gguf_py_bit_for_bit => Q2_K,
    q3_k_matches_gguf_py_bit_for_bit => Q3_K,
    q4_k_matches_gguf_py_bit_for_bit => Q4_K,
    q5_k_matches_gguf_py_bit_for_bit => Q5_K,
    q6_k_matches_gguf_py_bit_for_bit => Q6_K,
    iq4_nl_matches_gguf_py_bit_for_bit => IQ4_NL,
    iq4_xs_matches_gguf_py_bit_for_bit => IQ4_XS,
}

#[test]
fn every_supported_type_has_a_fixture() {
    for &ty in quant::SUPPORTED {
        assert!(!fixture(&format!("{}.blocks", ty.name())).is_empty(), "{ty}");
    }
}

#[test]
fn dot_of_fixture_rows_matches_the_gguf_py_values() {
    for &ty in quant::SUPPORTED {
        let blocks = fixture(&format!("{}.blocks", ty.name()));
        let w: Vec<f32> = fixture(&format!("{}.f32", ty.name()))
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        let x: Vec<f32> = (0..w.len()).map(|i| ((i * 37 % 101) as f32 - 50.0) / 50.0).collect();
        let want: f64 = w.iter().zip(&x).map(|(a, b)| *a as f64 * *b as f64).sum();
        let norm: f64 = w.iter().zip(&x).map(|(a, b)| (*a as f64 * *b as f64).abs()).sum();
        let got = quant::dot(ty, &blocks, &x).unwrap() as f64;
        assert!((got - want).abs() <= 1e-5 * norm.max(1e-12), "{ty}: dot {got} vs {want}");
    }
}
