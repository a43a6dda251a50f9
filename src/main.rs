//! The `rocmforge` command line. It calls the library's public API only.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use rocmforge::chat::{ChatFormat, Message};
use rocmforge::exec::gpu::{GpuModel, GpuSession, DEFAULT_MAX_BATCH};
use rocmforge::exec::{Forward, GenerateParams, Generation, Model, SamplerConfig, Session};
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
        /// Internal: compile only share I of N (`I/N`); the worker processes of a parallel warm.
        #[arg(long, hide = true)]
        shard: Option<String>,
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
    /// Measure a model: load, JIT (cold and warm), prefill and decode tokens/s, and decode against
    /// the memory-bandwidth roofline (weight bytes per token over the device's copy bandwidth).
    Bench {
        model: PathBuf,
        /// Prompt tokens to prefill (random ids, seeded).
        #[arg(long, default_value_t = 512)]
        prompt: usize,
        /// Tokens to decode (greedy, the argmax fed back).
        #[arg(long, default_value_t = 128)]
        gen: usize,
        /// Prefill repetitions (the median is reported).
        #[arg(long, default_value_t = 3)]
        reps: usize,
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
        Command::Warm { model, target, check, report, jobs, cache_dir, shard } => {
            warm(model, &target, check, report, jobs, cache_dir, shard.as_deref())
        }
        Command::Cache { action, cache_dir } => cache(action, cache_dir),
        Command::Bench { model, prompt, gen, reps, device } => bench(model, prompt, gen, reps, &device.device),
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
    let summary = Summary::of(&file).map_err(|e| format!("{}: {e}", model.display()));
    if json {
        println!("{}", serde_json::to_string_pretty(&summary?)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("{}", model.display());
    match &summary {
        Ok(s) => println!("{s}"),
        // A valid GGUF that rocmforge cannot run still shows what it holds.
        Err(e) => {
            let arch = file.architecture().unwrap_or("(none)");
            let params: u64 = file.tensors.iter().map(|t| t.n_elems).sum();
            let bytes: u64 = file.tensors.iter().map(|t| t.n_bytes).sum();
            println!("architecture   {arch} (not runnable here)");
            println!("tensors        {} ({params} parameters, {})", file.tensors.len(), human_bytes(bytes));
            println!("metadata       {} keys, GGUF v{}", file.metadata.len(), file.version);
            eprintln!("note: {e}");
        }
    }
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

#[allow(clippy::too_many_arguments)]
fn warm(
    model: PathBuf,
    targets: &[String],
    check: bool,
    report: bool,
    jobs: Option<usize>,
    cache_dir: Option<PathBuf>,
    shard: Option<&str>,
) -> Result<ExitCode> {
    let target_list = parse_targets(targets)?;
    let specs = model_specs(&model)?;
    let jobs = jobs.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)).max(1);
    let mut builder = Engine::builder().targets(target_list.clone()).jobs(jobs);
    if let Some(dir) = &cache_dir {
        builder = builder.cache_dir(dir);
    }
    if let Some(shard) = shard {
        // A worker: compile every N-th job, quietly.
        let (i, n) = shard
            .split_once('/')
            .and_then(|(i, n)| Some((i.parse::<usize>().ok()?, n.parse::<usize>().ok()?)))
            .filter(|&(i, n)| i < n)
            .ok_or_else(|| format!("--shard {shard:?}: expected I/N with I < N"))?;
        let engine = builder.jobs(1).build()?;
        for (j, (t, s)) in target_list.iter().flat_map(|t| specs.iter().map(move |s| (t, s))).enumerate() {
            if j % n == i {
                engine.kernel(s, t)?;
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let engine = builder.build()?;
    let root = engine.cache().root().map(|r| r.display().to_string()).unwrap_or_default();
    let missing = engine.missing(&specs)?;
    if check {
        if missing.is_empty() {
            println!(
                "all {} kernels of {} are cached for {} target(s) in {root}",
                specs.len(),
                model.display(),
                target_list.len()
            );
            return Ok(ExitCode::SUCCESS);
        }
        println!("{} of {} kernels are missing from {root}:", missing.len(), specs.len() * target_list.len());
        for (spec, target) in &missing {
            println!("  {target:<24} {spec}");
        }
        return Ok(ExitCode::FAILURE);
    }
    let total = specs.len() * target_list.len();
    eprintln!(
        "warming {total} kernels ({} per target) of {} into {root}, {jobs} at a time",
        specs.len(),
        model.display()
    );
    let start = std::time::Instant::now();
    // hipRTC compiles one kernel at a time per process, so parallel work goes to worker processes
    // (this same binary with --shard); they share the cache safely. The bar counts cached kernels.
    if jobs > 1 && missing.len() > 1 {
        let exe = std::env::current_exe()?;
        let mut children = Vec::new();
        for i in 0..jobs {
            let mut c = std::process::Command::new(&exe);
            c.arg("warm").arg(&model).arg("--target").arg(targets.join(",")).arg("--shard").arg(format!("{i}/{jobs}"));
            if let Some(dir) = &cache_dir {
                c.arg("--cache-dir").arg(dir);
            }
            children.push(c.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).spawn()?);
        }
        loop {
            let mut running = false;
            for c in children.iter_mut() {
                running |= c.try_wait()?.is_none();
            }
            draw_bar(total - engine.missing(&specs)?.len(), total, "compiling");
            if !running {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        eprintln!();
    }
    // Whatever is still missing (everything, with one job; a worker's failure) compiles here, so
    // errors come with their full log; the rest is read back from the cache for the report.
    let engine = if engine.missing(&specs)?.is_empty() {
        engine
    } else {
        engine.with_progress(|p| {
            let what = match p.kernel.origin {
                Origin::Compiled => "compiled",
                Origin::Disk => "cached",
                Origin::Memory => "in memory",
            };
            draw_bar(p.done, p.total, &format!("{what} {} {}", p.kernel.target, p.kernel.entry));
        })
    };
    let result = engine.warm(&specs);
    eprintln!();
    let done = result?;
    let compiled = missing.len();
    println!(
        "{} kernels: {} compiled, {} cached; wall {:.2} s",
        done.kernels.len(),
        compiled,
        done.kernels.len() - compiled,
        start.elapsed().as_secs_f64()
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

fn draw_bar(done: usize, total: usize, what: &str) {
    let width = 30;
    let filled = done * width / total.max(1);
    eprint!("\r[{}{}] {done}/{total} {what:<60}", "#".repeat(filled), " ".repeat(width - filled));
    let _ = std::io::stderr().flush();
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

/// Opens `--device`, and on a GPU, its model: kernels JIT-compiled (or loaded from the cache) for
/// the device's own target, weights uploaded.
fn open_gpu<'m>(model: &'m Model, device: &str) -> Result<Option<GpuModel<'m>>> {
    let Some(dev) = rocmforge::device::open(device)? else { return Ok(None) };
    let engine = Engine::builder().targets(dev.target().cloned()).build()?;
    eprintln!("[{}] {}: loading kernels and weights", dev.backend(), dev.name());
    Ok(Some(GpuModel::new(model, dev, &engine)?))
}

/// A session of `capacity` positions on the GPU model when there is one, else on the CPU, and a
/// label saying where it runs.
fn open_session<'g, 'm: 'g>(
    model: &'m Model,
    gpu: Option<&'g GpuModel<'m>>,
    capacity: usize,
) -> Result<(Box<dyn Forward + 'g>, String)> {
    Ok(match gpu {
        Some(g) => (
            Box::new(GpuSession::new(g, capacity, DEFAULT_MAX_BATCH)?),
            format!("{} {}", g.device.backend(), g.device.name()),
        ),
        None => (Box::new(Session::new(model, capacity)?), "cpu".to_string()),
    })
}

fn logits(
    model: PathBuf,
    prompt: Option<String>,
    tokens: Option<PathBuf>,
    out: PathBuf,
    tokens_out: Option<PathBuf>,
    device: &str,
) -> Result<ExitCode> {
    let model = Model::load(&model)?;
    let gpu = open_gpu(&model, device)?;
    let ids = match (prompt, tokens) {
        (Some(p), _) => model.tokenizer()?.encode(&p, true, true),
        (None, Some(path)) => read_token_file(&path)?,
        (None, None) => unreachable!("clap requires one"),
    };
    let (mut session, _) = open_session(&model, gpu.as_ref(), ids.len().max(1))?;
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
    let (mut session, where_) = open_session(&model, gpu.as_ref(), capacity)?;
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

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Seconds to prefill `ids` (median of `reps`, from an empty cache) and to decode `gen` greedy
/// tokens after it, the argmax fed back.
fn time_passes(s: &mut dyn Forward, ids: &[u32], gen: usize, reps: usize) -> Result<(f64, f64)> {
    use std::time::Instant;
    let mut prefill = Vec::new();
    for _ in 0..reps.max(1) {
        s.reset();
        let t = Instant::now();
        s.forward_argmax(ids)?;
        prefill.push(t.elapsed().as_secs_f64());
    }
    let mut next = s.forward_argmax(&[ids[0]])?;
    let t = Instant::now();
    for _ in 0..gen {
        next = s.forward_argmax(&[next])?;
    }
    Ok((median(prefill), t.elapsed().as_secs_f64()))
}

fn bench(path: PathBuf, prompt: usize, gen: usize, reps: usize, device: &str) -> Result<ExitCode> {
    use std::time::Instant;
    let t = Instant::now();
    let model = Model::load(&path)?;
    let load_s = t.elapsed().as_secs_f64();
    let cfg = &model.config;
    // Random prompt ids, seeded, so runs compare.
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let ids: Vec<u32> = (0..prompt.max(1))
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % cfg.n_vocab as u64) as u32
        })
        .collect();
    let capacity = prompt + gen + 1;
    let weight_bytes = rocmforge::exec::gpu::decode_weight_bytes(&model);
    println!(
        "model      {} ({}, {} layers, {} weight bytes read per decoded token)",
        path.display(),
        cfg.arch.name(),
        cfg.n_layer,
        human_bytes(weight_bytes)
    );
    println!("load       {load_s:.3} s (map + validate + graphs)");
    let Some(dev) = rocmforge::device::open(device)? else {
        let mut s = Session::new(&model, capacity)?;
        let (prefill, decode) = time_passes(&mut s, &ids, gen, reps)?;
        println!("device     cpu ({} threads)", rayon::current_num_threads());
        println!("prefill    {:.1} tokens/s ({} tokens, median of {reps})", prompt as f64 / prefill, prompt);
        println!("decode     {:.1} tokens/s ({gen} tokens)", gen as f64 / decode);
        return Ok(ExitCode::SUCCESS);
    };
    let backend = dev.backend();
    let name = dev.name().to_string();
    let target = dev.target().cloned().ok_or("bench measures GPUs; use --device cpu for the CPU")?;
    let mem_before = dev.memory_used()?;
    let bandwidth = rocmforge::exec::gpu::copy_bandwidth(dev.as_ref(), 1 << 30)?;
    let cache_dir = std::env::temp_dir().join(format!("rocmforge-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&cache_dir);
    let engine = Engine::builder().target(target.clone()).cache_dir(&cache_dir).build()?;
    let t = Instant::now();
    let cold = GpuModel::new(&model, dev, &engine)?;
    let cold_s = t.elapsed().as_secs_f64();
    let cold_report = cold.report.clone();
    let dev = rocmforge::device::open(device)?.expect("the device opened a moment ago");
    drop(cold);
    let engine = Engine::builder().target(target.clone()).cache_dir(&cache_dir).build()?;
    let t = Instant::now();
    let gpu = GpuModel::new(&model, dev, &engine)?;
    let warm_s = t.elapsed().as_secs_f64();
    let mut s = GpuSession::new(&gpu, capacity, DEFAULT_MAX_BATCH)?;
    let (prefill, decode) = time_passes(&mut s, &ids, gen, reps)?;
    let peak = gpu.device.memory_used()?.saturating_sub(mem_before);
    let decode_tps = gen as f64 / decode;
    let roofline = bandwidth / weight_bytes as f64;
    println!("device     {backend} {name} ({target}); copy bandwidth {:.0} GB/s", bandwidth / 1e9);
    println!(
        "jit        cold {cold_s:.2} s ({} compiled, {:.2} s compiling + {:.2} s upload) | warm {warm_s:.2} s ({} cached)",
        cold_report.kernels_compiled, cold_report.jit_seconds, cold_report.upload_seconds, gpu.report.kernels_cached
    );
    println!("prefill    {:.1} tokens/s ({} tokens, median of {reps})", prompt as f64 / prefill, prompt);
    println!(
        "decode     {decode_tps:.1} tokens/s ({gen} tokens); roofline {roofline:.0} tokens/s ({} per token at {:.0} GB/s): {:.0}% of it",
        human_bytes(weight_bytes),
        bandwidth / 1e9,
        100.0 * decode_tps / roofline
    );
    let ours = gpu.report.weight_bytes + s.allocated.kv_cache + s.allocated.activations;
    let bound = ((gpu.report.weight_bytes + s.allocated.kv_cache) as f64 * 1.1) as u64;
    println!(
        "memory     rocmforge holds {} on the device: weights {} + KV cache {} + activations {} ({} tokens a pass); bound weights + KV + 10% = {}: {}",
        human_bytes(ours),
        human_bytes(gpu.report.weight_bytes),
        human_bytes(s.allocated.kv_cache),
        human_bytes(s.allocated.activations),
        DEFAULT_MAX_BATCH,
        human_bytes(bound),
        if ours <= bound { "within" } else { "OVER" }
    );
    println!(
        "           the driver reports {} more in use than before loading (also the CUDA context's module code and stack reservations)",
        human_bytes(peak)
    );
    let _ = std::fs::remove_dir_all(&cache_dir);
    Ok(ExitCode::SUCCESS)
}
