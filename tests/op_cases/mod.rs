//! The op case table, kept as llama.cpp's test-backend-ops keeps its own: each kernel against the
//! CPU reference (`rocmforge::reference`) on fresh random inputs, outputs poisoned with NaN before
//! the launch, and every output element held to a bound derived from the arithmetic of the two
//! sides (bit-exact where both do the same operations). tests/gpu.rs runs the table on the GPU;
//! tests/executor_on_cpu_device.rs runs it on the CPU device in CI, where it exercises the launch
//! descriptions, buffer views and launch checks (the errors there are 0: the same reference runs).
//!
//! To add a case: push a [`Case`] in [`cases`]: a name, the rule its bound follows, and a closure
//! that makes inputs, launches one description through the [`Harness`] and returns what it
//! [`Measured`]. Bounds are per element, in the units of the output.

#![allow(dead_code)]

use rocmforge::device::{BufView, Device, DeviceBuffer, DeviceElem, Kernel};
use rocmforge::dtype::GgmlType;
use rocmforge::kernels::launch::{self, Launch};
use rocmforge::kernels::{F16Tile, GluKind, KernelSpec, KvPrecision, MmvqLayout, RopeExt, RopeKind};
use rocmforge::{quant, reference};

/// The unit roundoff of f32: a correctly rounded operation is within a factor (1 ± U) of exact.
pub const U: f64 = f32::EPSILON as f64 / 2.0;

/// γ(n) = n·U / (1 − n·U): the relative error of n rounded operations, e.g. of a sum of n products
/// in any order against Σ|products| (Higham, Accuracy and Stability, ch. 3).
pub fn gamma(n: usize) -> f64 {
    let nu = n as f64 * U;
    nu / (1.0 - nu)
}

/// All bits set: a NaN that no kernel computes, so an unwritten element cannot pass.
pub const POISON: f32 = f32::from_bits(u32::MAX);

pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    /// Uniform in [-1, 1).
    pub fn f(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
    pub fn vec(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.f()).collect()
    }
}

/// Random weights of `ty` with sane scales: random bytes, then every f16 scale field set to a
/// small positive value (F16/BF16/F32 are drawn as floats).
pub fn random_weights(rng: &mut Rng, ty: GgmlType, rows: usize, k: usize) -> Vec<u8> {
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
        GgmlType::Q8_0 | GgmlType::Q4_0 | GgmlType::Q5_0 | GgmlType::IQ4_NL | GgmlType::IQ4_XS => &[0],
        GgmlType::Q4_1 | GgmlType::Q5_1 | GgmlType::Q4_K | GgmlType::Q5_K => &[0, 2],
        GgmlType::Q6_K => &[208],
        GgmlType::Q3_K => &[108],
        GgmlType::Q2_K => &[80, 82],
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

/// A device and where its kernels come from (the JIT on a GPU, the reference on the CPU device).
pub struct Harness {
    pub device: Device,
    kernel: Box<dyn Fn(&KernelSpec) -> Kernel>,
}

impl Harness {
    pub fn new(device: Device, kernel: impl Fn(&KernelSpec) -> Kernel + 'static) -> Harness {
        Harness { device, kernel: Box::new(kernel) }
    }

    pub fn upload<T: DeviceElem>(&self, v: &[T]) -> DeviceBuffer<T> {
        self.device.upload(v).expect("test inputs fit the device")
    }

    /// `n` floats of [`POISON`].
    pub fn poisoned(&self, n: usize) -> DeviceBuffer<f32> {
        self.upload(&vec![POISON; n])
    }

    /// Launches one description on its kernel; a refused launch fails the case.
    pub fn launch<'a>(&self, l: impl Into<Launch<BufView<'a>>>) {
        let l = l.into();
        let kernel = (self.kernel)(&l.spec());
        kernel.launch(&l).unwrap_or_else(|e| panic!("the launch should pass its checks: {e}"));
    }

    pub fn read<T: DeviceElem>(&self, b: &DeviceBuffer<T>) -> Vec<T> {
        self.device.synchronize().expect("the device should finish its launches");
        b.to_vec().expect("a whole buffer reads back")
    }
}

/// What a case measured: the kernel's output, the reference's, and per element the largest
/// |got − want| the arithmetic allows (`None`: bit-exact, NaN bits included). Where a bound
/// is not 0, `exact` is the op done in f64: the reference itself must lie within the bound of it
/// (one side's rounding alone), which holds each bound to the arithmetic on every device, CI's
/// CPU device included.
pub struct Measured {
    pub got: Vec<f32>,
    pub want: Vec<f32>,
    pub bound: Option<Vec<f64>>,
    pub exact: Option<Vec<f64>>,
}

pub struct Case {
    pub name: String,
    /// How the bound is set, printed beside the measurement.
    pub rule: &'static str,
    run: Box<dyn Fn(&Harness) -> Measured>,
}

fn case(name: String, rule: &'static str, run: impl Fn(&Harness) -> Measured + 'static) -> Case {
    Case { name, rule, run: Box::new(run) }
}

/// The largest error, the worst error-to-bound ratio, the elements out of bounds, and the
/// reference's worst distance from f64 arithmetic against the bound.
struct Outcome {
    max_err: f64,
    worst: f64,
    failed: usize,
    first: Option<String>,
    reference: Option<f64>,
}

fn evaluate(m: &Measured) -> Outcome {
    assert_eq!(m.got.len(), m.want.len(), "the output has the reference's length");
    let mut o = Outcome { max_err: 0.0, worst: 0.0, failed: 0, first: None, reference: None };
    if let (Some(b), Some(exact)) = (&m.bound, &m.exact) {
        assert_eq!(exact.len(), m.want.len(), "the f64 result has the reference's length");
        let ratio = |i: usize| {
            let d = (m.want[i] as f64 - exact[i]).abs();
            if d == 0.0 {
                0.0
            } else {
                d / b[i]
            }
        };
        o.reference = Some((0..exact.len()).map(ratio).fold(0.0, f64::max));
    }
    for (i, (&g, &w)) in m.got.iter().zip(&m.want).enumerate() {
        let (err, ratio) = match &m.bound {
            None if g.to_bits() == w.to_bits() => (0.0, 0.0),
            None => ((g as f64 - w as f64).abs(), f64::INFINITY),
            Some(b) => {
                let err = if g.is_finite() { (g as f64 - w as f64).abs() } else { f64::INFINITY };
                let ratio = if err == 0.0 { 0.0 } else { err / b[i] };
                (err, ratio)
            }
        };
        if err.is_finite() {
            o.max_err = o.max_err.max(err);
        }
        o.worst = o.worst.max(ratio);
        if ratio > 1.0 {
            o.failed += 1;
            if o.first.is_none() {
                let b = m.bound.as_ref().map_or(0.0, |b| b[i]);
                o.first = Some(format!("element {i}: got {g:e}, want {w:e}, bound {b:.2e}"));
            }
        }
    }
    o
}

/// Runs every case whose name contains `filter`, printing each measurement; returns the failures.
pub fn run(h: &Harness, cases: &[Case], filter: &str) -> Vec<String> {
    let mut failures = Vec::new();
    let mut ran = 0;
    for c in cases.iter().filter(|c| c.name.contains(filter)) {
        let m = (c.run)(h);
        let o = evaluate(&m);
        ran += 1;
        let reference_ok = o.reference.is_none_or(|r| r <= 1.0);
        let verdict = if o.failed == 0 && reference_ok { "ok" } else { "FAILED" };
        let reference = o.reference.map_or("-".to_string(), |r| format!("{r:.1e}"));
        println!(
            "{:<58} max |Δ| {:8.2e}  worst |Δ|/bound {:7.2e}  reference vs f64 {reference:>7}  {verdict:6} bound: {}",
            c.name, o.max_err, o.worst, c.rule
        );
        if !reference_ok {
            failures.push(format!("{}: the CPU reference alone is {reference} of the bound from f64", c.name));
        }
        if o.failed > 0 {
            failures.push(format!(
                "{}: {} of {} out of bounds, first {}",
                c.name,
                o.failed,
                m.got.len(),
                o.first.unwrap()
            ));
        }
    }
    println!("{ran} cases on {:?}, {} failed", h.device, failures.len());
    assert!(ran > 0, "no case matches {filter:?}");
    failures
}

/// Attention queries at (queries, first position, sliding window, soft-cap): lengths 1 to 1024.
const ATTN_SHAPES: [(usize, usize, Option<u32>, Option<f32>); 5] = [
    (1, 0, None, None),
    (1, 517, None, Some(30.0)),
    (1, 1023, Some(256), None),
    (64, 0, None, None),
    (64, 960, Some(100), Some(50.0)),
];

/// Prefill passes for flash attention (queries, first position, window, soft-cap): a whole
/// 512-token pass, one of 256 past a window, 7 odd tokens deep in the cache, a pass past the
/// first 512 with Gemma's cap, and passes that start and end inside the kernel's 16-row tiles
/// (33 queries from 15; 48 from 37 under a window of 5, shorter than a tile of positions).
const FLASH_SHAPES: [(usize, usize, Option<u32>, Option<f32>); 6] = [
    (512, 0, None, None),
    (256, 300, Some(128), None),
    (7, 1000, None, Some(30.0)),
    (512, 512, None, Some(50.0)),
    (33, 15, None, Some(30.0)),
    (48, 37, Some(5), None),
];

/// Decode attention depths (positions attended, the query's own included): one position, either
/// side of the 256-position chunk, and long contexts split over many blocks.
const DECODE_DEPTHS: [usize; 6] = [1, 255, 256, 257, 1000, 4096];

/// Decode attention's (sliding window, soft-cap) settings: plain, Gemma 2's cap, a window shorter
/// than the deeper contexts, and both.
const DECODE_FLAGS: [(Option<u32>, Option<f32>); 4] =
    [(None, None), (None, Some(30.0)), (Some(256), None), (Some(100), Some(50.0))];

/// Rope positions: 0 to 32768.
const ROPE_POSITIONS: [u32; 8] = [0, 1, 100, 4095, 8191, 16383, 32767, 32768];

