//! The GPU executor: one for every `Device` (CUDA and HIP). Weights are uploaded once in their
//! quantized form; the KV cache and activations live on the device; a decode step moves only the
//! token id in and the logits (or the argmax id) out. The decode pass is planned once — every
//! launch with its grid and arguments — and replayed each step with the new position.
//!
//! Replay ([`Replay`]): on a GPU the decode step runs as one graph ([`LaunchGraph`]: a CUDA or HIP
//! graph) built at the first step; before each later step only the fill that writes the position
//! is updated: rope, the KV append and decode attention read the position from the device (their
//! launches are bounded once by the cache's capacity, decode attention's grid sized for it), so the
//! host changes no launch between steps. Prefill passes run as graphs too, one per pass size
//! (`prefill_pass`), their attention launches updated with the pass's first position. On sm_90+
//! the graphs' kernels are chained by programmatic dependent launch (each kernel's launch overlaps
//! the end of the one before; see `rf_grid_wait` in the CUDA prelude). The argmax writes the next token id in place into the ids
//! buffer, so greedy decode copies nothing to the device and 4 bytes back. `Plain` replay queues the same launches
//! one by one; it is the fallback where a graph cannot be built and the default on the CPU device.
//!
//! Decode runs in one of two precisions ([`GpuPrecision`]): `Fast` quantizes each
//! quantized projection's input to q8_1 once (Q/K/V and gate/up share one quantization, as the
//! CPU's fast path does) and runs the int8 matvec (`mmvq`); `Exact` keeps the f32 matvec, the
//! path the CPU reference matches to f32 rounding (the default). Prefill follows the same split:
//! `Fast` quantizes each quantized projection's input once per pass and runs the tiled int8
//! product on the matrix units (`mmq`), `Exact` the f32 matrix product. Prefill attention is flash
//! attention (tiled, online softmax) in both wherever the cache is f16 and the head at most 256
//! wide.
//!
//! The `Fast` plans are fused ([`super::fuse`], unless `ROCMFORGE_FUSE=0`): the residual add, the
//! norm and the quantize of the next product's input in one launch, rope and the KV append in one,
//! the GLU with its quantize in one (decode and prefill), and in decode Q/K/V and gate/up each in
//! one int8 matvec launch.

use std::collections::HashMap;
use std::time::Instant;

use super::fuse::{self, Fused, FusedKind};
use super::{ExecError, Model};
use crate::device::{BufView, Device, DeviceBuffer, DeviceError, GraphNode, Kernel, LaunchGraph};
use crate::graph::{Buf, Graph, Node, Step};
use crate::jit::{Engine, Origin};
use crate::kernels::launch::{self, Launch};
use crate::kernels::{F16Tile, KernelSpec, KvPrecision};

/// What loading a model onto the device took.
#[derive(Clone, Debug, Default)]
pub struct LoadReport {
    pub upload_seconds: f64,
    pub jit_seconds: f64,
    pub kernels_compiled: usize,
    pub kernels_cached: usize,
    pub weight_bytes: u64,
}

/// A weight on the device: norm and bias vectors as f32, matrices in their quantized blocks.
enum Weight {
    F32(DeviceBuffer<f32>),
    Blocks(DeviceBuffer<u8>),
}

impl Weight {
    fn view(&self) -> BufView<'_> {
        match self {
            Weight::F32(b) => b.view(),
            Weight::Blocks(b) => b.view(),
        }
    }
}

/// A model resident on a device, with its kernels loaded.
pub struct GpuModel<'m> {
    pub model: &'m Model,
    pub device: Device,
    weights: Vec<Weight>,
    /// Index into `weights` by tensor name.
    weight_index: HashMap<String, usize>,
    /// Index into `weights` of `rope_dims / 2` ones: the frequency divisors of a rope without
    /// Llama 3's factors (dividing by 1 is exact, so one rope kernel serves both).
    unit_freq_factors: usize,
    kernels: HashMap<KernelSpec, Kernel>,
    /// The element type of its sessions' KV caches (the attention and append kernels read it).
    pub kv: KvPrecision,
    /// The decode precision of sessions opened with [`GpuSession::new`] (`Exact` unless set).
    pub precision: GpuPrecision,
    /// Whether sessions opened from now on fuse their int8 decode plan ([`fuse`]): on unless
    /// `ROCMFORGE_FUSE=0`.
    pub fuse: bool,
    /// Which products prefill passes run (sessions opened from now on).
    pub prefill: PrefillProducts,
    pub report: LoadReport,
}

/// Which products a prefill pass runs its matrix products as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PrefillProducts {
    /// f32 products in `Exact`, int8 in `Fast`: devices without a matrix unit, the CPU device
    /// (which runs the references), and `ROCMFORGE_PREFILL=legacy`.
    Legacy,
    /// f16 products on the matrix unit in `Exact` (weights dequantized to f16, inputs rounded to
    /// f16, f32 sums: [`KernelSpec::f16_prefill`]), int8 in `Fast`: the default where the device
    /// has a matrix unit.
    F16Exact,
    /// f16 products in both precisions (`ROCMFORGE_PREFILL=f16`).
    F16,
}

impl PrefillProducts {
    /// What a session of `precision` runs its prefill products in: `f16`, `int8` or `f32`.
    pub fn name(self, precision: GpuPrecision) -> &'static str {
        match (self.f16(precision), precision) {
            (true, _) => "f16",
            (false, GpuPrecision::Fast) => "int8",
            (false, GpuPrecision::Exact) => "f32",
        }
    }

    /// The default for `device`, as `ROCMFORGE_PREFILL` (`legacy`, `f16`) overrides it.
    fn for_device(device: &Device) -> PrefillProducts {
        let matrix = device.target().is_some_and(|t| t.render_target().matrix != crate::kernels::MatrixUnit::None);
        match std::env::var("ROCMFORGE_PREFILL").as_deref().map(str::trim) {
            Ok("legacy") => PrefillProducts::Legacy,
            Ok("f16") if matrix => PrefillProducts::F16,
            _ if matrix => PrefillProducts::F16Exact,
            _ => PrefillProducts::Legacy,
        }
    }

    /// Whether a session of `precision` runs its prefill products in f16.
    pub fn f16(self, precision: GpuPrecision) -> bool {
        match self {
            PrefillProducts::Legacy => false,
            PrefillProducts::F16Exact => precision == GpuPrecision::Exact,
            PrefillProducts::F16 => true,
        }
    }
}

impl<'m> GpuModel<'m> {
    /// A projection's weight: from its first row on where it reads a range of a fused tensor
    /// (phi3's `attn_qkv`, `ffn_up`).
    fn linear_weight(&self, node: &Node) -> Result<Slot, ExecError> {
        let t = self.model.file.require_tensor(&node.weights[0])?;
        let index = self.weight_index[&node.weights[0]];
        Ok(match node.step.weight_byte_range(t.n_bytes as usize).start {
            0 => Slot::Weight(index),
            from => Slot::WeightFrom { index, from },
        })
    }

    /// Compiles (or loads from the cache) every kernel the model needs for the device's own
    /// target, and uploads the weights; sessions keep their KV cache in f16.
    pub fn new(model: &'m Model, device: Device, engine: &Engine) -> Result<GpuModel<'m>, ExecError> {
        GpuModel::with_kv(model, device, engine, KvPrecision::default())
    }

    /// As [`GpuModel::new`], with sessions keeping their KV cache in `kv`.
    pub fn with_kv(
        model: &'m Model,
        device: Device,
        engine: &Engine,
        kv: KvPrecision,
    ) -> Result<GpuModel<'m>, ExecError> {
        let cfg = &model.config;
        if cfg.head_dim != cfg.head_dim_v {
            return Err(ExecError::Unsupported(format!(
                "the GPU KV cache needs equal key and value head sizes (this model: {} and {})",
                cfg.head_dim, cfg.head_dim_v
            )));
        }
        let specs: std::collections::BTreeSet<KernelSpec> =
            super::kernel_specs(cfg, model.file.as_ref())?.into_iter().map(|s| s.with_kv(kv)).collect();
        let specs: Vec<KernelSpec> = specs.into_iter().collect();
        let start = Instant::now();
        let mut kernels = HashMap::new();
        let mut report = LoadReport::default();
        match device.target().cloned() {
            Some(target) => {
                if !engine.targets().contains(&target) {
                    return Err(ExecError::Unsupported(format!(
                        "the engine does not compile for this device's target {target}"
                    )));
                }
                let warm = engine.warm(&specs)?;
                for k in warm.kernels.iter().filter(|k| k.target == target) {
                    // An entry compiled for another target is never loaded (the key has the target).
                    kernels.insert(k.spec, device.load_kernel(k)?);
                    match k.origin {
                        Origin::Compiled => report.kernels_compiled += 1,
                        _ => report.kernels_cached += 1,
                    }
                }
            }
            // A device that runs no compiled code (the CPU device) runs each op's reference.
            None => {
                for spec in &specs {
                    kernels.insert(*spec, device.reference_kernel(spec)?);
                }
            }
        }
        report.jit_seconds = start.elapsed().as_secs_f64();

        let start = Instant::now();
        let (mut weights, mut weight_index) = (Vec::new(), HashMap::new());
        for node in &model.decode.nodes {
            for name in &node.weights {
                if weight_index.contains_key(name) {
                    continue;
                }
                let weight = match node.step {
                    // Norms, biases and rope frequency factors go up as f32, as the kernels read them.
                    Step::Norm { .. } | Step::BiasAdd { .. } | Step::Rope { .. } => {
                        Weight::F32(device.upload(model.vector(name))?)
                    }
                    _ => {
                        let t = model.file.require_tensor(name)?;
                        Weight::Blocks(device.upload(model.file.tensor_data(t))?)
                    }
                };
                report.weight_bytes += match &weight {
                    Weight::F32(b) => b.bytes(),
                    Weight::Blocks(b) => b.bytes(),
                } as u64;
                weight_index.insert(name.clone(), weights.len());
                weights.push(weight);
            }
        }
        let unit_freq_factors = weights.len();
        weights.push(Weight::F32(device.upload(&vec![1f32; cfg.rope_dims as usize / 2])?));
        device.synchronize()?;
        report.upload_seconds = start.elapsed().as_secs_f64();
        Ok(GpuModel {
            model,
            prefill: PrefillProducts::for_device(&device),
            device,
            weights,
            weight_index,
            unit_freq_factors,
            kernels,
            kv,
            precision: GpuPrecision::default(),
            fuse: fuse::enabled_by_env(),
            report,
        })
    }
}

