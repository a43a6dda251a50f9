//! `ModelConfig`: the hyper-parameters common to our families, read once from the key table, then
//! adjusted by the architecture's own file.

use serde::Serialize;

use super::keys::Key;
use crate::gguf::{GgufError, GgufFile, Metadata, TensorInfo};

/// The architectures rocmforge runs (`general.architecture`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    /// LLaMA 2/3, Mistral, SmolLM: llama.cpp writes them all as `llama`.
    Llama,
    Qwen2,
    Gemma,
    Gemma2,
    Gemma3,
    Qwen3,
    /// Phi-3 / Phi-3.5: fused QKV and gate-up tensors, NEOX rope, LongRoPE factors.
    Phi3,
}

impl Arch {
    pub const ALL: &'static [Arch] =
        &[Arch::Llama, Arch::Qwen2, Arch::Gemma, Arch::Gemma2, Arch::Gemma3, Arch::Qwen3, Arch::Phi3];

    pub fn name(self) -> &'static str {
        match self {
            Arch::Llama => "llama",
            Arch::Qwen2 => "qwen2",
            Arch::Gemma => "gemma",
            Arch::Gemma2 => "gemma2",
            Arch::Gemma3 => "gemma3",
            Arch::Qwen3 => "qwen3",
            Arch::Phi3 => "phi3",
        }
    }

    pub fn from_name(name: &str) -> Option<Arch> {
        Arch::ALL.iter().copied().find(|a| a.name() == name)
    }
}

/// How rope pairs dimensions: `Normal` rotates (2i, 2i+1) (GGUF `llama` files, whose Q/K weights
/// llama.cpp's converter permutes), `Neox` rotates (i, i + dims/2) (qwen2, gemma).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RopeStyle {
    Normal,
    Neox,
}

/// Position scaling of rope, as llama.cpp reads it: `rope.scaling.type` (linear when absent) and
/// `rope.scaling.factor` (or its old name `rope.scale_linear`). `longrope` scales as `linear`
/// does (llama.cpp's only difference for it is no YaRN ramp); its factors are tensors
/// ([`ROPE_FACTORS_LONG`], [`ROPE_FACTORS_SHORT`]).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(rename_all = "lowercase", tag = "type")]
pub enum RopeScaling {
    None,
    /// Positions divided by `factor` (llama.cpp's freq_scale = 1/factor).
    Linear {
        factor: f32,
    },
    /// YaRN (Qwen2.5 long-context files): low-frequency pairs scaled by 1/factor, high-frequency
    /// ones kept, a ramp between the pairs whose wavelength fits `beta_fast` and `beta_slow`
    /// turns in the original context `orig_ctx`, and cos/sin scaled by 1 + 0.1·ln(factor)
    /// (llama.cpp's defaults: ext_factor 1, beta_fast 32, beta_slow 1).
    Yarn {
        factor: f32,
        orig_ctx: u32,
        beta_fast: f32,
        beta_slow: f32,
    },
}

impl RopeScaling {
    /// The multiplier of every rope angle (llama.cpp's `freq_scale`).
    pub fn freq_scale(self) -> f32 {
        match self {
            RopeScaling::None => 1.0,
            RopeScaling::Linear { factor } | RopeScaling::Yarn { factor, .. } => 1.0 / factor,
        }
    }
}

/// LongRoPE's per-pair frequency divisors (Phi-3 128k, Phi-3.5): the short ones for a context up
/// to the original one, the long ones beyond it (llama.cpp's `get_rope_factors`).
pub const ROPE_FACTORS_LONG: &str = "rope_factors_long.weight";
pub const ROPE_FACTORS_SHORT: &str = "rope_factors_short.weight";

/// The tensor of per-pair rope frequency divisors (Llama 3.x's scaling): rope_dims/2 f32 values;
/// pair i rotates by θ_i / factor_i, as llama.cpp's `ggml_rope_ext` applies its `freq_factors`.
pub const ROPE_FREQS: &str = "rope_freqs.weight";