/// Every case. `full` adds the head sizes and GQA ratios only a GPU run needs (the CPU device
/// runs the same reference code at each, so a few show its plumbing).
pub fn cases(full: bool) -> Vec<Case> {
    let mut all = Vec::new();
    let mut seed = 0u64;
    let mut next_seed = || {
        seed += 1;
        0x9E37_79B9_7F4A_7C15u64.wrapping_mul(seed)
    };
    for &ty in quant::SUPPORTED {
        // 576 is not a whole number of 256-element chunks: the kernels' block-wise tail.
        for k in [512usize, 576].into_iter().filter(|k| k % ty.block_elems() == 0) {
            for tokens in [1usize, 37] {
                let s = next_seed();
                let op = if tokens == 1 { "matvec" } else { "matmul" };
                all.push(case(format!("{op} {ty} k {k} tokens {tokens}"), "2γ(K)·Σ|w·x| per output", move |h| {
                    matrix(h, s, ty, k, tokens)
                }));
            }
            let s = next_seed();
            all.push(case(format!("embedding {ty} k {k}"), "bit-exact", move |h| embedding(h, s, ty, k)));
        }
    }
    int8_cases(&mut all, &mut next_seed, full);
    fused_cases(&mut all, &mut next_seed, full);
    let (head_dims, gqas): (&[usize], &[usize]) =
        if full { (&[64, 80, 96, 128, 256], &[1, 3, 4, 8]) } else { (&[64, 256], &[1, 4]) };
    for &hd in head_dims {
        for &gqa in gqas {
            for (nq, pos0, window, softcap) in ATTN_SHAPES {
                let s = next_seed();
                let name = format!(
                    "attention hd {hd} gqa {gqa} at {pos0}+{nq}{}{}",
                    window.map_or(String::new(), |w| format!(" window {w}")),
                    softcap.map_or(String::new(), |c| format!(" softcap {c}"))
                );
                let rule = "V·(4·ε_score + (4L+16)·U), ε_score = γ(hd+2)·S + 2U·S (+ 6U·cap)";
                all.push(case(name.clone(), rule, move |h| {
                    attention(h, s, hd, gqa, nq, pos0, window, softcap, KvPrecision::F32, false)
                }));
                let s = next_seed();
                all.push(case(format!("{name} f16 cache"), rule, move |h| {
                    attention(h, s, hd, gqa, nq, pos0, window, softcap, KvPrecision::F16, false)
                }));
            }
        }
    }
    // Prefill flash attention (f16 cache): the general kernel's shapes and whole prefill passes,
    // at a pass's start and deep in the cache, with windows and soft-caps.
    let (head_dims, gqas): (&[usize], &[usize]) =
        if full { (&[64, 80, 96, 128, 256], &[1, 3, 4, 8]) } else { (&[64, 256], &[1, 4]) };
    for &hd in head_dims {
        for &gqa in gqas {
            for (nq, pos0, window, softcap) in ATTN_SHAPES.into_iter().chain(FLASH_SHAPES) {
                // Whole passes on the GPU run only, at two GQA ratios (the CPU side of each is long).
                if nq > 64 && !(full && (gqa == 1 || gqa == 4)) {
                    continue;
                }
                let s = next_seed();
                let name = format!(
                    "flash_attn hd {hd} gqa {gqa} at {pos0}+{nq}{}{}",
                    window.map_or(String::new(), |w| format!(" window {w}")),
                    softcap.map_or(String::new(), |c| format!(" softcap {c}"))
                );
                let rule = "V·(e^(2ε_cpu)−1 + e^(2ε_f16)−1 + (6L+16)·U + u16 + L·2⁻²⁵), ε_cpu = γ(hd+2)·S + 2U·S, \
                            ε_f16 = 2γ(hd+2)·(1+u16)·S + (u16+4U)·S + 2⁻²⁵·K1 (+ 6U·cap each)";
                all.push(case(name, rule, move |h| {
                    attention(h, s, hd, gqa, nq, pos0, window, softcap, KvPrecision::F16, true)
                }));
            }
        }
    }
    // Split decode attention: the GPU's head sizes and GQA groups of the target models (7B: 128/1,
    // SmolLM2: 64/3, Gemma 3: 256/4, Qwen2 1.5B: 128/6).
    let (head_dims, gqas, flags): (&[usize], &[usize], &[_]) =
        if full { (&[64, 128, 256], &[1, 3, 4, 6], &DECODE_FLAGS) } else { (&[64, 256], &[1, 4], &DECODE_FLAGS[2..]) };
    for &hd in head_dims {
        for &gqa in gqas {
            for depth in DECODE_DEPTHS {
                for &(window, softcap) in flags {
                    let name = format!(
                        "attn_decode hd {hd} gqa {gqa} depth {depth}{}{}",
                        window.map_or(String::new(), |w| format!(" window {w}")),
                        softcap.map_or(String::new(), |c| format!(" softcap {c}"))
                    );
                    let rule = "V·(4·ε_score + (4L+24)·U), ε_score = γ(hd+2)·S + 4U·S (+ 6U·cap); counters back to 0";
                    for kv in [KvPrecision::F16, KvPrecision::F32] {
                        // f32 caches once per shape, on the GPU run only.
                        if kv == KvPrecision::F32 && !(full && depth == 1000) {
                            continue;
                        }
                        let s = next_seed();
                        let name = format!("{name} {} cache", kv.name());
                        all.push(case(name, rule, move |h| attn_decode(h, s, hd, gqa, 2, depth, window, softcap, kv)));
                    }
                }
            }
        }
    }
    // Many KV heads ask for fewer blocks per head, so longer chunks: several block steps each, a
    // last chunk shorter than the others (1000), up to the largest (256 positions, at 9000 over
    // 32 KV heads).
    let wide: &[(usize, usize, usize)] = if full { &[(128, 1, 32), (64, 3, 16), (256, 4, 8)] } else { &[(128, 1, 32)] };
    let mut shapes: Vec<(usize, usize, usize, usize)> =
        wide.iter().flat_map(|&(hd, gqa, n_kv)| [(hd, gqa, n_kv, 1000), (hd, gqa, n_kv, 4096)]).collect();
    if full {
        shapes.push((64, 1, 32, 9000));
    }
    for (hd, gqa, n_kv, depth) in shapes {
        let s = next_seed();
        let name = format!("attn_decode hd {hd} gqa {gqa} kv heads {n_kv} depth {depth} f16 cache");
        let rule = "V·(4·ε_score + (4L+24)·U), ε_score = γ(hd+2)·S + 4U·S; counters back to 0";
        all.push(case(name, rule, move |h| attn_decode(h, s, hd, gqa, n_kv, depth, None, None, KvPrecision::F16)));
    }
    for (n, rows, add_one, in_place) in
        [(576usize, 7usize, false, false), (256, 7, true, false), (4096, 3, false, false), (64, 15, false, true)]
    {
        let s = next_seed();
        let name = format!(
            "rmsnorm n {n}{}{}",
            if add_one { " (1 + w)" } else { "" },
            if in_place { " in place" } else { "" }
        );
        all.push(case(name, "|y|·(γ(n)/2 + 20U)", move |h| rms_norm(h, s, n, rows, add_one, in_place)));
    }
    // YaRN as a Qwen2.5 file by 4 runs it (pairs 20..45 ramped, cos/sin scaled), and LongRoPE's
    // magnitude scale alone.
    let yarn = RopeExt { ext_factor: 1.0, attn_factor: 1.0, corr_dims: [20.0, 45.0] };
    let longrope = RopeExt { attn_factor: 1.19, ..RopeExt::NONE };
    for (kind, hd, rd, base, fs, llama3, ext) in [
        (RopeKind::Normal, 64usize, 64usize, 1e4f32, 1.0f32, false, RopeExt::NONE),
        (RopeKind::Neox, 128, 64, 1e4, 1.0, false, RopeExt::NONE),
        (RopeKind::Neox, 256, 256, 1e6, 1.0, false, RopeExt::NONE),
        (RopeKind::Normal, 128, 128, 5e5, 0.25, false, RopeExt::NONE),
        (RopeKind::Normal, 128, 128, 5e5, 1.0, true, RopeExt::NONE),
        (RopeKind::Neox, 64, 64, 1e6, 0.5, true, RopeExt::NONE),
        (RopeKind::Neox, 128, 128, 1e6, 0.25, false, yarn),
        (RopeKind::Neox, 96, 96, 1e4, 1.0, true, longrope),
    ] {
        let s = next_seed();
        let factors = if llama3 { " with frequency divisors" } else { "" };
        let ext_name = match ext {
            e if e.ext_factor != 0.0 => format!(" YaRN ramp {:?}", e.corr_dims),
            e if e.attn_factor != 1.0 => format!(" cos/sin × {}", e.attn_factor),
            _ => String::new(),
        };
        let name = format!("rope {kind:?} hd {hd} dims {rd} base {base:e} scale {fs}{factors}{ext_name} at 0..32768");
        let rule = "(|x0|+|x1|)·m·(Δθ + 10U + [m ≠ 1]·6U), Δθ = θ·(4i + 11 + [divisor ≠ 1] + 2·ln base + [YaRN]·10)·U \
                    (θ unscaled under YaRN), m the cos/sin scale; unrotated exact";
        all.push(case(name, rule, move |h| rope(h, s, kind, hd, rd, base, fs, llama3, ext)));
    }
    for kind in [GluKind::SwiGlu, GluKind::GeGlu] {
        let s = next_seed();
        let rule = if kind == GluKind::SwiGlu { "16U·|want|" } else { "|up|·(|g|·(6U·|t| + 5U·|z|) + 8U·|act|)" };
        all.push(case(format!("glu {kind:?}"), rule, move |h| glu(h, s, kind)));
    }
    let s = next_seed();
    all.push(case("add".into(), "bit-exact", move |h| add(h, s)));
    let s = next_seed();
    all.push(case("add_bias cols 300".into(), "bit-exact", move |h| add_bias(h, s)));
    let s = next_seed();
    all.push(case("softcap 3.5".into(), "16U·|want|", move |h| softcap(h, s)));
    for n in [49152usize, 262144] {
        let s = next_seed();
        all.push(case(format!("argmax n {n}"), "bit-exact (the index)", move |h| argmax(h, s, n)));
    }
    for kv in [KvPrecision::F32, KvPrecision::F16] {
        let s = next_seed();
        let rule = "bit-exact (f16: rounded to nearest even), the rest untouched";
        all.push(case(format!("kv_append row 192 at 40+9 {} cache", kv.name()), rule, move |h| kv_append(h, s, kv)));
    }
    f16_prefill_cases(&mut all, &mut next_seed, full);
    all
}

