//! SentencePiece-style merging (llama, gemma): start from UTF-8 characters, repeatedly merge the
//! adjacent pair whose concatenation is the highest-scoring token (ties: leftmost), then split any
//! symbol that is not a token into byte tokens `<0xXX>` — as llama.cpp's
//! `llm_tokenizer_spm_session` does.

use std::collections::BinaryHeap;

use super::Vocab;

#[derive(PartialEq)]
struct Bigram {
    score: f32,
    left: usize,
    right: usize,
    size: usize,
}

impl Eq for Bigram {}

impl Ord for Bigram {
    // Highest score first; ties, the leftmost.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.score.total_cmp(&other.score).then(other.left.cmp(&self.left))
    }
}

impl PartialOrd for Bigram {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

struct Symbol {
    start: usize,
    len: usize,
    prev: isize,
    next: isize,
}

/// Token ids for `text` (already escaped: spaces as U+2581).
pub fn encode(vocab: &Vocab, text: &str, out: &mut Vec<u32>) {
    let bytes = text.as_bytes();
    let mut syms: Vec<Symbol> = Vec::new();
    for (i, (start, c)) in text.char_indices().enumerate() {
        let len = c.len_utf8();
        let is_last = start + len == bytes.len();
        syms.push(Symbol { start, len, prev: i as isize - 1, next: if is_last { -1 } else { i as isize + 1 } });
    }
    let mut heap = BinaryHeap::new();
    let try_add = |heap: &mut BinaryHeap<Bigram>, syms: &[Symbol], l: isize, r: isize| {
        if l < 0 || r < 0 {
            return;
        }
        let (a, b) = (&syms[l as usize], &syms[r as usize]);
        let piece = &bytes[a.start..a.start + a.len + b.len];
        if let Some(id) = vocab.id(piece) {
            heap.push(Bigram { score: vocab.score(id), left: l as usize, right: r as usize, size: piece.len() });
        }
    };
    for i in 1..syms.len() as isize {
        try_add(&mut heap, &syms, i - 1, i);
    }
    while let Some(bg) = heap.pop() {
        let (l, r) = (bg.left, bg.right);
        if syms[l].len == 0 || syms[r].len == 0 || syms[l].len + syms[r].len != bg.size {
            continue;
        }
        syms[l].len += syms[r].len;
        syms[r].len = 0;
        syms[l].next = syms[r].next;
        if syms[r].next >= 0 {
            let n = syms[r].next as usize;
            syms[n].prev = l as isize;
        }
        let (p, n) = (syms[l].prev, syms[l].next);
        try_add(&mut heap, &syms, p, l as isize);
        try_add(&mut heap, &syms, l as isize, n);
    }
    // Merges only ever form tokens, so a final symbol that is not a token is one character the
    // vocabulary lacks: it becomes its UTF-8 bytes' tokens.
    let mut i = if syms.is_empty() { -1 } else { 0 };
    while i >= 0 {
        let s = &syms[i as usize];
        let piece = &bytes[s.start..s.start + s.len];
        match vocab.id(piece) {
            Some(id) => out.push(id),
            None => out.extend(piece.iter().filter_map(|&b| vocab.byte_token(b))),
        }
        i = s.next;
    }
}
