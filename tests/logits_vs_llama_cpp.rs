//! CPU logits against llama.cpp's in its exact mode (`llama-debug -fa off -ctk f32 -ctv f32
//! --save-logits`) on the same prompt ids (tests/fixtures/logits, made by
//! tests/fixtures/make_reference.sh). SmolLM2 F32: max |Δ| ≤ 1e-3. Every quantized model: NMSE ≤
//! 1e-2 and our top-1 token's llama.cpp logit within 0.15 of llama.cpp's maximum (llama.cpp
//! quantizes activations to 8 bits for quantized matrices; we do not, so exact agreement is not
//! expected). Prompts of 13 and 80+ tokens (323 for the synthetic Llama 3, whose rope frequency
//! factors matter only on long prompts). The fast path (llama.cpp's own activation quantization)
//! is held to NMSE ≤ 1e-2 and the same top-1 on every quantized reference; run the file again with
//! `ROCMFORGE_NO_AMX=1` for the AVX-512 kernels in place of the AMX tiles.

mod common;

use std::path::PathBuf;

use rocmforge::exec::{Model, Session};
use rocmforge::graph;
use rocmforge::kernels::AttnPhase;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/logits")
}

fn read_f32(path: &std::path::Path) -> Vec<f32> {
    std::fs::read(path).unwrap().chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect()
}

fn read_ids(path: &std::path::Path) -> Vec<u32> {
    std::fs::read(path).unwrap().chunks_exact(4).map(|c| i32::from_le_bytes(c.try_into().unwrap()) as u32).collect()
}

/// (model file relative to the models folder, its SHA256) from the manifest.
fn manifest_entry(name: &str) -> (String, String) {
    let manifest = std::fs::read_to_string(fixtures().join("manifest.tsv")).unwrap();
    let line = manifest
        .lines()
        .find(|l| l.starts_with(&format!("{name}\t")))
        .unwrap_or_else(|| panic!("{name} not in manifest"));
    let mut cols = line.split('\t').skip(1);
    (cols.next().unwrap().to_string(), cols.next().unwrap().to_string())
}

fn sha256(path: &std::path::Path) -> String {
    let out = std::process::Command::new("sha256sum").arg(path).output().expect("sha256sum");
    String::from_utf8_lossy(&out.stdout).split_whitespace().next().unwrap_or_default().to_string()
}

struct Comparison {
    max_abs: f32,
    nmse: f64,
    top1_gap: f32,
    n_tokens: usize,
}

/// The model the references of `name` were made from, or `None` when it is absent.
fn load(name: &str) -> Option<Model> {
    let (file, sha) = manifest_entry(name);
    let path = common::model(&file)?;
    assert_eq!(
        sha256(&path),
        sha,
        "{}: not the file the references were made from (rerun scripts/make_variants.sh)",
        path.display()
    );
    Some(Model::load(&path).unwrap())
}

fn compare(name: &str) -> Vec<Comparison> {
    match load(name) {
        Some(model) => compare_model(name, &model),
        None => Vec::new(),
    }
}

/// Our CPU logits for both prompts of `name` against llama.cpp's.
fn compare_model(name: &str, model: &Model) -> Vec<Comparison> {
    compare_model_at(name, model, None)
}

/// As [`compare_model`], in sessions of `capacity` positions (each prompt's length if `None`).
fn compare_model_at(name: &str, model: &Model, capacity: Option<usize>) -> Vec<Comparison> {
    let mut out = Vec::new();
    for n in 0..2 {
        let ids = read_ids(&fixtures().join(format!("{name}/{n}.tokens.bin")));
        let want = read_f32(&fixtures().join(format!("{name}/{n}.logits.bin")));
        let mut session = Session::new(model, capacity.unwrap_or(ids.len())).unwrap();
        let got = session.forward(&ids).unwrap().to_vec();
        assert_eq!(got.len(), want.len());
        let max_abs = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        let err: f64 = got.iter().zip(&want).map(|(a, b)| ((a - b) as f64).powi(2)).sum();
        let norm: f64 = want.iter().map(|b| (*b as f64).powi(2)).sum();
        let ours = got.iter().enumerate().fold(0, |best, (i, &v)| if v > got[best] { i } else { best });
        let ref_max = want.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
        out.push(Comparison { max_abs, nmse: err / norm, top1_gap: ref_max - want[ours], n_tokens: ids.len() });
    }
    for c in &out {
        eprintln!(
            "{name}: {} tokens: max|Δ| {:.3e}, NMSE {:.3e}, top-1 gap {:.3}",
            c.n_tokens, c.max_abs, c.nmse, c.top1_gap
        );
    }
    out
}