/// The int8 decode: the q8_1 quantizer (bit-exact against `quantize_row_q8_1`) and the int8
/// matvec of every weight type it takes, on the same q8_1 input as the CPU's scalar reference, at
/// odd row counts, SmolLM2's K = 576, Gemma's 640 and 2048, and (GPU runs) the 7B's 4096 and
/// 11008 and every threads-per-row and rows-per-thread the layout takes.
fn int8_cases(all: &mut Vec<Case>, next_seed: &mut impl FnMut() -> u64, full: bool) {
    for n in [32usize, 576, 4096, 11008] {
        let s = next_seed();
        all.push(case(format!("quantize_q8_1 n {n}"), "bit-exact", move |h| quantize_q8_1(h, s, n)));
    }
    mmq_cases(all, next_seed, full);
    let mut shapes = vec![(512usize, 99usize), (576, 99), (640, 33), (2048, 65)];
    if full {
        shapes.extend([(4096, 1027), (11008, 17)]);
    }
    let rule = "2γ(2·K/32 + 4)·Σ|terms| per output (sum order of block partials)";
    for &ty in quant::SUPPORTED.iter().filter(|t| rocmforge::kernels::int8_matvec_type(**t)) {
        for &(k, rows) in shapes.iter().filter(|(k, _)| k % ty.block_elems() == 0) {
            let s = next_seed();
            let layout = MmvqLayout::default_for(ty, k as u32);
            all.push(case(format!("mmvq {ty} k {k} rows {rows}"), rule, move |h| mmvq(h, s, ty, k, rows, layout)));
        }
        if full {
            for (threads_per_row, rows_per_thread) in [(32, 1), (64, 3), (128, 1), (128, 4)] {
                let s = next_seed();
                let layout = MmvqLayout { threads_per_row, rows_per_thread };
                let name = format!("mmvq {ty} k 2048 rows 37 threads {threads_per_row} rows/thread {rows_per_thread}");
                all.push(case(name, rule, move |h| mmvq(h, s, ty, 2048, 37, layout)));
            }
        }
    }
}

/// The fused int8 decode's kernels (src/exec/fuse.rs), each held to the CPU reference of the ops
/// it fuses, on the same input: the float outputs within the bounds of the unfused ops, and the
/// q8_1 blocks each writes bit-exact against `quantize_row_q8_1` of the floats it wrote itself (a
/// last-ulp difference of a float may move a quant by one; the quantizer must not add its own).
fn fused_cases(all: &mut Vec<Case>, next_seed: &mut impl FnMut() -> u64, full: bool) {
    // SmolLM2's 576, Gemma 3's 640, the 7B's 4096; with and without the residual add and (1 + w).
    for (n, add_one, residual) in
        [(576usize, false, true), (640, true, true), (4096, false, true), (4096, false, false)]
    {
        let s = next_seed();
        let name = format!(
            "rmsnorm_q8_1 n {n}{}{}",
            if residual { " after the residual add" } else { "" },
            if add_one { " (1 + w)" } else { "" }
        );
        let rule = "x += d bit-exact; y: |y|·(γ(n)/2 + 20U); q8_1 = quantize(y as written) bit-exact";
        all.push(case(name, rule, move |h| rms_norm_q8_1(h, s, n, add_one, residual)));
    }
    // Q4_K_M's Q/K/V (Q4_K, Q4_K, Q6_K) and gate/up, SmolLM2's narrow rows, qwen2's biases, and (GPU
    // runs) every int8 type in each segment position.
    let mut multis: Vec<(usize, Vec<GgmlType>, Vec<usize>, bool)> = vec![
        (4096, vec![GgmlType::Q4_K, GgmlType::Q4_K, GgmlType::Q6_K], vec![515, 130, 129], false),
        (576, vec![GgmlType::Q8_0, GgmlType::Q5_0, GgmlType::Q8_0], vec![99, 33, 31], false),
        (512, vec![GgmlType::Q4_K, GgmlType::Q6_K], vec![77, 64], false),
        (1536, vec![GgmlType::Q5_K, GgmlType::Q5_K, GgmlType::Q6_K], vec![65, 33, 17], true),
    ];
    if full {
        for &ty in quant::SUPPORTED.iter().filter(|t| rocmforge::kernels::int8_matvec_type(**t)) {
            multis.push((2048, vec![ty, GgmlType::Q8_0, ty], vec![37, 41, 3], true));
            multis.push((2048, vec![GgmlType::Q4_0, ty], vec![129, 37], false));
        }
    }
    for (k, types, rows, bias) in multis {
        let s = next_seed();
        let names: Vec<&str> = types.iter().map(|t| t.name()).collect();
        let name = format!("mmvq_multi {} k {k} rows {rows:?}{}", names.join("+"), if bias { " + bias" } else { "" });
        let rule = "2γ(2·K/32 + 4)·Σ|terms| (+ 2U·(|y| + that) with the bias) per output";
        all.push(case(name, rule, move |h| mmvq_multi(h, s, k, &types, &rows, bias)));
    }
    // (kind, head_dim, rope dims, Llama 3 divisors, cache, first position, tokens, query heads, key
    // heads): one token is decode's launch (a block a head); 16 tokens or more, prefill's (several
    // heads a block, the last block part-full where the heads do not divide evenly).
    type RopeCase = (RopeKind, usize, usize, bool, KvPrecision, usize, usize, usize, usize);
    let ropes: &[RopeCase] = if full {
        &[
            (RopeKind::Normal, 128, 128, true, KvPrecision::F16, 517, 1, 4, 2),
            (RopeKind::Neox, 64, 64, false, KvPrecision::F16, 0, 1, 4, 2),
            (RopeKind::Neox, 256, 256, false, KvPrecision::F32, 4095, 1, 4, 2),
            (RopeKind::Neox, 128, 64, false, KvPrecision::F16, 33, 1, 4, 2),
            (RopeKind::Normal, 80, 32, true, KvPrecision::F32, 1000, 1, 4, 2),
            (RopeKind::Normal, 128, 128, true, KvPrecision::F16, 0, 37, 9, 3),
            (RopeKind::Neox, 64, 64, false, KvPrecision::F16, 300, 16, 9, 3),
            (RopeKind::Neox, 128, 64, false, KvPrecision::F32, 5, 23, 8, 8),
        ]
    } else {
        &[
            (RopeKind::Normal, 128, 128, true, KvPrecision::F16, 517, 1, 4, 2),
            (RopeKind::Neox, 128, 64, false, KvPrecision::F32, 33, 1, 4, 2),
            (RopeKind::Normal, 128, 128, true, KvPrecision::F16, 0, 37, 9, 3),
        ]
    };
    for &(kind, hd, rd, llama3, kv, pos, n_tokens, n_head, n_kv) in ropes {
        let s = next_seed();
        let name = format!(
            "rope_kv {kind:?} hd {hd} dims {rd}{} at {pos} {} cache, {n_tokens} tokens {n_head}/{n_kv} heads",
            if llama3 { " Llama 3 divisors" } else { "" },
            kv.name()
        );
        let rule = "q, k: rope's bound; caches: K as written and V, rounded, bit-exact, the rest untouched";
        let shape = RopeKvShape { kind, hd, rd, llama3, kv, pos, n_tokens, n_head, n_kv };
        all.push(case(name, rule, move |h| rope_kv(h, s, shape)));
    }
    for kind in [GluKind::SwiGlu, GluKind::GeGlu] {
        let s = next_seed();
        let rule = "out: glu's bound; q8_1 = quantize(out as written) bit-exact";
        all.push(case(format!("glu_q8_1 {kind:?}"), rule, move |h| glu_q8_1(h, s, kind)));
    }
}

/// The (d, d·Σq) pairs of the q8_1 blocks of `x`, as the quantizers write them beside the blocks.
fn ds_of(x: &[f32]) -> Vec<f32> {
    let mut blocks = vec![quant::BlockQ8_1 { d: [0; 2], s: [0; 2], qs: [0; 32] }; x.len() / 32];
    quant::quantize_row_q8_1(x, &mut blocks);
    blocks.iter().flat_map(|b| b.ds()).collect()
}

/// q8_1 blocks of `x`, as floats for comparison.
fn quantized_floats(x: &[f32]) -> Vec<f32> {
    let mut blocks = vec![quant::BlockQ8_1 { d: [0; 2], s: [0; 2], qs: [0; 32] }; x.len() / 32];
    quant::quantize_row_q8_1(x, &mut blocks);
    q8_1_as_floats(&q8_1_bytes_of(&blocks))
}

/// Appends a bit-exact part (bound 0; the reference is its own f64 value).
fn push_exact(m: &mut Measured, got: Vec<f32>, want: Vec<f32>) {
    m.bound.as_mut().expect("a bounded case").extend(std::iter::repeat_n(0.0, want.len()));
    m.exact.as_mut().expect("a bounded case").extend(want.iter().map(|&v| v as f64));
    m.got.extend(got);
    m.want.extend(want);
}

/// Element `i` of `v`, or element 0 where there is none (an unused segment's stand-in).
fn pick<T: DeviceElem>(v: &[DeviceBuffer<T>], i: usize) -> BufView<'_> {
    v.get(i).unwrap_or(&v[0]).view()
}

fn rms_norm_q8_1(h: &Harness, seed: u64, n: usize, add_one: bool, residual: bool) -> Measured {
    let mut rng = Rng(seed);
    let (x, d, w) = (rng.vec(n), rng.vec(n), rng.vec(n));
    let mut summed = x.clone();
    if residual {
        reference::add_assign(&mut summed, &d);
    }
    let (want, bound, exact) = rms_norm_expect(&summed, &w, n, add_one);
    let (xb, db, wb, yb) = (h.upload(&x), h.upload(&d), h.upload(&w), h.poisoned(n));
    let (qb, dsb) = (h.upload(&vec![0xFFu8; launch::q8_1_bytes(n)]), h.poisoned(launch::q8_1_ds_len(n)));
    h.launch(launch::RmsNormQ8_1 {
        x: xb.view(),
        d: db.view(),
        w: wb.view(),
        y: yb.view(),
        q: qb.view(),
        ds: dsb.view(),
        n: n as u32,
        add_one,
        residual,
        rows: 1,
        eps: 1e-6,
    });
    let y = h.read(&yb);
    let mut m = Measured { got: y.clone(), want, bound: Some(bound), exact: Some(exact) };
    push_exact(&mut m, h.read(&xb), summed);
    push_exact(&mut m, q8_1_as_floats(&h.read(&qb)), quantized_floats(&y));
    push_exact(&mut m, h.read(&dsb), ds_of(&y));
    m
}

