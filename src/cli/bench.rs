//! `rocmforge bench`: load, JIT, prefill and decode speed, decode against the bandwidth roofline,
//! measured as llama-bench measures: prefill of `--prompt` tokens (pp @ depth) and `--gen`
//! decoded tokens (tg @ depth), each after `--depth` tokens of context (llama-bench's `-d`).
//! `--json` prints the results as one JSON object on stdout (the human lines go to stderr).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use rocmforge::exec::gpu::{GpuModel, GpuSession, OpTime, DEFAULT_MAX_BATCH};
use rocmforge::exec::{CpuPrecision, Forward, Model, Session};
use rocmforge::inspect::human_bytes;
use rocmforge::jit::Engine;
use rocmforge::kernels::KvPrecision;
use serde_json::json;

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
    /// Tokens of context before the prefill and before decoding, one prefill and one decode run per
    /// value (comma-separated: 0,512,4096), as llama-bench's `-d`.
    #[arg(long, value_delimiter = ',', default_value = "0")]
    pub depth: Vec<usize>,
    /// Prefill repetitions at each depth, after one untimed warm-up run as llama-bench's (the median is reported).
    #[arg(long, default_value_t = 3)]
    pub reps: usize,
    /// Print the results as one JSON object on stdout (model, device, pp and tg tokens/s per
    /// depth, memory); the human-readable lines go to stderr.
    #[arg(long)]
    pub json: bool,
    /// Time each op of one decode step at the deepest --depth (GPU only): per op, the time per token
    /// summed over the layers, and the bandwidth the matrix-vector products and attention reach;
    /// then each op of one prefill pass from an empty cache.
    #[arg(long)]
    pub profile: bool,
    #[command(flatten)]
    pub device: DeviceArg,
    #[command(flatten)]
    pub precision: PrecisionArg,
}

pub fn main(a: BenchArgs) -> Result<ExitCode> {
    // Bounded by a 32-bit context, so depth + max(prompt, gen) + 1 cannot overflow.
    let max = u32::MAX as usize / 2;
    let depth = a.depth.iter().copied().max().unwrap_or(0);
    for (flag, v) in [("--prompt", a.prompt), ("--gen", a.gen), ("--depth", depth)] {
        if v > max {
            return Err(format!("{flag} {v}: at most {max} tokens").into());
        }
    }
    if a.reps == 0 || a.reps > 1000 {
        return Err(format!("--reps {}: between 1 and 1000", a.reps).into());
    }
    if a.depth.is_empty() {
        return Err("--depth needs at least one value".into());
    }
    if a.profile && a.device.device == "cpu" {
        return Err("--profile times GPU kernels; the CPU device has none".into());
    }
    super::generate::with_worker_threads(move || bench(&a, a.precision.get()))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Seconds to prefill `ids` from an empty cache (median of `reps`).
/// Seconds to prefill `prompt` tokens after `depth` tokens of context (the first `depth` of
/// `context`, prefilled untimed; the prompt is the `prompt` tokens after them), median of `reps`.
fn time_prefill(s: &mut dyn Forward, context: &[u32], depth: usize, prompt: usize, reps: usize) -> Result<f64> {
    let mut prefill = Vec::new();
    // One untimed run first, as llama-bench's warm-up: it also builds the passes' graphs.
    for rep in 0..=reps.max(1) {
        s.reset();
        if depth > 0 {
            s.forward_argmax(&context[..depth])?;
        }
        let t = Instant::now();
        s.forward_argmax(&context[depth..depth + prompt])?;
        if rep > 0 {
            prefill.push(t.elapsed().as_secs_f64());
        }
    }
    Ok(median(prefill))
}

/// Seconds to decode `gen` greedy tokens (the argmax fed back) after `depth` tokens of context
/// (the first `depth` of `context`, prefilled untimed).
fn time_decode(s: &mut dyn Forward, context: &[u32], depth: usize, gen: usize) -> Result<f64> {
    s.reset();
    let mut next = context[depth % context.len()];
    if depth > 0 {
        next = s.forward_argmax(&context[..depth])?;
    }
    let t = Instant::now();
    for _ in 0..gen {
        next = s.forward_argmax(&[next])?;
    }
    Ok(t.elapsed().as_secs_f64())
}

/// The host's memory read bandwidth in bytes/s: the best of 3 passes over a 1 GiB buffer (twice
/// the size of the largest caches seen on servers), read by every rayon thread.
fn host_read_bandwidth() -> f64 {
    use rayon::prelude::*;
    let buf = vec![1u64; 1 << 27];
    let mut best = f64::MAX;
    let mut sink = 0u64;
    for _ in 0..3 {
        let t = Instant::now();
        sink ^= buf.par_chunks(1 << 16).map(|c| c.iter().fold(0u64, |a, &b| a ^ b)).reduce(|| 0, |a, b| a ^ b);
        best = best.min(t.elapsed().as_secs_f64());
    }
    std::hint::black_box(sink);
    (buf.len() * 8) as f64 / best
}

/// Human-readable lines: stdout, or stderr when stdout carries the JSON.
struct Out {
    json: bool,
}

impl Out {
    fn line(&self, s: String) {
        if self.json {
            eprintln!("{s}");
        } else {
            println!("{s}");
        }
    }
}

/// Seeded random token ids, so runs compare.
fn random_ids(n: usize, n_vocab: u32) -> Vec<u32> {
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    (0..n.max(1))
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % n_vocab as u64) as u32
        })
        .collect()
}