/// How a GPU session's decode computes its projections over quantized weights.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum GpuPrecision {
    /// Activations quantized to q8_1 and int8 dot products (as llama.cpp's mmvq): 1.2 to 2.4 times
    /// the decode speed, and logits that move by NMSE up to ~3e-2 from the f32 reference on
    /// SmolLM2 and Gemma 3 (greedy text can part after a few dozen tokens). Opt-in until held to
    /// issue 9's bound.
    Fast,
    /// f32 activations and the float matvec in decode: the CPU reference's arithmetic (the
    /// default). Prefill products are f16 on a matrix unit ([`PrefillProducts`]), f32 elsewhere.
    #[default]
    Exact,
}

impl std::str::FromStr for GpuPrecision {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "exact" => Ok(GpuPrecision::Exact),
            "fast" => Ok(GpuPrecision::Fast),
            other => Err(format!("unknown GPU precision {other:?}: expected exact or fast")),
        }
    }
}

impl GpuPrecision {
    pub fn name(self) -> &'static str {
        match self {
            GpuPrecision::Fast => "fast",
            GpuPrecision::Exact => "exact",
        }
    }
}

/// Bytes of the q8_1 buffer a decode pass needs: the widest quantized projection input.
fn q8_bytes(graph: &Graph) -> usize {
    graph
        .nodes
        .iter()
        .filter_map(|n| match n.spec.int8_decode() {
            Some((_, KernelSpec::MatVecQ8 { k, .. })) => Some(launch::q8_1_bytes(k as usize)),
            _ => None,
        })
        .max()
        .unwrap_or(0)
}

/// The row lengths of the prefill's tiled int8 products (`MatMulQ8`), one per product.
fn mmq_row_lengths(graph: &Graph) -> impl Iterator<Item = u32> + '_ {
    graph.nodes.iter().filter_map(|n| match n.spec.int8_prefill() {
        Some((_, KernelSpec::MatMulQ8 { k, .. })) => Some(k),
        _ => None,
    })
}

/// Bytes of the q8_1 buffer a prefill pass of `max_batch` tokens needs: the widest quantized
/// matrix product input, for every token.
fn q8_prefill_bytes(graph: &Graph, max_batch: usize) -> usize {
    mmq_row_lengths(graph).map(|k| launch::q8_1_bytes(k as usize * max_batch)).max().unwrap_or(0)
}

/// A buffer a planned launch names; resolved to a view of the session's buffers at each replay.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Slot {
    /// An activation buffer, from element `from` on.
    Act {
        buf: Buf,
        from: usize,
    },
    KCache(usize),
    VCache(usize),
    /// Split decode attention's partial results and per-group counters.
    AttnPart,
    AttnCounters,
    Weight(usize),
    /// A weight's bytes from `from` on (a projection reading a row range of a fused tensor).
    WeightFrom {
        index: usize,
        from: usize,
    },
    /// Token ids in; the argmax writes the next id to element 0.
    Ids,
    Positions,
    /// The q8_1 blocks of the int8 decode's current projection input.
    Q8,
    /// Their (d, d·Σq) pairs, which the quantizers write beside them.
    Q8Ds,
    /// The f16 weights of the prefill product running ([`KernelSpec::DequantF16`]).
    F16W,
    /// The f16 rows of the input of the prefill products running ([`KernelSpec::ConvertF16`]).
    F16X,
    /// Their rows' scales.
    F16Scale,
}

fn act(buf: Buf) -> Slot {
    Slot::Act { buf, from: 0 }
}

/// A launch planned once and replayed: its kernel and its description over slots.
struct Planned<'g> {
    kernel: &'g Kernel,
    launch: Launch<Slot>,
    /// The index of its graph node, for profiles.
    node: usize,
    /// A fused launch's name in profiles (its nodes' names, joined by `+`).
    name: Option<String>,
}

impl<'g> Planned<'g> {
    fn new(kernel: &'g Kernel, launch: Launch<Slot>, node: usize) -> Planned<'g> {
        Planned { kernel, launch, node, name: None }
    }
}

/// A fused launch's profile name: the first node's name whole, the others without their
/// `blk.N.` (`blk.3.attn_q+attn_k+attn_v`), then `+q8` when it also quantizes its output.
fn fused_name(graph: &Graph, nodes: &[usize], quantizes: bool) -> String {
    let mut name = String::new();
    for (i, &n) in nodes.iter().enumerate() {
        let full = graph.nodes[n].name.as_str();
        let short = match full.strip_prefix("blk.").and_then(|r| r.split_once('.')) {
            Some((_, rest)) if i > 0 => rest,
            _ => full,
        };
        if i > 0 {
            name.push('+');
        }
        name.push_str(short);
    }
    if quantizes {
        name.push_str("+q8");
    }
    name
}

const N_BUFS: usize = Buf::Logits as usize + 1;

/// Tokens per prefill pass: activation buffers are sized by it, so it bounds their memory
/// (SmolLM2: 18 MB at 512, a 7B 127 MB, within the weights + KV + 10% bound) while keeping each
/// pass large enough to fill the GPU (a 7B's 4096-row products are 32 × 8 int8 tiles of
/// 128 rows × 64 tokens at 512: 256 blocks for 132 SMs, where 256 tokens left 4 SMs idle).
pub const DEFAULT_MAX_BATCH: usize = 512;

/// Prefill graphs a session keeps: a prompt's full passes, its last shorter one, and a third size.
const PREFILL_GRAPHS: usize = 3;
/// Pass sizes a session remembers having run (a size past them never gets a graph).
const PREFILL_SIZES_KEPT: usize = 64;

/// A prefill pass of `n` tokens as one graph: its plan, and the nodes that change with the
/// pass's first position.
struct PrefillGraph<'g> {
    n: usize,
    plan: Vec<Planned<'g>>,
    position_dependent: Vec<usize>,
    graph: LaunchGraph<'g>,
}

/// A GPU session: device-resident KV cache and activation buffers for passes of up to
/// `max_batch` tokens (longer prompts are prefilled in chunks).
pub struct GpuSession<'g, 'm> {
    g: &'g GpuModel<'m>,
    capacity: usize,
    max_batch: usize,
    pos: usize,
    /// One per `Buf`, in `Buf` order.
    bufs: Vec<DeviceBuffer<f32>>,
    k_cache: Vec<KvBuffer>,
    v_cache: Vec<KvBuffer>,
    /// The workspace of split decode attention and of stream-K prefill products: partial
    /// results, and counters kept at 0 between launches.
    attn_part: DeviceBuffer<f32>,
    attn_counters: DeviceBuffer<i32>,
    /// Stream-K workers of the prefill's int8 products (0: none; see `MatMulQ8::workers_for`).
    mmq_workers: u32,
    ids: DeviceBuffer<i32>,
    positions: DeviceBuffer<i32>,
    /// q8_1 activations of the int8 decode (one byte when the session runs `Exact`).
    q8: DeviceBuffer<u8>,
    q8_ds: DeviceBuffer<f32>,
    /// The f16 operands of the prefill products (one element each where prefill is not f16).
    f16_w: DeviceBuffer<half::f16>,
    f16_x: DeviceBuffer<half::f16>,
    f16_scale: DeviceBuffer<f32>,
    precision: GpuPrecision,
    /// Whether the int8 decode plan is fused ([`fuse`]).
    fuse: bool,
    decode_plan: Vec<Planned<'g>>,
    /// Indices into `decode_plan` of the launches that change with the position.
    position_dependent: Vec<usize>,
    replay: Replay,
    /// The decode graph: node 0 writes the position, node 1 + i runs `decode_plan[i]`.
    graph: Option<LaunchGraph<'g>>,
    /// Why the session replays plainly, when graphs were asked for.
    graph_off: Option<String>,
    /// The token id element 0 of `ids` holds (the last argmax read back), if known.
    id_on_device: Option<u32>,
    /// Graph steps that updated the graph, and the host time those updates took.
    graph_updates: (u64, f64),
    /// Prefill passes as graphs, one per pass size, the latest used last ([`PREFILL_GRAPHS`] at
    /// most).
    prefill_graphs: Vec<PrefillGraph<'g>>,
    /// Pass sizes run before (a size's second pass builds its graph; a full pass's first does).
    prefill_sizes: Vec<usize>,
    /// Why prefill passes run plainly, where the device refused a graph.
    prefill_graph_off: Option<String>,
    /// Prefill graphs built, and the host time building them took.
    prefill_graph_builds: (u64, f64),
    logits: Vec<f32>,
    /// Bytes this session allocated on the device (KV cache, activations, ids, positions).
    pub allocated: SessionBytes,
}

