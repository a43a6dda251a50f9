//! Tokenizers from GGUF metadata: SentencePiece-style (`tokenizer.ggml.model = llama`: llama,
//! gemma) and GPT-2-style byte-level BPE (`gpt2`) with the pre-tokenizers llama.cpp uses for our
//! families. Special and control tokens are split out of the text first (with `parse_special`),
//! BOS/EOS are added as the file says. Checked against llama.cpp's own tokenizer test pairs.

mod bpe;
mod pretokenize;
mod spm;

use std::collections::HashMap;

use crate::gguf::{Array, GgufError, Metadata};

pub use pretokenize::PreTokenizer;

/// llama.cpp's token types (`tokenizer.ggml.token_type`).
pub mod token_type {
    pub const NORMAL: i32 = 1;
    pub const UNKNOWN: i32 = 2;
    pub const CONTROL: i32 = 3;
    pub const USER_DEFINED: i32 = 4;
    pub const UNUSED: i32 = 5;
    pub const BYTE: i32 = 6;
}

#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    #[error("tokenizer: {0}")]
    Gguf(#[from] GgufError),
    #[error("tokenizer model {0:?} is not supported (rocmforge reads \"llama\" (SentencePiece) and \"gpt2\" (byte-level BPE))")]
    UnsupportedModel(String),
    #[error("BPE pre-tokenizer {0:?} is not supported (supported: gpt-2, llama-bpe, qwen2, smollm, default)")]
    UnsupportedPre(String),
    #[error("tokenizer.ggml.{key} has {found} entries; the vocabulary has {expected}")]
    LengthMismatch { key: &'static str, found: usize, expected: usize },
}

/// The vocabulary: token texts, their ids, scores and types.
pub struct Vocab {
    tokens: Vec<Vec<u8>>,
    ids: HashMap<Vec<u8>, u32>,
    scores: Vec<f32>,
    types: Vec<i32>,
    byte_tokens: [Option<u32>; 256],
}

impl Vocab {
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    pub fn id(&self, text: &[u8]) -> Option<u32> {
        self.ids.get(text).copied()
    }

    pub fn text(&self, id: u32) -> Option<&[u8]> {
        self.tokens.get(id as usize).map(Vec::as_slice)
    }

    pub fn score(&self, id: u32) -> f32 {
        self.scores.get(id as usize).copied().unwrap_or(0.0)
    }

    pub fn token_type(&self, id: u32) -> i32 {
        self.types.get(id as usize).copied().unwrap_or(token_type::NORMAL)
    }

    /// The token standing for one raw byte (SentencePiece's `<0xXX>`, or BPE's byte character).
    pub fn byte_token(&self, b: u8) -> Option<u32> {
        self.byte_tokens[b as usize]
    }
}

enum Model {
    Spm { add_space_prefix: bool },
    Bpe { bpe: Box<bpe::Bpe>, pre: PreTokenizer },
}

pub struct Tokenizer {
    vocab: Vocab,
    model: Model,
    pub bos: Option<u32>,
    pub eos: Option<u32>,
    /// End of turn (`<|im_end|>`, `<end_of_turn>`), when the file names one.
    pub eot: Option<u32>,
    pub add_bos: bool,
    pub add_eos: bool,
    /// Control, user-defined and unknown tokens, longest text first (for partitioning).
    specials: Vec<u32>,
}

/// How [`Tokenizer::encode`] treats special tokens.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EncodeOptions {
    /// Add BOS (and EOS) as the file asks (`tokenizer.ggml.add_bos_token`, `add_eos_token`).
    pub add_special: bool,
    /// Turn control-token texts such as `<|im_start|>` into their tokens (user-defined tokens are
    /// always matched, as llama.cpp does). Off for untrusted text, so it cannot forge a turn.
    pub parse_special: bool,
}

impl EncodeOptions {
    /// Text alone: nothing added, control-token texts stay text.
    pub const TEXT: EncodeOptions = EncodeOptions { add_special: false, parse_special: false };
    /// A plain prompt: BOS as the file asks; control-token texts stay text.
    pub const PROMPT: EncodeOptions = EncodeOptions { add_special: true, parse_special: false };
    /// A rendered chat prompt: BOS as the file asks, and the template's control tokens parsed.
    pub const CHAT: EncodeOptions = EncodeOptions { add_special: true, parse_special: true };
}

