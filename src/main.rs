//! The `rocmforge` command line. It calls the library's public API only.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use rocmforge::chat::{ChatFormat, Message};
use rocmforge::exec::{GenerateParams, Generation, Model, SamplerConfig, Session};
use rocmforge::gguf::GgufFile;
use rocmforge::graph;
use rocmforge::inspect::{human_bytes, Summary};
use rocmforge::jit::{Engine, KernelCache, Origin, Target};
use rocmforge::kernels::{render, KernelSpec};
use rocmforge::model::ModelConfig;

/// Run GGUF language models on GPUs with kernels compiled at run time.
#[derive(Parser)]
#[command(version, about, long_about = None, after_help = r#"Examples:
  rocmforge inspect SmolLM2-135M-Instruct.Q4_1.gguf
  rocmforge inspect model.gguf --json | jq .head_dim
  rocmforge kernels model.gguf                          # the kernels the model needs
  rocmforge warm model.gguf --target gfx906,gfx90a,gfx1030
  rocmforge warm model.gguf --target gfx90a --check     # exit 1 if anything is not cached
  rocmforge run SmolLM2-135M-Instruct.Q4_1.gguf --chat -p "What is the capital of France?"
  rocmforge run model.gguf -p "Once upon a time" -n 64 --temp 0 # greedy
  rocmforge logits model.gguf -p "Hello" --out logits.bin     # llama-debug's format
  rocmforge cache ls"#)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show a model's architecture, shapes, rope, vocabulary and tensor types.
    ///
    /// Reads only the header (the file is memory-mapped, tensor data is not touched), validating
    /// the whole layout: a broken file is reported with the byte offset of the problem.
    Inspect {
        /// The GGUF file to read.
        model: PathBuf,
        /// Print one JSON object (keys: architecture, n_layer, n_embd, n_head, n_head_kv,
        /// head_dim, rope_dims, rope_base, n_ctx_train, n_vocab, tensor_types, n_params, n_bytes).
        #[arg(long)]
        json: bool,
        /// Also list every metadata key with its type and (shortened) value.
        #[arg(long, conflicts_with = "json")]
        metadata: bool,
        /// Also list every tensor with its type, shape and size.
        #[arg(long, conflicts_with = "json")]
        tensors: bool,
    },
    /// List the kernels a model needs, or print one kernel's rendered source.
    Kernels {
        model: PathBuf,
        /// Print the rendered source of this entry point (e.g. mmv_q4_k_k4096).
        #[arg(long)]
        source: Option<String>,
        /// The target to render for (its dialect and warp size shape the source).
        #[arg(long, default_value = "gfx90a")]
        target: String,
    },
    /// Compile every kernel a model needs for a list of GPU targets, without a GPU.
    ///
    /// Compiles in parallel over the cores into the kernel cache (ROCMFORGE_CACHE_DIR, else
    /// ~/.cache/rocmforge/kernels); a second run finds everything cached and compiles nothing.
    /// AMD targets use hipRTC, NVIDIA targets (sm_XX) NVRTC.
    Warm {
        model: PathBuf,
        /// Comma-separated targets: gfx906, gfx90a, gfx90a:sramecc+:xnack-, gfx1030, sm_90, …
        #[arg(long, value_delimiter = ',', required = true)]
        target: Vec<String>,
        /// Compile nothing; exit 1 listing every kernel not yet in the cache.
        #[arg(long)]
        check: bool,
        /// Print each kernel's VGPRs, SGPRs, LDS, scratch and spills (AMD targets).
        #[arg(long)]
        report: bool,
        /// Parallel compile jobs (default: the number of cores).
        #[arg(long)]
        jobs: Option<usize>,
        /// Cache root (default: ROCMFORGE_CACHE_DIR, else ~/.cache/rocmforge/kernels).
        #[arg(long)]
        cache_dir: Option<PathBuf>,
    },
    /// Write the last position's logits for a prompt as raw little-endian f32 (the format of
    /// llama.cpp's `llama-debug --save-logits`).
    Logits {
        model: PathBuf,
        /// The prompt (tokenized with BOS as the model asks, special tokens parsed).
        #[arg(short, long, conflicts_with = "tokens", required_unless_present = "tokens")]
        prompt: Option<String>,
        /// Prompt token ids as raw little-endian i32 (llama-debug's `-tokens.bin`).
        #[arg(long)]
        tokens: Option<PathBuf>,
        /// Where to write the logits.
        #[arg(long)]
        out: PathBuf,
        /// Also write the prompt's token ids (raw little-endian i32).
        #[arg(long)]
        tokens_out: Option<PathBuf>,
        #[command(flatten)]
        device: DeviceArg,
    },
    /// Generate text from a prompt, streaming it as it is made.
    Run {
        model: PathBuf,
        /// The prompt (with --chat: the user's message).
        #[arg(short, long)]
        prompt: String,
        /// Tokens to generate at most.
        #[arg(short = 'n', long, default_value_t = 128)]
        max_tokens: usize,
        /// Wrap the prompt in the model's chat format (ChatML, Gemma turns).
        #[arg(long)]
        chat: bool,
        /// A system message (with --chat).
        #[arg(long, requires = "chat")]
        system: Option<String>,
        /// Sampling temperature; 0 is greedy.
        #[arg(long, default_value_t = 0.8)]
        temp: f32,
        /// Keep the K most likely tokens (0: all).
        #[arg(long, default_value_t = 40)]
        top_k: usize,
        /// Keep the most likely tokens up to this total probability (1: all).
        #[arg(long, default_value_t = 0.95)]
        top_p: f32,
        /// Drop tokens less likely than this fraction of the best (0: none).
        #[arg(long, default_value_t = 0.05)]
        min_p: f32,
        /// Penalise the last 64 tokens (1: off).
        #[arg(long, default_value_t = 1.0)]
        repeat_penalty: f32,
        /// Random seed; the same seed gives the same text.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// KV cache capacity in tokens (default: prompt + max tokens).
        #[arg(long)]
        ctx: Option<usize>,
        #[command(flatten)]
        device: DeviceArg,
    },
    /// Look after the kernel cache.
    Cache {
        #[command(subcommand)]
        action: CacheAction,
        /// Cache root (default: ROCMFORGE_CACHE_DIR, else ~/.cache/rocmforge/kernels).
        #[arg(long, global = true)]
        cache_dir: Option<PathBuf>,
    },
}

