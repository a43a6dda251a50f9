//! The CPU fast path: the session's graph walk with int8 matrix products and vectorized ops.
//!
//! - Each projection's input is quantized once per activation format ([`crate::quant::Q8Rows`])
//!   and reused by every projection that reads the same buffer before it changes (Q, K and V;
//!   gate and up). The format is the one llama.cpp's CPU backend quantizes to for the weight's
//!   type ([`ActFormat::ggml_cpu`]: Q8_0, Q8_1 or Q8_K, with its rounding), so the int8 sums are
//!   llama.cpp's own; F16 and BF16 weights meet activations rounded to their type, as there.
//! - Projections run [`crate::quant::gemm_q8_1`] on the host's best instruction set, rows split
//!   across rayon's threads; for several tokens each weight row is unpacked once and dotted with
//!   every token (a blocked GEMM: weights read once per pass, not once per token). F32/F16/BF16
//!   weights stay float ([`crate::quant::gemm_f32`]); other formats fall back to the exact path.
//! - RMSNorm, rope (angles cached per pass), attention, softmax and the GLU activations use the
//!   f32 helpers of [`super::cpu_simd`]; buffers are kept between passes, so a decode step
//!   allocates nothing once the first one has run.
//!
//! Results differ from [`CpuPrecision::Exact`] by the 8-bit quantization of activations, as
//! llama.cpp's CPU backend's do for quantized weights.

use std::cell::RefCell;

use rayon::prelude::*;

use super::cpu_simd as vs;
use super::{ExecError, Model};
use crate::graph::{Buf, Step};
use crate::kernels::GluKind;
use crate::quant::{self, simd, ActFormat, Isa, Kernel, OutMatrix, Q8Rows, QuantError};
use crate::reference;

/// How a CPU session computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CpuPrecision {
    /// f32 activations and the reference ops: the oracle the GPU kernels and llama.cpp's exact
    /// mode are compared with.
    Exact,
    /// Int8 activations for quantized weights, SIMD kernels, all cores.
    Fast,
}

impl CpuPrecision {
    pub fn name(self) -> &'static str {
        match self {
            CpuPrecision::Exact => "exact",
            CpuPrecision::Fast => "fast",
        }
    }
}

/// Whose int8 arithmetic the fast path reproduces: which activations it quantizes, to what, and
/// how it norms them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Activations {
    /// llama.cpp's CPU backend (the default): per weight type Q8_0, Q8_1 or Q8_K with ggml-cpu's
    /// rounding ([`ActFormat::ggml_cpu`]), F16/BF16 weights meeting activations rounded to their
    /// type, ggml's RMSNorm; what the llama.cpp logits tests hold the fast path to.
    #[default]
    LlamaCpp,
    /// The GPU executor's int8 plan (`GpuPrecision::Fast`): q8_1 as `quantize_row_q8_1_ref` (the
    /// GPU's quantizer and its CPU reference) wherever the GPU runs an int8 product (the int8
    /// matvec in decode, the tiled int8 product over whole prefill passes) and f32 activations
    /// where it runs a float one; RMSNorm's sum of squares in f32 lanes, as the GPU's kernel.
    /// What the GPU's int8 path is held to on the CPU.
    ///
    /// Two int8 runs that differ anywhere in a last bit (a sum's order, a norm) round some
    /// activation the other way; in q8_1 that moves a block's f16 d·Σq, or a neighbour of an
    /// outlier (SmolLM2's GLU holds |x| ≈ 3000, so its block steps by ≈ 24), and every later
    /// quantization drifts: such runs sit about as far apart as each is from f32 (1e-4..3e-3 on
    /// SmolLM2), not at rounding distance.
    Gpu,
}