/// One layer's K or V cache, in the precision the model's kernels read.
enum KvBuffer {
    F16(DeviceBuffer<half::f16>),
    F32(DeviceBuffer<f32>),
}

impl KvBuffer {
    fn new(dev: &Device, kv: KvPrecision, len: usize) -> Result<KvBuffer, DeviceError> {
        Ok(match kv {
            KvPrecision::F16 => KvBuffer::F16(dev.alloc(len)?),
            KvPrecision::F32 => KvBuffer::F32(dev.alloc(len)?),
        })
    }

    fn view(&self) -> BufView<'_> {
        match self {
            KvBuffer::F16(b) => b.view(),
            KvBuffer::F32(b) => b.view(),
        }
    }

    fn bytes(&self) -> usize {
        match self {
            KvBuffer::F16(b) => b.bytes(),
            KvBuffer::F32(b) => b.bytes(),
        }
    }
}

/// Device memory a session holds, by purpose.
#[derive(Clone, Copy, Debug, Default)]
pub struct SessionBytes {
    pub kv_cache: u64,
    pub activations: u64,
}

/// Bytes of the q8_1 buffer of a session with passes of `max_batch` tokens.
fn q8_buffer_bytes(model: &Model, max_batch: usize, precision: GpuPrecision) -> usize {
    match precision {
        GpuPrecision::Fast => q8_bytes(&model.decode).max(q8_prefill_bytes(&model.prefill, max_batch)).max(1),
        GpuPrecision::Exact => 1,
    }
}

/// Floats of the (d, d·Σq) pairs beside the q8_1 buffer's blocks.
fn q8_ds_len(model: &Model, max_batch: usize, precision: GpuPrecision) -> usize {
    (q8_buffer_bytes(model, max_batch, precision) / launch::Q8_1_BLOCK_BYTES * 2).max(1)
}

/// The f16 prefill's operand lengths for passes of `n` tokens: (the largest product's weights,
/// its widest input), one element each where prefill is not f16.
fn f16_lens(model: &Model, n: usize, f16_prefill: bool) -> (usize, usize) {
    let products =
        model.prefill.nodes.iter().filter(|_| f16_prefill).filter_map(|node| match (&node.step, node.spec) {
            (Step::Linear { n_out, last_only: false, .. }, KernelSpec::MatMul { k, .. })
                if node.spec.f16_prefill().is_some() =>
            {
                Some((*n_out as usize * k as usize, n * k as usize))
            }
            _ => None,
        });
    products.fold((1, 1), |(w, x), (pw, px)| (w.max(pw), x.max(px)))
}

/// Device bytes of a session's activations with passes of `n` tokens, as `with_precision`
/// allocates them: the f32 buffers, ids and positions, decode attention's partials (`part_len`
/// floats) and counters, the q8_1 buffer with its (d, d·Σq) pairs, and the f16 prefill's operands.
fn activation_bytes(
    model: &Model,
    n: usize,
    part_len: usize,
    counters: usize,
    precision: GpuPrecision,
    f16_prefill: bool,
) -> u64 {
    let plan = &model.prefill.buffers;
    let floats: usize = plan.sizes.iter().map(|(b, _)| plan.len(*b, n)).sum();
    let q8_ds = q8_ds_len(model, n, precision);
    let (f16_w, f16_x) = f16_lens(model, n, f16_prefill);
    let f16_scale = if f16_prefill { n } else { 1 };
    (4 * (floats + 2 * n + part_len + counters + q8_ds + f16_scale)
        + q8_buffer_bytes(model, n, precision)
        + 2 * (f16_w + f16_x)) as u64
}

/// The tokens a prefill pass takes: `requested`, or less where its activations would pass
/// `budget` bytes (a tenth of the weights and KV cache: the session stays within weights + KV +
/// 10%), in steps of 64 tokens (the int8 GEMM's token tile), never under 64.
fn batch_within(requested: usize, budget: u64, bytes: impl Fn(usize) -> u64) -> usize {
    let mut n = requested;
    while n > 64 && bytes(n) > budget {
        n = (n - 1) / 64 * 64;
    }
    n
}

/// A node whose kernel is not the one its step runs (a graph-building bug).
fn mismatch(node: &Node) -> ExecError {
    ExecError::Unsupported(format!("{}: kernel {} does not run a {:?} step", node.name, node.spec, node.step))
}

impl<'g, 'm> GpuSession<'g, 'm> {
    /// A session that decodes in [`GpuPrecision::Fast`].
    pub fn new(g: &'g GpuModel<'m>, capacity: usize, max_batch: usize) -> Result<Self, ExecError> {
        Self::with_precision(g, capacity, max_batch, g.precision)
    }