#[derive(clap::Args)]
struct DeviceArg {
    /// Where to run: cpu, cuda, hip, or auto (hip, then cuda, then cpu).
    #[arg(long, default_value = "auto")]
    device: String,
}

#[derive(Subcommand)]
enum CacheAction {
    /// List entries: kernel, target, compiler, size.
    Ls,
    /// Check every entry's hash; exit 1 if any is bad (bad entries are recompiled when next used).
    Verify,
    /// Remove bad entries and stale temporary files, then the oldest entries until the cache
    /// fits in SIZE (e.g. 500M, 2G).
    Gc {
        #[arg(long)]
        max_size: String,
    },
    /// Remove every entry.
    Clear,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            let mut source = e.source();
            while let Some(s) = source {
                eprintln!("  caused by: {s}");
                source = s.source();
            }
            ExitCode::FAILURE
        }
    }
}

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Inspect { model, json, metadata, tensors } => inspect(model, json, metadata, tensors),
        Command::Kernels { model, source, target } => kernels(model, source, &target),
        Command::Warm { model, target, check, report, jobs, cache_dir } => {
            warm(model, &target, check, report, jobs, cache_dir)
        }
        Command::Cache { action, cache_dir } => cache(action, cache_dir),
        Command::Logits { model, prompt, tokens, out, tokens_out, device } => {
            logits(model, prompt, tokens, out, tokens_out, &device.device)
        }
        Command::Run {
            model,
            prompt,
            max_tokens,
            chat,
            system,
            temp,
            top_k,
            top_p,
            min_p,
            repeat_penalty,
            seed,
            ctx,
            device,
        } => {
            let sampler =
                SamplerConfig { temperature: temp, top_k, top_p, min_p, repeat_penalty, repeat_last_n: 64, seed };
            run_prompt(model, &prompt, max_tokens, chat, system, sampler, ctx, &device.device)
        }
    }
}