/// The gated activation of the feed-forward block.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    /// SwiGLU: silu(gate) · up.
    Silu,
    /// GeGLU with the tanh approximation of GELU.
    GeluTanh,
}

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("unsupported architecture {arch:?}: rocmforge runs {}", supported())]
    UnsupportedArch { arch: String },
    #[error("architecture {arch}: required key {key:?} is missing")]
    MissingKey { arch: &'static str, key: String },
    #[error("architecture {arch}: {source}")]
    BadKey {
        arch: &'static str,
        #[source]
        source: GgufError,
    },
    #[error("architecture {arch}: {key} = {value} is invalid: {why}")]
    Invalid { arch: &'static str, key: String, value: String, why: String },
    #[error("architecture {arch}: tensor {name:?} {why}")]
    BadTensor { arch: &'static str, name: String, why: String },
    #[error(transparent)]
    Gguf(#[from] GgufError),
}

fn supported() -> String {
    Arch::ALL.iter().map(|a| a.name()).collect::<Vec<_>>().join(", ")
}

/// The most layers a model may declare (per-layer tables are allocated from this count).
pub const MAX_LAYERS: u32 = 4096;

/// Every hyper-parameter the forward pass needs.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ModelConfig {
    pub arch: Arch,
    pub n_layer: u32,
    /// Hidden size.
    pub n_embd: u32,
    /// Feed-forward inner size.
    pub n_ff: u32,
    pub n_head: u32,
    pub n_head_kv: u32,
    /// Per-head size of queries and keys (`key_length`, else n_embd / n_head).
    pub head_dim: u32,
    /// Per-head size of values (`value_length`, else n_embd / n_head).
    pub head_dim_v: u32,
    /// Leading dimensions of each head that rope rotates (`rope.dimension_count`, else head_dim).
    pub rope_dims: u32,
    pub rope_base: f32,
    /// Rope base on sliding-window layers, where it differs (gemma3: 10 000 beside 1 000 000).
    pub rope_base_swa: Option<f32>,
    pub rope_style: RopeStyle,
    pub rope_scaling: RopeScaling,
    /// `rope.scaling.original_context_length`: the context the model was trained at before its
    /// rope was scaled (YaRN's ramp and LongRoPE's choice of factors depend on it).
    pub rope_scaling_orig_ctx: Option<u32>,
    /// The file's `rope_freqs.weight` divides each rotated pair's frequency (Llama 3.x).
    pub rope_freq_factors: bool,
    /// The file's LongRoPE factors ([`ROPE_FACTORS_SHORT`], [`ROPE_FACTORS_LONG`]) divide each
    /// rotated pair's frequency, chosen by the session's context (phi3).
    pub rope_longrope: bool,
    /// `rope.scaling.attn_factor`: cos and sin are multiplied by it (LongRoPE's magnitude scale).
    pub rope_attn_factor: f32,
    pub rms_eps: f32,
    pub n_ctx_train: u32,
    pub n_vocab: u32,
    /// Window of the sliding-window layers, in tokens.
    pub sliding_window: Option<u32>,
    /// Per layer: does it attend through the sliding window?
    pub swa_layers: Vec<bool>,
    /// A window the file sets that llama.cpp (and so rocmforge) does not apply (phi3's).
    pub ignored_sliding_window: Option<u32>,
    /// Attention logits become `cap·tanh(x/cap)` (gemma2).
    pub attn_logit_softcap: Option<f32>,
    /// Output logits become `cap·tanh(x/cap)` (gemma2).
    pub final_logit_softcap: Option<f32>,
    /// Scale applied to Q·K (1/√head_dim for most models).
    pub attention_scale: f32,
    /// Token embeddings are multiplied by this (gemma: √n_embd).
    pub embedding_scale: Option<f32>,
    pub activation: Activation,
    /// Q, K and V projections carry biases (qwen2).
    pub qkv_bias: bool,
    /// Q and K are RMS-normed per head before rope (gemma3, qwen3).
    pub qk_norm: bool,
    /// Extra RMSNorm after attention and after the feed-forward block (gemma2, gemma3).
    pub post_norms: bool,
    /// No `output.weight`: the output projection reuses `token_embd.weight`.
    pub tied_embeddings: bool,
}

/// Reads keys for one architecture, turning GGUF errors into ones that name it.
pub(super) struct Params<'a> {
    pub md: &'a Metadata,
    pub arch: Arch,
}

impl Params<'_> {
    pub fn key(&self, key: Key) -> String {
        key.name(self.arch.name())
    }

    fn map(&self, e: GgufError) -> ModelError {
        match e {
            GgufError::MissingKey { key } => ModelError::MissingKey { arch: self.arch.name(), key },
            other => ModelError::BadKey { arch: self.arch.name(), source: other },
        }
    }

    pub fn u32(&self, key: Key) -> Result<u32, ModelError> {
        self.md.get_u32(&self.key(key)).map_err(|e| self.map(e))
    }

    pub fn opt_u32(&self, key: Key) -> Result<Option<u32>, ModelError> {
        self.md.opt(&self.key(key), Metadata::get_u32).map_err(|e| self.map(e))
    }

    pub fn f32(&self, key: Key) -> Result<f32, ModelError> {
        self.md.get_f32(&self.key(key)).map_err(|e| self.map(e))
    }

    pub fn opt_f32(&self, key: Key) -> Result<Option<f32>, ModelError> {
        self.md.opt(&self.key(key), Metadata::get_f32).map_err(|e| self.map(e))
    }

    pub fn opt_str(&self, key: Key) -> Result<Option<&str>, ModelError> {
        self.md.opt_str(&self.key(key)).map_err(|e| self.map(e))
    }

    pub fn invalid(&self, key: Key, value: impl ToString, why: impl Into<String>) -> ModelError {
        ModelError::Invalid { arch: self.arch.name(), key: self.key(key), value: value.to_string(), why: why.into() }
    }

    /// A count that must be at least 1.
    pub fn positive(&self, key: Key, value: u32) -> Result<u32, ModelError> {
        if value == 0 {
            return Err(self.invalid(key, 0, "must be at least 1"));
        }
        Ok(value)
    }
}