    pub fn with_precision(
        g: &'g GpuModel<'m>,
        capacity: usize,
        max_batch: usize,
        precision: GpuPrecision,
    ) -> Result<Self, ExecError> {
        let model = g.model;
        let max = model.config.n_ctx_train as usize;
        if capacity > max {
            return Err(ExecError::CapacityTooLarge { capacity, max });
        }
        let plan = &model.prefill.buffers;
        let dev = &g.device;
        let cfg = &model.config;
        let (n_head, n_kv) = (cfg.n_head as usize, cfg.n_head_kv as usize);
        let uses_split = model.decode.nodes.iter().any(|n| matches!(n.spec, KernelSpec::AttnDecode { .. }));
        let attn_part_len = if uses_split {
            launch::AttnDecode::<()>::part_len(capacity, n_head, n_kv, cfg.head_dim as usize)
        } else {
            0
        };
        // Stream-K prefill products (the int8 path only) share the partials and counters with
        // decode attention (never in flight together): a worker a multiprocessor.
        // `ROCMFORGE_STREAMK=0` keeps a block a tile everywhere (for comparing the two).
        let stream_k_off = std::env::var("ROCMFORGE_STREAMK").is_ok_and(|v| v.trim() == "0");
        let mmq_workers = match precision {
            GpuPrecision::Fast if !stream_k_off => dev.multiprocessors().unwrap_or(0),
            _ => 0,
        };
        let mmq_part_len = mmq_row_lengths(&model.prefill)
            .filter(|&k| crate::kernels::mmq_may_stream(k))
            .map(|k| launch::MatMulQ8::<()>::part_len(k, mmq_workers))
            .max()
            .unwrap_or(0);
        let part_len = attn_part_len.max(mmq_part_len);
        let n_counters = n_kv.max(mmq_workers as usize);
        // The KV cache, sized with checked arithmetic (f32 bytes, halved for f16); a refusal names
        // what was asked.
        let need = super::session::kv_cache_bytes(plan, capacity).map(|b| b / 4 * g.kv.size() as u64);
        let need = need.ok_or_else(|| ExecError::OutOfMemory {
            what: "KV cache",
            capacity,
            need: "more than 2^64 bytes".into(),
            limit: "no device has that".into(),
        })?;
        let budget = (g.report.weight_bytes + need) / 10;
        let max_batch = batch_within(max_batch.clamp(1, capacity.max(1)), budget, |n| {
            activation_bytes(model, n, part_len, n_counters, precision, g.prefill.f16(precision))
        });
        let bufs =
            plan.sizes.iter().map(|(buf, _)| dev.alloc(plan.len(*buf, max_batch))).collect::<Result<Vec<_>, _>>()?;
        debug_assert!(plan.sizes.iter().enumerate().all(|(i, (b, _))| *b as usize == i) && bufs.len() == N_BUFS);
        let kv = |w: usize| {
            KvBuffer::new(dev, g.kv, capacity * w).map_err(|e| ExecError::OutOfMemory {
                what: "KV cache",
                capacity,
                need: super::session::gib(need),
                limit: format!("the device refused it: {e}"),
            })
        };
        let k_cache = (0..plan.n_layer).map(|_| kv(plan.kv_width)).collect::<Result<Vec<_>, _>>()?;
        let v_cache = (0..plan.n_layer).map(|_| kv(plan.v_width)).collect::<Result<Vec<_>, _>>()?;
        let (ids, positions) = (dev.alloc(max_batch)?, dev.alloc(max_batch)?);
        let attn_part = dev.alloc(part_len)?;
        let mut attn_counters = dev.alloc(n_counters)?;
        attn_counters.write(0, &vec![0i32; n_counters])?;
        let q8 = dev.alloc(q8_buffer_bytes(model, max_batch, precision))?;
        let q8_ds = dev.alloc(q8_ds_len(model, max_batch, precision))?;
        let (f16_w_len, f16_x_len) = f16_lens(model, max_batch, g.prefill.f16(precision));
        let (f16_w, f16_x) = (dev.alloc(f16_w_len)?, dev.alloc(f16_x_len)?);
        let f16_scale = dev.alloc(if g.prefill.f16(precision) { max_batch } else { 1 })?;
        let allocated = SessionBytes {
            kv_cache: k_cache.iter().chain(&v_cache).map(|b| b.bytes() as u64).sum(),
            activations: bufs
                .iter()
                .map(|b| b.bytes())
                .chain([&ids, &positions].map(|b| b.bytes()))
                .chain([
                    attn_part.bytes(),
                    attn_counters.bytes(),
                    q8.bytes(),
                    q8_ds.bytes(),
                    f16_w.bytes(),
                    f16_x.bytes(),
                    f16_scale.bytes(),
                ])
                .sum::<usize>() as u64,
        };
        debug_assert_eq!(
            allocated.activations,
            activation_bytes(model, max_batch, part_len, n_counters, precision, g.prefill.f16(precision))
        );
        let mut s = GpuSession {
            g,
            capacity,
            max_batch,
            pos: 0,
            bufs,
            k_cache,
            v_cache,
            attn_part,
            attn_counters,
            mmq_workers,
            ids,
            positions,
            q8,
            q8_ds,
            f16_w,
            f16_x,
            f16_scale,
            precision,
            fuse: g.fuse,
            decode_plan: Vec::new(),
            position_dependent: Vec::new(),
            replay: Replay::default_for(dev),
            graph: None,
            graph_off: None,
            id_on_device: None,
            graph_updates: (0, 0.0),
            prefill_graphs: Vec::new(),
            prefill_sizes: Vec::new(),
            prefill_graph_off: None,
            prefill_graph_builds: (0, 0.0),
            logits: vec![0.0; model.config.n_vocab as usize],
            allocated,
        };
        s.decode_plan = s.plan(&model.decode, 1)?;
        s.position_dependent = (0..s.decode_plan.len()).filter(|&i| depends_on_position(&s.decode_plan[i])).collect();
        if !s.decode_plan.iter().any(|p| matches!(p.launch, Launch::Argmax(launch::Argmax { out: Slot::Ids, .. }))) {
            return Err(ExecError::Unsupported("the decode plan ends in no argmax into the ids".into()));
        }
        if s.replay == Replay::Plain && dev.target().is_some() {
            s.graph_off = Some("ROCMFORGE_GRAPHS=0".into());
        }
        Ok(s)
    }

    /// How decode steps are replayed from now on (a graph already built is dropped for `Plain`).
    pub fn set_replay(&mut self, replay: Replay) {
        self.replay = replay;
        self.graph_off = None;
        self.prefill_graph_off = None;
        if replay == Replay::Plain {
            self.graph = None;
            self.prefill_graphs.clear();
        }
    }

    /// How decode steps are replayed; `Graph` on a device without graphs (the CPU device) runs the
    /// graph's nodes one by one, with the same per-step updates.
    pub fn replay_mode(&self) -> Replay {
        self.replay
    }

    /// Whether the decode graph is built, and if so whether the device runs it as one graph
    /// (`Some(false)`: node by node, on a device without graphs).
    pub fn graph_built(&self) -> Option<bool> {
        self.graph.as_ref().map(|g| g.is_native())
    }

    /// One line on the decode replay, for `bench`: whether a graph runs, its size and the nodes
    /// updated each step, or why it does not.
    pub fn replay_summary(&self) -> String {
        match (&self.graph, &self.graph_off) {
            (Some(g), _) => {
                let (steps, seconds) = self.graph_updates;
                format!(
                    "graph ({} nodes, {} updated a step in {:.1} µs on the host; {})",
                    g.len(),
                    self.position_dependent.len() + 1,
                    1e6 * seconds / steps.max(1) as f64,
                    match (g.is_native(), g.is_programmatic()) {
                        (true, true) =>
                            format!("a {} graph, kernels chained by programmatic launch", self.g.device.backend()),
                        (true, false) => format!("a {} graph", self.g.device.backend()),
                        (false, _) => "node by node".into(),
                    }
                )
            }
            (None, Some(why)) => format!("plain, launch by launch ({why})"),
            (None, None) if self.replay == Replay::Graph => "graph (not built yet: no decode step ran)".into(),
            (None, None) => "plain, launch by launch".into(),
        }
    }

    pub fn pos(&self) -> usize {
        self.pos
    }

    /// Tokens a prefill pass takes (longer prompts run in passes of this many): the batch asked
    /// for, or less where its activations would pass the memory budget.
    pub fn max_batch(&self) -> usize {
        self.max_batch
    }

    pub fn precision(&self) -> GpuPrecision {
        self.precision
    }

    pub fn reset(&mut self) {
        self.pos = 0;
    }

    /// The latest position a pass of `n` tokens may start at: the bound of the launches that read
    /// their positions from the device (the KV append, rope with it, decode attention), so one
    /// planned launch serves every position and a decode graph is never updated for it.
    fn last_start(&self, n: usize) -> usize {
        self.capacity.saturating_sub(n)
    }

