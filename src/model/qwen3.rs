//! `qwen3`: qwen2's block without the Q/K/V biases, with Q and K RMS-normed per head before rope
//! (`attn_q_norm` / `attn_k_norm`, one head_dim-wide weight each), NEOX rope. Heads are often
//! wider than n_embd / n_head (Qwen3-0.6B: 16 heads of 128 over a hidden size of 1024), which the
//! file says with `attention.key_length`.

use super::config::{Activation, ModelConfig, ModelError, Params, RopeStyle};

pub(super) fn apply(cfg: &mut ModelConfig, _p: &Params) -> Result<(), ModelError> {
    cfg.rope_style = RopeStyle::Neox;
    cfg.activation = Activation::Silu;
    cfg.qk_norm = true;
    Ok(())
}
