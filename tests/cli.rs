//! The command line as a user meets it: warming the real SmolLM2 for three AMD targets, checking
//! the cache, refusing targets cleanly, and help that teaches.

mod common;

use std::process::Command;

fn rocmforge() -> Command {
    Command::new(env!("CARGO_BIN_EXE_rocmforge"))
}

#[test]
fn warm_smollm2_for_three_amd_targets_then_check_exits_zero() {
    let Some(model) = common::model("SmolLM2-135M-Instruct.Q4_1.gguf") else { return };
    if common::hiprtc().is_none() {
        return;
    }
    let cache = common::temp_dir("cli-warm");
    let run = |args: &[&str]| {
        let out = rocmforge().env("ROCMFORGE_CACHE_DIR", &cache).args(args).arg(&model).output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // The kernels warm compiles for the model (the fused int8 decode's included, and the f32 KV
    // cache's), for each of three targets.
    let n = common::kernels_warmed(&model);
    let (code, out, err) = run(&["warm", "--target", "gfx906,gfx90a,gfx1030", "--report"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains(&format!("{0} kernels: {0} compiled", 3 * n)), "{out}");
    assert!(err.contains(&format!("{0}/{0}", 3 * n)), "a progress bar: {err}");
    assert!(out.contains("VGPR") && out.contains("mmv_q4_1_k576"), "{out}");
    let (code, out, _) = run(&["warm", "--check", "--target", "gfx906,gfx90a,gfx1030"]);
    assert_eq!(code, Some(0), "{out}");
    let (code, out, _) = run(&["warm", "--check", "--target", "gfx908"]);
    assert_eq!(code, Some(1), "gfx908 was never warmed: {out}");
    assert!(out.contains(&format!("{n} of {n} kernels are missing")), "{out}");
}

#[test]
fn a_target_rocm_5_2_would_abort_on_is_refused_with_exit_one() {
    let Some(model) = common::model("SmolLM2-135M-Instruct.Q4_1.gguf") else { return };
    if common::hiprtc().is_none() {
        return;
    }
    let cache = common::temp_dir("cli-942");
    let out = rocmforge()
        .env("ROCMFORGE_CACHE_DIR", &cache)
        .args(["warm", "--target", "gfx90a,gfx942"])
        .arg(&model)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "a clean exit, not an abort: {err}");
    assert!(err.contains("gfx942") && err.contains("HIP 5.4"), "{err}");
    assert!(std::fs::read_dir(&cache).map(|d| d.count()).unwrap_or(0) == 0, "nothing compiled before the refusal");
}

#[test]
fn malformed_targets_are_explained() {
    let out = rocmforge().args(["warm", "--target", "cuda", "model.gguf"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(err.contains("unknown target \"cuda\"") && err.contains("gfx90a"), "{err}");
}

#[test]
fn help_teaches_with_examples() {
    let out = rocmforge().arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for needle in ["inspect", "warm", "cache", "Examples:", "--target gfx906,gfx90a,gfx1030"] {
        assert!(help.contains(needle), "--help lacks {needle:?}:\n{help}");
    }
    let out = rocmforge().args(["warm", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("--check") && help.contains("without a GPU"), "{help}");
}

#[test]
fn inspect_shows_what_an_unsupported_model_holds_and_json_refuses_it() {
    let Some(path) = common::model("vocab/ggml-vocab-bert-bge.gguf") else { return };
    let out = rocmforge().arg("inspect").arg(&path).output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains("bert (not runnable here)") && stderr.contains("unsupported architecture \"bert\""),
        "{stdout}{stderr}"
    );
    let out = rocmforge().args(["inspect", "--json"]).arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("rocmforge runs llama, qwen2, gemma, gemma2, gemma3"));
}

/// `bench` on the CPU device as llama-bench measures: a prefill (pp) and a decode after each
/// `--depth` of context (tg @ depth), printed as one JSON object with `--json`.
#[test]
fn bench_on_the_cpu_decodes_at_each_depth_and_prints_json() {
    let dir = common::temp_dir("cli-bench");
    let model = dir.join("tiny.gguf");
    common::write_tiny_llama(&model);
    let out = rocmforge()
        .args(["bench", "--device", "cpu", "--cpu-precision", "exact", "--prompt", "8", "--gen", "4"])
        .args(["--depth", "0,16,40", "--reps", "1", "--json"])
        .arg(&model)
        .output()
        .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{stderr}");
    // The human lines go to stderr, so stdout is the JSON alone.
    assert!(stderr.contains("decode") && stderr.contains("@ depth 40"), "{stderr}");
    let j: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    println!("{j:#}");
    assert_eq!(j["model"]["arch"], "llama", "{j}");
    assert_eq!(j["device"]["backend"], "cpu", "{j}");
    for (what, tokens) in [("pp", 8), ("tg", 4)] {
        let runs = j[what].as_array().unwrap_or_else(|| panic!("{what} is a list: {j}"));
        let depths: Vec<u64> = runs.iter().map(|t| t["depth"].as_u64().expect("a depth")).collect();
        assert_eq!(depths, [0, 16, 40], "{what}: {j}");
        assert!(
            runs.iter().all(|t| t["tokens"] == tokens && t["tokens_per_s"].as_f64().is_some_and(|v| v > 0.0)),
            "{what}: {j}"
        );
    }
    // 2 layers × 49 positions (40 + max(8, 4) + 1) × (128 + 128 floats of K and V) × 4 bytes.
    assert_eq!(j["memory"]["kv_cache"], 2 * 49 * 256 * 4, "{j}");
    assert!(j["memory"]["weights"].as_u64().is_some_and(|w| w > 0), "{j}");

    // Without --json the results are lines on stdout.
    let out = rocmforge()
        .args(["bench", "--device", "cpu", "--prompt", "4", "--gen", "2", "--depth", "3", "--reps", "1"])
        .arg(&model)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && stdout.contains("2 tokens @ depth 3"), "{stdout}");
    // A depth beyond the model's context is refused by name, not a panic.
    let out =
        rocmforge().args(["bench", "--device", "cpu", "--depth", "300", "--gen", "2"]).arg(&model).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("exceeds the model's limit of 256 positions"), "{err}");
    let out = rocmforge().args(["bench", "--device", "cpu", "--profile"]).arg(&model).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("--profile times GPU kernels"), "{err}");
}

#[test]
fn the_kv_cache_precision_is_a_flag_with_a_clear_refusal() {
    for sub in ["bench", "run", "logits"] {
        let out = rocmforge().args([sub, "--help"]).output().unwrap();
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(help.contains("--kv") && help.contains("f16"), "{sub} --help lacks --kv:\n{help}");
    }
    let out = rocmforge().args(["bench", "--kv", "q8", "model.gguf"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("unknown KV cache precision \"q8\": expected f16 or f32"), "{err}");
}
