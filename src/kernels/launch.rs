//! The launch contract: one typed description per op, with named fields (buffers, sizes, runtime
//! scalars). A description alone computes its kernel's specialization, grid, block and argument
//! list. The `args` method of each op below is the one Rust place its kernel's parameters are
//! written (the template holds the other; a test holds the two to the same names and types).
//!
//! Descriptions are generic over the buffer handle `B`: the GPU executor plans with its own slot
//! names, the device launches with views of its buffers, and the CPU device reads the same fields
//! by name to run the reference op. Before anything runs, [`Launch::check`] holds every buffer to
//! the element type and length the description touches, and every size to what an `int` holds.

use std::fmt;

use super::spec::{flash_queries, mmq_may_stream, mmq_tokens, MMQ_ROWS};
use super::spec::{
    ElementwiseOp, GluKind, KernelSpec, MmvqLayout, RopeExt, RopeKind, SpecError, QUANTIZE_THREADS, ROWS_PER_BLOCK,
    TOKENS_PER_WARP,
};
use super::spec::{F16Tile, KvPrecision, ATTN_DECODE_MAX_CHUNK, BLOCK_THREADS};
use crate::dtype::GgmlType;

/// The element type of a buffer argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Elem {
    F32,
    I32,
    /// Raw bytes: quantized weight blocks.
    U8,
    /// IEEE half precision: the KV cache.
    F16,
}

impl From<KvPrecision> for Elem {
    fn from(kv: KvPrecision) -> Elem {
        match kv {
            KvPrecision::F16 => Elem::F16,
            KvPrecision::F32 => Elem::F32,
        }
    }
}

impl Elem {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Elem::F32 | Elem::I32 => 4,
            Elem::F16 => 2,
            Elem::U8 => 1,
        }
    }
}

impl fmt::Display for Elem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Elem::F32 => "f32",
            Elem::I32 => "i32",
            Elem::U8 => "u8",
            Elem::F16 => "f16",
        })
    }
}

/// What [`Launch::check`] needs to know of a buffer handle.
pub trait BufferRef {
    fn elem(&self) -> Elem;
    /// Elements from the handle's start to the end of the memory it may touch.
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One kernel argument, in the template's parameter order and under the template's name.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Arg<'a, B> {
    /// A buffer of which the kernel touches the first `len` elements (of type `elem`).
    Buffer {
        name: &'static str,
        buf: &'a B,
        elem: Elem,
        len: usize,
    },
    /// A size, count or position, passed as `int` ([`Launch::check`] holds it below 2³¹).
    Int {
        name: &'static str,
        value: usize,
    },
    Float {
        name: &'static str,
        value: f32,
    },
}

fn buf<'a, B>(name: &'static str, buf: &'a B, elem: Elem, len: usize) -> Arg<'a, B> {
    Arg::Buffer { name, buf, elem, len }
}

fn int<'a, B>(name: &'static str, value: usize) -> Arg<'a, B> {
    Arg::Int { name, value }
}

fn float<'a, B>(name: &'static str, value: f32) -> Arg<'a, B> {
    Arg::Float { name, value }
}

/// a · b, saturating: an overflowing need can never be met, so the check refuses it.
fn mul(a: usize, b: usize) -> usize {
    a.saturating_mul(b)
}

