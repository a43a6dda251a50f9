//! Pre-tokenizers: split text into the words BPE merges within, as llama.cpp does for each
//! `tokenizer.ggml.pre` (llama.cpp's `unicode.cpp` hand-writes these regexes as scanners; these are
//! our own scanners for the same regexes):
//!   gpt2:   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//!   llama3: (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
//!   qwen2:  llama3 with \p{N} (one digit) in place of \p{N}{1,3}
//!   smollm: \p{N} first, then gpt2 within what is left
//! Text that no alternative matches becomes a word of its own, as in llama.cpp.

use unicode_general_category::{get_general_category, GeneralCategory as G};

/// The pre-tokenizer families rocmforge's models use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PreTokenizer {
    Gpt2,
    Llama3,
    Qwen2,
    SmolLm,
    /// llama.cpp's fallback for BPE vocabularies without a known `pre`.
    Default,
}

impl PreTokenizer {
    /// From `tokenizer.ggml.pre`; `None` for names rocmforge does not implement.
    pub fn from_name(name: &str) -> Option<PreTokenizer> {
        Some(match name {
            "gpt-2" | "gpt2" | "mpt" | "olmo" => PreTokenizer::Gpt2,
            "llama3" | "llama-v3" | "llama-bpe" | "falcon3" | "pixtral" | "lfm2" => PreTokenizer::Llama3,
            "qwen2" | "stablelm2" | "hunyuan" | "deepseek-r1-qwen" | "megrez" => PreTokenizer::Qwen2,
            "smollm" | "codeshell" | "exaone" | "minerva-7b" => PreTokenizer::SmolLm,
            "default" => PreTokenizer::Default,
            _ => return None,
        })
    }

    /// llama.cpp keeps a whole word that is already a token without merging (llama3 only).
    pub fn ignore_merges(self) -> bool {
        self == PreTokenizer::Llama3
    }

    /// Splits `text` into words (as char ranges, concatenating back to `text`).
    pub fn split(self, text: &str) -> Vec<String> {
        let cpts: Vec<char> = text.chars().collect();
        let whole = vec![(0, cpts.len())];
        let ranges = match self {
            PreTokenizer::Gpt2 => split_ranges(&cpts, &whole, gpt2),
            PreTokenizer::Llama3 => split_ranges(&cpts, &whole, |c, r, out| llama3(c, r, out, 3)),
            PreTokenizer::Qwen2 => split_ranges(&cpts, &whole, |c, r, out| llama3(c, r, out, 1)),
            PreTokenizer::SmolLm => {
                let digits = split_ranges(&cpts, &whole, single_numbers);
                split_ranges(&cpts, &digits, gpt2)
            }
            PreTokenizer::Default => {
                let a = split_ranges(&cpts, &whole, punctuation_runs);
                let b = split_ranges(&cpts, &a, gpt2);
                let c = split_ranges(&cpts, &b, number_runs);
                split_ranges(&cpts, &c, ascii_digit_triples)
            }
        };
        ranges.into_iter().map(|(s, e)| cpts[s..e].iter().collect()).collect()
    }
}

/// Character classes of llama.cpp's `unicode_cpt_flags`.
#[derive(Clone, Copy, Default)]
struct Flags {
    /// In the range being split (outside it, every flag is false).
    defined: bool,
    letter: bool,
    number: bool,
    whitespace: bool,
}

fn flags(c: char) -> Flags {
    let cat = get_general_category(c);
    Flags {
        defined: true,
        letter: matches!(
            cat,
            G::UppercaseLetter | G::LowercaseLetter | G::TitlecaseLetter | G::ModifierLetter | G::OtherLetter
        ),
        number: matches!(cat, G::DecimalNumber | G::LetterNumber | G::OtherNumber),
        whitespace: c.is_whitespace(),
    }
}