fn assert_quantized_close(name: &str) {
    for c in compare(name) {
        assert!(c.n_tokens >= 8 && c.n_tokens <= 100);
        assert!(c.nmse <= 1e-2, "{name}: NMSE {:.3e}", c.nmse);
        assert!(c.top1_gap <= 0.15, "{name}: our top-1 is {:.3} below llama.cpp's best", c.top1_gap);
    }
}

#[test]
fn smollm2_f32_matches_llama_cpp_within_1e_3() {
    for c in compare("smollm2-f32") {
        assert!(c.max_abs <= 1e-3, "max |Δ| {:.3e}", c.max_abs);
        assert_eq!(c.top1_gap, 0.0);
    }
}

#[test]
fn smollm2_f16_matches_llama_cpp() {
    assert_quantized_close("smollm2-f16");
}

#[test]
fn smollm2_q8_0_matches_llama_cpp() {
    assert_quantized_close("smollm2-q8_0");
}

#[test]
fn smollm2_q6_k_matches_llama_cpp() {
    assert_quantized_close("smollm2-q6_k");
}

#[test]
fn smollm2_q4_k_m_matches_llama_cpp() {
    assert_quantized_close("smollm2-q4_k_m");
}

#[test]
fn smollm2_q3_k_m_matches_llama_cpp() {
    assert_quantized_close("smollm2-q3_k_m");
}

/// SmolLM2 in Q2_K (ffn_down Q3_K, the rest Q4_0/Q5_0/…, as llama-quantize lays it out for rows
/// of 576) and all-Q2_K where the shape allows (`--pure`): held to llama.cpp on the F32
/// dequantization of the same file (NMSE ≤ 1e-6, its top-1). Against llama.cpp's run on the
/// quantized file our exact path misses the 1e-2 / 0.15 line (measured 2026-11-26: pure Q2_K NMSE
/// 3.9e-2 at 13 tokens; Q2_K top-1 gap 0.187), and llama.cpp's own run sits the same distance from
/// its dequantized one: its q8_K activations, not our arithmetic. The fast path, which quantizes
/// them as llama.cpp does, holds that line (`fast_smollm2_pure_q2_k_tracks_llama_cpp`).
#[test]
fn smollm2_q2_k_matches_llama_cpp_on_the_dequantized_weights() {
    assert_matches_dequantized("smollm2-q2_k");
    assert_matches_dequantized("smollm2-q2_k-pure");
}

/// Our exact path on the quantized file `name` against llama.cpp on its F32 dequantization
/// (`<name>-deq`): NMSE ≤ 1e-6 and llama.cpp's top-1.
fn assert_matches_dequantized(name: &str) {
    let Some(model) = load(name) else { return };
    for c in compare_model(&format!("{name}-deq"), &model) {
        assert!(c.nmse <= 1e-6, "{name}, {} tokens: NMSE {:.3e} from the dequantized run", c.n_tokens, c.nmse);
        assert_eq!(c.top1_gap, 0.0, "{name}, {} tokens: our top-1 is not llama.cpp's", c.n_tokens);
    }
}

#[test]
fn smollm2_iq4_xs_matches_llama_cpp() {
    assert_quantized_close("smollm2-iq4_xs");
}