/// Each segment as [`mmvq`] holds a lone int8 matvec, on one shared q8_1 input; the bias (when
/// there is one) is one more rounding on each side, 2U·|y| between them beyond the sums' bound.
fn mmvq_multi(h: &Harness, seed: u64, k: usize, types: &[GgmlType], rows: &[usize], bias: bool) -> Measured {
    let mut rng = Rng(seed);
    let x: Vec<f32> = rng.vec(k).iter().enumerate().map(|(i, v)| v * [1.0, 8.0, 0.05][(i / 32) % 3]).collect();
    let mut blocks = vec![quant::BlockQ8_1 { d: [0; 2], s: [0; 2], qs: [0; 32] }; k / 32];
    quant::quantize_row_q8_1(&x, &mut blocks);
    let a = quant::Q8Rows::from_blocks(&blocks, k);
    let g = gamma(2 * k / 32 + 4);
    let mut m = Measured { got: Vec::new(), want: Vec::new(), bound: Some(Vec::new()), exact: Some(Vec::new()) };
    let (mut ws, mut ys, mut bs) = (Vec::new(), Vec::new(), Vec::new());
    for (&ty, &n) in types.iter().zip(rows) {
        let w = random_weights(&mut rng, ty, n, k);
        let b = rng.vec(n);
        let mut want = vec![0f32; n];
        quant::matvec_q8_1(ty, &w, k, &a, &mut want).expect("the reference takes every int8 type");
        if bias {
            reference::bias_add(&mut want, &b, n);
        }
        let terms = quant::matvec_q8_1_exact(ty, &w, k, &a).expect("the reference takes every int8 type");
        for (i, (v, mag)) in terms.iter().enumerate() {
            let sums = 2.0 * g * mag;
            let (bound, exact) =
                if bias { (sums + 2.0 * U * (want[i].abs() as f64 + sums), v + b[i] as f64) } else { (sums, *v) };
            m.bound.as_mut().unwrap().push(bound);
            m.exact.as_mut().unwrap().push(exact);
        }
        m.want.extend(want);
        ws.push(h.upload(&w));
        ys.push(h.poisoned(n));
        bs.push(h.upload(&b));
    }
    let ab = h.upload(&q8_1_bytes_of(&blocks));
    // Unused segments: segment 0's buffers, no rows.
    let mut wtypes = [None; 3];
    let mut nrows = [0usize; 3];
    for (i, (&ty, &n)) in types.iter().zip(rows).enumerate() {
        wtypes[i] = Some(ty);
        nrows[i] = n;
    }
    h.launch(launch::MatVecQ8Multi {
        w0: pick(&ws, 0),
        w1: pick(&ws, 1),
        w2: pick(&ws, 2),
        a: ab.view(),
        y0: pick(&ys, 0),
        y1: pick(&ys, 1),
        y2: pick(&ys, 2),
        b0: pick(&bs, 0),
        b1: pick(&bs, 1),
        b2: pick(&bs, 2),
        wtypes,
        k: k as u32,
        rows: nrows,
        bias,
    });
    for y in &ys {
        m.got.extend(h.read(y));
    }
    m
}

#[derive(Clone, Copy)]
struct RopeKvShape {
    kind: RopeKind,
    hd: usize,
    rd: usize,
    llama3: bool,
    kv: KvPrecision,
    pos: usize,
    n_tokens: usize,
    n_head: usize,
    n_kv: usize,
}

/// Rope and KV append of `n_tokens` tokens at positions `pos..`: Q and K against the reference
/// rope within its bound, then the caches bit-exact against the rotated K the kernel wrote and the
/// V it was given, rounded as the cache holds them, and the positions around them left as they were.
fn rope_kv(h: &Harness, seed: u64, c: RopeKvShape) -> Measured {
    let RopeKvShape { kind, hd, rd, llama3, kv, pos, n_tokens, n_head, n_kv } = c;
    let mut rng = Rng(seed);
    let (base, fs) = (1e4f32, 1.0f32);
    let (q, k, v) = (rng.vec(n_tokens * n_head * hd), rng.vec(n_tokens * n_kv * hd), rng.vec(n_tokens * n_kv * hd));
    let ff = freq_divisors(rd, llama3);
    let positions: Vec<u32> = (pos..pos + n_tokens).map(|p| p as u32).collect();
    let run = |heads| RopeRun { heads, hd, rd, neox: kind == RopeKind::Neox, base, fs, llama3, ext: RopeExt::NONE };
    let (want_q, bound_q, exact_q) = run(n_head).expect(&q, &positions, &ff);
    let (want_k, bound_k, exact_k) = run(n_kv).expect(&k, &positions, &ff);
    let row = n_kv * hd;
    let capacity = pos + n_tokens + 1;
    // A finite stand-in for poison (exact in f16), since these elements sit beside bounded ones.
    let poison = vec![-777.0f32; row * capacity];
    let (qb, kb, vb) = (h.upload(&q), h.upload(&k), h.upload(&v));
    let (kc, vc) = (KvCache::upload(h, &poison, kv), KvCache::upload(h, &poison, kv));
    let device_positions: Vec<i32> = positions.iter().map(|&p| p as i32).collect();
    let (pb, fb) = (h.upload(&device_positions), h.upload(&ff));
    h.launch(launch::RopeKv {
        q: qb.view(),
        k: kb.view(),
        v: vb.view(),
        k_cache: kc.view(),
        v_cache: vc.view(),
        positions: pb.view(),
        freq_factors: fb.view(),
        head_dim: hd as u32,
        rope_dims: rd as u32,
        kind,
        n_tokens,
        n_head,
        n_head_kv: n_kv,
        base,
        freq_scale: fs,
        // The positions come from the device; the launch is bounded by the cache's last row.
        max_pos0: capacity - n_tokens,
        kv,
    });
    let got_k = h.read(&kb);
    let mut m = Measured {
        got: h.read(&qb).into_iter().chain(got_k.iter().copied()).collect(),
        want: want_q.into_iter().chain(want_k).collect(),
        bound: Some(bound_q.into_iter().chain(bound_k).collect()),
        exact: Some(exact_q.into_iter().chain(exact_k).collect()),
    };
    for (cache, new) in [(&kc, &got_k), (&vc, &v)] {
        let mut want = poison.clone();
        want[pos * row..(pos + n_tokens) * row].copy_from_slice(new);
        let want: Vec<f32> = want.iter().map(|&x| round_kv(x, kv)).collect();
        push_exact(&mut m, cache.read(h), want);
    }
    m
}

fn glu_q8_1(h: &Harness, seed: u64, kind: GluKind) -> Measured {
    let mut rng = Rng(seed);
    let n = 3008;
    let (g, u) = (rng.vec(n), rng.vec(n));
    let (want, bound, exact) = glu_expect(&g, &u, kind);
    let (gb, ub, ob) = (h.upload(&g), h.upload(&u), h.poisoned(n));
    let (qb, dsb) = (h.upload(&vec![0xFFu8; launch::q8_1_bytes(n)]), h.poisoned(launch::q8_1_ds_len(n)));
    h.launch(launch::GluQ8_1 { gate: gb.view(), up: ub.view(), out: ob.view(), q: qb.view(), ds: dsb.view(), kind, n });
    let out = h.read(&ob);
    let mut m = Measured { got: out.clone(), want, bound: Some(bound), exact: Some(exact) };
    push_exact(&mut m, q8_1_as_floats(&h.read(&qb)), quantized_floats(&out));
    push_exact(&mut m, h.read(&dsb), ds_of(&out));
    m
}

/// The f16 prefill: weights dequantized to f16, activations rounded to f16, and the f16 product
/// at the shapes (K = 576, 1536, 4096, 11008; 1 to 512 tokens; rows past a block's 128).
fn f16_prefill_cases(all: &mut Vec<Case>, next_seed: &mut impl FnMut() -> u64, full: bool) {
    for &ty in quant::SUPPORTED {
        for k in [576usize, 4096].into_iter().filter(|k| k % ty.block_elems() == 0) {
            let s = next_seed();
            all.push(case(format!("dequant_f16 {ty} k {k}"), "bit-exact", move |h| dequant_f16(h, s, ty, k)));
        }
    }
    let s = next_seed();
    all.push(case("convert_f16 rows 6 k 4096".into(), "bit-exact", move |h| convert_f16(h, s, 6, 4096)));
    let shapes: Vec<(usize, usize)> = if full {
        [576, 1536, 4096, 11008].into_iter().flat_map(|k| [1, 7, 64, 256, 512].map(|t| (k, t))).collect()
    } else {
        vec![(576, 7), (1536, 64), (4096, 130)]
    };
    for (k, tokens) in shapes {
        let rows = if k * tokens > 1 << 21 { 67 } else { 133 };
        for tile in F16Tile::ALL {
            let s = next_seed();
            let name = format!("gemm_f16 k {k} tokens {tokens} rows {rows} tile {}", tile.rows());
            all.push(case(name, "2γ(K)·Σ|w·x| per output (f16 products exact in f32)", move |h| {
                gemm_f16(h, s, k, tokens, rows, tile)
            }));
        }
    }
}

/// f16 bits widened, for comparison.
fn widen(v: &[half::f16]) -> Vec<f32> {
    v.iter().map(|h| h.to_f32()).collect()
}

/// Both sides dequantize to the same f32 values (see [`matrix`]) and round each to f16 once.
fn dequant_f16(h: &Harness, seed: u64, ty: GgmlType, k: usize) -> Measured {
    let mut rng = Rng(seed);
    let rows = 37;
    let w = random_weights(&mut rng, ty, rows, k);
    let want = quant::dequantize_to_vec(ty, &w).expect("weights dequantize");
    let want: Vec<f32> = want.iter().map(|v| half::f16::from_f32(*v).to_f32()).collect();
    let (wb, ob) = (h.upload(&w), h.upload(&vec![half::f16::NAN; rows * k]));
    h.launch(launch::DequantF16 { w: wb.view(), out: ob.view(), wtype: ty, k: k as u32, rows });
    Measured { got: widen(&h.read(&ob)), want, bound: None, exact: None }
}

/// Each row scaled by its power of two and rounded to nearest, ties to even: rows far apart in
/// scale (one past f16's range, whose values would overflow unscaled, one of zeros), and exact
/// ties between two f16s after the scaling; the inverse scales bit-exact too.
fn convert_f16(h: &Harness, seed: u64, rows: usize, k: usize) -> Measured {
    let mut rng = Rng(seed);
    let mut x: Vec<f32> = (0..rows * k).map(|i| rng.f() * [1.0, 7e5, 1e-6, 300.0, 0.0, 3e-30][(i / k) % 6]).collect();
    // Row 0's largest is 1 (scale 2^14): 1 + 2^-25 lies halfway between two f16s after it.
    x[0] = 1.0;
    x[1] = 1.0 + 2f32.powi(-25);
    x[2] = 1.0 + 3.0 * 2f32.powi(-25);
    let mut want = Vec::with_capacity(rows * (k + 1));
    let mut inv = Vec::with_capacity(rows);
    for row in x.chunks_exact(k) {
        let p = launch::f16_row_exponent(row.iter().fold(0f32, |m, v| m.max(v.abs())));
        want.extend(row.iter().map(|v| half::f16::from_f32(v * 2f32.powi(p)).to_f32()));
        inv.push(2f32.powi(-p));
    }
    want.extend(inv);
    let (xb, ob, sb) = (h.upload(&x), h.upload(&vec![half::f16::NAN; rows * k]), h.poisoned(rows));
    h.launch(launch::ConvertF16 { x: xb.view(), out: ob.view(), inv_scale: sb.view(), k: k as u32, rows });
    let got = widen(&h.read(&ob)).into_iter().chain(h.read(&sb)).collect();
    Measured { got, want, bound: None, exact: None }
}