impl ModelConfig {
    /// Reads the configuration of an opened GGUF file, and checks its layer count against the
    /// blocks the file holds.
    pub fn from_gguf(file: &GgufFile) -> Result<ModelConfig, ModelError> {
        let cfg = Self::read(&file.metadata, |name| file.tensor(name))?;
        let p = Params { md: &file.metadata, arch: cfg.arch };
        validate_values(&cfg, &p, Some(blocks_in_file(file.tensors.iter().map(|t| t.name.as_str()))))?;
        Ok(cfg)
    }

    /// Reads the configuration from metadata, looking tensors up (for the vocabulary size and
    /// tied embeddings) through `tensor`.
    pub fn from_metadata<'t>(
        md: &Metadata,
        tensor: impl Fn(&str) -> Option<&'t TensorInfo>,
    ) -> Result<ModelConfig, ModelError> {
        let cfg = Self::read(md, tensor)?;
        validate_values(&cfg, &Params { md, arch: cfg.arch }, None)?;
        Ok(cfg)
    }

    fn read<'t>(md: &Metadata, tensor: impl Fn(&str) -> Option<&'t TensorInfo>) -> Result<ModelConfig, ModelError> {
        let arch_name = md.get_str("general.architecture")?;
        let arch = Arch::from_name(arch_name).ok_or_else(|| ModelError::UnsupportedArch { arch: arch_name.into() })?;
        let p = Params { md, arch };

        let n_layer = p.positive(Key::BlockCount, p.u32(Key::BlockCount)?)?;
        // Per-layer tables are sized by this count: bound it (llama.cpp's LLAMA_MAX_LAYERS is 512).
        if n_layer > MAX_LAYERS {
            return Err(p.invalid(Key::BlockCount, n_layer, format!("more than {MAX_LAYERS} layers")));
        }
        let n_embd = p.positive(Key::EmbeddingLength, p.u32(Key::EmbeddingLength)?)?;
        let n_ff = p.positive(Key::FeedForwardLength, p.u32(Key::FeedForwardLength)?)?;
        let n_head = p.positive(Key::HeadCount, p.u32(Key::HeadCount)?)?;
        let n_head_kv = p.positive(Key::HeadCountKv, p.opt_u32(Key::HeadCountKv)?.unwrap_or(n_head))?;
        if n_head % n_head_kv != 0 {
            return Err(p.invalid(Key::HeadCountKv, n_head_kv, format!("must divide the {n_head} query heads")));
        }

        // head_dim: key_length / value_length when present, else n_embd / n_head. Never zero.
        let default_head_dim = || {
            if n_embd % n_head != 0 {
                return Err(p.invalid(
                    Key::HeadCount,
                    n_head,
                    format!("does not divide {} = {n_embd} and no key_length is given", p.key(Key::EmbeddingLength)),
                ));
            }
            Ok(n_embd / n_head)
        };
        let head_dim = match p.opt_u32(Key::KeyLength)? {
            Some(k) => p.positive(Key::KeyLength, k)?,
            None => default_head_dim()?,
        };
        let head_dim_v = match p.opt_u32(Key::ValueLength)? {
            Some(v) => p.positive(Key::ValueLength, v)?,
            None => default_head_dim()?,
        };

        // rope dims: dimension_count when present, else the whole head. Zero would silently turn
        // rope off (the head_dim-zero bug that once broke Qwen2 files elsewhere): refuse it.
        let rope_dims = p.opt_u32(Key::RopeDimensionCount)?.unwrap_or(head_dim);
        if rope_dims == 0 || rope_dims % 2 != 0 || rope_dims > head_dim {
            return Err(p.invalid(
                Key::RopeDimensionCount,
                rope_dims,
                format!("must be even, non-zero and at most head_dim ({head_dim})"),
            ));
        }
        let rope_base = p.opt_f32(Key::RopeFreqBase)?.unwrap_or(10_000.0);
        if !(rope_base.is_finite() && rope_base > 0.0) {
            return Err(p.invalid(Key::RopeFreqBase, rope_base, "must be a positive number"));
        }
        let n_ctx_train = p.positive(Key::ContextLength, p.u32(Key::ContextLength)?)?;
        let rope_scaling = read_rope_scaling(&p, n_ctx_train)?;
        let rope_scaling_orig_ctx = p.opt_u32(Key::RopeScalingOrigCtxLen)?;
        let rope_freq_factors = read_rope_freq_factors(&p, &tensor, rope_dims)?;
        let rope_longrope = read_longrope_factors(&p, &tensor, rope_dims)?;
        let rope_attn_factor = p.opt_f32(Key::RopeScalingAttnFactor)?.unwrap_or(1.0);

        let rms_eps = p.f32(Key::RmsEps)?;
        let n_vocab = read_vocab_size(&p, &tensor)?;

        let mut cfg = ModelConfig {
            arch,
            n_layer,
            n_embd,
            n_ff,
            n_head,
            n_head_kv,
            head_dim,
            head_dim_v,
            rope_dims,
            rope_base,
            rope_base_swa: None,
            rope_style: RopeStyle::Normal,
            rope_scaling,
            rope_scaling_orig_ctx,
            rope_freq_factors,
            rope_longrope,
            rope_attn_factor,
            rms_eps,
            n_ctx_train,
            n_vocab,
            sliding_window: None,
            swa_layers: vec![false; n_layer as usize],
            ignored_sliding_window: None,
            attn_logit_softcap: None,
            final_logit_softcap: None,
            attention_scale: 1.0 / (head_dim as f32).sqrt(),
            embedding_scale: None,
            activation: Activation::Silu,
            qkv_bias: false,
            qk_norm: false,
            post_norms: false,
            tied_embeddings: tensor("token_embd.weight").is_some() && tensor("output.weight").is_none(),
        };
        match arch {
            Arch::Llama => super::llama::apply(&mut cfg, &p)?,
            Arch::Qwen2 => super::qwen2::apply(&mut cfg, &p)?,
            Arch::Gemma => super::gemma::apply(&mut cfg, &p)?,
            Arch::Gemma2 => super::gemma2::apply(&mut cfg, &p)?,
            Arch::Gemma3 => super::gemma3::apply(&mut cfg, &p)?,
            Arch::Qwen3 => super::qwen3::apply(&mut cfg, &p)?,
            Arch::Phi3 => super::phi3::apply(&mut cfg, &p)?,
        }
        Ok(cfg)
    }

    /// The context the rope was trained at before scaling (llama.cpp's `n_ctx_orig_yarn`):
    /// `rope.scaling.original_context_length`, else the trained context.
    pub fn rope_orig_ctx(&self) -> u32 {
        self.rope_scaling_orig_ctx.unwrap_or(self.n_ctx_train)
    }

    /// YaRN's ramp and the cos/sin scale, as llama.cpp's context computes them
    /// (llama-context.cpp, ggml's `ggml_rope_yarn_corr_dims`), f32 for f32.
    pub fn rope_ext(&self) -> crate::kernels::RopeExt {
        let RopeScaling::Yarn { orig_ctx, beta_fast, beta_slow, .. } = self.rope_scaling else {
            return crate::kernels::RopeExt { attn_factor: self.rope_attn_factor, ..crate::kernels::RopeExt::NONE };
        };
        // llama.cpp: factor = 1/freq_scale; attn_factor = mscale(factor) / (1 + 0.1 ln factor) ·
        // the file's attn_factor (its kernel multiplies the 1 + 0.1 ln factor back).
        let factor = 1.0 / self.rope_scaling.freq_scale();
        let mscale = if factor <= 1.0 { 1.0 } else { 0.1 * factor.ln() + 1.0 };
        let attn_factor = mscale * (1.0 / (1.0 + 0.1 * factor.ln())) * self.rope_attn_factor;
        let (n_dims, base) = (self.rope_dims as f32, self.rope_base);
        let corr_dim =
            |n_rot: f32| n_dims * (orig_ctx as f32 / (n_rot * 2.0 * std::f32::consts::PI)).ln() / (2.0 * base.ln());
        let low = corr_dim(beta_fast).floor().max(0.0);
        let high = corr_dim(beta_slow).ceil().min(n_dims - 1.0);
        crate::kernels::RopeExt { ext_factor: 1.0, attn_factor, corr_dims: [low, high] }
    }

    /// Query heads per KV head.
    pub fn gqa_ratio(&self) -> u32 {
        self.n_head / self.n_head_kv
    }

    /// Does layer `il` attend through the sliding window?
    pub fn is_swa(&self, il: usize) -> bool {
        self.swa_layers.get(il).copied().unwrap_or(false)
    }

    /// The rope base of layer `il`.
    pub fn rope_base_for_layer(&self, il: usize) -> f32 {
        match self.rope_base_swa {
            Some(base) if self.is_swa(il) => base,
            _ => self.rope_base,
        }
    }

    /// Marks sliding-window layers as llama.cpp's `load_swa_pattern` does: a per-layer bool array
    /// under `sliding_window_pattern`, else a period `n` (from that key, else `default_period`)
    /// where every layer but each n-th is windowed.
    pub(super) fn set_swa_pattern(&mut self, p: &Params, default_period: u32) -> Result<(), ModelError> {
        let key = p.key(Key::SlidingWindowPattern);
        if let Some(crate::gguf::Value::Array(crate::gguf::Array::Bool(flags))) = p.md.get(&key) {
            if flags.len() != self.n_layer as usize {
                return Err(p.invalid(
                    Key::SlidingWindowPattern,
                    flags.len(),
                    format!("needs one flag per layer ({})", self.n_layer),
                ));
            }
            self.swa_layers = flags.clone();
            return Ok(());
        }
        let period = p.opt_u32(Key::SlidingWindowPattern)?.unwrap_or(default_period);
        self.swa_layers = (0..self.n_layer).map(|il| period == 0 || il % period < period - 1).collect();
        Ok(())
    }
}

