//! Text generation: prefill a prompt, then sample one token at a time, streaming text through an
//! iterator (or a callback). Stops at EOS / end of turn, or after `max_tokens`.

use std::time::{Duration, Instant};

use super::sampler::{Sampler, SamplerConfig};
use super::{ExecError, Forward};
use crate::tokenizer::Tokenizer;

#[derive(Clone, Debug)]
pub struct GenerateParams {
    pub max_tokens: usize,
    pub sampler: SamplerConfig,
}

/// One generated token and the text it completes (may be empty while a UTF-8 character is split
/// across tokens).
#[derive(Clone, Debug, PartialEq)]
pub struct Generated {
    pub id: u32,
    pub text: String,
}

/// Timings of a generation so far.
#[derive(Clone, Debug, Default)]
pub struct GenerationStats {
    pub prompt_tokens: usize,
    pub prefill: Duration,
    pub generated: usize,
    pub decode: Duration,
}

impl GenerationStats {
    pub fn prefill_tokens_per_s(&self) -> f64 {
        self.prompt_tokens as f64 / self.prefill.as_secs_f64().max(1e-9)
    }
    /// Decode passes per second (the first generated token comes from the prefill).
    pub fn decode_tokens_per_s(&self) -> f64 {
        self.generated.saturating_sub(1) as f64 / self.decode.as_secs_f64().max(1e-9)
    }
}

pub struct Generation<'a> {
    session: &'a mut dyn Forward,
    tokenizer: &'a Tokenizer,
    sampler: Sampler,
    history: Vec<u32>,
    logits: Vec<f32>,
    /// A sampled token not yet fed back (fed at the next step, so no pass is wasted at the end).
    pending: Option<u32>,
    remaining: usize,
    utf8: Vec<u8>,
    finished: bool,
    pub stats: GenerationStats,
}

impl<'a> Generation<'a> {
    /// Prefills `prompt` into the session and gets ready to sample.
    pub fn new(
        session: &'a mut dyn Forward,
        tokenizer: &'a Tokenizer,
        prompt: &[u32],
        params: GenerateParams,
    ) -> Result<Self, ExecError> {
        let start = Instant::now();
        let logits = session.forward(prompt)?.to_vec();
        let stats = GenerationStats { prompt_tokens: prompt.len(), prefill: start.elapsed(), ..Default::default() };
        Ok(Generation {
            session,
            tokenizer,
            sampler: Sampler::new(params.sampler),
            history: prompt.to_vec(),
            logits,
            pending: None,
            remaining: params.max_tokens,
            utf8: Vec::new(),
            finished: false,
            stats,
        })
    }

    fn step(&mut self) -> Result<Option<Generated>, ExecError> {
        if self.finished || self.remaining == 0 {
            return Ok(None);
        }
        if let Some(prev) = self.pending.take() {
            let start = Instant::now();
            self.logits = self.session.forward(&[prev])?.to_vec();
            self.stats.decode += start.elapsed();
        }
        let id = self.sampler.sample(&self.logits, &self.history);
        if self.tokenizer.is_end(id) {
            self.finished = true;
            return Ok(None);
        }
        self.history.push(id);
        self.remaining -= 1;
        self.stats.generated += 1;
        self.pending = Some(id);
        self.utf8.extend(self.tokenizer.piece(id, false));
        let valid = match std::str::from_utf8(&self.utf8) {
            Ok(s) => s.len(),
            Err(e) if e.error_len().is_none() => e.valid_up_to(), // an incomplete character: wait
            Err(_) => self.utf8.len(),                            // invalid bytes: flush lossily
        };
        let text = String::from_utf8_lossy(&self.utf8[..valid]).into_owned();
        self.utf8.drain(..valid);
        Ok(Some(Generated { id, text }))
    }

    /// Runs to the end, calling `on_token` for each token.
    pub fn run(mut self, mut on_token: impl FnMut(&Generated)) -> Result<GenerationStats, ExecError> {
        while let Some(t) = self.step()? {
            on_token(&t);
        }
        Ok(self.stats)
    }
}

impl Iterator for Generation<'_> {
    type Item = Result<Generated, ExecError>;
    fn next(&mut self) -> Option<Self::Item> {
        self.step().transpose()
    }
}
