//! `rocmforge bench`: load, JIT, prefill and decode speed, decode against the bandwidth roofline.

use std::path::PathBuf;
use std::process::ExitCode;

use rocmforge::exec::gpu::{GpuModel, GpuSession, DEFAULT_MAX_BATCH};
use rocmforge::exec::{CpuPrecision, Forward, Model, Session};
use rocmforge::inspect::human_bytes;
use rocmforge::jit::Engine;

use super::generate::PrecisionArg;
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
    #[command(flatten)]
    pub precision: PrecisionArg,
}

pub fn main(a: BenchArgs) -> Result<ExitCode> {
    // Bounded by a 32-bit context, so prompt + gen + 1 cannot overflow.
    let max = u32::MAX as usize / 2;
    for (flag, v) in [("--prompt", a.prompt), ("--gen", a.gen)] {
        if v > max {
            return Err(format!("{flag} {v}: at most {max} tokens").into());
        }
    }
    if a.reps == 0 || a.reps > 1000 {
        return Err(format!("--reps {}: between 1 and 1000", a.reps).into());
    }
    super::generate::with_worker_threads(move || {
        bench(a.model, a.prompt, a.gen, a.reps, &a.device.device, a.precision.get())
    })
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

/// The host's memory read bandwidth in bytes/s: the best of 3 passes over a 1 GiB buffer (twice
/// the size of the largest caches seen on servers), read by every rayon thread.
fn host_read_bandwidth() -> f64 {
    use rayon::prelude::*;
    let buf = vec![1u64; 1 << 27];
    let mut best = f64::MAX;
    let mut sink = 0u64;
    for _ in 0..3 {
        let t = std::time::Instant::now();
        sink ^= buf.par_chunks(1 << 16).map(|c| c.iter().fold(0u64, |a, &b| a ^ b)).reduce(|| 0, |a, b| a ^ b);
        best = best.min(t.elapsed().as_secs_f64());
    }
    std::hint::black_box(sink);
    (buf.len() * 8) as f64 / best
}

fn bench(
    path: PathBuf,
    prompt: usize,
    gen: usize,
    reps: usize,
    device: &str,
    precision: CpuPrecision,
) -> Result<ExitCode> {
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
        let t = Instant::now();
        let mut s = Session::with_precision(&model, capacity, precision)?;
        let session_s = t.elapsed().as_secs_f64();
        let (prefill, decode) = time_passes(&mut s, &ids, gen, reps)?;
        let bandwidth = host_read_bandwidth();
        let amx = if rocmforge::quant::simd::amx_usable() { " + amx (prefill)" } else { "" };
        let isa = s.isa().map_or(String::new(), |i| format!(", {}{amx}", i.name()));
        println!(
            "device     cpu ({} threads, {}{isa}); memory read bandwidth {:.1} GB/s",
            rayon::current_num_threads(),
            precision.name(),
            bandwidth / 1e9
        );
        if s.copied_weight_bytes() > 0 {
            println!(
                "session    {session_s:.3} s (projection weights copied to 2 MiB pages: {})",
                human_bytes(s.copied_weight_bytes() as u64)
            );
        }
        println!("prefill    {:.1} tokens/s ({} tokens, median of {reps})", prompt as f64 / prefill, prompt);
        let decode_tps = gen as f64 / decode;
        let roofline = bandwidth / weight_bytes as f64;
        println!(
            "decode     {decode_tps:.1} tokens/s ({gen} tokens); roofline {roofline:.0} tokens/s ({} per token at {:.1} GB/s): {:.0}% of it",
            human_bytes(weight_bytes),
            bandwidth / 1e9,
            100.0 * decode_tps / roofline
        );
        return Ok(ExitCode::SUCCESS);
    };
    let backend = dev.backend();
    let name = dev.name().to_string();
    let target = dev.target().cloned().ok_or("bench measures GPUs; use --device cpu for the CPU")?;
    let mem_before = dev.memory_used()?;
    let bandwidth = rocmforge::exec::gpu::copy_bandwidth(&dev, 1 << 30)?;
    // A fresh private folder (random name, 0700) for the cold compile; removed when dropped.
    let scratch = tempfile::Builder::new().prefix("rocmforge-bench-").tempdir()?;
    let cache_dir = scratch.path().join("kernels");
    let progress = super::progress::JitProgress::new();
    let engine =
        Engine::builder().target(target.clone()).cache_dir(&cache_dir).progress(progress.for_engine()).build()?;
    let t = Instant::now();
    let cold = GpuModel::new(&model, dev.clone(), &engine)?;
    let cold_s = t.elapsed().as_secs_f64();
    let cold_report = cold.report.clone();
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
    println!("replay     {}", s.replay_summary());
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
    drop(scratch);
    Ok(ExitCode::SUCCESS)
}
