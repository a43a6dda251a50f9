//! The forward pass as a list of named nodes (`blk.3.attn_norm`, as llama.cpp names them). Each
//! node has the weights it reads, the one `KernelSpec` the GPU runs it with, and a `Step` that says
//! which buffers it reads and writes with which runtime values, so the CPU and GPU executors walk
//! the same plan. Buffers are a fixed set reused by every layer (the buffer plan): the residual
//! stream, its normed copy, Q/K/V, the attention output, one projection output and the FFN's three.

mod plan;

use std::collections::BTreeSet;

use crate::dtype::GgmlType;
use crate::gguf::GgufFile;
use crate::kernels::{AttnPhase, ElementwiseOp, F16Tile, GluKind, KernelSpec, KvPrecision, RopeExt, RopeKind};
use crate::model::{Activation, Arch, ModelConfig, RopeStyle, ROPE_FACTORS_LONG, ROPE_FACTORS_SHORT, ROPE_FREQS};

pub use plan::{BufferPlan, BufferSize};

/// The activation buffers; each holds `rows × width` f32 for the tokens of one pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Buf {
    /// The residual stream [T, n_embd].
    Hidden,
    /// A normed copy of the residual stream [T, n_embd].
    Normed,
    /// Queries [T, n_head · head_dim].
    Q,
    /// Keys [T, n_head_kv · head_dim].
    K,
    /// Values [T, n_head_kv · head_dim_v].
    V,
    /// Attention output [T, n_head · head_dim_v].
    AttnOut,
    /// A projection back to the model width [T, n_embd] (attention output, FFN down).
    Proj,
    /// FFN gate [T, n_ff].
    Gate,
    /// FFN up [T, n_ff].
    Up,
    /// FFN activation [T, n_ff].
    Act,
    /// Logits of the last position `[n_vocab]`.
    Logits,
}

/// What a node does, with its buffers and runtime values.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    /// `out[t] = scale · embedding row of token t`.
    Embed { out: Buf, scale: f32 },
    /// RMSNorm of rows of `width` (a head, for Q/K norms), in place when x == out.
    Norm { x: Buf, out: Buf, width: u32, eps: f32 },
    /// out = x · Wᵀ over rows of x; `last_only` takes the last token's row alone (logits).
    /// `rows`: the weight is a fused tensor (phi3's `attn_qkv`, `ffn_up`) of which this
    /// projection reads the `n_out` rows from `rows.first` on.
    Linear { x: Buf, out: Buf, n_out: u32, last_only: bool, rows: Option<RowRange> },
    /// `x[t, i] += bias[i]`.
    BiasAdd { x: Buf, width: u32 },
    /// Rope over `heads` heads of each token's row of x, in place. With `freq_factors`, the node's
    /// weight (`rope_freqs.weight`) divides each pair's frequency (Llama 3.x scaling); with
    /// `long_factors_above`, its weights are LongRoPE's short and long factors, the long ones for
    /// sessions of more positions than that ([`rope_factors_weight`]). `ext`: YaRN's ramp and the
    /// cos/sin scale.
    Rope {
        x: Buf,
        heads: u32,
        base: f32,
        freq_scale: f32,
        freq_factors: bool,
        ext: RopeExt,
        long_factors_above: Option<u32>,
    },
    /// Append this pass's K and V rows to layer `layer`'s cache.
    KvAppend { layer: u32 },
    /// Causal attention of Q over layer `layer`'s cache into AttnOut.
    Attention { layer: u32, scale: f32, softcap: Option<f32>, window: Option<u32> },
    /// out = a + b.
    Add { a: Buf, b: Buf, out: Buf },
    /// out = act(gate) · up.
    Glu { gate: Buf, up: Buf, out: Buf, kind: GluKind },
    /// x = cap · tanh(x / cap).
    Softcap { x: Buf, cap: f32 },
    /// The index of the largest logit (greedy decoding on the device).
    Argmax,
}

/// The rows of a fused weight tensor one projection reads: from `first` on, of `total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RowRange {
    pub first: u32,
    pub total: u32,
}

