//! The one table of GGUF hyper-parameter keys. `%s` stands for the architecture name, as in
//! llama.cpp's `llama-arch.cpp`, so each key is spelled once for every family.

/// A hyper-parameter the forward pass needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Key {
    ContextLength,
    EmbeddingLength,
    BlockCount,
    FeedForwardLength,
    HeadCount,
    HeadCountKv,
    KeyLength,
    ValueLength,
    RmsEps,
    RopeDimensionCount,
    RopeFreqBase,
    RopeFreqBaseSwa,
    RopeScalingType,
    RopeScalingFactor,
    /// The factor's old name (llama.cpp still reads it when `rope.scaling.factor` is absent).
    RopeScaleLinear,
    RopeScalingOrigCtxLen,
    RopeScalingAttnFactor,
    /// YaRN's tuning keys: llama.cpp reads them for DeepSeek-like architectures only, so for ours
    /// any value but its default is refused (it would change nothing in llama.cpp).
    RopeScalingYarnLogMul,
    RopeScalingYarnExtFactor,
    RopeScalingYarnAttnFactor,
    RopeScalingYarnBetaFast,
    RopeScalingYarnBetaSlow,
    SlidingWindow,
    SlidingWindowPattern,
    AttnLogitSoftcapping,
    FinalLogitSoftcapping,
    VocabSize,
}

const TABLE: &[(Key, &str)] = &[
    (Key::ContextLength, "%s.context_length"),
    (Key::EmbeddingLength, "%s.embedding_length"),
    (Key::BlockCount, "%s.block_count"),
    (Key::FeedForwardLength, "%s.feed_forward_length"),
    (Key::HeadCount, "%s.attention.head_count"),
    (Key::HeadCountKv, "%s.attention.head_count_kv"),
    (Key::KeyLength, "%s.attention.key_length"),
    (Key::ValueLength, "%s.attention.value_length"),
    (Key::RmsEps, "%s.attention.layer_norm_rms_epsilon"),
    (Key::RopeDimensionCount, "%s.rope.dimension_count"),
    (Key::RopeFreqBase, "%s.rope.freq_base"),
    (Key::RopeFreqBaseSwa, "%s.rope.freq_base_swa"),
    (Key::RopeScalingType, "%s.rope.scaling.type"),
    (Key::RopeScalingFactor, "%s.rope.scaling.factor"),
    (Key::RopeScaleLinear, "%s.rope.scale_linear"),
    (Key::RopeScalingOrigCtxLen, "%s.rope.scaling.original_context_length"),
    (Key::RopeScalingAttnFactor, "%s.rope.scaling.attn_factor"),
    (Key::RopeScalingYarnLogMul, "%s.rope.scaling.yarn_log_multiplier"),
    (Key::RopeScalingYarnExtFactor, "%s.rope.scaling.yarn_ext_factor"),
    (Key::RopeScalingYarnAttnFactor, "%s.rope.scaling.yarn_attn_factor"),
    (Key::RopeScalingYarnBetaFast, "%s.rope.scaling.yarn_beta_fast"),
    (Key::RopeScalingYarnBetaSlow, "%s.rope.scaling.yarn_beta_slow"),
    (Key::SlidingWindow, "%s.attention.sliding_window"),
    (Key::SlidingWindowPattern, "%s.attention.sliding_window_pattern"),
    (Key::AttnLogitSoftcapping, "%s.attn_logit_softcapping"),
    (Key::FinalLogitSoftcapping, "%s.final_logit_softcapping"),
    (Key::VocabSize, "%s.vocab_size"),
];

impl Key {
    /// The key's full name for architecture `arch` (`llama.attention.head_count`).
    pub fn name(self, arch: &str) -> String {
        let template = TABLE.iter().find(|(k, _)| *k == self).map(|(_, t)| *t).expect("every Key is in TABLE");
        template.replace("%s", arch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_has_one_template() {
        for (key, _) in TABLE {
            assert_eq!(TABLE.iter().filter(|(k, _)| k == key).count(), 1, "{key:?}");
        }
        assert_eq!(Key::HeadCountKv.name("qwen2"), "qwen2.attention.head_count_kv");
    }
}
