//! Generate text from a prompt, streaming it: the whole path in a dozen lines.
//!
//! usage: cargo run --example generate -- MODEL.gguf ["PROMPT"] [cpu|cuda|hip|auto]

use std::io::Write;

use rocmforge::exec::{GenerateParams, SamplerConfig};
use rocmforge::llm::{DeviceChoice, Llm};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let model = args.next().ok_or("usage: generate MODEL.gguf [PROMPT] [DEVICE]")?;
    let prompt = args.next().unwrap_or_else(|| "The three primary colors are".to_string());
    let device: DeviceChoice = args.next().as_deref().unwrap_or("auto").parse()?;

    // Picks the device, JIT-compiles the kernels on first use (cached afterwards), opens a session.
    let llm = Llm::open(&model, device)?;
    eprintln!("{} on {}", llm.info().name, llm.info().device);

    let params = GenerateParams { max_tokens: 24, sampler: SamplerConfig::greedy(), stop: vec!["\n\n".into()] };
    print!("{prompt}");
    let mut tokens = llm.generate(&prompt, params)?;
    for token in tokens.by_ref() {
        print!("{}", token?.text);
        std::io::stdout().flush()?;
    }
    println!();
    if let Some(done) = tokens.finished() {
        eprintln!(
            "{:?} after {} tokens ({:.1} tokens/s)",
            done.reason,
            done.completion_tokens,
            done.stats.decode_tokens_per_s()
        );
    }
    Ok(())
}
