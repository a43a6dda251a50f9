//! `rocmforge run` and `rocmforge logits`: a model on the chosen device, generating text or
//! writing the logits of a prompt.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use rocmforge::chat::{ChatFormat, Message};
use rocmforge::exec::gpu::{GpuModel, GpuSession, DEFAULT_MAX_BATCH};
use rocmforge::exec::{CpuPrecision, Forward, GenerateParams, Generation, Model, SamplerConfig, Session};
use rocmforge::jit::Engine;

use super::{DeviceArg, Result};

/// `--cpu-precision`, for the subcommands that may run on the CPU.
#[derive(clap::Args)]
pub struct PrecisionArg {
    /// On the CPU: `fast` quantizes activations to 8 bits for quantized weights and runs SIMD
    /// kernels on every core (as llama.cpp's CPU backend); `exact` keeps f32 activations and the
    /// reference ops.
    #[arg(long, value_enum, default_value_t = Precision::Fast)]
    pub cpu_precision: Precision,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Precision {
    Exact,
    Fast,
}

impl PrecisionArg {
    pub fn get(&self) -> CpuPrecision {
        match self.cpu_precision {
            Precision::Exact => CpuPrecision::Exact,
            Precision::Fast => CpuPrecision::Fast,
        }
    }
}

#[derive(clap::Args)]
pub struct LogitsArgs {
    /// The GGUF model file.
    pub model: PathBuf,
    /// The prompt (tokenized with BOS as the model asks, special tokens parsed).
    #[arg(short, long, conflicts_with = "tokens", required_unless_present = "tokens")]
    pub prompt: Option<String>,
    /// Prompt token ids as raw little-endian i32 (llama-debug's `-tokens.bin`).
    #[arg(long)]
    pub tokens: Option<PathBuf>,
    /// Where to write the logits.
    #[arg(long)]
    pub out: PathBuf,
    /// Also write the prompt's token ids (raw little-endian i32).
    #[arg(long)]
    pub tokens_out: Option<PathBuf>,
    #[command(flatten)]
    pub device: DeviceArg,
    #[command(flatten)]
    pub precision: PrecisionArg,
}

#[derive(clap::Args)]
pub struct RunArgs {
    /// The GGUF model file.
    pub model: PathBuf,
    /// The prompt (with --chat: the user's message).
    #[arg(short, long)]
    pub prompt: String,
    /// Tokens to generate at most.
    #[arg(short = 'n', long, default_value_t = 128)]
    pub max_tokens: usize,
    /// Wrap the prompt in the model's chat format (ChatML, Gemma turns).
    #[arg(long)]
    pub chat: bool,
    /// A system message (with --chat).
    #[arg(long, requires = "chat")]
    pub system: Option<String>,
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
    /// KV cache capacity in tokens (default: prompt + max tokens).
    #[arg(long)]
    pub ctx: Option<usize>,
    #[command(flatten)]
    pub device: DeviceArg,
    #[command(flatten)]
    pub precision: PrecisionArg,
}

pub fn logits_main(a: LogitsArgs) -> Result<ExitCode> {
    logits(a.model, a.prompt, a.tokens, a.out, a.tokens_out, &a.device, a.precision.get())
}

pub fn run_main(a: RunArgs) -> Result<ExitCode> {
    let sampler = SamplerConfig {
        temperature: a.temp,
        top_k: a.top_k,
        top_p: a.top_p,
        min_p: a.min_p,
        repeat_penalty: a.repeat_penalty,
        repeat_last_n: 64,
        seed: a.seed,
    };
    let where_ = (&a.device, a.precision.get());
    run_prompt(a.model, &a.prompt, a.max_tokens, a.chat, a.system, sampler, a.ctx, where_)
}

fn read_token_file(path: &PathBuf) -> Result<Vec<u32>> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if bytes.len() % 4 != 0 {
        return Err(format!("{}: {} bytes is not a whole number of i32 token ids", path.display(), bytes.len()).into());
    }
    bytes
        .chunks_exact(4)
        .map(|c| {
            let id = i32::from_le_bytes(c.try_into().expect("4 bytes"));
            u32::try_from(id).map_err(|_| format!("{}: negative token id {id}", path.display()).into())
        })
        .collect()
}