/// Applies a scanner to each range, splitting it into consecutive sub-ranges.
fn split_ranges(
    cpts: &[char],
    ranges: &[(usize, usize)],
    scan: impl Fn(&[char], (usize, usize), &mut Vec<usize>),
) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    for &(start, end) in ranges {
        let mut cuts = Vec::new();
        scan(cpts, (start, end), &mut cuts);
        let mut prev = start;
        for cut in cuts.into_iter().chain(std::iter::once(end)) {
            if cut > prev {
                out.push((prev, cut));
                prev = cut;
            }
        }
    }
    out
}

/// Lookups bounded to one range.
struct View<'a> {
    cpts: &'a [char],
    start: usize,
    end: usize,
}

impl View<'_> {
    fn cpt(&self, pos: usize) -> Option<char> {
        (self.start <= pos && pos < self.end).then(|| self.cpts[pos])
    }
    fn flags(&self, pos: usize) -> Flags {
        self.cpt(pos).map(flags).unwrap_or_default()
    }
}

fn is_contraction(v: &View, pos: usize, fold_case: bool) -> usize {
    if v.cpt(pos) != Some('\'') {
        return 0;
    }
    let low = |c: Option<char>| c.map(|c| if fold_case { c.to_lowercase().next().unwrap_or(c) } else { c });
    let (n1, n2) = (low(v.cpt(pos + 1)), low(v.cpt(pos + 2)));
    match (n1, n2) {
        (Some('s' | 't' | 'm' | 'd'), _) => 2,
        (Some('r'), Some('e')) | (Some('v'), Some('e')) | (Some('l'), Some('l')) => 3,
        _ => 0,
    }
}

/// Whitespace handling shared by gpt2 and llama3: `\s+(?!\S)` keeps the last space for the next
/// word when more text follows; otherwise `\s+` takes the run.
fn whitespace_run(v: &View, pos: usize) -> Option<usize> {
    let mut n = 0;
    while v.flags(pos + n).whitespace {
        n += 1;
    }
    if n > 1 && v.cpt(pos + n).is_some() {
        return Some(pos + n - 1);
    }
    (n > 0).then_some(pos + n)
}

fn gpt2(cpts: &[char], (start, end): (usize, usize), cuts: &mut Vec<usize>) {
    let v = View { cpts, start, end };
    let mut pos = start;
    while pos < end {
        let c = v.cpt(pos).expect("in range");
        let len = is_contraction(&v, pos, false);
        if len > 0 {
            pos += len;
            cuts.push(pos);
            continue;
        }
        let f2 = if c == ' ' { v.flags(pos + 1) } else { v.flags(pos) };
        let skip = usize::from(c == ' ');
        let run = |pred: &dyn Fn(Flags) -> bool, mut p: usize| {
            while pred(v.flags(p)) {
                p += 1;
            }
            p
        };
        if f2.letter {
            pos = run(&|f| f.letter, pos + skip);
        } else if f2.number {
            pos = run(&|f| f.number, pos + skip);
        } else if f2.defined && !(f2.whitespace || f2.letter || f2.number) {
            pos = run(&|f| f.defined && !(f.whitespace || f.letter || f.number), pos + skip);
        } else if let Some(p) = whitespace_run(&v, pos) {
            pos = p;
        } else {
            pos += 1;
        }
        cuts.push(pos);
    }
}

