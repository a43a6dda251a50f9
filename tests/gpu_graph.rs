//! Graph replay of the decode step against plain replay: the same launches, so the logits must be
//! bit-identical at every step and the greedy tokens the same — with the argmax's id fed back in
//! place on the device. On the CPU device (no graphs: the nodes run one by one, with the same
//! per-step updates) in CI; on a CUDA GPU, as a CUDA graph, by scripts/gpu_tests.sh on the device.
//! Also [`LaunchGraph`]'s own contract on the CPU device: checked updates, identical updates free,
//! buffers kept alive.

mod common;

use std::path::Path;
use std::time::Instant;

use rocmforge::device::{self, Device, DeviceError, GraphNode};
use rocmforge::exec::gpu::{GpuModel, GpuPrecision, GpuSession, Replay, DEFAULT_MAX_BATCH};
use rocmforge::exec::Model;
use rocmforge::jit::Engine;
use rocmforge::kernels::launch;
use rocmforge::kernels::KernelSpec;
use rocmforge::reference;

/// Where two logit vectors differ: (count of differing values, largest absolute difference).
fn differences(a: &[f32], b: &[f32]) -> (usize, f32) {
    let n = a.iter().zip(b).filter(|(x, y)| x.to_bits() != y.to_bits()).count();
    let max = a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
    (n + a.len().abs_diff(b.len()), max)
}

/// Plain and graph replay over `steps` greedy decode steps after a prompt of `prompt_len`: logits
/// bit-identical at every step (through `forward`), then the greedy tokens identical through
/// `forward_argmax` (the id fed back in place), and identical to the tokens of the logits run.
/// Prints both decode rates. `native`: whether the device must run a real graph.
fn graph_matches_plain(g: &GpuModel<'_>, label: &str, prompt_len: usize, steps: usize, native: bool) {
    let n_vocab = g.model.config.n_vocab;
    let prompt: Vec<u32> = (0..prompt_len as u32).map(|i| (i * 7919 + 11) % n_vocab).collect();
    let capacity = prompt_len + steps + 2;
    let mut plain = GpuSession::new(g, capacity, DEFAULT_MAX_BATCH).unwrap();
    plain.set_replay(Replay::Plain);
    let mut graph = GpuSession::new(g, capacity, DEFAULT_MAX_BATCH).unwrap();
    graph.set_replay(Replay::Graph);

    // Logits at every step.
    let want = plain.forward(&prompt).unwrap().to_vec();
    let got = graph.forward(&prompt).unwrap().to_vec();
    assert_eq!(differences(&want, &got).0, 0, "{label}: prefill logits differ");
    let mut tok = reference::argmax(&want) as u32;
    let mut tokens = vec![tok];
    for step in 0..steps {
        let want = plain.forward(&[tok]).unwrap().to_vec();
        let got = graph.forward(&[tok]).unwrap().to_vec();
        let (n, max) = differences(&want, &got);
        assert_eq!(n, 0, "{label}: step {step} (position {}): {n} logits differ, by up to {max:e}", prompt_len + step);
        tok = reference::argmax(&want) as u32;
        tokens.push(tok);
    }
    assert_eq!(
        graph.graph_built(),
        Some(native),
        "{label}: the graph session ran no graph: {}",
        graph.replay_summary()
    );
    assert_eq!(plain.graph_built(), None, "{label}: the plain session built a graph");
    // On sm_90+ the graph chains its kernels by programmatic dependent launch (unless turned off),
    // and the logits above are still bit-identical to plain replay's.
    let pdl = g.device.target().is_some_and(|t| t.render_target().pdl);
    if native && pdl && std::env::var("ROCMFORGE_PDL").map_or(true, |v| v.trim() != "0") {
        let summary = graph.replay_summary();
        assert!(summary.contains("programmatic"), "{label}: no programmatic launch on this GPU: {summary}");
    }
    println!("{label}: {steps} steps, logits bit-identical; graph session: {}", graph.replay_summary());

    // Greedy through the argmax read-back, each session timed on its own. After the reset the
    // graph (built above at later positions) is updated back to the start.
    let greedy = |s: &mut GpuSession<'_, '_>| {
        s.reset();
        let mut out = vec![s.forward_argmax(&prompt).unwrap()];
        let t = Instant::now();
        for _ in 0..steps {
            let next = s.forward_argmax(&[*out.last().unwrap()]).unwrap();
            out.push(next);
        }
        (out, t.elapsed().as_secs_f64())
    };
    let (plain_tokens, plain_s) = greedy(&mut plain);
    let (graph_tokens, graph_s) = greedy(&mut graph);
    assert_eq!(plain_tokens, graph_tokens, "{label}: greedy tokens differ between plain and graph replay");
    assert_eq!(graph_tokens, tokens, "{label}: the in-place greedy tokens differ from the logits run's");
    println!(
        "{label}: {steps} greedy tokens identical; decode plain {:.1} tokens/s, graph {:.1} tokens/s ({:.2}x)",
        steps as f64 / plain_s,
        steps as f64 / graph_s,
        plain_s / graph_s
    );
}

