//! `rocmforge cache`: list, verify, collect, clear, export and import the kernel cache.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use rocmforge::inspect::human_bytes;
use rocmforge::jit::{Engine, KernelCache};
use rocmforge::kernels::render;

use super::Result;

#[derive(clap::Args)]
pub struct CacheArgs {
    #[command(subcommand)]
    pub action: CacheAction,
    /// Cache root (default: ROCMFORGE_CACHE_DIR, else ~/.cache/rocmforge/kernels).
    #[arg(long, global = true)]
    pub cache_dir: Option<PathBuf>,
    /// The cache folder is shared on purpose: accept one owned by another user or writable by
    /// the group (entries are still checked whole). Also ROCMFORGE_CACHE_SHARED=1.
    #[arg(long, global = true)]
    pub shared_cache: bool,
}

#[derive(Subcommand)]
pub enum CacheAction {
    /// List entries: kernel, target, compiler, size.
    Ls,
    /// Check every entry whole (hash, header fields against its key, the code object against its
    /// target and entry point, owner and mode); exit 1 if any is bad (bad entries are recompiled
    /// when next used, and removed by gc).
    Verify,
    /// Remove bad entries and stale temporary files, then the oldest entries until the cache
    /// fits in SIZE (e.g. 500M, 2G).
    Gc {
        #[arg(long)]
        max_size: String,
    },
    /// Remove every entry.
    Clear,
    /// Write the cached kernels of MODELs for the given targets, with a manifest, to a tar file
    /// (warm them first); `cache import` on another machine installs them.
    Export {
        /// The bundle to write (a tar file).
        out: PathBuf,
        /// Comma-separated targets, as for `warm`.
        #[arg(long, value_delimiter = ',', required = true)]
        target: Vec<String>,
        /// The GGUF models whose kernels to export.
        #[arg(required = true)]
        models: Vec<PathBuf>,
    },
    /// Install a bundle written by `cache export`, refusing it whole (writing nothing) unless its
    /// manifest matches its entries and every entry checks out.
    Import {
        /// The bundle (a tar file).
        input: PathBuf,
    },
}

pub fn main(a: CacheArgs) -> Result<ExitCode> {
    cache(a.action, a.cache_dir, a.shared_cache || KernelCache::shared_from_env())
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

fn cache(action: CacheAction, cache_dir: Option<PathBuf>, shared: bool) -> Result<ExitCode> {
    let dir = cache_dir.unwrap_or_else(KernelCache::default_root);
    let cache = KernelCache::open_with(&dir, shared)?;
    let root = dir.display().to_string();
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
        CacheAction::Export { out, target, models } => export(&dir, shared, &out, &target, &models),
        CacheAction::Import { input } => {
            let manifest = rocmforge::jit::import_bundle(&cache, &input)?;
            println!("imported {} entries from {} into {root}", manifest.entries.len(), input.display());
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `cache export`: every kernel of every model for every target must be cached and check out.
fn export(
    dir: &std::path::Path,
    shared: bool,
    out: &std::path::Path,
    targets: &[String],
    models: &[PathBuf],
) -> Result<ExitCode> {
    let targets = super::warm::parse_targets(targets)?;
    let engine = Engine::builder().targets(targets.clone()).cache_dir(dir).shared_cache(shared).build()?;
    let mut entries = Vec::new();
    let mut keys = std::collections::BTreeSet::new();
    let mut missing = Vec::new();
    for model in models {
        for spec in super::warm::model_specs(model)? {
            for target in &targets {
                let compiler = engine.compiler_for(target)?;
                let rendered = render(&spec, target.render_target())?;
                match engine.cache().entry_file(compiler.as_ref(), target, &rendered.entry, &rendered.source) {
                    Ok(Some((key, header, file))) => {
                        if keys.insert(key) {
                            entries.push((header, file));
                        }
                    }
                    Ok(None) => missing.push(format!("{target} {spec} (not cached)")),
                    Err(bad) => missing.push(format!("{target} {spec} (bad entry: {bad})")),
                }
            }
        }
    }
    if !missing.is_empty() {
        return Err(format!(
            "{} kernels cannot be exported; run `rocmforge warm` for these models and targets first:\n  {}",
            missing.len(),
            missing.join("\n  ")
        )
        .into());
    }
    let manifest = rocmforge::jit::write_bundle(out, &entries)?;
    let bytes: u64 = manifest.entries.iter().map(|e| e.bytes).sum();
    println!("exported {} entries ({}) to {}", manifest.entries.len(), human_bytes(bytes), out.display());
    Ok(ExitCode::SUCCESS)
}