    /// Every launch of a pass of `n` tokens through `graph`, described over slots.
    fn plan(&self, graph: &Graph, n: usize) -> Result<Vec<Planned<'g>>, ExecError> {
        let g: &'g GpuModel<'m> = self.g;
        let cfg = &g.model.config;
        let mut out = Vec::with_capacity(graph.nodes.len());
        let kernel_for = |spec: &KernelSpec| {
            g.kernels.get(spec).ok_or_else(|| ExecError::Unsupported(format!("no kernel loaded for {spec}")))
        };
        // The int8 decode: which activation rows the q8_1 buffer holds now.
        let int8 = n == 1 && self.precision == GpuPrecision::Fast;
        let f16_prefill = n > 1 && g.prefill.f16(self.precision);
        let int8_prefill = n > 1 && self.precision == GpuPrecision::Fast && !f16_prefill;
        let mut q8_of: Option<(Buf, usize)> = None;
        // The f16 prefill: which activation buffer the f16 input holds now.
        let mut f16_of: Option<Buf> = None;
        let mut fused_until = 0;
        for (ni, node) in graph.nodes.iter().enumerate() {
            if ni < fused_until {
                continue;
            }
            // The f16 prefill keeps its float norms and GLU, and takes rope and the KV append in
            // one launch (the same rotation, as rope.hip computes it without YaRN).
            let fused = match (int8 || int8_prefill, f16_prefill) {
                (true, _) => fuse::at(graph, ni),
                (false, true) => fuse::at(graph, ni).filter(|f| matches!(f.kind, fuse::FusedKind::RopeKv { .. })),
                (false, false) => None,
            };
            if let Some(f) = fused.filter(|_| self.fuse) {
                fused_until = ni + f.len;
                self.plan_fused(graph, &f, n, &mut q8_of, &mut out)?;
                continue;
            }
            let kernel = kernel_for(&node.spec.with_kv(g.kv))?;
            let weight = |i: usize| Slot::Weight(g.weight_index[&node.weights[i]]);
            let linear_weight = || g.linear_weight(node);
            if let (true, Step::Linear { x, out: y, n_out, .. }, Some((quantize, mmvq))) =
                (int8, &node.step, node.spec.int8_decode())
            {
                let (KernelSpec::MatVec { wtype, k }, KernelSpec::MatVecQ8 { threads_per_row, rows_per_thread, .. }) =
                    (node.spec, mmvq)
                else {
                    return Err(mismatch(node));
                };
                // A decode pass has one token: its row of x starts at 0, logits included.
                if q8_of != Some((*x, 0)) {
                    let q = launch::QuantizeQ8_1 { x: act(*x), out: Slot::Q8, ds: Slot::Q8Ds, n: k as usize };
                    out.push(Planned::new(kernel_for(&quantize)?, q.into(), ni));
                    q8_of = Some((*x, 0));
                }
                let layout = crate::kernels::MmvqLayout { threads_per_row, rows_per_thread };
                let m = launch::MatVecQ8 {
                    w: linear_weight()?,
                    a: Slot::Q8,
                    y: act(*y),
                    wtype,
                    k,
                    rows: *n_out as usize,
                    layout,
                };
                out.push(Planned::new(kernel_for(&mmvq)?, m.into(), ni));
                if q8_of.is_some_and(|(b, _)| b == *y) {
                    q8_of = None;
                }
                continue;
            }
            // The f16 prefill: the pass's rows of x rounded to f16 once, the weights dequantized to
            // f16, then the f16 product.
            if let (true, Step::Linear { x, out: y, n_out, last_only: false, .. }, Some([dequant, convert, _])) =
                (f16_prefill, &node.step, node.spec.f16_prefill())
            {
                let KernelSpec::MatMul { wtype, k } = node.spec else {
                    return Err(mismatch(node));
                };
                let rows = *n_out as usize;
                if f16_of != Some(*x) {
                    let c = launch::ConvertF16 { x: act(*x), out: Slot::F16X, inv_scale: Slot::F16Scale, k, rows: n };
                    out.push(Planned::new(kernel_for(&convert)?, c.into(), ni));
                    f16_of = Some(*x);
                }
                let tile = forced_f16_tile()?
                    .unwrap_or_else(|| F16Tile::for_product(rows, n, self.g.device.multiprocessors()));
                let d = launch::DequantF16 { w: linear_weight()?, out: Slot::F16W, wtype, k, rows };
                out.push(Planned::new(kernel_for(&dequant)?, d.into(), ni));
                let gemm = KernelSpec::GemmF16 { k, tile };
                let m = launch::GemmF16 {
                    w: Slot::F16W,
                    x: Slot::F16X,
                    x_scale: Slot::F16Scale,
                    y: act(*y),
                    k,
                    rows,
                    tokens: n,
                    tile,
                };
                out.push(Planned::new(kernel_for(&gemm)?, m.into(), ni));
                if f16_of == Some(*y) {
                    f16_of = None;
                }
                continue;
            }
            if f16_of.is_some_and(|b| node.step.written() == Some(b)) {
                f16_of = None;
            }
            // The int8 prefill: the pass's rows of x quantized once, then the tiled int8 product.
            if let (true, Step::Linear { x, out: y, n_out, last_only: false, .. }, Some((quantize, _))) =
                (int8_prefill, &node.step, node.spec.int8_prefill())
            {
                let KernelSpec::MatMul { wtype, k } = node.spec else {
                    return Err(mismatch(node));
                };
                if q8_of != Some((*x, 0)) {
                    let q = launch::QuantizeQ8_1 { x: act(*x), out: Slot::Q8, ds: Slot::Q8Ds, n: n * k as usize };
                    out.push(Planned::new(kernel_for(&quantize)?, q.into(), ni));
                    q8_of = Some((*x, 0));
                }
                // The launch names its kernel: the stream-K variant where it has workers.
                let m: Launch<Slot> = launch::MatMulQ8 {
                    w: linear_weight()?,
                    a: Slot::Q8,
                    ds: Slot::Q8Ds,
                    y: act(*y),
                    part: Slot::AttnPart,
                    counters: Slot::AttnCounters,
                    wtype,
                    k,
                    rows: *n_out as usize,
                    tokens: n,
                    workers: launch::MatMulQ8::<Slot>::workers_for(k, *n_out as usize, n, self.mmq_workers),
                }
                .into();
                out.push(Planned::new(kernel_for(&m.spec())?, m, ni));
                if q8_of.is_some_and(|(b, _)| b == *y) {
                    q8_of = None;
                }
                continue;
            }
            if q8_of.is_some_and(|(b, _)| node.step.written() == Some(b)) {
                q8_of = None;
            }
            // Flash attention where it applies (f16 cache, head_dim up to 256).
            if let (Step::Attention { layer, scale, softcap, window }, Some(flash)) =
                (&node.step, node.spec.with_kv(g.kv).flash_prefill())
            {
                let KernelSpec::FlashAttn { head_dim, gqa, .. } = flash else {
                    return Err(mismatch(node));
                };
                let f = launch::FlashAttn {
                    q: act(Buf::Q),
                    k_cache: Slot::KCache(*layer as usize),
                    v_cache: Slot::VCache(*layer as usize),
                    out: act(Buf::AttnOut),
                    head_dim,
                    gqa,
                    n_head: cfg.n_head as usize,
                    n_q: n,
                    pos0: 0, // set at each replay
                    scale: *scale,
                    softcap: *softcap,
                    window: *window,
                };
                out.push(Planned::new(kernel_for(&flash)?, f.into(), ni));
                continue;
            }
            let launch: Launch<Slot> = match (node.step.clone(), node.spec.with_kv(g.kv)) {
                (Step::Embed { out, scale }, KernelSpec::Embedding { wtype, n_embd }) => launch::Embedding {
                    table: weight(0),
                    ids: Slot::Ids,
                    out: act(out),
                    wtype,
                    n_embd,
                    n_rows: cfg.n_vocab as usize,
                    n_tokens: n,
                    scale,
                }
                .into(),
                (Step::Norm { x, out, width, eps }, KernelSpec::RmsNorm { n: row, add_one }) => launch::RmsNorm {
                    x: act(x),
                    w: weight(0),
                    y: act(out),
                    n: row,
                    add_one,
                    rows: n * graph.buffers.width(x) / width as usize,
                    eps,
                }
                .into(),
                (Step::Linear { x, out, n_out, last_only, .. }, KernelSpec::MatVec { wtype, k }) => {
                    // Logits: the last token's row alone; otherwise a decode pass of one token.
                    let from = if last_only { (n - 1) * k as usize } else { 0 };
                    if !last_only && n != 1 {
                        return Err(mismatch(node));
                    }
                    let (x, y) = (Slot::Act { buf: x, from }, act(out));
                    launch::MatVec { w: linear_weight()?, x, y, wtype, k, rows: n_out as usize }.into()
                }
                (Step::Linear { x, out, n_out, last_only: false, .. }, KernelSpec::MatMul { wtype, k }) => {
                    launch::MatMul {
                        w: linear_weight()?,
                        x: act(x),
                        y: act(out),
                        wtype,
                        k,
                        rows: n_out as usize,
                        tokens: n,
                    }
                    .into()
                }
                (Step::BiasAdd { x, width }, KernelSpec::Elementwise { .. }) => {
                    launch::AddBias { x: act(x), bias: weight(0), n: n * width as usize, cols: width as usize }.into()
                }
                (
                    Step::Rope { x, heads, base, freq_scale, freq_factors, ext, .. },
                    KernelSpec::Rope { head_dim, rope_dims, kind },
                ) => launch::Rope {
                    x: act(x),
                    positions: Slot::Positions,
                    freq_factors: if freq_factors {
                        weight(crate::graph::rope_factors_weight(&node.step, self.capacity))
                    } else {
                        Slot::Weight(g.unit_freq_factors)
                    },
                    head_dim,
                    rope_dims,
                    kind,
                    n_tokens: n,
                    n_heads: heads as usize,
                    base,
                    freq_scale,
                    ext,
                }
                .into(),
                (Step::KvAppend { layer }, KernelSpec::KvAppend { kv }) => launch::KvAppend {
                    k: act(Buf::K),
                    v: act(Buf::V),
                    k_cache: Slot::KCache(layer as usize),
                    v_cache: Slot::VCache(layer as usize),
                    positions: Slot::Positions,
                    row: graph.buffers.kv_width,
                    n_tokens: n,
                    max_pos0: self.last_start(n),
                    kv,
                }
                .into(),
                (
                    Step::Attention { layer, scale, softcap, window },
                    KernelSpec::AttnDecode { head_dim, gqa, kv, .. },
                ) => {
                    if n != 1 {
                        return Err(mismatch(node));
                    }
                    launch::AttnDecode {
                        q: act(Buf::Q),
                        k_cache: Slot::KCache(layer as usize),
                        v_cache: Slot::VCache(layer as usize),
                        out: act(Buf::AttnOut),
                        part: Slot::AttnPart,
                        counters: Slot::AttnCounters,
                        positions: Slot::Positions,
                        head_dim,
                        gqa,
                        n_head: cfg.n_head as usize,
                        max_pos: self.last_start(1),
                        scale,
                        softcap,
                        window,
                        kv,
                    }
                    .into()
                }
                (
                    Step::Attention { layer, scale, softcap, window },
                    KernelSpec::Attention { head_dim, gqa, kv, .. },
                ) => {
                    launch::Attention {
                        q: act(Buf::Q),
                        k_cache: Slot::KCache(layer as usize),
                        v_cache: Slot::VCache(layer as usize),
                        out: act(Buf::AttnOut),
                        head_dim,
                        gqa,
                        n_head: cfg.n_head as usize,
                        n_q: n,
                        pos0: 0, // set at each replay
                        scale,
                        softcap,
                        window,
                        kv,
                    }
                    .into()
                }
                (Step::Add { a, b, out }, KernelSpec::Elementwise { .. }) => {
                    launch::Add { a: act(a), b: act(b), out: act(out), n: n * graph.buffers.width(a) }.into()
                }
                (Step::Glu { gate, up, out, kind }, KernelSpec::Glu { .. }) => {
                    launch::Glu { gate: act(gate), up: act(up), out: act(out), kind, n: n * graph.buffers.width(gate) }
                        .into()
                }
                (Step::Softcap { x, cap }, KernelSpec::Elementwise { .. }) => {
                    launch::Softcap { x: act(x), n: graph.buffers.len(x, n), cap }.into()
                }
                (Step::Argmax, KernelSpec::Argmax) => {
                    // In place: the next decode step reads its token id from there.
                    launch::Argmax { x: act(Buf::Logits), out: Slot::Ids, n: cfg.n_vocab as usize }.into()
                }
                _ => return Err(mismatch(node)),
            };
            out.push(Planned::new(kernel, launch, ni));
        }
        Ok(out)
    }

    /// The launches of fused op `f` of an int8 plan of `n` tokens (a decode step, or a prefill
    /// pass), after the q8_1 quantize of its input where a fused matvec needs one; `q8_of` tracks
    /// which buffer the q8_1 blocks hold, as `plan` does.
    fn plan_fused(
        &self,
        graph: &Graph,
        f: &Fused,
        n_tokens: usize,
        q8_of: &mut Option<(Buf, usize)>,
        out: &mut Vec<Planned<'g>>,
    ) -> Result<(), ExecError> {
        let g: &'g GpuModel<'m> = self.g;
        let kernel_for = |spec: &KernelSpec| {
            g.kernels.get(spec).ok_or_else(|| ExecError::Unsupported(format!("no kernel loaded for {spec}")))
        };
        let weight = |node: usize, i: usize| Slot::Weight(g.weight_index[&graph.nodes[node].weights[i]]);
        let spec = f.spec.with_kv(g.kv);
        let bad = || mismatch(&graph.nodes[f.first]);
        let (launch, name): (Launch<Slot>, String) = match (&f.kind, spec) {
            (&FusedKind::NormQ8 { x, d, out: y, eps, norm, .. }, KernelSpec::RmsNormQ8_1 { n, add_one, residual }) => {
                *q8_of = Some((y, 0));
                let l = launch::RmsNormQ8_1 {
                    x: act(x),
                    d: act(d.unwrap_or(x)),
                    w: weight(norm, 0),
                    y: act(y),
                    q: Slot::Q8,
                    ds: Slot::Q8Ds,
                    n,
                    add_one,
                    residual,
                    rows: n_tokens,
                    eps,
                };
                (l.into(), fused_name(graph, &(f.first..=norm).collect::<Vec<_>>(), true))
            }
            (FusedKind::MatVecs { x, k, linears }, KernelSpec::MatVecQ8Multi { wtypes, bias, .. }) => {
                let x = *x;
                if *q8_of != Some((x, 0)) {
                    let q = launch::QuantizeQ8_1 { x: act(x), out: Slot::Q8, ds: Slot::Q8Ds, n: *k as usize };
                    out.push(Planned::new(kernel_for(&KernelSpec::QuantizeQ8_1)?, q.into(), f.first));
                    *q8_of = Some((x, 0));
                }
                // Unused segments take segment 0's handles (0 rows: never read).
                let mut seg = [(weight(linears[0].0, 0), act(x), act(x)); 3];
                let mut rows = [0usize; 3];
                for (i, &(l, b)) in linears.iter().enumerate() {
                    let Step::Linear { out: y, n_out, .. } = graph.nodes[l].step else { return Err(bad()) };
                    let bias_slot = b.map_or(act(y), |b| weight(b, 0));
                    seg[i] = (g.linear_weight(&graph.nodes[l])?, act(y), bias_slot);
                    rows[i] = n_out as usize;
                    if q8_of.is_some_and(|(q, _)| q == y) {
                        *q8_of = None;
                    }
                }
                for i in linears.len()..3 {
                    seg[i] = seg[0];
                }
                let l = launch::MatVecQ8Multi {
                    w0: seg[0].0,
                    w1: seg[1].0,
                    w2: seg[2].0,
                    a: Slot::Q8,
                    y0: seg[0].1,
                    y1: seg[1].1,
                    y2: seg[2].1,
                    b0: seg[0].2,
                    b1: seg[1].2,
                    b2: seg[2].2,
                    wtypes,
                    k: *k,
                    rows,
                    bias,
                };
                let nodes: Vec<usize> = linears.iter().map(|(l, _)| *l).collect();
                (l.into(), fused_name(graph, &nodes, false))
            }
            (&FusedKind::RopeKv { rope_q, rope_k, append }, KernelSpec::RopeKv { head_dim, rope_dims, kind, kv }) => {
                let (
                    Step::Rope { heads: n_head, base, freq_scale, freq_factors, .. },
                    Step::Rope { heads: n_head_kv, .. },
                    Step::KvAppend { layer },
                ) = (&graph.nodes[rope_q].step, &graph.nodes[rope_k].step, &graph.nodes[append].step)
                else {
                    return Err(bad());
                };
                if q8_of.is_some_and(|(q, _)| q == Buf::Q || q == Buf::K) {
                    *q8_of = None;
                }
                let l = launch::RopeKv {
                    q: act(Buf::Q),
                    k: act(Buf::K),
                    v: act(Buf::V),
                    k_cache: Slot::KCache(*layer as usize),
                    v_cache: Slot::VCache(*layer as usize),
                    positions: Slot::Positions,
                    freq_factors: if *freq_factors { weight(rope_q, 0) } else { Slot::Weight(g.unit_freq_factors) },
                    head_dim,
                    rope_dims,
                    kind,
                    n_tokens,
                    n_head: *n_head as usize,
                    n_head_kv: *n_head_kv as usize,
                    base: *base,
                    freq_scale: *freq_scale,
                    max_pos0: self.last_start(n_tokens),
                    kv,
                };
                (l.into(), fused_name(graph, &[rope_q, rope_k, append], false))
            }
            (&FusedKind::GluQ8 { glu }, KernelSpec::GluQ8_1 { kind }) => {
                let Step::Glu { gate, up, out: y, .. } = graph.nodes[glu].step else { return Err(bad()) };
                *q8_of = Some((y, 0));
                // Every token's row: whole q8_1 blocks (the width is a multiple of 32), back to back.
                let n = n_tokens * graph.buffers.width(gate);
                let l =
                    launch::GluQ8_1 { gate: act(gate), up: act(up), out: act(y), q: Slot::Q8, ds: Slot::Q8Ds, kind, n };
                (l.into(), fused_name(graph, &[glu], true))
            }
            _ => return Err(bad()),
        };
        out.push(Planned { kernel: kernel_for(&spec)?, launch, node: f.first, name: Some(name) });
        Ok(())
    }

    /// The view a slot names.
    fn view(&self, slot: &Slot) -> Result<BufView<'_>, DeviceError> {
        Ok(match *slot {
            Slot::Act { buf, from } => {
                let b = &self.bufs[buf as usize];
                b.slice(from, b.len().saturating_sub(from))?
            }
            Slot::KCache(l) => self.k_cache[l].view(),
            Slot::VCache(l) => self.v_cache[l].view(),
            Slot::AttnPart => self.attn_part.view(),
            Slot::AttnCounters => self.attn_counters.view(),
            Slot::Weight(i) => self.g.weights[i].view(),
            Slot::WeightFrom { index, from } => match &self.g.weights[index] {
                Weight::Blocks(b) => b.slice(from, b.len().saturating_sub(from))?,
                Weight::F32(b) => b.slice(from / 4, b.len().saturating_sub(from / 4))?,
            },
            Slot::Ids => self.ids.view(),
            Slot::Positions => self.positions.view(),
            Slot::Q8 => self.q8.view(),
            Slot::Q8Ds => self.q8_ds.view(),
            Slot::F16W => self.f16_w.view(),
            Slot::F16X => self.f16_x.view(),
            Slot::F16Scale => self.f16_scale.view(),
        })
    }

    fn replay(&self, plan: &[Planned<'g>], pos0: usize) -> Result<(), ExecError> {
        for p in plan {
            let mut launch = p.launch.try_map(|slot| self.view(slot))?;
            launch.set_pos0(pos0);
            p.kernel.launch(&launch)?;
        }
        Ok(())
    }

    /// Runs `tokens` through the model on the device (prefilling in chunks of `max_batch`), leaving
    /// the last position's logits on the device, and their argmax in element 0 of the ids.
    fn run(&mut self, tokens: &[u32]) -> Result<(), ExecError> {
        super::check_pass(&self.g.model.config, self.pos, self.capacity, tokens)?;
        if let [token] = *tokens {
            self.decode_step(token)?;
            self.pos += 1;
            return Ok(());
        }
        self.id_on_device = None;
        for chunk in tokens.chunks(self.max_batch) {
            let n = chunk.len();
            // Ids are below the vocabulary size and positions below the capacity: both fit an i32.
            let ids: Vec<i32> = chunk.iter().map(|&t| t as i32).collect();
            let pos: Vec<i32> = (self.pos..self.pos + n).map(|p| p as i32).collect();
            self.ids.write(0, &ids)?;
            self.positions.write(0, &pos)?;
            if n == 1 {
                self.replay(&self.decode_plan, self.pos)?;
            } else {
                self.prefill_pass(n)?;
            }
            self.pos += n;
        }
        Ok(())
    }

    /// One prefill pass of `n` tokens at `self.pos` (ids and positions written). With graph replay,
    /// a pass size run before (or a full pass, which long prompts repeat) runs as one graph, built
    /// at its first such pass; later passes of that size update only the launches that take the
    /// position as a scalar (prefill attention). A small model's pass is hundreds of short
    /// launches: as a graph it ran 8% faster on the H100, but a build costs 7-8 ms of host time,
    /// so a size seen once (a prompt's remainder) runs plainly.
    fn prefill_pass(&mut self, n: usize) -> Result<(), ExecError> {
        let pos0 = self.pos;
        let seen = self.prefill_sizes.contains(&n);
        if !seen && self.prefill_sizes.len() < PREFILL_SIZES_KEPT {
            self.prefill_sizes.push(n);
        }
        let graphed = self.replay == Replay::Graph && self.prefill_graph_off.is_none() && (seen || n == self.max_batch);
        if !graphed {
            let plan = self.plan(&self.g.model.prefill, n)?;
            return self.replay(&plan, pos0);
        }
        if let Some(i) = self.prefill_graphs.iter().position(|p| p.n == n) {
            // A failed update leaves the graph dropped: the next pass of this size builds it afresh.
            let mut pg = self.prefill_graphs.remove(i);
            for &j in &pg.position_dependent {
                pg.graph.set(j, self.launch_node(&pg.plan[j], pos0)?)?;
            }
            pg.graph.launch()?;
            self.prefill_graphs.push(pg);
            return Ok(());
        }
        let start = Instant::now();
        let plan = self.plan(&self.g.model.prefill, n)?;
        let nodes = plan.iter().map(|p| self.launch_node(p, pos0)).collect::<Result<_, _>>()?;
        match self.g.device.graph(nodes) {
            Ok(graph) => {
                self.prefill_graph_builds.0 += 1;
                self.prefill_graph_builds.1 += start.elapsed().as_secs_f64();
                graph.launch()?;
                let position_dependent = (0..plan.len()).filter(|&i| depends_on_position(&plan[i])).collect();
                if self.prefill_graphs.len() == PREFILL_GRAPHS {
                    self.prefill_graphs.remove(0);
                }
                self.prefill_graphs.push(PrefillGraph { n, plan, position_dependent, graph });
                Ok(())
            }
            Err(e) => {
                self.prefill_graph_off = Some(format!("the device built no graph: {e}"));
                self.replay(&plan, pos0)
            }
        }
    }

    /// A planned launch as a graph node, at the pass's first position `pos0`.
    fn launch_node(&self, p: &Planned<'g>, pos0: usize) -> Result<GraphNode<'_, 'g>, ExecError> {
        let mut launch = p.launch.try_map(|slot| self.view(slot))?;
        launch.set_pos0(pos0);
        Ok(GraphNode::Launch(p.kernel, launch))
    }

    /// How many prefill graphs the session holds (the sizes of passes run as graphs).
    pub fn prefill_graphs(&self) -> usize {
        self.prefill_graphs.len()
    }

    /// One line on prefill replay, for `bench`: the pass sizes that run as graphs, or why none do.
    pub fn prefill_replay_summary(&self) -> String {
        match (&self.prefill_graph_off, self.replay) {
            (Some(why), _) => format!("plain, launch by launch ({why})"),
            (None, Replay::Plain) => "plain, launch by launch".into(),
            (None, Replay::Graph) => {
                let sizes: Vec<String> = self.prefill_graphs.iter().map(|p| p.n.to_string()).collect();
                let (built, seconds) = self.prefill_graph_builds;
                format!(
                    "graphs for passes of {} tokens ({built} built in {:.1} ms on the host; a size's first pass runs \
                     plainly unless it is a full pass of {})",
                    if sizes.is_empty() { "no size yet".into() } else { sizes.join(", ") },
                    1e3 * seconds,
                    self.max_batch
                )
            }
        }
    }

    /// Times each launch of one decode step of `token` at the current position: every planned
    /// launch runs once, then `reps` times back to back between two synchronizations (host
    /// clock), so each kernel is timed alone; launch latency hides behind kernels longer than it
    /// (a kernel shorter than its launch reads as the launch rate). Ops that work in place ran
    /// `reps + 1` times: the session's state is meaningless afterwards, and it is reset.
    pub fn profile_decode(&mut self, token: u32, reps: usize) -> Result<Vec<OpTime>, ExecError> {
        super::check_pass(&self.g.model.config, self.pos, self.capacity, &[token])?;
        let plan = std::mem::take(&mut self.decode_plan);
        let timed = self.profile_plan(&plan, &self.g.model.decode, &[token], reps);
        self.decode_plan = plan;
        timed
    }

    /// Times each launch of one prefill pass of `tokens` (at most the session's batch) at the
    /// current position, as [`GpuSession::profile_decode`] times a decode step; the session is
    /// reset afterwards.
    pub fn profile_prefill(&mut self, tokens: &[u32], reps: usize) -> Result<Vec<OpTime>, ExecError> {
        super::check_pass(&self.g.model.config, self.pos, self.capacity, tokens)?;
        if tokens.len() < 2 || tokens.len() > self.max_batch {
            return Err(ExecError::Unsupported(format!(
                "a profiled prefill pass takes 2 to {} tokens, not {}",
                self.max_batch,
                tokens.len()
            )));
        }
        let plan = self.plan(&self.g.model.prefill, tokens.len())?;
        self.profile_plan(&plan, &self.g.model.prefill, tokens, reps)
    }

    fn profile_plan(
        &mut self,
        plan: &[Planned<'g>],
        graph: &Graph,
        tokens: &[u32],
        reps: usize,
    ) -> Result<Vec<OpTime>, ExecError> {
        let ids: Vec<i32> = tokens.iter().map(|&t| t as i32).collect();
        let pos: Vec<i32> = (self.pos..self.pos + tokens.len()).map(|p| p as i32).collect();
        self.ids.write(0, &ids)?;
        self.positions.write(0, &pos)?;
        let dev = &self.g.device;
        let mut out = Vec::with_capacity(plan.len());
        for p in plan {
            let mut launch = p.launch.try_map(|slot| self.view(slot))?;
            launch.set_pos0(self.pos);
            p.kernel.launch(&launch)?;
            dev.synchronize()?;
            let start = Instant::now();
            for _ in 0..reps.max(1) {
                p.kernel.launch(&launch)?;
            }
            dev.synchronize()?;
            out.push(OpTime {
                node: match (&p.name, &p.launch) {
                    (Some(fused), _) => fused.clone(),
                    // The int8 matvec's input quantizer, named after the node it serves.
                    (None, Launch::QuantizeQ8_1(_)) => format!("{}.quantize", graph.nodes[p.node].name),
                    (None, _) => graph.nodes[p.node].name.clone(),
                },
                kernel: p.kernel.entry().to_string(),
                seconds: start.elapsed().as_secs_f64() / reps.max(1) as f64,
                bytes: if tokens.len() == 1 { bytes_moved(&p.launch, self.pos) } else { None },
            });
        }
        self.pos = 0;
        self.id_on_device = None;
        Ok(out)
    }

    /// One decode step of `token` at `self.pos`. The id is copied in only when the device does not
    /// hold it already (greedy decode feeds the argmax back in place); the position is written by
    /// a fill on the device.
    fn decode_step(&mut self, token: u32) -> Result<(), ExecError> {
        if self.id_on_device != Some(token) {
            self.ids.write(0, &[token as i32])?;
        }
        // The step's argmax overwrites it.
        self.id_on_device = None;
        if self.replay == Replay::Graph && self.run_graph()? {
            return Ok(());
        }
        self.positions.fill(0, 1, self.pos as i32)?;
        self.replay(&self.decode_plan, self.pos)
    }

    /// Node `i` of the decode graph at position `pos`: 0 writes the position, 1 + j is planned
    /// launch j.
    fn graph_node(&self, i: usize, pos: usize) -> Result<GraphNode<'_, 'g>, ExecError> {
        let Some(j) = i.checked_sub(1) else {
            return Ok(GraphNode::Fill(self.positions.slice(0, 1)?, pos as i32));
        };
        self.launch_node(&self.decode_plan[j], pos)
    }

    /// Runs the decode step as a graph: built at the first step; later, only the position's fill
    /// and the launches that depend on the position are updated (`replay` changes nothing else
    /// between steps, and the buffers never move). `false`: the device refused to build the graph,
    /// and the session replays plainly from now on (saying why in `replay_summary`).
    fn run_graph(&mut self) -> Result<bool, ExecError> {
        let pos = self.pos;
        let graph = match self.graph.take() {
            None => {
                let nodes = (0..=self.decode_plan.len()).map(|i| self.graph_node(i, pos)).collect::<Result<_, _>>()?;
                match self.g.device.graph(nodes) {
                    Ok(graph) => graph,
                    Err(e) => {
                        self.graph_off = Some(format!("the device built no graph: {e}"));
                        self.replay = Replay::Plain;
                        return Ok(false);
                    }
                }
            }
            Some(mut graph) => {
                let start = Instant::now();
                // A failed update leaves the graph dropped: the next step builds it afresh.
                graph.set(0, self.graph_node(0, pos)?)?;
                for &j in &self.position_dependent {
                    graph.set(j + 1, self.graph_node(j + 1, pos)?)?;
                }
                self.graph_updates.0 += 1;
                self.graph_updates.1 += start.elapsed().as_secs_f64();
                graph
            }
        };
        graph.launch()?;
        self.graph = Some(graph);
        Ok(true)
    }

    /// Runs `tokens` and returns the last position's logits.
    pub fn forward(&mut self, tokens: &[u32]) -> Result<&[f32], ExecError> {
        self.run(tokens)?;
        self.bufs[Buf::Logits as usize].read(0, &mut self.logits)?;
        Ok(&self.logits)
    }

    /// Runs `tokens` and returns the greedy next token, moving 4 bytes back instead of the logits.
    pub fn forward_argmax(&mut self, tokens: &[u32]) -> Result<u32, ExecError> {
        self.run(tokens)?;
        let mut id = [0i32];
        self.ids.read(0, &mut id)?;
        // The argmax is an index into the logits: never negative.
        let id = id[0] as u32;
        self.id_on_device = Some(id);
        Ok(id)
    }
}

/// How a GPU session replays its decode step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Replay {
    /// The launches one by one from the host.
    Plain,
    /// One graph, its position-dependent nodes updated each step.
    Graph,
}

