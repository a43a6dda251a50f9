//! Sampling: penalties (repetition, presence, frequency), then top-k, top-p and min-p filtering,
//! then temperature and a seeded draw (llama.cpp's default order). Temperature 0 is greedy. The
//! same seed gives the same tokens.

#[derive(Clone, Debug, PartialEq)]
pub struct SamplerConfig {
    /// 0: greedy.
    pub temperature: f32,
    /// 0: off.
    pub top_k: usize,
    /// 1.0: off.
    pub top_p: f32,
    /// 0.0: off.
    pub min_p: f32,
    /// 1.0: off. Logits of recent tokens are divided (if positive) or multiplied by it.
    pub repeat_penalty: f32,
    /// How many recent tokens the penalties look at.
    pub repeat_last_n: usize,
    /// 0.0: off. Subtracted once from the logit of every token among the recent ones (OpenAI's
    /// `presence_penalty`, -2 to 2).
    pub presence_penalty: f32,
    /// 0.0: off. Subtracted per occurrence among the recent tokens (OpenAI's
    /// `frequency_penalty`, -2 to 2).
    pub frequency_penalty: f32,
    pub seed: u64,
}

/// A sampling setting outside its range.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{name} = {value} is out of range: {expected}")]
pub struct SamplerError {
    /// The setting, as `SamplerConfig` names it (`temperature`, `top_p`, …).
    pub name: &'static str,
    pub value: f32,
    pub expected: &'static str,
}

impl Default for SamplerConfig {
    fn default() -> Self {
        SamplerConfig {
            temperature: 0.8,
            top_k: 40,
            top_p: 0.95,
            min_p: 0.05,
            repeat_penalty: 1.0,
            repeat_last_n: 64,
            presence_penalty: 0.0,
            frequency_penalty: 0.0,
            seed: 0,
        }
    }
}

impl SamplerConfig {
    pub fn greedy() -> Self {
        SamplerConfig { temperature: 0.0, ..Default::default() }
    }

    /// Checks every setting is finite and in its range (a NaN temperature would otherwise sample
    /// garbage silently).
    pub fn validate(&self) -> Result<(), SamplerError> {
        let check = |name, value: f32, ok: bool, expected| {
            if value.is_finite() && ok {
                Ok(())
            } else {
                Err(SamplerError { name, value, expected })
            }
        };
        check("temperature", self.temperature, self.temperature >= 0.0, "0 (greedy) or more")?;
        check("top_p", self.top_p, self.top_p > 0.0 && self.top_p <= 1.0, "above 0 and at most 1 (1: off)")?;
        check("min_p", self.min_p, (0.0..=1.0).contains(&self.min_p), "0 (off) to 1")?;
        check("repeat_penalty", self.repeat_penalty, self.repeat_penalty > 0.0, "above 0 (1: off)")?;
        check("presence_penalty", self.presence_penalty, (-2.0..=2.0).contains(&self.presence_penalty), "-2 to 2")?;
        check("frequency_penalty", self.frequency_penalty, (-2.0..=2.0).contains(&self.frequency_penalty), "-2 to 2")?;
        Ok(())
    }
}

pub struct Sampler {
    pub config: SamplerConfig,
    state: u64,
}

impl Sampler {
    pub fn new(config: SamplerConfig) -> Sampler {
        // SplitMix64 of the seed, so that seed 0 is a fine seed too.
        let state = config.seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        Sampler { config, state }
    }

    /// xorshift64*: small, fast, reproducible.
    fn next_f32(&mut self) -> f32 {
        let mut x = self.state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.state = x;
        ((x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40) as f32) / (1u64 << 24) as f32
    }