/// A grid dimension: `n` blocks, or `u32::MAX` (refused by the check) when it does not fit.
fn dim(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[derive(Clone, Debug, thiserror::Error, PartialEq)]
pub enum LaunchError {
    #[error("{kernel}: {what}")]
    Invalid { kernel: String, what: String },
    #[error("{kernel}: argument `{name}` is a buffer of {have}; the kernel takes {want}")]
    WrongElem { kernel: String, name: &'static str, have: Elem, want: Elem },
    #[error("{kernel}: buffer `{name}` holds {have} elements; the launch touches {need}")]
    TooSmall { kernel: String, name: &'static str, have: usize, need: usize },
    #[error(transparent)]
    Spec(#[from] SpecError),
}

/// Declares a description: its buffer fields (generic handles) and its scalar fields, and
/// `try_map`, which gives the same launch over other buffer handles.
macro_rules! description {
    (
        $(#[$doc:meta])*
        $name:ident {
            buffers { $($(#[$bdoc:meta])* $b:ident,)* }
            scalars { $($(#[$sdoc:meta])* $s:ident: $t:ty,)* }
        }
    ) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq)]
        pub struct $name<B> {
            $($(#[$bdoc])* pub $b: B,)*
            $($(#[$sdoc])* pub $s: $t,)*
        }

        impl<B> $name<B> {
            /// The same launch over other buffer handles.
            pub fn try_map<C, E>(&self, f: &mut impl FnMut(&B) -> Result<C, E>) -> Result<$name<C>, E> {
                Ok($name { $($b: f(&self.$b)?,)* $($s: self.$s,)* })
            }
        }

        impl<B> From<$name<B>> for Launch<B> {
            fn from(op: $name<B>) -> Launch<B> {
                Launch::$name(op)
            }
        }
    };
}

description! {
    /// `out[t] = scale · W[ids[t]]`, rows of `n_embd` elements of `wtype`. An id outside
    /// `0..n_rows` gets a row of NaN (the kernel never reads outside the table).
    Embedding {
        buffers {
            /// `[n_rows]` rows of `wtype` blocks.
            table,
            /// `[n_tokens]` token ids.
            ids,
            /// `[n_tokens, n_embd]`
            out,
        }
        scalars {
            wtype: GgmlType,
            n_embd: u32,
            n_rows: usize,
            n_tokens: usize,
            scale: f32,
        }
    }
}

description! {
    /// `y = x / sqrt(mean(x²) + eps) · w` (`· (1 + w)` when `add_one`), over `rows` rows of `n`.
    /// In place when `x` and `y` are the same buffer.
    RmsNorm {
        buffers {
            /// `[rows, n]`
            x,
            /// `[n]`
            w,
            /// `[rows, n]`
            y,
        }
        scalars {
            n: u32,
            add_one: bool,
            rows: usize,
            eps: f32,
        }
    }
}

description! {
    /// Rope in place over `n_heads` heads of `head_dim` per token, rotating the first `rope_dims`
    /// of each by `positions[t] · freq_scale · base^(-2i/rope_dims)`.
    Rope {
        buffers {
            /// `[n_tokens, n_heads, head_dim]`
            x,
            /// `[n_tokens]` positions.
            positions,
            /// `[rope_dims / 2]` per-pair frequency divisors (Llama 3's `rope_freqs.weight`; ones
            /// for a model without them).
            freq_factors,
        }
        scalars {
            head_dim: u32,
            rope_dims: u32,
            kind: RopeKind,
            n_tokens: usize,
            n_heads: usize,
            base: f32,
            freq_scale: f32,
            /// YaRN's ramp and LongRoPE's / YaRN's magnitude scale (`RopeExt::NONE` for neither).
            ext: RopeExt,
        }
    }
}

description! {
    /// y = W · x for one token (decode): `rows` weight rows of `k` elements of `wtype`.
    MatVec {
        buffers {
            /// `[rows]` rows of `wtype` blocks.
            w,
            /// `[k]`
            x,
            /// `[rows]`
            y,
        }
        scalars {
            wtype: GgmlType,
            k: u32,
            rows: usize,
        }
    }
}

/// Bytes of one q8_1 block (f16 d, f16 s, 32 int8): `crate::quant::BlockQ8_1`.
pub const Q8_1_BLOCK_BYTES: usize = 36;

/// Floats of the (d, d·Σq) pairs of the q8_1 blocks of `n` values (the quantizers' `ds`).
pub fn q8_1_ds_len(n: usize) -> usize {
    n / 32 * 2
}

/// Bytes of the q8_1 blocks of `n` values (`n` a multiple of 32).
pub fn q8_1_bytes(n: usize) -> usize {
    mul(n / 32, Q8_1_BLOCK_BYTES)
}

description! {
    /// `n` floats (a multiple of 32) to `n / 32` q8_1 blocks, as `quantize_row_q8_1`.
    QuantizeQ8_1 {
        buffers {
            /// `[n]`
            x,
            /// `[n / 32]` q8_1 blocks of 36 bytes.
            out,
            /// `[n / 32]` each block's (d, d·Σq), f32 pairs: [`q8_1_ds_len`] floats.
            ds,
        }
        scalars {
            n: usize,
        }
    }
}

description! {
    /// y = W · x for one token with int8 dot products: x already in q8_1 blocks, `rows` weight rows
    /// of `k` elements of a quantized `wtype`, spread over threads as `layout` says.
    MatVecQ8 {
        buffers {
            /// `[rows]` rows of `wtype` blocks.
            w,
            /// `[k / 32]` q8_1 blocks.
            a,
            /// `[rows]`
            y,
        }
        scalars {
            wtype: GgmlType,
            k: u32,
            rows: usize,
            layout: MmvqLayout,
        }
    }
}

impl<B> MatVecQ8<B> {
    /// The launch with the default layout for the shape ([`MmvqLayout::default_for`]).
    pub fn new(w: B, a: B, y: B, wtype: GgmlType, k: u32, rows: usize) -> MatVecQ8<B> {
        MatVecQ8 { w, a, y, wtype, k, rows, layout: MmvqLayout::default_for(wtype, k) }
    }
}

description! {
    /// Y = X · Wᵀ for many tokens (prefill).
    MatMul {
        buffers {
            /// `[rows]` rows of `wtype` blocks.
            w,
            /// `[tokens, k]`
            x,
            /// `[tokens, rows]`
            y,
        }
        scalars {
            wtype: GgmlType,
            k: u32,
            rows: usize,
            tokens: usize,
        }
    }
}

description! {
    /// Y = X · Wᵀ for many tokens (prefill) with int8 products: X already in q8_1 blocks (`tokens`
    /// rows of `k / 32`), `rows` weight rows of `k` elements of a quantized `wtype`.
    ///
    /// `workers` 0: a block a tile (data-parallel). Otherwise `workers` blocks share the tiles'
    /// steps evenly (stream-K, for tile counts that fill the GPU's multiprocessors unevenly): a
    /// tile split between workers is merged by the last of them from their parts in `part`
    /// ([`MatMulQ8::part_len`] floats), counted in `counters` (`workers` ints, zero before the
    /// launch and after it).
    MatMulQ8 {
        buffers {
            /// `[rows]` rows of `wtype` blocks.
            w,
            /// `[tokens, k / 32]` q8_1 blocks.
            a,
            /// `[tokens, k / 32]` their (d, d·Σq), as the quantizer wrote them.
            ds,
            /// `[tokens, rows]`
            y,
            part,
            counters,
        }
        scalars {
            wtype: GgmlType,
            k: u32,
            rows: usize,
            tokens: usize,
            workers: u32,
        }
    }
}

description! {
    /// `out = W` as f16: `rows` weight rows of `k` elements of `wtype`, each value rounded to f16
    /// once (the weights of a [`GemmF16`]).
    DequantF16 {
        buffers {
            /// `[rows]` rows of `wtype` blocks.
            w,
            /// `[rows, k]` f16
            out,
        }
        scalars {
            wtype: GgmlType,
            k: u32,
            rows: usize,
        }
    }
}

description! {
    /// `out = x · 2^p` rounded to f16 (nearest, ties to even) and `inv_scale = 2^-p`, row by row:
    /// `rows` rows of `k`, each scaled by the power of two that brings its largest |x| into
    /// [2^14, 2^15) (the activations of a [`GemmF16`]; see [`f16_row_exponent`]).
    ConvertF16 {
        buffers {
            /// `[rows, k]` f32
            x,
            /// `[rows, k]` f16
            out,
            /// `[rows]` f32
            inv_scale,
        }
        scalars {
            k: u32,
            rows: usize,
        }
    }
}

/// The exponent p of the power of two `convert_f16` scales a row whose largest |x| is `max` by:
/// `max · 2^p` lies in [2^14, 2^15) (C's frexp: max = f·2^e, f in [0.5, 1), p = 15 − e), within
/// ±100; 0 for a row of zeros, infinities or NaN.
pub fn f16_row_exponent(max: f32) -> i32 {
    if !(max > 0.0 && max.is_finite()) {
        return 0;
    }
    // frexp's e: the biased exponent − 126 for a normal max; a subnormal one scaled up first.
    let (m, shift) = if max < f32::MIN_POSITIVE { (max * 2f32.powi(64), 64) } else { (max, 0) };
    let e = ((m.to_bits() >> 23) & 0xff) as i32 - 126 - shift;
    (15 - e).clamp(-100, 100)
}

description! {
    /// Y = X · Wᵀ for many tokens (prefill) with W and X in f16 and f32 sums, each token's row of
    /// X scaled back by its `x_scale` (a power of two, as [`ConvertF16`] wrote it).
    GemmF16 {
        buffers {
            /// `[rows, k]` f16
            w,
            /// `[tokens, k]` f16
            x,
            /// `[tokens]` f32
            x_scale,
            /// `[tokens, rows]` f32
            y,
        }
        scalars {
            k: u32,
            rows: usize,
            tokens: usize,
            tile: F16Tile,
        }
    }
}

description! {
    /// [`Attention`] over an f16 KV cache, tiled with an online softmax (prefill flash attention).
    FlashAttn {
        buffers {
            /// `[n_q, n_head, head_dim]`
            q,
            /// `[position, n_head / gqa, head_dim]` f16
            k_cache,
            /// `[position, n_head / gqa, head_dim]` f16
            v_cache,
            /// `[n_q, n_head, head_dim]`
            out,
        }
        scalars {
            head_dim: u32,
            gqa: u32,
            n_head: usize,
            n_q: usize,
            pos0: usize,
            scale: f32,
            softcap: Option<f32>,
            window: Option<u32>,
        }
    }
}

description! {
    /// Causal attention of `n_q` queries (at positions pos0 ..) over the KV cache (elements of
    /// `kv`); query heads share KV head h / gqa. Scores are scale · q·k, capped to
    /// softcap · tanh(s / softcap) when `softcap`; a `window` attends to the last `window`
    /// positions only.
    Attention {
        buffers {
            /// `[n_q, n_head, head_dim]`
            q,
            /// `[position, n_head / gqa, head_dim]`
            k_cache,
            /// `[position, n_head / gqa, head_dim]`
            v_cache,
            /// `[n_q, n_head, head_dim]`
            out,
        }
        scalars {
            head_dim: u32,
            gqa: u32,
            n_head: usize,
            n_q: usize,
            pos0: usize,
            scale: f32,
            softcap: Option<f32>,
            window: Option<u32>,
            kv: KvPrecision,
        }
    }
}

description! {
    /// Attention of one query token (decode) over the KV cache, as [`Attention`] computes it, at
    /// the position `positions[0]` holds on the device (clamped to `max_pos`): one launch serves
    /// every step of a decode graph. Split across blocks: grid (n_head / gqa, chunks), sized for
    /// `max_pos` ([`AttnDecode::max_chunks`]); each block scores one chunk of positions
    /// ([`attn_decode_chunk`] of the actual length, chosen on the device; blocks past the last chunk
    /// return) for the `gqa` query heads of its KV head and writes its partial (max, sum, weighted
    /// values) to `part`; the last block of a group to finish (counted in `counters`, which a
    /// launch finds and leaves at 0) merges them into `out`.
    AttnDecode {
        buffers {
            /// `[n_head, head_dim]`
            q,
            /// `[position, n_head / gqa, head_dim]`
            k_cache,
            /// `[position, n_head / gqa, head_dim]`
            v_cache,
            /// `[n_head, head_dim]`
            out,
            /// `[n_head, chunks, head_dim + 2]` partial results (unused with one chunk).
            part,
            /// `[n_head / gqa]` finished blocks per group: 0 before and after every launch.
            counters,
            /// `[1]` the query's position.
            positions,
        }
        scalars {
            head_dim: u32,
            gqa: u32,
            n_head: usize,
            /// The largest position the launch may run at.
            max_pos: usize,
            scale: f32,
            softcap: Option<f32>,
            window: Option<u32>,
            kv: KvPrecision,
        }
    }
}

/// Blocks split decode attention aims at over the whole GPU: about eight per SM of an H100 (132)
/// or per CU of an MI250X die (110). Each block's three passes (scores, softmax, weighted V) wait
/// on its loads one after another, so short chunks in many blocks finish sooner than long ones in
/// few: a 7B at depth 512 is then 32 × 17 blocks of 32 positions, one load round per pass.
pub const ATTN_DECODE_TARGET_BLOCKS: usize = 1024;
/// Most blocks a KV head's positions are split over while chunks are shorter than the longest:
/// the last block of a group merges every chunk's partial, so models with one to three KV heads
/// (Gemma 3, SmolLM2) would otherwise merge hundreds of partials for a few thousand positions.
pub const ATTN_DECODE_MAX_SPLIT: usize = 64;

/// Blocks per KV head split decode attention aims at: the target spread over the heads, at most
/// [`ATTN_DECODE_MAX_SPLIT`].
pub fn attn_decode_per_head(n_kv: usize) -> usize {
    ATTN_DECODE_TARGET_BLOCKS.div_ceil(n_kv.max(1)).min(ATTN_DECODE_MAX_SPLIT)
}
/// Fewest positions a decode-attention block takes: below it the partial results and the merge
/// cost more than the parallelism gains (32 positions of a 64-wide f16 head are 8 KiB of K and V
/// against 264 bytes of partial result per query head). Models with one to three KV heads
/// (Gemma 3, SmolLM2) need chunks this short to put more than a handful of blocks on the GPU.
pub const ATTN_DECODE_MIN_CHUNK: usize = 32;

/// Positions per block for `len` attended positions over `n_kv` KV heads: the blocks per head of
/// [`attn_decode_per_head`], in multiples of 32, within [32, 256]. The kernel chooses its chunk by
/// the same rule on the device (attn_decode.hip).
pub fn attn_decode_chunk(len: usize, n_kv: usize) -> usize {
    let per_head = attn_decode_per_head(n_kv);
    len.div_ceil(per_head)
        .next_multiple_of(ATTN_DECODE_MIN_CHUNK)
        .clamp(ATTN_DECODE_MIN_CHUNK, ATTN_DECODE_MAX_CHUNK as usize)
}

/// Blocks per KV head for `len` attended positions over `n_kv` KV heads.
pub fn attn_decode_chunks(len: usize, n_kv: usize) -> usize {
    len.div_ceil(attn_decode_chunk(len, n_kv))
}

impl<B> AttnDecode<B> {
    fn n_kv(&self) -> usize {
        self.n_head / self.gqa.max(1) as usize
    }

    /// The first position a query at `pos` attends to.
    pub fn first(&self, pos: usize) -> usize {
        self.window.map_or(0, |w| (pos + 1).saturating_sub(w as usize))
    }

    /// Positions a query at `pos` attends to.
    pub fn len_at(&self, pos: usize) -> usize {
        pos + 1 - self.first(pos)
    }

    /// Blocks per KV head the grid has: the most any position up to `max_pos` uses. Below the
    /// point where every head gets its full share of blocks, chunks are the shortest and their
    /// count grows with the length; past it the count is the per-head share (the chunk lengthens
    /// instead, so it can drop just past that point), until chunks reach their longest.
    pub fn max_chunks(&self) -> usize {
        let longest = self.window.map_or(self.max_pos + 1, |w| (w as usize).min(self.max_pos + 1));
        let per_head = attn_decode_per_head(self.n_kv());
        let short = longest.div_ceil(ATTN_DECODE_MIN_CHUNK).min(per_head);
        short.max(longest.div_ceil(ATTN_DECODE_MAX_CHUNK as usize))
    }

    /// Floats of `part` any launch over a cache of up to `capacity` positions needs: chunks are at
    /// most the per-head block target (while they are shorter than the longest chunk) or the
    /// positions over the longest chunk.
    pub fn part_len(capacity: usize, n_head: usize, n_kv: usize, head_dim: usize) -> usize {
        let per_head = attn_decode_per_head(n_kv);
        let chunks = per_head.max(capacity.div_ceil(ATTN_DECODE_MAX_CHUNK as usize));
        mul(mul(n_head, chunks), head_dim + 2)
    }
}

description! {
    /// out = act(gate) · up over `n` floats.
    Glu {
        buffers {
            gate,
            up,
            out,
        }
        scalars {
            kind: GluKind,
            n: usize,
        }
    }
}

description! {
    /// out = a + b over `n` floats (`out` may be `a`).
    Add {
        buffers {
            a,
            b,
            out,
        }
        scalars {
            n: usize,
        }
    }
}

description! {
    /// `x[i] += bias[i % cols]` in place over `n` floats (rows of `cols`).
    AddBias {
        buffers {
            x,
            /// `[cols]`
            bias,
        }
        scalars {
            n: usize,
            cols: usize,
        }
    }
}

description! {
    /// x = cap · tanh(x / cap) in place over `n` floats.
    Softcap {
        buffers {
            x,
        }
        scalars {
            n: usize,
            cap: f32,
        }
    }
}

description! {
    /// Copies this pass's K and V rows (`n_tokens` rows of `row` floats) into the caches (elements
    /// of `kv`, f16 rounded to nearest even) at the tokens' positions, read from `positions` on
    /// the device (so a decode graph runs unchanged at every position) and clamped to
    /// `max_pos0 + t`, the bound the cache was checked against.
    KvAppend {
        buffers {
            /// `[n_tokens, row]`
            k,
            /// `[n_tokens, row]`
            v,
            /// `[position, row]`
            k_cache,
            /// `[position, row]`
            v_cache,
            /// `[n_tokens]` positions.
            positions,
        }
        scalars {
            row: usize,
            n_tokens: usize,
            /// The largest first position the launch may run at.
            max_pos0: usize,
            kv: KvPrecision,
        }
    }
}

description! {
    /// `out[0]` = the index of the largest of `n` floats (the lowest on ties).
    Argmax {
        buffers {
            x,
            /// `[1]`
            out,
        }
        scalars {
            n: usize,
        }
    }
}

description! {
    /// The int8 decode's fused norm: over `rows` rows of `n` (a multiple of 32), `x += d` first
    /// when `residual` (x is the residual stream, updated in place), then `y = x / sqrt(mean(x²) +
    /// eps) · w` (`· (1 + w)` when `add_one`), written as floats to `y` and as q8_1 blocks to `q`.
    /// `d` is unread without `residual` (any f32 handle).
    RmsNormQ8_1 {
        buffers {
            /// `[rows, n]`, read (and written when `residual`).
            x,
            /// `[rows, n]` the residual branch's output.
            d,
            /// `[n]`
            w,
            /// `[rows, n]`
            y,
            /// `[rows, n / 32]` q8_1 blocks of y.
            q,
            /// `[rows, n / 32]` their (d, d·Σq).
            ds,
        }
        scalars {
            n: u32,
            add_one: bool,
            residual: bool,
            rows: usize,
            eps: f32,
        }
    }
}

description! {
    /// Up to three int8 matvecs over one q8_1 input `a` of `k` in one grid: segment i computes
    /// `y<i> = W<i> · x (+ b<i>)` over `rows[i]` rows of `wtypes[i]` (`None` and 0 rows: unused; its
    /// handles are unread). Each segment runs as [`MatVecQ8`] with the default layout.
    MatVecQ8Multi {
        buffers {
            w0,
            w1,
            w2,
            /// `[k / 32]` q8_1 blocks.
            a,
            y0,
            y1,
            y2,
            /// `[rows[i]]` biases, read when `bias`.
            b0,
            b1,
            b2,
        }
        scalars {
            wtypes: [Option<GgmlType>; 3],
            k: u32,
            rows: [usize; 3],
            bias: bool,
        }
    }
}

description! {
    /// Decode's rope and KV append in one launch: rope (as [`Rope`]) in place over the `n_head`
    /// query heads of `q` and the `n_head_kv` key heads of `k` of `n_tokens` tokens, then the rotated
    /// K rows and the V rows stored at the tokens' positions in the caches (as [`KvAppend`]: read
    /// from `positions`, clamped to `max_pos0 + t`).
    RopeKv {
        buffers {
            /// `[n_tokens, n_head, head_dim]`
            q,
            /// `[n_tokens, n_head_kv, head_dim]`
            k,
            /// `[n_tokens, n_head_kv, head_dim]`
            v,
            /// `[position, n_head_kv, head_dim]`
            k_cache,
            v_cache,
            /// `[n_tokens]` positions.
            positions,
            /// `[rope_dims / 2]` per-pair frequency divisors.
            freq_factors,
        }
        scalars {
            head_dim: u32,
            rope_dims: u32,
            kind: RopeKind,
            n_tokens: usize,
            n_head: usize,
            n_head_kv: usize,
            base: f32,
            freq_scale: f32,
            /// The largest first position the launch may run at.
            max_pos0: usize,
            kv: KvPrecision,
        }
    }
}

description! {
    /// out = act(gate) · up over `n` floats (a multiple of 32), also written as q8_1 blocks to `q`.
    GluQ8_1 {
        buffers {
            gate,
            up,
            out,
            /// `[n / 32]` q8_1 blocks of out.
            q,
            /// `[n / 32]` their (d, d·Σq).
            ds,
        }
        scalars {
            kind: GluKind,
            n: usize,
        }
    }
}

/// What every description provides; [`Launch`] dispatches to it.
trait Describe<B> {
    fn spec(&self) -> KernelSpec;
    fn grid(&self) -> [u32; 3];
    /// The kernel's arguments, in its template's order.
    fn args(&self) -> Vec<Arg<'_, B>>;
    /// Consistency the types cannot express (beyond the buffer lengths and `int` ranges).
    fn validate(&self) -> Result<(), String> {
        Ok(())
    }
}

fn blocks(n: usize, per_block: u32) -> u32 {
    dim(n.div_ceil(per_block as usize))
}

impl<B> Describe<B> for Embedding<B> {
    fn spec(&self) -> KernelSpec {
        KernelSpec::Embedding { wtype: self.wtype, n_embd: self.n_embd }
    }
    fn grid(&self) -> [u32; 3] {
        [dim(self.n_tokens), 1, 1]
    }
    fn args(&self) -> Vec<Arg<'_, B>> {
        let row_bytes = self.wtype.row_bytes(self.n_embd as u64).map_or(usize::MAX, |b| b as usize);
        vec![
            buf("w", &self.table, Elem::U8, mul(self.n_rows, row_bytes)),
            buf("ids", &self.ids, Elem::I32, self.n_tokens),
            buf("out", &self.out, Elem::F32, mul(self.n_tokens, self.n_embd as usize)),
            int("n_rows", self.n_rows),
            float("scale", self.scale),
        ]
    }
}

impl<B> Describe<B> for RmsNorm<B> {
    fn spec(&self) -> KernelSpec {
        KernelSpec::RmsNorm { n: self.n, add_one: self.add_one }
    }
    fn grid(&self) -> [u32; 3] {
        [dim(self.rows), 1, 1]
    }
    fn args(&self) -> Vec<Arg<'_, B>> {
        let len = mul(self.rows, self.n as usize);
        vec![
            buf("x", &self.x, Elem::F32, len),
            buf("w", &self.w, Elem::F32, self.n as usize),
            buf("y", &self.y, Elem::F32, len),
            float("eps", self.eps),
        ]
    }
}

impl<B> Describe<B> for Rope<B> {
    fn spec(&self) -> KernelSpec {
        KernelSpec::Rope { head_dim: self.head_dim, rope_dims: self.rope_dims, kind: self.kind }
    }
    fn grid(&self) -> [u32; 3] {
        [dim(self.n_tokens), dim(self.n_heads), 1]
    }
    fn args(&self) -> Vec<Arg<'_, B>> {
        vec![
            buf("x", &self.x, Elem::F32, mul(mul(self.n_tokens, self.n_heads), self.head_dim as usize)),
            buf("pos", &self.positions, Elem::I32, self.n_tokens),
            int("n_heads", self.n_heads),
            float("base", self.base),
            float("freq_scale", self.freq_scale),
            buf("freq_factors", &self.freq_factors, Elem::F32, self.rope_dims as usize / 2),
            float("ext_factor", self.ext.ext_factor),
            float("attn_factor", self.ext.attn_factor),
            float("corr_low", self.ext.corr_dims[0]),
            float("corr_high", self.ext.corr_dims[1]),
        ]
    }
}

fn weight_bytes(wtype: GgmlType, k: u32, rows: usize) -> usize {
    mul(rows, wtype.row_bytes(k as u64).map_or(usize::MAX, |b| b as usize))
}

impl<B> Describe<B> for MatVec<B> {
    fn spec(&self) -> KernelSpec {
        KernelSpec::MatVec { wtype: self.wtype, k: self.k }
    }
    fn grid(&self) -> [u32; 3] {
        [blocks(self.rows, ROWS_PER_BLOCK), 1, 1]
    }
    fn args(&self) -> Vec<Arg<'_, B>> {
        vec![
            buf("w", &self.w, Elem::U8, weight_bytes(self.wtype, self.k, self.rows)),
            buf("x", &self.x, Elem::F32, self.k as usize),
            buf("y", &self.y, Elem::F32, self.rows),
            int("n_rows", self.rows),
        ]
    }
}

impl<B> Describe<B> for QuantizeQ8_1<B> {
    fn spec(&self) -> KernelSpec {
        KernelSpec::QuantizeQ8_1
    }
    fn grid(&self) -> [u32; 3] {
        [blocks(self.n, QUANTIZE_THREADS), 1, 1]
    }
    fn args(&self) -> Vec<Arg<'_, B>> {
        vec![
            buf("x", &self.x, Elem::F32, self.n),
            buf("out", &self.out, Elem::U8, q8_1_bytes(self.n)),
            buf("ds", &self.ds, Elem::F32, q8_1_ds_len(self.n)),
            int("n", self.n),
        ]
    }
    fn validate(&self) -> Result<(), String> {
        if self.n == 0 || !self.n.is_multiple_of(32) {
            return Err(format!("{} values are not whole q8_1 blocks of 32", self.n));
        }
        Ok(())
    }
}

impl<B> Describe<B> for MatVecQ8<B> {
    fn spec(&self) -> KernelSpec {
        KernelSpec::MatVecQ8 {
            wtype: self.wtype,
            k: self.k,
            threads_per_row: self.layout.threads_per_row,
            rows_per_thread: self.layout.rows_per_thread,
        }
    }
    fn grid(&self) -> [u32; 3] {
        [blocks(self.rows, self.layout.rows_per_block().max(1)), 1, 1]
    }
    fn args(&self) -> Vec<Arg<'_, B>> {
        vec![
            buf("w", &self.w, Elem::U8, weight_bytes(self.wtype, self.k, self.rows)),
            buf("a", &self.a, Elem::U8, q8_1_bytes(self.k as usize)),
            buf("y", &self.y, Elem::F32, self.rows),
            int("n_rows", self.rows),
        ]
    }
}

impl<B> Describe<B> for MatMul<B> {
    fn spec(&self) -> KernelSpec {
        KernelSpec::MatMul { wtype: self.wtype, k: self.k }
    }
    fn grid(&self) -> [u32; 3] {
        [blocks(self.rows, ROWS_PER_BLOCK), blocks(self.tokens, TOKENS_PER_WARP), 1]
    }
    fn args(&self) -> Vec<Arg<'_, B>> {
        vec![
            buf("w", &self.w, Elem::U8, weight_bytes(self.wtype, self.k, self.rows)),
            buf("x", &self.x, Elem::F32, mul(self.tokens, self.k as usize)),
            buf("y", &self.y, Elem::F32, mul(self.tokens, self.rows)),
            int("n_rows", self.rows),
            int("n_tokens", self.tokens),
        ]
    }
}

impl<B> Describe<B> for DequantF16<B> {
    fn spec(&self) -> KernelSpec {
        KernelSpec::DequantF16 { wtype: self.wtype, k: self.k }
    }
    fn grid(&self) -> [u32; 3] {
        // A thread a dequantized run (`dequant_part`'s PART values).
        let runs = mul(self.rows, self.k as usize / dequant_run(self.wtype));
        [blocks(runs, BLOCK_THREADS), 1, 1]
    }
    fn args(&self) -> Vec<Arg<'_, B>> {
        vec![
            buf("w", &self.w, Elem::U8, weight_bytes(self.wtype, self.k, self.rows)),
            buf("out", &self.out, Elem::F16, mul(self.rows, self.k as usize)),
            int("n_rows", self.rows),
        ]
    }
}

/// Values of one `dequant_part` run of `wtype` (the templates' PART; the rendered dequant_f16
/// asserts the two agree). 1 for types no template takes (the spec refuses them).
pub fn dequant_run(wtype: GgmlType) -> usize {
    match wtype {
        GgmlType::Q8_0 | GgmlType::Q4_0 | GgmlType::Q4_1 | GgmlType::Q5_0 | GgmlType::Q5_1 | GgmlType::IQ4_NL => 8,
        GgmlType::Q2_K | GgmlType::Q3_K | GgmlType::Q4_K | GgmlType::Q5_K | GgmlType::Q6_K | GgmlType::IQ4_XS => 16,
        _ => 1,
    }
}

impl<B> Describe<B> for ConvertF16<B> {
    fn spec(&self) -> KernelSpec {
        KernelSpec::ConvertF16
    }
    fn grid(&self) -> [u32; 3] {
        [dim(self.rows), 1, 1]
    }
    fn args(&self) -> Vec<Arg<'_, B>> {
        let n = mul(self.rows, self.k as usize);
        vec![
            buf("x", &self.x, Elem::F32, n),
            buf("out", &self.out, Elem::F16, n),
            buf("inv_scale", &self.inv_scale, Elem::F32, self.rows),
            int("k", self.k as usize),
        ]
    }
}

impl<B> Describe<B> for GemmF16<B> {
    fn spec(&self) -> KernelSpec {
        KernelSpec::GemmF16 { k: self.k, tile: self.tile }
    }
    fn grid(&self) -> [u32; 3] {
        [blocks(self.rows, self.tile.rows()), blocks(self.tokens, self.tile.tokens()), 1]
    }
    fn args(&self) -> Vec<Arg<'_, B>> {
        vec![
            buf("w", &self.w, Elem::F16, mul(self.rows, self.k as usize)),
            buf("x", &self.x, Elem::F16, mul(self.tokens, self.k as usize)),
            buf("x_scale", &self.x_scale, Elem::F32, self.tokens),
            buf("y", &self.y, Elem::F32, mul(self.tokens, self.rows)),
            int("n_rows", self.rows),
            int("n_tokens", self.tokens),
        ]
    }
    fn validate(&self) -> Result<(), String> {
        if self.rows == 0 || self.tokens == 0 {
            return Err(format!("{} rows by {} tokens is an empty product", self.rows, self.tokens));
        }
        Ok(())
    }
}

impl<B> MatMulQ8<B> {
    /// Floats of a stream-K launch's parts: two tiles a worker (the one its steps begin in and the
    /// one they end in).
    pub fn part_len(k: u32, workers: u32) -> usize {
        workers as usize * 2 * (MMQ_ROWS * mmq_tokens(k)) as usize
    }

    /// Blocks of a data-parallel launch (a tile each).
    pub fn tiles(k: u32, rows: usize, tokens: usize) -> usize {
        rows.div_ceil(MMQ_ROWS as usize) * tokens.div_ceil(mmq_tokens(k) as usize)
    }

    /// The workers for `rows` × `tokens` on a GPU of `multiprocessors`: stream-K, one worker a
    /// multiprocessor, where [`mmq_may_stream`] and the tiles outnumber the multiprocessors
    /// with their last wave under 90% full (the synthetic 7B's 11008-row products over 512
    /// tokens: 344 tiles, 2.6 waves of 132); else 0, a block a tile.
    pub fn workers_for(k: u32, rows: usize, tokens: usize, multiprocessors: u32) -> u32 {
        let (tiles, sms) = (Self::tiles(k, rows, tokens), multiprocessors as usize);
        if !mmq_may_stream(k) || sms == 0 || tiles <= sms {
            return 0;
        }
        let waves = tiles.div_ceil(sms);
        if tiles * 10 >= waves * sms * 9 {
            0
        } else {
            multiprocessors
        }
    }
}

impl<B> Describe<B> for MatMulQ8<B> {
    fn spec(&self) -> KernelSpec {
        KernelSpec::MatMulQ8 { wtype: self.wtype, k: self.k, stream_k: self.workers > 0 }
    }
    fn grid(&self) -> [u32; 3] {
        if self.workers > 0 {
            [self.workers, 1, 1]
        } else {
            [blocks(self.rows, MMQ_ROWS), blocks(self.tokens, mmq_tokens(self.k)), 1]
        }
    }
    fn args(&self) -> Vec<Arg<'_, B>> {
        vec![
            buf("w", &self.w, Elem::U8, weight_bytes(self.wtype, self.k, self.rows)),
            buf("a", &self.a, Elem::U8, q8_1_bytes(mul(self.tokens, self.k as usize))),
            buf("ds", &self.ds, Elem::F32, q8_1_ds_len(mul(self.tokens, self.k as usize))),
            buf("y", &self.y, Elem::F32, mul(self.tokens, self.rows)),
            buf("part", &self.part, Elem::F32, Self::part_len(self.k, self.workers)),
            buf("counters", &self.counters, Elem::I32, self.workers as usize),
            int("n_rows", self.rows),
            int("n_tokens", self.tokens),
            int("workers", self.workers as usize),
        ]
    }
    fn validate(&self) -> Result<(), String> {
        if self.rows == 0 || self.tokens == 0 {
            return Err(format!("{} rows by {} tokens is an empty product", self.rows, self.tokens));
        }
        // The kernel counts units of work (a tile's steps, at most k / 32 of them) times workers
        // in an int.
        let units = Self::tiles(self.k, self.rows, self.tokens).saturating_mul(self.k as usize / 32);
        if units.saturating_mul(self.workers as usize + 1) > i32::MAX as usize {
            return Err(format!(
                "{} rows by {} tokens of {} values over {} workers counts past an int",
                self.rows, self.tokens, self.k, self.workers
            ));
        }
        Ok(())
    }
}

impl<B> Describe<B> for FlashAttn<B> {
    fn spec(&self) -> KernelSpec {
        KernelSpec::FlashAttn {
            head_dim: self.head_dim,
            gqa: self.gqa,
            sliding_window: self.window.is_some(),
            softcap: self.softcap.is_some(),
        }
    }
    fn grid(&self) -> [u32; 3] {
        [dim(self.n_head), blocks(self.n_q, flash_queries(self.head_dim)), 1]
    }
    fn args(&self) -> Vec<Arg<'_, B>> {
        let hd = self.head_dim as usize;
        let q_len = mul(mul(self.n_q, self.n_head), hd);
        // Query i reads cached positions up to pos0 + i.
        let cache_len = mul(mul(self.pos0.saturating_add(self.n_q), self.n_head / self.gqa.max(1) as usize), hd);
        vec![
            buf("q", &self.q, Elem::F32, q_len),
            buf("k", &self.k_cache, Elem::F16, cache_len),
            buf("v", &self.v_cache, Elem::F16, cache_len),
            buf("out", &self.out, Elem::F32, q_len),
            int("n_head", self.n_head),
            int("n_q", self.n_q),
            int("pos0", self.pos0),
            float("scale", self.scale),
            float("softcap", self.softcap.unwrap_or(0.0)),
            int("window", self.window.unwrap_or(0) as usize),
        ]
    }
    fn validate(&self) -> Result<(), String> {
        if self.n_q == 0 {
            return Err("attention of no queries".into());
        }
        validate_attention(self.n_head, self.gqa, self.window, self.softcap)
    }
}