/// What every run measures, on any device.
struct Measured {
    /// (depth, tokens/s)
    prefill_tps: Vec<(usize, f64)>,
    /// (depth, tokens/s)
    decode_tps: Vec<(usize, f64)>,
}

/// Prefill once to warm the kernels and caches, then pp and tg at each depth.
fn measure(s: &mut dyn Forward, ids: &[u32], a: &BenchArgs, out: &Out) -> Result<Measured> {
    s.reset();
    s.forward_argmax(&ids[..1])?;
    let prompt = a.prompt.max(1);
    let mut prefill_tps = Vec::new();
    for &depth in &a.depth {
        let tps = prompt as f64 / time_prefill(s, ids, depth, prompt, a.reps)?;
        out.line(format!("prefill    {tps:.1} tokens/s ({prompt} tokens @ depth {depth}, median of {})", a.reps));
        prefill_tps.push((depth, tps));
    }
    let mut decode_tps = Vec::new();
    for &depth in &a.depth {
        let t = time_decode(s, ids, depth, a.gen)?;
        decode_tps.push((depth, a.gen as f64 / t));
    }
    Ok(Measured { prefill_tps, decode_tps })
}

fn decode_lines(m: &Measured, gen: usize, weight_bytes: u64, bandwidth: f64, what: &str, out: &Out) {
    let roofline = bandwidth / weight_bytes as f64;
    for &(depth, tps) in &m.decode_tps {
        out.line(format!(
            "decode     {tps:.1} tokens/s ({gen} tokens @ depth {depth}); roofline {roofline:.0} tokens/s ({} per token at {:.1} GB/s {what}): {:.0}% of it",
            human_bytes(weight_bytes),
            bandwidth / 1e9,
            100.0 * tps / roofline
        ));
    }
}

fn pp_json(m: &Measured, prompt: usize, reps: usize) -> serde_json::Value {
    m.prefill_tps
        .iter()
        .map(|&(depth, tps)| json!({ "depth": depth, "tokens": prompt, "reps": reps, "tokens_per_s": tps }))
        .collect()
}

fn tg_json(m: &Measured, gen: usize) -> serde_json::Value {
    m.decode_tps.iter().map(|&(depth, tps)| json!({ "depth": depth, "tokens": gen, "tokens_per_s": tps })).collect()
}

/// One op of a profiled decode step, summed over the layers.
struct ProfileRow {
    /// The node name without `blk.N.` (`attn_q`).
    op: String,
    kernels: Vec<String>,
    launches: usize,
    seconds: f64,
    /// Bytes it must move, where the op streams memory.
    bytes: Option<u64>,
}

/// The launches of a decode step grouped by op: `blk.N.` dropped from node names.
fn profile_rows(ops: &[OpTime]) -> Vec<ProfileRow> {
    let mut rows: Vec<ProfileRow> = Vec::new();
    for op in ops {
        let name = match op.node.strip_prefix("blk.") {
            Some(rest) => rest.split_once('.').map_or(rest, |(_, n)| n).to_string(),
            None => op.node.clone(),
        };
        let i = match rows.iter().position(|r| r.op == name) {
            Some(i) => i,
            None => {
                rows.push(ProfileRow { op: name, kernels: Vec::new(), launches: 0, seconds: 0.0, bytes: Some(0) });
                rows.len() - 1
            }
        };
        let row = &mut rows[i];
        if !row.kernels.contains(&op.kernel) {
            row.kernels.push(op.kernel.clone());
        }
        row.launches += 1;
        row.seconds += op.seconds;
        row.bytes = row.bytes.zip(op.bytes).map(|(a, b)| a + b);
    }
    rows
}

/// Back-to-back runs of each profiled launch.
const REPS: usize = 20;