/// Each output sums K products of two f16 values, each exact in f32, and multiplies the sum by
/// its token's power of two (exact): either side's sum, in any order, lies within
/// γ(K)·Σ|products| of the exact one, twice that between them.
fn gemm_f16(h: &Harness, seed: u64, k: usize, tokens: usize, rows: usize, tile: F16Tile) -> Measured {
    use rayon::prelude::*;
    let mut rng = Rng(seed);
    let mut halves =
        |n: usize, scale: f32| -> Vec<half::f16> { (0..n).map(|_| half::f16::from_f32(rng.f() * scale)).collect() };
    let (w, x) = (halves(rows * k, 0.05), halves(tokens * k, 4.0));
    let (wf, xf) = (widen(&w), widen(&x));
    let scales: Vec<f32> = (0..tokens).map(|t| 2f32.powi(t as i32 % 7 - 3)).collect();
    let per_out: Vec<(f32, f64, f64)> = (0..tokens * rows)
        .into_par_iter()
        .map(|i| {
            let (t, r) = (i / rows, i % rows);
            let (wr, xt) = (&wf[r * k..(r + 1) * k], &xf[t * k..(t + 1) * k]);
            let sum = wr.iter().zip(xt).fold(0f32, |s, (a, b)| a.mul_add(*b, s)) * scales[t];
            let exact: f64 = wr.iter().zip(xt).map(|(a, b)| *a as f64 * *b as f64).sum::<f64>() * scales[t] as f64;
            let mag: f64 =
                wr.iter().zip(xt).map(|(a, b)| (*a as f64 * *b as f64).abs()).sum::<f64>() * scales[t] as f64;
            (sum, exact, 2.0 * gamma(k) * mag)
        })
        .collect();
    let want = per_out.iter().map(|p| p.0).collect();
    let exact = per_out.iter().map(|p| p.1).collect();
    let bound = per_out.iter().map(|p| p.2).collect();
    let (wb, xb, sb, yb) = (h.upload(&w), h.upload(&x), h.upload(&scales), h.poisoned(tokens * rows));
    h.launch(launch::GemmF16 {
        w: wb.view(),
        x: xb.view(),
        x_scale: sb.view(),
        y: yb.view(),
        k: k as u32,
        rows,
        tokens,
        tile,
    });
    Measured { got: h.read(&yb), want, bound: Some(bound), exact: Some(exact) }
}

/// The prefill's tiled int8 product (`mmq`) of every weight type it takes against the CPU's
/// scalar int8 reference on the same q8_1 input: K = 576 (or 512 for 256-value blocks), 1536,
/// 4096 and 11008, token counts 1, 7, 64, 256 and 512 (the GPU run; CI's CPU device takes a few),
/// rows not a whole number of the kernel's 128-row tiles.
fn mmq_cases(all: &mut Vec<Case>, next_seed: &mut impl FnMut() -> u64, full: bool) {
    let rule = "2γ(2·K/32 + 4)·Σ|terms| per output (sum order of block partials)";
    for &ty in quant::SUPPORTED.iter().filter(|t| rocmforge::kernels::int8_matmul_type(**t)) {
        let small_k = if ty.block_elems() == 256 { 512 } else { 576 };
        let mut shapes: Vec<(usize, usize)> = Vec::new();
        if full {
            for k in [small_k, 1536, 4096, 11008] {
                for tokens in [1usize, 7, 64, 256, 512] {
                    shapes.push((k, tokens));
                }
            }
        } else {
            shapes.extend([(small_k, 7), (1536, 64)]);
        }
        // A row of 32-value blocks that is not whole 64-value runs: the tokens' terms come from
        // their blocks, not the copied ds rows (`mmq_copies_ds`).
        if ty.block_elems() == 32 {
            shapes.push((608, 7));
        }
        // (k, tokens, rows, stream-K workers): a block a tile, then workers that split tiles
        // (fewer and more workers than tiles), with tails of rows and tokens.
        let mut shapes: Vec<(usize, usize, usize, u32)> = shapes
            .into_iter()
            // Fewer rows for the largest products keep the CPU's side of the GPU run short.
            .map(|(k, tokens)| (k, tokens, if k * tokens > 1 << 21 { 67 } else { 133 }, 0))
            .collect();
        shapes.push((4096, 130, 133, 3));
        if full {
            shapes.extend([(4096, 300, 300, 5), (4096, 130, 133, 7), (11008, 64, 200, 3)]);
        }
        for (k, tokens, rows, workers) in shapes {
            let s = next_seed();
            let stream = if workers > 0 { format!(" stream-K {workers} workers") } else { String::new() };
            let name = format!("mmq {ty} k {k} tokens {tokens} rows {rows}{stream}");
            all.push(case(name, rule, move |h| mmq(h, s, ty, k, tokens, rows, workers)));
        }
    }
}

/// q8_1 blocks as floats for comparison: d and s widened, then the 32 quants.
fn q8_1_as_floats(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(launch::Q8_1_BLOCK_BYTES)
        .flat_map(|c| {
            let half = |i: usize| half::f16::from_le_bytes([c[i], c[i + 1]]).to_f32();
            [half(0), half(2)].into_iter().chain(c[4..].iter().map(|&q| q as i8 as f32))
        })
        .collect()
}

/// q8_1 blocks as the device reads them (36 bytes each).
pub fn q8_1_bytes_of(blocks: &[quant::BlockQ8_1]) -> Vec<u8> {
    blocks.iter().flat_map(|b| b.d.into_iter().chain(b.s).chain(b.qs.map(|q| q as u8))).collect()
}

fn quantize_q8_1(h: &Harness, seed: u64, n: usize) -> Measured {
    let mut rng = Rng(seed);
    // Blocks at scales far apart, a block of zeros, and one of exact ties (halves of d).
    let mut x: Vec<f32> = (0..n).map(|i| rng.f() * [1.0, 1e3, 1e-4, 37.5][(i / 32) % 4]).collect();
    if n >= 96 {
        x[32..64].fill(0.0);
        x[64] = 127.0;
        x[65..96].iter_mut().enumerate().for_each(|(j, v)| *v = j as f32 - 15.5);
    }
    let mut blocks = vec![quant::BlockQ8_1 { d: [0; 2], s: [0; 2], qs: [0; 32] }; n / 32];
    quant::quantize_row_q8_1(&x, &mut blocks);
    let want = q8_1_as_floats(&q8_1_bytes_of(&blocks)).into_iter().chain(ds_of(&x)).collect();
    let (xb, ob) = (h.upload(&x), h.upload(&vec![0xFFu8; launch::q8_1_bytes(n)]));
    let dsb = h.poisoned(launch::q8_1_ds_len(n));
    h.launch(launch::QuantizeQ8_1 { x: xb.view(), out: ob.view(), ds: dsb.view(), n });
    let got = q8_1_as_floats(&h.read(&ob)).into_iter().chain(h.read(&dsb)).collect();
    Measured { got, want, bound: None, exact: None }
}

/// Both sides compute the same integer sums (exact) and multiply them by the same f16-widened
/// scales; each of the row's 2·K/32 terms (a block's product term and its sum term) goes through
/// at most 4 roundings before the sum, and any order of summing T terms adds at most T − 1: per
/// side γ(2·K/32 + 4) of Σ|terms|, twice that between them.
fn mmvq(h: &Harness, seed: u64, ty: GgmlType, k: usize, rows: usize, layout: MmvqLayout) -> Measured {
    let mut rng = Rng(seed);
    let w = random_weights(&mut rng, ty, rows, k);
    let x: Vec<f32> = rng.vec(k).iter().enumerate().map(|(i, v)| v * [1.0, 8.0, 0.05][(i / 32) % 3]).collect();
    let mut blocks = vec![quant::BlockQ8_1 { d: [0; 2], s: [0; 2], qs: [0; 32] }; k / 32];
    quant::quantize_row_q8_1(&x, &mut blocks);
    let a = quant::Q8Rows::from_blocks(&blocks, k);
    let mut want = vec![0f32; rows];
    quant::matvec_q8_1(ty, &w, k, &a, &mut want).expect("the reference takes every int8 type");
    let terms = quant::matvec_q8_1_exact(ty, &w, k, &a).expect("the reference takes every int8 type");
    let g = gamma(2 * k / 32 + 4);
    let bound = terms.iter().map(|(_, m)| 2.0 * g * m).collect();
    let exact = terms.iter().map(|(v, _)| *v).collect();
    let (wb, ab, yb) = (h.upload(&w), h.upload(&q8_1_bytes_of(&blocks)), h.poisoned(rows));
    h.launch(launch::MatVecQ8 { w: wb.view(), a: ab.view(), y: yb.view(), wtype: ty, k: k as u32, rows, layout });
    Measured { got: h.read(&yb), want, bound: Some(bound), exact: Some(exact) }
}

/// As [`mmvq`], for every token: each output is one token's row dotted with one weight row.
/// With `workers`, stream-K: the parts start as poison, the counters at 0, and the counters must
/// be back at 0 afterwards (exactly).
fn mmq(h: &Harness, seed: u64, ty: GgmlType, k: usize, tokens: usize, rows: usize, workers: u32) -> Measured {
    use rayon::prelude::*;
    let mut rng = Rng(seed);
    let w = random_weights(&mut rng, ty, rows, k);
    let x: Vec<f32> = rng.vec(tokens * k).iter().enumerate().map(|(i, v)| v * [1.0, 8.0, 0.05][(i / 32) % 3]).collect();
    let mut blocks = vec![quant::BlockQ8_1 { d: [0; 2], s: [0; 2], qs: [0; 32] }; tokens * k / 32];
    quant::quantize_row_q8_1(&x, &mut blocks);
    let a = quant::Q8Rows::from_blocks(&blocks, k);
    let mut want = vec![0f32; tokens * rows];
    quant::matmul_q8_1(ty, &w, k, &a, &mut want).expect("the reference takes every int8 type");
    let g = gamma(2 * k / 32 + 4);
    let per_token: Vec<Vec<(f64, f64)>> = blocks
        .par_chunks(k / 32)
        .map(|b| {
            let a = quant::Q8Rows::from_blocks(b, k);
            quant::matvec_q8_1_exact(ty, &w, k, &a).expect("the reference takes every int8 type")
        })
        .collect();
    let terms: Vec<(f64, f64)> = per_token.into_iter().flatten().collect();
    let bound = terms.iter().map(|(_, m)| 2.0 * g * m).collect();
    let exact = terms.iter().map(|(v, _)| *v).collect();
    let (wb, ab, yb) = (h.upload(&w), h.upload(&q8_1_bytes_of(&blocks)), h.poisoned(tokens * rows));
    let dsb = h.upload(&blocks.iter().flat_map(|b| b.ds()).collect::<Vec<f32>>());
    let part = h.poisoned(launch::MatMulQ8::<()>::part_len(k as u32, workers).max(1));
    let counters = h.upload(&vec![0i32; workers.max(1) as usize]);
    h.launch(launch::MatMulQ8 {
        w: wb.view(),
        a: ab.view(),
        ds: dsb.view(),
        y: yb.view(),
        part: part.view(),
        counters: counters.view(),
        wtype: ty,
        k: k as u32,
        rows,
        tokens,
        workers,
    });
    let mut m = Measured { got: h.read(&yb), want, bound: Some(bound), exact: Some(exact) };
    let counts: Vec<f32> = h.read(&counters).iter().map(|&c| c as f32).collect();
    push_exact(&mut m, counts, vec![0.0; workers.max(1) as usize]);
    m
}

