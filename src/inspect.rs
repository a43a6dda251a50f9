//! `rocmforge inspect`: what a model file holds, in a few lines or as JSON.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use crate::gguf::GgufFile;
use crate::model::{ModelConfig, ModelError, RopeScaling, ROPE_FACTORS_LONG, ROPE_FACTORS_SHORT, ROPE_FREQS};

/// What a file's `rope_freqs.weight` does: how many rotated pairs it slows down, and by how much.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FreqFactors {
    pub tensor: String,
    pub pairs: usize,
    /// Pairs whose divisor is not 1.
    pub scaled: usize,
    pub min: f32,
    pub max: f32,
}

impl FreqFactors {
    fn of(file: &GgufFile) -> Option<FreqFactors> {
        FreqFactors::named(file, ROPE_FREQS)
    }

    fn named(file: &GgufFile, name: &str) -> Option<FreqFactors> {
        // The model config has checked it: F32, rope_dims/2 values.
        let t = file.tensor(name)?;
        let f: Vec<f32> =
            file.tensor_data(t).chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes"))).collect();
        Some(FreqFactors {
            tensor: t.name.clone(),
            pairs: f.len(),
            scaled: f.iter().filter(|&&v| v != 1.0).count(),
            min: f.iter().copied().fold(f32::INFINITY, f32::min),
            max: f.iter().copied().fold(f32::NEG_INFINITY, f32::max),
        })
    }
}

/// A model file's shape at a glance. Field names are the `--json` keys.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Summary {
    pub architecture: String,
    pub n_layer: u32,
    pub n_embd: u32,
    pub n_head: u32,
    pub n_head_kv: u32,
    pub head_dim: u32,
    pub rope_dims: u32,
    pub rope_base: f32,
    /// `{"type": "none"}` or `{"type": "linear", "factor": 8.0}`.
    pub rope_scaling: RopeScaling,
    /// Llama 3's per-pair frequency divisors, when the file has them.
    pub rope_freq_factors: Option<FreqFactors>,
    /// LongRoPE's short and long factors (Phi-3), when the file has them.
    pub rope_longrope_factors: Option<[FreqFactors; 2]>,
    /// cos/sin scale of the rope (`rope.scaling.attn_factor`, times YaRN's own).
    pub rope_attn_factor: f32,
    /// The context the rope scaling starts from (YaRN's ramp, LongRoPE's choice of factors).
    pub rope_orig_ctx: u32,
    pub n_ctx_train: u32,
    pub n_vocab: u32,
    /// Tensor type name → number of tensors of that type.
    pub tensor_types: BTreeMap<String, u64>,
    /// Total elements over all tensors.
    pub n_params: u64,
    /// Total bytes of tensor data.
    pub n_bytes: u64,
    #[serde(skip)]
    pub config: ModelConfig,
}

