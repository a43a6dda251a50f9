//! `rocmforge cache`: list, verify, collect and clear the kernel cache.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use rocmforge::inspect::human_bytes;
use rocmforge::jit::KernelCache;

use super::Result;

#[derive(clap::Args)]
pub struct CacheArgs {
    #[command(subcommand)]
    pub action: CacheAction,
    /// Cache root (default: ROCMFORGE_CACHE_DIR, else ~/.cache/rocmforge/kernels).
    #[arg(long, global = true)]
    pub cache_dir: Option<PathBuf>,
}

#[derive(Subcommand)]
pub enum CacheAction {
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

pub fn main(a: CacheArgs) -> Result<ExitCode> {
    cache(a.action, a.cache_dir)
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
