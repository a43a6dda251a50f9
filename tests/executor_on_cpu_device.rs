//! The GPU executor (plan, buffers, prefill passes of 256 tokens, replayed decode) driving the CPU
//! device, against the plain CPU session: runs in CI, where there is no GPU.

mod common;

use rocmforge::device::{Arg, CpuDevice, Device};
use rocmforge::exec::gpu::{GpuModel, GpuSession, DEFAULT_MAX_BATCH};
use rocmforge::exec::{ExecError, Model, Session};
use rocmforge::jit::Engine;

fn nmse(a: &[f32], b: &[f32]) -> f64 {
    let e: f64 = a.iter().zip(b).map(|(x, y)| ((x - y) as f64).powi(2)).sum();
    e / b.iter().map(|y| (*y as f64).powi(2)).sum::<f64>()
}

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
    ] {
        let Some(path) = common::model(file) else { continue };
        let model = Model::load(&path).unwrap();
        let engine = Engine::builder().memory_only().build().unwrap();
        let g = GpuModel::new(&model, Box::new(CpuDevice::new()), &engine).unwrap();
        // Longer than one prefill pass, so the second pass attends across the boundary.
        let n = DEFAULT_MAX_BATCH + 44;
        let prompt: Vec<u32> = (0..n as u32).map(|i| (i * 7919 + 11) % model.config.n_vocab).collect();
        let mut dev = GpuSession::new(&g, n + 4, DEFAULT_MAX_BATCH).unwrap();
        let mut cpu = Session::new(&model, n + 4).unwrap();
        let want = cpu.forward(&prompt).unwrap().to_vec();
        let got = dev.forward(&prompt).unwrap().to_vec();
        let e = nmse(&got, &want);
        assert!(e < 1e-10, "{file}: prefill NMSE {e:.2e}");
        let mut tok = rocmforge::exec::cpu::argmax(&want) as u32;
        for _ in 0..3 {
            let want = cpu.forward(&[tok]).unwrap().to_vec();
            let greedy = dev.forward_argmax(&[tok]).unwrap();
            assert_eq!(greedy as usize, rocmforge::exec::cpu::argmax(&want), "{file}: decode argmax");
            tok = greedy;
        }
        assert_eq!(dev.pos(), n + 3);
        assert!(matches!(dev.forward(&[1, 2]), Err(ExecError::ContextFull { .. })));
    }
}

#[test]
fn the_cpu_device_refuses_pointers_outside_its_allocations() {
    let d = CpuDevice::new();
    let p = d.alloc(16).unwrap();
    assert!(d.upload(p, &[1; 16]).is_ok());
    let e = d.upload(p.offset(8), &[1; 16]).unwrap_err().to_string();
    assert!(e.contains("past their allocation"), "{e}");
    let mut out = [0u8; 4];
    assert!(d.download(rocmforge::device::DevPtr(8), &mut out).is_err());
    let k = d.load_kernel(&rocmforge::kernels::KernelSpec::Argmax, &[], "argmax").unwrap();
    let e = d.launch(&k, [1, 1, 1], [1, 1, 1], &[Arg::I32(3)]).unwrap_err().to_string();
    assert!(e.contains("should be a pointer"), "{e}");
    d.free(p);
    assert!(d.upload(p, &[0]).is_err(), "freed memory is not writable");
}
