//! Helpers shared by the integration tests.

use std::path::PathBuf;

/// The model cache `scripts/fetch_models.py` fills: `$ROCMFORGE_MODELS`, else
/// `$XDG_CACHE_HOME/rocmforge/models`, else `~/.cache/rocmforge/models`.
pub fn models_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("ROCMFORGE_MODELS") {
        return PathBuf::from(dir);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache"));
    base.join("rocmforge").join("models")
}

/// A fetched model file, or `None` (with a note) when it is absent. With
/// `ROCMFORGE_REQUIRE_MODELS=1` (the README's test command sets it) absence is a failure, so a
/// broken fetch cannot turn these tests into silent passes.
#[allow(dead_code)]
pub fn model(relative: &str) -> Option<PathBuf> {
    let path = models_dir().join(relative);
    if path.exists() {
        return Some(path);
    }
    if std::env::var("ROCMFORGE_REQUIRE_MODELS").as_deref() == Ok("1") {
        panic!("{} is missing: run scripts/fetch_models.py", path.display());
    }
    eprintln!("skipping: {} is absent (run scripts/fetch_models.py)", path.display());
    None
}

/// The synthetic 7B Q4_K_M (`../shared/tools/synth_q4km.py`) at `$ROCMFORGE_SYN7B`: `None` (said)
/// when unset, a failure when `ROCMFORGE_REQUIRE_MODELS=1`.
#[allow(dead_code)]
pub fn syn7b() -> Option<PathBuf> {
    let Some(path) = std::env::var_os("ROCMFORGE_SYN7B") else {
        assert_ne!(
            std::env::var("ROCMFORGE_REQUIRE_MODELS").as_deref(),
            Ok("1"),
            "ROCMFORGE_SYN7B (the synthetic 7B Q4_K_M, written by ../shared/tools/synth_q4km.py) is unset"
        );
        println!("ROCMFORGE_SYN7B unset: skipped");
        return None;
    };
    Some(PathBuf::from(path))
}

use rocmforge::dtype::GgmlType;
use rocmforge::gguf::{GgufFile, GgufWriter};
use rocmforge::graph::TensorTypes;
use rocmforge::model::ModelConfig;

/// A model we describe without its weights: metadata and a tensor-type table. Enough to plan its
/// kernels (the snapshot and compile tests use the shapes of models too large to fetch).
#[allow(dead_code)]
pub struct Described {
    pub name: &'static str,
    pub config: ModelConfig,
    pub types: std::collections::HashMap<String, GgmlType>,
}

#[allow(dead_code)]
impl Described {
    pub fn tensors(&self) -> impl TensorTypes + '_ {
        |name: &str| self.types.get(name).copied()
    }
}

#[allow(dead_code)]
fn describe(name: &'static str, arch: &str, kv: &[(&str, u32)], types: Vec<(String, GgmlType)>) -> Described {
    let mut w = GgufWriter::new();
    w.set_str("general.architecture", arch).set_f32(&format!("{arch}.attention.layer_norm_rms_epsilon"), 1e-6);
    for (k, v) in kv {
        w.set_u32(&format!("{arch}.{k}"), *v);
    }
    let file = GgufFile::from_bytes(w.to_bytes()).expect("described model metadata parses");
    let types: std::collections::HashMap<String, GgmlType> = types.into_iter().collect();
    let config = ModelConfig::from_metadata(&file.metadata, |_| None).expect("described model config");
    let mut config = config;
    config.tied_embeddings = !types.contains_key("output.weight");
    Described { name, config, types }
}

/// Tensor types llama.cpp's Q4_K_M gives a llama model (as ../shared/tools/synth_q4km.py lays
/// them out): Q4_K, with Q6_K for attn_v / ffn_down on the layers that get more bits, and output.
#[allow(dead_code)]
fn q4_k_m_types(n_layer: u32, qkv_bias: bool) -> Vec<(String, GgmlType)> {
    let n = n_layer as usize;
    let more_bits = |i: usize| i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2;
    let mut t = vec![
        ("token_embd.weight".to_string(), GgmlType::Q4_K),
        ("output_norm.weight".into(), GgmlType::F32),
        ("output.weight".into(), GgmlType::Q6_K),
    ];
    for i in 0..n {
        let p = format!("blk.{i}");
        let v = if more_bits(i) { GgmlType::Q6_K } else { GgmlType::Q4_K };
        for (name, ty) in [
            ("attn_norm.weight", GgmlType::F32),
            ("attn_q.weight", GgmlType::Q4_K),
            ("attn_k.weight", GgmlType::Q4_K),
            ("attn_v.weight", v),
            ("attn_output.weight", GgmlType::Q4_K),
            ("ffn_norm.weight", GgmlType::F32),
            ("ffn_gate.weight", GgmlType::Q4_K),
            ("ffn_up.weight", GgmlType::Q4_K),
            ("ffn_down.weight", v),
        ] {
            t.push((format!("{p}.{name}"), ty));
        }
        if qkv_bias {
            for b in ["attn_q.bias", "attn_k.bias", "attn_v.bias"] {
                t.push((format!("{p}.{b}"), GgmlType::F32));
            }
        }
    }
    t
}

