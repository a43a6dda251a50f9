//! Byte-level BPE (GPT-2 style): words are byte-encoded into printable characters, then the pair
//! of adjacent symbols with the lowest merge rank is merged until none is left (ties: leftmost),
//! as llama.cpp's `llm_tokenizer_bpe_session` does.

use std::collections::{BinaryHeap, HashMap};

use super::Vocab;

/// GPT-2's `bytes_to_unicode`: printable bytes map to themselves, the rest to U+0100 onwards.
pub fn byte_to_char_table() -> [char; 256] {
    let mut table = ['\0'; 256];
    let mut next = 256u32;
    for b in 0..=255u32 {
        let printable = (33..=126).contains(&b) || (161..=172).contains(&b) || (174..=255).contains(&b);
        table[b as usize] = if printable {
            char::from_u32(b).expect("valid")
        } else {
            next += 1;
            char::from_u32(next - 1).expect("valid")
        };
    }
    table
}

pub struct Bpe {
    /// (left, right) → rank.
    ranks: HashMap<(String, String), u32>,
    byte_chars: [char; 256],
    char_bytes: HashMap<char, u8>,
}

#[derive(PartialEq, Eq)]
struct Bigram {
    rank: u32,
    left: usize,
    text: String,
}

impl Ord for Bigram {
    // BinaryHeap is a max-heap: the lowest rank, then the leftmost, must compare greatest.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        other.rank.cmp(&self.rank).then(other.left.cmp(&self.left))
    }
}

impl PartialOrd for Bigram {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Bpe {
    /// From `tokenizer.ggml.merges` ("left right", rank = index).
    pub fn new(merges: &[Vec<u8>]) -> Bpe {
        let mut ranks = HashMap::with_capacity(merges.len());
        for (i, m) in merges.iter().enumerate() {
            let s = String::from_utf8_lossy(m);
            // The separator is the first space after the first character (a merge may start with one).
            let skip = s.chars().next().map_or(0, char::len_utf8);
            if let Some(p) = s[skip..].find(' ') {
                let (l, r) = (s[..skip + p].to_string(), s[skip + p + 1..].to_string());
                ranks.entry((l, r)).or_insert(i as u32);
            }
        }
        let byte_chars = byte_to_char_table();
        let char_bytes = byte_chars.iter().enumerate().map(|(b, &c)| (c, b as u8)).collect();
        Bpe { ranks, byte_chars, char_bytes }
    }

    /// The byte-level encoding of a word.
    pub fn encode_bytes(&self, word: &str) -> String {
        word.bytes().map(|b| self.byte_chars[b as usize]).collect()
    }

    /// The one-character text byte `b` is encoded as.
    pub fn encode_bytes_raw(&self, b: u8) -> String {
        self.byte_chars[b as usize].to_string()
    }

    /// The raw bytes a byte-encoded token text stands for.
    pub fn decode_bytes(&self, text: &str) -> Vec<u8> {
        let mut out = Vec::with_capacity(text.len());
        for c in text.chars() {
            match self.char_bytes.get(&c) {
                Some(&b) => out.push(b),
                None => {
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
            }
        }
        out
    }

    /// Token ids for one pre-tokenized word.
    pub fn encode_word(&self, vocab: &Vocab, word: &str, ignore_merges: bool, out: &mut Vec<u32>) {
        let encoded = self.encode_bytes(word);
        if ignore_merges {
            if let Some(id) = vocab.id(encoded.as_bytes()) {
                out.push(id);
                return;
            }
        }
        // Symbols: (text, prev, next); merged-away symbols have empty text.
        let mut syms: Vec<String> = encoded.chars().map(String::from).collect();
        let n = syms.len();
        let mut prev: Vec<isize> = (0..n as isize).map(|i| i - 1).collect();
        let mut next: Vec<isize> = (0..n as isize).map(|i| if i + 1 < n as isize { i + 1 } else { -1 }).collect();
        let mut heap = BinaryHeap::new();
        let push = |heap: &mut BinaryHeap<Bigram>, syms: &[String], l: isize, r: isize| {
            if l < 0 || r < 0 {
                return;
            }
            let (a, b) = (&syms[l as usize], &syms[r as usize]);
            if let Some(&rank) = self.ranks.get(&(a.clone(), b.clone())) {
                heap.push(Bigram { rank, left: l as usize, text: format!("{a}{b}") });
            }
        };
        for i in 1..n as isize {
            push(&mut heap, &syms, i - 1, i);
        }
        while let Some(bg) = heap.pop() {
            let l = bg.left;
            let r = next[l];
            if r < 0 || syms[l].is_empty() || syms[r as usize].is_empty() {
                continue;
            }
            if syms[l].len() + syms[r as usize].len() != bg.text.len()
                || format!("{}{}", syms[l], syms[r as usize]) != bg.text
            {
                continue; // outdated
            }
            let right = std::mem::take(&mut syms[r as usize]);
            syms[l].push_str(&right);
            next[l] = next[r as usize];
            if next[l] >= 0 {
                prev[next[l] as usize] = l as isize;
            }
            push(&mut heap, &syms, prev[l], l as isize);
            push(&mut heap, &syms, l as isize, next[l]);
        }
        let mut i = 0isize;
        while i >= 0 && (i as usize) < n {
            let s = &syms[i as usize];
            match vocab.id(s.as_bytes()) {
                Some(id) => out.push(id),
                None => {
                    // Fall back to one token per byte (each byte's character).
                    for c in s.chars() {
                        if let Some(id) = vocab.id(c.to_string().as_bytes()) {
                            out.push(id);
                        }
                    }
                }
            }
            i = next[i as usize];
        }
    }
}
