//! The reader, config and `inspect` on real files as llama.cpp writes them (fetched from PyPI by
//! scripts/fetch_models.py).

mod common;

use std::process::Command;

use rocmforge::gguf::GgufFile;
use rocmforge::model::{Arch, ModelConfig};
use rocmforge::quant;
use serde_json::Value;

fn inspect_json(path: &std::path::Path) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_rocmforge"))
        .args(["inspect", "--json"])
        .arg(path)
        .output()
        .expect("the rocmforge binary should run");
    assert!(out.status.success(), "inspect failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("inspect --json should print JSON")
}

#[test]
fn inspect_reports_smollm2_shapes() {
    let Some(path) = common::model("SmolLM2-135M-Instruct.Q4_1.gguf") else { return };
    let j = inspect_json(&path);
    assert_eq!(j["architecture"], "llama");
    assert_eq!((j["head_dim"].as_u64(), j["n_head"].as_u64(), j["n_head_kv"].as_u64()), (Some(64), Some(9), Some(3)));
    assert_eq!(
        (j["n_layer"].as_u64(), j["n_embd"].as_u64(), j["n_vocab"].as_u64()),
        (Some(30), Some(576), Some(49152))
    );
    assert_eq!((j["rope_dims"].as_u64(), j["rope_base"].as_f64()), (Some(64), Some(100000.0)));
    assert_eq!(j["n_ctx_train"].as_u64(), Some(8192));
    assert_eq!(j["tensor_types"], serde_json::json!({"F32": 61, "Q4_1": 210, "Q8_0": 1}));
    // 134.5 M parameters (tied embeddings: no separate output matrix).
    assert_eq!(j["n_params"].as_u64(), Some(134_515_008));
    let keys: Vec<&str> = j.as_object().unwrap().keys().map(|k| k.as_str()).collect();
    for k in [
        "architecture",
        "n_layer",
        "n_embd",
        "n_head",
        "n_head_kv",
        "head_dim",
        "rope_dims",
        "rope_base",
        "n_ctx_train",
        "n_vocab",
        "tensor_types",
        "n_params",
        "n_bytes",
    ] {
        assert!(keys.contains(&k), "JSON lacks {k}");
    }
}

#[test]
fn inspect_reports_gemma3_head_dim_from_key_length() {
    let Some(path) = common::model("gemma-3-270m-q4_k_m.gguf") else { return };
    let j = inspect_json(&path);
    assert_eq!(j["architecture"], "gemma3");
    assert_eq!((j["head_dim"].as_u64(), j["n_head"].as_u64(), j["n_head_kv"].as_u64()), (Some(256), Some(4), Some(1)));
    assert_eq!(
        (j["n_layer"].as_u64(), j["n_embd"].as_u64(), j["n_vocab"].as_u64()),
        (Some(18), Some(640), Some(262144))
    );
    assert_eq!(j["tensor_types"], serde_json::json!({"F32": 109, "Q4_K": 27, "Q5_0": 81, "Q6_K": 9, "Q8_0": 10}));

    let cfg = ModelConfig::from_gguf(&GgufFile::open(&path).unwrap()).unwrap();
    assert_eq!(cfg.sliding_window, Some(512));
    assert_eq!((0..18).filter(|&il| !cfg.is_swa(il)).collect::<Vec<_>>(), vec![5, 11, 17]);
    assert_eq!((cfg.rope_base_for_layer(0), cfg.rope_base_for_layer(5)), (10_000.0, 1_000_000.0));
    assert!(cfg.tied_embeddings && cfg.qk_norm);
}

#[test]
fn inspect_reports_qwen2_values_from_its_keys() {
    // llama.cpp's own qwen2 vocabulary file: full hyper-parameters, no tensors.
    let Some(path) = common::model("vocab/ggml-vocab-qwen2.gguf") else { return };
    let j = inspect_json(&path);
    assert_eq!(j["architecture"], "qwen2");
    assert_eq!((j["n_embd"].as_u64(), j["n_head"].as_u64(), j["n_head_kv"].as_u64()), (Some(4096), Some(32), Some(32)));
    assert_eq!((j["head_dim"].as_u64(), j["rope_dims"].as_u64()), (Some(128), Some(128)));
    assert_eq!(
        (j["n_layer"].as_u64(), j["rope_base"].as_f64(), j["n_vocab"].as_u64()),
        (Some(32), Some(1e6), Some(151936))
    );
    assert_eq!((j["n_params"].as_u64(), j["n_bytes"].as_u64()), (Some(0), Some(0)));
}

#[test]
fn every_tensor_of_the_real_models_dequantizes() {
    for name in ["SmolLM2-135M-Instruct.Q4_1.gguf", "gemma-3-270m-q4_k_m.gguf"] {
        let Some(path) = common::model(name) else { continue };
        let file = GgufFile::open(&path).unwrap();
        for t in &file.tensors {
            let row = t.row_len() as usize;
            let row_bytes = t.ty.row_bytes(t.row_len()).unwrap() as usize;
            let data = file.tensor_data(t);
            // First and last rows: every format in these files decodes to finite values.
            for r in [0, t.n_rows() as usize - 1] {
                let mut out = vec![0f32; row];
                quant::dequantize(t.ty, &data[r * row_bytes..(r + 1) * row_bytes], &mut out).unwrap();
                assert!(out.iter().all(|v| v.is_finite()), "{name}:{} row {r}", t.name);
            }
        }
    }
}

#[test]
fn every_llama_cpp_vocab_file_parses() {
    let Some(dir) = common::model("vocab") else { return };
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("gguf") {
            continue;
        }
        let file = GgufFile::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let arch = file.architecture().unwrap().to_string();
        if Arch::from_name(&arch).is_some() {
            ModelConfig::from_gguf(&file).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        }
        n += 1;
    }
    assert!(n >= 15, "only {n} vocab files found");
}