/// What both attention kernels need of their heads, window and soft-cap.
fn validate_attention(n_head: usize, gqa: u32, window: Option<u32>, softcap: Option<f32>) -> Result<(), String> {
    if gqa == 0 || !n_head.is_multiple_of(gqa as usize) {
        return Err(format!("{n_head} query heads do not share KV heads in groups of {gqa}"));
    }
    if window == Some(0) {
        return Err("a sliding window must hold at least one position".into());
    }
    if let Some(cap) = softcap {
        if !(cap.is_finite() && cap > 0.0) {
            return Err(format!("the score soft-cap must be positive and finite, is {cap}"));
        }
    }
    Ok(())
}

impl<B> Describe<B> for Attention<B> {
    fn spec(&self) -> KernelSpec {
        KernelSpec::Attention {
            head_dim: self.head_dim,
            gqa: self.gqa,
            sliding_window: self.window.is_some(),
            softcap: self.softcap.is_some(),
            kv: self.kv,
        }
    }
    fn grid(&self) -> [u32; 3] {
        [dim(self.n_head), dim(self.n_q), 1]
    }
    fn args(&self) -> Vec<Arg<'_, B>> {
        let hd = self.head_dim as usize;
        let q_len = mul(mul(self.n_q, self.n_head), hd);
        // Query i reads cached positions up to pos0 + i.
        let cache_len = mul(mul(self.pos0.saturating_add(self.n_q), self.n_head / self.gqa.max(1) as usize), hd);
        vec![
            buf("q", &self.q, Elem::F32, q_len),
            buf("k", &self.k_cache, self.kv.into(), cache_len),
            buf("v", &self.v_cache, self.kv.into(), cache_len),
            buf("out", &self.out, Elem::F32, q_len),
            int("n_head", self.n_head),
            int("pos0", self.pos0),
            float("scale", self.scale),
            float("softcap", self.softcap.unwrap_or(0.0)),
            int("window", self.window.unwrap_or(0) as usize),
        ]
    }
    fn validate(&self) -> Result<(), String> {
        validate_attention(self.n_head, self.gqa, self.window, self.softcap)
    }
}