impl Activations {
    pub fn name(self) -> &'static str {
        match self {
            Activations::LlamaCpp => "llama.cpp",
            Activations::Gpu => "gpu",
        }
    }

    /// The activation format a projection of weights `ty` over rows of `k` takes in a pass of
    /// `tokens` (its last row only if `last_only`), if int8.
    fn int8_format(self, ty: crate::dtype::GgmlType, k: usize, tokens: usize, last_only: bool) -> Option<ActFormat> {
        match self {
            Activations::LlamaCpp => {
                ActFormat::ggml_cpu(ty).filter(|f| simd::int8_supported(ty) && k.is_multiple_of(f.block()))
            }
            Activations::Gpu => {
                // As GpuSession::plan: decode passes take the int8 matvec, prefill passes the int8
                // product over all their rows (a last-row-only projection is a float one).
                let gpu = if tokens == 1 {
                    crate::kernels::int8_matvec_type(ty)
                } else {
                    !last_only && crate::kernels::int8_matmul_type(ty)
                };
                let int8 = gpu && simd::int8_supported(ty) && k.is_multiple_of(quant::QK8_1);
                int8.then_some(ActFormat::Q8_1Ref)
            }
        }
    }
}

/// What the fast path keeps between passes.
pub(crate) struct FastState {
    isa: Isa,
    /// Whose int8 arithmetic the pass reproduces.
    activations: Activations,
    /// The projection weights in huge pages (decode reads them ~45% faster), if copied.
    weights: Option<super::cpu_weights::HugeWeights>,
    /// The quantized inputs of the last projections, one per activation format.
    q8: ActCache,
    /// Activations rounded to f16 or bf16 for weights of that type.
    narrowed: Vec<f32>,
    /// Rope (cos, sin) per token and rotated pair, and the pass they were made for.
    rope: Vec<(f32, f32)>,
    rope_key: Option<(usize, usize, u32, u32, usize, bool)>,
}

impl FastState {
    pub(crate) fn new(model: &Model) -> FastState {
        FastState {
            isa: Isa::best(),
            activations: Activations::default(),
            weights: super::cpu_weights::HugeWeights::copy(model),
            q8: ActCache::default(),
            narrowed: Vec::new(),
            rope: Vec::new(),
            rope_key: None,
        }
    }

    /// The instruction set the projections run on.
    pub(crate) fn isa(&self) -> Isa {
        self.isa
    }

    pub(crate) fn activations(&self) -> Activations {
        self.activations
    }

    pub(crate) fn set_activations(&mut self, activations: Activations) {
        self.activations = activations;
        self.q8.clear();
    }

    /// Bytes of the huge-page copy of the projection weights (0 when they are read in place).
    pub(crate) fn copied_weight_bytes(&self) -> usize {
        self.weights.as_ref().map_or(0, |w| w.bytes())
    }
}

/// The session's caches and buffers, lent to one fast pass.
pub(crate) struct Pass<'a> {
    pub model: &'a Model,
    pub k_cache: &'a mut [Vec<f32>],
    pub v_cache: &'a mut [Vec<f32>],
    pub bufs: &'a mut [Vec<f32>],
    pub pos0: usize,
    /// The session's capacity (LongRoPE chooses its factors by it).
    pub capacity: usize,
}

/// Runs `tokens` through the graph (buffers already sized) on rayon's pool.
pub(crate) fn forward(state: &mut FastState, pass: Pass<'_>, tokens: &[u32]) -> Result<(), ExecError> {
    // Inside the pool the walk's parallel loops split with cheap joins instead of waking the
    // pool from outside for each one.
    rayon::scope(|_| walk(state, pass, tokens))
}

