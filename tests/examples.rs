//! The programs in `examples/` run as a user would run them (CPU, the real SmolLM2): generate and
//! chat answer, warm_cache compiles for an AMD target with hipRTC. (serve_client runs in
//! tests/serve.rs, against a live server.)

mod common;

use std::process::Command;

fn run(name: &str, args: &[&str]) -> Option<(String, String)> {
    let exe = common::example_binary(name)?;
    let out = Command::new(&exe).args(args).output().expect("the example should start");
    let (stdout, stderr) =
        (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned());
    assert!(out.status.success(), "{name} failed:\n{stdout}\n{stderr}");
    println!("{name}:\n{stdout}{stderr}");
    Some((stdout, stderr))
}

#[test]
fn the_generate_example_streams_a_continuation() {
    let Some(model) = common::model("SmolLM2-135M-Instruct.Q4_1.gguf") else { return };
    let m = model.to_str().unwrap();
    let Some((out, err)) = run("generate", &[m, "The capital of France is", "cpu"]) else { return };
    assert!(out.starts_with("The capital of France is") && out.len() > "The capital of France is".len() + 3, "{out}");
    assert!(err.contains("on cpu"), "{err}");
}

#[test]
fn the_chat_example_holds_two_turns_and_reuses_the_cache() {
    let Some(model) = common::model("SmolLM2-135M-Instruct.Q4_1.gguf") else { return };
    let Some((out, err)) = run("chat", &[model.to_str().unwrap(), "cpu"]) else { return };
    assert!(out.contains("Paris"), "{out}");
    assert!(out.contains("Rome"), "{out}");
    let reused: Vec<u64> = err
        .lines()
        .filter_map(|l| l.split(" already in the cache").next()?.rsplit(", ").next()?.parse().ok())
        .collect();
    assert_eq!(reused.len(), 2, "{err}");
    assert!(reused[0] == 0 && reused[1] > 20, "the second turn starts from the first's cache: {reused:?}");
}

#[test]
fn the_warm_cache_example_compiles_for_an_amd_target() {
    let Some(model) = common::model("SmolLM2-135M-Instruct.Q4_1.gguf") else { return };
    if common::hiprtc().is_none() {
        return;
    }
    let cache = common::temp_dir("example-warm");
    let args = [model.to_str().unwrap(), "gfx90a", cache.to_str().unwrap()];
    let Some((out, _)) = run("warm_cache", &args) else { return };
    let n = common::kernels_needed(&model);
    assert!(out.contains(&format!("{n} kernels for 1 target(s): {n} compiled now")), "{out}");
    let (again, _) = run("warm_cache", &args).unwrap();
    assert!(again.contains("0 compiled now"), "a second run finds them cached: {again}");
}
