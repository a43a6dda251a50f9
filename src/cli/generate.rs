//! `rocmforge run` and `rocmforge logits`: a model on the chosen device, generating text or
//! writing the logits of a prompt.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use rocmforge::chat::{ChatTemplate, Message, RenderOptions};
use rocmforge::exec::gpu::{GpuModel, GpuSession, DEFAULT_MAX_BATCH};
use rocmforge::exec::{CpuPrecision, Forward, GenerateParams, Generation, Model, SamplerConfig, SamplerError, Session};
use rocmforge::jit::Engine;
use rocmforge::tokenizer::EncodeOptions;

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
    /// Wrap the prompt in the model's chat template (from the file; ChatML or Gemma turns when it
    /// has none).
    #[arg(long)]
    pub chat: bool,
    /// A system message (with --chat).
    #[arg(long, requires = "chat")]
    pub system: Option<String>,
    #[command(flatten)]
    pub sampling: super::chat::SamplingArgs,
    /// KV cache capacity in tokens (default: prompt + max tokens).
    #[arg(long)]
    pub ctx: Option<usize>,
    #[command(flatten)]
    pub device: DeviceArg,
    #[command(flatten)]
    pub precision: PrecisionArg,
}

pub fn logits_main(a: LogitsArgs) -> Result<ExitCode> {
    refuse_to_overwrite(&a.model, &a.out, "--out")?;
    if let Some(t) = &a.tokens_out {
        refuse_to_overwrite(&a.model, t, "--tokens-out")?;
    }
    with_worker_threads(move || logits(a.model, a.prompt, a.tokens, a.out, a.tokens_out, &a.device, a.precision.get()))
}

/// The most tokens `-n` may ask for (the largest context a GGUF can declare).
const MAX_GENERATE: usize = u32::MAX as usize;

pub fn run_main(a: RunArgs) -> Result<ExitCode> {
    if a.max_tokens > MAX_GENERATE {
        return Err(format!("-n {}: at most {MAX_GENERATE} tokens", a.max_tokens).into());
    }
    match a.ctx {
        Some(0) => return Err("--ctx 0: the context needs at least one position".into()),
        Some(c) if c > MAX_GENERATE => return Err(format!("--ctx {c}: at most {MAX_GENERATE} positions").into()),
        _ => {}
    }
    let sampler = a.sampling.config()?;
    with_worker_threads(move || {
        let where_ = (&a.device, a.precision.get());
        run_prompt(a.model, &a.prompt, a.max_tokens, a.chat, a.system, sampler, a.ctx, where_)
    })
}

/// Refuses an output path that is the model file itself (through any link or path spelling).
fn refuse_to_overwrite(model: &std::path::Path, out: &std::path::Path, flag: &str) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let (Ok(m), Ok(o)) = (std::fs::metadata(model), std::fs::metadata(out)) else { return Ok(()) };
    if (m.dev(), m.ino()) == (o.dev(), o.ino()) {
        return Err(format!(
            "{flag} {} is the model file {}: refusing to overwrite it",
            out.display(),
            model.display()
        )
        .into());
    }
    Ok(())
}

/// Runs `f` with rayon's CPU worker threads started up front, so that a system refusing threads
/// (a process limit) is a clear error here, not a panic in the middle of a forward pass. Fewer
/// threads are tried before giving up.
pub(super) fn with_worker_threads(f: impl FnOnce() -> Result<ExitCode> + Send) -> Result<ExitCode> {
    let mut n = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let pool = loop {
        match rayon::ThreadPoolBuilder::new().num_threads(n).build() {
            Ok(pool) => break pool,
            Err(_) if n > 1 => n /= 2,
            Err(e) => {
                return Err(format!(
                    "cannot start a worker thread ({e}): the system refuses new threads; raise the process limit (ulimit -u)"
                )
                .into())
            }
        }
    };
    // The error crosses back from the pool as text (with its causes), as main would print it.
    pool.install(|| {
        f().map_err(|e| {
            let mut text = e.to_string();
            let mut source = e.source();
            while let Some(s) = source {
                text.push_str(&format!("\n  caused by: {s}"));
                source = s.source();
            }
            text
        })
    })
    .map_err(Into::into)
}