impl Step {
    /// The buffer the step writes (in place or not); the KV append (the cache) and argmax (the
    /// ids) write none.
    pub fn written(&self) -> Option<Buf> {
        match *self {
            Step::Embed { out, .. } | Step::Norm { out, .. } | Step::Linear { out, .. } => Some(out),
            Step::Add { out, .. } | Step::Glu { out, .. } => Some(out),
            Step::BiasAdd { x, .. } | Step::Rope { x, .. } | Step::Softcap { x, .. } => Some(x),
            Step::Attention { .. } => Some(Buf::AttnOut),
            Step::KvAppend { .. } | Step::Argmax => None,
        }
    }

    /// The bytes of a projection's weight (all `data` of its tensor) that it reads: the whole
    /// tensor, or its row range of a fused one. `data` holds whole rows (its shape was checked).
    pub fn weight_bytes<'a>(&self, data: &'a [u8]) -> &'a [u8] {
        &data[self.weight_byte_range(data.len())]
    }

    /// [`Step::weight_bytes`] as a range of a tensor of `tensor_bytes`.
    pub fn weight_byte_range(&self, tensor_bytes: usize) -> std::ops::Range<usize> {
        match *self {
            Step::Linear { n_out, rows: Some(r), .. } => {
                let row_bytes = tensor_bytes / r.total.max(1) as usize;
                let first = r.first as usize * row_bytes;
                first..first + n_out as usize * row_bytes
            }
            _ => 0..tensor_bytes,
        }
    }
}

/// Which of a rope node's weights divides its frequencies in a session of `capacity` positions:
/// LongRoPE's long factors (the second) beyond the original context, as llama.cpp's
/// `get_rope_factors` chooses by its context size; otherwise the first.
pub fn rope_factors_weight(step: &Step, capacity: usize) -> usize {
    match *step {
        Step::Rope { long_factors_above: Some(orig), .. } if capacity > orig as usize => 1,
        _ => 0,
    }
}

/// One step of the forward pass.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// llama.cpp-style name (`blk.3.attn_q`), so dumps can be diffed against llama-eval-callback.
    pub name: String,
    pub spec: KernelSpec,
    /// GGUF tensors the node reads (the weight, or bias / norm vector).
    pub weights: Vec<String>,
    pub step: Step,
}

/// The nodes of one pass (decode: one token; prefill: many).
#[derive(Clone, Debug, PartialEq)]
pub struct Graph {
    pub phase: AttnPhase,
    pub nodes: Vec<Node>,
    pub buffers: BufferPlan,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum GraphError {
    #[error("the model has no tensor {0:?}, which its architecture needs")]
    MissingTensor(String),
    #[error(
        "the model's tensor {0:?} is read by no step of the forward pass (rocmforge does not implement what it is for)"
    )]
    UnusedTensor(String),
}

/// Looks up a tensor's type by name (a GGUF file, or a table in tests).
pub trait TensorTypes {
    fn tensor_type(&self, name: &str) -> Option<GgmlType>;
}

impl TensorTypes for GgufFile {
    fn tensor_type(&self, name: &str) -> Option<GgmlType> {
        self.tensor(name).map(|t| t.ty)
    }
}

impl<F: Fn(&str) -> Option<GgmlType>> TensorTypes for F {
    fn tensor_type(&self, name: &str) -> Option<GgmlType> {
        self(name)
    }
}

struct Builder<'a> {
    cfg: &'a ModelConfig,
    tensors: &'a dyn TensorTypes,
    phase: AttnPhase,
    nodes: Vec<Node>,
}

