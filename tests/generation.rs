//! Sessions and generation on real models: decode steps agree with one prefill, the KV cache
//! refuses to overflow, greedy and seeded sampling are reproducible, chat prompts stop at the end
//! of the turn.

mod common;

use rocmforge::chat::{ChatTemplate, Message, RenderOptions};
use rocmforge::exec::{ExecError, GenerateParams, Generation, Model, SamplerConfig, Session};
use rocmforge::tokenizer::EncodeOptions;

fn smollm2() -> Option<Model> {
    common::model("variants/smol-Q4_K_M.gguf").map(|p| Model::load(p).unwrap())
}

#[test]
fn decoding_token_by_token_matches_one_prefill() {
    let Some(model) = smollm2() else { return };
    let tok = model.tokenizer().unwrap();
    let ids = tok.encode("The quick brown fox jumps over the lazy dog because", EncodeOptions::PROMPT);
    let mut whole = Session::new(&model, 64).unwrap();
    let want = whole.forward(&ids).unwrap().to_vec();
    let mut steps = Session::new(&model, 64).unwrap();
    steps.forward(&ids[..3]).unwrap();
    let mut got = Vec::new();
    for &id in &ids[3..] {
        got = steps.forward(&[id]).unwrap().to_vec();
    }
    assert_eq!(steps.pos(), ids.len());
    let max = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    assert!(max < 1e-3, "decode and prefill differ by {max}");
}

#[test]
fn a_full_kv_cache_refuses_more_tokens_with_a_clear_error() {
    let Some(model) = smollm2() else { return };
    let mut s = Session::new(&model, 4).unwrap();
    s.forward(&[1, 2, 3]).unwrap();
    s.forward(&[4]).unwrap();
    let e = s.forward(&[5]).unwrap_err();
    assert!(matches!(e, ExecError::ContextFull { pos: 4, capacity: 4, requested: 1 }), "{e}");
    assert!(e.to_string().contains("context is full"));
    s.reset();
    assert!(s.forward(&[5, 6]).is_ok(), "after reset the capacity is free again");
    assert!(matches!(s.forward(&[999_999]), Err(ExecError::TokenOutOfRange { .. })));
    assert!(matches!(Session::new(&model, 1 << 20), Err(ExecError::CapacityTooLarge { .. })));
}

fn chat_ids(model: &Model, question: &str) -> Vec<u32> {
    let template = ChatTemplate::from_metadata(&model.file.metadata).unwrap();
    let text = template.render(&[Message::new("user", question)], &RenderOptions::default()).unwrap();
    model.tokenizer().unwrap().encode(&text, EncodeOptions::CHAT)
}

#[test]
fn greedy_chat_generation_is_reproducible_and_stops_at_the_turn_end() {
    let Some(model) = smollm2() else { return };
    let tok = model.tokenizer().unwrap();
    let ids = chat_ids(&model, "What is the capital of France?");
    let generate = |sampler: SamplerConfig, n: usize| {
        let mut s = Session::new(&model, ids.len() + n).unwrap();
        let g = Generation::new(&mut s, &tok, &ids, GenerateParams { max_tokens: n, sampler, ..Default::default() })
            .unwrap();
        let toks: Vec<_> = g.map(|t| t.unwrap()).collect();
        (toks.iter().map(|t| t.id).collect::<Vec<_>>(), toks.iter().map(|t| t.text.as_str()).collect::<String>())
    };
    let (a, text) = generate(SamplerConfig::greedy(), 32);
    assert_eq!(generate(SamplerConfig::greedy(), 32).0, a);
    assert!(!a.is_empty() && a.len() <= 32);
    assert!(text.contains("France") || text.contains("Paris"), "{text}");
    assert!(!a.iter().any(|&t| tok.is_end(t)), "the end-of-turn token is not emitted");
    let seeded = SamplerConfig { temperature: 0.9, seed: 7, ..Default::default() };
    assert_eq!(generate(seeded.clone(), 16).0, generate(seeded, 16).0, "same seed, same tokens");
    let (few, _) = generate(SamplerConfig::greedy(), 3);
    assert_eq!(few, a[..3.min(a.len())], "max_tokens stops early");
}

/// A model whose tensors disagree with its configuration is refused at load, naming the tensor.
#[test]
fn wrong_shapes_and_missing_tensors_are_clear_errors_at_load() {
    let dir = common::temp_dir("bad-model");
    let path = dir.join("tiny.gguf");
    common::write_tiny_llama(&path);
    let file = rocmforge::gguf::GgufFile::open(&path).unwrap();
    let rewrite = |skip: &str, replace: Option<(&str, Vec<u64>)>| {
        let mut w = rocmforge::gguf::GgufWriter::new();
        for (k, v) in file.metadata.iter() {
            w.set(k, v.clone());
        }
        for t in &file.tensors {
            if t.name == skip {
                continue;
            }
            match &replace {
                Some((name, shape)) if *name == t.name => {
                    let data = vec![0u8; (t.ty.row_bytes(shape[0]).unwrap() * shape[1]) as usize];
                    w.add_tensor(&t.name, shape, t.ty, data);
                }
                _ => {
                    w.add_tensor(&t.name, &t.shape, t.ty, file.tensor_data(t).to_vec());
                }
            }
        }
        let out = dir.join("broken.gguf");
        w.write_to(&out).unwrap();
        Model::load(&out).err().expect("a broken model is refused").to_string()
    };
    let e = rewrite("blk.1.ffn_up.weight", None);
    assert!(e.contains("blk.1.ffn_up.weight") && e.contains("needs"), "{e}");
    let e = rewrite("", Some(("blk.0.attn_k.weight", vec![256, 64])));
    assert!(e.contains("blk.0.attn_k.weight") && e.contains("[256, 128]") && e.contains("[256, 64]"), "{e}");
    let e = rewrite("", Some(("blk.0.ffn_down.weight", vec![256, 256])));
    assert!(e.contains("blk.0.ffn_down.weight") && e.contains("[512, 256]"), "{e}");
}