/// A sampler setting out of range, named by its command-line flag.
pub fn flag_error(e: &SamplerError) -> Box<dyn std::error::Error> {
    let flag = match e.name {
        "temperature" => "--temp",
        "top_p" => "--top-p",
        "min_p" => "--min-p",
        "repeat_penalty" => "--repeat-penalty",
        other => other,
    };
    format!("{flag} {}: must be {}", e.value, e.expected).into()
}

/// Prompt token ids from a file of at most `max_tokens` i32s (the model's context).
fn read_token_file(path: &std::path::Path, max_tokens: u32) -> Result<Vec<u32>> {
    let io = |e: std::io::Error| format!("{}: {e}", path.display());
    let (file, len) = rocmforge::gguf::open_regular_file(path).map_err(io)?;
    if len > 4 * max_tokens as u64 {
        return Err(
            format!("{}: {len} bytes is more than the model's context of {max_tokens} tokens", path.display()).into()
        );
    }
    let mut bytes = Vec::with_capacity(len as usize);
    std::io::Read::read_to_end(&mut std::io::Read::take(file, len), &mut bytes).map_err(io)?;
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
    let progress = super::progress::JitProgress::new();
    let engine = Engine::builder().targets(dev.target().cloned()).progress(progress.for_engine()).build()?;
    eprintln!("[{}] {}: loading kernels and weights", dev.backend(), dev.name());
    let mut gpu = GpuModel::with_kv(model, dev, &engine, device.kv)?;
    gpu.precision = device.gpu_precision;
    Ok(Some(gpu))
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
        (Some(p), _) => model.tokenizer()?.encode(&p, EncodeOptions::CHAT),
        (None, Some(path)) => read_token_file(&path, model.config.n_ctx_train)?,
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
        let template = ChatTemplate::from_metadata(&model.file.metadata)?;
        let mut messages = Vec::new();
        if let Some(sys) = system {
            messages.push(Message::new("system", &sys));
        }
        messages.push(Message::new("user", prompt));
        let text = template.render(&messages, &RenderOptions::default())?;
        // A template that writes BOS itself would get a second one from the tokenizer.
        match text.strip_prefix(template.bos_token()) {
            Some(rest) if !template.bos_token().is_empty() && tokenizer.add_bos => rest.to_string(),
            _ => text,
        }
    } else {
        prompt.to_string()
    };
    let ids = tokenizer.encode(&text, if chat { EncodeOptions::CHAT } else { EncodeOptions::PROMPT });
    let n_ctx_train = model.config.n_ctx_train as usize;
    let capacity = ctx.unwrap_or(ids.len().saturating_add(max_tokens)).min(n_ctx_train);
    if ids.len() >= capacity {
        return Err(match ctx {
            Some(c) if c <= n_ctx_train => format!(
                "--ctx {c} cannot hold the prompt: it is {} tokens, and at least one more is needed for the answer",
                ids.len()
            ),
            _ => format!("the prompt is {} tokens; the model's context holds {n_ctx_train}", ids.len()),
        }
        .into());
    }
    let max_tokens = max_tokens.min(capacity - ids.len());
    let (mut session, where_) = open_session(&model, gpu.as_ref(), capacity, precision)?;
    let load_s = load.elapsed().as_secs_f64();
    let params = GenerateParams { max_tokens, sampler, ..Default::default() };
    let mut stdout = std::io::stdout().lock();
    // A closed stdout (`| head`) ends the generation quietly.
    let mut out = |text: &str| stdout.write_all(text.as_bytes()).and_then(|_| stdout.flush()).is_ok();
    if !chat && !out(prompt) {
        return Ok(ExitCode::SUCCESS);
    }
    let mut generation = Generation::new(session.as_mut(), &tokenizer, &ids, params)?;
    for t in generation.by_ref() {
        if !out(&t?.text) {
            return Ok(ExitCode::SUCCESS);
        }
    }
    let stats = generation.stats.clone();
    out("\n");
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
