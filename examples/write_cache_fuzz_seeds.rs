//! Writes a seed corpus for `cargo fuzz run cache_entry`: real cache entries (a small kernel
//! compiled by hipRTC for gfx906, gfx90a:sramecc+:xnack- and gfx1030, when hipRTC loads) and
//! entries around minimal code objects for AMD and NVIDIA targets; each as the whole file, as the
//! file without its trailing hash (the fuzz target seals it again), and as the bare code object.
//!
//! usage: cargo run --example write_cache_fuzz_seeds -- DIR

use rocmforge::jit::{minimal_code_object, parse_entry, Compiler, CompilerId, HipRtc, JitError, KernelCache, Target};
use rocmforge::kernels::Dialect;

/// Stands in for NVRTC (not on this machine) and for targets hipRTC 5.2 cannot take.
struct Minimal(CompilerId);

impl Compiler for Minimal {
    fn id(&self) -> &CompilerId {
        &self.0
    }
    fn dialect(&self) -> Dialect {
        Dialect::Cuda
    }
    fn check_target(&self, _: &Target) -> Result<(), JitError> {
        Ok(())
    }
    fn options(&self, target: &Target) -> Vec<String> {
        vec![format!("--gpu-architecture={target}")]
    }
    fn compile(&self, _: &str, entry: &str, target: &Target, _: &[String]) -> Result<Vec<u8>, JitError> {
        Ok(minimal_code_object(target, entry))
    }
}

const SOURCE: &str = r#"extern "C" __global__ void scale(float* x, float s) { x[threadIdx.x] *= s; }"#;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::path::PathBuf::from(std::env::args().nth(1).ok_or("usage: write_cache_fuzz_seeds DIR")?);
    std::fs::create_dir_all(&dir)?;
    let scratch = tempfile::tempdir()?;
    let cache = KernelCache::open(scratch.path().join("cache"))?;
    match HipRtc::load() {
        Ok(hip) => {
            for t in ["gfx906", "gfx90a:sramecc+:xnack-", "gfx1030"] {
                cache.get_or_compile(&hip, &t.parse()?, "scale", SOURCE)?;
            }
        }
        Err(e) => eprintln!("no hipRTC ({e}): synthetic seeds only"),
    }
    let minimal = Minimal(CompilerId { name: "nvrtc", version: "seed".into() });
    for t in ["sm_90", "sm_100a", "gfx1100", "gfx942:xnack+"] {
        cache.get_or_compile(&minimal, &t.parse()?, "scale", SOURCE)?;
    }
    let mut n = 0;
    for e in cache.list() {
        let file = std::fs::read(&e.path)?;
        let (header, payload) = parse_entry(&file).map_err(|b| format!("{}: {b}", e.path.display()))?;
        let stem = format!("{}-{}", header.target.replace(':', "_"), header.entry);
        std::fs::write(dir.join(format!("{stem}.rfk")), &file)?;
        std::fs::write(dir.join(format!("{stem}.unsealed")), &file[..file.len() - 32])?;
        std::fs::write(dir.join(format!("{stem}.elf")), payload)?;
        n += 3;
    }
    println!("wrote {n} seeds to {}", dir.display());
    Ok(())
}