/// How many `blk.N.` layers the file's tensors hold: one more than the highest N.
fn blocks_in_file<'a>(names: impl Iterator<Item = &'a str>) -> u64 {
    names
        .filter_map(|n| n.strip_prefix("blk.")?.split('.').next()?.parse::<u64>().ok())
        .map(|n| n + 1)
        .max()
        .unwrap_or(0)
}

/// The values the forward pass runs with, checked once they are all read (issue 12): a NaN,
/// infinite, zero or negative epsilon, rope base, scale or soft-cap would run and print NaN or
/// garbage with exit code 0; a layer count other than the blocks the file holds would silently
/// skip layers. `blocks_in_file`: `None` where no tensors are at hand (described models).
fn validate_values(cfg: &ModelConfig, p: &Params, blocks_in_file: Option<u64>) -> Result<(), ModelError> {
    let positive = |key: Key, v: f32| {
        if v.is_finite() && v > 0.0 {
            Ok(())
        } else {
            Err(p.invalid(key, v, "must be a finite number greater than 0"))
        }
    };
    positive(Key::RmsEps, cfg.rms_eps)?;
    if cfg.rms_eps >= 1.0 {
        return Err(p.invalid(Key::RmsEps, cfg.rms_eps, "must be below 1 (it is added to a mean square)"));
    }
    positive(Key::RopeFreqBase, cfg.rope_base)?;
    if let Some(base) = cfg.rope_base_swa {
        positive(Key::RopeFreqBaseSwa, base)?;
    }
    if let RopeScaling::Linear { factor } | RopeScaling::Yarn { factor, .. } = cfg.rope_scaling {
        positive(Key::RopeScalingFactor, factor)?;
    }
    positive(Key::RopeScalingAttnFactor, cfg.rope_attn_factor)?;
    if let Some(cap) = cfg.attn_logit_softcap {
        positive(Key::AttnLogitSoftcapping, cap)?;
    }
    if let Some(cap) = cfg.final_logit_softcap {
        positive(Key::FinalLogitSoftcapping, cap)?;
    }
    if let Some(window) = cfg.sliding_window {
        p.positive(Key::SlidingWindow, window)?;
    }
    let scales_ok = cfg.attention_scale.is_finite()
        && cfg.attention_scale > 0.0
        && cfg.embedding_scale.is_none_or(|s| s.is_finite() && s > 0.0);
    if !scales_ok {
        return Err(p.invalid(Key::EmbeddingLength, cfg.n_embd, "gives a non-finite attention or embedding scale"));
    }
    if cfg.swa_layers.len() != cfg.n_layer as usize {
        return Err(p.invalid(Key::SlidingWindowPattern, cfg.swa_layers.len(), "needs one flag per layer"));
    }
    // A file with no layer tensors at all is a vocabulary or metadata file (llama.cpp's
    // `vocab_only`); loading weights from it fails on the first missing tensor.
    if let Some(blocks) = blocks_in_file.filter(|&b| b > 0) {
        if blocks != cfg.n_layer as u64 {
            return Err(p.invalid(
                Key::BlockCount,
                cfg.n_layer,
                format!("the file holds {blocks} layers of tensors (blk.0 … blk.{})", blocks.saturating_sub(1)),
            ));
        }
    }
    Ok(())
}