impl Replay {
    /// `Graph` on a GPU unless `ROCMFORGE_GRAPHS=0`; `Plain` on the CPU device.
    pub fn default_for(device: &Device) -> Replay {
        let off = std::env::var("ROCMFORGE_GRAPHS").is_ok_and(|v| v.trim() == "0");
        if device.target().is_none() || off {
            Replay::Plain
        } else {
            Replay::Graph
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Replay::Plain => "plain",
            Replay::Graph => "graph",
        }
    }
}

/// Whether a planned launch changes with the decode position (the ops that take `pos0`: whatever
/// `set_pos0` touches).
/// The `gemm_f16` tile `ROCMFORGE_F16_TILE=128|64|32` forces on every product (tests run whole
/// models through each tile, Hopper's wgmma one included); `None` unset, an error for another value.
fn forced_f16_tile() -> Result<Option<F16Tile>, ExecError> {
    let Ok(v) = std::env::var("ROCMFORGE_F16_TILE") else { return Ok(None) };
    let tile = v.trim().parse::<u32>().ok().and_then(|rows| F16Tile::ALL.into_iter().find(|t| t.rows() == rows));
    tile.map(Some)
        .ok_or_else(|| ExecError::Unsupported(format!("ROCMFORGE_F16_TILE={v}: the tiles are 128, 64 and 32")))
}

