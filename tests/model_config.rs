//! Model configuration from GGUF keys: each key present and absent, for every architecture.

use rocmforge::dtype::GgmlType;
use rocmforge::gguf::{Array, GgufFile, GgufWriter, Value};
use rocmforge::model::{Activation, Arch, ModelConfig, ModelError, RopeScaling, RopeStyle};

/// The keys llama.cpp always writes, for architecture `arch`: hidden 512, 8 heads of 64.
fn base(arch: &str) -> GgufWriter {
    let mut w = GgufWriter::new();
    w.set_str("general.architecture", arch)
        .set_u32(&format!("{arch}.block_count"), 6)
        .set_u32(&format!("{arch}.context_length"), 2048)
        .set_u32(&format!("{arch}.embedding_length"), 512)
        .set_u32(&format!("{arch}.feed_forward_length"), 1536)
        .set_u32(&format!("{arch}.attention.head_count"), 8)
        .set_f32(&format!("{arch}.attention.layer_norm_rms_epsilon"), 1e-6)
        .set_u32(&format!("{arch}.vocab_size"), 1000);
    w
}

fn config(w: &GgufWriter) -> Result<ModelConfig, ModelError> {
    let file = GgufFile::from_bytes(w.to_bytes()).expect("the test file should parse");
    ModelConfig::from_gguf(&file)
}

fn without(w: &GgufWriter, key: &str) -> GgufWriter {
    // Rebuild the file without `key`, keeping everything else.
    let file = GgufFile::from_bytes(w.to_bytes()).unwrap();
    let mut out = GgufWriter::new();
    for (k, v) in file.metadata.iter().filter(|(k, _)| *k != key) {
        out.set(k, v.clone());
    }
    for t in &file.tensors {
        out.add_tensor(&t.name, &t.shape, t.ty, file.tensor_data(t).to_vec());
    }
    out
}

#[test]
fn head_dim_is_hidden_over_heads_without_key_length() {
    let cfg = config(&base("llama")).unwrap();
    assert_eq!((cfg.head_dim, cfg.head_dim_v, cfg.n_head, cfg.n_head_kv), (64, 64, 8, 8));
    assert_eq!(cfg.attention_scale, 1.0 / 8.0);
}

#[test]
fn key_and_value_length_override_head_dim() {
    let mut w = base("gemma3");
    w.set_u32("gemma3.attention.key_length", 256).set_u32("gemma3.attention.value_length", 128);
    let cfg = config(&w).unwrap();
    assert_eq!((cfg.head_dim, cfg.head_dim_v), (256, 128));
    assert_eq!(cfg.rope_dims, 256, "rope dims default to the key head_dim");
    assert_eq!(cfg.attention_scale, 1.0 / 16.0);
}

#[test]
fn zero_key_length_is_refused() {
    let mut w = base("qwen2");
    w.set_u32("qwen2.attention.key_length", 0);
    let e = config(&w).unwrap_err().to_string();
    assert!(e.contains("qwen2.attention.key_length") && e.contains("at least 1"), "{e}");
}

#[test]
fn rope_dims_default_to_head_dim_and_are_never_zero() {
    let cfg = config(&base("qwen2")).unwrap();
    assert_eq!(cfg.rope_dims, 64);

    let mut w = base("qwen2");
    w.set_u32("qwen2.rope.dimension_count", 32);
    assert_eq!(config(&w).unwrap().rope_dims, 32, "partial rope");

    for bad in [0, 31, 128] {
        let mut w = base("llama");
        w.set_u32("llama.rope.dimension_count", bad);
        let e = config(&w).unwrap_err().to_string();
        assert!(e.contains("llama.rope.dimension_count") && e.contains(&bad.to_string()), "{e}");
    }
}

#[test]
fn head_count_kv_defaults_to_head_count() {
    let mut w = base("llama");
    w.set_u32("llama.attention.head_count_kv", 2);
    let cfg = config(&w).unwrap();
    assert_eq!((cfg.n_head_kv, cfg.gqa_ratio()), (2, 4));

    w.set_u32("llama.attention.head_count_kv", 3);
    let e = config(&w).unwrap_err().to_string();
    assert!(e.contains("head_count_kv") && e.contains("divide"), "{e}");
}