impl Summary {
    pub fn of(file: &GgufFile) -> Result<Summary, ModelError> {
        let config = ModelConfig::from_gguf(file)?;
        let mut tensor_types = BTreeMap::new();
        for t in &file.tensors {
            *tensor_types.entry(t.ty.name().to_string()).or_insert(0) += 1;
        }
        Ok(Summary {
            architecture: config.arch.name().to_string(),
            n_layer: config.n_layer,
            n_embd: config.n_embd,
            n_head: config.n_head,
            n_head_kv: config.n_head_kv,
            head_dim: config.head_dim,
            rope_dims: config.rope_dims,
            rope_base: config.rope_base,
            rope_scaling: config.rope_scaling,
            rope_freq_factors: if config.rope_freq_factors { FreqFactors::of(file) } else { None },
            rope_longrope_factors: match (
                FreqFactors::named(file, ROPE_FACTORS_SHORT),
                FreqFactors::named(file, ROPE_FACTORS_LONG),
            ) {
                (Some(s), Some(l)) if config.rope_longrope => Some([s, l]),
                _ => None,
            },
            rope_attn_factor: config.rope_ext().attn_factor,
            rope_orig_ctx: config.rope_orig_ctx(),
            n_ctx_train: config.n_ctx_train,
            n_vocab: config.n_vocab,
            tensor_types,
            n_params: file.tensors.iter().map(|t| t.n_elems).sum(),
            n_bytes: file.tensors.iter().map(|t| t.n_bytes).sum(),
            config,
        })
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.config;
        writeln!(f, "architecture   {}", self.architecture)?;
        writeln!(f, "layers         {}", self.n_layer)?;
        writeln!(f, "hidden         {} (ffn {})", self.n_embd, c.n_ff)?;
        writeln!(
            f,
            "heads          {} query, {} KV (GQA {}), head_dim {}",
            self.n_head,
            self.n_head_kv,
            c.gqa_ratio(),
            self.head_dim
        )?;
        writeln!(f, "rope           {} dims, base {}, {:?} style", self.rope_dims, self.rope_base, c.rope_style)?;
        let mut scaling = match self.rope_scaling {
            RopeScaling::None => Vec::new(),
            RopeScaling::Linear { factor } => vec![format!("linear: positions / {factor}")],
            RopeScaling::Yarn { factor, beta_fast, beta_slow, .. } => {
                let [low, high] = c.rope_ext().corr_dims;
                vec![format!(
                    "YaRN: factor {factor}, pairs below {low} kept, above {high} scaled (beta_fast {beta_fast}, \
                     beta_slow {beta_slow}), cos/sin × {}",
                    self.rope_attn_factor * (1.0 + 0.1 * factor.ln())
                )]
            }
        };
        if let Some([short, long]) = &self.rope_longrope_factors {
            scaling.push(format!(
                "LongRoPE: {} (divisors {} to {}) for a context up to {}, {} ({} to {}) beyond",
                short.tensor, short.min, short.max, self.rope_orig_ctx, long.tensor, long.min, long.max
            ));
        }
        if !matches!(self.rope_scaling, RopeScaling::Yarn { .. }) && self.rope_attn_factor != 1.0 {
            scaling.push(format!("cos/sin × {} (attn_factor)", self.rope_attn_factor));
        }
        if let Some(ff) = &self.rope_freq_factors {
            scaling.push(format!(
                "Llama 3 frequency factors ({}): {} of {} pairs slowed, divisors {} to {}",
                ff.tensor, ff.scaled, ff.pairs, ff.min, ff.max
            ));
        }
        if let Some(n) = c.rope_scaling_orig_ctx {
            scaling.push(format!("original context {n}"));
        }
        writeln!(f, "rope scaling   {}", if scaling.is_empty() { "none".to_string() } else { scaling.join("; ") })?;
        if let Some(w) = c.sliding_window {
            let n_swa = c.swa_layers.iter().filter(|&&s| s).count();
            writeln!(f, "sliding window {w} tokens on {n_swa} of {} layers", self.n_layer)?;
        }
        if let Some(w) = c.ignored_sliding_window {
            writeln!(
                f,
                "sliding window {w} tokens in the file, not applied (llama.cpp does not apply it to {})",
                self.architecture
            )?;
        }
        writeln!(f, "context        {} (trained)", self.n_ctx_train)?;
        writeln!(f, "vocabulary     {}", self.n_vocab)?;
        let types: Vec<String> = self.tensor_types.iter().map(|(t, n)| format!("{t} ×{n}")).collect();
        writeln!(f, "tensor types   {}", if types.is_empty() { "(no tensors)".to_string() } else { types.join(", ") })?;
        write!(f, "parameters     {} ({})", human_count(self.n_params), human_bytes(self.n_bytes))
    }
}

fn human_count(n: u64) -> String {
    match n {
        n if n >= 1_000_000_000 => format!("{:.2} B", n as f64 / 1e9),
        n if n >= 1_000_000 => format!("{:.1} M", n as f64 / 1e6),
        n => n.to_string(),
    }
}

/// `1.50 GiB`, `98.9 MiB`, `512 B`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    if v < 1024.0 {
        return format!("{n} B");
    }
    let mut unit = "";
    for u in UNITS {
        v /= 1024.0;
        unit = u;
        if v < 1024.0 {
            break;
        }
    }
    format!("{v:.2} {unit}")
}