impl<B> Describe<B> for AttnDecode<B> {
    fn spec(&self) -> KernelSpec {
        KernelSpec::AttnDecode {
            head_dim: self.head_dim,
            gqa: self.gqa,
            sliding_window: self.window.is_some(),
            softcap: self.softcap.is_some(),
            kv: self.kv,
        }
    }
    fn grid(&self) -> [u32; 3] {
        [dim(self.n_kv()), dim(self.max_chunks()), 1]
    }
    fn args(&self) -> Vec<Arg<'_, B>> {
        let hd = self.head_dim as usize;
        let q_len = mul(self.n_head, hd);
        let cache_len = mul(mul(self.max_pos.saturating_add(1), self.n_kv()), hd);
        let chunks = self.max_chunks();
        // One chunk writes `out` directly and leaves `part` and the counters alone.
        let part_len = if chunks > 1 { mul(mul(self.n_head, chunks), hd + 2) } else { 0 };
        vec![
            buf("q", &self.q, Elem::F32, q_len),
            buf("k", &self.k_cache, self.kv.into(), cache_len),
            buf("v", &self.v_cache, self.kv.into(), cache_len),
            buf("out", &self.out, Elem::F32, q_len),
            buf("part", &self.part, Elem::F32, part_len),
            buf("counters", &self.counters, Elem::I32, self.n_kv()),
            buf("pos", &self.positions, Elem::I32, 1),
            int("max_pos", self.max_pos),
            float("scale", self.scale),
            float("softcap", self.softcap.unwrap_or(0.0)),
            int("window", self.window.unwrap_or(0) as usize),
        ]
    }
    fn validate(&self) -> Result<(), String> {
        validate_attention(self.n_head, self.gqa, self.window, self.softcap)?;
        // Positions are ints in the kernel; the cache offset is computed in 64 bits.
        if self.max_pos >= i32::MAX as usize {
            return Err(format!("position {} does not fit an int", self.max_pos));
        }
        Ok(())
    }
}