#[test]
fn rope_base_defaults_to_ten_thousand() {
    assert_eq!(config(&base("llama")).unwrap().rope_base, 10_000.0);
    let mut w = base("llama");
    w.set_f32("llama.rope.freq_base", 500_000.0);
    assert_eq!(config(&w).unwrap().rope_base, 500_000.0);
    w.set("llama.rope.freq_base", Value::F64(1e6));
    assert_eq!(config(&w).unwrap().rope_base, 1e6, "f64 values are read too");
}

#[test]
fn rope_scaling_is_read_as_llama_cpp_reads_it() {
    assert_eq!(config(&base("llama")).unwrap().rope_scaling, RopeScaling::None);
    let mut w = base("llama");
    w.set_str("llama.rope.scaling.type", "linear").set_f32("llama.rope.scaling.factor", 8.0);
    assert_eq!(config(&w).unwrap().rope_scaling, RopeScaling::Linear { factor: 8.0 });
    assert_eq!(config(&w).unwrap().rope_scaling.freq_scale(), 0.125);
    // llama.cpp: the type defaults to linear; the factor's old key still counts; none never scales.
    let mut w = base("llama");
    w.set_f32("llama.rope.scale_linear", 4.0);
    assert_eq!(config(&w).unwrap().rope_scaling, RopeScaling::Linear { factor: 4.0 });
    w.set_f32("llama.rope.scaling.factor", 2.0);
    assert_eq!(config(&w).unwrap().rope_scaling, RopeScaling::Linear { factor: 2.0 }, "the new key first");
    w.set_str("llama.rope.scaling.type", "none");
    assert_eq!(config(&w).unwrap().rope_scaling, RopeScaling::None);
    for factor in [0.0, 1.0] {
        let mut w = base("qwen2");
        w.set_str("qwen2.rope.scaling.type", "yarn").set_f32("qwen2.rope.scaling.factor", factor);
        assert_eq!(config(&w).unwrap().rope_scaling, RopeScaling::None, "YaRN by {factor} changes nothing");
    }
    let mut w = base("llama");
    w.set_u32("llama.rope.scaling.original_context_length", 8192);
    assert_eq!(config(&w).unwrap().rope_scaling_orig_ctx, Some(8192));
}

/// YaRN as llama.cpp runs it for a Qwen2.5 file (factor 4, original context 32768): ext_factor 1,
/// beta_fast 32 / beta_slow 1, and the ramp's ends from ggml_rope_yarn_corr_dims, worked here in
/// f64 from its formula: n_dims·ln(n_ctx_orig / (2π·β)) / (2·ln base), floored / ceiled.
#[test]
fn yarn_is_read_with_llama_cpp_defaults() {
    let yarn = || {
        let mut w = base("qwen2");
        w.set_u32("qwen2.context_length", 131072).set_u32("qwen2.rope.dimension_count", 64);
        w.set_f32("qwen2.rope.freq_base", 1e6).set_str("qwen2.rope.scaling.type", "yarn");
        w.set_f32("qwen2.rope.scaling.factor", 4.0);
        w
    };
    let mut w = yarn();
    w.set_u32("qwen2.rope.scaling.original_context_length", 32768);
    let cfg = config(&w).unwrap();
    assert_eq!(cfg.rope_scaling, RopeScaling::Yarn { factor: 4.0, orig_ctx: 32768, beta_fast: 32.0, beta_slow: 1.0 });
    assert_eq!(cfg.rope_scaling.freq_scale(), 0.25);
    let corr = |beta: f64| 64.0 * (32768.0 / (2.0 * std::f64::consts::PI * beta)).ln() / (2.0 * 1e6f64.ln());
    let ext = cfg.rope_ext();
    assert_eq!(ext.corr_dims, [corr(32.0).floor() as f32, corr(1.0).ceil() as f32]);
    assert_eq!(ext.corr_dims, [11.0, 20.0]);
    assert_eq!(ext.ext_factor, 1.0);
    // llama.cpp divides its mscale back out of the attention factor; the kernel multiplies it in.
    assert!((ext.attn_factor - 1.0).abs() < 1e-6, "{}", ext.attn_factor);
    // Without an original context length, the trained context stands in.
    let mut w = yarn();
    assert!(matches!(config(&w).unwrap().rope_scaling, RopeScaling::Yarn { orig_ctx: 131072, .. }));
    // YaRN's tuning keys llama.cpp does not read for qwen2: refused unless at its defaults.
    w.set_f32("qwen2.rope.scaling.yarn_beta_fast", 32.0);
    assert!(config(&w).is_ok());
    w.set_f32("qwen2.rope.scaling.yarn_beta_fast", 16.0);
    let e = config(&w).unwrap_err().to_string();
    assert!(e.contains("qwen2.rope.scaling.yarn_beta_fast") && e.contains("16"), "{e}");
}

