//! Chat templates rendered with minijinja against what Hugging Face transformers renders for the
//! same messages (tests/fixtures/chat_templates/cases.json, written by make_expected.py there):
//! SmolLM2, Gemma 3, Llama 3.1 and 3.2, Mistral 7B v0.2 and Nemo, Qwen2.5 and Qwen3. Templates
//! that refuse a conversation (roles that do not alternate) must refuse it here too.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;

use rocmforge::chat::{strftime, ChatError, ChatTemplate, Message, RenderOptions};
use serde_json::Value;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/chat_templates")
}

fn cases() -> Value {
    let text = std::fs::read_to_string(fixtures().join("cases.json")).expect("cases.json should be readable");
    serde_json::from_str(&text).expect("cases.json should be JSON")
}

fn messages(v: &Value) -> Vec<Message> {
    v.as_array()
        .expect("messages array")
        .iter()
        .map(|m| Message::new(m["role"].as_str().unwrap(), m["content"].as_str().unwrap()))
        .collect()
}

#[test]
fn every_template_renders_what_transformers_renders() {
    let all = cases();
    let mut checked = 0;
    let mut refused = 0;
    for t in all["templates"].as_array().unwrap() {
        let name = t["name"].as_str().unwrap();
        let source = std::fs::read_to_string(fixtures().join(format!("{name}.jinja"))).unwrap();
        let template = ChatTemplate::jinja(&source, t["bos_token"].as_str().unwrap(), t["eos_token"].as_str().unwrap())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        for case in t["cases"].as_array().unwrap() {
            let label = case["name"].as_str().unwrap();
            let extra: BTreeMap<String, Value> =
                case["extra"].as_object().unwrap().iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            let options =
                RenderOptions { add_generation_prompt: case["add_generation_prompt"].as_bool().unwrap(), extra };
            let got = template.render(&messages(&case["messages"]), &options);
            match (case.get("expected").and_then(Value::as_str), case.get("error").and_then(Value::as_str)) {
                (Some(want), _) => {
                    let got = got.unwrap_or_else(|e| panic!("{name} / {label}: {e}"));
                    assert_eq!(got, want, "{name} / {label}");
                    checked += 1;
                }
                (None, Some(why)) => {
                    assert_eq!(got, Err(ChatError::Refused(why.to_string())), "{name} / {label}");
                    refused += 1;
                }
                _ => panic!("{name} / {label}: a case needs expected or error"),
            }
        }
    }
    println!("{checked} prompts equal transformers' rendering, {refused} refusals match");
    assert!(checked >= 50 && refused == 3, "{checked} checked, {refused} refused");
}

#[test]
fn strftime_now_formats_as_python_does() {
    let all = cases();
    let list = all["strftime"].as_array().unwrap();
    for c in list {
        let (unix, format) = (c["unix"].as_i64().unwrap(), c["format"].as_str().unwrap());
        assert_eq!(strftime(format, unix), c["expected"].as_str().unwrap(), "{format} at {unix}");
    }
    println!("{} strftime cases match Python", list.len());
}

#[test]
fn llama_3_2_asks_strftime_now_for_todays_date() {
    let source = std::fs::read_to_string(fixtures().join("llama-3.2.jinja")).unwrap();
    let t = ChatTemplate::jinja(&source, "<|begin_of_text|>", "<|eot_id|>").unwrap();
    let got = t.render(&[Message::new("user", "Hi")], &RenderOptions::default()).unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let today = strftime("%d %b %Y", now);
    assert!(got.contains(&format!("Today Date: {today}")), "{got}");
}

/// The real SmolLM2 file: its own template is found, with its BOS/EOS texts, and renders the
/// fixture's prompts.
#[test]
fn the_smollm2_file_uses_its_own_template() {
    let Some(path) = common::model("SmolLM2-135M-Instruct.Q4_1.gguf") else { return };
    let file = rocmforge::gguf::GgufFile::open(&path).unwrap();
    let t = ChatTemplate::from_metadata(&file.metadata).unwrap();
    assert!(t.is_from_file());
    assert_eq!(t.bos_token(), "<|im_start|>");
    let all = cases();
    let smol = all["templates"].as_array().unwrap().iter().find(|t| t["name"] == "smollm2").unwrap();
    let case = &smol["cases"][0];
    let got = t.render(&messages(&case["messages"]), &RenderOptions::default()).unwrap();
    assert_eq!(got, case["expected"].as_str().unwrap());
}

/// Gemma 3 270M ships no template: the built-in Gemma turns are the fallback.
#[test]
fn a_file_without_a_template_falls_back_to_the_built_in_format() {
    let Some(path) = common::model("gemma-3-270m-q4_k_m.gguf") else { return };
    let file = rocmforge::gguf::GgufFile::open(&path).unwrap();
    let t = ChatTemplate::from_metadata(&file.metadata).unwrap();
    assert!(!t.is_from_file());
    let got = t.render(&[Message::new("user", "Hi")], &RenderOptions::default()).unwrap();
    assert_eq!(got, "<start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n");
}