impl<B> Describe<B> for Glu<B> {
    fn spec(&self) -> KernelSpec {
        KernelSpec::Glu { kind: self.kind }
    }
    fn grid(&self) -> [u32; 3] {
        [blocks(self.n, 256), 1, 1]
    }
    fn args(&self) -> Vec<Arg<'_, B>> {
        vec![
            buf("gate", &self.gate, Elem::F32, self.n),
            buf("up", &self.up, Elem::F32, self.n),
            buf("out", &self.out, Elem::F32, self.n),
            int("n", self.n),
        ]
    }
}

/// The elementwise kernel's arguments (one template serves add, add_bias and softcap): y[i] from
/// a[i] and b[i], or b[i % cols] (b_len elements of b are read).
fn elementwise_args<'a, B>(
    a: &'a B,
    b: &'a B,
    b_len: usize,
    y: &'a B,
    n: usize,
    cols: usize,
    s: f32,
) -> Vec<Arg<'a, B>> {
    vec![
        buf("a", a, Elem::F32, n),
        buf("b", b, Elem::F32, b_len),
        buf("y", y, Elem::F32, n),
        int("n", n),
        int("cols", cols),
        float("s", s),
    ]
}

impl<B> Describe<B> for Add<B> {
    fn spec(&self) -> KernelSpec {
        KernelSpec::Elementwise { op: ElementwiseOp::Add }
    }
    fn grid(&self) -> [u32; 3] {
        [blocks(self.n, 256), 1, 1]
    }
    fn args(&self) -> Vec<Arg<'_, B>> {
        elementwise_args(&self.a, &self.b, self.n, &self.out, self.n, 0, 0.0)
    }
}

impl<B> Describe<B> for AddBias<B> {
    fn spec(&self) -> KernelSpec {
        KernelSpec::Elementwise { op: ElementwiseOp::AddBias }
    }
    fn grid(&self) -> [u32; 3] {
        [blocks(self.n, 256), 1, 1]
    }
    fn args(&self) -> Vec<Arg<'_, B>> {
        elementwise_args(&self.x, &self.bias, self.cols, &self.x, self.n, self.cols, 0.0)
    }
    fn validate(&self) -> Result<(), String> {
        if self.cols == 0 || !self.n.is_multiple_of(self.cols) {
            return Err(format!("{} values are not whole rows of a {}-wide bias", self.n, self.cols));
        }
        Ok(())
    }
}

impl<B> Describe<B> for Softcap<B> {
    fn spec(&self) -> KernelSpec {
        KernelSpec::Elementwise { op: ElementwiseOp::Softcap }
    }
    fn grid(&self) -> [u32; 3] {
        [blocks(self.n, 256), 1, 1]
    }
    fn args(&self) -> Vec<Arg<'_, B>> {
        // The kernel reads no b for a soft-cap; x stands in for the pointer.
        elementwise_args(&self.x, &self.x, 0, &self.x, self.n, 0, self.cap)
    }
    fn validate(&self) -> Result<(), String> {
        if !(self.cap.is_finite() && self.cap > 0.0) {
            return Err(format!("the soft-cap must be positive and finite, is {}", self.cap));
        }
        Ok(())
    }
}

impl<B> Describe<B> for KvAppend<B> {
    fn spec(&self) -> KernelSpec {
        KernelSpec::KvAppend { kv: self.kv }
    }
    fn grid(&self) -> [u32; 3] {
        [blocks(mul(self.row, self.n_tokens), 256), 1, 1]
    }
    fn args(&self) -> Vec<Arg<'_, B>> {
        let new = mul(self.row, self.n_tokens);
        let cache = mul(self.row, self.max_pos0.saturating_add(self.n_tokens));
        vec![
            buf("k", &self.k, Elem::F32, new),
            buf("v", &self.v, Elem::F32, new),
            buf("k_cache", &self.k_cache, self.kv.into(), cache),
            buf("v_cache", &self.v_cache, self.kv.into(), cache),
            buf("pos", &self.positions, Elem::I32, self.n_tokens),
            int("row", self.row),
            int("n_tokens", self.n_tokens),
            int("max_pos0", self.max_pos0),
        ]
    }
    fn validate(&self) -> Result<(), String> {
        // The kernel indexes the cache with 64-bit arithmetic, but each thread's index is an int.
        if mul(self.row, self.n_tokens) > i32::MAX as usize {
            return Err(format!("{} × {} values do not fit one launch", self.n_tokens, self.row));
        }
        Ok(())
    }
}

impl<B> Describe<B> for Argmax<B> {
    fn spec(&self) -> KernelSpec {
        KernelSpec::Argmax
    }
    fn grid(&self) -> [u32; 3] {
        [1, 1, 1]
    }
    fn args(&self) -> Vec<Arg<'_, B>> {
        vec![buf("x", &self.x, Elem::F32, self.n), buf("out", &self.out, Elem::I32, 1), int("n", self.n)]
    }
    fn validate(&self) -> Result<(), String> {
        if self.n == 0 {
            return Err("the argmax of no values".into());
        }
        Ok(())
    }
}

impl<B> Describe<B> for RmsNormQ8_1<B> {
    fn spec(&self) -> KernelSpec {
        KernelSpec::RmsNormQ8_1 { n: self.n, add_one: self.add_one, residual: self.residual }
    }
    fn grid(&self) -> [u32; 3] {
        [dim(self.rows), 1, 1]
    }
    fn args(&self) -> Vec<Arg<'_, B>> {
        let len = mul(self.rows, self.n as usize);
        vec![
            buf("x", &self.x, Elem::F32, len),
            buf("d", &self.d, Elem::F32, if self.residual { len } else { 0 }),
            buf("w", &self.w, Elem::F32, self.n as usize),
            buf("y", &self.y, Elem::F32, len),
            buf("q", &self.q, Elem::U8, q8_1_bytes(len)),
            buf("ds", &self.ds, Elem::F32, q8_1_ds_len(len)),
            float("eps", self.eps),
        ]
    }
}