#[test]
fn rope_scaling_we_do_not_compute_is_refused_naming_key_and_value() {
    let mut w = base("qwen2");
    w.set_str("qwen2.rope.scaling.type", "dynamic").set_f32("qwen2.rope.scaling.factor", 2.0);
    let e = config(&w).unwrap_err().to_string();
    assert!(["qwen2.rope.scaling.type", "dynamic", "unknown"].iter().all(|n| e.contains(n)), "{e}");
    // llama.cpp's longrope type scales positions as linear does; its factors are tensors.
    let mut w = base("qwen2");
    w.set_str("qwen2.rope.scaling.type", "longrope").set_f32("qwen2.rope.scaling.factor", 2.0);
    assert_eq!(config(&w).unwrap().rope_scaling, RopeScaling::Linear { factor: 2.0 });
    // The attention factor scales cos and sin (LongRoPE's magnitude scale).
    let mut w = base("llama");
    w.set_f32("llama.rope.scaling.attn_factor", 1.2);
    assert_eq!(config(&w).unwrap().rope_ext().attn_factor, 1.2);
    w.set_f32("llama.rope.scaling.attn_factor", -1.0);
    let e = config(&w).unwrap_err().to_string();
    assert!(e.contains("llama.rope.scaling.attn_factor") && e.contains("-1"), "{e}");
    let mut w = base("llama");
    w.set_f32("llama.rope.scaling.factor", -2.0);
    let e = config(&w).unwrap_err().to_string();
    assert!(e.contains("llama.rope.scaling.factor") && e.contains("-2"), "{e}");
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

#[test]
fn llama3_rope_freqs_are_read_and_checked() {
    assert!(!config(&base("llama")).unwrap().rope_freq_factors);
    // 8 heads of 64: 32 rotated pairs.
    let mut w = base("llama");
    w.add_tensor("rope_freqs.weight", &[32], GgmlType::F32, f32_bytes(&[1.0; 32]));
    assert!(config(&w).unwrap().rope_freq_factors);

    let mut w = base("llama");
    w.add_tensor("rope_freqs.weight", &[16], GgmlType::F32, f32_bytes(&[1.0; 16]));
    let e = config(&w).unwrap_err();
    assert!(matches!(e, ModelError::BadTensor { .. }), "{e}");
    let e = e.to_string();
    assert!(e.contains("rope_freqs.weight") && e.contains("[16]") && e.contains("32 factors"), "{e}");

    let mut w = base("llama");
    w.add_tensor("rope_freqs.weight", &[32], GgmlType::F16, vec![0; 64]);
    let e = config(&w).unwrap_err().to_string();
    assert!(e.contains("rope_freqs.weight") && e.contains("F16"), "{e}");

    // llama.cpp passes the factors to rope for llama (and families we do not run), not for qwen2.
    let mut w = base("qwen2");
    w.add_tensor("rope_freqs.weight", &[32], GgmlType::F32, f32_bytes(&[1.0; 32]));
    let e = config(&w).unwrap_err().to_string();
    assert!(e.contains("rope_freqs.weight") && e.contains("qwen2"), "{e}");
}

#[test]
fn rope_style_and_activation_follow_the_family() {
    let styles: Vec<(RopeStyle, Activation, bool, bool)> = ["llama", "qwen2", "gemma", "gemma2", "gemma3", "qwen3"]
        .iter()
        .map(|a| {
            let c = config(&base(a)).unwrap();
            (c.rope_style, c.activation, c.qkv_bias, c.qk_norm)
        })
        .collect();
    use Activation::*;
    use RopeStyle::*;
    assert_eq!(
        styles,
        vec![
            (Normal, Silu, false, false),
            (Neox, Silu, true, false),
            (Neox, GeluTanh, false, false),
            (Neox, GeluTanh, false, false),
            (Neox, GeluTanh, false, true),
            (Neox, Silu, false, true),
        ]
    );
}

#[test]
fn gemma_scales_embeddings_by_root_hidden() {
    assert_eq!(config(&base("gemma")).unwrap().embedding_scale, Some((512f32).sqrt()));
    assert_eq!(config(&base("llama")).unwrap().embedding_scale, None);
}

#[test]
fn gemma2_defaults_window_softcaps_and_alternating_layers() {
    let cfg = config(&base("gemma2")).unwrap();
    assert_eq!(cfg.sliding_window, Some(4096));
    assert_eq!((cfg.attn_logit_softcap, cfg.final_logit_softcap), (Some(50.0), Some(30.0)));
    assert_eq!(cfg.swa_layers, vec![true, false, true, false, true, false]);
    assert!(cfg.post_norms && !cfg.qk_norm);

    let mut w = base("gemma2");
    w.set_u32("gemma2.attention.sliding_window", 1024)
        .set_f32("gemma2.attn_logit_softcapping", 40.0)
        .set_f32("gemma2.final_logit_softcapping", 20.0);
    let cfg = config(&w).unwrap();
    assert_eq!(
        (cfg.sliding_window, cfg.attn_logit_softcap, cfg.final_logit_softcap),
        (Some(1024), Some(40.0), Some(20.0))
    );
}

#[test]
fn gemma3_windows_five_layers_in_six_with_their_own_rope_base() {
    let mut w = base("gemma3");
    w.set_u32("gemma3.block_count", 12)
        .set_u32("gemma3.attention.sliding_window", 512)
        .set_f32("gemma3.rope.freq_base", 1e6);
    let cfg = config(&w).unwrap();
    assert_eq!(cfg.sliding_window, Some(512));
    let globals: Vec<usize> = (0..12).filter(|&il| !cfg.is_swa(il)).collect();
    assert_eq!(globals, vec![5, 11]);
    assert_eq!((cfg.rope_base_for_layer(0), cfg.rope_base_for_layer(5)), (10_000.0, 1e6));
    assert!(cfg.qk_norm && cfg.post_norms);
    assert_eq!((cfg.attn_logit_softcap, cfg.final_logit_softcap), (None, None));

    w.set_f32("gemma3.rope.freq_base_swa", 20_000.0).set_u32("gemma3.attention.sliding_window_pattern", 3);
    let cfg = config(&w).unwrap();
    assert_eq!(cfg.rope_base_for_layer(0), 20_000.0);
    assert_eq!((0..12).filter(|&il| !cfg.is_swa(il)).collect::<Vec<_>>(), vec![2, 5, 8, 11]);

    let flags = vec![true, false, true, true, true, true, false, false, true, true, true, false];
    w.set("gemma3.attention.sliding_window_pattern", Value::Array(Array::Bool(flags.clone())));
    assert_eq!(config(&w).unwrap().swa_layers, flags);

    let cfg = config(&without(&w, "gemma3.attention.sliding_window")).unwrap();
    assert_eq!(cfg.sliding_window, None);
    assert!(cfg.swa_layers.iter().all(|&s| !s), "no window, no windowed layers");
}

#[test]
fn gemma_27b_scales_queries_by_hidden_over_heads() {
    let mut w = base("gemma2");
    w.set_u32("gemma2.block_count", 46).set_u32("gemma2.attention.key_length", 128);
    let cfg = config(&w).unwrap();
    assert_eq!(cfg.attention_scale, 1.0 / 8.0, "27B: 1/sqrt(512/8), not 1/sqrt(128)");
}

#[test]
fn vocab_size_falls_back_to_tokens_then_embedding_rows() {
    let w = without(&base("llama"), "llama.vocab_size");
    let e = config(&w).unwrap_err().to_string();
    assert!(e.contains("llama.vocab_size") && e.contains("missing"), "{e}");

    let mut with_tokens = w.clone();
    with_tokens.set("tokenizer.ggml.tokens", Value::Array(Array::String(vec![b"a".to_vec(); 77])));
    assert_eq!(config(&with_tokens).unwrap().n_vocab, 77);

    let mut with_embd = w.clone();
    with_embd.add_tensor("token_embd.weight", &[32, 5], GgmlType::Q8_0, vec![0; 34 * 5]);
    let cfg = config(&with_embd).unwrap();
    assert_eq!(cfg.n_vocab, 5);
    assert!(cfg.tied_embeddings, "no output.weight: tied");

    with_embd.add_tensor("output.weight", &[32, 5], GgmlType::Q8_0, vec![0; 34 * 5]);
    assert!(!config(&with_embd).unwrap().tied_embeddings);
}

#[test]
fn missing_required_keys_name_the_key_and_the_architecture() {
    for key in [
        "block_count",
        "context_length",
        "embedding_length",
        "feed_forward_length",
        "attention.head_count",
        "attention.layer_norm_rms_epsilon",
    ] {
        let full = format!("qwen2.{key}");
        let e = config(&without(&base("qwen2"), &full)).unwrap_err();
        assert!(matches!(e, ModelError::MissingKey { arch: "qwen2", ref key } if *key == full), "{e}");
        let msg = e.to_string();
        assert!(msg.contains("qwen2") && msg.contains(&full), "{msg}");
    }
}

#[test]
fn unsupported_architectures_are_named() {
    let e = config(&base("mamba")).unwrap_err();
    assert!(matches!(e, ModelError::UnsupportedArch { ref arch } if arch == "mamba"));
    let msg = e.to_string();
    assert!(msg.contains("\"mamba\"") && msg.contains("llama, qwen2, gemma, gemma2, gemma3, qwen3"), "{msg}");
    assert!(config(&without(&base("llama"), "general.architecture"))
        .unwrap_err()
        .to_string()
        .contains("general.architecture"));
}

#[test]
fn absurd_layer_counts_are_refused_before_allocating_per_layer_tables() {
    // Found by the fuzzer: a 2.4-billion-layer gemma file made the config allocate a flag per layer.
    let mut w = base("gemma2");
    w.set_u32("gemma2.block_count", 0x9000_0002);
    let e = config(&w).unwrap_err().to_string();
    assert!(e.contains("gemma2.block_count") && e.contains("2415919106"), "{e}");
}

#[test]
fn wrongly_typed_keys_name_key_and_types() {
    let mut w = base("llama");
    w.set_str("llama.attention.head_count", "eight");
    let e = config(&w).unwrap_err().to_string();
    assert!(e.contains("llama.attention.head_count") && e.contains("found string"), "{e}");
}

#[test]
fn every_supported_architecture_loads() {
    for &arch in Arch::ALL {
        assert_eq!(config(&base(arch.name())).unwrap().arch, arch);
    }
}

/// A whole one-layer llama (hidden 32, 2 heads of 16, zero weights) that `Model` can load.
fn tiny_llama() -> GgufWriter {
    let mut w = GgufWriter::new();
    w.set_str("general.architecture", "llama")
        .set_u32("llama.block_count", 1)
        .set_u32("llama.context_length", 64)
        .set_u32("llama.embedding_length", 32)
        .set_u32("llama.feed_forward_length", 64)
        .set_u32("llama.attention.head_count", 2)
        .set_f32("llama.attention.layer_norm_rms_epsilon", 1e-6)
        .set_u32("llama.vocab_size", 8);
    let mut t = |name: &str, shape: &[u64]| {
        let n: u64 = shape.iter().product();
        w.add_tensor(name, shape, GgmlType::F32, vec![0; n as usize * 4]);
    };
    t("token_embd.weight", &[32, 8]);
    t("output_norm.weight", &[32]);
    for (name, shape) in [
        ("attn_norm", [32, 1]),
        ("attn_q", [32, 32]),
        ("attn_k", [32, 32]),
        ("attn_v", [32, 32]),
        ("attn_output", [32, 32]),
        ("ffn_norm", [32, 1]),
        ("ffn_gate", [32, 64]),
        ("ffn_up", [32, 64]),
        ("ffn_down", [64, 32]),
    ] {
        let shape = if shape[1] == 1 { &shape[..1] } else { &shape[..] };
        t(&format!("blk.0.{name}.weight"), shape);
    }
    w
}

#[test]
fn a_tensor_no_step_reads_is_refused_by_name() {
    use rocmforge::exec::{ExecError, Model};
    use rocmforge::graph::{GraphError, Step};
    let load = |w: &GgufWriter| Model::from_file(GgufFile::from_bytes(w.to_bytes()).unwrap());
    assert!(load(&tiny_llama()).is_ok());

    let mut w = tiny_llama();
    w.add_tensor("rope_freqs.weight", &[8], GgmlType::F32, f32_bytes(&[1.0; 8]));
    let model = load(&w).unwrap();
    let ropes: Vec<_> = model.decode.nodes.iter().filter(|n| matches!(n.step, Step::Rope { .. })).collect();
    assert_eq!(ropes.len(), 2);
    assert!(ropes
        .iter()
        .all(|n| n.weights == ["rope_freqs.weight"] && matches!(n.step, Step::Rope { freq_factors: true, .. })));

    // A tensor nothing reads.
    let mut w = tiny_llama();
    w.add_tensor("blk.0.attn_extra.weight", &[8], GgmlType::F32, f32_bytes(&[1.0; 8]));
    let e = load(&w).err().expect("refused");
    assert!(matches!(&e, ExecError::Graph(GraphError::UnusedTensor(n)) if n == "blk.0.attn_extra.weight"), "{e}");
    assert!(e.to_string().contains("blk.0.attn_extra.weight"), "{e}");
    // LongRoPE's factors in an architecture whose llama.cpp graph does not read them.
    let mut w = tiny_llama();
    w.add_tensor("rope_factors_long.weight", &[8], GgmlType::F32, f32_bytes(&[1.0; 8]));
    let e = load(&w).err().expect("refused").to_string();
    assert!(e.contains("rope_factors_long.weight") && e.contains("llama"), "{e}");
}

#[test]
fn qwen3_reads_wide_heads_from_key_length() {
    // Qwen3-0.6B's shape: hidden 1024, 16 query heads and 8 KV heads of 128.
    let mut w = base("qwen3");
    w.set_u32("qwen3.embedding_length", 1024)
        .set_u32("qwen3.attention.head_count", 16)
        .set_u32("qwen3.attention.head_count_kv", 8)
        .set_u32("qwen3.attention.key_length", 128)
        .set_u32("qwen3.attention.value_length", 128);
    let cfg = config(&w).unwrap();
    assert_eq!((cfg.head_dim, cfg.head_dim_v, cfg.rope_dims, cfg.gqa_ratio()), (128, 128, 128, 2));
    assert_eq!(cfg.attention_scale, 1.0 / (128f32).sqrt());
    assert!(cfg.qk_norm && !cfg.qkv_bias && !cfg.post_norms);
}