/// SmolLM2 with every 1536-wide matrix in Q2_K (ffn_down; the 576-wide ones fall back to Q4_0):
/// its 8-bit activations move llama.cpp's logits 3.9e-2 (NMSE, 13 tokens) from its own F32 run,
/// so any f32-order difference left between llama.cpp and us, which decides a few roundings of
/// activations the other way, shows at the 1e-2 scale here. Held: llama.cpp's top-1 and NMSE ≤
/// 1e-2 on both prompts.
///
/// Where it stands (tests/fixtures/dump_llama_tensors.sh, 2026-11-26): the fast path follows
/// llama.cpp's float order on this host's AVX-512 build wherever it reaches these logits: the
/// Q4_0 products (`quant::q8_0_lanes`), rope's fma-contracted rotation, SiLU's `ggml_v_expf`,
/// the attention (`cpu_simd::attend_ggml`: `ggml_vec_dot_f32` scores, its softmax, tinyBLAS's
/// 16 lanes for the values) and the Q2_K products (`quant::q2_k_ggml`: ggml's tiled product
/// at 8+ tokens). Measured: both prompts' logits equal llama.cpp's bit for bit (NMSE 0; they
/// were 8.55e-3 and 4.8e-4 before the attention and Q2_K orders). llama.cpp's two best logits
/// at 13 tokens are 0.00065 apart (17.1221, 17.1215): only its own order is sure to pick its
/// top-1 there.
#[test]
fn fast_smollm2_pure_q2_k_tracks_llama_cpp() {
    use rocmforge::exec::CpuPrecision;
    let name = "smollm2-q2_k-pure";
    let Some(model) = load(name) else { return };
    for n in 0..2 {
        let ids = read_ids(&fixtures().join(format!("{name}/{n}.tokens.bin")));
        let want = read_f32(&fixtures().join(format!("{name}/{n}.logits.bin")));
        let got =
            Session::with_precision(&model, ids.len(), CpuPrecision::Fast).unwrap().forward(&ids).unwrap().to_vec();
        let exact = Session::new(&model, ids.len()).unwrap().forward(&ids).unwrap().to_vec();
        let (fast_e, exact_e) = (nmse(&got, &want), nmse(&exact, &want));
        eprintln!(
            "{name} (fast): {} tokens: NMSE {fast_e:.3e} vs llama.cpp (our exact path: {exact_e:.3e})",
            ids.len()
        );
        assert_eq!(argmax(&got), argmax(&want), "{} tokens: top-1 differs from llama.cpp's", ids.len());
        assert!(fast_e <= 1e-2, "{} tokens: NMSE {fast_e:.3e} vs llama.cpp", ids.len());
    }
}

#[test]
fn smollm2_original_q4_1_matches_llama_cpp() {
    assert_quantized_close("smollm2-q4_1");
}

#[test]
fn gemma3_270m_q4_k_m_matches_llama_cpp() {
    assert_quantized_close("gemma3-q4_k_m");
}

#[test]
fn synthetic_qwen2_q4_k_matches_llama_cpp() {
    assert_quantized_close("qwen2-synth-q4_k");
}

/// gemma2: attention and final soft-capping, post-norms, GeGLU and an 8-token sliding window on
/// every other layer, which both prompts exceed (the file without its window gives NMSE > 1). F32
/// weights, so the comparison is exact up to llama.cpp's f16-table GELU: NMSE ≤ 1e-4.
#[test]
fn synthetic_gemma2_f32_matches_llama_cpp() {
    for c in compare("gemma2-synth-f32") {
        assert!(c.nmse <= 1e-4, "NMSE {:.3e}", c.nmse);
        assert_eq!(c.top1_gap, 0.0);
    }
}

