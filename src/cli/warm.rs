//! `rocmforge kernels` and `rocmforge warm`: the kernels a model needs, compiled offline for a
//! list of targets.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use rocmforge::gguf::GgufFile;
use rocmforge::jit::{Engine, Origin, Target};
use rocmforge::kernels::{render, KernelSpec};
use rocmforge::model::ModelConfig;

use super::Result;

#[derive(clap::Args)]
pub struct KernelsArgs {
    /// The GGUF model file.
    pub model: PathBuf,
    /// Print the rendered source of this entry point (e.g. mmv_q4_k_k4096).
    #[arg(long)]
    pub source: Option<String>,
    /// The target to render for (its dialect and warp size shape the source).
    #[arg(long, default_value = "gfx90a")]
    pub target: String,
}

#[derive(clap::Args)]
pub struct WarmArgs {
    /// The GGUF model file.
    pub model: PathBuf,
    /// Comma-separated targets: gfx906, gfx90a, gfx90a:sramecc+:xnack-, gfx1030, sm_90, …
    #[arg(long, value_delimiter = ',', required = true)]
    pub target: Vec<String>,
    /// Compile nothing; exit 1 listing every kernel not yet in the cache.
    #[arg(long)]
    pub check: bool,
    /// Print each kernel's VGPRs, SGPRs, LDS, scratch and spills (AMD targets).
    #[arg(long)]
    pub report: bool,
    /// Parallel compile jobs, each a compiler process (default: the number of cores; at most 4
    /// per core).
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Cache root (default: ROCMFORGE_CACHE_DIR, else ~/.cache/rocmforge/kernels).
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
    /// The cache folder is shared on purpose (see `rocmforge cache --help`); also
    /// ROCMFORGE_CACHE_SHARED=1.
    #[arg(long)]
    pub shared_cache: bool,
    /// Internal: compile only share I of N (`I/N`); the worker processes of a parallel warm.
    #[arg(long, hide = true)]
    pub shard: Option<String>,
}

pub fn kernels_main(a: KernelsArgs) -> Result<ExitCode> {
    kernels(a.model, a.source, &a.target)
}

pub fn main(a: WarmArgs) -> Result<ExitCode> {
    let shared = a.shared_cache || rocmforge::jit::KernelCache::shared_from_env();
    let jobs = check_jobs(a.jobs)?;
    warm(a.model, &a.target, a.check, a.report, jobs, a.cache_dir, shared, a.shard.as_deref())
}

/// `--jobs`: each job is a compiler process of a few hundred MB, so more than 4 per core only
/// starves the machine.
fn check_jobs(jobs: Option<usize>) -> Result<usize> {
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let max = 4 * cores;
    match jobs {
        None => Ok(cores),
        Some(0) => Err("--jobs 0: at least one job is needed".into()),
        Some(n) if n > max => Err(format!(
            "--jobs {n} is too many: at most {max} on this machine (4 per core, {cores} cores); each job is a compiler process"
        )
        .into()),
        Some(n) => Ok(n),
    }
}

/// The model's distinct kernel specs (prefill and decode), for both KV cache precisions (`--kv`),
/// so a warmed cache serves either.
pub(super) fn model_specs(model: &PathBuf) -> Result<Vec<KernelSpec>> {
    let file = GgufFile::open(model)?;
    let cfg = ModelConfig::from_gguf(&file).map_err(|e| format!("{}: {e}", model.display()))?;
    let specs = rocmforge::exec::kernel_specs(&cfg, &file)?;
    // A set: two specs may map to one (flash attention falls back to the general kernel over f32).
    let f32_kv: std::collections::BTreeSet<KernelSpec> =
        specs.iter().map(|s| s.with_kv(rocmforge::kernels::KvPrecision::F32)).collect();
    let mut all: Vec<KernelSpec> = specs.iter().copied().collect();
    all.extend(f32_kv.into_iter().filter(|s| !specs.contains(s)));
    Ok(all)
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

pub(super) fn parse_targets(list: &[String]) -> Result<Vec<Target>> {
    Ok(list.iter().map(|t| t.trim().parse::<Target>()).collect::<std::result::Result<_, _>>()?)
}

#[allow(clippy::too_many_arguments)]
fn warm(
    model: PathBuf,
    targets: &[String],
    check: bool,
    report: bool,
    jobs: usize,
    cache_dir: Option<PathBuf>,
    shared: bool,
    shard: Option<&str>,
) -> Result<ExitCode> {
    let target_list = parse_targets(targets)?;
    let specs = model_specs(&model)?;
    let mut builder = Engine::builder().targets(target_list.clone()).jobs(jobs).shared_cache(shared);
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
            if shared {
                c.arg("--shared-cache");
            }
            match c.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).spawn() {
                Ok(child) => children.push(child),
                // Workers are a speed-up: where the system refuses more processes, the shards
                // that did not start are compiled below, in this process.
                Err(e) => {
                    eprintln!("warning: started {i} of {jobs} compile workers ({e}); this process compiles the rest");
                    break;
                }
            }
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
    use std::io::IsTerminal;
    use std::sync::atomic::{AtomicUsize, Ordering};
    if !std::io::stderr().is_terminal() {
        // A log, not a screen: a line at each quarter and at the end, no carriage returns.
        static LAST_QUARTER: AtomicUsize = AtomicUsize::new(usize::MAX);
        let quarter = done * 4 / total.max(1);
        if LAST_QUARTER.swap(quarter, Ordering::Relaxed) != quarter {
            eprintln!("{done}/{total} {what}");
        }
        return;
    }
    let width = 30;
    let filled = done * width / total.max(1);
    eprint!("\r[{}{}] {done}/{total} {what:<60}", "#".repeat(filled), " ".repeat(width - filled));
    let _ = std::io::stderr().flush();
}