fn llama3(cpts: &[char], (start, end): (usize, usize), cuts: &mut Vec<usize>, max_digits: usize) {
    let v = View { cpts, start, end };
    let mut pos = start;
    while pos < end {
        let c = v.cpt(pos).expect("in range");
        let f = v.flags(pos);
        let len = is_contraction(&v, pos, true);
        if len > 0 {
            pos += len;
            cuts.push(pos);
            continue;
        }
        // [^\r\n\p{L}\p{N}]?\p{L}+
        if !(c == '\r' || c == '\n' || f.number) && (f.letter || v.flags(pos + 1).letter) {
            pos += 1;
            while v.flags(pos).letter {
                pos += 1;
            }
            cuts.push(pos);
            continue;
        }
        // \p{N}{1,max}
        if f.number {
            let mut ini = pos;
            while v.flags(pos).number {
                pos += 1;
                if pos - ini >= max_digits {
                    cuts.push(pos);
                    ini = pos;
                }
            }
            cuts.push(pos);
            continue;
        }
        // <space>?[^\s\p{L}\p{N}]+[\r\n]*
        let mut f2 = if c == ' ' { v.flags(pos + 1) } else { f };
        if !(f2.whitespace || f2.letter || f2.number) && f.defined && f2.defined {
            pos += usize::from(c == ' ');
            while f2.defined && !(f2.whitespace || f2.letter || f2.number) {
                pos += 1;
                f2 = v.flags(pos);
            }
            while matches!(v.cpt(pos), Some('\r' | '\n')) {
                pos += 1;
            }
            cuts.push(pos);
            continue;
        }
        // \s*[\r\n]+
        let mut n = 0;
        let mut last_newline_end = 0;
        while v.flags(pos + n).whitespace {
            if matches!(v.cpt(pos + n), Some('\r' | '\n')) {
                last_newline_end = pos + n + 1;
            }
            n += 1;
        }
        if last_newline_end > 0 {
            pos = last_newline_end;
        } else if let Some(p) = whitespace_run(&v, pos) {
            pos = p;
        } else {
            pos += 1;
        }
        cuts.push(pos);
    }
}

/// `\p{N}`: every number character on its own.
fn single_numbers(cpts: &[char], (start, end): (usize, usize), cuts: &mut Vec<usize>) {
    for (p, &c) in cpts.iter().enumerate().take(end).skip(start) {
        if flags(c).number {
            cuts.push(p);
            cuts.push(p + 1);
        }
    }
}

/// Runs of characters matching `pred` become words.
fn runs_of(cpts: &[char], (start, end): (usize, usize), cuts: &mut Vec<usize>, pred: impl Fn(char) -> bool) {
    let mut p = start;
    while p < end {
        if pred(cpts[p]) {
            cuts.push(p);
            while p < end && pred(cpts[p]) {
                p += 1;
            }
            cuts.push(p);
        } else {
            p += 1;
        }
    }
}

fn punctuation_runs(cpts: &[char], range: (usize, usize), cuts: &mut Vec<usize>) {
    runs_of(cpts, range, cuts, |c| {
        let cat = get_general_category(c);
        matches!(
            cat,
            G::ConnectorPunctuation
                | G::DashPunctuation
                | G::OpenPunctuation
                | G::ClosePunctuation
                | G::InitialPunctuation
                | G::FinalPunctuation
                | G::OtherPunctuation
        ) || "$+<=>^~|".contains(c)
    });
}

fn number_runs(cpts: &[char], range: (usize, usize), cuts: &mut Vec<usize>) {
    runs_of(cpts, range, cuts, |c| flags(c).number);
}

fn ascii_digit_triples(cpts: &[char], (start, end): (usize, usize), cuts: &mut Vec<usize>) {
    let mut p = start;
    while p + 3 <= end {
        if cpts[p..p + 3].iter().all(|c| c.is_ascii_digit()) {
            cuts.push(p);
            cuts.push(p + 3);
            p += 3;
        } else {
            p += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gpt2_splits_words_contractions_and_spaces() {
        assert_eq!(PreTokenizer::Gpt2.split("Hello world's  end!!"), vec!["Hello", " world", "'s", " ", " end", "!!"]);
        assert_eq!(PreTokenizer::Gpt2.split("a   "), vec!["a", "   "]);
    }

    #[test]
    fn llama3_groups_digits_by_three_and_qwen2_by_one() {
        assert_eq!(PreTokenizer::Llama3.split("12345"), vec!["123", "45"]);
        assert_eq!(PreTokenizer::Qwen2.split("123"), vec!["1", "2", "3"]);
        assert_eq!(PreTokenizer::Llama3.split("x\n\n y"), vec!["x", "\n\n", " y"]);
    }

    #[test]
    fn smollm_splits_every_digit() {
        assert_eq!(PreTokenizer::SmolLm.split("ab 123"), vec!["ab", " ", "1", "2", "3"]);
    }
}