// ---------------------------------------------------------------------------------------------
// The fast CPU path (int8 activations for quantized weights, SIMD kernels) against the same
// references. The criterion: NMSE ≤ 1e-2 against llama.cpp and the same top-1 token.
// The fast path quantizes each projection's input as llama.cpp's CPU backend does for that weight
// type (Q8_0, Q8_1 or Q8_K, byte for byte: tests/int8_dot.rs) and norms rows with its arithmetic,
// so the two int8 runs differ only by f32 summation order; where no activation rounds the other
// way because of it they agree to ~1e-13 (the synthetic models' short prompts). SmolLM2's outlier
// channels turn each such rounding into a visible change, which is what the measured NMSE is.
// Each case prints its distance from our exact f32 path too (not asserted: that is the size of the
// 8-bit activations' own error, which llama.cpp's run carries as well).

/// NMSE of `got` against `want`.
fn nmse(got: &[f32], want: &[f32]) -> f64 {
    let err: f64 = got.iter().zip(want).map(|(a, b)| ((a - b) as f64).powi(2)).sum();
    err / want.iter().map(|b| (*b as f64).powi(2)).sum::<f64>()
}

fn argmax(v: &[f32]) -> usize {
    v.iter().enumerate().fold(0, |best, (i, &x)| if x > v[best] { i } else { best })
}

/// Our fast path on both prompts of `name` (sessions of `capacity`, each prompt's length if
/// `None`) against llama.cpp's logits: NMSE ≤ 1e-2 and llama.cpp's top-1, every figure printed.
fn assert_fast_matches(name: &str, model: &Model, capacity: Option<usize>) {
    use rocmforge::exec::CpuPrecision;
    for n in 0..2 {
        let ids = read_ids(&fixtures().join(format!("{name}/{n}.tokens.bin")));
        let want = read_f32(&fixtures().join(format!("{name}/{n}.logits.bin")));
        let cap = capacity.unwrap_or(ids.len());
        let mut fast = Session::with_precision(model, cap, CpuPrecision::Fast).unwrap();
        let got = fast.forward(&ids).unwrap().to_vec();
        let exact = Session::new(model, cap).unwrap().forward(&ids).unwrap().to_vec();
        assert_eq!(got.len(), want.len());
        let (vs_llama, vs_exact, llama_vs_exact) = (nmse(&got, &want), nmse(&got, &exact), nmse(&exact, &want));
        let same_top1 = argmax(&got) == argmax(&want);
        eprintln!(
            "{name} (fast, {}{}): {} tokens: NMSE {vs_llama:.3e} vs llama.cpp (bound 1e-2), {vs_exact:.3e} vs our \
             exact path (llama.cpp {llama_vs_exact:.3e} from it); top-1 {} llama.cpp's",
            fast.isa().map_or("?", |i| i.name()),
            if rocmforge::quant::simd::amx_usable() { ", AMX" } else { "" },
            ids.len(),
            if same_top1 { "is" } else { "is NOT" }
        );
        assert!(vs_llama <= 1e-2, "{name}, {} tokens: fast path NMSE {vs_llama:.3e} vs llama.cpp", ids.len());
        assert!(same_top1, "{name}, {} tokens: top-1 differs from llama.cpp's", ids.len());
    }
}

fn assert_fast_close(name: &str) {
    if let Some(model) = load(name) {
        assert_fast_matches(name, &model, None);
    }
}

macro_rules! fast_mode_tests {
    ($($test:ident => $name:literal,)*) => {$(
        #[test]
        fn $test() {
            assert_fast_close($name);
        }
    )*};
}

fast_mode_tests! {
    fast_smollm2_f32_matches_llama_cpp => "smollm2-f32",
    fast_smollm2_f16_matches_llama_cpp => "smollm2-f16",
    fast_smollm2_q8_0_matches_llama_cpp => "smollm2-q8_0",
    fast_smollm2_q6_k_matches_llama_cpp => "smollm2-q6_k",
    fast_smollm2_q4_k_m_matches_llama_cpp => "smollm2-q4_k_m",
    fast_smollm2_q3_k_m_matches_llama_cpp => "smollm2-q3_k_m",
    fast_smollm2_q2_k_matches_llama_cpp => "smollm2-q2_k",
    fast_smollm2_iq4_xs_matches_llama_cpp => "smollm2-iq4_xs",
    fast_smollm2_original_q4_1_matches_llama_cpp => "smollm2-q4_1",
    fast_gemma3_270m_q4_k_m_matches_llama_cpp => "gemma3-q4_k_m",
    fast_synthetic_qwen2_q4_k_matches_llama_cpp => "qwen2-synth-q4_k",
    fast_synthetic_gemma2_f32_matches_llama_cpp => "gemma2-synth-f32",
    fast_synthetic_llama3_q4_k_m_matches_llama_cpp => "llama3-synth-q4_k_m",
    fast_synthetic_qwen3_q4_k_m_matches_llama_cpp => "qwen3-synth-q4_k_m",
}