fn walk(state: &mut FastState, pass: Pass<'_>, tokens: &[u32]) -> Result<(), ExecError> {
    let Pass { model, k_cache, v_cache, bufs, pos0, capacity } = pass;
    let cfg = &model.config;
    let file = &model.file;
    let n = tokens.len();
    let graph = model.graph(n);
    state.q8.clear();
    let nodes = &graph.nodes;
    let mut i = 0;
    while i < nodes.len() {
        let node = &nodes[i];
        // Projections reading the same input (Q, K, V; gate, up) run as one parallel region.
        let run = same_input_run(&nodes[i..]);
        if run > 1 {
            linear_group(state, model, &nodes[i..i + run], bufs, n)?;
            for node in &nodes[i..i + run] {
                if let Some(b) = node.step.written() {
                    state.q8.written(b);
                }
            }
            i += run;
            continue;
        }
        i += 1;
        match node.step {
            Step::Embed { out, scale } => {
                let t = file.require_tensor(&node.weights[0])?;
                reference::embed(
                    t.ty,
                    file.tensor_data(t),
                    cfg.n_embd as usize,
                    tokens,
                    scale,
                    &mut bufs[out as usize],
                )?;
            }
            Step::Norm { x, out, width, eps } => {
                let w = model.vector(&node.weights[0]);
                let scale = match state.activations {
                    Activations::LlamaCpp => ggml_rms_scale,
                    Activations::Gpu => gpu_rms_scale,
                };
                if x == out {
                    rms_norm_in_place(&mut bufs[x as usize], w, width as usize, eps, scale);
                } else {
                    let [src, dst] = bufs.get_disjoint_mut([x as usize, out as usize]).expect("distinct buffers");
                    rms_norm(src, w, width as usize, eps, dst, scale);
                }
            }
            Step::Linear { x, out, n_out, last_only, .. } => {
                let t = file.require_tensor(&node.weights[0])?;
                let k = t.row_len() as usize;
                let [src, dst] = bufs.get_disjoint_mut([x as usize, out as usize]).expect("distinct buffers");
                let src = if last_only { &src[(n - 1) * k..n * k] } else { &src[..] };
                let huge = state.weights.take();
                let w = node.step.weight_bytes(weights(&huge, file.tensor_data(t)));
                let result = linear(state, (x, last_only), n, t.ty, w, k, n_out as usize, src, dst);
                state.weights = huge;
                result?;
            }
            Step::BiasAdd { x, width } => {
                reference::bias_add(&mut bufs[x as usize], model.vector(&node.weights[0]), width as usize);
            }
            Step::Rope { x, heads, base, freq_scale, freq_factors, ext, .. } => {
                let neox = cfg.rope_style == crate::model::RopeStyle::Neox;
                let (hd, rd) = (cfg.head_dim as usize, cfg.rope_dims as usize);
                let which = crate::graph::rope_factors_weight(&node.step, capacity);
                let ff = freq_factors.then(|| model.vector(&node.weights[which]));
                let p = reference::RopeParams { base, freq_scale, freq_factors: ff, ext };
                let angles = RopeAngles { pos0, n, rope_dims: rd, p };
                rope(state, &mut bufs[x as usize], &angles, heads as usize, hd, neox);
            }
            Step::KvAppend { layer } => {
                let (kw, vw) = (graph.buffers.kv_width, graph.buffers.v_width);
                let l = layer as usize;
                k_cache[l][pos0 * kw..(pos0 + n) * kw].copy_from_slice(&bufs[Buf::K as usize]);
                v_cache[l][pos0 * vw..(pos0 + n) * vw].copy_from_slice(&bufs[Buf::V as usize]);
            }
            Step::Attention { layer, scale, softcap, window } => {
                let shape = reference::AttnShape {
                    n_head: cfg.n_head as usize,
                    n_head_kv: cfg.n_head_kv as usize,
                    head_dim: cfg.head_dim as usize,
                    head_dim_v: cfg.head_dim_v as usize,
                    scale,
                    softcap,
                    window,
                };
                let l = layer as usize;
                let [q, o] = bufs.get_disjoint_mut([Buf::Q as usize, Buf::AttnOut as usize]).expect("distinct");
                // llama.cpp's order where it is the reference (its soft-capped KQ takes other ops).
                let ggml_order = state.activations == Activations::LlamaCpp && softcap.is_none();
                attention(q, &k_cache[l], &v_cache[l], pos0, &shape, ggml_order, o);
            }
            Step::Add { a, b, out } => {
                assert_eq!(a, out, "{}: an add must write its first operand", node.name);
                let [acc, add] = bufs.get_disjoint_mut([a as usize, b as usize]).expect("distinct");
                vs::add(acc, add);
            }
            Step::Glu { gate, up, out, kind } => {
                let [g, u, o] = bufs.get_disjoint_mut([gate as usize, up as usize, out as usize]).expect("distinct");
                glu(g, u, kind, state.activations == Activations::LlamaCpp, o);
            }
            Step::Softcap { x, cap } => reference::softcap(&mut bufs[x as usize], cap),
            Step::Argmax => {}
        }
        if let Some(b) = node.step.written() {
            state.q8.written(b);
        }
    }
    Ok(())
}

