//! `llama`: LLaMA 2/3, Mistral, SmolLM. Interleaved ("normal") rope, SwiGLU, no biases.

use super::config::{Activation, ModelConfig, ModelError, Params, RopeStyle};

pub(super) fn apply(cfg: &mut ModelConfig, _p: &Params) -> Result<(), ModelError> {
    cfg.rope_style = RopeStyle::Normal;
    cfg.activation = Activation::Silu;
    Ok(())
}
