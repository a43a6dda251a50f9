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
    Scale,
    Softcap,
}

/// Decode attends one new token per sequence; prefill many, causally.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AttnPhase {
    Decode,
    Prefill,
}

impl AttnPhase {
    pub const ALL: [AttnPhase; 2] = [AttnPhase::Decode, AttnPhase::Prefill];
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
    /// Causal attention over the f32 KV cache.
    Attention {
        phase: AttnPhase,
        head_dim: u32,
        gqa: u32,
        sliding_window: bool,
        softcap: bool,
    },
    Softmax,
    Glu {
        kind: GluKind,
    },
    Elementwise {
        op: ElementwiseOp,
    },
    KvAppend,
    Argmax,
}

#[derive(Debug, thiserror::Error, PartialEq)]
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
            KernelSpec::Attention { phase, head_dim, gqa, sliding_window, softcap } => format!(
                "attn_{}_hd{head_dim}_gqa{gqa}{}{}",
                if phase == AttnPhase::Decode { "decode" } else { "prefill" },
                if sliding_window { "_swa" } else { "" },
                if softcap { "_softcap" } else { "" }
            ),
            KernelSpec::Softmax => "softmax".into(),
            KernelSpec::Glu { kind: GluKind::SwiGlu } => "swiglu".into(),
            KernelSpec::Glu { kind: GluKind::GeGlu } => "geglu".into(),
            KernelSpec::Elementwise { op } => match op {
                ElementwiseOp::Add => "add",
                ElementwiseOp::AddBias => "add_bias",
                ElementwiseOp::Scale => "scale",
                ElementwiseOp::Softcap => "softcap",
            }
            .into(),
            KernelSpec::KvAppend => "kv_append".into(),
            KernelSpec::Argmax => "argmax".into(),
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
        let spec = self.entry_name();
        let invalid = |what: String| Err(SpecError::Invalid { spec: spec.clone(), what });
        if let Some(ty) = self.weight_type() {
            if !quant::SUPPORTED.contains(&ty) {
                return Err(SpecError::UnsupportedType { spec, ty });
            }
            let k = match *self {
                KernelSpec::Embedding { n_embd, .. } => n_embd,
                KernelSpec::MatVec { k, .. } | KernelSpec::MatMul { k, .. } => k,
                _ => unreachable!("weight_type is Some only for these"),
            };
            if k == 0 || k as usize % ty.block_elems() != 0 {
                return Err(SpecError::PartialBlock { spec, k, ty, block: ty.block_elems() });
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
            _ => Ok(()),
        }
    }
}

impl fmt::Display for KernelSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.entry_name())
    }
}
