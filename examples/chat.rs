//! A two-turn conversation through the model's own chat template. The second turn reuses the
//! session's cache for the first (only the new tokens are prefilled).
//!
//! usage: cargo run --example chat -- MODEL.gguf [cpu|cuda|hip|auto]

use rocmforge::chat::Message;
use rocmforge::exec::{GenerateParams, SamplerConfig};
use rocmforge::llm::{DeviceChoice, Llm};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let model = args.next().ok_or("usage: chat MODEL.gguf [DEVICE]")?;
    let device: DeviceChoice = args.next().as_deref().unwrap_or("auto").parse()?;
    let llm = Llm::open(&model, device)?;
    let params = GenerateParams { max_tokens: 48, sampler: SamplerConfig::greedy(), ..Default::default() };

    let mut history = vec![Message::new("system", "You answer in one short sentence.")];
    for question in ["What is the capital of France?", "And what is the capital of Italy?"] {
        println!("> {question}");
        history.push(Message::new("user", question));
        // `complete` runs the stream to its end; iterate the stream instead to print as it comes.
        let answer = llm.chat(&history, params.clone())?.complete()?;
        println!("{}", answer.text.trim());
        eprintln!(
            "  [{} prompt tokens, {} already in the cache; {} generated]",
            answer.finished.prompt_tokens, answer.finished.reused_tokens, answer.finished.completion_tokens
        );
        history.push(Message::new("assistant", &answer.text));
    }
    Ok(())
}
