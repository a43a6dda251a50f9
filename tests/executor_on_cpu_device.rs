//! The GPU executor (plan, buffers, prefill passes of 256 tokens, replayed decode) driving the CPU
//! device, against the plain CPU session; the op case table on the CPU device; and the device's
//! refusals of buffers and launches that do not fit. Runs in CI, where there is no GPU.

mod common;
mod op_cases;

use rocmforge::device::{Device, DeviceError};
use rocmforge::exec::gpu::{GpuModel, GpuPrecision, GpuSession, PrefillProducts, DEFAULT_MAX_BATCH};
use rocmforge::exec::{ExecError, Model, Session};
use rocmforge::jit::Engine;
use rocmforge::kernels::launch::{self, Launch};
use rocmforge::kernels::{KernelSpec, KvPrecision, LaunchError};
use rocmforge::model::RopeScaling;
use rocmforge::reference;

fn nmse(a: &[f32], b: &[f32]) -> f64 {
    let e: f64 = a.iter().zip(b).map(|(x, y)| ((x - y) as f64).powi(2)).sum();
    e / b.iter().map(|y| (*y as f64).powi(2)).sum::<f64>()
}

/// With an f32 cache the device runs the session's arithmetic (NMSE ~0, the exact decode); with
/// the default f16 cache every K and V value is rounded once (relative 2⁻¹¹), which the whole
/// model must carry within the GPU's whole-model bound against the CPU, NMSE ≤ 1e-3.
#[test]
fn the_executor_on_the_cpu_device_matches_the_cpu_session() {
    for file in [
        "variants/smol-Q4_K_M.gguf",
        "gemma-3-270m-q4_k_m.gguf",
        "variants/qwen2-synth-Q4_K.gguf",
        "variants/gemma2-synth-F32.gguf",
        // Llama 3 rope frequency factors, through the rope launch's factor pointer.
        "variants/llama3-synth-F32.gguf",
        // Per-head Q/K norms, heads wider than n_embd / n_head.
        "variants/qwen3-synth-F32.gguf",
        // Fused attn_qkv / ffn_up read as row ranges of quantized blocks (the weight-offset slot),
        // LongRoPE's factors and cos/sin scale.
        "variants/phi3-synth-Q4_K_M.gguf",
        // YaRN's ramp and cos/sin scale through the rope launch.
        "variants/qwen2-yarn-synth-F32.gguf",
    ] {
        let Some(path) = common::model(file) else { continue };
        let model = Model::load(&path).unwrap();
        let engine = Engine::builder().memory_only().build().unwrap();
        // Longer than one prefill pass, so the second pass attends across the boundary.
        let n = DEFAULT_MAX_BATCH + 44;
        let prompt: Vec<u32> = (0..n as u32).map(|i| (i * 7919 + 11) % model.config.n_vocab).collect();
        let mut cpu = Session::new(&model, n + 4).unwrap();
        let want = cpu.forward(&prompt).unwrap().to_vec();
        let mut decoded = Vec::new();
        let mut tok = reference::argmax(&want) as u32;
        for _ in 0..3 {
            let logits = cpu.forward(&[tok]).unwrap().to_vec();
            decoded.push((tok, logits.clone()));
            tok = reference::argmax(&logits) as u32;
        }
        for (kv, bound) in [(KvPrecision::F32, 1e-10), (KvPrecision::F16, 1e-3)] {
            let g = GpuModel::with_kv(&model, Device::cpu(), &engine, kv).unwrap();
            let mut dev = GpuSession::with_precision(&g, n + 4, DEFAULT_MAX_BATCH, GpuPrecision::Exact).unwrap();
            let got = dev.forward(&prompt).unwrap().to_vec();
            let e = nmse(&got, &want);
            println!(
                "{file}, {} cache: prefill of {n} tokens in 2 passes, NMSE {e:.2e} against the CPU session",
                kv.name()
            );
            assert!(e < bound, "{file}: prefill NMSE {e:.2e}");
            for (step, (tok, want)) in decoded.iter().enumerate() {
                let got = dev.forward(&[*tok]).unwrap().to_vec();
                let e = nmse(&got, want);
                println!("{file}, {} cache: decode step {step}, NMSE {e:.2e}", kv.name());
                assert!(e < bound, "{file}: decode NMSE {e:.2e}");
                if kv == KvPrecision::F32 {
                    assert_eq!(reference::argmax(&got), reference::argmax(want), "{file}: decode argmax");
                }
            }
            assert_eq!(dev.pos(), n + 3);
            assert!(matches!(dev.forward(&[1, 2]), Err(ExecError::ContextFull { .. })));
        }
    }
}

