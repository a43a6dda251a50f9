//! `phi3`: Phi-3 / Phi-3.5 mini and medium. The llama block with Q, K and V fused into one
//! `attn_qkv` tensor (q rows, then k, then v) and gate and up stacked in one `ffn_up` of 2·n_ff
//! rows (gate first: llama.cpp's swiglu takes silu of the first half), NEOX rope, no biases.
//! The graph reads the fused tensors as row ranges (views), so no kernel knows of them.
//!
//! `attention.sliding_window`: llama.cpp disables Phi-3's window ("Phi SWA is currently
//! disabled", llama-model.cpp, PR 13676) and so does rocmforge, to compute what llama.cpp does;
//! `inspect` says so. LongRoPE (`rope_factors_short/long.weight`, `rope.scaling.attn_factor`) is
//! read in config.rs.

use super::config::{Activation, ModelConfig, ModelError, Params, RopeStyle};
use super::keys::Key;

pub(super) fn apply(cfg: &mut ModelConfig, p: &Params) -> Result<(), ModelError> {
    cfg.rope_style = RopeStyle::Neox;
    cfg.activation = Activation::Silu;
    // Read (so a malformed value is still an error), then left off as llama.cpp leaves it.
    cfg.ignored_sliding_window = p.opt_u32(Key::SlidingWindow)?.filter(|&w| w > 0);
    Ok(())
}