/// Prefill passes as graphs against plain passes, in passes of 8 tokens: a prompt of 20 (full
/// passes build and reuse one graph at positions 0 and 8, the last pass of 4 runs plainly), the
/// same prompt again after a reset (the graph of 8 updated back to position 0, the pass of 4 now
/// a graph), then 4 more tokens (the graph of 4 at position 20). The logits must be bit-identical
/// to the plain session's after each prompt.
fn prefill_graphs_match_plain(g: &GpuModel<'_>, label: &str) {
    let n_vocab = g.model.config.n_vocab;
    let prompt: Vec<u32> = (0..20u32).map(|i| (i * 7919 + 11) % n_vocab).collect();
    let more: Vec<u32> = (0..4u32).map(|i| (i * 104729 + 5) % n_vocab).collect();
    let mut plain = GpuSession::new(g, 32, 8).unwrap();
    plain.set_replay(Replay::Plain);
    let mut graph = GpuSession::new(g, 32, 8).unwrap();
    graph.set_replay(Replay::Graph);
    assert_eq!(graph.max_batch(), 8, "{label}: passes of 8 tokens");
    let check = |plain: &mut GpuSession<'_, '_>, graph: &mut GpuSession<'_, '_>, what: &str, tokens: &[u32]| {
        let want = plain.forward(tokens).unwrap().to_vec();
        let got = graph.forward(tokens).unwrap().to_vec();
        let (n, max) = differences(&want, &got);
        assert_eq!(n, 0, "{label}: {what}: {n} logits differ, by up to {max:e}");
    };
    check(&mut plain, &mut graph, "the first prompt", &prompt);
    assert_eq!(graph.prefill_graphs(), 1, "{label}: {}", graph.prefill_replay_summary());
    plain.reset();
    graph.reset();
    check(&mut plain, &mut graph, "the prompt again after a reset", &prompt);
    assert_eq!(graph.prefill_graphs(), 2, "{label}: {}", graph.prefill_replay_summary());
    check(&mut plain, &mut graph, "4 more tokens", &more);
    assert_eq!(plain.prefill_graphs(), 0, "{label}: the plain session built a prefill graph");
    let summary = graph.prefill_replay_summary();
    assert!(summary.contains("passes of 8, 4 tokens"), "{label}: {summary}");
    assert_eq!(graph.graph_built(), None, "{label}: a prefill pass built the decode graph");
    println!("{label}: prefill passes as graphs, logits bit-identical ({summary})");
}

#[test]
fn graph_replay_on_the_cpu_device_matches_plain_replay() {
    let Some(path) = common::model("variants/smol-Q4_K_M.gguf") else { return };
    let model = Model::load(&path).unwrap();
    let engine = Engine::builder().memory_only().build().unwrap();
    let mut g = GpuModel::new(&model, Device::cpu(), &engine).unwrap();
    // The CPU device runs no graphs, so plain replay is its default.
    assert_eq!(GpuSession::new(&g, 8, DEFAULT_MAX_BATCH).unwrap().replay_mode(), Replay::Plain);
    graph_matches_plain(&g, "smol-Q4_K_M on the CPU device", 12, 6, false);
    prefill_graphs_match_plain(&g, "smol-Q4_K_M on the CPU device");
    g.precision = GpuPrecision::Fast;
    g.fuse = true;
    graph_matches_plain(&g, "smol-Q4_K_M on the CPU device, int8 fused decode", 12, 6, false);
}