fn depends_on_position(p: &Planned<'_>) -> bool {
    let (mut a, mut b) = (p.launch.clone(), p.launch.clone());
    a.set_pos0(0);
    b.set_pos0(1);
    a != b
}

impl super::Forward for GpuSession<'_, '_> {
    fn forward(&mut self, tokens: &[u32]) -> Result<&[f32], ExecError> {
        GpuSession::forward(self, tokens)
    }
    fn forward_argmax(&mut self, tokens: &[u32]) -> Result<u32, ExecError> {
        GpuSession::forward_argmax(self, tokens)
    }
    fn pos(&self) -> usize {
        self.pos
    }
    fn reset(&mut self) {
        GpuSession::reset(self)
    }
}

/// One launch of a profiled decode step.
#[derive(Clone, Debug)]
pub struct OpTime {
    /// The graph node (`blk.3.attn_q`).
    pub node: String,
    /// The kernel's entry point.
    pub kernel: String,
    /// Seconds per launch.
    pub seconds: f64,
    /// Bytes the launch must move at least, for the ops that stream memory (matrix-vector
    /// products: weights, input and output; the q8_1 quantizer: its input and output; decode
    /// attention: the cached K and V it reads).
    pub bytes: Option<u64>,
}

fn bytes_moved(launch: &Launch<Slot>, pos0: usize) -> Option<u64> {
    match launch {
        Launch::MatVec(l) => {
            let w = l.wtype.row_bytes(l.k as u64)? * l.rows as u64;
            Some(w + 4 * (l.k as u64 + l.rows as u64))
        }
        // q8_1 blocks: 32 int8 values and two f16, 36 bytes.
        Launch::MatVecQ8(l) => {
            let w = l.wtype.row_bytes(l.k as u64)? * l.rows as u64;
            Some(w + l.k as u64 / 32 * 36 + 4 * l.rows as u64)
        }
        Launch::QuantizeQ8_1(l) => Some(4 * l.n as u64 + l.n as u64 / 32 * 36),
        Launch::MatVecQ8Multi(l) => {
            let mut total = l.k as u64 / 32 * 36;
            for (ty, rows) in l.wtypes.iter().zip(l.rows) {
                if let Some(ty) = ty {
                    total += ty.row_bytes(l.k as u64)? * rows as u64 + 4 * rows as u64 * (1 + u64::from(l.bias));
                }
            }
            Some(total)
        }
        // x (read, and written back with the residual), d, w, y, and the q8_1 blocks.
        Launch::RmsNormQ8_1(l) => {
            let n = l.n as u64 * l.rows as u64;
            Some(4 * n * (3 + 2 * u64::from(l.residual)) + n / 32 * 36)
        }
        Launch::GluQ8_1(l) => Some(12 * l.n as u64 + l.n as u64 / 32 * 36),
        Launch::AttnDecode(l) => {
            let positions = l.len_at(pos0) as u64;
            let n_kv = (l.n_head / l.gqa as usize) as u64;
            Some(2 * positions * n_kv * l.head_dim as u64 * l.kv.size() as u64)
        }
        _ => None,
    }
}

