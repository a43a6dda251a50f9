//! GPU kernels against the CPU reference, and whole models GPU against CPU. Run on the device
//! machine (scripts/gpu_tests.sh); ignored in CI, which has no GPU.
//!
//! Per op: fresh random inputs, outputs poisoned (NaN) before each launch; matrix kernels within
//! NMSE 5e-4 (ggml's test-backend-ops bound), every other op within 1e-6.

mod common;

use rocmforge::device::{self, Arg, DevPtr, Device, Kernel};
use rocmforge::dtype::GgmlType;
use rocmforge::exec::cpu;
use rocmforge::exec::gpu::{GpuModel, GpuSession};
use rocmforge::exec::{Model, Session};
use rocmforge::jit::Engine;
use rocmforge::kernels::{AttnPhase, ElementwiseOp, GluKind, KernelSpec, RopeKind, ROWS_PER_BLOCK, TOKENS_PER_WARP};
use rocmforge::quant;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    /// Uniform in [-1, 1).
    fn f(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
    fn vec(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.f()).collect()
    }
}

struct Gpu {
    dev: Box<dyn Device>,
    engine: Engine,
}

impl Gpu {
    fn open() -> Gpu {
        let dev = device::open("cuda").expect("a CUDA GPU").expect("a device");
        let engine = Engine::builder().memory_only().targets(dev.target().cloned()).build().expect("NVRTC");
        Gpu { dev, engine }
    }
    fn kernel(&self, spec: KernelSpec) -> (Kernel, u32) {
        let k = self.engine.kernel(&spec, self.dev.target().unwrap()).unwrap_or_else(|e| panic!("{e}"));
        (self.dev.load_kernel(&spec, &k.code, &k.entry).unwrap(), k.block_threads)
    }
    fn bytes(&self, b: &[u8]) -> DevPtr {
        let p = self.dev.alloc(b.len()).unwrap();
        self.dev.upload(p, b).unwrap();
        p
    }
    fn f32s(&self, v: &[f32]) -> DevPtr {
        self.bytes(&v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<_>>())
    }
    fn i32s(&self, v: &[i32]) -> DevPtr {
        self.bytes(&v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<_>>())
    }
    /// `n` floats of NaN: any element a kernel fails to write shows up.
    fn poisoned(&self, n: usize) -> DevPtr {
        self.bytes(&vec![0xFF; n * 4])
    }
    fn read(&self, p: DevPtr, n: usize) -> Vec<f32> {
        let mut b = vec![0u8; n * 4];
        self.dev.synchronize().unwrap();
        self.dev.download(p, &mut b).unwrap();
        b.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect()
    }
    fn launch(&self, k: &(Kernel, u32), grid: [u32; 3], args: &[Arg]) {
        self.dev.launch(&k.0, grid, [k.1, 1, 1], args).unwrap();
    }
}

fn nmse(got: &[f32], want: &[f32]) -> f64 {
    assert_eq!(got.len(), want.len());
    assert!(got.iter().all(|v| v.is_finite()), "non-finite output (unwritten or overflowed)");
    let err: f64 = got.iter().zip(want).map(|(a, b)| ((a - b) as f64).powi(2)).sum();
    let norm: f64 = want.iter().map(|b| (*b as f64).powi(2)).sum();
    err / norm.max(1e-30)
}

/// Random weights of `ty` with sane scales: random bytes, then every f16 scale field set to a
/// small positive value (F16/BF16/F32 are drawn as floats).
fn random_weights(rng: &mut Rng, ty: GgmlType, rows: usize, k: usize) -> Vec<u8> {
    let n = rows * k;
    match ty {
        GgmlType::F32 => return rng.vec(n).iter().flat_map(|v| v.to_le_bytes()).collect(),
        GgmlType::F16 => return rng.vec(n).iter().flat_map(|v| half::f16::from_f32(*v).to_le_bytes()).collect(),
        GgmlType::BF16 => return rng.vec(n).iter().flat_map(|v| half::bf16::from_f32(*v).to_le_bytes()).collect(),
        _ => {}
    }
    let bb = ty.block_bytes();
    let mut bytes: Vec<u8> = (0..n / ty.block_elems() * bb).map(|_| rng.next() as u8).collect();
    let scale_offsets: &[usize] = match ty {
        GgmlType::Q8_0 | GgmlType::Q4_0 | GgmlType::Q5_0 => &[0],
        GgmlType::Q4_1 | GgmlType::Q5_1 | GgmlType::Q4_K | GgmlType::Q5_K => &[0, 2],
        GgmlType::Q6_K => &[208],
        other => panic!("no layout for {other}"),
    };
    for block in bytes.chunks_exact_mut(bb) {
        for &o in scale_offsets {
            let d = half::f16::from_f32(0.001 + 0.01 * (rng.next() % 100) as f32 / 100.0);
            block[o..o + 2].copy_from_slice(&d.to_le_bytes());
        }
    }
    bytes
}