/// The f16 prefill plan (what a GPU with a matrix unit runs in `Exact`, and in `Fast` with
/// `ROCMFORGE_PREFILL=f16`: weights dequantized to f16, inputs rounded to f16, the f16 product) on
/// the CPU device, in both precisions: every f16 rounding is
/// relative 2⁻¹¹, which the whole model must carry within the GPU's whole-model bound against the
/// CPU session, NMSE ≤ 1e-3 (measured far below it), with the products run as `gemm_f16`.
#[test]
fn the_f16_prefill_plan_runs_on_the_cpu_device() {
    for file in [
        "variants/smol-Q4_K_M.gguf",
        "gemma-3-270m-q4_k_m.gguf",
        // F32 weights dequantized (rounded) to f16 too.
        "variants/llama3-synth-F32.gguf",
        // Fused attn_qkv / ffn_up: the dequantization reads row ranges of quantized blocks.
        "variants/phi3-synth-Q4_K_M.gguf",
    ] {
        let Some(path) = common::model(file) else { continue };
        let model = Model::load(&path).unwrap();
        let engine = Engine::builder().memory_only().build().unwrap();
        let mut g = GpuModel::with_kv(&model, Device::cpu(), &engine, KvPrecision::F32).unwrap();
        assert_eq!(g.prefill, PrefillProducts::Legacy, "the CPU device runs the f32 references unless asked");
        g.prefill = PrefillProducts::F16;
        let n = DEFAULT_MAX_BATCH + 44;
        let prompt: Vec<u32> = (0..n as u32).map(|i| (i * 7919 + 11) % model.config.n_vocab).collect();
        let want = Session::new(&model, n + 1).unwrap().forward(&prompt).unwrap().to_vec();
        for precision in [GpuPrecision::Exact, GpuPrecision::Fast] {
            let mut s = GpuSession::with_precision(&g, n + 1, DEFAULT_MAX_BATCH, precision).unwrap();
            let e = nmse(s.forward(&prompt).unwrap(), &want);
            println!(
                "{file} [{}]: f16 prefill of {n} tokens in 2 passes, NMSE {e:.2e} against the CPU session",
                precision.name()
            );
            assert!(e > 0.0 && e < 1e-3, "{file}: f16 prefill NMSE {e:.2e}");
        }
        let mut s = GpuSession::with_precision(&g, 16, DEFAULT_MAX_BATCH, GpuPrecision::Exact).unwrap();
        let ops = s.profile_prefill(&prompt[..8], 1).unwrap();
        let gemms = ops.iter().filter(|o| o.kernel.starts_with("gemm_f16_")).count();
        assert!(gemms > 0 && ops.iter().all(|o| !o.kernel.starts_with("mmm_")), "{file}: {ops:?}");
    }
}