/// The graph's nodes are checked as launches are; an update with the same parameters costs
/// nothing; a node cannot become another kind; a buffer the graph names outlives its owner.
#[test]
fn a_launch_graph_checks_its_nodes_and_keeps_its_buffers() {
    let dev = Device::cpu();
    let argmax = dev.reference_kernel(&KernelSpec::Argmax).unwrap();
    let x = dev.upload(&[1.0f32, 5.0, 3.0, 5.0]).unwrap();
    let mut out = dev.upload(&[-1i32, -1]).unwrap();
    let node = |n: usize, at: usize| {
        GraphNode::Launch(
            &argmax,
            launch::Argmax { x: x.slice(0, n).unwrap(), out: out.slice(at, 1).unwrap(), n }.into(),
        )
    };
    let mut graph = dev.graph(vec![GraphNode::Fill(out.slice(1, 1).unwrap(), 7), node(2, 0)]).unwrap();
    assert!(!graph.is_native(), "the CPU device has no graphs of its own");
    graph.launch().unwrap();
    assert_eq!(out.to_vec().unwrap(), [1, 7]);
    // Same parameters: nothing to update. New ones: the next launch uses them.
    assert!(!graph.set(1, node(2, 0)).unwrap());
    assert!(graph.set(1, node(3, 1)).unwrap());
    assert!(graph.set(0, GraphNode::Fill(out.slice(0, 1).unwrap(), 9)).unwrap());
    graph.launch().unwrap();
    assert_eq!(out.to_vec().unwrap(), [9, 1]);
    // A launch past its buffer is refused as `Kernel::launch` refuses it; so is another kind of node.
    let past = launch::Argmax { x: x.view(), out: out.view(), n: 5 };
    assert!(matches!(graph.set(1, GraphNode::Launch(&argmax, past.into())), Err(DeviceError::Launch(_))));
    assert!(matches!(graph.set(1, GraphNode::Fill(out.slice(0, 1).unwrap(), 0)), Err(DeviceError::Misuse(_))));
    assert!(graph.set(2, GraphNode::Fill(out.slice(0, 1).unwrap(), 0)).is_err(), "a node past the end");
    // A fill of f32s is refused.
    assert!(dev.graph(vec![GraphNode::Fill(x.slice(0, 1).unwrap(), 0)]).is_err());
    // The graph holds `x` and `out`: dropping them frees nothing until the graph goes.
    let held = dev.memory_used().unwrap();
    drop(x);
    out.fill(0, 2, 0).unwrap();
    drop(out);
    assert_eq!(dev.memory_used().unwrap(), held, "a buffer the graph names was freed under it");
    graph.launch().unwrap();
    drop(graph);
    assert_eq!(dev.memory_used().unwrap(), 0, "the graph's buffers outlived it");
}

fn open_gpu() -> (Device, Engine) {
    let dev = device::open("cuda").expect("a CUDA GPU").expect("cuda names a GPU");
    let engine = Engine::builder().memory_only().targets(dev.target().cloned()).build().expect("NVRTC");
    (dev, engine)
}

fn on_the_gpu(path: &Path, label: &str, prompt_len: usize, steps: usize) {
    let (dev, engine) = open_gpu();
    let model = Model::load(path).unwrap();
    let mut g = GpuModel::new(&model, dev, &engine).unwrap();
    graph_matches_plain(&g, label, prompt_len, steps, true);
    prefill_graphs_match_plain(&g, label);
    // The int8 decode, fused (its rope + KV append launch is updated with the position).
    g.precision = GpuPrecision::Fast;
    g.fuse = true;
    graph_matches_plain(&g, &format!("{label}, int8 fused decode"), prompt_len, steps, true);
}

#[test]
#[ignore = "needs a GPU: run by scripts/gpu_tests.sh on the device"]
fn graph_replay_on_the_gpu_matches_plain_replay_on_smollm2() {
    let path = common::models_dir().join("SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(path.exists(), "{} is absent (scripts/fetch_models.py fetches it)", path.display());
    on_the_gpu(&path, "SmolLM2-135M Q4_1 on the GPU", 20, 64);
}

#[test]
#[ignore = "needs a GPU: run by scripts/gpu_tests.sh on the device"]
fn graph_replay_on_the_gpu_matches_plain_replay_on_the_synthetic_7b() {
    let Some(path) = common::syn7b() else { return };
    on_the_gpu(&path, "synthetic 7B Q4_K_M on the GPU", 20, 64);
}