/// Opens `--device`, and on a GPU, its model: kernels JIT-compiled (or loaded from the cache) for
/// the device's own target, weights uploaded, sessions' KV caches in `--kv`.
fn open_gpu<'m>(model: &'m Model, device: &DeviceArg) -> Result<Option<GpuModel<'m>>> {
    let Some(dev) = rocmforge::device::open(&device.device)? else { return Ok(None) };
    let engine = Engine::builder().targets(dev.target().cloned()).build()?;
    eprintln!("[{}] {}: loading kernels and weights", dev.backend(), dev.name());
    Ok(Some(GpuModel::with_kv(model, dev, &engine, device.kv)?))
}

/// A session of `capacity` positions on the GPU model when there is one, else on the CPU, and a
/// label saying where it runs.
fn open_session<'g, 'm: 'g>(
    model: &'m Model,
    gpu: Option<&'g GpuModel<'m>>,
    capacity: usize,
    precision: CpuPrecision,
) -> Result<(Box<dyn Forward + 'g>, String)> {
    Ok(match gpu {
        Some(g) => (
            Box::new(GpuSession::new(g, capacity, DEFAULT_MAX_BATCH)?),
            format!("{} {}", g.device.backend(), g.device.name()),
        ),
        None => {
            let s = Session::with_precision(model, capacity, precision)?;
            let label = match s.isa() {
                Some(isa) => format!("cpu, {}, {}", precision.name(), isa.name()),
                None => format!("cpu, {}", precision.name()),
            };
            (Box::new(s), label)
        }
    })
}

fn logits(
    model: PathBuf,
    prompt: Option<String>,
    tokens: Option<PathBuf>,
    out: PathBuf,
    tokens_out: Option<PathBuf>,
    device: &DeviceArg,
    precision: CpuPrecision,
) -> Result<ExitCode> {
    let model = Model::load(&model)?;
    let gpu = open_gpu(&model, device)?;
    let ids = match (prompt, tokens) {
        (Some(p), _) => model.tokenizer()?.encode(&p, true, true),
        (None, Some(path)) => read_token_file(&path)?,
        (None, None) => unreachable!("clap requires one"),
    };
    let (mut session, _) = open_session(&model, gpu.as_ref(), ids.len().max(1), precision)?;
    let logits = session.forward(&ids)?;
    let bytes: Vec<u8> = logits.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(&out, bytes).map_err(|e| format!("{}: {e}", out.display()))?;
    if let Some(path) = tokens_out {
        let bytes: Vec<u8> = ids.iter().flat_map(|&t| (t as i32).to_le_bytes()).collect();
        std::fs::write(&path, bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    eprintln!("wrote {} logits for {} prompt tokens to {}", logits.len(), ids.len(), out.display());
    Ok(ExitCode::SUCCESS)
}

#[allow(clippy::too_many_arguments)]
fn run_prompt(
    model: PathBuf,
    prompt: &str,
    max_tokens: usize,
    chat: bool,
    system: Option<String>,
    sampler: SamplerConfig,
    ctx: Option<usize>,
    (device, precision): (&DeviceArg, CpuPrecision),
) -> Result<ExitCode> {
    let load = std::time::Instant::now();
    let model = Model::load(&model)?;
    let gpu = open_gpu(&model, device)?;
    let tokenizer = model.tokenizer()?;
    let text = if chat {
        let format = ChatFormat::from_metadata(&model.file.metadata)?;
        let mut messages = Vec::new();
        if let Some(sys) = system {
            messages.push(Message::new("system", &sys));
        }
        messages.push(Message::new("user", prompt));
        format.render(&messages)
    } else {
        prompt.to_string()
    };
    let ids = tokenizer.encode(&text, true, chat);
    let capacity = ctx.unwrap_or(ids.len() + max_tokens).min(model.config.n_ctx_train as usize);
    let (mut session, where_) = open_session(&model, gpu.as_ref(), capacity, precision)?;
    let load_s = load.elapsed().as_secs_f64();
    let params = GenerateParams { max_tokens, sampler };
    let mut stdout = std::io::stdout();
    if !chat {
        print!("{prompt}");
    }
    let stats = Generation::new(session.as_mut(), &tokenizer, &ids, params)?.run(|t| {
        print!("{}", t.text);
        let _ = stdout.flush();
    })?;
    println!();
    eprintln!(
        "\n[{where_}] load {:.2} s | prompt {} tokens, {:.1} tokens/s | generated {} tokens, {:.1} tokens/s",
        load_s,
        stats.prompt_tokens,
        stats.prefill_tokens_per_s(),
        stats.generated,
        stats.decode_tokens_per_s()
    );
    Ok(ExitCode::SUCCESS)
}
