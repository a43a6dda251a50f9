//! Compile a model's kernels for a list of GPU targets into a kernel cache, without a GPU — e.g.
//! to ship a warmed cache with an application so that its users never wait for the JIT.
//!
//! usage: cargo run --example warm_cache -- MODEL.gguf gfx90a,gfx1030,sm_90 [CACHE_DIR]

use rocmforge::gguf::GgufFile;
use rocmforge::jit::{Engine, Origin, Target};
use rocmforge::model::ModelConfig;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: warm_cache MODEL.gguf TARGET[,TARGET…] [CACHE_DIR]";
    let model = args.next().ok_or(usage)?;
    let targets: Vec<Target> = args.next().ok_or(usage)?.split(',').map(str::parse).collect::<Result<_, _>>()?;

    let file = GgufFile::open(&model)?;
    let config = ModelConfig::from_gguf(&file)?;
    // Every kernel a session of the model runs: the graph's, and the fused int8 decode's.
    let specs: Vec<_> = rocmforge::exec::kernel_specs(&config, &file)?.into_iter().collect();

    let mut engine = Engine::builder().targets(targets.clone());
    if let Some(dir) = args.next() {
        engine = engine.cache_dir(dir);
    }
    let engine = engine
        .progress(|p| {
            let how = if p.kernel.origin == Origin::Compiled { "compiled" } else { "cached" };
            eprintln!("[{}/{}] {how} {} for {}", p.done, p.total, p.kernel.entry, p.kernel.target);
        })
        .build()?; // loads hipRTC / NVRTC and refuses targets they cannot compile for
    let report = engine.warm(&specs)?;
    println!(
        "{} kernels for {} target(s): {} compiled now, the rest were cached, in {}",
        report.kernels.len(),
        targets.len(),
        report.compiled(),
        engine.cache().root().map(|p| p.display().to_string()).unwrap_or_else(|| "memory".into())
    );
    Ok(())
}