fn matrix(h: &Harness, seed: u64, ty: GgmlType, k: usize, tokens: usize) -> Measured {
    let mut rng = Rng(seed);
    let rows = 99;
    let w = random_weights(&mut rng, ty, rows, k);
    let x = rng.vec(tokens * k);
    let mut want = vec![0f32; tokens * rows];
    reference::linear(ty, &w, k, rows, &x, &mut want).expect("the reference takes every supported type");
    // Both sides dequantize to the same values (each product of a scale and a quant is exact in
    // f32, so at most one rounding follows, on both); they differ only in how they sum K products.
    let wf = quant::dequantize_to_vec(ty, &w).expect("weights dequantize");
    let (mut bound, mut exact) = (Vec::new(), Vec::new());
    for i in 0..tokens * rows {
        let (t, r) = (i / rows, i % rows);
        let products = (0..k).map(|j| wf[r * k + j] as f64 * x[t * k + j] as f64);
        bound.push(2.0 * gamma(k) * products.clone().map(f64::abs).sum::<f64>());
        exact.push(products.sum());
    }
    let (wb, xb, yb) = (h.upload(&w), h.upload(&x), h.poisoned(tokens * rows));
    let (w, x, y, k32) = (wb.view(), xb.view(), yb.view(), k as u32);
    if tokens == 1 {
        h.launch(launch::MatVec { w, x, y, wtype: ty, k: k32, rows });
    } else {
        h.launch(launch::MatMul { w, x, y, wtype: ty, k: k32, rows, tokens });
    }
    Measured { got: h.read(&yb), want, bound: Some(bound), exact: Some(exact) }
}

fn embedding(h: &Harness, seed: u64, ty: GgmlType, k: usize) -> Measured {
    let mut rng = Rng(seed);
    let rows = 99;
    let w = random_weights(&mut rng, ty, rows, k);
    let ids = [3u32, 0, 98, 41, 41];
    let mut want = vec![0f32; ids.len() * k];
    reference::embed(ty, &w, k, &ids, 0.5, &mut want).expect("the reference takes every supported type");
    let (wb, ib, ob) = (h.upload(&w), h.upload(&ids.map(|i| i as i32)), h.poisoned(ids.len() * k));
    h.launch(launch::Embedding {
        table: wb.view(),
        ids: ib.view(),
        out: ob.view(),
        wtype: ty,
        n_embd: k as u32,
        n_rows: rows,
        n_tokens: ids.len(),
        scale: 0.5,
    });
    Measured { got: h.read(&ob), want, bound: None, exact: None }
}

/// What an attention output's error depends on, per head h of query t (in that order): S, the
/// largest |score| bound (scale·Σ|q·k|), V, the largest |v|, and K1, the largest Σ|k|, over the L
/// attended positions.
struct AttendedRows {
    s: f64,
    v: f64,
    k1: f64,
    l: usize,
}

fn attended_rows(
    q: &[f32],
    kc: &[f32],
    vc: &[f32],
    pos0: usize,
    s: &reference::AttnShape,
    nq: usize,
) -> Vec<AttendedRows> {
    let (hd, gqa, kw) = (s.head_dim, s.n_head / s.n_head_kv, s.n_head_kv * s.head_dim);
    let mut rows = Vec::with_capacity(nq * s.n_head);
    for t in 0..nq {
        for h in 0..s.n_head {
            let hk = h / gqa;
            let pos = pos0 + t;
            let lo = s.window.map_or(0, |w| (pos + 1).saturating_sub(w as usize));
            let qv = &q[(t * s.n_head + h) * hd..][..hd];
            let mut r = AttendedRows { s: 0.0, v: 0.0, k1: 0.0, l: pos - lo + 1 };
            for p in lo..=pos {
                let kr = &kc[p * kw + hk * hd..][..hd];
                let sp: f64 = qv.iter().zip(kr).map(|(a, b)| (*a as f64 * *b as f64).abs()).sum();
                r.s = r.s.max(sp * s.scale as f64);
                r.k1 = r.k1.max(kr.iter().map(|k| k.abs() as f64).sum());
                r.v = vc[p * kw + hk * hd..][..hd].iter().fold(r.v, |m, v| m.max(v.abs() as f64));
            }
            rows.push(r);
        }
    }
    rows
}

/// Per output of head h of query t: with S, V and L as [`attended_rows`] finds them, each side's
/// score is within ε = γ(hd+2)·S (+ the soft-cap's tanh, 6U·cap); a score error δ moves a softmax
/// weight by a relative 2δ, and exp's argument rounding adds 2U·S; the weighted sum of L rows, with
/// the online rescaling, adds at most 2L + 8 roundings of V on each side.
fn attention_bound(q: &[f32], kc: &[f32], vc: &[f32], pos0: usize, s: &reference::AttnShape, nq: usize) -> Vec<f64> {
    let hd = s.head_dim;
    let cap = s.softcap.map_or(0.0, |c| 6.0 * U * c as f64);
    let mut bound = Vec::with_capacity(nq * s.n_head * hd);
    for r in attended_rows(q, kc, vc, pos0, s, nq) {
        let eps = gamma(hd + 2) * r.s + 2.0 * U * r.s + cap;
        bound.extend(std::iter::repeat_n(r.v * (4.0 * eps + (4.0 * r.l as f64 + 16.0) * U), hd));
    }
    bound
}

/// The unit roundoff of f16 (2⁻¹¹).
pub const U16: f64 = 1.0 / 2048.0;
/// Half the smallest f16 subnormal (2⁻²⁵): the largest error of rounding a value below f16's
/// normal range (2⁻¹⁴) to f16.
pub const F16_TINY: f64 = 1.0 / 33_554_432.0;

/// Flash attention on the matrix units (flash_attn_mma.hip; the f32 kernel elsewhere is within
/// it too) against the f32 reference, per output of head h of query t, from [`attended_rows`]:
/// - the reference's scores are within ε_cpu = γ(hd+2)·S + 2U·S (+ 6U·cap), as in
///   [`attention_bound`];
/// - the kernel rounds scale·q (itself rounded) to f16 once: each |Δq| ≤ (u16 + 2U)·|scale·q|, or
///   2⁻²⁵ below f16's normal range, so Σ|Δq|·|k| ≤ (u16 + 2U)·S + 2⁻²⁵·K1; the products of f16
///   values are exact in f32 and the matrix unit sums them with at most 2U per addition (NVIDIA's
///   tensor cores truncate: Fasi, Higham, Mikaitis, Pranesh 2021), 2γ(hd+2)·(1 + u16)·S; with the
///   exp argument's 2U·S and the cap, ε_f16;
/// - scores off by at most ε move every softmax weight by a factor within e^(±2ε), the output by
///   (e^(2ε) − 1)·V on each side;
/// - P = exp(S − m) rounded to f16 in the numerator only (the denominator sums the f32 values):
///   u16·V, and 2⁻²⁵ per position below f16's normal range (at the tile's running maximum, which
///   the final rescaling only shrinks; the denominator is at least 1), L·2⁻²⁵·V;
/// - the weighted sum of L rows: 2L + 8 roundings of V on the reference's side, twice that bound
///   (2U per addition) on the matrix unit's, (6L + 16)·U·V.
fn flash_attention_bound(
    q: &[f32],
    kc: &[f32],
    vc: &[f32],
    pos0: usize,
    s: &reference::AttnShape,
    nq: usize,
) -> Vec<f64> {
    let hd = s.head_dim;
    let cap = s.softcap.map_or(0.0, |c| 6.0 * U * c as f64);
    let mut bound = Vec::with_capacity(nq * s.n_head * hd);
    for r in attended_rows(q, kc, vc, pos0, s, nq) {
        let eps_cpu = gamma(hd + 2) * r.s + 2.0 * U * r.s + cap;
        let eps_f16 =
            2.0 * gamma(hd + 2) * (1.0 + U16) * r.s + (U16 + 2.0 * U) * r.s + F16_TINY * r.k1 + 2.0 * U * r.s + cap;
        let l = r.l as f64;
        let b = (2.0 * eps_cpu).exp_m1() + (2.0 * eps_f16).exp_m1() + (6.0 * l + 16.0) * U + U16 + l * F16_TINY;
        bound.extend(std::iter::repeat_n(r.v * b, hd));
    }
    bound
}

/// Attention in f64, as `reference::attention` defines it.
fn attention_f64(q: &[f32], kc: &[f32], vc: &[f32], pos0: usize, s: &reference::AttnShape, nq: usize) -> Vec<f64> {
    let (hd, gqa, kw) = (s.head_dim, s.n_head / s.n_head_kv, s.n_head_kv * s.head_dim);
    let mut out = Vec::with_capacity(nq * s.n_head * hd);
    for t in 0..nq {
        for h in 0..s.n_head {
            let (hk, pos) = (h / gqa, pos0 + t);
            let lo = s.window.map_or(0, |w| (pos + 1).saturating_sub(w as usize));
            let qv = &q[(t * s.n_head + h) * hd..][..hd];
            let scores: Vec<f64> = (lo..=pos)
                .map(|p| {
                    let kr = &kc[p * kw + hk * hd..][..hd];
                    let sc = qv.iter().zip(kr).map(|(a, b)| *a as f64 * *b as f64).sum::<f64>() * s.scale as f64;
                    s.softcap.map_or(sc, |c| c as f64 * (sc / c as f64).tanh())
                })
                .collect();
            let max = scores.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v));
            let weights: Vec<f64> = scores.iter().map(|sc| (sc - max).exp()).collect();
            let sum: f64 = weights.iter().sum();
            for d in 0..hd {
                out.push((lo..=pos).zip(&weights).map(|(p, w)| w * vc[p * kw + hk * hd + d] as f64).sum::<f64>() / sum);
            }
        }
    }
    out
}