impl Builder<'_> {
    fn ty(&self, name: &str) -> Result<GgmlType, GraphError> {
        self.tensors.tensor_type(name).ok_or_else(|| GraphError::MissingTensor(name.to_string()))
    }

    fn push(&mut self, name: impl Into<String>, spec: KernelSpec, weights: &[&str], step: Step) {
        let weights = weights.iter().map(|w| w.to_string()).collect();
        self.nodes.push(Node { name: name.into(), spec, weights, step });
    }

    /// RMSNorm with weight `name.weight` over rows of `width`.
    fn norm(&mut self, name: &str, x: Buf, out: Buf, width: u32) -> Result<(), GraphError> {
        let w = format!("{name}.weight");
        self.ty(&w)?;
        let step = Step::Norm { x, out, width, eps: self.cfg.rms_eps };
        self.push(name, KernelSpec::RmsNorm { n: width, add_one: false }, &[&w], step);
        Ok(())
    }

    /// A projection `name.weight` (rows of `k`) with an optional `name.bias`.
    fn linear(&mut self, name: &str, x: Buf, out: Buf, k: u32, n_out: u32, bias: bool) -> Result<(), GraphError> {
        let w = format!("{name}.weight");
        let wtype = self.ty(&w)?;
        let spec = match self.phase {
            AttnPhase::Decode => KernelSpec::MatVec { wtype, k },
            AttnPhase::Prefill => KernelSpec::MatMul { wtype, k },
        };
        self.push(name, spec, &[&w], Step::Linear { x, out, n_out, last_only: false, rows: None });
        if bias {
            let b = format!("{name}.bias");
            self.ty(&b)?;
            let spec = KernelSpec::Elementwise { op: ElementwiseOp::AddBias };
            self.push(format!("{name}.bias_add"), spec, &[&b], Step::BiasAdd { x: out, width: n_out });
        }
        Ok(())
    }
}

impl Builder<'_> {
    /// Projections reading consecutive row ranges of one fused tensor `weight` (no biases): one
    /// node per (name, out, rows).
    fn fused(&mut self, weight: &str, x: Buf, k: u32, parts: &[(&str, Buf, u32)]) -> Result<(), GraphError> {
        let wtype = self.ty(weight)?;
        let spec = match self.phase {
            AttnPhase::Decode => KernelSpec::MatVec { wtype, k },
            AttnPhase::Prefill => KernelSpec::MatMul { wtype, k },
        };
        let total = parts.iter().map(|p| p.2).sum();
        let mut first = 0;
        for &(name, out, n_out) in parts {
            let rows = Some(RowRange { first, total });
            self.push(name, spec, &[weight], Step::Linear { x, out, n_out, last_only: false, rows });
            first += n_out;
        }
        Ok(())
    }
}