/// A piece of the input: text still to tokenize, or a special token already found.
enum Fragment<'a> {
    Text(&'a str),
    Token(u32),
}

impl Tokenizer {
    pub fn from_metadata(md: &Metadata) -> Result<Tokenizer, TokenizerError> {
        let model_name = md.get_str("tokenizer.ggml.model")?;
        let tokens = match md.get_array("tokenizer.ggml.tokens")? {
            Array::String(t) => t.clone(),
            other => {
                return Err(GgufError::WrongType {
                    key: "tokenizer.ggml.tokens".into(),
                    expected: "array[string]",
                    found: other.type_description(),
                }
                .into())
            }
        };
        let n = tokens.len();
        let scores = match md.get("tokenizer.ggml.scores").and_then(|v| v.as_array()) {
            Some(Array::F32(s)) => s.clone(),
            _ => vec![0.0; n],
        };
        let types = match md.get("tokenizer.ggml.token_type").and_then(|v| v.as_array()) {
            Some(Array::I32(t)) => t.clone(),
            Some(Array::U32(t)) => t.iter().map(|&x| x as i32).collect(),
            _ => vec![token_type::NORMAL; n],
        };
        for (key, found) in [("scores", scores.len()), ("token_type", types.len())] {
            if found != n {
                return Err(TokenizerError::LengthMismatch { key, found, expected: n });
            }
        }
        let ids: HashMap<Vec<u8>, u32> = tokens.iter().enumerate().rev().map(|(i, t)| (t.clone(), i as u32)).collect();
        let id_of = |key: &str| -> Result<Option<u32>, TokenizerError> {
            Ok(md.opt(key, Metadata::get_u32)?.filter(|&id| (id as usize) < n))
        };
        let (model, default_bos) = match model_name {
            "llama" => (
                Model::Spm {
                    add_space_prefix: md.opt("tokenizer.ggml.add_space_prefix", Metadata::get_bool)?.unwrap_or(true),
                },
                true,
            ),
            "gpt2" => {
                let pre_name = md.opt_str("tokenizer.ggml.pre")?.unwrap_or("default");
                let pre =
                    PreTokenizer::from_name(pre_name).ok_or_else(|| TokenizerError::UnsupportedPre(pre_name.into()))?;
                let merges = match md.get("tokenizer.ggml.merges").and_then(|v| v.as_array()) {
                    Some(Array::String(m)) => m.clone(),
                    _ => Vec::new(),
                };
                (Model::Bpe { bpe: Box::new(bpe::Bpe::new(&merges)), pre }, false)
            }
            other => return Err(TokenizerError::UnsupportedModel(other.into())),
        };
        let mut byte_tokens = [None; 256];
        for (b, slot) in byte_tokens.iter_mut().enumerate() {
            *slot = match &model {
                Model::Spm { .. } => ids.get(format!("<0x{b:02X}>").as_bytes()).copied(),
                Model::Bpe { bpe, .. } => ids.get(bpe.encode_bytes_raw(b as u8).as_bytes()).copied(),
            };
        }
        let mut specials: Vec<u32> = (0..n as u32)
            .filter(|&i| {
                matches!(types[i as usize], token_type::CONTROL | token_type::USER_DEFINED | token_type::UNKNOWN)
                    && !tokens[i as usize].is_empty()
            })
            .collect();
        specials.sort_by(|a, b| tokens[*b as usize].len().cmp(&tokens[*a as usize].len()).then(a.cmp(b)));
        let eot = id_of("tokenizer.ggml.eot_token_id")?.or_else(|| {
            ["<|im_end|>", "<end_of_turn>", "<|eot_id|>", "<|endoftext|>"]
                .iter()
                .find_map(|t| ids.get(t.as_bytes()).copied())
        });
        Ok(Tokenizer {
            bos: id_of("tokenizer.ggml.bos_token_id")?,
            eos: id_of("tokenizer.ggml.eos_token_id")?,
            eot,
            add_bos: md.opt("tokenizer.ggml.add_bos_token", Metadata::get_bool)?.unwrap_or(default_bos),
            add_eos: md.opt("tokenizer.ggml.add_eos_token", Metadata::get_bool)?.unwrap_or(false),
            vocab: Vocab { tokens, ids, scores, types, byte_tokens },
            model,
            specials,
        })
    }

