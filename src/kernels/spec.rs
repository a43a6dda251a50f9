//! `KernelSpec`: which op, specialized for which shapes and types.

use std::fmt;

use crate::dtype::GgmlType;
use crate::quant;

/// The source dialect's backend: the same template body compiles for both through a prelude.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dialect {
    Hip,
    Cuda,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RopeKind {
    /// Pairs (2i, 2i+1): GGUF `llama` files.
    Normal,
    /// Pairs (i, i + dims/2): qwen2, gemma.
    Neox,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum GluKind {
    /// silu(gate) · up
    SwiGlu,
    /// gelu_tanh(gate) · up
    GeGlu,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ElementwiseOp {
    Add,
    AddBias,
    Softcap,
}

/// A pass's phase: decode runs one token (matrix-vector products), prefill many (matrix products).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AttnPhase {
    Decode,
    Prefill,
}

impl AttnPhase {
    pub const ALL: [AttnPhase; 2] = [AttnPhase::Decode, AttnPhase::Prefill];
}

/// The element type of the KV cache. f16 halves the cache's memory and the bytes decode attention
/// reads; the append rounds each value to nearest (ties to even, as `__float2half`) and attention
/// widens it exactly, accumulating in f32.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KvPrecision {
    #[default]
    F16,
    F32,
}

impl KvPrecision {
    /// Bytes per cached value.
    pub fn size(self) -> usize {
        match self {
            KvPrecision::F16 => 2,
            KvPrecision::F32 => 4,
        }
    }

    /// `f16` or `f32`, as the CLI spells it.
    pub fn name(self) -> &'static str {
        match self {
            KvPrecision::F16 => "f16",
            KvPrecision::F32 => "f32",
        }
    }
}

impl std::str::FromStr for KvPrecision {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "f16" => Ok(KvPrecision::F16),
            "f32" => Ok(KvPrecision::F32),
            other => Err(format!("unknown KV cache precision {other:?}: expected f16 or f32")),
        }
    }
}

/// An op and the values it is specialized for. Runtime values (positions, eps, rope base, token
/// counts) are kernel arguments, so one compiled kernel serves every layer that shares a shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KernelSpec {
    /// Row lookup: `out[t] = scale · W[ids[t]]`, W rows of `n_embd` elements of `wtype`.
    Embedding {
        wtype: GgmlType,
        n_embd: u32,
    },
    /// RMSNorm over rows of `n`; `add_one` multiplies by (1 + w) instead of w.
    RmsNorm {
        n: u32,
        add_one: bool,
    },
    /// Rope over the first `rope_dims` of each `head_dim`-wide head, in place.
    Rope {
        head_dim: u32,
        rope_dims: u32,
        kind: RopeKind,
    },
    /// y = W·x for one token (decode); W rows of `k` elements of `wtype`.
    MatVec {
        wtype: GgmlType,
        k: u32,
    },
    /// Y = X·Wᵀ for many tokens (prefill).
    MatMul {
        wtype: GgmlType,
        k: u32,
    },
    /// Causal attention of many queries over the KV cache (prefill; decode where
    /// [`KernelSpec::AttnDecode`] does not apply).
    Attention {
        head_dim: u32,
        gqa: u32,
        sliding_window: bool,
        softcap: bool,
        kv: KvPrecision,
    },
    /// Attention of one query token (decode), split across blocks over the cached positions
    /// (flash-decoding), all query heads of a GQA group in one block; the last block of each
    /// group merges the partial results.
    AttnDecode {
        head_dim: u32,
        gqa: u32,
        sliding_window: bool,
        softcap: bool,
        kv: KvPrecision,
    },
    Glu {
        kind: GluKind,
    },
    Elementwise {
        op: ElementwiseOp,
    },
    KvAppend {
        kv: KvPrecision,
    },
    Argmax,
}

#[derive(Clone, Debug, thiserror::Error, PartialEq)]
pub enum SpecError {
    #[error("{spec}: no kernel for weight type {ty} (supported: {})", supported_types())]
    UnsupportedType { spec: String, ty: GgmlType },
    #[error("{spec}: row length {k} is not a whole number of {ty} blocks ({block} elements)")]
    PartialBlock { spec: String, k: u32, ty: GgmlType, block: usize },
    #[error("{spec}: {what}")]
    Invalid { spec: String, what: String },
}