/// LLaMA-2 7B's shape in the Q4_K_M layout (hidden 4096, 32 heads of 128, ffn 11008).
#[allow(dead_code)]
pub fn llama_7b_q4_k_m() -> Described {
    let kv = [
        ("block_count", 32),
        ("context_length", 4096),
        ("embedding_length", 4096),
        ("feed_forward_length", 11008),
        ("attention.head_count", 32),
        ("attention.head_count_kv", 32),
        ("vocab_size", 32000),
    ];
    describe("llama-7b-q4_k_m", "llama", &kv, q4_k_m_types(32, false))
}

/// Qwen2-1.5B's shape in the Q4_K_M layout (hidden 1536, 12 heads of 128 over 2 KV heads,
/// ffn 8960, QKV biases).
#[allow(dead_code)]
pub fn qwen2_1_5b_q4_k_m() -> Described {
    let kv = [
        ("block_count", 28),
        ("context_length", 32768),
        ("embedding_length", 1536),
        ("feed_forward_length", 8960),
        ("attention.head_count", 12),
        ("attention.head_count_kv", 2),
        ("vocab_size", 151936),
    ];
    describe("qwen2-1.5b-q4_k_m", "qwen2", &kv, q4_k_m_types(28, true))
}

/// hipRTC, or `None` (with a note) when it is not installed. With `ROCMFORGE_REQUIRE_HIPRTC=1`
/// (the README's test command sets it) absence is a failure.
#[allow(dead_code)]
pub fn hiprtc() -> Option<rocmforge::jit::HipRtc> {
    match rocmforge::jit::HipRtc::load() {
        Ok(h) => Some(h),
        Err(e) if std::env::var("ROCMFORGE_REQUIRE_HIPRTC").as_deref() == Ok("1") => panic!("{e}"),
        Err(e) => {
            eprintln!("skipping: {e}");
            None
        }
    }
}

/// Writes a tiny llama model (2 layers, hidden 256, 4 heads over 2 KV heads, Q4_K and Q6_K
/// weights of pseudo-random bytes): enough to plan and compile a full kernel set quickly.
#[allow(dead_code)]
pub fn write_tiny_llama(path: &std::path::Path) {
    let (n_embd, n_ff, n_vocab, n_layer) = (256u64, 512u64, 64u64, 2u32);
    let mut w = GgufWriter::new();
    w.set_str("general.architecture", "llama")
        .set_u32("llama.block_count", n_layer)
        .set_u32("llama.context_length", 256)
        .set_u32("llama.embedding_length", n_embd as u32)
        .set_u32("llama.feed_forward_length", n_ff as u32)
        .set_u32("llama.attention.head_count", 4)
        .set_u32("llama.attention.head_count_kv", 2)
        .set_u32("llama.vocab_size", n_vocab as u32)
        .set_f32("llama.attention.layer_norm_rms_epsilon", 1e-5);
    let mut seed = 7u32;
    let mut bytes = |ty: GgmlType, cols: u64, rows: u64| -> Vec<u8> {
        let n = (ty.row_bytes(cols).unwrap() * rows) as usize;
        (0..n)
            .map(|_| {
                seed = seed.wrapping_mul(1664525).wrapping_add(1013904223);
                ((seed >> 24) as u8) & 0x3b
            })
            .collect()
    };
    w.add_tensor("token_embd.weight", &[n_embd, n_vocab], GgmlType::Q4_K, bytes(GgmlType::Q4_K, n_embd, n_vocab));
    for i in 0..n_layer {
        let p = format!("blk.{i}");
        w.add_f32(&format!("{p}.attn_norm.weight"), &[n_embd], &vec![1.0; n_embd as usize]);
        w.add_f32(&format!("{p}.ffn_norm.weight"), &[n_embd], &vec![1.0; n_embd as usize]);
        for (name, ty, cols, rows) in [
            ("attn_q", GgmlType::Q4_K, n_embd, n_embd),
            ("attn_k", GgmlType::Q4_K, n_embd, n_embd / 2),
            ("attn_v", GgmlType::Q6_K, n_embd, n_embd / 2),
            ("attn_output", GgmlType::Q4_K, n_embd, n_embd),
            ("ffn_gate", GgmlType::Q4_K, n_embd, n_ff),
            ("ffn_up", GgmlType::Q4_K, n_embd, n_ff),
            ("ffn_down", GgmlType::Q6_K, n_ff, n_embd),
        ] {
            w.add_tensor(&format!("{p}.{name}.weight"), &[cols, rows], ty, bytes(ty, cols, rows));
        }
    }
    w.add_f32("output_norm.weight", &[n_embd], &vec![1.0; n_embd as usize]);
    w.add_tensor("output.weight", &[n_embd, n_vocab], GgmlType::Q6_K, bytes(GgmlType::Q6_K, n_embd, n_vocab));
    w.write_to(path).expect("the tiny model is written");
}