/// The quantized input rows of the last projections: one [`Q8Rows`] per activation format, each
/// with the buffer (and whether its last row only) it was made from.
#[derive(Default)]
struct ActCache {
    rows: [Q8Rows; ActFormat::ALL.len()],
    source: [Option<(Buf, bool)>; ActFormat::ALL.len()],
}

impl ActCache {
    fn clear(&mut self) {
        self.source = Default::default();
    }

    /// Buffer `b` changed: what was quantized from it is stale.
    fn written(&mut self, b: Buf) {
        for s in &mut self.source {
            if s.is_some_and(|(q, _)| q == b) {
                *s = None;
            }
        }
    }

    /// Quantizes `x` (rows of `k`) from `source` to `format` unless that is already held.
    fn ensure(&mut self, format: ActFormat, source: (Buf, bool), x: &[f32], k: usize) {
        let i = format.index();
        if self.source[i] != Some(source) {
            self.rows[i].quantize_as(x, k, format);
            self.source[i] = Some(source);
        }
    }

    fn get(&self, format: ActFormat) -> &Q8Rows {
        &self.rows[format.index()]
    }
}

/// A weight's bytes: the huge-page copy where there is one.
fn weights<'a>(huge: &'a Option<super::cpu_weights::HugeWeights>, data: &'a [u8]) -> &'a [u8] {
    huge.as_ref().map_or(data, |h| h.get(data))
}

/// How many nodes from the first (at most 3) are projections of the same input rows, each into
/// its own buffer.
fn same_input_run(nodes: &[crate::graph::Node]) -> usize {
    let Some(Step::Linear { x, last_only, .. }) = nodes.first().map(|n| &n.step) else { return 0 };
    nodes
        .iter()
        .take(3)
        .take_while(|n| matches!(n.step, Step::Linear { x: x2, last_only: l2, out, .. } if x2 == *x && l2 == *last_only && out != *x))
        .count()
}

/// One projection of a run: weight type, weight bytes, row length, output buffer, rows.
type Projection<'a> = (crate::dtype::GgmlType, &'a [u8], usize, Buf, usize);

/// A run of 2 or 3 projections of one input buffer: the input quantized once, the products on
/// rayon's threads together. Any weight type without a fast kernel runs them one by one.
fn linear_group(
    state: &mut FastState,
    model: &Model,
    nodes: &[crate::graph::Node],
    bufs: &mut [Vec<f32>],
    n: usize,
) -> Result<(), ExecError> {
    let file = &model.file;
    let Step::Linear { x, last_only, .. } = nodes[0].step else { unreachable!("a run of projections") };
    let huge = state.weights.take();
    let result = linear_group_with(state, file, &huge, nodes, bufs, n, x, last_only);
    state.weights = huge;
    result
}