/// Llama 3.x rope scaling: a synthetic Llama 3 (tests/fixtures/synth_llama3.py) whose
/// `rope_freqs.weight` holds Meta's llama3 factors (32, low 1, high 4, original context 8192),
/// slowing 8 of its 16 rotated pairs. F32 weights, so the comparison is exact up to summation
/// order: NMSE ≤ 1e-4 on 14 and 324 tokens. Run without its factors, the same model is far from
/// llama.cpp on the long prompt (NMSE > 1e-2), so this test sees whether they are applied.
#[test]
fn synthetic_llama3_f32_with_rope_freq_factors_matches_llama_cpp() {
    let Some(mut model) = load("llama3-synth-f32") else { return };
    assert!(model.config.rope_freq_factors, "the synthetic Llama 3 carries rope_freqs.weight");
    let with = compare_model("llama3-synth-f32", &model);
    for c in &with {
        assert!(c.nmse <= 1e-4, "{} tokens: NMSE {:.3e}", c.n_tokens, c.nmse);
        assert_eq!(c.top1_gap, 0.0);
    }
    assert!(with[1].n_tokens >= 300, "the long prompt has {} tokens", with[1].n_tokens);

    model.config.rope_freq_factors = false;
    model.prefill = graph::build(&model.config, model.file.as_ref(), AttnPhase::Prefill).unwrap();
    model.decode = graph::build(&model.config, model.file.as_ref(), AttnPhase::Decode).unwrap();
    eprintln!("the same model without its rope frequency factors:");
    let without = compare_model("llama3-synth-f32", &model);
    assert!(without[1].nmse > 1e-2, "without factors: NMSE {:.3e}", without[1].nmse);
}

/// The synthetic Llama 3 requantized by llama-quantize (rope_freqs.weight stays F32): see
/// [`assert_arch_variants`].
#[test]
fn synthetic_llama3_quantized_variants_match_llama_cpp() {
    assert_arch_variants("llama3", |_| None, 300);
}

/// qwen3: per-head Q/K RMSNorm before NEOX rope, no Q/K/V biases, heads of 128 over a hidden size
/// of 256 (tests/fixtures/synth_qwen3.py). F32: NMSE ≤ 1e-4 and llama.cpp's top-1.
#[test]
fn synthetic_qwen3_f32_matches_llama_cpp() {
    for c in compare("qwen3-synth-f32") {
        assert!(c.nmse <= 1e-4, "{} tokens: NMSE {:.3e}", c.n_tokens, c.nmse);
        assert_eq!(c.top1_gap, 0.0);
    }
}

/// The synthetic qwen3 requantized by llama-quantize: see [`assert_arch_variants`].
#[test]
fn synthetic_qwen3_quantized_variants_match_llama_cpp() {
    assert_arch_variants("qwen3", |_| None, 70);
}

// ---------------------------------------------------------------------------------------------
// Issue 14's architectures and rope scalings: synthetic models (tests/fixtures/synth_archs.py)
// written with each architecture's real llama.cpp vocabulary, against llama.cpp's exact-mode
// logits on a 14-token prompt and the 323-token one. F32: NMSE ≤ 1e-4 (summation order only) and
// llama.cpp's top-1; each test also runs the model with its feature undone and sees the long
// prompt's logits move past 1e-2, so the comparison can tell whether the feature is applied.
// Quantized variants (llama-quantize's): NMSE ≤ 1e-2 with the same top-1 (llama.cpp's 8-bit
// activations, which our exact path does not have).