/// The scaling llama.cpp would apply (llama-model.cpp `load_hparams`, llama-context.cpp): the type
/// defaults to linear, a missing or zero factor means 1, and `none` never scales. Anything that
/// changes the angles in a way rocmforge does not compute is an error naming the key.
fn read_rope_scaling(p: &Params, n_ctx_train: u32) -> Result<RopeScaling, ModelError> {
    let factor = match p.opt_f32(Key::RopeScalingFactor)? {
        Some(f) => Some((Key::RopeScalingFactor, f)),
        None => p.opt_f32(Key::RopeScaleLinear)?.map(|f| (Key::RopeScaleLinear, f)),
    };
    if let Some((key, f)) = factor {
        if !(f.is_finite() && f >= 0.0) {
            return Err(p.invalid(key, f, "must be a positive number (or 0 for none)"));
        }
    }
    // A factor of 1 (or 0, llama.cpp's "unset") leaves every angle as it is, whatever the type
    // (YaRN's too, to a rounding: its ramp then mixes two equal angles and its magnitude scale is
    // 1 + 0.1·ln 1).
    let factor = factor.map(|(_, f)| f).filter(|&f| f != 0.0 && f != 1.0);
    // llama.cpp reads YaRN's tuning keys for DeepSeek-like architectures only: for ours it runs
    // its defaults whatever the file says, so another value is refused rather than ignored.
    for (key, default) in [
        (Key::RopeScalingYarnLogMul, 0.0),
        (Key::RopeScalingYarnExtFactor, 1.0),
        (Key::RopeScalingYarnAttnFactor, 1.0),
        (Key::RopeScalingYarnBetaFast, 32.0),
        (Key::RopeScalingYarnBetaSlow, 1.0),
    ] {
        if let Some(v) = p.opt_f32(key)? {
            if v != default {
                return Err(p.invalid(
                    key,
                    v,
                    format!("is not implemented (llama.cpp runs {default} for this architecture)"),
                ));
            }
        }
    }
    let unimplemented = |ty: &str, why: String| Err(p.invalid(Key::RopeScalingType, ty, why));
    match (p.opt_str(Key::RopeScalingType)?.unwrap_or("linear"), factor) {
        ("none", _) | ("linear" | "yarn" | "longrope", None) => Ok(RopeScaling::None),
        ("linear" | "longrope", Some(factor)) => Ok(RopeScaling::Linear { factor }),
        ("yarn", Some(factor)) => {
            let orig_ctx = p.opt_u32(Key::RopeScalingOrigCtxLen)?.unwrap_or(n_ctx_train);
            p.positive(Key::RopeScalingOrigCtxLen, orig_ctx)?;
            Ok(RopeScaling::Yarn { factor, orig_ctx, beta_fast: 32.0, beta_slow: 1.0 })
        }
        (other, _) => {
            unimplemented(other, "unknown rope scaling (llama.cpp knows none, linear, yarn, longrope)".into())
        }
    }
}