#[allow(clippy::too_many_arguments)]
fn linear_group_with(
    state: &mut FastState,
    file: &crate::gguf::GgufFile,
    huge: &Option<super::cpu_weights::HugeWeights>,
    nodes: &[crate::graph::Node],
    bufs: &mut [Vec<f32>],
    n: usize,
    x: Buf,
    last_only: bool,
) -> Result<(), ExecError> {
    let mut job: [Option<Projection<'_>>; 3] = [None; 3];
    for (slot, node) in job.iter_mut().zip(nodes) {
        let Step::Linear { out, n_out, .. } = node.step else { unreachable!("a run of projections") };
        let t = file.require_tensor(&node.weights[0])?;
        *slot = Some((t.ty, file.tensor_data(t), t.row_len() as usize, out, n_out as usize));
        if let Some(j) = slot.as_mut() {
            j.1 = node.step.weight_bytes(weights(huge, j.1));
        }
    }
    let k = job[0].expect("a run has a first projection").2;
    let format = |ty| state.activations.int8_format(ty, k, n, last_only);
    let all_int8 = job.iter().flatten().all(|j| format(j.0).is_some() && j.2 == k);
    if !all_int8 {
        for &(ty, w, k, out, n_out) in job.iter().flatten() {
            let [src, dst] = bufs.get_disjoint_mut([x as usize, out as usize]).expect("distinct buffers");
            let src = if last_only { &src[(n - 1) * k..n * k] } else { &src[..] };
            linear(state, (x, last_only), n, ty, w, k, n_out, src, dst)?;
        }
        return Ok(());
    }
    let rows = if last_only { 1 } else { n };
    let activations = state.activations;
    let format = |ty| activations.int8_format(ty, k, n, last_only);
    for &(ty, ..) in job.iter().flatten() {
        let format = format(ty).expect("checked above");
        let src = &bufs[x as usize];
        let src = if last_only { &src[(n - 1) * k..n * k] } else { &src[..] };
        state.q8.ensure(format, (x, last_only), src, k);
    }
    let threads = rayon::current_num_threads().max(1);
    let q8 = &state.q8;
    let product = |ty, w: &[u8], n_out: usize| Product {
        isa: state.isa,
        ty,
        k,
        row_bytes: w.len() / n_out,
        input: Input::Int8(q8.get(format(ty).expect("checked above"))),
    };
    let min_rows = |n_out: usize| n_out.div_ceil(threads * 4).max(16);
    match job {
        [Some((t0, w0, _, o0, n0)), Some((t1, w1, _, o1, n1)), None] => {
            let [d0, d1] = bufs.get_disjoint_mut([o0 as usize, o1 as usize]).expect("distinct buffers");
            let (m0, m1) = (
                OutMatrix::by_token(&mut d0[..rows * n0], n0, rows, n0),
                OutMatrix::by_token(&mut d1[..rows * n1], n1, rows, n1),
            );
            let (p0, p1) = (product(t0, w0, n0), product(t1, w1, n1));
            let (a, b) = rayon::join(|| p0.run(w0, m0, min_rows(n0)), || p1.run(w1, m1, min_rows(n1)));
            a.and(b)?;
        }
        [Some((t0, w0, _, o0, n0)), Some((t1, w1, _, o1, n1)), Some((t2, w2, _, o2, n2))] => {
            let [d0, d1, d2] =
                bufs.get_disjoint_mut([o0 as usize, o1 as usize, o2 as usize]).expect("distinct buffers");
            let m0 = OutMatrix::by_token(&mut d0[..rows * n0], n0, rows, n0);
            let m1 = OutMatrix::by_token(&mut d1[..rows * n1], n1, rows, n1);
            let m2 = OutMatrix::by_token(&mut d2[..rows * n2], n2, rows, n2);
            let (p0, p1, p2) = (product(t0, w0, n0), product(t1, w1, n1), product(t2, w2, n2));
            let (a, (b, c)) = rayon::join(
                || p0.run(w0, m0, min_rows(n0)),
                || rayon::join(|| p1.run(w1, m1, min_rows(n1)), || p2.run(w2, m2, min_rows(n2))),
            );
            a.and(b).and(c)?;
        }
        _ => unreachable!("runs are 2 or 3 projections"),
    }
    Ok(())
}

/// 1/√(mean(x²) + eps) as ggml-cpu's `rms_norm` computes it: each square rounded to f32, summed in
/// order in f64, the mean narrowed to f32. The quantized projections read the normed rows, and in
/// models with outlier channels one activation rounded the other way moves a projection by far
/// more than the f32 rounding that caused it, so the norm matches llama.cpp's bit for bit (the
/// in-order f64 sum is the price: about 1 µs a row of 576).
#[inline]
fn ggml_rms_scale(x: &[f32], eps: f32) -> f32 {
    let mut sum = 0f64;
    for &v in x {
        sum += (v * v) as f64;
    }
    let mean = (sum / x.len() as f64) as f32;
    1.0 / (mean + eps).sqrt()
}

/// 1/√(mean(x²) + eps) in f32 as the GPU's rmsnorm sums it: squares accumulated in lanes, the
/// lanes then summed (not its order to the bit: the GPU's lanes and tree differ).
#[inline]
fn gpu_rms_scale(x: &[f32], eps: f32) -> f32 {
    1.0 / (vs::sum_squares(x) / x.len() as f32 + eps).sqrt()
}

/// Rows past which a norm splits its rows across rayon's threads.
const NORM_PAR_ROWS: usize = 8;

/// Rows of `width` RMS-normed into `out`, times the weight ((x·scale)·w, as ggml's norm and mul),
/// each row's scale from `rms_scale`.
fn rms_norm(x: &[f32], weight: &[f32], width: usize, eps: f32, out: &mut [f32], rms_scale: fn(&[f32], f32) -> f32) {
    let one = |(xr, yr): (&[f32], &mut [f32])| vs::scale_mul(yr, xr, rms_scale(xr, eps), weight);
    if x.len() >= NORM_PAR_ROWS * width {
        x.par_chunks_exact(width).zip(out.par_chunks_exact_mut(width)).for_each(one);
    } else {
        x.chunks_exact(width).zip(out.chunks_exact_mut(width)).for_each(one);
    }
}

fn rms_norm_in_place(x: &mut [f32], weight: &[f32], width: usize, eps: f32, rms_scale: fn(&[f32], f32) -> f32) {
    let one = |row: &mut [f32]| {
        let scale = rms_scale(row, eps);
        row.iter_mut().zip(weight).for_each(|(v, &w)| *v = *v * scale * w);
    };
    if x.len() >= NORM_PAR_ROWS * width {
        x.par_chunks_exact_mut(width).for_each(one);
    } else {
        x.chunks_exact_mut(width).for_each(one);
    }
}

/// The rope angles of a pass: positions `pos0..pos0 + n`, and what turns them into angles.
struct RopeAngles<'a> {
    pos0: usize,
    n: usize,
    rope_dims: usize,
    /// Base, scaling, per-pair divisors (one tensor for every layer) and YaRN's part.
    p: reference::RopeParams<'a>,
}