fn supported_types() -> String {
    quant::SUPPORTED.iter().map(|t| t.name()).collect::<Vec<_>>().join(", ")
}

/// Largest head the attention template keeps in registers and shared memory.
pub const MAX_HEAD_DIM: u32 = 512;

/// Threads per block of the ops that take a fixed block (norms, embedding, argmax; the glu,
/// elementwise and kv_append templates spell it 256).
pub const BLOCK_THREADS: u32 = 256;
/// Rows (one warp each) per block of the matrix ops.
pub const ROWS_PER_BLOCK: u32 = 4;
/// Tokens per warp in the prefill matrix product.
pub const TOKENS_PER_WARP: u32 = 8;
/// Warps per block in attention.
pub const ATTN_WARPS: u32 = 16;
/// Warps per block in split decode attention.
pub const ATTN_DECODE_WARPS: u32 = 4;
/// The largest GQA group one decode-attention block handles (its queries live in registers).
pub const ATTN_DECODE_MAX_GQA: u32 = 8;
/// The largest head split decode attention takes (registers: GQA · head_dim / lanes per position).
pub const ATTN_DECODE_MAX_HEAD_DIM: u32 = 256;
/// Positions per block of split decode attention, at most (its scores sit in shared memory).
pub const ATTN_DECODE_MAX_CHUNK: u32 = 256;

impl KernelSpec {
    /// The attention kernel for a pass of `phase`: split decode attention where its limits allow
    /// (GQA group ≤ 8, head_dim ≤ 256 and a multiple of 8 for 16-byte loads), else the general one.
    pub fn attention(
        phase: AttnPhase,
        head_dim: u32,
        gqa: u32,
        sliding_window: bool,
        softcap: bool,
        kv: KvPrecision,
    ) -> KernelSpec {
        let split = phase == AttnPhase::Decode
            && (1..=ATTN_DECODE_MAX_GQA).contains(&gqa)
            && head_dim <= ATTN_DECODE_MAX_HEAD_DIM
            && head_dim > 0
            && head_dim.is_multiple_of(8);
        if split {
            KernelSpec::AttnDecode { head_dim, gqa, sliding_window, softcap, kv }
        } else {
            KernelSpec::Attention { head_dim, gqa, sliding_window, softcap, kv }
        }
    }

    /// The same kernel over a KV cache of `kv` (ops that do not touch the cache are unchanged).
    pub fn with_kv(self, kv: KvPrecision) -> KernelSpec {
        match self {
            KernelSpec::Attention { head_dim, gqa, sliding_window, softcap, .. } => {
                KernelSpec::Attention { head_dim, gqa, sliding_window, softcap, kv }
            }
            KernelSpec::AttnDecode { head_dim, gqa, sliding_window, softcap, .. } => {
                KernelSpec::AttnDecode { head_dim, gqa, sliding_window, softcap, kv }
            }
            KernelSpec::KvAppend { .. } => KernelSpec::KvAppend { kv },
            other => other,
        }
    }
}

impl KernelSpec {
    /// The `extern "C"` entry point, spelled from the specialization (`mmv_q4_k_k4096`).
    pub fn entry_name(&self) -> String {
        let ty = |t: GgmlType| t.name().to_ascii_lowercase();
        match *self {
            KernelSpec::Embedding { wtype, n_embd } => format!("embed_{}_d{n_embd}", ty(wtype)),
            KernelSpec::RmsNorm { n, add_one } => format!("rmsnorm_n{n}{}", if add_one { "_w1" } else { "" }),
            KernelSpec::Rope { head_dim, rope_dims, kind } => {
                let k = if kind == RopeKind::Neox { "neox" } else { "normal" };
                format!("rope_{k}_hd{head_dim}_r{rope_dims}")
            }
            KernelSpec::MatVec { wtype, k } => format!("mmv_{}_k{k}", ty(wtype)),
            KernelSpec::MatMul { wtype, k } => format!("mmm_{}_k{k}", ty(wtype)),
            KernelSpec::Attention { head_dim, gqa, sliding_window, softcap, kv } => format!(
                "attn_hd{head_dim}_gqa{gqa}{}{}_kv{}",
                if sliding_window { "_swa" } else { "" },
                if softcap { "_softcap" } else { "" },
                kv.name()
            ),
            KernelSpec::AttnDecode { head_dim, gqa, sliding_window, softcap, kv } => format!(
                "attn_decode_hd{head_dim}_gqa{gqa}{}{}_kv{}",
                if sliding_window { "_swa" } else { "" },
                if softcap { "_softcap" } else { "" },
                kv.name()
            ),
            KernelSpec::Glu { kind: GluKind::SwiGlu } => "swiglu".into(),
            KernelSpec::Glu { kind: GluKind::GeGlu } => "geglu".into(),
            KernelSpec::Elementwise { op } => match op {
                ElementwiseOp::Add => "add",
                ElementwiseOp::AddBias => "add_bias",
                ElementwiseOp::Softcap => "softcap",
            }
            .into(),
            KernelSpec::KvAppend { kv } => format!("kv_append_{}", kv.name()),
            KernelSpec::Argmax => "argmax".into(),
        }
    }