/// The quantized variants of each synthetic model (`<arch>-synth-<variant>` in the manifest,
/// made by scripts/make_variants.sh): adding a type is one line here and one in that script.
const ARCH_VARIANTS: &[&str] = &["q4_k_m", "q3_k_m"];

/// The 2-bit and IQ4 variants: our exact path held to llama.cpp on the F32 dequantization of the
/// same file (the `-deq` references: no 8-bit activations on llama.cpp's side, so NMSE ≤ 1e-6 and
/// its top-1 hold our dequantizers to its own). The NMSE ≤ 1e-2 line against llama.cpp's
/// run on the quantized file is held by the fast path, which quantizes activations to q8_K as that
/// run does (our exact path is printed beside it: llama.cpp's q8_K activations alone put some
/// long-prompt logits past 1e-2 from it, e.g. llama3 Q2_K 1.09e-2, YaRN qwen2 IQ4_XS 1.32e-2).
const LOW_BIT_VARIANTS: &[&str] = &["q2_k", "iq4_xs"];

/// The F32 synthetic `arch` against llama.cpp (NMSE ≤ 1e-4, its top-1, a 300+-token second
/// prompt), in sessions of `capacity`; then, through `undo`, the model without its feature, which
/// must be far from llama.cpp on the long prompt. `None` when the model is absent.
fn assert_arch_f32(arch: &str, capacity: impl Fn(&Model) -> Option<usize>, undo: impl FnOnce(&mut Model)) {
    let name = format!("{arch}-synth-f32");
    let Some(mut model) = load(&name) else { return };
    let cs = compare_model_at(&name, &model, capacity(&model));
    for c in &cs {
        assert!(c.nmse <= 1e-4, "{name}, {} tokens: NMSE {:.3e}", c.n_tokens, c.nmse);
        assert_eq!(c.top1_gap, 0.0, "{name}, {} tokens: our top-1 is not llama.cpp's", c.n_tokens);
    }
    assert!(cs[1].n_tokens >= 300, "the long prompt has {} tokens", cs[1].n_tokens);
    undo(&mut model);
    eprintln!("{name} with its feature undone:");
    let without = compare_model_at(&name, &model, capacity(&model));
    assert!(without[1].nmse > 1e-2, "{name} without its feature: NMSE {:.3e}", without[1].nmse);
}

/// Every quantized variant of the synthetic `arch`: [`ARCH_VARIANTS`] at NMSE ≤ 1e-2 and
/// llama.cpp's top-1 on both paths; [`LOW_BIT_VARIANTS`] as that constant says. `long` is the
/// least length of the second prompt.
fn assert_arch_variants(arch: &str, capacity: impl Fn(&Model) -> Option<usize>, long: usize) {
    for variant in ARCH_VARIANTS {
        let name = format!("{arch}-synth-{variant}");
        let Some(model) = load(&name) else { continue };
        let cs = compare_model_at(&name, &model, capacity(&model));
        for c in &cs {
            assert!(c.nmse <= 1e-2, "{name}, {} tokens: NMSE {:.3e}", c.n_tokens, c.nmse);
            assert_eq!(c.top1_gap, 0.0, "{name}, {} tokens: our top-1 is not llama.cpp's", c.n_tokens);
        }
        assert!(cs[1].n_tokens >= long);
        assert_fast_matches(&name, &model, capacity(&model));
    }
    for variant in LOW_BIT_VARIANTS {
        let name = format!("{arch}-synth-{variant}");
        let Some(model) = load(&name) else { continue };
        let deq = compare_model_at(&format!("{name}-deq"), &model, capacity(&model));
        let quantized = compare_model_at(&name, &model, capacity(&model));
        for (n, (d, q)) in deq.iter().zip(&quantized).enumerate() {
            let (own_deq, own_q) = (
                read_f32(&fixtures().join(format!("{name}-deq/{n}.logits.bin"))),
                read_f32(&fixtures().join(format!("{name}/{n}.logits.bin"))),
            );
            eprintln!(
                "{name}, {} tokens (exact path): NMSE {:.3e} from llama.cpp on its F32 dequantization (bound \
                 1e-6); {:.3e} from llama.cpp's run on the quantized file, whose 8-bit activations put it \
                 {:.3e} from its own dequantized run",
                d.n_tokens,
                d.nmse,
                q.nmse,
                nmse(&own_q, &own_deq)
            );
            assert!(d.nmse <= 1e-6, "{name}, {} tokens: NMSE {:.3e} from the dequantized run", d.n_tokens, d.nmse);
            assert_eq!(d.top1_gap, 0.0, "{name}, {} tokens: our top-1 is not llama.cpp's", d.n_tokens);
        }
        assert_fast_matches(&name, &model, capacity(&model));
    }
}