impl<B> MatVecQ8Multi<B> {
    /// The layout of segment `i` (that of a lone [`MatVecQ8`] of its type).
    pub fn layout(&self, i: usize) -> Option<MmvqLayout> {
        self.wtypes[i].map(|ty| MmvqLayout::default_for(ty, self.k))
    }

    /// Blocks of segment `i`.
    fn seg_blocks(&self, i: usize) -> usize {
        self.layout(i).map_or(0, |l| self.rows[i].div_ceil(l.rows_per_block().max(1) as usize))
    }
}

impl<B> Describe<B> for MatVecQ8Multi<B> {
    fn spec(&self) -> KernelSpec {
        KernelSpec::MatVecQ8Multi { k: self.k, wtypes: self.wtypes, bias: self.bias }
    }
    fn grid(&self) -> [u32; 3] {
        [dim((0..3).map(|i| self.seg_blocks(i)).fold(0, usize::saturating_add)), 1, 1]
    }
    fn args(&self) -> Vec<Arg<'_, B>> {
        let rows = |i: usize| if self.wtypes[i].is_some() { self.rows[i] } else { 0 };
        let w = |i: usize| self.wtypes[i].map_or(0, |ty| weight_bytes(ty, self.k, rows(i)));
        let b = |i: usize| if self.bias { rows(i) } else { 0 };
        vec![
            buf("w0", &self.w0, Elem::U8, w(0)),
            buf("w1", &self.w1, Elem::U8, w(1)),
            buf("w2", &self.w2, Elem::U8, w(2)),
            buf("a", &self.a, Elem::U8, q8_1_bytes(self.k as usize)),
            buf("y0", &self.y0, Elem::F32, rows(0)),
            buf("y1", &self.y1, Elem::F32, rows(1)),
            buf("y2", &self.y2, Elem::F32, rows(2)),
            buf("b0", &self.b0, Elem::F32, b(0)),
            buf("b1", &self.b1, Elem::F32, b(1)),
            buf("b2", &self.b2, Elem::F32, b(2)),
            int("n_rows0", rows(0)),
            int("n_rows1", rows(1)),
            int("n_rows2", rows(2)),
        ]
    }
    fn validate(&self) -> Result<(), String> {
        if let Some(i) = (0..3).find(|&i| self.wtypes[i].is_none() && self.rows[i] != 0) {
            return Err(format!("segment {i} has {} rows and no weight type", self.rows[i]));
        }
        Ok(())
    }
}

impl<B> RopeKv<B> {
    /// Heads a block rotates: one at decode (a block per head, all in parallel); eight in a prefill
    /// pass, whose tokens give blocks enough, so each pair's angle is computed once for eight heads.
    fn heads_per_block(&self) -> usize {
        if self.n_tokens >= 16 {
            8
        } else {
            1
        }
    }
}

impl<B> Describe<B> for RopeKv<B> {
    fn spec(&self) -> KernelSpec {
        KernelSpec::RopeKv { head_dim: self.head_dim, rope_dims: self.rope_dims, kind: self.kind, kv: self.kv }
    }
    fn grid(&self) -> [u32; 3] {
        let heads = self.n_head.saturating_add(self.n_head_kv);
        [dim(self.n_tokens), dim(heads.div_ceil(self.heads_per_block())), 1]
    }
    fn args(&self) -> Vec<Arg<'_, B>> {
        let hd = self.head_dim as usize;
        let kv_new = mul(mul(self.n_tokens, self.n_head_kv), hd);
        let cache = mul(mul(self.max_pos0.saturating_add(self.n_tokens), self.n_head_kv), hd);
        vec![
            buf("q", &self.q, Elem::F32, mul(mul(self.n_tokens, self.n_head), hd)),
            buf("k", &self.k, Elem::F32, kv_new),
            buf("v", &self.v, Elem::F32, kv_new),
            buf("k_cache", &self.k_cache, self.kv.into(), cache),
            buf("v_cache", &self.v_cache, self.kv.into(), cache),
            buf("pos", &self.positions, Elem::I32, self.n_tokens),
            int("n_head", self.n_head),
            int("n_head_kv", self.n_head_kv),
            float("base", self.base),
            float("freq_scale", self.freq_scale),
            buf("freq_factors", &self.freq_factors, Elem::F32, self.rope_dims as usize / 2),
            int("max_pos0", self.max_pos0),
            int("heads_per_block", self.heads_per_block()),
        ]
    }
    fn validate(&self) -> Result<(), String> {
        if self.n_head_kv == 0 {
            return Err("the KV append needs at least one key head".into());
        }
        Ok(())
    }
}

impl<B> Describe<B> for GluQ8_1<B> {
    fn spec(&self) -> KernelSpec {
        KernelSpec::GluQ8_1 { kind: self.kind }
    }
    fn grid(&self) -> [u32; 3] {
        [blocks(self.n, 256), 1, 1]
    }
    fn args(&self) -> Vec<Arg<'_, B>> {
        vec![
            buf("gate", &self.gate, Elem::F32, self.n),
            buf("up", &self.up, Elem::F32, self.n),
            buf("out", &self.out, Elem::F32, self.n),
            buf("q", &self.q, Elem::U8, q8_1_bytes(self.n)),
            buf("ds", &self.ds, Elem::F32, q8_1_ds_len(self.n)),
            int("n", self.n),
        ]
    }
    fn validate(&self) -> Result<(), String> {
        if self.n == 0 || !self.n.is_multiple_of(32) {
            return Err(format!("{} values are not whole q8_1 blocks of 32", self.n));
        }
        Ok(())
    }
}

/// One launch of one op's kernel.
#[derive(Clone, Debug, PartialEq)]
pub enum Launch<B> {
    Embedding(Embedding<B>),
    RmsNorm(RmsNorm<B>),
    Rope(Rope<B>),
    MatVec(MatVec<B>),
    MatMul(MatMul<B>),
    QuantizeQ8_1(QuantizeQ8_1<B>),
    MatVecQ8(MatVecQ8<B>),
    MatMulQ8(MatMulQ8<B>),
    FlashAttn(FlashAttn<B>),
    Attention(Attention<B>),
    AttnDecode(AttnDecode<B>),
    Glu(Glu<B>),
    Add(Add<B>),
    AddBias(AddBias<B>),
    Softcap(Softcap<B>),
    KvAppend(KvAppend<B>),
    Argmax(Argmax<B>),
    RmsNormQ8_1(RmsNormQ8_1<B>),
    MatVecQ8Multi(MatVecQ8Multi<B>),
    RopeKv(RopeKv<B>),
    GluQ8_1(GluQ8_1<B>),
    DequantF16(DequantF16<B>),
    ConvertF16(ConvertF16<B>),
    GemmF16(GemmF16<B>),
}

/// `$body` with `$op` bound to the description inside `$launch`, whichever op it is.
macro_rules! each_op {
    ($launch:expr, $op:ident => $body:expr) => {
        match $launch {
            Launch::Embedding($op) => $body,
            Launch::RmsNorm($op) => $body,
            Launch::Rope($op) => $body,
            Launch::MatVec($op) => $body,
            Launch::MatMul($op) => $body,
            Launch::QuantizeQ8_1($op) => $body,
            Launch::MatVecQ8($op) => $body,
            Launch::MatMulQ8($op) => $body,
            Launch::FlashAttn($op) => $body,
            Launch::Attention($op) => $body,
            Launch::AttnDecode($op) => $body,
            Launch::Glu($op) => $body,
            Launch::Add($op) => $body,
            Launch::AddBias($op) => $body,
            Launch::Softcap($op) => $body,
            Launch::KvAppend($op) => $body,
            Launch::Argmax($op) => $body,
            Launch::RmsNormQ8_1($op) => $body,
            Launch::MatVecQ8Multi($op) => $body,
            Launch::RopeKv($op) => $body,
            Launch::GluQ8_1($op) => $body,
            Launch::DequantF16($op) => $body,
            Launch::ConvertF16($op) => $body,
            Launch::GemmF16($op) => $body,
        }
    };
}

/// The most threads a block may have, and blocks a grid's y and z may have (CUDA's and HIP's).
const MAX_BLOCK_THREADS: u32 = 1024;
const MAX_GRID_YZ: u32 = 65535;

impl<B> Launch<B> {
    /// The kernel this launch runs.
    pub fn spec(&self) -> KernelSpec {
        each_op!(self, op => op.spec())
    }

    /// Blocks in x, y, z.
    pub fn grid(&self) -> [u32; 3] {
        each_op!(self, op => op.grid())
    }

    /// Threads per block in x, y, z, on a target of `warp_size` lanes.
    pub fn block(&self, warp_size: u32) -> [u32; 3] {
        [self.spec().block_threads(warp_size), 1, 1]
    }