/// The precisions on the CPU device: `Exact` is the CPU session's arithmetic (NMSE 0 up to f32
/// summation order); `Fast` runs the int8 plan (q8_1 quantize, then the tiled int8 product in
/// prefill and the int8 matvec in decode, as the CPU's int8 session does), which must differ from
/// it (it ran) by about the CPU int8 session's own distance (the two int8 paths differ in their
/// details, so they are compared by distance, not to each other), and pick the same tokens. Both run prefill attention as flash attention.
#[test]
fn the_int8_decode_plan_runs_on_the_cpu_device() {
    use rocmforge::exec::{Activations, CpuPrecision};
    let Some(path) = common::model("variants/smol-Q4_K_M.gguf") else { return };
    let model = Model::load(&path).unwrap();
    let engine = Engine::builder().memory_only().build().unwrap();
    // An f32 KV cache, so that the exact decode is the CPU session's arithmetic.
    let g = GpuModel::with_kv(&model, Device::cpu(), &engine, KvPrecision::F32).unwrap();
    let prompt: Vec<u32> = (0..8u32).map(|i| (i * 7919 + 11) % model.config.n_vocab).collect();
    let mut exact = GpuSession::with_precision(&g, 16, DEFAULT_MAX_BATCH, GpuPrecision::Exact).unwrap();
    let mut fast = GpuSession::with_precision(&g, 16, DEFAULT_MAX_BATCH, GpuPrecision::Fast).unwrap();
    let mut cpu = Session::new(&model, 16).unwrap();
    let mut cpu_int8 = Session::with_precision(&model, 16, CpuPrecision::Fast).unwrap();
    // The CPU's int8 session quantizing as the GPU does (not as llama.cpp's CPU backend, whose
    // Q8_K activations for the K-quants land nearer f32 than q8_1 does).
    assert_eq!(cpu_int8.activations(), Some(Activations::LlamaCpp), "the default");
    cpu_int8.set_activations(Activations::Gpu).unwrap();
    assert_eq!(cpu_int8.activations(), Some(Activations::Gpu));
    let e = cpu.set_activations(Activations::Gpu).unwrap_err().to_string();
    assert!(e.contains("an exact session quantizes no activations"), "{e}");
    let want = cpu.forward(&prompt).unwrap().to_vec();
    let mut tok = reference::argmax(&want) as u32;
    let e_exact = nmse(exact.forward(&prompt).unwrap(), &want);
    let got = fast.forward(&prompt).unwrap().to_vec();
    let want_int8 = cpu_int8.forward(&prompt).unwrap().to_vec();
    let (e_fast, e_cpu_int8, e_vs_cpu_int8) = (nmse(&got, &want), nmse(&want_int8, &want), nmse(&got, &want_int8));
    println!(
        "prefill: exact NMSE {e_exact:.2e}; int8 prefill NMSE {e_fast:.2e} (CPU int8 session {e_cpu_int8:.2e}, int8 prefill vs it {e_vs_cpu_int8:.2e})"
    );
    assert!(e_exact < 1e-10, "exact prefill NMSE {e_exact:.2e}");
    assert!(
        e_fast > 0.0 && e_fast < 2.0 * e_cpu_int8.max(5e-4),
        "int8 prefill NMSE {e_fast:.2e}: it must run, and stay close"
    );
    for step in 0..3 {
        let want = cpu.forward(&[tok]).unwrap().to_vec();
        let want_int8 = cpu_int8.forward(&[tok]).unwrap().to_vec();
        let e_exact = nmse(exact.forward(&[tok]).unwrap(), &want);
        let got = fast.forward(&[tok]).unwrap().to_vec();
        let (e_fast, e_cpu_int8, e_vs_cpu_int8) = (nmse(&got, &want), nmse(&want_int8, &want), nmse(&got, &want_int8));
        println!(
            "step {step}: exact decode NMSE {e_exact:.2e}; int8 decode NMSE {e_fast:.2e} (CPU int8 session {e_cpu_int8:.2e}, int8 decode vs it {e_vs_cpu_int8:.2e})"
        );
        assert!(e_exact < 1e-10, "exact decode NMSE {e_exact:.2e}");
        assert!(
            e_fast > 0.0 && e_fast < 2.0 * e_cpu_int8.max(5e-4),
            "int8 decode NMSE {e_fast:.2e}: it must run, and stay close"
        );
        assert_eq!(reference::argmax(&got), reference::argmax(&want), "step {step}: greedy token");
        tok = reference::argmax(&want) as u32;
    }
    assert_eq!((exact.precision(), fast.precision()), (GpuPrecision::Exact, GpuPrecision::Fast));
}