/// Rope as [`reference::rope`] (the same iterated f32 angles), the cos/sin of a pass computed once
/// and reused by every layer with the same base; with llama.cpp's activations, ggml-cpu's
/// fma-contracted rotation ([`vs::rotate`]).
fn rope(state: &mut FastState, x: &mut [f32], a: &RopeAngles, heads: usize, head_dim: usize, neox: bool) {
    let (n, rope_dims) = (a.n, a.rope_dims);
    let half = rope_dims / 2;
    let p = &a.p;
    // Every layer's rope reads the same factors and YaRN values: the base alone differs.
    let key = (a.pos0, n, p.base.to_bits(), p.freq_scale.to_bits(), rope_dims, p.freq_factors.is_some());
    if state.rope_key != Some(key) {
        state.rope.resize(n * half, (0.0, 0.0));
        let theta_scale = p.base.powf(-2.0 / rope_dims as f32);
        for t in 0..n {
            let mut theta = (a.pos0 + t) as f32;
            for (i, cs) in state.rope[t * half..(t + 1) * half].iter_mut().enumerate() {
                let th = p.freq_factors.map_or(theta, |ff| theta / ff[i]);
                *cs = p.ext.cos_sin(th, p.freq_scale, i);
                theta *= theta_scale;
            }
        }
        state.rope_key = Some(key);
    }
    let ggml = state.activations == Activations::LlamaCpp;
    for t in 0..n {
        let cos_sin = &state.rope[t * half..(t + 1) * half];
        for h in 0..heads {
            let v = &mut x[(t * heads + h) * head_dim..(t * heads + h + 1) * head_dim];
            if ggml {
                vs::rotate(v, cos_sin, neox);
            } else if neox {
                let (a, b) = v[..rope_dims].split_at_mut(half);
                for ((x0, x1), &(c, s)) in a.iter_mut().zip(b.iter_mut()).zip(cos_sin) {
                    let (p, q) = (*x0, *x1);
                    *x0 = p * c - q * s;
                    *x1 = p * s + q * c;
                }
            } else {
                for (pair, &(c, s)) in v[..rope_dims].chunks_exact_mut(2).zip(cos_sin) {
                    let (p, q) = (pair[0], pair[1]);
                    pair[0] = p * c - q * s;
                    pair[1] = p * s + q * c;
                }
            }
        }
    }
}