    /// The kernel's arguments, in its template's order.
    pub fn args(&self) -> Vec<Arg<'_, B>> {
        each_op!(self, op => op.args())
    }

    /// The same launch over other buffer handles (the first error of `f` stops it).
    pub fn try_map<C, E>(&self, mut f: impl FnMut(&B) -> Result<C, E>) -> Result<Launch<C>, E> {
        Ok(each_op!(self, op => op.try_map(&mut f)?.into()))
    }

    /// Sets the position of the pass's first token, for the ops that take it as a scalar (prefill
    /// attention). Decode attention, the KV append and rope read their positions from the
    /// device's positions buffer instead (a plan bounds them once, by the cache's capacity), so a
    /// planned decode step replays at every position unchanged.
    pub fn set_pos0(&mut self, pos0: usize) {
        match self {
            Launch::Attention(a) => a.pos0 = pos0,
            Launch::FlashAttn(a) => a.pos0 = pos0,
            _ => {}
        }
    }

    /// Checks the launch before it runs: the specialization is one the templates take, the
    /// description is consistent, every size fits an `int`, the grid and block fit the hardware's
    /// limits, and every buffer has the element type and (at least) the length the launch touches.
    pub fn check(&self, warp_size: u32) -> Result<(), LaunchError>
    where
        B: BufferRef,
    {
        let spec = self.spec();
        spec.validate()?;
        let invalid = |what: String| LaunchError::Invalid { kernel: spec.entry_name(), what };
        each_op!(self, op => op.validate()).map_err(invalid)?;
        for arg in self.args() {
            match arg {
                Arg::Int { name, value } if value > i32::MAX as usize => {
                    return Err(invalid(format!("`{name}` = {value} does not fit an int")));
                }
                Arg::Buffer { name, buf, elem, len } => {
                    if buf.elem() != elem {
                        return Err(LaunchError::WrongElem {
                            kernel: spec.entry_name(),
                            name,
                            have: buf.elem(),
                            want: elem,
                        });
                    }
                    if buf.len() < len {
                        return Err(LaunchError::TooSmall {
                            kernel: spec.entry_name(),
                            name,
                            have: buf.len(),
                            need: len,
                        });
                    }
                }
                _ => {}
            }
        }
        let grid = self.grid();
        if grid.contains(&0) || grid[0] > i32::MAX as u32 || grid[1] > MAX_GRID_YZ || grid[2] > MAX_GRID_YZ {
            return Err(invalid(format!("grid {grid:?} is empty or beyond the hardware's limits")));
        }
        let block = spec.block_threads(warp_size);
        if block == 0 || block > MAX_BLOCK_THREADS {
            return Err(invalid(format!("{block} threads a block is not 1..={MAX_BLOCK_THREADS}")));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::templates as t;
    use super::*;

    /// An int8 matrix product over unit handles (the tests need only its shape).
    fn unit_mmq(wtype: GgmlType, k: u32, rows: usize, tokens: usize, workers: u32) -> MatMulQ8<()> {
        MatMulQ8 { w: (), a: (), ds: (), y: (), part: (), counters: (), wtype, k, rows, tokens, workers }
    }

    /// One launch of every op (over unit handles), and the template that kernel comes from.
    fn every_op() -> Vec<(Launch<()>, &'static str)> {
        let wtype = GgmlType::Q4_K;
        let flash: Launch<()> = FlashAttn {
            q: (),
            k_cache: (),
            v_cache: (),
            out: (),
            head_dim: 64,
            gqa: 2,
            n_head: 4,
            n_q: 3,
            pos0: 5,
            scale: 0.125,
            softcap: Some(30.0),
            window: Some(4),
        }
        .into();
        vec![
            (
                Embedding { table: (), ids: (), out: (), wtype, n_embd: 256, n_rows: 10, n_tokens: 3, scale: 1.0 }
                    .into(),
                t::EMBEDDING.1,
            ),
            (RmsNorm { x: (), w: (), y: (), n: 64, add_one: false, rows: 2, eps: 1e-6 }.into(), t::RMSNORM.1),
            (
                Rope {
                    x: (),
                    positions: (),
                    freq_factors: (),
                    head_dim: 64,
                    rope_dims: 64,
                    kind: RopeKind::Neox,
                    n_tokens: 2,
                    n_heads: 3,
                    base: 1e4,
                    freq_scale: 1.0,
                    ext: RopeExt::NONE,
                }
                .into(),
                t::ROPE.1,
            ),
            (MatVec { w: (), x: (), y: (), wtype, k: 256, rows: 5 }.into(), t::MATVEC.1),
            (MatMul { w: (), x: (), y: (), wtype, k: 256, rows: 5, tokens: 9 }.into(), t::MATMUL.1),
            (QuantizeQ8_1 { x: (), out: (), ds: (), n: 256 }.into(), t::QUANTIZE_Q8_1.1),
            (MatVecQ8::new((), (), (), wtype, 256, 5).into(), t::MMVQ.1),
            (unit_mmq(wtype, 256, 5, 9, 0).into(), t::MMQ.1),
            // The same launch renders the f32 kernel or the matrix-unit one, by target.
            (flash.clone(), t::FLASH_ATTN.1),
            (flash, t::FLASH_ATTN_MMA.1),
            (
                Attention {
                    q: (),
                    k_cache: (),
                    v_cache: (),
                    out: (),
                    head_dim: 64,
                    gqa: 2,
                    n_head: 4,
                    n_q: 3,
                    pos0: 5,
                    scale: 0.125,
                    softcap: None,
                    window: Some(4),
                    kv: KvPrecision::F16,
                }
                .into(),
                t::ATTENTION.1,
            ),
            (
                AttnDecode {
                    q: (),
                    k_cache: (),
                    v_cache: (),
                    out: (),
                    part: (),
                    counters: (),
                    positions: (),
                    head_dim: 64,
                    gqa: 2,
                    n_head: 4,
                    max_pos: 300,
                    scale: 0.125,
                    softcap: Some(50.0),
                    window: None,
                    kv: KvPrecision::F32,
                }
                .into(),
                t::ATTN_DECODE.1,
            ),
            (Glu { gate: (), up: (), out: (), kind: GluKind::SwiGlu, n: 10 }.into(), t::GLU.1),
            (Add { a: (), b: (), out: (), n: 10 }.into(), t::ELEMENTWISE.1),
            (AddBias { x: (), bias: (), n: 10, cols: 5 }.into(), t::ELEMENTWISE.1),
            (Softcap { x: (), n: 10, cap: 30.0 }.into(), t::ELEMENTWISE.1),
            (
                KvAppend {
                    k: (),
                    v: (),
                    k_cache: (),
                    v_cache: (),
                    positions: (),
                    row: 8,
                    n_tokens: 2,
                    max_pos0: 4,
                    kv: KvPrecision::F16,
                }
                .into(),
                t::KV_APPEND.1,
            ),
            (Argmax { x: (), out: (), n: 10 }.into(), t::ARGMAX.1),
            (
                RmsNormQ8_1 {
                    x: (),
                    d: (),
                    w: (),
                    y: (),
                    q: (),
                    ds: (),
                    n: 64,
                    add_one: false,
                    residual: true,
                    rows: 1,
                    eps: 1e-6,
                }
                .into(),
                t::RMSNORM_Q8_1.1,
            ),
            (
                MatVecQ8Multi {
                    w0: (),
                    w1: (),
                    w2: (),
                    a: (),
                    y0: (),
                    y1: (),
                    y2: (),
                    b0: (),
                    b1: (),
                    b2: (),
                    wtypes: [Some(wtype), Some(GgmlType::Q6_K), None],
                    k: 256,
                    rows: [5, 3, 0],
                    bias: true,
                }
                .into(),
                t::MMVQ_MULTI.1,
            ),
            (
                RopeKv {
                    q: (),
                    k: (),
                    v: (),
                    k_cache: (),
                    v_cache: (),
                    positions: (),
                    freq_factors: (),
                    head_dim: 64,
                    rope_dims: 64,
                    kind: RopeKind::Neox,
                    n_tokens: 1,
                    n_head: 4,
                    n_head_kv: 2,
                    base: 1e4,
                    freq_scale: 1.0,
                    max_pos0: 3,
                    kv: KvPrecision::F16,
                }
                .into(),
                t::ROPE_KV.1,
            ),
            (GluQ8_1 { gate: (), up: (), out: (), q: (), ds: (), kind: GluKind::GeGlu, n: 64 }.into(), t::GLU_Q8_1.1),
        ]
    }

    /// The template's parameters: (name, kind), kind as the argument list spells it; `kv_t` is
    /// the element the launch's spec renders it as.
    fn template_params(body: &str, kv: Elem) -> Vec<(String, String)> {
        let start = body.find("KERNEL_NAME(").expect("every template defines KERNEL_NAME") + "KERNEL_NAME(".len();
        let end = start + body[start..].find(')').expect("the parameter list closes");
        body[start..end]
            .split(',')
            .map(|p| {
                let p = p.replace("__restrict__", "").replace("const ", "");
                let words: Vec<&str> = p.split_whitespace().collect();
                let (name, ty) = words.split_last().expect("a parameter has a type and a name");
                let kind = match ty.join(" ").as_str() {
                    "float*" | "float2*" => "f32 buffer",
                    "int*" => "i32 buffer",
                    "block_t*" | "block_q8_1*" | "u8*" => "u8 buffer",
                    "u16*" => "f16 buffer",
                    "kv_t*" => return (name.to_string(), format!("{kv} buffer")),
                    "int" => "int",
                    "float" => "float",
                    other => panic!("parameter type {other} has no launch argument kind"),
                };
                (name.to_string(), kind.to_string())
            })
            .collect()
    }

    #[test]
    fn every_description_passes_its_template_the_parameters_it_declares() {
        for (launch, body) in every_op() {
            let ours: Vec<(String, String)> = launch
                .args()
                .iter()
                .map(|a| match *a {
                    Arg::Buffer { name, elem, .. } => (name.to_string(), format!("{elem} buffer")),
                    Arg::Int { name, .. } => (name.to_string(), "int".into()),
                    Arg::Float { name, .. } => (name.to_string(), "float".into()),
                })
                .collect();
            let kv = match launch.spec() {
                KernelSpec::Attention { kv, .. }
                | KernelSpec::AttnDecode { kv, .. }
                | KernelSpec::KvAppend { kv }
                | KernelSpec::RopeKv { kv, .. } => kv.into(),
                _ => Elem::F32,
            };
            assert_eq!(ours, template_params(body, kv), "{}", launch.spec());
        }
    }

    /// A decode graph chains kernels by programmatic dependent launch on sm_90+ (a kernel may
    /// start while the one before it runs): safe only if every kernel waits for its predecessor
    /// before it touches memory, so `rf_grid_wait()` must be each kernel's first statement.
    #[test]
    fn every_kernel_waits_for_the_one_before_it_first() {
        for (launch, body) in every_op() {
            let start = body.find("KERNEL_NAME(").expect("every template defines KERNEL_NAME");
            let open = start + body[start..].find('{').expect("the kernel has a body");
            let first = body[open + 1..].trim_start();
            assert!(
                first.starts_with("rf_grid_wait();"),
                "{}: the kernel starts with {:?}",
                launch.spec(),
                &first[..40]
            );
        }
    }

    /// A handle that only knows its type and length.
    struct Fake(Elem, usize);

    impl BufferRef for Fake {
        fn elem(&self) -> Elem {
            self.0
        }
        fn len(&self) -> usize {
            self.1
        }
    }

    fn matvec(w: Fake, x: Fake, y: Fake, rows: usize) -> Launch<Fake> {
        MatVec { w, x, y, wtype: GgmlType::Q8_0, k: 64, rows }.into()
    }

    #[test]
    fn the_check_holds_buffers_to_what_the_launch_touches() {
        // 3 rows of 64 Q8_0 values: 2 blocks of 34 bytes each.
        let ok = matvec(Fake(Elem::U8, 204), Fake(Elem::F32, 64), Fake(Elem::F32, 3), 3);
        assert_eq!(ok.check(32), Ok(()));
        assert_eq!(ok.grid(), [1, 1, 1]);
        assert_eq!(ok.block(32), [128, 1, 1]);
        assert_eq!(ok.block(64), [256, 1, 1]);
        let short = matvec(Fake(Elem::U8, 203), Fake(Elem::F32, 64), Fake(Elem::F32, 3), 3);
        let e = short.check(32).unwrap_err();
        assert_eq!(e, LaunchError::TooSmall { kernel: "mmv_q8_0_k64".into(), name: "w", have: 203, need: 204 });
        assert!(e.to_string().contains("buffer `w` holds 203 elements; the launch touches 204"), "{e}");
        let typed = matvec(Fake(Elem::U8, 204), Fake(Elem::I32, 64), Fake(Elem::F32, 3), 3);
        assert!(matches!(typed.check(32), Err(LaunchError::WrongElem { name: "x", .. })));
        let empty = matvec(Fake(Elem::U8, 0), Fake(Elem::F32, 64), Fake(Elem::F32, 0), 0);
        assert!(empty.check(32).unwrap_err().to_string().contains("grid"));
        let huge = matvec(Fake(Elem::U8, usize::MAX), Fake(Elem::F32, 64), Fake(Elem::F32, usize::MAX), 1 << 40);
        assert!(huge.check(32).unwrap_err().to_string().contains("does not fit an int"));
    }

    #[test]
    fn inconsistent_descriptions_are_refused_by_name() {
        let f = |n| Fake(Elem::F32, n);
        let attn = |n_head, gqa, window, softcap| -> Launch<Fake> {
            Attention {
                q: f(1 << 20),
                k_cache: f(1 << 20),
                v_cache: f(1 << 20),
                out: f(1 << 20),
                head_dim: 64,
                gqa,
                n_head,
                n_q: 2,
                pos0: 0,
                scale: 1.0,
                softcap,
                window,
                kv: KvPrecision::F32,
            }
            .into()
        };
        assert_eq!(attn(8, 4, Some(16), Some(50.0)).check(32), Ok(()));
        assert!(attn(6, 4, None, None).check(32).unwrap_err().to_string().contains("groups of 4"));
        assert!(attn(8, 4, Some(0), None).check(32).unwrap_err().to_string().contains("sliding window"));
        assert!(attn(8, 4, None, Some(0.0)).check(32).unwrap_err().to_string().contains("soft-cap"));
        let bias: Launch<Fake> = AddBias { x: f(10), bias: f(3), n: 10, cols: 3 }.into();
        assert!(bias.check(32).unwrap_err().to_string().contains("whole rows"));
        let rope: Launch<Fake> = Rope {
            x: f(100),
            positions: Fake(Elem::I32, 1),
            freq_factors: f(1),
            head_dim: 64,
            rope_dims: 3,
            kind: RopeKind::Normal,
            n_tokens: 1,
            n_heads: 1,
            base: 1e4,
            freq_scale: 1.0,
            ext: RopeExt::NONE,
        }
        .into();
        assert!(matches!(rope.check(32), Err(LaunchError::Spec(_))));
    }

    #[test]
    fn split_decode_attention_spreads_positions_over_blocks_within_its_workspace() {
        let decode = |max_pos: usize, n_head: usize, gqa: u32, window: Option<u32>| AttnDecode {
            q: Fake(Elem::F32, 1 << 20),
            k_cache: Fake(Elem::F16, 1 << 30),
            v_cache: Fake(Elem::F16, 1 << 30),
            out: Fake(Elem::F32, 1 << 20),
            part: Fake(Elem::F32, AttnDecode::<()>::part_len(1 << 17, n_head, n_head / gqa as usize, 128)),
            counters: Fake(Elem::I32, 64),
            positions: Fake(Elem::I32, 1),
            head_dim: 128,
            gqa,
            n_head,
            max_pos,
            scale: 1.0,
            softcap: None,
            window,
            kv: KvPrecision::F16,
        };
        // A 7B at depth 512: 32 KV heads × 17 chunks of 32 = 544 blocks.
        assert_eq!((attn_decode_chunk(512, 32), attn_decode_chunks(512, 32)), (32, 16));
        assert_eq!((attn_decode_chunk(513, 32), attn_decode_chunks(513, 32)), (32, 17));
        // Depth 0: one block per group, no partials.
        assert_eq!(attn_decode_chunks(1, 32), 1);
        // SmolLM2 (3 KV heads) at 4096: 342 blocks a head would reach the target, 64 are the most.
        assert_eq!((attn_decode_chunk(4096, 3), attn_decode_chunks(4096, 3)), (64, 64));
        assert_eq!((attn_decode_chunk(513, 3), attn_decode_chunks(513, 3)), (32, 17));
        // Long contexts hit the largest chunk and grow the chunk count.
        assert_eq!((attn_decode_chunk(1 << 17, 32), attn_decode_chunks(1 << 17, 32)), (256, 512));
        // The grid has the most chunks any position up to the bound uses: a 7B bounded at 640
        // positions uses 20 chunks of 32 at 640, but 32 at 1024 (its full share), then 32 of 64.
        assert_eq!(Launch::from(decode(639, 32, 1, None)).grid(), [32, 20, 1]);
        assert_eq!(Launch::from(decode(1500, 32, 1, None)).grid(), [32, 32, 1]);
        // A sliding window bounds the positions (Gemma 3: one KV head, 16 blocks of 32).
        let gemma = decode(5000, 4, 4, Some(512));
        assert_eq!((gemma.first(5000), gemma.len_at(5000), gemma.max_chunks()), (4489, 512, 16));
        // Every position up to the bound runs within the grid, and every bound up to the
        // workspace's capacity fits it and passes its check.
        for (n_head, gqa, window) in [(32, 1, None), (9, 3, None), (4, 4, Some(512)), (48, 6, None)] {
            let n_kv = n_head / gqa as usize;
            for max_pos in [0, 1, 31, 32, 63, 64, 255, 256, 1000, 1023, 1024, 4095, 9000] {
                let l = decode(max_pos, n_head, gqa, window);
                let most = (0..=max_pos).map(|p| attn_decode_chunks(l.len_at(p), n_kv)).max();
                assert_eq!(Some(l.max_chunks()), most, "bound {max_pos}, {n_head} heads, gqa {gqa}");
            }
            for max_pos in [0, 1, 63, 64, 255, 256, 1000, 4095, 70_000, (1 << 17) - 1] {
                let l: Launch<Fake> = decode(max_pos, n_head, gqa, window).into();
                assert_eq!(l.check(32), Ok(()), "bound {max_pos}, {n_head} heads, gqa {gqa}");
            }
        }
        let mut small = decode(4095, 32, 1, None);
        small.part = Fake(Elem::F32, 100);
        assert!(matches!(Launch::from(small).check(32), Err(LaunchError::TooSmall { name: "part", .. })));
        let mut wrong = decode(10, 32, 1, None);
        wrong.k_cache = Fake(Elem::F32, 1 << 30);
        assert!(matches!(Launch::from(wrong).check(32), Err(LaunchError::WrongElem { name: "k", .. })));
    }

    #[test]
    fn the_cache_a_launch_touches_grows_with_its_position_bound_and_not_with_the_position() {
        let kv = |max_pos0| -> Launch<()> {
            let (k, v, k_cache, v_cache, positions) = ((), (), (), (), ());
            KvAppend { k, v, k_cache, v_cache, positions, row: 8, n_tokens: 2, max_pos0, kv: KvPrecision::F16 }.into()
        };
        let cache_len = |l: &Launch<()>| match l.args()[2] {
            Arg::Buffer { len, .. } => len,
            _ => unreachable!("k_cache is a buffer"),
        };
        let mut l = kv(0);
        assert_eq!(cache_len(&l), 16);
        assert_eq!(cache_len(&kv(10)), 96);
        // The position itself comes from the device: a replay at another position is the same launch.
        l.set_pos0(10);
        assert_eq!(l, kv(0));
    }

    #[test]
    fn stream_k_takes_the_products_whose_last_wave_runs_part_empty() {
        let workers = |k, rows, tokens| MatMulQ8::<()>::workers_for(k, rows, tokens, 132);
        // The 7B's gate/up: 86 × 4 = 344 tiles, 2.6 waves of 132 (last wave 61% full).
        assert_eq!(workers(4096, 11008, 512), 132);
        // Q/K/V/O and down: 128 tiles, one wave 97% full (measured slower stream-K).
        assert_eq!(workers(4096, 4096, 512), 0);
        assert_eq!(workers(11008, 4096, 512), 0);
        // Short rows (32-token tiles, two blocks a multiprocessor) and a GPU of unknown size.
        assert_eq!(workers(2048, 11008, 512), 0);
        assert_eq!(MatMulQ8::<()>::workers_for(4096, 11008, 512, 0), 0);
        // 264 tiles fill two waves exactly.
        assert_eq!(workers(4096, 128 * 66, 512), 0);
        // Two parts a worker of one 128 × 128 tile each; none without workers.
        assert_eq!(MatMulQ8::<()>::part_len(4096, 132), 132 * 2 * 128 * 128);
        assert_eq!(MatMulQ8::<()>::part_len(4096, 0), 0);
        // The kernel counts units times workers in an int.
        let big = unit_mmq(GgmlType::Q4_K, 1 << 20, 1 << 20, 4096, 132);
        assert!(Describe::<()>::validate(&big).is_err());
    }
}