/// Profiles one decode step after `depth` tokens of context, and one prefill pass of a session's
/// batch (or the prompt, if shorter) from position 0, and prints them; the JSON rows.
fn profile(s: &mut GpuSession, ids: &[u32], depth: usize, out: &Out) -> Result<serde_json::Value> {
    s.reset();
    let next = if depth > 0 { s.forward_argmax(&ids[..depth])? } else { ids[0] };
    let ops = s.profile_decode(next, REPS)?;
    let decode = profile_table(&ops, &format!("one decode step @ depth {depth}"), "us/token", out);
    s.reset();
    let n = s.max_batch().min(ids.len());
    let prefill = match n >= 2 {
        true => {
            let ops = s.profile_prefill(&ids[..n], REPS)?;
            Some(profile_table(&ops, &format!("one prefill pass of {n} tokens @ depth 0"), "us/pass", out))
        }
        false => None,
    };
    s.reset();
    Ok(json!({ "depth": depth, "reps": REPS, "decode": decode, "prefill": prefill, "prefill_tokens": n }))
}

/// Prints one profiled pass as a table of ops (`unit`: per token, or per pass); its JSON rows.
fn profile_table(ops: &[OpTime], what: &str, unit: &str, out: &Out) -> serde_json::Value {
    let rows = profile_rows(ops);
    let total: f64 = rows.iter().map(|r| r.seconds).sum();
    out.line(format!(
        "profile    {what}: each launch alone ({REPS} back to back between syncs), {:.1} us in all",
        total * 1e6
    ));
    out.line(format!("           {:<32} {:>8} {:>10} {:>6} {:>9}  kernels", "op", "launches", unit, "share", "GB/s"));
    let mut j = Vec::new();
    for r in &rows {
        let gbs = r.bytes.map(|b| b as f64 / r.seconds / 1e9);
        out.line(format!(
            "           {:<32} {:>8} {:>10.1} {:>5.1}% {:>9}  {}",
            r.op,
            r.launches,
            r.seconds * 1e6,
            100.0 * r.seconds / total,
            gbs.map_or("-".to_string(), |g| format!("{g:.0}")),
            r.kernels.join(" ")
        ));
        j.push(json!({
            "op": r.op,
            "kernels": r.kernels,
            "launches": r.launches,
            "us": r.seconds * 1e6,
            "bytes": r.bytes,
            "gb_per_s": gbs,
        }));
    }
    json!({ "us": total * 1e6, "ops": j })
}

