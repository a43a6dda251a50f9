//! The forward pass as a list of named nodes (`blk.3.attn_norm`, as llama.cpp names them), each
//! with the weights it reads and the one `KernelSpec` that runs it. The JIT compiles exactly the
//! specs of these nodes, and the executors (CPU and GPU) walk the same list.

use std::collections::BTreeSet;

use crate::dtype::GgmlType;
use crate::gguf::GgufFile;
use crate::kernels::{AttnPhase, ElementwiseOp, GluKind, KernelSpec, RopeKind};
use crate::model::{Activation, ModelConfig, RopeStyle};

/// One step of the forward pass.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// llama.cpp-style name (`blk.3.attn_q`), so dumps can be diffed against llama-eval-callback.
    pub name: String,
    pub spec: KernelSpec,
    /// GGUF tensors the node reads (weights first, then biases / norms).
    pub weights: Vec<String>,
}

/// The nodes of one pass (decode: one token; prefill: many).
#[derive(Clone, Debug, PartialEq)]
pub struct Graph {
    pub phase: AttnPhase,
    pub nodes: Vec<Node>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum GraphError {
    #[error("the model has no tensor {0:?}, which its architecture needs")]
    MissingTensor(String),
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
    tensors: &'a dyn TensorTypes,
    phase: AttnPhase,
    nodes: Vec<Node>,
}

impl Builder<'_> {
    fn ty(&self, name: &str) -> Result<GgmlType, GraphError> {
        self.tensors.tensor_type(name).ok_or_else(|| GraphError::MissingTensor(name.to_string()))
    }

    fn push(&mut self, name: impl Into<String>, spec: KernelSpec, weights: &[&str]) {
        self.nodes.push(Node { name: name.into(), spec, weights: weights.iter().map(|w| w.to_string()).collect() });
    }

    fn norm(&mut self, name: &str, n: u32) -> Result<(), GraphError> {
        let w = format!("{name}.weight");
        self.ty(&w)?;
        self.push(name, KernelSpec::RmsNorm { n, add_one: false }, &[&w]);
        Ok(())
    }

    /// A projection `name.weight` over rows of `k`; prefill multiplies many tokens at once.
    fn linear(&mut self, name: &str, k: u32, bias: bool) -> Result<(), GraphError> {
        let w = format!("{name}.weight");
        let wtype = self.ty(&w)?;
        let spec = match self.phase {
            AttnPhase::Decode => KernelSpec::MatVec { wtype, k },
            AttnPhase::Prefill => KernelSpec::MatMul { wtype, k },
        };
        self.push(name, spec, &[&w]);
        if bias {
            let b = format!("{name}.bias");
            self.ty(&b)?;
            self.push(format!("{name}.bias_add"), KernelSpec::Elementwise { op: ElementwiseOp::AddBias }, &[&b]);
        }
        Ok(())
    }
}

/// Builds the pass for `phase`.
pub fn build(cfg: &ModelConfig, tensors: &dyn TensorTypes, phase: AttnPhase) -> Result<Graph, GraphError> {
    let mut b = Builder { tensors, phase, nodes: Vec::new() };
    let embd = "token_embd.weight";
    b.push("token_embd", KernelSpec::Embedding { wtype: b.ty(embd)?, n_embd: cfg.n_embd }, &[embd]);
    let rope = KernelSpec::Rope {
        head_dim: cfg.head_dim,
        rope_dims: cfg.rope_dims,
        kind: match cfg.rope_style {
            RopeStyle::Normal => RopeKind::Normal,
            RopeStyle::Neox => RopeKind::Neox,
        },
    };
    let q_width = cfg.n_head * cfg.head_dim_v;
    for il in 0..cfg.n_layer as usize {
        let p = format!("blk.{il}");
        b.norm(&format!("{p}.attn_norm"), cfg.n_embd)?;
        for proj in ["attn_q", "attn_k", "attn_v"] {
            b.linear(&format!("{p}.{proj}"), cfg.n_embd, cfg.qkv_bias)?;
        }
        if cfg.qk_norm {
            b.norm(&format!("{p}.attn_q_norm"), cfg.head_dim)?;
            b.norm(&format!("{p}.attn_k_norm"), cfg.head_dim)?;
        }
        b.push(format!("{p}.rope_q"), rope, &[]);
        b.push(format!("{p}.rope_k"), rope, &[]);
        b.push(format!("{p}.kv_append"), KernelSpec::KvAppend, &[]);
        let attn = KernelSpec::Attention {
            phase,
            head_dim: cfg.head_dim,
            gqa: cfg.gqa_ratio(),
            sliding_window: cfg.is_swa(il),
            softcap: cfg.attn_logit_softcap.is_some(),
        };
        b.push(format!("{p}.attn"), attn, &[]);
        b.linear(&format!("{p}.attn_output"), q_width, false)?;
        if cfg.post_norms {
            b.norm(&format!("{p}.post_attention_norm"), cfg.n_embd)?;
        }
        b.push(format!("{p}.attn_residual"), KernelSpec::Elementwise { op: ElementwiseOp::Add }, &[]);
        b.norm(&format!("{p}.ffn_norm"), cfg.n_embd)?;
        b.linear(&format!("{p}.ffn_gate"), cfg.n_embd, false)?;
        b.linear(&format!("{p}.ffn_up"), cfg.n_embd, false)?;
        let kind = match cfg.activation {
            Activation::Silu => GluKind::SwiGlu,
            Activation::GeluTanh => GluKind::GeGlu,
        };
        b.push(format!("{p}.ffn_glu"), KernelSpec::Glu { kind }, &[]);
        b.linear(&format!("{p}.ffn_down"), cfg.n_ff, false)?;
        if cfg.post_norms {
            b.norm(&format!("{p}.post_ffw_norm"), cfg.n_embd)?;
        }
        b.push(format!("{p}.ffn_residual"), KernelSpec::Elementwise { op: ElementwiseOp::Add }, &[]);
    }
    b.norm("output_norm", cfg.n_embd)?;
    // Logits are wanted for the last position only: a matrix-vector product in both phases.
    let out =
        if cfg.tied_embeddings || tensors.tensor_type("output.weight").is_none() { embd } else { "output.weight" };
    b.push("output", KernelSpec::MatVec { wtype: b.ty(out)?, k: cfg.n_embd }, &[out]);
    if cfg.final_logit_softcap.is_some() {
        b.push("output_softcap", KernelSpec::Elementwise { op: ElementwiseOp::Softcap }, &[]);
    }
    b.push("argmax", KernelSpec::Argmax, &[]);
    b.push("softmax", KernelSpec::Softmax, &[]);
    Ok(Graph { phase, nodes: b.nodes })
}

/// Every distinct kernel a model needs for prefill and decode, in a stable order.
pub fn kernel_specs(cfg: &ModelConfig, tensors: &dyn TensorTypes) -> Result<BTreeSet<KernelSpec>, GraphError> {
    let mut specs = BTreeSet::new();
    for phase in AttnPhase::ALL {
        specs.extend(build(cfg, tensors, phase)?.nodes.into_iter().map(|n| n.spec));
    }
    Ok(specs)
}