#[test]
#[ignore = "needs a GPU: run by scripts/gpu_tests.sh on the device"]
fn matrix_kernels_match_the_cpu_for_every_weight_type() {
    let g = Gpu::open();
    let mut rng = Rng(1);
    let rows = 99;
    // 576 is not a whole number of 256-element chunks: it exercises the kernels' block-wise tail
    // (32- and 1-element formats only; k-quant rows are always whole chunks).
    for (ty, k) in
        quant::SUPPORTED.iter().flat_map(|&t| [(t, 512usize), (t, 576)]).filter(|&(t, k)| k % t.block_elems() == 0)
    {
        let w = random_weights(&mut rng, ty, rows, k);
        let wd = g.bytes(&w);
        for tokens in [1usize, 37] {
            let x = rng.vec(tokens * k);
            let mut want = vec![0f32; tokens * rows];
            cpu::linear(ty, &w, k, rows, &x, &mut want).unwrap();
            let (xd, yd) = (g.f32s(&x), g.poisoned(tokens * rows));
            if tokens == 1 {
                let kern = g.kernel(KernelSpec::MatVec { wtype: ty, k: k as u32 });
                let grid = [rows.div_ceil(ROWS_PER_BLOCK as usize) as u32, 1, 1];
                g.launch(&kern, grid, &[Arg::Ptr(wd), Arg::Ptr(xd), Arg::Ptr(yd), Arg::I32(rows as i32)]);
            } else {
                let kern = g.kernel(KernelSpec::MatMul { wtype: ty, k: k as u32 });
                let grid = [
                    rows.div_ceil(ROWS_PER_BLOCK as usize) as u32,
                    tokens.div_ceil(TOKENS_PER_WARP as usize) as u32,
                    1,
                ];
                g.launch(
                    &kern,
                    grid,
                    &[Arg::Ptr(wd), Arg::Ptr(xd), Arg::Ptr(yd), Arg::I32(rows as i32), Arg::I32(tokens as i32)],
                );
            }
            let e = nmse(&g.read(yd, tokens * rows), &want);
            println!("{ty:5} k {k} tokens {tokens:2}: NMSE {e:.2e}");
            assert!(e <= 5e-4, "{ty} k {k} with {tokens} tokens: NMSE {e:.2e}");
        }
        // Embedding rows of the same weights: exact dequantization.
        let ids = [3, 0, 98, 41, 41];
        let mut want = vec![0f32; ids.len() * k];
        cpu::embed(ty, &w, k, &ids, 0.5, &mut want).unwrap();
        let kern = g.kernel(KernelSpec::Embedding { wtype: ty, n_embd: k as u32 });
        let (idd, out) = (g.i32s(&ids.map(|i| i as i32)), g.poisoned(ids.len() * k));
        g.launch(&kern, [ids.len() as u32, 1, 1], &[Arg::Ptr(wd), Arg::Ptr(idd), Arg::Ptr(out), Arg::F32(0.5)]);
        let e = nmse(&g.read(out, ids.len() * k), &want);
        assert!(e <= 1e-6, "embedding {ty}: NMSE {e:.2e}");
    }
}

