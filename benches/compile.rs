//! Compile benchmarks: cold hipRTC compile time per kernel and for SmolLM2-135M's whole kernel set
//! (wall clock, parallel over the cores), and the warm load (every kernel a cache hit) of that set.
//!
//! cargo bench --bench compile [-- --targets gfx906,gfx90a,gfx1030]
//! Needs hipRTC and the fetched SmolLM2 (scripts/fetch_models.py smollm2).

use std::path::PathBuf;
use std::time::Instant;

use rocmforge::gguf::GgufFile;
use rocmforge::jit::{Compiler, Engine, HipRtc, Origin, Target};
use rocmforge::kernels::{render, KernelSpec};
use rocmforge::model::ModelConfig;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if !args.iter().any(|a| a == "--bench") {
        println!("compile bench: run with `cargo bench --bench compile`");
        return;
    }
    let targets = args
        .iter()
        .position(|a| a == "--targets")
        .and_then(|i| args.get(i + 1))
        .map(|s| Target::parse_list(s).expect("targets"))
        .unwrap_or_else(|| vec!["gfx90a".parse().unwrap()]);
    let models = std::env::var_os("ROCMFORGE_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache/rocmforge/models"));
    let model = models.join("SmolLM2-135M-Instruct.Q4_1.gguf");
    let file = GgufFile::open(&model).unwrap_or_else(|e| panic!("{e} (run scripts/fetch_models.py smollm2)"));
    let cfg = ModelConfig::from_gguf(&file).unwrap();
    let specs: Vec<KernelSpec> = rocmforge::exec::kernel_specs(&cfg, &file).unwrap().into_iter().collect();
    let rtc = HipRtc::load().expect("hipRTC");
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    println!("compiler: {}; {} cores; SmolLM2-135M: {} kernels", rtc.id(), cores, specs.len());

    // Cold compile per kernel: hipRTC straight, no cache; median of 3.
    let t0 = &targets[0];
    println!("\ncold compile per kernel, {t0} (median of 3):");
    let mut total = 0.0;
    for spec in &specs {
        let k = render(spec, t0.render_target()).unwrap();
        let times: Vec<f64> = (0..3)
            .map(|_| {
                let s = Instant::now();
                rtc.compile(&k.source, &k.entry, t0, &rtc.options(t0)).unwrap();
                s.elapsed().as_secs_f64()
            })
            .collect();
        let m = median(times);
        total += m;
        println!("  {:<32} {:>7.1} ms", k.entry, m * 1e3);
    }
    println!("  {:<32} {:>7.1} ms (serial sum)", "all", total * 1e3);

    // The whole set, cold: the CLI's warm, which spreads compiles over worker processes (hipRTC
    // compiles one at a time per process). Then warm loads through the Engine, all from disk.
    let dir = std::env::temp_dir().join(format!("rocmforge-bench-cache-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let list: Vec<String> = targets.iter().map(|t| t.to_string()).collect();
    let start = std::time::Instant::now();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rocmforge"))
        .args(["warm", "--target", &list.join(","), "--cache-dir"])
        .arg(&dir)
        .arg(&model)
        .output()
        .expect("rocmforge warm runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    println!(
        "\nwhole set cold: {} kernels for {} target(s) in {:.2} s wall ({} worker processes)",
        specs.len() * targets.len(),
        targets.len(),
        start.elapsed().as_secs_f64(),
        cores
    );
    let warm: Vec<f64> = (0..10)
        .map(|_| {
            // A new engine each time: an empty memory cache, so every kernel is read from disk.
            let e = Engine::builder().cache_dir(&dir).targets(targets.clone()).build().unwrap();
            let r = e.warm(&specs).unwrap();
            assert!(r.kernels.iter().all(|k| k.origin == Origin::Disk));
            r.wall.as_secs_f64()
        })
        .collect();
    println!("whole set warm (all cache hits): {:.2} ms median of 10", median(warm) * 1e3);
    let _ = std::fs::remove_dir_all(&dir);
}