fn rebuild_graphs(model: &mut Model) {
    model.prefill = graph::build(&model.config, model.file.as_ref(), AttnPhase::Prefill).unwrap();
    model.decode = graph::build(&model.config, model.file.as_ref(), AttnPhase::Decode).unwrap();
}

/// llama-debug runs at the trained context (4096), past phi3's original 512: the long LongRoPE
/// factors, as sessions of that capacity choose.
fn phi3_capacity(model: &Model) -> Option<usize> {
    Some(model.config.n_ctx_train as usize)
}

/// phi3: fused attn_qkv and ffn_up read as row ranges, NEOX rope, LongRoPE (long factors and the
/// attention factor √(1 + ln 8 / ln 512)). Undone: a session within the original context, which
/// takes the short factors.
#[test]
fn synthetic_phi3_f32_with_longrope_matches_llama_cpp() {
    assert_arch_f32("phi3", phi3_capacity, |model| {
        assert!(model.config.rope_longrope && model.config.rope_orig_ctx() == 512);
        assert!(model.config.ignored_sliding_window == Some(64), "llama.cpp leaves phi3's window off");
        model.config.rope_scaling_orig_ctx = Some(model.config.n_ctx_train);
        rebuild_graphs(model);
    });
}

#[test]
fn synthetic_phi3_quantized_variants_match_llama_cpp() {
    assert_arch_variants("phi3", phi3_capacity, 300);
}

/// Mistral: the llama architecture with the SentencePiece vocabulary and a 64-token window in
/// the file, which llama.cpp's llama graph does not apply (nor do we). Undone: the window
/// applied on every layer, which the 323-token prompt then exceeds.
#[test]
fn synthetic_mistral_f32_matches_llama_cpp() {
    assert_arch_f32(
        "mistral",
        |_| None,
        |model| {
            assert_eq!(model.config.ignored_sliding_window, Some(64));
            model.config.sliding_window = Some(64);
            model.config.swa_layers = vec![true; model.config.n_layer as usize];
            rebuild_graphs(model);
        },
    );
}

#[test]
fn synthetic_mistral_quantized_variants_match_llama_cpp() {
    assert_arch_variants("mistral", |_| None, 300);
}

/// qwen2 with YaRN (factor 4, original context 4096): pairs 3…8 on the ramp, the slower ones
/// scaled, cos/sin × (1 + 0.1 ln 4). Undone: no scaling.
#[test]
fn synthetic_qwen2_yarn_f32_matches_llama_cpp() {
    use rocmforge::model::RopeScaling;
    assert_arch_f32(
        "qwen2-yarn",
        |_| None,
        |model| {
            assert!(matches!(model.config.rope_scaling, RopeScaling::Yarn { factor: 4.0, orig_ctx: 4096, .. }));
            model.config.rope_scaling = RopeScaling::None;
            rebuild_graphs(model);
        },
    );
}

#[test]
fn synthetic_qwen2_yarn_quantized_variants_match_llama_cpp() {
    assert_arch_variants("qwen2-yarn", |_| None, 300);
}