#[test]
#[ignore = "needs a GPU: run by scripts/gpu_tests.sh on the device"]
fn attention_matches_the_cpu_for_every_head_size_gqa_ratio_and_length() {
    let g = Gpu::open();
    let mut rng = Rng(2);
    let n_kv = 2usize;
    for head_dim in [64usize, 80, 96, 128, 256] {
        for gqa in [1usize, 3, 4, 8] {
            let n_head = n_kv * gqa;
            let capacity = 1024;
            let kc = rng.vec(capacity * n_kv * head_dim);
            let vc = rng.vec(capacity * n_kv * head_dim);
            let (kd, vd) = (g.f32s(&kc), g.f32s(&vc));
            // (phase, queries, first position, sliding window, softcap): lengths 1 to 1024.
            let cases = [
                (AttnPhase::Decode, 1usize, 0usize, None, None),
                (AttnPhase::Decode, 1, 517, None, Some(30.0f32)),
                (AttnPhase::Decode, 1, 1023, Some(256u32), None),
                (AttnPhase::Prefill, 64, 0, None, None),
                (AttnPhase::Prefill, 64, 960, Some(100), Some(50.0)),
            ];
            for (phase, nq, pos0, window, softcap) in cases {
                let q = rng.vec(nq * n_head * head_dim);
                let scale = 1.0 / (head_dim as f32).sqrt();
                let shape =
                    cpu::AttnShape { n_head, n_head_kv: n_kv, head_dim, head_dim_v: head_dim, scale, softcap, window };
                let mut want = vec![0f32; nq * n_head * head_dim];
                cpu::attention(&q, &kc, &vc, pos0, &shape, &mut want);
                let spec = KernelSpec::Attention {
                    phase,
                    head_dim: head_dim as u32,
                    gqa: gqa as u32,
                    sliding_window: window.is_some(),
                    softcap: softcap.is_some(),
                };
                let kern = g.kernel(spec);
                let (qd, od) = (g.f32s(&q), g.poisoned(want.len()));
                let args = [
                    Arg::Ptr(qd),
                    Arg::Ptr(kd),
                    Arg::Ptr(vd),
                    Arg::Ptr(od),
                    Arg::I32(n_head as i32),
                    Arg::I32(pos0 as i32),
                    Arg::F32(scale),
                    Arg::F32(softcap.unwrap_or(0.0)),
                    Arg::I32(window.unwrap_or(0) as i32),
                ];
                g.launch(&kern, [n_head as u32, nq as u32, 1], &args);
                let e = nmse(&g.read(od, want.len()), &want);
                assert!(e <= 1e-6, "{spec} at {pos0}+{nq}: NMSE {e:.2e}");
            }
        }
        println!("attention head_dim {head_dim}: GQA 1, 3, 4, 8 at lengths 1..1024 within 1e-6");
    }
}

