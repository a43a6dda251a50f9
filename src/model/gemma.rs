//! `gemma` (Gemma 1): NEOX rope, GeGLU, embeddings scaled by √n_embd, tied output.
//!
//! Gemma's RMSNorm multiplies by (1 + w); llama.cpp's converter already adds the 1 to every norm
//! weight it writes, so GGUF gemma norms are applied as plain RMSNorm.

use super::config::{Activation, ModelConfig, ModelError, Params, RopeStyle};

pub(super) fn apply(cfg: &mut ModelConfig, _p: &Params) -> Result<(), ModelError> {
    apply_gemma_common(cfg);
    Ok(())
}

/// What every Gemma generation shares.
pub(super) fn apply_gemma_common(cfg: &mut ModelConfig) {
    cfg.rope_style = RopeStyle::Neox;
    cfg.activation = Activation::GeluTanh;
    cfg.embedding_scale = Some((cfg.n_embd as f32).sqrt());
}

/// Gemma 2 and 3 scale queries by 1/√(n_embd / n_head) on their 27B models and by 1/√head_dim on
/// the others (gemma_pytorch `config.py`, as llama.cpp follows it). 27B is told by layer count.
pub(super) fn gemma_attention_scale(cfg: &ModelConfig, layers_of_27b: u32) -> f32 {
    if cfg.n_layer == layers_of_27b {
        1.0 / ((cfg.n_embd / cfg.n_head) as f32).sqrt()
    } else {
        1.0 / (cfg.head_dim as f32).sqrt()
    }
}