#[allow(clippy::too_many_arguments)]
fn attention(
    h: &Harness,
    seed: u64,
    hd: usize,
    gqa: usize,
    nq: usize,
    pos0: usize,
    window: Option<u32>,
    softcap: Option<f32>,
    kv: KvPrecision,
    flash: bool,
) -> Measured {
    let mut rng = Rng(seed);
    let (n_kv, capacity) = (2usize, 1024usize);
    let n_head = n_kv * gqa;
    let (kc, vc) = (kv_values(&mut rng, capacity * n_kv * hd, kv), kv_values(&mut rng, capacity * n_kv * hd, kv));
    let q = rng.vec(nq * n_head * hd);
    let scale = 1.0 / (hd as f32).sqrt();
    let shape = reference::AttnShape { n_head, n_head_kv: n_kv, head_dim: hd, head_dim_v: hd, scale, softcap, window };
    let mut want = vec![0f32; q.len()];
    reference::attention(&q, &kc, &vc, pos0, &shape, &mut want);
    let bound = if flash {
        flash_attention_bound(&q, &kc, &vc, pos0, &shape, nq)
    } else {
        attention_bound(&q, &kc, &vc, pos0, &shape, nq)
    };
    let exact = attention_f64(&q, &kc, &vc, pos0, &shape, nq);
    let (qb, ob) = (h.upload(&q), h.poisoned(want.len()));
    let (kb, vb) = (KvCache::upload(h, &kc, kv), KvCache::upload(h, &vc, kv));
    let (q, k_cache, v_cache, out) = (qb.view(), kb.view(), vb.view(), ob.view());
    let (head_dim, gqa) = (hd as u32, gqa as u32);
    if flash {
        assert_eq!(kv, KvPrecision::F16, "flash attention reads an f16 cache");
        h.launch(launch::FlashAttn {
            q,
            k_cache,
            v_cache,
            out,
            head_dim,
            gqa,
            n_head,
            n_q: nq,
            pos0,
            scale,
            softcap,
            window,
        });
    } else {
        h.launch(launch::Attention {
            q,
            k_cache,
            v_cache,
            out,
            head_dim,
            gqa,
            n_head,
            n_q: nq,
            pos0,
            scale,
            softcap,
            window,
            kv,
        });
    }
    Measured { got: h.read(&ob), want, bound: Some(bound), exact: Some(exact) }
}

/// The mean of squares is a sum of n positive terms (γ(n) relative on the GPU's f32 sum); the
/// inverse square root halves it; rsqrt, the mean's division, eps and the two products of each
/// side add a few U.
fn rms_norm(h: &Harness, seed: u64, n: usize, rows: usize, add_one: bool, in_place: bool) -> Measured {
    let mut rng = Rng(seed);
    let (x, w) = (rng.vec(rows * n), rng.vec(n));
    let (want, bound, exact) = rms_norm_expect(&x, &w, n, add_one);
    let (xb, wb, yb) = (h.upload(&x), h.upload(&w), h.poisoned(rows * n));
    let y = if in_place { xb.view() } else { yb.view() };
    h.launch(launch::RmsNorm { x: xb.view(), w: wb.view(), y, n: n as u32, add_one, rows, eps: 1e-6 });
    Measured { got: h.read(if in_place { &xb } else { &yb }), want, bound: Some(bound), exact: Some(exact) }
}

/// The reference's RMSNorm (eps 1e-6) of rows of `n` of x, each element's bound (see
/// [`rms_norm`]) and the norm in f64.
fn rms_norm_expect(x: &[f32], w: &[f32], n: usize, add_one: bool) -> (Vec<f32>, Vec<f64>, Vec<f64>) {
    let w_used: Vec<f32> = if add_one { w.iter().map(|v| v + 1.0).collect() } else { w.to_vec() };
    let mut want = vec![0f32; x.len()];
    reference::rms_norm(x, &w_used, n, 1e-6, &mut want);
    let bound = want.iter().map(|y| y.abs() as f64 * (gamma(n) / 2.0 + 20.0 * U)).collect();
    let exact = x
        .chunks_exact(n)
        .flat_map(|row| {
            let mean = row.iter().map(|v| *v as f64 * *v as f64).sum::<f64>() / n as f64;
            let inv = 1.0 / (mean + 1e-6f32 as f64).sqrt();
            row.iter().zip(&w_used).map(move |(v, w)| *v as f64 * inv * *w as f64).collect::<Vec<_>>()
        })
        .collect();
    (want, bound, exact)
}

/// The angle θ of pair i: the CPU iterates θ ← θ·base^(−2/dims) in f32 (llama.cpp's cache), i + 1
/// roundings plus the power's own error raised to i; the GPU takes powf directly (its exponent's
/// rounding costs ln(base)·U, powf a few ulp). sin and cos add 6U, the rotation 2U per side.
#[allow(clippy::too_many_arguments)]
fn rope(
    h: &Harness,
    seed: u64,
    kind: RopeKind,
    hd: usize,
    rd: usize,
    base: f32,
    fs: f32,
    llama3: bool,
    ext: RopeExt,
) -> Measured {
    let mut rng = Rng(seed);
    let (tokens, heads) = (ROPE_POSITIONS.len(), 3usize);
    let x = rng.vec(tokens * heads * hd);
    let ff = freq_divisors(rd, llama3);
    let r = RopeRun { heads, hd, rd, neox: kind == RopeKind::Neox, base, fs, llama3, ext };
    let (want, bound, exact) = r.expect(&x, &ROPE_POSITIONS, &ff);
    let (xb, pb, fb) = (h.upload(&x), h.upload(&ROPE_POSITIONS.map(|p| p as i32)), h.upload(&ff));
    h.launch(launch::Rope {
        x: xb.view(),
        positions: pb.view(),
        freq_factors: fb.view(),
        head_dim: hd as u32,
        rope_dims: rd as u32,
        kind,
        n_tokens: tokens,
        n_heads: heads,
        base,
        freq_scale: fs,
        ext,
    });
    Measured { got: h.read(&xb), want, bound: Some(bound), exact: Some(exact) }
}

/// Llama 3's per-pair divisors rise from 1 (high frequencies) to 32; without them, ones.
fn freq_divisors(rd: usize, llama3: bool) -> Vec<f32> {
    (0..rd / 2).map(|i| if llama3 { 1.0 + 31.0 * (i as f32 / (rd / 2) as f32) } else { 1.0 }).collect()
}

/// A rope's shape and angles.
struct RopeRun {
    heads: usize,
    hd: usize,
    rd: usize,
    neox: bool,
    base: f32,
    fs: f32,
    llama3: bool,
    /// YaRN's ramp and the cos/sin scale (`RopeExt::NONE`: plain θ).
    ext: RopeExt,
}

impl RopeRun {
    /// The reference's rotation of `x` (tokens at `positions`), the bound of each element and the
    /// rotation in f64.
    fn expect(&self, x: &[f32], positions: &[u32], ff: &[f32]) -> (Vec<f32>, Vec<f64>, Vec<f64>) {
        let (heads, hd, rd, neox, base, fs, ext) =
            (self.heads, self.hd, self.rd, self.neox, self.base, self.fs, self.ext);
        let mut want = x.to_vec();
        let params = reference::RopeParams { base, freq_scale: fs, freq_factors: self.llama3.then_some(ff), ext };
        reference::rope(&mut want, positions, heads, hd, rd, neox, &params);
        let yarn = ext.ext_factor != 0.0;
        // The cos/sin scale ggml's rope_yarn applies, in f64.
        let m = ext.attn_factor as f64 * if yarn { 1.0 + 0.1 * (1.0 / fs as f64).ln() } else { 1.0 };
        let mut bound = vec![0f64; x.len()];
        let mut exact: Vec<f64> = x.iter().map(|v| *v as f64).collect();
        for (t, &p) in positions.iter().enumerate() {
            for hh in 0..heads {
                let row = (t * heads + hh) * hd;
                for (i, &f) in ff.iter().enumerate() {
                    let extrap = p as f64 * (base as f64).powf(-2.0 * i as f64 / rd as f64) / f as f64;
                    let interp = fs as f64 * extrap;
                    let theta = if yarn {
                        let [low, high] = ext.corr_dims.map(f64::from);
                        let y = (i as f64 - low) / (high - low).max(0.001);
                        let ramp = (1.0 - y.clamp(0.0, 1.0)) * ext.ext_factor as f64;
                        interp * (1.0 - ramp) + extrap * ramp
                    } else {
                        interp
                    };
                    // A divisor other than 1 adds one rounding; YaRN's mix a few more of the unscaled θ.
                    let divide = if f == 1.0 { 0.0 } else { 1.0 };
                    let (size, mix) = if yarn { (extrap, 10.0) } else { (theta, 0.0) };
                    let d_theta = size * (4.0 * i as f64 + 11.0 + divide + mix + 2.0 * (base as f64).ln()) * U;
                    let (a, b) = if neox { (i, i + rd / 2) } else { (2 * i, 2 * i + 1) };
                    let scaled = if m != 1.0 { 6.0 * U } else { 0.0 };
                    let b_pair = (x[row + a].abs() + x[row + b].abs()) as f64 * m * (d_theta + 10.0 * U + scaled);
                    bound[row + a] = b_pair;
                    bound[row + b] = b_pair;
                    let (x0, x1, (sin, cos)) = (x[row + a] as f64, x[row + b] as f64, theta.sin_cos());
                    exact[row + a] = m * (x0 * cos - x1 * sin);
                    exact[row + b] = m * (x0 * sin + x1 * cos);
                }
            }
        }
        (want, bound, exact)
    }
}

/// SwiGLU: exp (2 ulp on the GPU, 1 on the CPU: 6U), the sum, the quotient and the product (2U
/// each, both sides): 12U of the result, bound 16U. GeGLU: tanh's error (6U of t) and its
/// argument's (5 roundings a side: 10U of z, times tanh' ≤ 1) reach the result through ½·g·up; the
/// other roundings are 6U of it, bound 8U.
fn glu(h: &Harness, seed: u64, kind: GluKind) -> Measured {
    let mut rng = Rng(seed);
    let n = 3000;
    let (g, u) = (rng.vec(n), rng.vec(n));
    let (want, bound, exact) = glu_expect(&g, &u, kind);
    let (gb, ub, ob) = (h.upload(&g), h.upload(&u), h.poisoned(n));
    h.launch(launch::Glu { gate: gb.view(), up: ub.view(), out: ob.view(), kind, n });
    Measured { got: h.read(&ob), want, bound: Some(bound), exact: Some(exact) }
}

