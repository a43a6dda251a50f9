//! `rocmforge chat`: a conversation in the terminal. The history is kept (and, while it fits, the
//! session's KV cache with it, so each turn prefills only its new tokens); `/reset` starts over,
//! `/exit` (or Ctrl-D) quits; Ctrl-C stops the answer being written, and quits at the prompt.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use rocmforge::chat::{Message, RenderOptions};
use rocmforge::exec::{GenerateParams, SamplerConfig};
use rocmforge::llm::{CancelHandle, Llm, LlmError, LlmOptions};

use super::progress::JitProgress;
use super::{DeviceArg, Result};

#[derive(clap::Args)]
pub struct ChatArgs {
    /// The GGUF model file (its chat template shapes the prompt).
    pub model: PathBuf,
    /// A system message that opens the conversation.
    #[arg(long)]
    pub system: Option<String>,
    /// Tokens per answer at most.
    #[arg(short = 'n', long, default_value_t = 512)]
    pub max_tokens: usize,
    #[command(flatten)]
    pub sampling: SamplingArgs,
    /// KV cache positions for the whole conversation (default: the model's training context, at
    /// most 4096); the oldest turns are dropped when it is full.
    #[arg(long)]
    pub ctx: Option<usize>,
    #[command(flatten)]
    pub device: DeviceArg,
}

/// Sampling flags.
#[derive(clap::Args)]
pub struct SamplingArgs {
    /// Sampling temperature; 0 is greedy.
    #[arg(long, default_value_t = 0.8)]
    pub temp: f32,
    /// Keep the K most likely tokens (0: all).
    #[arg(long, default_value_t = 40)]
    pub top_k: usize,
    /// Keep the most likely tokens up to this total probability (1: all).
    #[arg(long, default_value_t = 0.95)]
    pub top_p: f32,
    /// Drop tokens less likely than this fraction of the best (0: none).
    #[arg(long, default_value_t = 0.05)]
    pub min_p: f32,
    /// Penalise the last 64 tokens (1: off).
    #[arg(long, default_value_t = 1.0)]
    pub repeat_penalty: f32,
    /// Random seed; the same seed gives the same text.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

impl SamplingArgs {
    /// The sampler these flags ask for, checked (finite, in range).
    pub fn config(&self) -> Result<SamplerConfig> {
        let c = SamplerConfig {
            temperature: self.temp,
            top_k: self.top_k,
            top_p: self.top_p,
            min_p: self.min_p,
            repeat_penalty: self.repeat_penalty,
            seed: self.seed,
            ..SamplerConfig::default()
        };
        c.validate().map_err(|e| super::generate::flag_error(&e))?;
        Ok(c)
    }
}

pub fn main(a: ChatArgs) -> Result<ExitCode> {
    let sampler = a.sampling.config()?;
    let progress = JitProgress::new();
    let options = LlmOptions {
        device: a.device.choice()?,
        context: a.ctx,
        queue: 1,
        kv: a.device.kv,
        gpu_precision: a.device.gpu_precision,
        ..Default::default()
    }
    .progress(progress.for_llm());
    let llm = Llm::open_with(&a.model, options)?;
    llm.chat_template()?; // a model without a chat format is refused before the first question
    let info = llm.info();
    eprintln!(
        "chatting with {} on {} (context {} tokens). /reset starts over, /exit quits; Ctrl-C stops an answer.",
        info.name, info.device, info.context
    );

    // Ctrl-C cancels the answer being written; at the prompt it quits.
    let current: Arc<Mutex<Option<CancelHandle>>> = Arc::new(Mutex::new(None));
    let in_handler = current.clone();
    ctrlc::set_handler(move || match in_handler.lock().ok().and_then(|c| c.clone()) {
        Some(cancel) => cancel.cancel(),
        None => {
            println!();
            std::process::exit(130);
        }
    })?;

    let system: Vec<Message> = a.system.iter().map(|s| Message::new("system", s)).collect();
    let mut history: Vec<Message> = Vec::new();
    let stdin = std::io::stdin();
    let mut stdout = std::io::stdout();
    let mut line = String::new();
    loop {
        print!("> ");
        stdout.flush()?;
        line.clear();
        if stdin.lock().read_line(&mut line)? == 0 {
            println!();
            break; // Ctrl-D
        }
        let input = line.trim();
        match input {
            "" => continue,
            "/exit" | "/quit" => break,
            "/reset" => {
                history.clear();
                println!("(conversation cleared)");
                continue;
            }
            cmd if cmd.starts_with('/') => {
                println!("(unknown command {cmd}: /reset starts over, /exit quits)");
                continue;
            }
            _ => {}
        }
        history.push(Message::new("user", input));
        let ids = match fit_history(&llm, &system, &mut history) {
            Ok(ids) => ids,
            Err(e) => {
                println!("(cannot ask that: {e})");
                history.pop();
                continue;
            }
        };
        let params = GenerateParams { max_tokens: a.max_tokens, sampler: sampler.clone(), stop: Vec::new() };
        let mut stream = llm.stream(ids, params)?;
        *current.lock().unwrap_or_else(|e| e.into_inner()) = Some(stream.cancel_handle());
        let mut answer = String::new();
        let mut failed = None;
        for token in stream.by_ref() {
            match token {
                Ok(t) => {
                    print!("{}", t.text);
                    stdout.flush()?;
                    answer.push_str(&t.text);
                }
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        let cancelled = current.lock().unwrap_or_else(|e| e.into_inner()).take().is_some_and(|c| c.is_cancelled());
        println!();
        if let Some(e) = failed {
            println!("(the answer failed: {e})");
        } else if cancelled {
            println!("[stopped]");
        } else if let Some(f) = stream.finished() {
            eprintln!(
                "[{} tokens, {:.1} tokens/s; {} prompt tokens, {} reused]",
                f.completion_tokens,
                f.stats.decode_tokens_per_s(),
                f.prompt_tokens,
                f.reused_tokens
            );
        }
        // What was shown is what the model said, also when it was stopped early.
        history.push(Message::new("assistant", &answer));
    }
    Ok(ExitCode::SUCCESS)
}

/// The prompt tokens for the conversation, dropping the oldest exchanges while it leaves less
/// than a quarter of the context for the answer.
fn fit_history(llm: &Llm, system: &[Message], history: &mut Vec<Message>) -> std::result::Result<Vec<u32>, LlmError> {
    let context = llm.info().context;
    loop {
        let messages: Vec<Message> = system.iter().chain(history.iter()).cloned().collect();
        let ids = llm.chat_tokens(&messages, &RenderOptions::default())?;
        if ids.len() + context / 4 <= context || history.len() <= 1 {
            if ids.len() >= context {
                return Err(LlmError::PromptTooLong { prompt_tokens: ids.len(), context });
            }
            return Ok(ids);
        }
        history.drain(..2.min(history.len() - 1));
        eprintln!("(the conversation outgrew the context: the oldest exchange was dropped)");
    }
}
