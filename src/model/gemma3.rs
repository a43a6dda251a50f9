//! `gemma3`: Gemma 2's block with per-head Q/K norms instead of attention soft-capping; five
//! windowed layers in six, and those layers use their own rope base (10 000 unless the file says).

use super::config::{ModelConfig, ModelError, Params};
use super::gemma::{apply_gemma_common, gemma_attention_scale};
use super::keys::Key;

pub(super) fn apply(cfg: &mut ModelConfig, p: &Params) -> Result<(), ModelError> {
    apply_gemma_common(cfg);
    cfg.post_norms = true;
    cfg.qk_norm = true;
    match p.opt_u32(Key::SlidingWindow)? {
        Some(window) if window > 0 => {
            cfg.sliding_window = Some(window);
            cfg.set_swa_pattern(p, 6)?;
            cfg.rope_base_swa = Some(p.opt_f32(Key::RopeFreqBaseSwa)?.unwrap_or(10_000.0));
        }
        _ => {}
    }
    cfg.final_logit_softcap = p.opt_f32(Key::FinalLogitSoftcapping)?.filter(|&c| c != 0.0);
    cfg.attention_scale = gemma_attention_scale(cfg, 62);
    Ok(())
}