#[test]
fn the_op_case_table_runs_on_the_cpu_device() {
    let dev = Device::cpu();
    let kernels = dev.clone();
    let h = op_cases::Harness::new(dev, move |spec| kernels.reference_kernel(spec).expect("the CPU runs every op"));
    let failures = op_cases::run(&h, &op_cases::cases(false), "");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The GPU run's whole table (every shape of every op) on the CPU device, for timing its CPU side
/// and checking new cases without a GPU; `ROCMFORGE_CASE=text` keeps the cases whose name holds it.
#[test]
#[ignore = "slow: the GPU run's full case table on the CPU device"]
fn the_full_op_case_table_runs_on_the_cpu_device() {
    let dev = Device::cpu();
    let kernels = dev.clone();
    let h = op_cases::Harness::new(dev, move |spec| kernels.reference_kernel(spec).expect("the CPU runs every op"));
    let filter = std::env::var("ROCMFORGE_CASE").unwrap_or_default();
    let failures = op_cases::run(&h, &op_cases::cases(true), &filter);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn buffers_refuse_copies_and_views_past_their_end() {
    let d = Device::cpu();
    let mut b = d.alloc::<f32>(4).unwrap();
    assert_eq!((b.len(), b.bytes()), (4, 16));
    b.write(1, &[1.0, 2.0, 3.0]).unwrap();
    let e = b.write(2, &[1.0, 2.0, 3.0]).unwrap_err().to_string();
    assert!(e.contains("a write of 3 elements at 2 runs past a buffer of 4 f32"), "{e}");
    let mut out = [0f32; 2];
    b.read(2, &mut out).unwrap();
    assert_eq!(out, [2.0, 3.0]);
    assert!(b.read(3, &mut out).is_err(), "a read past the end");
    assert!(b.read(usize::MAX, &mut out).is_err(), "an offset that overflows");
    assert!(b.slice(1, 3).is_ok() && b.slice(2, 3).is_err(), "views stay inside");
    let mut c = d.alloc::<f32>(3).unwrap();
    assert!(c.copy_from(&b).is_err(), "a copy between buffers of different lengths");
    let other = Device::cpu().upload(&[0f32; 3]).unwrap();
    assert!(c.copy_from(&other).is_err(), "a copy between devices");
    assert!(d.alloc::<f32>(usize::MAX).is_err(), "an allocation that overflows");
    let before = d.memory_used().unwrap();
    drop(b);
    assert_eq!(d.memory_used().unwrap(), before - 16, "a dropped buffer is freed");
}

#[test]
fn launches_are_checked_against_their_description_and_their_kernel() {
    let d = Device::cpu();
    let argmax = d.reference_kernel(&KernelSpec::Argmax).unwrap();
    let (x, out) = (d.upload(&[1f32, 3.0, 2.0]).unwrap(), d.upload(&[-1i32]).unwrap());
    let run = |l: launch::Argmax<_>| argmax.launch(&Launch::from(l));
    let e = run(launch::Argmax { x: x.view(), out: out.view(), n: 4 }).unwrap_err();
    assert_eq!(e, DeviceError::Launch(LaunchError::TooSmall { kernel: "argmax".into(), name: "x", have: 3, need: 4 }));
    let e = run(launch::Argmax { x: x.view(), out: x.view(), n: 3 }).unwrap_err().to_string();
    assert!(e.contains("argument `out` is a buffer of f32; the kernel takes i32"), "{e}");
    let e = run(launch::Argmax { x: x.slice(1, 2).unwrap(), out: out.view(), n: 3 }).unwrap_err().to_string();
    assert!(e.contains("buffer `x` holds 2 elements; the launch touches 3"), "{e}");
    let elsewhere = Device::cpu().upload(&[5f32]).unwrap();
    let e = run(launch::Argmax { x: elsewhere.view(), out: out.view(), n: 1 }).unwrap_err().to_string();
    assert!(e.contains("given to a kernel on"), "{e}");
    let glu =
        launch::Glu { gate: x.view(), up: x.view(), out: x.view(), kind: rocmforge::kernels::GluKind::SwiGlu, n: 3 };
    let e = argmax.launch(&glu.into()).unwrap_err().to_string();
    assert!(e.contains("a launch of swiglu given to kernel argmax"), "{e}");
    run(launch::Argmax { x: x.slice(1, 2).unwrap(), out: out.view(), n: 2 }).unwrap();
    assert_eq!(out.to_vec().unwrap(), [0], "the largest of [3, 2] is at 0 of the view");
    let e = d.load_kernel(&fake_compiled()).unwrap_err().to_string();
    assert!(e.contains("runs the reference ops"), "{e}");
}

/// A compiled kernel as the JIT would hand it over (the CPU device must refuse it).
fn fake_compiled() -> rocmforge::jit::CompiledKernel {
    rocmforge::jit::CompiledKernel {
        spec: KernelSpec::Argmax,
        target: "sm_90".parse().unwrap(),
        entry: "argmax".into(),
        block_threads: 256,
        code: std::sync::Arc::new(Vec::new()),
        origin: rocmforge::jit::Origin::Compiled,
        seconds: 0.0,
    }
}

/// `bench --profile`'s measurement, on the CPU device: one timing per planned decode launch, named
/// by its graph node, with the bytes the streaming ops must move.
#[test]
fn a_profiled_decode_step_times_every_launch_by_node() {
    let Some(path) = common::model("variants/smol-Q4_K_M.gguf") else { return };
    let model = Model::load(&path).unwrap();
    let engine = Engine::builder().memory_only().build().unwrap();
    let g = GpuModel::new(&model, Device::cpu(), &engine).unwrap();
    let mut s = GpuSession::new(&g, 600, DEFAULT_MAX_BATCH).unwrap();
    let prompt: Vec<u32> = (0..300u32).map(|i| (i * 7919 + 11) % model.config.n_vocab).collect();
    s.forward(&prompt).unwrap();
    let ops = s.profile_decode(5, 2).unwrap();
    assert_eq!(s.pos(), 0, "a profiled session is reset");
    // The default int8 decode adds a q8_1 quantizer before the matvecs of a new input.
    let nodes: Vec<&str> = ops.iter().map(|o| o.node.strip_suffix(".quantize").unwrap_or(&o.node)).collect();
    let mut distinct = nodes.clone();
    distinct.dedup();
    assert_eq!(distinct, model.decode.nodes.iter().map(|n| n.name.as_str()).collect::<Vec<_>>());
    for op in &ops {
        assert!(op.seconds > 0.0, "{op:?}");
        let streams = ["mmv", "quantize_q8_1", "attn_decode"].iter().any(|k| op.kernel.starts_with(k));
        assert_eq!(op.bytes.is_some(), streams, "{op:?}");
    }
    // SmolLM2: 3 KV heads of 64, f16, over the 301 positions the step attends.
    let attn = ops.iter().find(|o| o.node == "blk.0.attn").expect("layer 0's attention");
    assert_eq!(attn.kernel, "attn_decode_hd64_gqa3_kvf16");
    assert_eq!(attn.bytes, Some(2 * 301 * 3 * 64 * 2));
    println!("{} launches; blk.0.attn {:.1} us on the CPU device", ops.len(), attn.seconds * 1e6);

    // A prefill pass: every launch of the pass, named by the prefill graph's nodes, in order.
    let ops = s.profile_prefill(&prompt[..40], 2).unwrap();
    assert_eq!(s.pos(), 0, "a profiled session is reset");
    let mut nodes: Vec<&str> = ops.iter().map(|o| o.node.strip_suffix(".quantize").unwrap_or(&o.node)).collect();
    nodes.dedup();
    assert_eq!(nodes, model.prefill.nodes.iter().map(|n| n.name.as_str()).collect::<Vec<_>>());
    assert!(ops.iter().all(|o| o.seconds > 0.0));
    assert!(s.profile_prefill(&prompt[..1], 2).is_err(), "one token is a decode step, not a prefill pass");
}

/// The fused int8 decode plan (src/exec/fuse.rs) on the CPU device, against the unfused int8 plan:
/// the CPU device runs each fused launch as the reference ops it stands for, in the same order, so
/// the logits must be the same bit for bit; the plan must be shorter, and run the fused kernels the
/// model's shape allows (Llama 3's rope factors and Qwen3's Q/K norms, Qwen2's biases, Gemma 3's
/// extra norms).
#[test]
fn the_fused_int8_plans_match_the_unfused_ones_in_fewer_launches() {
    for (file, fused_kernels) in [
        (
            "variants/smol-Q4_K_M.gguf",
            &["add_rmsnorm_q8_1", "rmsnorm_q8_1", "mmvq3_", "mmvq2_", "rope_kv_", "swiglu_q8_1"][..],
        ),
        ("variants/qwen2-synth-Q4_K.gguf", &["add_rmsnorm_q8_1", "_bias", "rope_kv_neox", "swiglu_q8_1"][..]),
        ("variants/llama3-synth-Q4_K_M.gguf", &["add_rmsnorm_q8_1", "mmvq3_", "rope_kv_normal"][..]),
        ("variants/qwen3-synth-Q4_K_M.gguf", &["add_rmsnorm_q8_1", "mmvq3_", "rope_kv_neox"][..]),
        ("gemma-3-270m-q4_k_m.gguf", &["add_rmsnorm_q8_1", "mmvq2_", "rope_kv_neox", "geglu_q8_1"][..]),
        // Fused Q/K/V and gate/up tensors read from their row ranges; LongRoPE and YaRN ropes stay
        // with the plain rope kernel.
        ("variants/phi3-synth-Q4_K_M.gguf", &["add_rmsnorm_q8_1", "mmvq3_", "mmvq2_", "swiglu_q8_1"][..]),
        ("variants/qwen2-yarn-synth-Q4_K_M.gguf", &["add_rmsnorm_q8_1", "mmvq3_", "swiglu_q8_1"][..]),
        ("variants/mistral-synth-Q4_K_M.gguf", &["add_rmsnorm_q8_1", "mmvq3_", "rope_kv_normal", "swiglu_q8_1"][..]),
    ] {
        let Some(path) = common::model(file) else { continue };
        let model = Model::load(&path).unwrap();
        let engine = Engine::builder().memory_only().build().unwrap();
        let mut g = GpuModel::with_kv(&model, Device::cpu(), &engine, KvPrecision::F16).unwrap();
        let prompt: Vec<u32> = (0..6u32).map(|i| (i * 7919 + 11) % model.config.n_vocab).collect();
        let mut runs = Vec::new();
        for fuse in [false, true] {
            g.fuse = fuse;
            let mut s = GpuSession::with_precision(&g, 16, DEFAULT_MAX_BATCH, GpuPrecision::Fast).unwrap();
            let mut logits = vec![s.forward(&prompt).unwrap().to_vec()];
            let mut tok = reference::argmax(&logits[0]) as u32;
            for _ in 0..3 {
                logits.push(s.forward(&[tok]).unwrap().to_vec());
                tok = reference::argmax(logits.last().unwrap()) as u32;
            }
            let ops = s.profile_decode(tok, 1).unwrap();
            let prefill_ops = s.profile_prefill(&prompt, 1).unwrap();
            runs.push((logits, ops, prefill_ops));
        }
        let ((plain, plain_ops, plain_prefill), (fused, fused_ops, fused_prefill)) = (&runs[0], &runs[1]);
        // Step 0 is the prefill pass (fused too: the norms, rope with the KV append, the GLU).
        for (step, (a, b)) in plain.iter().zip(fused).enumerate() {
            let same = a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits());
            assert!(same, "{file}: step {step}: the fused plan's logits differ (NMSE {:.2e})", nmse(b, a));
        }
        println!("{file}: {} launches a prefill pass unfused, {} fused", plain_prefill.len(), fused_prefill.len());
        assert!(fused_prefill.len() < plain_prefill.len(), "{file}: fusion must shorten the prefill plan");
        assert!(
            fused_prefill.iter().any(|o| o.kernel.starts_with("add_rmsnorm_q8_1")),
            "{file}: the prefill's residual add, norm and quantize run as one launch"
        );
        let per_layer = |n: usize| n as f64 / model.config.n_layer as f64;
        println!(
            "{file}: {} launches a decode step unfused ({:.1} a layer), {} fused ({:.1} a layer); 4 steps' logits bit-identical",
            plain_ops.len(),
            per_layer(plain_ops.len()),
            fused_ops.len(),
            per_layer(fused_ops.len())
        );
        assert!(fused_ops.len() < plain_ops.len(), "{file}: fusion must shorten the plan");
        for want in fused_kernels {
            assert!(fused_ops.iter().any(|o| o.kernel.contains(want)), "{file}: no {want} kernel in the fused plan");
        }
        let qkv = fused_ops.iter().find(|o| o.node == "blk.0.attn_q+attn_k+attn_v");
        assert!(qkv.is_some(), "{file}: layer 0's Q/K/V run as one launch named after its nodes");
        assert!(qkv.unwrap().bytes.is_some(), "{file}: the fused matvec reports the bytes it streams");
        if model.config.rope_longrope || matches!(model.config.rope_scaling, RopeScaling::Yarn { .. }) {
            assert!(!fused_ops.iter().any(|o| o.kernel.contains("rope_kv")), "{file}: a YaRN/LongRoPE rope was fused");
        }
    }
}

/// A session holds weights + KV cache + at most 10% more: prefill passes shrink (in 64-token
/// steps) until their activations fit a tenth of the weights and cache. SmolLM2 is small enough
/// that 512-token passes would not (17 MiB of activations against 113 MiB of weights and cache).
#[test]
fn a_session_keeps_its_activations_within_a_tenth_of_weights_and_kv_cache() {
    let Some(path) = common::model("variants/smol-Q4_K_M.gguf") else { return };
    let model = Model::load(&path).unwrap();
    let engine = Engine::builder().memory_only().build().unwrap();
    let mut g = GpuModel::new(&model, Device::cpu(), &engine).unwrap();
    g.precision = GpuPrecision::Fast;
    for capacity in [64, 641, 4096] {
        let s = GpuSession::new(&g, capacity, DEFAULT_MAX_BATCH).unwrap();
        let (weights, kv, act) = (g.report.weight_bytes, s.allocated.kv_cache, s.allocated.activations);
        println!(
            "capacity {capacity}: {} tokens a pass, activations {act} B, weights {weights} B + KV {kv} B",
            s.max_batch()
        );
        assert!(act * 10 <= weights + kv || s.max_batch() == 64, "capacity {capacity}: {act} B of activations");
        assert!(s.max_batch() % 64 == 0 && s.max_batch() <= DEFAULT_MAX_BATCH.min(capacity));
    }
}
