//! `rocmforge bench`: load, JIT, prefill and decode speed, decode against the bandwidth roofline.

use std::path::PathBuf;
use std::process::ExitCode;

use rocmforge::exec::gpu::{GpuModel, GpuSession, DEFAULT_MAX_BATCH};
use rocmforge::exec::{Forward, Model, Session};
use rocmforge::inspect::human_bytes;
use rocmforge::jit::Engine;

use super::{DeviceArg, Result};

#[derive(clap::Args)]
pub struct BenchArgs {
    /// The GGUF model file.
    pub model: PathBuf,
    /// Prompt tokens to prefill (random ids, seeded).
    #[arg(long, default_value_t = 512)]
    pub prompt: usize,
    /// Tokens to decode (greedy, the argmax fed back).
    #[arg(long, default_value_t = 128)]
    pub gen: usize,
    /// Prefill repetitions (the median is reported).
    #[arg(long, default_value_t = 3)]
    pub reps: usize,
    #[command(flatten)]
    pub device: DeviceArg,
}

pub fn main(a: BenchArgs) -> Result<ExitCode> {
    bench(a.model, a.prompt, a.gen, a.reps, &a.device.device)
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
    let progress = super::progress::JitProgress::new();
    let engine =
        Engine::builder().target(target.clone()).cache_dir(&cache_dir).progress(progress.for_engine()).build()?;
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
