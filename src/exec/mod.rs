//! Execution: a loaded [`Model`] (file, config, the prefill and decode graphs, checked weight
//! shapes) and [`Session`]s that run it with a KV cache of fixed capacity.

mod cpu_fast;
mod cpu_simd;
mod cpu_weights;
pub mod fuse;
mod generate;
pub mod gpu;
mod sampler;
mod session;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use crate::gguf::{GgufError, GgufFile};
use crate::graph::{self, Graph, GraphError, Step};
use crate::kernels::AttnPhase;
use crate::model::{ModelConfig, ModelError};
use crate::quant::{self, QuantError};

pub use cpu_fast::{Activations, CpuPrecision};
pub use generate::{FinishReason, GenerateParams, Generated, Generation, GenerationStats};
pub use sampler::{Sampler, SamplerConfig, SamplerError};
pub use session::Session;

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error(transparent)]
    Gguf(#[from] GgufError),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Graph(#[from] GraphError),
    #[error(transparent)]
    Quant(#[from] QuantError),
    #[error("tensor {name:?} has shape {found:?}; the model's configuration needs {expected:?}")]
    WrongShape { name: String, expected: Vec<u64>, found: Vec<u64> },
    #[error("the context is full: {pos} of {capacity} positions used, {requested} more asked for (start a new session, or open one with a larger capacity)")]
    ContextFull { pos: usize, capacity: usize, requested: usize },
    #[error("token id {id} is outside the vocabulary of {n_vocab}")]
    TokenOutOfRange { id: u32, n_vocab: u32 },
    #[error("a forward pass needs at least one token")]
    NoTokens,
    #[error("capacity {capacity} exceeds the model's limit of {max} positions")]
    CapacityTooLarge { capacity: usize, max: usize },
    #[error("the {what} for {capacity} positions needs {need}, but {limit} (ask for fewer positions: --ctx, -n)")]
    OutOfMemory { what: &'static str, capacity: usize, need: String, limit: String },
    #[error(transparent)]
    Device(#[from] crate::device::DeviceError),
    #[error(transparent)]
    Jit(#[from] crate::jit::JitError),
    #[error("{0}")]
    Unsupported(String),
}

/// Every distinct kernel a model needs on a GPU, in a stable order: the graph's (prefill, decode and
/// the int8 paths', `graph::kernel_specs`) and the fused int8 decode's and prefill's
/// ([`fuse::specs`]).
pub fn kernel_specs(
    cfg: &ModelConfig,
    tensors: &dyn graph::TensorTypes,
) -> Result<std::collections::BTreeSet<crate::kernels::KernelSpec>, GraphError> {
    let mut specs = graph::kernel_specs(cfg, tensors)?;
    specs.extend(fuse::specs(&graph::build(cfg, tensors, AttnPhase::Decode)?));
    specs.extend(fuse::specs(&graph::build(cfg, tensors, AttnPhase::Prefill)?));
    Ok(specs)
}

/// Checks a pass of `tokens` against the vocabulary and the cache's free capacity (both backends).
pub(crate) fn check_pass(cfg: &ModelConfig, pos: usize, capacity: usize, tokens: &[u32]) -> Result<(), ExecError> {
    if tokens.is_empty() {
        return Err(ExecError::NoTokens);
    }
    if let Some(&id) = tokens.iter().find(|&&t| t >= cfg.n_vocab) {
        return Err(ExecError::TokenOutOfRange { id, n_vocab: cfg.n_vocab });
    }
    if pos + tokens.len() > capacity {
        return Err(ExecError::ContextFull { pos, capacity, requested: tokens.len() });
    }
    Ok(())
}

/// A running model that turns tokens into the last position's logits: the CPU `Session` and the
/// GPU `GpuSession` alike, so generation works on either.
pub trait Forward {
    fn forward(&mut self, tokens: &[u32]) -> Result<&[f32], ExecError>;
    /// The greedy next token (a GPU session moves 4 bytes back instead of the logits).
    fn forward_argmax(&mut self, tokens: &[u32]) -> Result<u32, ExecError> {
        Ok(crate::reference::argmax(self.forward(tokens)?) as u32)
    }
    /// Positions used so far.
    fn pos(&self) -> usize;
    /// Forgets every position.
    fn reset(&mut self);
}

/// A model ready to run: the mapped file, its configuration and both graphs.
pub struct Model {
    pub file: Arc<GgufFile>,
    pub config: ModelConfig,
    pub prefill: Graph,
    pub decode: Graph,
    /// Norm weights and biases, as f32 (small; matrices stay quantized in the map).
    vectors: HashMap<String, Vec<f32>>,
}

impl Model {
    pub fn load(path: impl AsRef<Path>) -> Result<Model, ExecError> {
        Self::from_file(GgufFile::open(path)?)
    }

    pub fn from_file(file: GgufFile) -> Result<Model, ExecError> {
        let config = ModelConfig::from_gguf(&file)?;
        let prefill = graph::build(&config, &file, AttnPhase::Prefill)?;
        let decode = graph::build(&config, &file, AttnPhase::Decode)?;
        graph::check_all_tensors_used(&decode, file.tensors.iter().map(|t| t.name.as_str()))?;
        let mut vectors = HashMap::new();
        for node in &decode.nodes {
            check_shapes(&file, &config, &node.step, &node.weights)?;
            if matches!(node.step, Step::Norm { .. } | Step::BiasAdd { .. } | Step::Rope { freq_factors: true, .. }) {
                // Every weight: LongRoPE's rope reads its short or its long factors.
                for name in &node.weights {
                    let t = file.require_tensor(name)?;
                    vectors.insert(t.name.clone(), quant::dequantize_to_vec(t.ty, file.tensor_data(t))?);
                }
            }
        }
        Ok(Model { file: Arc::new(file), config, prefill, decode, vectors })
    }

    /// The graph a pass of `n_tokens` runs.
    pub fn graph(&self, n_tokens: usize) -> &Graph {
        if n_tokens == 1 {
            &self.decode
        } else {
            &self.prefill
        }
    }

    pub(crate) fn vector(&self, name: &str) -> &[f32] {
        &self.vectors[name]
    }

    /// The model's tokenizer.
    pub fn tokenizer(&self) -> Result<crate::tokenizer::Tokenizer, crate::tokenizer::TokenizerError> {
        crate::tokenizer::Tokenizer::from_metadata(&self.file.metadata)
    }

    /// Bytes of weights (all tensors).
    pub fn weight_bytes(&self) -> u64 {
        self.file.tensors.iter().map(|t| t.n_bytes).sum()
    }
}

/// Every weight a node reads has the shape the configuration implies: a broken or mislabelled
/// file is refused at load, naming the tensor, instead of reading out of bounds later.
fn check_shapes(file: &GgufFile, cfg: &ModelConfig, step: &Step, weights: &[String]) -> Result<(), ExecError> {
    let expected: Vec<u64> = match *step {
        Step::Embed { .. } => vec![cfg.n_embd as u64, cfg.n_vocab as u64],
        Step::Norm { width, .. } | Step::BiasAdd { width, .. } => vec![width as u64],
        // A fused tensor holds the rows of every projection that reads a range of it.
        Step::Linear { n_out, rows, .. } => {
            let name = &weights[0];
            let t = file.require_tensor(name)?;
            vec![t.row_len(), rows.map_or(n_out, |r| r.total) as u64]
        }
        _ => return Ok(()),
    };
    let t = file.require_tensor(&weights[0])?;
    let k_ok = match *step {
        Step::Linear { .. } => linear_k(cfg, &weights[0]).is_none_or(|k| k == t.row_len()),
        _ => true,
    };
    let found = if t.shape.len() == 1 { t.shape.clone() } else { t.shape.iter().take(2).copied().collect() };
    if !k_ok || found != expected || t.shape.iter().skip(2).any(|&d| d != 1) {
        let expected = match *step {
            Step::Linear { n_out, rows, .. } => {
                vec![linear_k(cfg, &weights[0]).unwrap_or(t.row_len()), rows.map_or(n_out, |r| r.total) as u64]
            }
            _ => expected,
        };
        return Err(ExecError::WrongShape { name: t.name.clone(), expected, found: t.shape.clone() });
    }
    Ok(())
}

/// The row length a projection's weight must have.
fn linear_k(cfg: &ModelConfig, name: &str) -> Option<u64> {
    let suffix = name.rsplit('.').nth(1)?;
    Some(match suffix {
        "attn_output" => (cfg.n_head * cfg.head_dim_v) as u64,
        "ffn_down" => cfg.n_ff as u64,
        _ => cfg.n_embd as u64,
    })
}