/// Builds the pass for `phase`.
pub fn build(cfg: &ModelConfig, tensors: &dyn TensorTypes, phase: AttnPhase) -> Result<Graph, GraphError> {
    let mut b = Builder { cfg, tensors, phase, nodes: Vec::new() };
    let embd = "token_embd.weight";
    let scale = cfg.embedding_scale.unwrap_or(1.0);
    let spec = KernelSpec::Embedding { wtype: b.ty(embd)?, n_embd: cfg.n_embd };
    b.push("token_embd", spec, &[embd], Step::Embed { out: Buf::Hidden, scale });

    let rope = KernelSpec::Rope {
        head_dim: cfg.head_dim,
        rope_dims: cfg.rope_dims,
        kind: match cfg.rope_style {
            RopeStyle::Normal => RopeKind::Normal,
            RopeStyle::Neox => RopeKind::Neox,
        },
    };
    let freq_scale = cfg.rope_scaling.freq_scale();
    let freq_factors = cfg.rope_freq_factors || cfg.rope_longrope;
    let rope_weights: &[&str] = match (cfg.rope_freq_factors, cfg.rope_longrope) {
        (true, _) => &[ROPE_FREQS],
        (false, true) => &[ROPE_FACTORS_SHORT, ROPE_FACTORS_LONG],
        (false, false) => &[],
    };
    for w in rope_weights {
        b.ty(w)?;
    }
    let long_factors_above = (cfg.rope_longrope && !cfg.rope_freq_factors).then(|| cfg.rope_orig_ctx());
    let ext = cfg.rope_ext();
    let glu = match cfg.activation {
        Activation::Silu => GluKind::SwiGlu,
        Activation::GeluTanh => GluKind::GeGlu,
    };
    let (n_embd, q_width, kv_width) = (cfg.n_embd, cfg.n_head * cfg.head_dim, cfg.n_head_kv * cfg.head_dim);
    let v_width = cfg.n_head_kv * cfg.head_dim_v;
    for il in 0..cfg.n_layer {
        let p = format!("blk.{il}");
        b.norm(&format!("{p}.attn_norm"), Buf::Hidden, Buf::Normed, n_embd)?;
        let qkv = format!("{p}.attn_qkv.weight");
        if tensors.tensor_type(&qkv).is_some() && !cfg.qkv_bias {
            // Fused Q/K/V (phi3): q rows, then k, then v.
            let (q, k, v) = (format!("{p}.attn_q"), format!("{p}.attn_k"), format!("{p}.attn_v"));
            let parts = [(q.as_str(), Buf::Q, q_width), (k.as_str(), Buf::K, kv_width), (v.as_str(), Buf::V, v_width)];
            b.fused(&qkv, Buf::Normed, n_embd, &parts)?;
        } else {
            b.linear(&format!("{p}.attn_q"), Buf::Normed, Buf::Q, n_embd, q_width, cfg.qkv_bias)?;
            b.linear(&format!("{p}.attn_k"), Buf::Normed, Buf::K, n_embd, kv_width, cfg.qkv_bias)?;
            b.linear(&format!("{p}.attn_v"), Buf::Normed, Buf::V, n_embd, v_width, cfg.qkv_bias)?;
        }
        if cfg.qk_norm {
            b.norm(&format!("{p}.attn_q_norm"), Buf::Q, Buf::Q, cfg.head_dim)?;
            b.norm(&format!("{p}.attn_k_norm"), Buf::K, Buf::K, cfg.head_dim)?;
        }
        let base = cfg.rope_base_for_layer(il as usize);
        for (name, x, heads) in [("rope_q", Buf::Q, cfg.n_head), ("rope_k", Buf::K, cfg.n_head_kv)] {
            let step = Step::Rope { x, heads, base, freq_scale, freq_factors, ext, long_factors_above };
            b.push(format!("{p}.{name}"), rope, rope_weights, step);
        }
        // The KV cache's default precision; the GPU executor respecializes for another
        // (`KernelSpec::with_kv`).
        let kv = KvPrecision::default();
        b.push(format!("{p}.kv_append"), KernelSpec::KvAppend { kv }, &[], Step::KvAppend { layer: il });
        let swa = cfg.is_swa(il as usize);
        let softcap = cfg.attn_logit_softcap.is_some();
        let spec = KernelSpec::attention(phase, cfg.head_dim, cfg.gqa_ratio(), swa, softcap, kv);
        let step = Step::Attention {
            layer: il,
            scale: cfg.attention_scale,
            softcap: cfg.attn_logit_softcap,
            window: if swa { cfg.sliding_window } else { None },
        };
        b.push(format!("{p}.attn"), spec, &[], step);
        b.linear(&format!("{p}.attn_output"), Buf::AttnOut, Buf::Proj, cfg.n_head * cfg.head_dim_v, n_embd, false)?;
        if cfg.post_norms {
            b.norm(&format!("{p}.post_attention_norm"), Buf::Proj, Buf::Proj, n_embd)?;
        }
        let add = KernelSpec::Elementwise { op: ElementwiseOp::Add };
        b.push(format!("{p}.attn_residual"), add, &[], Step::Add { a: Buf::Hidden, b: Buf::Proj, out: Buf::Hidden });
        b.norm(&format!("{p}.ffn_norm"), Buf::Hidden, Buf::Normed, n_embd)?;
        if cfg.arch == Arch::Phi3 {
            // Gate and up stacked in one ffn_up of 2·n_ff rows, gate first (llama.cpp's swiglu
            // takes silu of the first half).
            let (gate, up) = (format!("{p}.ffn_gate"), format!("{p}.ffn_up"));
            let parts = [(gate.as_str(), Buf::Gate, cfg.n_ff), (up.as_str(), Buf::Up, cfg.n_ff)];
            b.fused(&format!("{p}.ffn_up.weight"), Buf::Normed, n_embd, &parts)?;
        } else {
            b.linear(&format!("{p}.ffn_gate"), Buf::Normed, Buf::Gate, n_embd, cfg.n_ff, false)?;
            b.linear(&format!("{p}.ffn_up"), Buf::Normed, Buf::Up, n_embd, cfg.n_ff, false)?;
        }
        let step = Step::Glu { gate: Buf::Gate, up: Buf::Up, out: Buf::Act, kind: glu };
        b.push(format!("{p}.ffn_glu"), KernelSpec::Glu { kind: glu }, &[], step);
        b.linear(&format!("{p}.ffn_down"), Buf::Act, Buf::Proj, cfg.n_ff, n_embd, false)?;
        if cfg.post_norms {
            b.norm(&format!("{p}.post_ffw_norm"), Buf::Proj, Buf::Proj, n_embd)?;
        }
        b.push(format!("{p}.ffn_residual"), add, &[], Step::Add { a: Buf::Hidden, b: Buf::Proj, out: Buf::Hidden });
    }
    b.norm("output_norm", Buf::Hidden, Buf::Normed, n_embd)?;
    // Logits are wanted for the last position only: a matrix-vector product in both phases.
    let out = if tensors.tensor_type("output.weight").is_some() { "output.weight" } else { embd };
    let step = Step::Linear { x: Buf::Normed, out: Buf::Logits, n_out: cfg.n_vocab, last_only: true, rows: None };
    b.push("output", KernelSpec::MatVec { wtype: b.ty(out)?, k: n_embd }, &[out], step);
    if let Some(cap) = cfg.final_logit_softcap {
        let spec = KernelSpec::Elementwise { op: ElementwiseOp::Softcap };
        b.push("output_softcap", spec, &[], Step::Softcap { x: Buf::Logits, cap });
    }
    b.push("argmax", KernelSpec::Argmax, &[], Step::Argmax);
    Ok(Graph { phase, nodes: b.nodes, buffers: BufferPlan::new(cfg) })
}