/// Are LongRoPE's factor tensors present, both, and shaped as llama.cpp requires (rope_dims/2
/// f32 each)? Only phi3's llama.cpp graph reads them.
fn read_longrope_factors<'t>(
    p: &Params,
    tensor: &impl Fn(&str) -> Option<&'t TensorInfo>,
    rope_dims: u32,
) -> Result<bool, ModelError> {
    let (long, short) = (tensor(ROPE_FACTORS_LONG), tensor(ROPE_FACTORS_SHORT));
    if long.is_none() && short.is_none() {
        return Ok(false);
    }
    let bad = |name: &str, why: String| Err(ModelError::BadTensor { arch: p.arch.name(), name: name.into(), why });
    if p.arch != Arch::Phi3 {
        let name = if long.is_some() { ROPE_FACTORS_LONG } else { ROPE_FACTORS_SHORT };
        return bad(name, format!("holds LongRoPE factors, which the {} architecture does not use", p.arch.name()));
    }
    for (name, t, other) in
        [(ROPE_FACTORS_LONG, long, ROPE_FACTORS_SHORT), (ROPE_FACTORS_SHORT, short, ROPE_FACTORS_LONG)]
    {
        let Some(t) = t else {
            return bad(other, format!("comes without {name}: LongRoPE needs both the short and the long factors"));
        };
        if t.ty != crate::dtype::GgmlType::F32 {
            return bad(name, format!("is {}; LongRoPE factors must be F32", t.ty.name()));
        }
        let pairs = u64::from(rope_dims / 2);
        if t.shape.first() != Some(&pairs) || t.shape.iter().skip(1).any(|&d| d != 1) {
            return bad(name, format!("has shape {:?}; rope over {rope_dims} dims needs {pairs} factors", t.shape));
        }
    }
    Ok(true)
}

