//! `qwen2`: llama's block with biases on Q, K and V, and NEOX rope.

use super::config::{Activation, ModelConfig, ModelError, Params, RopeStyle};

pub(super) fn apply(cfg: &mut ModelConfig, _p: &Params) -> Result<(), ModelError> {
    cfg.rope_style = RopeStyle::Neox;
    cfg.activation = Activation::Silu;
    cfg.qkv_bias = true;
    Ok(())
}