    /// Threads per block, for a target of `warp_size` lanes: what the template's
    /// `__launch_bounds__` works out from the constants the renderer writes, and what a launch
    /// description launches with.
    pub fn block_threads(&self, warp_size: u32) -> u32 {
        match *self {
            KernelSpec::Rope { rope_dims, .. } => rope_dims / 2,
            KernelSpec::MatVec { .. } | KernelSpec::MatMul { .. } => ROWS_PER_BLOCK * warp_size,
            KernelSpec::Attention { .. } => ATTN_WARPS * warp_size,
            KernelSpec::AttnDecode { .. } => ATTN_DECODE_WARPS * warp_size,
            KernelSpec::Embedding { .. }
            | KernelSpec::RmsNorm { .. }
            | KernelSpec::Glu { .. }
            | KernelSpec::Elementwise { .. }
            | KernelSpec::KvAppend { .. }
            | KernelSpec::Argmax => BLOCK_THREADS,
        }
    }

    /// The weight type, for ops that read quantized weights.
    pub fn weight_type(&self) -> Option<GgmlType> {
        match *self {
            KernelSpec::Embedding { wtype, .. }
            | KernelSpec::MatVec { wtype, .. }
            | KernelSpec::MatMul { wtype, .. } => Some(wtype),
            _ => None,
        }
    }

    /// Refuses specializations the templates cannot take, before anything is rendered.
    pub fn validate(&self) -> Result<(), SpecError> {
        // Named only on error: every launch is checked, and a valid spec costs no allocation.
        let spec = || self.entry_name();
        let invalid = |what: String| Err(SpecError::Invalid { spec: spec(), what });
        if let Some(ty) = self.weight_type() {
            if !quant::SUPPORTED.contains(&ty) {
                return Err(SpecError::UnsupportedType { spec: spec(), ty });
            }
            let k = match *self {
                KernelSpec::Embedding { n_embd, .. } => n_embd,
                KernelSpec::MatVec { k, .. } | KernelSpec::MatMul { k, .. } => k,
                _ => unreachable!("weight_type is Some only for these"),
            };
            if k == 0 || !(k as usize).is_multiple_of(ty.block_elems()) {
                return Err(SpecError::PartialBlock { spec: spec(), k, ty, block: ty.block_elems() });
            }
        }
        match *self {
            KernelSpec::RmsNorm { n: 0, .. } => invalid("rows must have at least one element".into()),
            KernelSpec::Rope { head_dim, rope_dims, .. }
                if rope_dims == 0 || rope_dims % 2 != 0 || rope_dims > head_dim =>
            {
                invalid(format!("rope dims {rope_dims} must be even, non-zero and at most head_dim {head_dim}"))
            }
            KernelSpec::Attention { head_dim, gqa, .. } if head_dim == 0 || head_dim > MAX_HEAD_DIM || gqa == 0 => {
                invalid(format!("head_dim must be 1..={MAX_HEAD_DIM} and the GQA ratio at least 1"))
            }
            KernelSpec::AttnDecode { head_dim, gqa, .. }
                if head_dim == 0
                    || head_dim > ATTN_DECODE_MAX_HEAD_DIM
                    || !head_dim.is_multiple_of(8)
                    || !(1..=ATTN_DECODE_MAX_GQA).contains(&gqa) =>
            {
                invalid(format!(
                    "split decode attention takes head_dim a multiple of 8 up to {ATTN_DECODE_MAX_HEAD_DIM} and GQA groups of 1..={ATTN_DECODE_MAX_GQA}"
                ))
            }
            _ => Ok(()),
        }
    }
}

impl fmt::Display for KernelSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.entry_name())
    }
}