#[test]
#[ignore = "needs a GPU: run by scripts/gpu_tests.sh on the device"]
fn the_other_ops_match_the_cpu_within_1e_6() {
    let g = Gpu::open();
    let mut rng = Rng(3);
    // RMSNorm over rows of 576 and of 256 (a gemma3 head).
    for n in [576usize, 256] {
        let rows = 7;
        let (x, w) = (rng.vec(rows * n), rng.vec(n));
        let mut want = vec![0f32; rows * n];
        cpu::rms_norm(&x, &w, n, 1e-6, &mut want);
        let kern = g.kernel(KernelSpec::RmsNorm { n: n as u32, add_one: false });
        let (xd, wd, yd) = (g.f32s(&x), g.f32s(&w), g.poisoned(rows * n));
        g.launch(&kern, [rows as u32, 1, 1], &[Arg::Ptr(xd), Arg::Ptr(wd), Arg::Ptr(yd), Arg::F32(1e-6)]);
        let e = nmse(&g.read(yd, rows * n), &want);
        assert!(e <= 1e-6, "rmsnorm {n}: {e:.2e}");
    }
    // Rope, both styles, whole and partial; then Llama 3's per-pair frequency divisors with a
    // linear scale, at positions past 8192 where they matter.
    for (kind, head_dim, rope_dims, factors, p0) in [
        (RopeKind::Normal, 64usize, 64usize, false, 100u32),
        (RopeKind::Neox, 128, 64, false, 100),
        (RopeKind::Neox, 256, 256, false, 100),
        (RopeKind::Normal, 128, 128, true, 9000),
    ] {
        let (tokens, heads) = (5usize, 3usize);
        let x = rng.vec(tokens * heads * head_dim);
        let pos: Vec<u32> = (p0..p0 + tokens as u32).collect();
        let ff: Vec<f32> = (0..rope_dims / 2).map(|i| 1.0 + 31.0 * (i as f32 / (rope_dims / 2) as f32)).collect();
        let (base, freq_scale) = if factors { (500000.0, 0.5) } else { (10000.0, 1.0) };
        let mut want = x.clone();
        let neox = kind == RopeKind::Neox;
        let ffs = factors.then_some(ff.as_slice());
        cpu::rope(&mut want, &pos, heads, head_dim, rope_dims, neox, base, freq_scale, ffs);
        let kern = g.kernel(KernelSpec::Rope { head_dim: head_dim as u32, rope_dims: rope_dims as u32, kind });
        let (xd, pd) = (g.f32s(&x), g.i32s(&pos.iter().map(|&p| p as i32).collect::<Vec<_>>()));
        let ffd = if factors { g.f32s(&ff) } else { DevPtr(0) };
        let args =
            [Arg::Ptr(xd), Arg::Ptr(pd), Arg::I32(heads as i32), Arg::F32(base), Arg::F32(freq_scale), Arg::Ptr(ffd)];
        g.dev.launch(&kern.0, [tokens as u32, heads as u32, 1], [rope_dims as u32 / 2, 1, 1], &args).unwrap();
        let e = nmse(&g.read(xd, x.len()), &want);
        assert!(e <= 1e-6, "rope {kind:?} {head_dim}/{rope_dims} factors {factors}: {e:.2e}");
    }
    let n = 3000usize;
    let grid = [n.div_ceil(256) as u32, 1, 1];
    for kind in [GluKind::SwiGlu, GluKind::GeGlu] {
        let (a, b) = (rng.vec(n), rng.vec(n));
        let mut want = vec![0f32; n];
        cpu::glu(&a, &b, kind, &mut want);
        let kern = g.kernel(KernelSpec::Glu { kind });
        let (ad, bd, od) = (g.f32s(&a), g.f32s(&b), g.poisoned(n));
        g.launch(&kern, grid, &[Arg::Ptr(ad), Arg::Ptr(bd), Arg::Ptr(od), Arg::I32(n as i32)]);
        let e = nmse(&g.read(od, n), &want);
        assert!(e <= 1e-6, "{kind:?}: {e:.2e}");
    }
    for op in [ElementwiseOp::Add, ElementwiseOp::AddBias, ElementwiseOp::Scale, ElementwiseOp::Softcap] {
        let (a, b, cols, s) = (rng.vec(n), rng.vec(n), 300usize, 3.5f32);
        let want: Vec<f32> = (0..n)
            .map(|i| match op {
                ElementwiseOp::Add => a[i] + b[i],
                ElementwiseOp::AddBias => a[i] + b[i % cols],
                ElementwiseOp::Scale => a[i] * s,
                ElementwiseOp::Softcap => s * (a[i] / s).tanh(),
            })
            .collect();
        let kern = g.kernel(KernelSpec::Elementwise { op });
        let (ad, bd, od) = (g.f32s(&a), g.f32s(&b), g.poisoned(n));
        g.launch(
            &kern,
            grid,
            &[Arg::Ptr(ad), Arg::Ptr(bd), Arg::Ptr(od), Arg::I32(n as i32), Arg::I32(cols as i32), Arg::F32(s)],
        );
        let e = nmse(&g.read(od, n), &want);
        assert!(e <= 1e-6, "{op:?}: {e:.2e}");
    }
    // Softmax and argmax over a vocabulary-sized row.
    let v: Vec<f32> = rng.vec(49152).iter().map(|x| x * 12.0).collect();
    let mut want = v.clone();
    cpu::softmax(&mut want);
    let kern = g.kernel(KernelSpec::Softmax);
    let (vd, od) = (g.f32s(&v), g.poisoned(v.len()));
    g.launch(&kern, [1, 1, 1], &[Arg::Ptr(vd), Arg::Ptr(od), Arg::I32(v.len() as i32)]);
    let e = nmse(&g.read(od, v.len()), &want);
    assert!(e <= 1e-6, "softmax: {e:.2e}");
    let kern = g.kernel(KernelSpec::Argmax);
    let idx = g.i32s(&[-1]);
    g.launch(&kern, [1, 1, 1], &[Arg::Ptr(vd), Arg::Ptr(idx), Arg::I32(v.len() as i32)]);
    let mut b = [0u8; 4];
    g.dev.download(idx, &mut b).unwrap();
    assert_eq!(i32::from_le_bytes(b) as usize, cpu::argmax(&v));
    // KV append at an offset.
    let (row, tokens, pos0) = (192usize, 9usize, 40usize);
    let (k, v2) = (rng.vec(row * tokens), rng.vec(row * tokens));
    let (kc, vc) = (g.poisoned(row * 64), g.poisoned(row * 64));
    let kern = g.kernel(KernelSpec::KvAppend);
    let args = [
        Arg::Ptr(g.f32s(&k)),
        Arg::Ptr(g.f32s(&v2)),
        Arg::Ptr(kc),
        Arg::Ptr(vc),
        Arg::I32(row as i32),
        Arg::I32(tokens as i32),
        Arg::I32(pos0 as i32),
    ];
    g.launch(&kern, [(row * tokens).div_ceil(256) as u32, 1, 1], &args);
    let got_k = g.read(kc.offset(pos0 * row * 4), row * tokens);
    let got_v = g.read(vc.offset(pos0 * row * 4), row * tokens);
    assert_eq!((got_k, got_v), (k, v2));
    println!("rmsnorm, rope, glu, elementwise, softmax, argmax, kv_append: within 1e-6");
}