/// The GLU of `gate` and `up`; SiLU as llama.cpp's CPU backend computes it if `ggml`.
fn glu(gate: &[f32], up: &[f32], kind: GluKind, ggml: bool, out: &mut [f32]) {
    // Split so both cores take a share of the exps when there are many.
    const CHUNK: usize = 4096;
    let run = |(o, (g, u)): (&mut [f32], (&[f32], &[f32]))| match kind {
        GluKind::SwiGlu if ggml => vs::silu_mul_ggml(o, g, u),
        GluKind::SwiGlu => vs::silu_mul(o, g, u),
        GluKind::GeGlu => vs::gelu_mul(o, g, u),
    };
    if out.len() <= CHUNK {
        run((out, (gate, up)));
    } else {
        out.par_chunks_mut(CHUNK).zip(gate.par_chunks(CHUNK).zip(up.par_chunks(CHUNK))).for_each(run);
    }
}

thread_local! {
    static SCORES: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    static LANES: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Causal attention as [`reference::attention`], one (token, head) per task, with vector dots, exps and
/// axpys and a per-thread scores buffer; with `ggml_order`, in llama.cpp's CPU float order
/// ([`vs::attend_ggml`]).
fn attention(
    q: &[f32],
    k_cache: &[f32],
    v_cache: &[f32],
    pos0: usize,
    s: &reference::AttnShape,
    ggml_order: bool,
    out: &mut [f32],
) {
    let n_tok = q.len() / (s.n_head * s.head_dim);
    let gqa = s.n_head / s.n_head_kv;
    let (kw, vw) = (s.n_head_kv * s.head_dim, s.n_head_kv * s.head_dim_v);
    let one = |(i, o): (usize, &mut [f32])| {
        let (t, h) = (i / s.n_head, i % s.n_head);
        let hk = h / gqa;
        let pos = pos0 + t;
        let lo = s.window.map_or(0, |w| (pos + 1).saturating_sub(w as usize));
        let qv = &q[(t * s.n_head + h) * s.head_dim..(t * s.n_head + h + 1) * s.head_dim];
        SCORES.with(|cell| {
            let mut scores = cell.borrow_mut();
            // Room for the whole cache at once, so later positions never grow it.
            let capacity = k_cache.len() / kw;
            if scores.capacity() < capacity {
                let len = scores.len();
                scores.reserve_exact(capacity - len);
            }
            scores.resize(pos + 1 - lo, 0.0);
            let keys = &k_cache[lo * kw + hk * s.head_dim..pos * kw + (hk + 1) * s.head_dim];
            let values = &v_cache[lo * vw + hk * s.head_dim_v..pos * vw + (hk + 1) * s.head_dim_v];
            if ggml_order {
                LANES.with(|lanes| {
                    let mut lanes = lanes.borrow_mut();
                    if lanes.len() < 64 * s.head_dim_v {
                        lanes.resize(64 * s.head_dim_v, 0.0);
                    }
                    let one = n_tok == 1;
                    vs::attend_ggml(qv, keys, kw, values, vw, lo, s.scale, one, &mut scores, &mut lanes, o);
                });
            } else {
                vs::attend(qv, keys, kw, values, vw, s.scale, s.softcap.unwrap_or(0.0), &mut scores, o);
            }
        });
    };
    let items = n_tok * s.n_head;
    let chunks = out[..items * s.head_dim_v].chunks_mut(s.head_dim_v).enumerate();
    // Worth a join once the heads hold more than a few microseconds of work.
    if items * (pos0 + n_tok) * s.head_dim < 16 * 1024 {
        chunks.for_each(one);
    } else {
        out[..items * s.head_dim_v].par_chunks_mut(s.head_dim_v).enumerate().for_each(one);
    }
}

/// out[t, r] = Σ_j W[r, j]·x[t, j]: int8 for quantized weights (the input quantized once per
/// buffer and reused), float for float weights, the exact path for anything else.
#[allow(clippy::too_many_arguments)]
fn linear(
    state: &mut FastState,
    source: (Buf, bool),
    tokens: usize,
    ty: crate::dtype::GgmlType,
    w: &[u8],
    k: usize,
    n_out: usize,
    x: &[f32],
    out: &mut [f32],
) -> Result<(), ExecError> {
    let format = state.activations.int8_format(ty, k, tokens, source.1);
    if format.is_none() && !simd::float_supported(ty) {
        return Ok(reference::linear(ty, w, k, n_out, x, out)?);
    }
    let n = x.len() / k;
    if let Some(format) = format {
        state.q8.ensure(format, source, x, k);
    }
    // ggml-cpu rounds the activations of F16 and BF16 weights to that type (their vec_dot_type);
    // the GPU's float products take them in f32.
    let x = match (state.activations, ty) {
        (Activations::Gpu, _) => x,
        (_, crate::dtype::GgmlType::F16) => narrow(&mut state.narrowed, x, |v| half::f16::from_f32(v).to_f32()),
        (_, crate::dtype::GgmlType::BF16) => narrow(&mut state.narrowed, x, |v| half::bf16::from_f32(v).to_f32()),
        _ => x,
    };
    // Enough tasks that both cores finish together, few enough that each is worth a join.
    let threads = rayon::current_num_threads().max(1);
    let min_rows = n_out.div_ceil(threads * 4).max(16);
    let product = Product {
        isa: state.isa,
        ty,
        k,
        row_bytes: w.len() / n_out,
        input: match format {
            Some(f) => Input::Int8(state.q8.get(f)),
            None => Input::Float(x),
        },
    };
    Ok(product.run(w, OutMatrix::by_token(&mut out[..n * n_out], n_out, n, n_out), min_rows)?)
}

/// `x` rounded value by value through `round` into `buf` (kept between calls).
fn narrow<'a>(buf: &'a mut Vec<f32>, x: &[f32], round: impl Fn(f32) -> f32) -> &'a [f32] {
    buf.clear();
    buf.extend(x.iter().map(|&v| round(v)));
    buf
}

