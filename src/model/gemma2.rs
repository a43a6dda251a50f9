//! `gemma2`: Gemma with every other layer windowed (4096 tokens by default), soft-capped
//! attention (50) and output (30) logits, and post-attention / post-FFN norms.

use super::config::{ModelConfig, ModelError, Params};
use super::gemma::{apply_gemma_common, gemma_attention_scale};
use super::keys::Key;

pub(super) fn apply(cfg: &mut ModelConfig, p: &Params) -> Result<(), ModelError> {
    apply_gemma_common(cfg);
    cfg.post_norms = true;
    cfg.sliding_window = Some(p.opt_u32(Key::SlidingWindow)?.unwrap_or(4096));
    cfg.set_swa_pattern(p, 2)?;
    cfg.rope_base_swa = Some(p.opt_f32(Key::RopeFreqBaseSwa)?.unwrap_or(cfg.rope_base));
    cfg.attn_logit_softcap = Some(p.opt_f32(Key::AttnLogitSoftcapping)?.unwrap_or(50.0));
    cfg.final_logit_softcap = Some(p.opt_f32(Key::FinalLogitSoftcapping)?.unwrap_or(30.0));
    cfg.attention_scale = gemma_attention_scale(cfg, 46);
    Ok(())
}