/// GPU against CPU on a whole model: logits NMSE ≤ 1e-3 after a prefill, and the same 32 greedy
/// tokens.
fn gpu_matches_cpu(path: &std::path::Path, prompt_len: usize) {
    let model = Model::load(path).unwrap();
    let dev = device::open("cuda").unwrap().unwrap();
    let engine = Engine::builder().targets(dev.target().cloned()).build().unwrap();
    let gpu = GpuModel::new(&model, dev, &engine).unwrap();
    let n_vocab = model.config.n_vocab;
    let prompt: Vec<u32> = (0..prompt_len as u32).map(|i| (i * 7919 + 13) % n_vocab).collect();
    let steps = 32;
    let mut cs = Session::new(&model, prompt_len + steps + 1).unwrap();
    let mut gs = GpuSession::new(&gpu, prompt_len + steps + 1, 64).unwrap();
    let want = cs.forward(&prompt).unwrap().to_vec();
    let got = gs.forward(&prompt).unwrap().to_vec();
    let e = nmse(&got, &want);
    let (mut ct, mut gt) = (cpu::argmax(&want) as u32, cpu::argmax(&got) as u32);
    let (mut cpu_tokens, mut gpu_tokens) = (vec![ct], vec![gt]);
    let mut worst = e;
    for _ in 1..steps {
        let c = cs.forward(&[ct]).unwrap().to_vec();
        let g = gs.forward(&[gt]).unwrap().to_vec();
        worst = worst.max(nmse(&g, &c));
        ct = cpu::argmax(&c) as u32;
        gt = cpu::argmax(&g) as u32;
        cpu_tokens.push(ct);
        gpu_tokens.push(gt);
    }
    println!(
        "{}: prefill NMSE {e:.2e}, worst decode NMSE {worst:.2e}, greedy tokens equal: {}",
        path.display(),
        cpu_tokens == gpu_tokens
    );
    assert!(worst <= 1e-3, "{}: GPU vs CPU NMSE {worst:.2e}", path.display());
    assert_eq!(gpu_tokens, cpu_tokens, "{}: greedy tokens differ", path.display());
}

#[test]
#[ignore = "needs a GPU: run by scripts/gpu_tests.sh on the device"]
fn smollm2_variants_on_the_gpu_match_the_cpu() {
    let mut n = 0;
    for file in [
        "SmolLM2-135M-Instruct.Q4_1.gguf",
        "variants/smol-F32.gguf",
        "variants/smol-F16.gguf",
        "variants/smol-Q8_0.gguf",
        "variants/smol-Q6_K.gguf",
        "variants/smol-Q4_K_M.gguf",
    ] {
        let path = common::models_dir().join(file);
        if path.exists() {
            gpu_matches_cpu(&path, 40);
            n += 1;
        } else {
            println!("{} absent on this machine", path.display());
        }
    }
    assert!(n > 0, "no SmolLM2 file in {}", common::models_dir().display());
}

#[test]
#[ignore = "needs a GPU: run by scripts/gpu_tests.sh on the device"]
fn synthetic_7b_q4_k_m_on_the_gpu_matches_the_cpu() {
    let Some(path) = std::env::var_os("ROCMFORGE_SYN7B") else {
        println!("ROCMFORGE_SYN7B unset: skipped");
        return;
    };
    gpu_matches_cpu(std::path::Path::new(&path), 16);
}

/// Llama 3 rope frequency factors through the GPU rope kernel: the synthetic Llama 3 on a
/// 300-token prompt (where its factors change the logits by NMSE 4e-2), GPU against CPU.
#[test]
#[ignore = "needs a GPU: run by scripts/gpu_tests.sh on the device"]
fn synthetic_llama3_on_the_gpu_matches_the_cpu() {
    let path = common::models_dir().join("variants/llama3-synth-F32.gguf");
    assert!(path.exists(), "{} is absent (scripts/make_variants.sh writes it)", path.display());
    gpu_matches_cpu(&path, 300);
}

/// qwen3 (per-head Q/K norms, 128-wide heads over a hidden size of 256) in F32 and Q4_K_M, GPU
/// against CPU.
#[test]
#[ignore = "needs a GPU: run by scripts/gpu_tests.sh on the device"]
fn synthetic_qwen3_on_the_gpu_matches_the_cpu() {
    for file in ["variants/qwen3-synth-F32.gguf", "variants/qwen3-synth-Q4_K_M.gguf"] {
        let path = common::models_dir().join(file);
        assert!(path.exists(), "{} is absent (scripts/make_variants.sh writes it)", path.display());
        gpu_matches_cpu(&path, 40);
    }
}