/// Device-to-device copy bandwidth in bytes per second (bytes read plus bytes written), over
/// `bytes`-sized buffers, median of 5: the ceiling decode is held to.
pub fn copy_bandwidth(device: &Device, bytes: usize) -> Result<f64, ExecError> {
    let (a, mut b) = (device.alloc::<u8>(bytes)?, device.alloc::<u8>(bytes)?);
    b.copy_from(&a)?; // warm-up
    device.synchronize()?;
    let mut times = Vec::new();
    for _ in 0..5 {
        let start = Instant::now();
        b.copy_from(&a)?;
        device.synchronize()?;
        times.push(start.elapsed().as_secs_f64());
    }
    times.sort_by(|x, y| x.total_cmp(y));
    Ok(2.0 * bytes as f64 / times[2])
}

/// Bytes of weights a decode step reads: every matrix and vector once, one row of the embedding
/// (unless the output projection reads the whole table anyway).
pub fn decode_weight_bytes(model: &Model) -> u64 {
    let mut seen = std::collections::HashSet::new();
    let mut total = 0u64;
    for node in &model.decode.nodes {
        for name in &node.weights {
            if !seen.insert(name.clone()) {
                continue;
            }
            let Some(t) = model.file.tensor(name) else { continue };
            total += match node.step {
                Step::Embed { .. } => t.ty.row_bytes(t.row_len()).unwrap_or(0),
                _ => t.n_bytes,
            };
        }
    }
    // A tied embedding is read whole by the output projection: count it once, whole.
    let tied = model
        .decode
        .nodes
        .iter()
        .any(|n| matches!(n.step, Step::Linear { last_only: true, .. }) && n.weights[0] == "token_embd.weight");
    if tied {
        if let Some(t) = model.file.tensor("token_embd.weight") {
            total += t.n_bytes - t.ty.row_bytes(t.row_len()).unwrap_or(0);
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::batch_within;

    #[test]
    fn prefill_passes_shrink_by_token_tiles_to_fit_the_activation_budget() {
        let bytes = |n: usize| 1000 + 100 * n as u64;
        assert_eq!(batch_within(512, 1_000_000, bytes), 512, "fits whole");
        assert_eq!(batch_within(512, 1000 + 100 * 320, bytes), 320, "the largest multiple of 64 that fits");
        assert_eq!(batch_within(512, 1000 + 100 * 319, bytes), 256);
        assert_eq!(batch_within(500, 1000 + 100 * 499, bytes), 448, "a request off the tile steps down onto it");
        assert_eq!(batch_within(512, 10, bytes), 64, "never under one tile");
        assert_eq!(batch_within(7, 10, bytes), 7, "a short request stays as asked");
    }
}