    pub fn vocab(&self) -> &Vocab {
        &self.vocab
    }

    /// Token ids for `text`, special tokens handled as `options` says.
    pub fn encode(&self, text: &str, options: EncodeOptions) -> Vec<u32> {
        let EncodeOptions { add_special, parse_special } = options;
        let mut out = Vec::new();
        if add_special && self.add_bos {
            out.extend(self.bos);
        }
        let fragments = self.partition(text, parse_special);
        match &self.model {
            Model::Spm { add_space_prefix } => {
                let mut prev_special = true;
                for f in fragments {
                    match f {
                        Fragment::Text(t) => {
                            let mut s = String::with_capacity(t.len() + 3);
                            if *add_space_prefix && prev_special {
                                s.push(' ');
                            }
                            s.push_str(t);
                            spm::encode(&self.vocab, &s.replace(' ', "\u{2581}"), &mut out);
                            prev_special = false;
                        }
                        Fragment::Token(id) => {
                            out.push(id);
                            prev_special = true;
                        }
                    }
                }
            }
            Model::Bpe { bpe, pre } => {
                for f in fragments {
                    match f {
                        Fragment::Text(t) => {
                            for word in pre.split(t) {
                                bpe.encode_word(&self.vocab, &word, pre.ignore_merges(), &mut out);
                            }
                        }
                        Fragment::Token(id) => out.push(id),
                    }
                }
            }
        }
        if add_special && self.add_eos {
            out.extend(self.eos);
        }
        out
    }

    /// Splits out special tokens, longest first.
    fn partition<'t>(&self, text: &'t str, parse_special: bool) -> Vec<Fragment<'t>> {
        let mut frags = vec![Fragment::Text(text)];
        if text.is_empty() {
            return Vec::new();
        }
        for &id in &self.specials {
            let ty = self.vocab.token_type(id);
            if !parse_special && (ty == token_type::CONTROL || ty == token_type::UNKNOWN) {
                continue;
            }
            let Ok(needle) = std::str::from_utf8(&self.vocab.tokens[id as usize]) else { continue };
            let mut next = Vec::with_capacity(frags.len());
            for f in frags {
                match f {
                    Fragment::Text(t) if t.contains(needle) => {
                        let mut rest = t;
                        while let Some(p) = rest.find(needle) {
                            if p > 0 {
                                next.push(Fragment::Text(&rest[..p]));
                            }
                            next.push(Fragment::Token(id));
                            rest = &rest[p + needle.len()..];
                        }
                        if !rest.is_empty() {
                            next.push(Fragment::Text(rest));
                        }
                    }
                    other => next.push(other),
                }
            }
            frags = next;
        }
        frags
    }

    /// The bytes token `id` stands for. Control tokens print nothing unless `special`.
    pub fn piece(&self, id: u32, special: bool) -> Vec<u8> {
        let Some(text) = self.vocab.text(id) else { return Vec::new() };
        match self.vocab.token_type(id) {
            token_type::CONTROL | token_type::UNKNOWN | token_type::UNUSED if !special => Vec::new(),
            token_type::USER_DEFINED | token_type::CONTROL | token_type::UNKNOWN | token_type::UNUSED => text.to_vec(),
            token_type::BYTE if text.len() == 6 && text.starts_with(b"<0x") => std::str::from_utf8(&text[3..5])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .map(|b| vec![b])
                .unwrap_or_default(),
            _ => match &self.model {
                Model::Spm { .. } => String::from_utf8_lossy(text).replace('\u{2581}', " ").into_bytes(),
                Model::Bpe { bpe, .. } => bpe.decode_bytes(&String::from_utf8_lossy(text)),
            },
        }
    }

    /// Text for `ids` (control tokens omitted).
    pub fn decode(&self, ids: &[u32]) -> String {
        let bytes: Vec<u8> = ids.iter().flat_map(|&id| self.piece(id, false)).collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// Is `id` an end of generation (EOS or end of turn)?
    pub fn is_end(&self, id: u32) -> bool {
        Some(id) == self.eos || Some(id) == self.eot
    }
}