    /// The next token given the logits and the tokens so far.
    pub fn sample(&mut self, logits: &[f32], history: &[u32]) -> u32 {
        let c = self.config.clone();
        let mut cand: Vec<(u32, f32)> = logits.iter().enumerate().map(|(i, &l)| (i as u32, l)).collect();
        if c.repeat_penalty != 1.0 || c.presence_penalty != 0.0 || c.frequency_penalty != 0.0 {
            // As llama.cpp's penalties sampler: each distinct recent token once for the repeat
            // and presence penalties, per occurrence for the frequency penalty.
            let recent = &history[history.len().saturating_sub(c.repeat_last_n)..];
            let mut counts = std::collections::HashMap::<u32, usize>::new();
            for &t in recent {
                *counts.entry(t).or_default() += 1;
            }
            for (&t, &n) in &counts {
                if let Some(e) = cand.get_mut(t as usize) {
                    e.1 = if e.1 > 0.0 { e.1 / c.repeat_penalty } else { e.1 * c.repeat_penalty };
                    e.1 -= n as f32 * c.frequency_penalty + c.presence_penalty;
                }
            }
        }
        if c.temperature <= 0.0 {
            return cand.iter().fold(cand[0], |best, &e| if e.1 > best.1 { e } else { best }).0;
        }
        cand.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        if c.top_k > 0 {
            cand.truncate(c.top_k.max(1));
        }
        let probs = |cand: &[(u32, f32)], temp: f32| -> Vec<f32> {
            let max = cand[0].1;
            let e: Vec<f32> = cand.iter().map(|&(_, l)| ((l - max) / temp).exp()).collect();
            let s: f32 = e.iter().sum();
            e.into_iter().map(|v| v / s).collect()
        };
        if c.top_p < 1.0 {
            let p = probs(&cand, 1.0);
            let mut cum = 0.0;
            let mut keep = cand.len();
            for (i, &pi) in p.iter().enumerate() {
                cum += pi;
                if cum >= c.top_p {
                    keep = i + 1;
                    break;
                }
            }
            cand.truncate(keep.max(1));
        }
        if c.min_p > 0.0 {
            let p = probs(&cand, 1.0);
            let floor = p[0] * c.min_p;
            let keep = p.iter().take_while(|&&pi| pi >= floor).count();
            cand.truncate(keep.max(1));
        }
        let p = probs(&cand, c.temperature);
        let r = self.next_f32();
        let mut cum = 0.0;
        for (i, &pi) in p.iter().enumerate() {
            cum += pi;
            if r < cum {
                return cand[i].0;
            }
        }
        cand[cand.len() - 1].0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_takes_the_largest_logit() {
        let mut s = Sampler::new(SamplerConfig::greedy());
        assert_eq!(s.sample(&[0.1, 3.0, -1.0, 2.9], &[]), 1);
    }

    #[test]
    fn repeat_penalty_can_change_the_greedy_choice() {
        let mut s = Sampler::new(SamplerConfig { repeat_penalty: 1.5, ..SamplerConfig::greedy() });
        assert_eq!(s.sample(&[0.1, 3.0, -1.0, 2.9], &[1]), 3);
    }

    #[test]
    fn a_token_seen_twice_is_penalised_once_and_frequency_counts_occurrences() {
        // Token 1 appears twice: repeat penalty 2 halves it once (3.0 -> 1.5, below token 3's 1.6).
        let mut s = Sampler::new(SamplerConfig { repeat_penalty: 2.0, ..SamplerConfig::greedy() });
        assert_eq!(s.sample(&[0.1, 3.0, -1.0, 1.6], &[1, 1]), 3);
        let mut s = Sampler::new(SamplerConfig { repeat_penalty: 2.0, ..SamplerConfig::greedy() });
        assert_eq!(s.sample(&[0.1, 3.0, -1.0, 1.4], &[1, 1]), 1, "halved once, not twice");
        // Frequency 0.6 per occurrence: 3.0 - 1.2 = 1.8 stays above 1.7; presence 0.2 more sinks it.
        let freq = SamplerConfig { frequency_penalty: 0.6, ..SamplerConfig::greedy() };
        assert_eq!(Sampler::new(freq.clone()).sample(&[0.0, 3.0, 0.0, 1.7], &[1, 1]), 1);
        let both = SamplerConfig { presence_penalty: 0.2, ..freq };
        assert_eq!(Sampler::new(both).sample(&[0.0, 3.0, 0.0, 1.7], &[1, 1]), 3);
    }

    #[test]
    fn settings_out_of_range_are_named() {
        assert!(SamplerConfig::default().validate().is_ok());
        let bad = |c: SamplerConfig| c.validate().unwrap_err().name;
        assert_eq!(bad(SamplerConfig { temperature: f32::NAN, ..Default::default() }), "temperature");
        assert_eq!(bad(SamplerConfig { temperature: -0.5, ..Default::default() }), "temperature");
        assert_eq!(bad(SamplerConfig { top_p: 0.0, ..Default::default() }), "top_p");
        assert_eq!(bad(SamplerConfig { top_p: 1.5, ..Default::default() }), "top_p");
        assert_eq!(bad(SamplerConfig { min_p: -0.1, ..Default::default() }), "min_p");
        assert_eq!(bad(SamplerConfig { repeat_penalty: 0.0, ..Default::default() }), "repeat_penalty");
        assert_eq!(bad(SamplerConfig { repeat_penalty: f32::INFINITY, ..Default::default() }), "repeat_penalty");
        assert_eq!(bad(SamplerConfig { presence_penalty: 2.5, ..Default::default() }), "presence_penalty");
        assert_eq!(bad(SamplerConfig { frequency_penalty: -3.0, ..Default::default() }), "frequency_penalty");
    }

    #[test]
    fn the_same_seed_draws_the_same_tokens_and_filters_hold() {
        // Distinct values (37 is invertible mod 101), so "the best" is one token.
        let logits: Vec<f32> = (0..100).map(|i| ((i * 37) % 101) as f32 / 10.0).collect();
        let cfg = SamplerConfig { temperature: 1.0, top_k: 5, top_p: 1.0, min_p: 0.0, seed: 42, ..Default::default() };
        let draw = |cfg: &SamplerConfig| {
            let mut s = Sampler::new(cfg.clone());
            (0..200).map(|_| s.sample(&logits, &[])).collect::<Vec<_>>()
        };
        let a = draw(&cfg);
        assert_eq!(a, draw(&cfg), "reproducible");
        assert_ne!(a, draw(&SamplerConfig { seed: 43, ..cfg.clone() }), "another seed, another draw");
        let mut top5: Vec<u32> = (0..100u32).collect();
        top5.sort_by(|&x, &y| logits[y as usize].total_cmp(&logits[x as usize]).then(x.cmp(&y)));
        top5.truncate(5);
        assert!(a.iter().all(|t| top5.contains(t)), "top-k keeps only the 5 best");
        let distinct: std::collections::BTreeSet<_> = a.iter().collect();
        assert!(distinct.len() > 1, "temperature 1 samples more than one token");
        let strict = draw(&SamplerConfig { min_p: 0.99, ..cfg.clone() });
        assert!(strict.iter().all(|&t| t == top5[0]), "min-p 0.99 leaves the best token only");
    }
}