/// The reference's GLU of (g, u), the bound of each element (see [`glu`]) and the GLU in f64.
fn glu_expect(g: &[f32], u: &[f32], kind: GluKind) -> (Vec<f32>, Vec<f64>, Vec<f64>) {
    let n = g.len();
    let mut want = vec![0f32; n];
    reference::glu(g, u, kind, &mut want);
    let exact = (0..n)
        .map(|i| {
            let gi = g[i] as f64;
            let act = match kind {
                GluKind::SwiGlu => gi / (1.0 + (-gi).exp()),
                // The constants as both sides hold them (f32).
                GluKind::GeGlu => {
                    let z = 0.797_884_6f32 as f64 * (gi + 0.044715f32 as f64 * gi * gi * gi);
                    0.5 * gi * (1.0 + z.tanh())
                }
            };
            act * u[i] as f64
        })
        .collect();
    let bound = (0..n)
        .map(|i| match kind {
            GluKind::SwiGlu => 16.0 * U * want[i].abs() as f64,
            GluKind::GeGlu => {
                let gi = g[i] as f64;
                let z = 0.797_884_560_802_865_4 * (gi + 0.044715 * gi * gi * gi);
                let act = 0.5 * gi * (1.0 + z.tanh());
                u[i].abs() as f64 * (gi.abs() * (6.0 * U * z.tanh().abs() + 5.0 * U * z.abs()) + 8.0 * U * act.abs())
            }
        })
        .collect();
    (want, bound, exact)
}

fn add(h: &Harness, seed: u64) -> Measured {
    let mut rng = Rng(seed);
    let n = 3000;
    let (a, b) = (rng.vec(n), rng.vec(n));
    let mut want = a.clone();
    reference::add_assign(&mut want, &b);
    let (ab, bb, ob) = (h.upload(&a), h.upload(&b), h.poisoned(n));
    h.launch(launch::Add { a: ab.view(), b: bb.view(), out: ob.view(), n });
    Measured { got: h.read(&ob), want, bound: None, exact: None }
}

fn add_bias(h: &Harness, seed: u64) -> Measured {
    let mut rng = Rng(seed);
    let (n, cols) = (3000, 300);
    let (x, bias) = (rng.vec(n), rng.vec(cols));
    let mut want = x.clone();
    reference::bias_add(&mut want, &bias, cols);
    let (xb, bb) = (h.upload(&x), h.upload(&bias));
    h.launch(launch::AddBias { x: xb.view(), bias: bb.view(), n, cols });
    Measured { got: h.read(&xb), want, bound: None, exact: None }
}

/// cap·tanh(x / cap): the quotients (2U), tanh (2 ulp on the GPU, 1 on the CPU: 6U), the argument's
/// rounding through tanh (relative ≤ 1: 2U) and the products (2U): 12U of the result, bound 16U.
fn softcap(h: &Harness, seed: u64) -> Measured {
    let mut rng = Rng(seed);
    let (n, cap) = (3000, 3.5f32);
    let x: Vec<f32> = rng.vec(n).iter().map(|v| v * 10.0).collect();
    let mut want = x.clone();
    reference::softcap(&mut want, cap);
    let bound = want.iter().map(|y| 16.0 * U * y.abs() as f64).collect();
    let exact = x.iter().map(|v| cap as f64 * (*v as f64 / cap as f64).tanh()).collect();
    let xb = h.upload(&x);
    h.launch(launch::Softcap { x: xb.view(), n, cap });
    Measured { got: h.read(&xb), want, bound: Some(bound), exact: Some(exact) }
}

fn argmax(h: &Harness, seed: u64, n: usize) -> Measured {
    let mut rng = Rng(seed);
    let x: Vec<f32> = rng.vec(n).iter().map(|v| v * 12.0).collect();
    let want = vec![reference::argmax(&x) as f32];
    let (xb, ob) = (h.upload(&x), h.upload(&[-1i32]));
    h.launch(launch::Argmax { x: xb.view(), out: ob.view(), n });
    Measured { got: h.read(&ob).iter().map(|&i| i as f32).collect(), want, bound: None, exact: None }
}

fn kv_append(h: &Harness, seed: u64, kv: KvPrecision) -> Measured {
    let mut rng = Rng(seed);
    let (row, tokens, pos0, capacity) = (192usize, 9usize, 40usize, 64usize);
    let (mut k, v) = (rng.vec(row * tokens), rng.vec(row * tokens));
    // Values that round to even at a tie, overflow, and fall below f16's normal range.
    k[..6].copy_from_slice(&[1.0 + 2f32.powi(-11), 1.0 + 3.0 * 2f32.powi(-11), 65520.0, -1e6, 3e-6, -6e-8]);
    let poison = vec![POISON; row * capacity];
    let (kb, vb) = (h.upload(&k), h.upload(&v));
    let (kc, vc) = (KvCache::upload(h, &poison, kv), KvCache::upload(h, &poison, kv));
    // The rows go where the positions on the device say, within the bound the cache was checked for.
    let pb = h.upload(&(pos0..pos0 + tokens).map(|p| p as i32).collect::<Vec<_>>());
    h.launch(launch::KvAppend {
        k: kb.view(),
        v: vb.view(),
        k_cache: kc.view(),
        v_cache: vc.view(),
        positions: pb.view(),
        row,
        n_tokens: tokens,
        max_pos0: capacity - tokens,
        kv,
    });
    let mut want = Vec::new();
    for new in [&k, &v] {
        let mut cache = vec![POISON; row * capacity];
        cache[pos0 * row..(pos0 + tokens) * row].copy_from_slice(new);
        want.extend(cache.iter().map(|&x| round_kv(x, kv)));
    }
    let mut got = kc.read(h);
    got.extend(vc.read(h));
    Measured { got, want, bound: None, exact: None }
}

/// A value as a cache of `kv` holds it: f16 rounds to nearest even (the half crate, which we did
/// not write, stands for `__float2half`).
pub fn round_kv(x: f32, kv: KvPrecision) -> f32 {
    match kv {
        KvPrecision::F16 => half::f16::from_f32(x).to_f32(),
        KvPrecision::F32 => x,
    }
}

/// `n` random cache values, already as a cache of `kv` holds them.
fn kv_values(rng: &mut Rng, n: usize, kv: KvPrecision) -> Vec<f32> {
    rng.vec(n).into_iter().map(|x| round_kv(x, kv)).collect()
}

/// A KV cache buffer of either precision.
pub enum KvCache {
    F16(DeviceBuffer<half::f16>),
    F32(DeviceBuffer<f32>),
}

impl KvCache {
    pub fn upload(h: &Harness, values: &[f32], kv: KvPrecision) -> KvCache {
        match kv {
            KvPrecision::F16 => {
                KvCache::F16(h.upload(&values.iter().map(|&x| half::f16::from_f32(x)).collect::<Vec<_>>()))
            }
            KvPrecision::F32 => KvCache::F32(h.upload(values)),
        }
    }
    pub fn view(&self) -> BufView<'_> {
        match self {
            KvCache::F16(b) => b.view(),
            KvCache::F32(b) => b.view(),
        }
    }
    pub fn read(&self, h: &Harness) -> Vec<f32> {
        match self {
            KvCache::F16(b) => h.read(b).iter().map(|x| x.to_f32()).collect(),
            KvCache::F32(b) => h.read(b),
        }
    }
}

/// Split decode attention of one query at position depth − 1, against the reference on the same
/// (already rounded) cache values. The bound is attention's, with the merge's second exponential
/// (its argument's rounding, 2U·S more in ε_score) and its extra roundings of the rescaled partial
/// sums (8U more). The launch runs twice with the output re-poisoned in between, as a replayed
/// decode step runs it: the second must merge again, so the counters must be back at 0 (they are
/// part of the output, bound 0).
#[allow(clippy::too_many_arguments)]
fn attn_decode(
    h: &Harness,
    seed: u64,
    hd: usize,
    gqa: usize,
    n_kv: usize,
    depth: usize,
    window: Option<u32>,
    softcap: Option<f32>,
    kv: KvPrecision,
) -> Measured {
    let mut rng = Rng(seed);
    let n_head = n_kv * gqa;
    let (kc, vc) = (kv_values(&mut rng, depth * n_kv * hd, kv), kv_values(&mut rng, depth * n_kv * hd, kv));
    let q = rng.vec(n_head * hd);
    let scale = 1.0 / (hd as f32).sqrt();
    let pos0 = depth - 1;
    let shape = reference::AttnShape { n_head, n_head_kv: n_kv, head_dim: hd, head_dim_v: hd, scale, softcap, window };
    let mut want = vec![0f32; q.len()];
    reference::attention(&q, &kc, &vc, pos0, &shape, &mut want);
    let mut bound = attention_bound(&q, &kc, &vc, pos0, &shape, 1);
    // attention_bound's ε_score has 2U·S: the split adds another 2U·S (×4) and 8U of V.
    for (b, r) in bound.chunks_mut(hd).zip(attended_rows(&q, &kc, &vc, pos0, &shape, 1)) {
        b.iter_mut().for_each(|x| *x += r.v * (4.0 * 2.0 * U * r.s + 8.0 * U));
    }
    let mut exact = attention_f64(&q, &kc, &vc, pos0, &shape, 1);
    // As in a decode graph, the launch is bounded past the position it runs at (which it reads
    // from the device): its grid has blocks for the longest context, and the cache rows past the
    // position hold poison that no block may read.
    let max_pos = pos0 + depth.div_ceil(2) + 31;
    let part_len = launch::AttnDecode::<()>::part_len(max_pos + 1, n_head, n_kv, hd);
    let (qb, mut ob, pb) = (h.upload(&q), h.poisoned(want.len()), h.poisoned(part_len));
    let (cb, posb) = (h.upload(&vec![0i32; n_kv]), h.upload(&[pos0 as i32]));
    let padded = |c: &[f32]| {
        c.iter().copied().chain(std::iter::repeat_n(POISON, (max_pos - pos0) * n_kv * hd)).collect::<Vec<_>>()
    };
    let (kb, vb) = (KvCache::upload(h, &padded(&kc), kv), KvCache::upload(h, &padded(&vc), kv));
    for replay in 0..2 {
        if replay == 1 {
            ob.write(0, &vec![POISON; want.len()]).expect("the output is re-poisoned");
        }
        h.launch(launch::AttnDecode {
            q: qb.view(),
            k_cache: kb.view(),
            v_cache: vb.view(),
            out: ob.view(),
            part: pb.view(),
            counters: cb.view(),
            positions: posb.view(),
            head_dim: hd as u32,
            gqa: gqa as u32,
            n_head,
            max_pos,
            scale,
            softcap,
            window,
            kv,
        });
    }
    let mut got = h.read(&ob);
    got.extend(h.read(&cb).iter().map(|&c| c as f32));
    want.extend(std::iter::repeat_n(0.0, n_kv));
    bound.extend(std::iter::repeat_n(0.0, n_kv));
    exact.extend(std::iter::repeat_n(0.0, n_kv));
    Measured { got, want, bound: Some(bound), exact: Some(exact) }
}