fn bench(a: &BenchArgs, precision: CpuPrecision) -> Result<ExitCode> {
    let out = Out { json: a.json };
    let path: &Path = &a.model;
    let t = Instant::now();
    let model = Model::load(path)?;
    let load_s = t.elapsed().as_secs_f64();
    let cfg = &model.config;
    let max_depth = a.depth.iter().copied().max().unwrap_or(0);
    // Prefill and decode each run after the deepest context: the prompt's tokens (or the decoded
    // ones) follow it.
    let ids = random_ids(max_depth + a.prompt.max(1), cfg.n_vocab);
    let capacity = max_depth + a.prompt.max(a.gen).max(1) + 1;
    let weight_bytes = rocmforge::exec::gpu::decode_weight_bytes(&model);
    out.line(format!(
        "model      {} ({}, {} layers, {} weight bytes read per decoded token)",
        path.display(),
        cfg.arch.name(),
        cfg.n_layer,
        human_bytes(weight_bytes)
    ));
    out.line(format!("load       {load_s:.3} s (map + validate + graphs)"));
    let model_json = json!({
        "path": path.display().to_string(),
        "arch": cfg.arch.name(),
        "n_layer": cfg.n_layer,
        "weight_bytes_per_token": weight_bytes,
        "load_s": load_s,
    });
    let Some(dev) = rocmforge::device::open(&a.device.device)? else {
        let t = Instant::now();
        let mut s = Session::with_precision(&model, capacity, precision)?;
        let session_s = t.elapsed().as_secs_f64();
        let bandwidth = host_read_bandwidth();
        let amx = if rocmforge::quant::simd::amx_usable() { " + amx (prefill)" } else { "" };
        let isa = s.isa().map_or(String::new(), |i| format!(", {}{amx}", i.name()));
        let device_line = format!("cpu ({} threads, {}{isa})", rayon::current_num_threads(), precision.name());
        out.line(format!("device     {device_line}; memory read bandwidth {:.1} GB/s", bandwidth / 1e9));
        if s.copied_weight_bytes() > 0 {
            out.line(format!(
                "session    {session_s:.3} s (projection weights copied to 2 MiB pages: {})",
                human_bytes(s.copied_weight_bytes() as u64)
            ));
        }
        let m = measure(&mut s, &ids, a, &out)?;
        decode_lines(&m, a.gen, weight_bytes, bandwidth, "read", &out);
        // The CPU session keeps its cache in f32: capacity × (K + V widths) per layer.
        let plan = &model.decode.buffers;
        let kv_bytes = (plan.n_layer * capacity * (plan.kv_width + plan.v_width) * 4) as u64;
        out.line(format!(
            "memory     KV cache {} (f32, {capacity} positions); weights mapped from the file: {}",
            human_bytes(kv_bytes),
            human_bytes(model.weight_bytes())
        ));
        if a.json {
            let j = json!({
                "model": model_json,
                "device": { "backend": "cpu", "name": device_line, "kv": "f32" },
                "bandwidth_bytes_per_s": bandwidth,
                "roofline_tokens_per_s": bandwidth / weight_bytes as f64,
                "pp": pp_json(&m, a.prompt.max(1), a.reps),
                "tg": tg_json(&m, a.gen),
                "memory": { "weights": model.weight_bytes(), "kv_cache": kv_bytes, "capacity": capacity },
            });
            println!("{j}");
        }
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
    let kv: KvPrecision = a.device.kv;
    let engine =
        Engine::builder().target(target.clone()).cache_dir(&cache_dir).progress(progress.for_engine()).build()?;
    let t = Instant::now();
    let cold = GpuModel::with_kv(&model, dev.clone(), &engine, kv)?;
    let cold_s = t.elapsed().as_secs_f64();
    let cold_report = cold.report.clone();
    drop(cold);
    let engine = Engine::builder().target(target.clone()).cache_dir(&cache_dir).build()?;
    let t = Instant::now();
    let mut gpu = GpuModel::with_kv(&model, dev, &engine, kv)?;
    gpu.precision = a.device.gpu_precision;
    let warm_s = t.elapsed().as_secs_f64();
    let mut s = GpuSession::new(&gpu, capacity, DEFAULT_MAX_BATCH)?;
    out.line(format!(
        "device     {backend} {name} ({target}); copy bandwidth {:.0} GB/s; KV cache {}; decode {}; prefill products {}",
        bandwidth / 1e9,
        kv.name(),
        a.device.gpu_precision.name(),
        gpu.prefill.name(a.device.gpu_precision)
    ));
    out.line(format!(
        "jit        cold {cold_s:.2} s ({} compiled, {:.2} s compiling + {:.2} s upload) | warm {warm_s:.2} s ({} cached)",
        cold_report.kernels_compiled, cold_report.jit_seconds, cold_report.upload_seconds, gpu.report.kernels_cached
    ));
    let m = measure(&mut s, &ids, a, &out)?;
    decode_lines(&m, a.gen, weight_bytes, bandwidth, "copy", &out);
    out.line(format!("replay     decode: {}", s.replay_summary()));
    out.line(format!("           prefill: {}", s.prefill_replay_summary()));
    let profiled = match a.profile {
        true => Some(profile(&mut s, &ids, max_depth, &out)?),
        false => None,
    };
    let peak = gpu.device.memory_used()?.saturating_sub(mem_before);
    let ours = gpu.report.weight_bytes + s.allocated.kv_cache + s.allocated.activations;
    let bound = ((gpu.report.weight_bytes + s.allocated.kv_cache) as f64 * 1.1) as u64;
    out.line(format!(
        "memory     rocmforge holds {} on the device: weights {} + KV cache {} ({}, {capacity} positions) + activations {} ({} tokens a pass); bound weights + KV + 10% = {}: {}",
        human_bytes(ours),
        human_bytes(gpu.report.weight_bytes),
        human_bytes(s.allocated.kv_cache),
        kv.name(),
        human_bytes(s.allocated.activations),
        s.max_batch(),
        human_bytes(bound),
        if ours <= bound { "within" } else { "OVER" }
    ));
    out.line(format!(
        "           the driver reports {} more in use than before loading (also the CUDA context's module code and stack reservations)",
        human_bytes(peak)
    ));
    if a.json {
        let j = json!({
            "model": model_json,
            "device": { "backend": backend, "name": name, "target": target.to_string(), "kv": kv.name() },
            "bandwidth_bytes_per_s": bandwidth,
            "roofline_tokens_per_s": bandwidth / weight_bytes as f64,
            "jit": {
                "cold_s": cold_s,
                "warm_s": warm_s,
                "compiled": cold_report.kernels_compiled,
                "cached": gpu.report.kernels_cached,
            },
            "pp": pp_json(&m, a.prompt.max(1), a.reps),
            "tg": tg_json(&m, a.gen),
            "memory": {
                "weights": gpu.report.weight_bytes,
                "kv_cache": s.allocated.kv_cache,
                "activations": s.allocated.activations,
                "total": ours,
                "bound": bound,
                "within": ours <= bound,
                "capacity": capacity,
                "driver_reported": peak,
            },
            "profile": profiled,
        });
        println!("{j}");
    }
    drop(scratch);
    Ok(ExitCode::SUCCESS)
}