fn inspect(model: PathBuf, json: bool, metadata: bool, tensors: bool) -> Result<ExitCode> {
    let file = GgufFile::open(&model)?;
    let summary = Summary::of(&file).map_err(|e| format!("{}: {e}", model.display()))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("{}", model.display());
    println!("{summary}");
    if metadata {
        println!("\nmetadata ({} keys, GGUF v{}, alignment {}):", file.metadata.len(), file.version, file.alignment);
        for (key, value) in file.metadata.iter() {
            println!("  {key:<48} {:<16} {}", value.type_description(), value.summary());
        }
    }
    if tensors {
        println!("\ntensors ({}):", file.tensors.len());
        for t in &file.tensors {
            let shape = format!("{:?}", t.shape);
            println!("  {:<36} {:<6} {shape:>20} {:>12}", t.name, t.ty.name(), human_bytes(t.n_bytes));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The model's distinct kernel specs (prefill and decode).
fn model_specs(model: &PathBuf) -> Result<Vec<KernelSpec>> {
    let file = GgufFile::open(model)?;
    let cfg = ModelConfig::from_gguf(&file).map_err(|e| format!("{}: {e}", model.display()))?;
    Ok(graph::kernel_specs(&cfg, &file)?.into_iter().collect())
}

fn kernels(model: PathBuf, source: Option<String>, target: &str) -> Result<ExitCode> {
    let specs = model_specs(&model)?;
    let target: Target = target.parse()?;
    match source {
        Some(entry) => {
            let spec = specs.iter().find(|s| s.entry_name() == entry).ok_or_else(|| {
                format!(
                    "{} needs no kernel {entry:?}; `rocmforge kernels {}` lists them",
                    model.display(),
                    model.display()
                )
            })?;
            print!("{}", render(spec, target.render_target())?.source);
        }
        None => {
            println!("{} kernels for {}:", specs.len(), model.display());
            for s in &specs {
                println!("  {s}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn parse_targets(list: &[String]) -> Result<Vec<Target>> {
    Ok(list.iter().map(|t| t.trim().parse::<Target>()).collect::<std::result::Result<_, _>>()?)
}

fn warm(
    model: PathBuf,
    targets: &[String],
    check: bool,
    report: bool,
    jobs: Option<usize>,
    cache_dir: Option<PathBuf>,
) -> Result<ExitCode> {
    let targets = parse_targets(targets)?;
    let specs = model_specs(&model)?;
    let mut builder = Engine::builder().targets(targets.clone());
    if let Some(dir) = cache_dir {
        builder = builder.cache_dir(dir);
    }
    if let Some(j) = jobs {
        builder = builder.jobs(j);
    }
    if check {
        let engine = builder.build()?;
        let missing = engine.missing(&specs)?;
        let root = engine.cache().root().map(|r| r.display().to_string()).unwrap_or_default();
        if missing.is_empty() {
            println!(
                "all {} kernels of {} are cached for {} target(s) in {root}",
                specs.len(),
                model.display(),
                targets.len()
            );
            return Ok(ExitCode::SUCCESS);
        }
        println!("{} of {} kernels are missing from {root}:", missing.len(), specs.len() * targets.len());
        for (spec, target) in &missing {
            println!("  {target:<24} {spec}");
        }
        return Ok(ExitCode::FAILURE);
    }
    let total = specs.len() * targets.len();
    let bar = Arc::new(std::sync::Mutex::new(()));
    let engine = builder
        .progress(move |p| {
            let _guard = bar.lock();
            let width = 30;
            let filled = p.done * width / p.total.max(1);
            let what = match p.kernel.origin {
                Origin::Compiled => "compiled",
                Origin::Disk => "cached",
                Origin::Memory => "in memory",
            };
            eprint!(
                "\r[{}{}] {}/{} {:<10} {:<40}",
                "#".repeat(filled),
                " ".repeat(width - filled),
                p.done,
                p.total,
                what,
                format!("{} {}", p.kernel.target, p.kernel.entry)
            );
            let _ = std::io::stderr().flush();
        })
        .build()?;
    eprintln!(
        "warming {total} kernels ({} per target) of {} into {}",
        specs.len(),
        model.display(),
        engine.cache().root().map(|r| r.display().to_string()).unwrap_or_default()
    );
    let result = engine.warm(&specs);
    eprintln!();
    let done = result?;
    let compile_seconds =
        done.kernels.iter().filter(|k| k.origin == Origin::Compiled).fold(0.0, |acc, k| acc + k.seconds);
    println!(
        "{} kernels: {} compiled ({:.1} s of compile time), {} cached; wall {:.2} s",
        done.kernels.len(),
        done.compiled(),
        compile_seconds,
        done.kernels.len() - done.compiled(),
        done.wall.as_secs_f64()
    );
    if report {
        println!(
            "\n{:<24} {:<40} {:>5} {:>5} {:>5} {:>7} {:>8} {:>7}",
            "target", "kernel", "VGPR", "AGPR", "SGPR", "LDS", "scratch", "spills"
        );
        for k in &done.kernels {
            if let Some(r) = k.resources() {
                println!(
                    "{:<24} {:<40} {:>5} {:>5} {:>5} {:>7} {:>8} {:>7}",
                    k.target.to_string(),
                    k.entry,
                    r.vgpr_count,
                    r.agpr_count,
                    r.sgpr_count,
                    r.lds_bytes,
                    r.scratch_bytes,
                    r.vgpr_spill_count + r.sgpr_spill_count
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `500M`, `2G`, `1024` (bytes), `64K`.
fn parse_size(s: &str) -> Result<u64> {
    let s = s.trim();
    let (num, mult) = match s.chars().last().map(|c| c.to_ascii_uppercase()) {
        Some('K') => (&s[..s.len() - 1], 1u64 << 10),
        Some('M') => (&s[..s.len() - 1], 1 << 20),
        Some('G') => (&s[..s.len() - 1], 1 << 30),
        Some('T') => (&s[..s.len() - 1], 1 << 40),
        _ => (s, 1),
    };
    let n: f64 =
        num.trim().parse().map_err(|_| format!("size {s:?}: expected a number with an optional K, M, G or T"))?;
    if n.is_nan() || n < 0.0 {
        return Err(format!("size {s:?} must not be negative").into());
    }
    Ok((n * mult as f64) as u64)
}

fn cache(action: CacheAction, cache_dir: Option<PathBuf>) -> Result<ExitCode> {
    let cache = KernelCache::open(cache_dir.unwrap_or_else(KernelCache::default_root));
    let root = cache.root().expect("an on-disk cache").display().to_string();
    match action {
        CacheAction::Ls => {
            let entries = cache.list();
            let total: u64 = entries.iter().map(|e| e.bytes).sum();
            println!("{} entries, {} in {root}", entries.len(), human_bytes(total));
            for e in entries {
                match e.header {
                    Ok(h) => {
                        println!("  {:<40} {:<24} {:>10}  {}", h.entry, h.target, human_bytes(e.bytes), h.compiler)
                    }
                    Err(why) => println!("  BAD {} ({why})", e.path.display()),
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        CacheAction::Verify => {
            let entries = cache.list();
            let bad: Vec<_> = entries.iter().filter(|e| e.header.is_err()).collect();
            for e in &bad {
                println!("bad: {} ({})", e.path.display(), e.header.as_ref().err().map(String::as_str).unwrap_or(""));
            }
            println!("{} entries checked in {root}, {} bad", entries.len(), bad.len());
            Ok(if bad.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        CacheAction::Gc { max_size } => {
            let max = parse_size(&max_size)?;
            let (n, bytes) = cache.gc(max)?;
            println!("removed {n} files ({}) from {root}; limit {}", human_bytes(bytes), human_bytes(max));
            Ok(ExitCode::SUCCESS)
        }
        CacheAction::Clear => {
            let (n, bytes) = cache.clear()?;
            println!("removed {n} files ({}) from {root}", human_bytes(bytes));
            Ok(ExitCode::SUCCESS)
        }
    }
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

/// The device `--device` names; GPU backends arrive with the GPU executor.
fn check_device(device: &str) -> Result<()> {
    match device {
        "cpu" | "auto" => Ok(()),
        "cuda" | "hip" => {
            Err(format!("--device {device}: this build runs on the CPU only so far (use --device cpu or auto)").into())
        }
        other => Err(format!("--device {other:?}: expected cpu, cuda, hip or auto").into()),
    }
}

fn logits(
    model: PathBuf,
    prompt: Option<String>,
    tokens: Option<PathBuf>,
    out: PathBuf,
    tokens_out: Option<PathBuf>,
    device: &str,
) -> Result<ExitCode> {
    check_device(device)?;
    let model = Model::load(&model)?;
    let ids = match (prompt, tokens) {
        (Some(p), _) => model.tokenizer()?.encode(&p, true, true),
        (None, Some(path)) => read_token_file(&path)?,
        (None, None) => unreachable!("clap requires one"),
    };
    let mut session = Session::new(&model, ids.len().max(1))?;
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
    device: &str,
) -> Result<ExitCode> {
    check_device(device)?;
    let load = std::time::Instant::now();
    let model = Model::load(&model)?;
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
    let mut session = Session::new(&model, capacity)?;
    let load_s = load.elapsed().as_secs_f64();
    let params = GenerateParams { max_tokens, sampler };
    let mut stdout = std::io::stdout();
    if !chat {
        print!("{prompt}");
    }
    let stats = Generation::new(&mut session, &tokenizer, &ids, params)?.run(|t| {
        print!("{}", t.text);
        let _ = stdout.flush();
    })?;
    println!();
    eprintln!(
        "\n[cpu] load {:.2} s | prompt {} tokens, {:.1} tokens/s | generated {} tokens, {:.1} tokens/s",
        load_s,
        stats.prompt_tokens,
        stats.prefill_tokens_per_s(),
        stats.generated,
        stats.decode_tokens_per_s()
    );
    Ok(ExitCode::SUCCESS)
}
