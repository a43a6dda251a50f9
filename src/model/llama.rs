//! `llama`: LLaMA 2/3, Mistral, SmolLM. Interleaved ("normal") rope, SwiGLU, no biases.
//!
//! `attention.sliding_window` (Mistral 7B v0.1's 4096): llama.cpp's llama graph attends over the
//! whole context whatever the file says, and so does rocmforge, to compute what llama.cpp does;
//! `inspect` says so.

use super::config::{Activation, ModelConfig, ModelError, Params, RopeStyle};
use super::keys::Key;

pub(super) fn apply(cfg: &mut ModelConfig, p: &Params) -> Result<(), ModelError> {
    cfg.rope_style = RopeStyle::Normal;
    cfg.activation = Activation::Silu;
    cfg.ignored_sliding_window = p.opt_u32(Key::SlidingWindow)?.filter(|&w| w > 0);
    Ok(())
}
