//! Our tokenizers against llama.cpp's own test pairs (models/ggml-vocab-*.gguf with .inp/.out,
//! from the llama-cpp-python 0.3.36 sdist, fetched by scripts/fetch_models.py), tokenized as
//! llama.cpp's test-tokenizer-0 does: no BOS/EOS, no special-token parsing.

mod common;

use rocmforge::gguf::GgufFile;
use rocmforge::tokenizer::{EncodeOptions, Tokenizer};

fn check_vocab(name: &str) {
    let Some(path) = common::model(&format!("vocab/ggml-vocab-{name}.gguf")) else { return };
    let tok = Tokenizer::from_metadata(&GgufFile::open(&path).unwrap().metadata).unwrap();
    let inp = std::fs::read_to_string(path.with_extension("gguf.inp")).unwrap();
    let out = std::fs::read_to_string(path.with_extension("gguf.out")).unwrap();
    let texts: Vec<&str> = inp.split("\n__ggml_vocab_test__\n").collect();
    let expected: Vec<Vec<u32>> =
        out.lines().map(|l| l.split_whitespace().map(|t| t.parse().unwrap()).collect()).collect();
    // The .inp file ends with a separator line, leaving one empty tail.
    let texts = &texts[..expected.len()];
    let mut failures = Vec::new();
    for (text, want) in texts.iter().zip(&expected) {
        let got = tok.encode(text, EncodeOptions::TEXT);
        if &got != want {
            failures.push(format!("{text:?}\n   want {want:?}\n   got  {got:?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{name}: {} of {} cases differ:\n{}",
        failures.len(),
        expected.len(),
        failures.join("\n")
    );
    assert!(expected.len() >= 20, "{name}: only {} cases", expected.len());
}

#[test]
fn llama_spm_matches_llama_cpp() {
    check_vocab("llama-spm");
}

#[test]
fn llama_bpe_matches_llama_cpp() {
    check_vocab("llama-bpe");
}

#[test]
fn qwen2_matches_llama_cpp() {
    check_vocab("qwen2");
}

#[test]
fn gpt2_matches_llama_cpp() {
    check_vocab("gpt-2");
}

/// Prompts checked against `llama-tokenize` (which adds BOS as the model asks and parses special
/// tokens): tests/fixtures/tokenizer/<model>.tsv, made by tests/fixtures/make_reference.sh.
fn check_prompts(tsv: &str, model: &str) {
    let Some(path) = common::model(model) else { return };
    let tok = Tokenizer::from_metadata(&GgufFile::open(&path).unwrap().metadata).unwrap();
    let table = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tokenizer").join(tsv),
    )
    .unwrap();
    let mut n = 0;
    for line in table.lines() {
        let (prompt, ids) = line.split_once('\t').unwrap();
        let prompt: String = serde_json::from_str(prompt).unwrap();
        let want: Vec<u32> = serde_json::from_str(ids).unwrap();
        assert_eq!(tok.encode(&prompt, EncodeOptions::CHAT), want, "{model}: {prompt:?}");
        // Decoding gives the text back (less control tokens and the BOS).
        let text = tok.decode(&want);
        if !prompt.contains("<|im_") && !prompt.contains("_of_turn>") {
            assert_eq!(text.trim_start(), prompt.trim_start(), "{model}: decode");
        }
        n += 1;
    }
    assert!(n >= 6);
}

#[test]
fn smollm2_prompts_match_llama_tokenize() {
    check_prompts("smollm2.tsv", "SmolLM2-135M-Instruct.Q4_1.gguf");
}

#[test]
fn gemma3_prompts_match_llama_tokenize() {
    check_prompts("gemma3.tsv", "gemma-3-270m-q4_k_m.gguf");
}