/// A fresh, empty folder under the system temp dir.
#[allow(dead_code)]
pub fn temp_dir(tag: &str) -> std::path::PathBuf {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "rocmforge-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// An example program built beside the tests (`cargo build --profile test --examples`, which
/// scripts/test.sh runs: `cargo test --all-targets` builds examples only as test harnesses), or
/// `None` (with a note; a failure with `ROCMFORGE_REQUIRE_MODELS=1`, so CI cannot skip them).
#[allow(dead_code)]
pub fn example_binary(name: &str) -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let path = exe.parent()?.parent()?.join("examples").join(name);
    if path.exists() {
        return Some(path);
    }
    if std::env::var("ROCMFORGE_REQUIRE_MODELS").as_deref() == Ok("1") {
        panic!("{} is missing: `cargo build --profile test --examples` builds it", path.display());
    }
    eprintln!("skipping: {} is absent (`cargo build --profile test --examples` builds it)", path.display());
    None
}

/// How many distinct kernels the model at `path` needs (prefill and decode), as the library plans
/// them: what a warm of one target compiles.
#[allow(dead_code)]
pub fn kernels_needed(path: &std::path::Path) -> usize {
    let file = rocmforge::gguf::GgufFile::open(path).unwrap();
    let config = rocmforge::model::ModelConfig::from_gguf(&file).unwrap();
    rocmforge::exec::kernel_specs(&config, &file).unwrap().len()
}

/// How many kernels `rocmforge warm` compiles for the model at `path` for one target: those it
/// needs, and their variants over an f32 KV cache (`--kv f32`).
#[allow(dead_code)]
pub fn kernels_warmed(path: &std::path::Path) -> usize {
    let file = rocmforge::gguf::GgufFile::open(path).unwrap();
    let config = rocmforge::model::ModelConfig::from_gguf(&file).unwrap();
    let specs = rocmforge::exec::kernel_specs(&config, &file).unwrap();
    let f32_kv = specs.iter().map(|s| s.with_kv(rocmforge::kernels::KvPrecision::F32));
    specs.iter().copied().chain(f32_kv).collect::<std::collections::BTreeSet<_>>().len()
}

/// The fused int8 decode's kernels beyond what the reference models need: every int8 weight type in
/// every segment position of the fused matvec (with biases, and at SmolLM2's narrow rows), the
/// norm with and without the residual add and (1 + w), rope + KV append over both caches with a
/// partial rope, and both GLUs.
#[allow(dead_code)]
pub fn fused_coverage_specs() -> std::collections::BTreeSet<rocmforge::kernels::KernelSpec> {
    use rocmforge::kernels::{GluKind, KernelSpec, KvPrecision, RopeKind};
    let mut all = std::collections::BTreeSet::new();
    for &ty in rocmforge::quant::SUPPORTED.iter().filter(|t| rocmforge::kernels::int8_matvec_type(**t)) {
        all.insert(KernelSpec::MatVecQ8Multi {
            k: 4096,
            wtypes: [Some(ty), Some(GgmlType::Q6_K), Some(ty)],
            bias: true,
        });
        all.insert(KernelSpec::MatVecQ8Multi { k: 2048, wtypes: [Some(GgmlType::Q4_0), Some(ty), None], bias: false });
    }
    all.insert(KernelSpec::MatVecQ8Multi {
        k: 576,
        wtypes: [Some(GgmlType::Q8_0), Some(GgmlType::Q5_0), Some(GgmlType::Q5_1)],
        bias: false,
    });
    for (n, add_one, residual) in [(4096, false, true), (4096, true, false), (576, false, true)] {
        all.insert(KernelSpec::RmsNormQ8_1 { n, add_one, residual });
    }
    for kv in [KvPrecision::F16, KvPrecision::F32] {
        all.insert(KernelSpec::RopeKv { head_dim: 128, rope_dims: 64, kind: RopeKind::Neox, kv });
        all.insert(KernelSpec::RopeKv { head_dim: 80, rope_dims: 32, kind: RopeKind::Normal, kv });
    }
    for kind in [GluKind::SwiGlu, GluKind::GeGlu] {
        all.insert(KernelSpec::GluQ8_1 { kind });
    }
    all
}