/// What one projection multiplies its weight rows with.
#[derive(Clone, Copy)]
enum Input<'a> {
    Int8(&'a Q8Rows),
    Float(&'a [f32]),
}

#[derive(Clone, Copy)]
struct Product<'a> {
    isa: Isa,
    ty: crate::dtype::GgmlType,
    k: usize,
    row_bytes: usize,
    input: Input<'a>,
}

impl Product<'_> {
    /// The rows of `w` into `out`, halved across rayon's threads down to `min_rows` a task.
    fn run(&self, w: &[u8], mut out: OutMatrix<'_>, min_rows: usize) -> Result<(), QuantError> {
        let rows = out.rows();
        if rows > min_rows {
            // Halves on 16-row boundaries where possible (whole AMX tiles).
            let half = if rows >= 32 { (rows / 2).next_multiple_of(16) } else { rows / 2 };
            let (w0, w1) = w.split_at(half * self.row_bytes);
            let (o0, o1) = out.split_rows(half);
            let (a, b) = rayon::join(|| self.run(w0, o0, min_rows), || self.run(w1, o1, min_rows));
            return a.and(b);
        }
        match self.input {
            Input::Int8(q8) => quant::gemm_q8_1_into(self.isa, Kernel::Auto, self.ty, w, self.k, q8, &mut out),
            Input::Float(x) => quant::gemm_f32_into(self.isa, self.ty, w, self.k, x, &mut out),
        }
    }
}
