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
    let (code, out, err) = run(&["warm", "--target", "gfx906,gfx90a,gfx1030", "--report"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("39 kernels: 39 compiled"), "{out}");
    assert!(err.contains("39/39"), "a progress bar: {err}");
    assert!(out.contains("VGPR") && out.contains("mmv_q4_1_k576"), "{out}");
    let (code, out, _) = run(&["warm", "--check", "--target", "gfx906,gfx90a,gfx1030"]);
    assert_eq!(code, Some(0), "{out}");
    let (code, out, _) = run(&["warm", "--check", "--target", "gfx908"]);
    assert_eq!(code, Some(1), "gfx908 was never warmed: {out}");
    assert!(out.contains("13 of 13 kernels are missing"), "{out}");
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