/// Is `rope_freqs.weight` present, and shaped as llama.cpp requires (rope_dims/2 f32)? Only the
/// architectures whose llama.cpp graph passes it to rope may carry it.
fn read_rope_freq_factors<'t>(
    p: &Params,
    tensor: &impl Fn(&str) -> Option<&'t TensorInfo>,
    rope_dims: u32,
) -> Result<bool, ModelError> {
    let Some(t) = tensor(ROPE_FREQS) else { return Ok(false) };
    let bad = |why: String| Err(ModelError::BadTensor { arch: p.arch.name(), name: ROPE_FREQS.into(), why });
    if p.arch != Arch::Llama {
        return bad(format!("holds rope frequency factors, which the {} architecture does not use", p.arch.name()));
    }
    if t.ty != crate::dtype::GgmlType::F32 {
        return bad(format!("is {}; rope frequency factors must be F32", t.ty.name()));
    }
    let pairs = u64::from(rope_dims / 2);
    if t.shape.first() != Some(&pairs) || t.shape.iter().skip(1).any(|&d| d != 1) {
        return bad(format!("has shape {:?}; rope over {rope_dims} dims needs {pairs} factors", t.shape));
    }
    Ok(true)
}

/// `{arch}.vocab_size`, else the tokenizer's token count, else the embedding's row count.
fn read_vocab_size<'t>(p: &Params, tensor: &impl Fn(&str) -> Option<&'t TensorInfo>) -> Result<u32, ModelError> {
    if let Some(n) = p.opt_u32(Key::VocabSize)? {
        return p.positive(Key::VocabSize, n);
    }
    if let Some(tokens) = p.md.get("tokenizer.ggml.tokens").and_then(|v| v.as_array()) {
        return u32::try_from(tokens.len()).map_err(|_| p.invalid(Key::VocabSize, tokens.len(), "too many tokens"));
    }
    if let Some(embd) = tensor("token_embd.weight") {
        if let Some(&rows) = embd.shape.get(1) {
            return u32::try_from(rows).map_err(|_| p.invalid(Key::VocabSize, rows, "too many rows"));
        }
    }
    Err(ModelError::MissingKey { arch: p.arch.name(), key: p.key(Key::VocabSize) })
}