/// Refuses a file holding a tensor that no node of `graph` reads: ignoring it would run another
/// model than the file describes (as Llama 3's `rope_freqs.weight` once was ignored).
pub fn check_all_tensors_used<'a>(graph: &Graph, names: impl IntoIterator<Item = &'a str>) -> Result<(), GraphError> {
    let used: BTreeSet<&str> = graph.nodes.iter().flat_map(|n| n.weights.iter().map(String::as_str)).collect();
    match names.into_iter().find(|name| !used.contains(name)) {
        Some(name) => Err(GraphError::UnusedTensor(name.to_string())),
        None => Ok(()),
    }
}

/// Every distinct kernel a model needs for prefill and decode (the int8 decode's included), in a
/// stable order.
pub fn kernel_specs(cfg: &ModelConfig, tensors: &dyn TensorTypes) -> Result<BTreeSet<KernelSpec>, GraphError> {
    let mut specs = BTreeSet::new();
    for phase in AttnPhase::ALL {
        specs.extend(build(cfg, tensors, phase)?.nodes.into_iter().map(|n| n.spec));
    }
    // The GPU's int8 decode runs each quantized matvec as a q8_1 quantize and an int8 matvec.
    let int8: Vec<KernelSpec> = specs.iter().filter_map(|s| s.int8_decode()).flat_map(|(q, m)| [q, m]).collect();
    specs.extend(int8);
    // Its prefill runs each quantized matrix product as a q8_1 quantize and the tiled int8 product,
    // and attention as flash attention where that applies.
    // Products of long rows also have the stream-K variant (chosen per launch by the tile count).
    let prefill: Vec<KernelSpec> = specs
        .iter()
        .flat_map(|s| s.int8_prefill().map(|(q, m)| [q, m]).into_iter().flatten().chain(s.flash_prefill()))
        .flat_map(|s| {
            let stream = match s {
                KernelSpec::MatMulQ8 { wtype, k, stream_k: false } if crate::kernels::mmq_may_stream(k) => {
                    Some(KernelSpec::MatMulQ8 { wtype, k, stream_k: true })
                }
                _ => None,
            };
            std::iter::once(s).chain(stream)
        })
        .collect();
    specs.extend(prefill);
    // On a target with a matrix unit, prefill's float products run as f16 products instead.
    // Each product's tile is picked per launch (`F16Tile::for_product`): every tile is compiled.
    let f16: Vec<KernelSpec> = specs
        .iter()
        .filter_map(|s| s.f16_prefill())
        .flatten()
        .flat_map(|s| match s {
            KernelSpec::GemmF16 { k, .. } => F16Tile::ALL.map(|tile| KernelSpec::GemmF16 { k, tile }).to_vec(),
            s => vec![s],
        })
        .collect();
    specs.extend(f16);
    Ok(specs)
}
