//! Text generation: prefill a prompt, then sample one token at a time, streaming text through an
//! iterator (or a callback). Stops at EOS / end of turn, at a stop string, or after `max_tokens`.
//! (A `Generation` borrows its session; `crate::llm::TokenStream` is the `Send` stream for
//! applications and servers.)

use std::time::{Duration, Instant};

use super::sampler::{Sampler, SamplerConfig};
use super::{ExecError, Forward};
use crate::tokenizer::Tokenizer;

#[derive(Clone, Debug, PartialEq)]
pub struct GenerateParams {
    pub max_tokens: usize,
    pub sampler: SamplerConfig,
    /// Stop as soon as the text contains one of these; the stop string itself is not returned.
    pub stop: Vec<String>,
}

impl Default for GenerateParams {
    /// 256 tokens, the default sampler, no stop strings.
    fn default() -> Self {
        GenerateParams { max_tokens: 256, sampler: SamplerConfig::default(), stop: Vec::new() }
    }
}

/// Why a generation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FinishReason {
    /// The model produced its end of text or end of turn.
    EndOfText,
    /// The text reached one of the stop strings.
    StopString,
    /// `max_tokens` were generated.
    MaxTokens,
}

/// One generated token and the text it completes (may be empty while a UTF-8 character is split
/// across tokens, or while the text could still become a stop string). When stop strings hold
/// text back and the model then ends, that text comes last with the end token's id (and is not
/// counted in `stats.generated`).
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
    stop: Vec<String>,
    /// Decoded text not yet returned: it could be the start of a stop string.
    held: String,
    finished: Option<FinishReason>,
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
            stop: params.stop.into_iter().filter(|s| !s.is_empty()).collect(),
            held: String::new(),
            finished: None,
            stats,
        })
    }

    /// Tokens that were in the session before the prompt (a kept conversation prefix): the
    /// repetition penalties look at them as well.
    pub fn with_earlier_tokens(mut self, earlier: &[u32]) -> Self {
        self.history.splice(0..0, earlier.iter().copied());
        self
    }

    /// Why the generation ended; `None` while it can go on.
    pub fn finish_reason(&self) -> Option<FinishReason> {
        self.finished
    }

    /// Every token so far: the earlier tokens, the prompt and the generated tokens.
    pub fn history(&self) -> &[u32] {
        &self.history
    }

    fn step(&mut self) -> Result<Option<Generated>, ExecError> {
        if self.finished.is_some() {
            return Ok(None);
        }
        if self.remaining == 0 {
            self.finished = Some(FinishReason::MaxTokens);
            return Ok(None);
        }
        if let Some(prev) = self.pending.take() {
            let start = Instant::now();
            self.logits = self.session.forward(&[prev])?.to_vec();
            self.stats.decode += start.elapsed();
        }
        let id = self.sampler.sample(&self.logits, &self.history);
        if self.tokenizer.is_end(id) {
            self.finished = Some(FinishReason::EndOfText);
            if self.held.is_empty() {
                return Ok(None);
            }
            return Ok(Some(Generated { id, text: std::mem::take(&mut self.held) }));
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
        if self.stop.is_empty() {
            return Ok(Some(Generated { id, text }));
        }
        self.held.push_str(&text);
        if let Some(at) = self.stop.iter().filter_map(|s| self.held.find(s.as_str())).min() {
            self.held.truncate(at);
            self.finished = Some(FinishReason::StopString);
            return Ok(Some(Generated { id, text: std::mem::take(&mut self.held) }));
        }
        // Keep back the longest tail that could still grow into a stop string; the last token
        // flushes everything.
        let keep = if self.remaining == 0 { 0 } else { stop_prefix_len(&self.held, &self.stop) };
        let text = self.held[..self.held.len() - keep].to_string();
        self.held.drain(..self.held.len() - keep);
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

/// Bytes at the end of `text` that begin some stop string (the longest such tail, on a character
/// boundary).
fn stop_prefix_len(text: &str, stop: &[String]) -> usize {
    let mut best = 0;
    for s in stop {
        for (i, _) in text.char_indices().rev().take(s.chars().count()) {
            let tail = &text[i..];
            if tail.len() > best && s.starts_with(tail) {
                best = tail.len();
            }
        }
    }
    best
}

impl Iterator for Generation<'_> {
    type Item = Result<Generated, ExecError>;
    fn next(&mut self) -> Option<Self::Item> {
        self.step().transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::stop_prefix_len;

    #[test]
    fn the_held_tail_is_the_longest_stop_string_prefix() {
        let stop = vec!["</answer>".to_string(), "\n\n".to_string()];
        assert_eq!(stop_prefix_len("Paris</an", &stop), 4);
        assert_eq!(stop_prefix_len("Paris\n", &stop), 1);
        assert_eq!(stop_prefix_len("Paris", &stop), 0);
        assert_eq!(stop_prefix_len("café<", &["<é>".to_string()]), 1);
    }
}
