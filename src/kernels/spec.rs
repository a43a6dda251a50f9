//! `KernelSpec`: which op, specialized for which shapes and types.

use std::fmt;

use crate::dtype::GgmlType;
use crate::quant;

/// The source dialect's backend: the same template body compiles for both through a prelude.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dialect {
    Hip,
    Cuda,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RopeKind {
    /// Pairs (2i, 2i+1): GGUF `llama` files.
    Normal,
    /// Pairs (i, i + dims/2): qwen2, gemma.
    Neox,
}

/// The YaRN / LongRoPE part of a rope angle, as llama.cpp's `ggml_rope_ext` takes it: pair i's
/// angle mixes its scaled (`freq_scale`·θ) and unscaled (θ) values by the ramp between
/// `corr_dims` times `ext_factor`, and cos/sin are multiplied by `attn_factor` (and, where
/// `ext_factor` ≠ 0, by 1 + 0.1·ln(1/freq_scale)). `RopeExt::NONE` leaves every angle as it is.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RopeExt {
    pub ext_factor: f32,
    pub attn_factor: f32,
    /// The pairs below `corr_dims[0]` keep θ, those above `corr_dims[1]` take freq_scale·θ.
    pub corr_dims: [f32; 2],
}

impl RopeExt {
    pub const NONE: RopeExt = RopeExt { ext_factor: 0.0, attn_factor: 1.0, corr_dims: [0.0, 0.0] };

    /// (cos, sin) of pair `i` whose unscaled angle is `theta_extrap`: ggml's `rope_yarn`, f32 for f32.
    pub fn cos_sin(&self, theta_extrap: f32, freq_scale: f32, i: usize) -> (f32, f32) {
        let theta_interp = freq_scale * theta_extrap;
        let mut theta = theta_interp;
        let mut mscale = self.attn_factor;
        if self.ext_factor != 0.0 {
            let [low, high] = self.corr_dims;
            let y = (i as f32 - low) / (high - low).max(0.001);
            let ramp_mix = (1.0 - y.clamp(0.0, 1.0)) * self.ext_factor;
            theta = theta_interp * (1.0 - ramp_mix) + theta_extrap * ramp_mix;
            mscale *= 1.0 + 0.1 * (1.0 / freq_scale).ln();
        }
        (theta.cos() * mscale, theta.sin() * mscale)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum GluKind {
    /// silu(gate) · up
    SwiGlu,
    /// gelu_tanh(gate) · up
    GeGlu,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ElementwiseOp {
    Add,
    AddBias,
    Softcap,
}

/// A pass's phase: decode runs one token (matrix-vector products), prefill many (matrix products).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AttnPhase {
    Decode,
    Prefill,
}

impl AttnPhase {
    pub const ALL: [AttnPhase; 2] = [AttnPhase::Decode, AttnPhase::Prefill];
}

/// The element type of the KV cache. f16 halves the cache's memory and the bytes decode attention
/// reads; the append rounds each value to nearest (ties to even, as `__float2half`) and attention
/// widens it exactly, accumulating in f32.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KvPrecision {
    #[default]
    F16,
    F32,
}

impl KvPrecision {
    /// Bytes per cached value.
    pub fn size(self) -> usize {
        match self {
            KvPrecision::F16 => 2,
            KvPrecision::F32 => 4,
        }
    }

    /// `f16` or `f32`, as the CLI spells it.
    pub fn name(self) -> &'static str {
        match self {
            KvPrecision::F16 => "f16",
            KvPrecision::F32 => "f32",
        }
    }
}

impl std::str::FromStr for KvPrecision {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "f16" => Ok(KvPrecision::F16),
            "f32" => Ok(KvPrecision::F32),
            other => Err(format!("unknown KV cache precision {other:?}: expected f16 or f32")),
        }
    }
}

/// An op and the values it is specialized for. Runtime values (positions, eps, rope base, token
/// counts) are kernel arguments, so one compiled kernel serves every layer that shares a shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KernelSpec {
    /// Row lookup: `out[t] = scale · W[ids[t]]`, W rows of `n_embd` elements of `wtype`.
    Embedding {
        wtype: GgmlType,
        n_embd: u32,
    },
    /// RMSNorm over rows of `n`; `add_one` multiplies by (1 + w) instead of w.
    RmsNorm {
        n: u32,
        add_one: bool,
    },
    /// Rope over the first `rope_dims` of each `head_dim`-wide head, in place.
    Rope {
        head_dim: u32,
        rope_dims: u32,
        kind: RopeKind,
    },
    /// y = W·x for one token (decode); W rows of `k` elements of `wtype`.
    MatVec {
        wtype: GgmlType,
        k: u32,
    },
    /// Y = X·Wᵀ for many tokens (prefill).
    MatMul {
        wtype: GgmlType,
        k: u32,
    },
    /// f32 values to q8_1 blocks (32 int8 with f16 d and s), the input of [`KernelSpec::MatVecQ8`].
    QuantizeQ8_1,
    /// y = W·x for one token with x in q8_1 blocks and int8 dot products (decode, quantized
    /// weights). Groups of `threads_per_row` threads take `rows_per_thread` rows each
    /// ([`MmvqLayout`]).
    MatVecQ8 {
        wtype: GgmlType,
        k: u32,
        threads_per_row: u32,
        rows_per_thread: u32,
    },
    /// Causal attention of many queries over the KV cache (prefill; decode where
    /// [`KernelSpec::AttnDecode`] does not apply).
    Attention {
        head_dim: u32,
        gqa: u32,
        sliding_window: bool,
        softcap: bool,
        kv: KvPrecision,
    },
    /// Attention of one query token (decode), split across blocks over the cached positions
    /// (flash-decoding), all query heads of a GQA group in one block; the last block of each
    /// group merges the partial results.
    AttnDecode {
        head_dim: u32,
        gqa: u32,
        sliding_window: bool,
        softcap: bool,
        kv: KvPrecision,
    },
    /// Y = X·Wᵀ for many tokens (prefill) with X in q8_1 blocks: weights unpacked to int8 tile by
    /// tile in shared memory and multiplied on the target's matrix unit (`mmq.hip`). `stream_k`:
    /// the variant whose blocks share the tiles' steps evenly (see `launch::MatMulQ8`), for rows
    /// that [`mmq_may_stream`].
    MatMulQ8 {
        wtype: GgmlType,
        k: u32,
        stream_k: bool,
    },
    /// Causal attention of many queries (prefill) over an f16 KV cache, tiled with an online
    /// softmax (flash attention, `flash_attn.hip`).
    FlashAttn {
        head_dim: u32,
        gqa: u32,
        sliding_window: bool,
        softcap: bool,
    },
    Glu {
        kind: GluKind,
    },
    Elementwise {
        op: ElementwiseOp,
    },
    KvAppend {
        kv: KvPrecision,
    },
    Argmax,
    /// The int8 decode's fused RMSNorm: `x += d` first when `residual`, then y = norm(x)·w
    /// (`(1 + w)` when `add_one`), written as floats and as q8_1 blocks (the next int8 matvec's
    /// input). Rows of `n`, a multiple of 32.
    RmsNormQ8_1 {
        n: u32,
        add_one: bool,
        residual: bool,
    },
    /// Up to three int8 matvecs over the same q8_1 input of `k` in one grid (Q/K/V; gate and
    /// up): segment i has weights of `wtypes[i]` (`None`: unused) laid out as
    /// [`MmvqLayout::default_for`] says, and adds its bias when `bias`.
    MatVecQ8Multi {
        k: u32,
        wtypes: [Option<GgmlType>; 3],
        bias: bool,
    },
    /// Decode's rope on Q and K in place and the KV append in one launch (one block a head).
    RopeKv {
        head_dim: u32,
        rope_dims: u32,
        kind: RopeKind,
        kv: KvPrecision,
    },
    /// act(gate) · up written as floats and as q8_1 blocks (the down projection's int8 input).
    GluQ8_1 {
        kind: GluKind,
    },
    /// Weight rows of `k` elements of `wtype` as f16 rows (`dequant_f16.hip`): the weights of a
    /// [`KernelSpec::GemmF16`].
    DequantF16 {
        wtype: GgmlType,
        k: u32,
    },
    /// Rows of f32 values scaled by a power of two each and rounded to f16 (`convert_f16.hip`):
    /// the activations of a [`KernelSpec::GemmF16`].
    ConvertF16,
    /// Y = X·Wᵀ for many tokens (prefill) with W and X in f16 and f32 sums, on the target's
    /// matrix unit (`gemm_f16.hip`; FMA where it has none); rows of `k`, a multiple of
    /// 64 (`GEMM_F16_STEP`).
    GemmF16 {
        k: u32,
        tile: F16Tile,
    },
}

#[derive(Clone, Debug, thiserror::Error, PartialEq)]
pub enum SpecError {
    #[error("{spec}: no kernel for weight type {ty} (supported: {})", supported_types())]
    UnsupportedType { spec: String, ty: GgmlType },
    #[error("{spec}: row length {k} is not a whole number of {ty} blocks ({block} elements)")]
    PartialBlock { spec: String, k: u32, ty: GgmlType, block: usize },
    #[error("{spec}: {what}")]
    Invalid { spec: String, what: String },
}

fn supported_types() -> String {
    quant::SUPPORTED.iter().map(|t| t.name()).collect::<Vec<_>>().join(", ")
}

/// Largest head the attention template keeps in registers and shared memory.
pub const MAX_HEAD_DIM: u32 = 512;

/// Threads per block of the ops that take a fixed block (norms, embedding, argmax; the glu,
/// elementwise and kv_append templates spell it 256).
pub const BLOCK_THREADS: u32 = 256;

/// Threads of the fused norm + quantize (one block per row): the norm's sum still runs on
/// [`BLOCK_THREADS`] of them, in the unfused rmsnorm's order.
pub const RMSNORM_Q8_1_THREADS: u32 = 1024;
/// Rows (one warp each) per block of the matrix ops.
pub const ROWS_PER_BLOCK: u32 = 4;
/// Tokens per warp in the prefill matrix product.
pub const TOKENS_PER_WARP: u32 = 8;
/// Threads per block of the int8 matvec (`mmvq`): 4 warps of 32, or 2 wavefronts of 64.
pub const MMVQ_THREADS: u32 = 128;
/// Threads per block of the q8_1 quantizer: 8 blocks of 32 values.
pub const QUANTIZE_THREADS: u32 = 256;

/// Whether the prefill's tiled int8 product (`mmq`) unpacks this weight type; the rest keep the
/// float matrix product in prefill.
pub fn int8_matmul_type(ty: GgmlType) -> bool {
    matches!(
        ty,
        GgmlType::Q4_0
            | GgmlType::Q4_1
            | GgmlType::Q5_0
            | GgmlType::Q5_1
            | GgmlType::Q8_0
            | GgmlType::Q4_K
            | GgmlType::Q5_K
            | GgmlType::Q6_K
    )
}

/// Weight types the int8 matvec takes: those mmq unpacks, and the 2-3-bit and IQ4 types (decode
/// only); other types (F32, F16, BF16) keep the float matvec.
pub fn int8_matvec_type(ty: GgmlType) -> bool {
    int8_matmul_type(ty) || matches!(ty, GgmlType::Q2_K | GgmlType::Q3_K | GgmlType::IQ4_NL | GgmlType::IQ4_XS)
}

/// Work units of one weight block in the int8 matvec: the `VDQ_UNITS` of the type's
/// `quant/*_q8_1.h` fragment (a unit is 16 or 32 quants, one or two 16-byte runs).
pub fn mmvq_units_per_block(ty: GgmlType) -> u32 {
    match ty {
        GgmlType::Q8_0 => 2,
        GgmlType::Q4_K | GgmlType::Q5_K | GgmlType::Q6_K | GgmlType::Q2_K | GgmlType::Q3_K | GgmlType::IQ4_XS => 8,
        _ => 1,
    }
}

/// How the int8 matvec spreads a row over threads: `threads_per_row` (32, 64 or 128) threads
/// stride over a row's units, each keeping `rows_per_thread` rows' loads in flight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MmvqLayout {
    pub threads_per_row: u32,
    pub rows_per_thread: u32,
}

impl MmvqLayout {
    /// The default for rows of `k` values of `ty`, the same on every target (the grid depends on
    /// it). A row gets the smallest power-of-two group (32..128 threads) that its units still
    /// fill: the 7B's rows of 4096 (Q4_K: 128 units of 32 quants) take a whole block of 128, while
    /// SmolLM2's 576-wide Q8_0 rows (36 units) take one warp, four rows a block. Two rows a thread
    /// on wide rows keep two independent 16-byte weight streams per thread in flight and leave the
    /// 7B's 4096-row matrices 2048 blocks (15.5 per H100 SM, one wave); narrow rows take one.
    pub fn default_for(ty: GgmlType, k: u32) -> MmvqLayout {
        let units = (k as usize / ty.block_elems().max(1)) as u32 * mmvq_units_per_block(ty);
        let threads_per_row = match units {
            u if u >= 96 => 128,
            u if u >= 48 => 64,
            _ => 32,
        };
        MmvqLayout { threads_per_row, rows_per_thread: if threads_per_row == 128 { 2 } else { 1 } }
    }

    /// Rows one block of [`MMVQ_THREADS`] takes.
    pub fn rows_per_block(&self) -> u32 {
        (MMVQ_THREADS / self.threads_per_row.max(1)) * self.rows_per_thread
    }
}

/// Threads per block of the int8 matrix product (`mmq`): 8 warps of 32 or 4 wavefronts of 64.
pub const MMQ_THREADS: u32 = 256;

/// Values of K a `gemm_f16` step copies and multiplies: its rows are whole steps.
pub const GEMM_F16_STEP: u32 = 64;
/// Halves between two rows of a `gemm_f16` tile in shared memory: a step's 64 and 8 more, an odd
/// number of 16-byte units, so the 8 rows a fragment load reads fall in distinct banks.
pub const GEMM_F16_LD: u32 = GEMM_F16_STEP + 8;

/// The block tile of a `gemm_f16` kernel: weight rows × tokens, and the threads that take it.
/// Large tiles reuse each copied value most; smaller ones give a small product (SmolLM2's
/// 576-row products over a few hundred tokens are 20 large tiles for 132 multiprocessors) enough
/// blocks to fill the GPU. [`F16Tile::for_product`] picks one per launch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum F16Tile {
    /// 128 rows × 128 tokens, 256 threads.
    Large,
    /// 64 × 64, 128 threads.
    Medium,
    /// 32 × 32, 128 threads.
    Small,
}

impl F16Tile {
    pub const ALL: [F16Tile; 3] = [F16Tile::Large, F16Tile::Medium, F16Tile::Small];

    pub fn rows(self) -> u32 {
        match self {
            F16Tile::Large => 128,
            F16Tile::Medium => 64,
            F16Tile::Small => 32,
        }
    }

    pub fn tokens(self) -> u32 {
        self.rows()
    }

    pub fn threads(self) -> u32 {
        match self {
            F16Tile::Large => 256,
            F16Tile::Medium | F16Tile::Small => 128,
        }
    }

    /// The largest tile whose blocks for `rows` × `tokens` number at least half the GPU's
    /// `multiprocessors` (two blocks fit one), else the smallest; the large tile where the count
    /// is unknown (the CPU device). A 7B's 4096-row products over 512 tokens keep 128 large
    /// tiles; SmolLM2's 576-row ones take 64 × 64 (72 blocks), its 192-row ones 32 × 32.
    pub fn for_product(rows: usize, tokens: usize, multiprocessors: Option<u32>) -> F16Tile {
        let Some(sms) = multiprocessors else { return F16Tile::Large };
        let blocks = |t: F16Tile| rows.div_ceil(t.rows() as usize) * tokens.div_ceil(t.tokens() as usize);
        F16Tile::ALL.into_iter().find(|&t| 2 * blocks(t) >= sms as usize).unwrap_or(F16Tile::Small)
    }
}

/// A `gemm_f16` block's shape on one target: `stages` steps' tiles in shared memory (up to three,
/// as many as it holds, so the next steps' copies overlap this one's products) and a grid of
/// `warps_m` × `warps_n` warps over its tile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GemmF16Layout {
    pub stages: u32,
    pub warps_m: u32,
    pub warps_n: u32,
    pub shared_bytes: u32,
}

impl GemmF16Layout {
    /// Two warps down the rows, the rest across the tokens (each warp takes whole 16 × 16 tiles).
    /// With `wgmma` the large tile's warps form two warpgroups of 64 rows each, over stages of
    /// unpadded 128-byte rows (3 to 5, 1024 bytes more to align them; gemm_f16.hip).
    pub fn new(tile: F16Tile, warp_size: u32, shared_max: u32, wgmma: bool) -> GemmF16Layout {
        if wgmma && tile == F16Tile::Large {
            let stage = (tile.rows() + tile.tokens()) * GEMM_F16_STEP * 2;
            let stages = (3..=5).rev().find(|s| s * stage + 1024 <= shared_max).unwrap_or(3);
            return GemmF16Layout { stages, warps_m: 2, warps_n: 4, shared_bytes: stages * stage + 1024 };
        }
        let stage = (tile.rows() + tile.tokens()) * GEMM_F16_LD * 2;
        let stages = (1..=3).rev().find(|s| s * stage <= shared_max).unwrap_or(1);
        let warps = tile.threads() / warp_size;
        GemmF16Layout { stages, warps_m: 2, warps_n: warps / 2, shared_bytes: stages * stage }
    }
}

/// Weight rows per `mmq` block: 16-row tiles, one per warp of 32 or two per wavefront of 64 (the
/// accumulators a lane holds stay the same on both).
pub const MMQ_ROWS: u32 = 128;
/// Tokens per `mmq` block for rows of `k` values: 128, or 32 for short rows (k ≤ 2048). Short rows
/// come with small matrices (SmolLM2's are 576 × 576 to 1536 × 576), which at more tokens a block
/// make too few blocks for the GPU: 25 for a 576-row product over 320 tokens on an H100's 132 SMs
/// at 64. Long rows take 128 (H100, synthetic 7B, 512 tokens: 8991 tokens/s against 8405 at 64
/// and 7079 at 32): each weight tile is copied once for more tokens. A block may take its tokens in
/// passes (`MmqLayout::pass_tokens`) where the target's shared memory holds fewer.
pub fn mmq_tokens(k: u32) -> u32 {
    if k <= 2048 {
        32
    } else {
        128
    }
}

/// Whether products of rows of `k` may run stream-K (`KernelSpec::MatMulQ8::stream_k`): the
/// long-row kernel, 128-token tiles (one block a multiprocessor on the H100).
pub fn mmq_may_stream(k: u32) -> bool {
    mmq_tokens(k) >= 128
}

/// Whether the `mmq` kernel for `wtype` rows of `k` values copies each token's (d, d·Σq) terms
/// (the q8_1 quantizers' `ds`) with its blocks instead of working them out in every step: formats
/// whose sum term is the exact d·Σq or none (not Q4_0, Q4_1, Q5_0, Q5_1, which take q8_1's f16 s,
/// as ggml), where the terms of a step lie 16-aligned (`k` a multiple of 64).
pub fn mmq_copies_ds(wtype: GgmlType, k: u32) -> bool {
    int8_matmul_type(wtype)
        && !matches!(wtype, GgmlType::Q4_0 | GgmlType::Q4_1 | GgmlType::Q5_0 | GgmlType::Q5_1)
        && k.is_multiple_of(64)
}

/// How an `mmq` kernel lays out its shared memory (mmq.hip): per stage, [`MMQ_ROWS`] weight rows of
/// `w_row` bytes and `pass_tokens` token rows of `x_row` bytes, each row's step copied as
/// `w_copies` / `x_copies` 16-byte copies from the 16-aligned address at or before its start,
/// then where [`mmq_copies_ds`] the tokens' ds rows (`ds_row` bytes, `ds_copies` copies; 0
/// otherwise); after the stages, each row's scales of a step (8 bytes a 32-value chunk), and each
/// token's where they are not copied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MmqLayout {
    pub k_step: u32,
    pub stages: u32,
    pub pass_tokens: u32,
    pub w_row: u32,
    pub x_row: u32,
    pub w_copies: u32,
    pub x_copies: u32,
    pub ds_row: u32,
    pub ds_copies: u32,
    pub shared_bytes: u32,
}

/// The layout of the `mmq` kernel for `wtype` rows of `k` values within the `shared_max` bytes a
/// block may take. In order of preference: all the block's tokens in one pass (at most
/// `pass_max`), then half, a quarter (down to 16); steps of the largest multiple of the block (and
/// of 32) up to 256 values that divides the row (SmolLM2's 576 takes 192); two stages where the
/// target copies asynchronously (`async_copy`: cp.async, NVIDIA sm_80+), else one.
pub fn mmq_layout(wtype: GgmlType, k: u32, async_copy: bool, shared_max: u32, pass_max: u32) -> MmqLayout {
    let unit = (wtype.block_elems() as u32).max(32);
    // Copied ds rows need steps of whole 64-value (16-byte) runs.
    let ds = mmq_copies_ds(wtype, k);
    let k_steps: Vec<u32> = (1..=unit.max(256) / unit)
        .rev()
        .map(|m| m * unit)
        .filter(|s| k.is_multiple_of(*s) && (!ds || s.is_multiple_of(64)))
        .collect();
    let passes = [1, 2, 4, 8].map(|p| mmq_tokens(k) / p).into_iter().filter(|t| *t >= 16 && *t <= pass_max.max(16));
    let stages: &[u32] = if async_copy { &[2, 1] } else { &[1] };
    let mut layouts = passes.flat_map(|t| {
        k_steps.iter().flat_map(move |&s| stages.iter().map(move |&st| mmq_layout_of(wtype, s, st, t, ds)))
    });
    // The smallest, 16 tokens and 32 values on one stage, fits every target (a unit test holds
    // the reference models' layouts to each target's limit).
    let smallest = if ds { 64 } else { unit };
    layouts.find(|l| l.shared_bytes <= shared_max).unwrap_or_else(|| mmq_layout_of(wtype, smallest, 1, 16, ds))
}

fn mmq_layout_of(wtype: GgmlType, k_step: u32, stages: u32, pass_tokens: u32, ds: bool) -> MmqLayout {
    let w_span = k_step / wtype.block_elems() as u32 * wtype.block_bytes() as u32;
    let x_span = k_step / 32 * 36;
    // A span at any 16-byte offset lies within (span + 15) / 16 + 1 aligned copies. Rows lie an
    // odd number of 16-byte units apart, so the 8 rows of a fragment load start in 8 different
    // groups of 4 banks.
    let copies = |span: u32| span.div_ceil(16) + 1;
    let row = |copies: u32| if copies % 2 == 1 { 16 * copies } else { 16 * copies + 16 };
    let (w_copies, x_copies) = (copies(w_span), copies(x_span));
    let (w_row, x_row) = (row(w_copies), row(x_copies));
    // A token's ds of a step: 8 bytes a chunk, 16-aligned (whole copies, no offset to keep).
    let ds_copies = if ds { (k_step / 32 * 8).div_ceil(16) } else { 0 };
    let ds_row = if ds { row(ds_copies) } else { 0 };
    let stage = MMQ_ROWS * w_row + pass_tokens * (x_row + ds_row);
    let scales = (MMQ_ROWS + if ds { 0 } else { pass_tokens }) * (k_step / 32) * 8;
    let shared_bytes = stages * stage + scales;
    MmqLayout { k_step, stages, pass_tokens, w_row, x_row, w_copies, x_copies, ds_row, ds_copies, shared_bytes }
}

/// Warps per block of prefill flash attention: 4 for heads of 96 to 128 dims, whose models have
/// many heads (the 7B's 32 × 512 queries still make 256 blocks), so each K/V tile copied to shared
/// memory serves 64 queries; else 2 (small heads come with few: SmolLM2's 9 heads × 512 queries
/// make 144 blocks of 32; heads of 256 would not fit 64 queries beside a tile).
pub fn flash_warps(head_dim: u32) -> u32 {
    if (96..=128).contains(&head_dim) {
        4
    } else {
        2
    }
}

/// Queries per block of flash attention: one 16-row tile per warp on the matrix units; the f32
/// kernel takes them in steps of [`flash_warps`] · [`flash_queries_per_warp`]. The same on every
/// target (the grid depends on it).
pub fn flash_queries(head_dim: u32) -> u32 {
    16 * flash_warps(head_dim)
}
/// The largest head flash attention takes (its K/V tile and queries sit in shared memory).
pub const FLASH_MAX_HEAD_DIM: u32 = 256;
/// The static shared memory a block may take (48 KiB on every target).
pub const FLASH_SHARED_BYTES: u32 = 48 * 1024;

/// Queries per warp of the f32 flash attention (no matrix unit): 8, or 4 for heads over 128
/// (registers: 16 spill SGPRs on gfx906).
pub fn flash_queries_per_warp(head_dim: u32) -> u32 {
    if head_dim <= 128 {
        8
    } else {
        4
    }
}

/// Whether flash attention runs on the matrix unit (f16 products, `flash_attn_mma.hip`): where
/// the target has one and the head is whole 16-dim tiles; else the f32 kernel (`flash_attn.hip`).
pub fn flash_on_matrix_unit(head_dim: u32, has_matrix_unit: bool) -> bool {
    has_matrix_unit && head_dim.is_multiple_of(16)
}

/// Positions per K/V tile of the matrix-unit kernel: the largest of 64, 32 and 16, at most
/// `largest`, for which the block's f16 queries and the tile's K and V rows (each row padded by 8
/// halves) fit [`FLASH_SHARED_BYTES`]: 64 up to head_dim 128, 16 at 256.
pub fn flash_kv_tile(head_dim: u32, largest: u32) -> u32 {
    let bytes = |bkv: u32| (flash_queries(head_dim) + 2 * bkv) * (head_dim + 8) * 2;
    [64, 32, 16].into_iter().find(|&b| b <= largest && bytes(b) <= FLASH_SHARED_BYTES).unwrap_or(16)
}

/// Warps per block in attention.
pub const ATTN_WARPS: u32 = 16;
/// Warps per block in split decode attention.
pub const ATTN_DECODE_WARPS: u32 = 4;
/// The largest GQA group one decode-attention block handles (its queries live in registers).
pub const ATTN_DECODE_MAX_GQA: u32 = 8;
/// The largest head split decode attention takes (registers: GQA · head_dim / lanes per position).
pub const ATTN_DECODE_MAX_HEAD_DIM: u32 = 256;
/// Positions per block of split decode attention, at most (its scores sit in shared memory).
pub const ATTN_DECODE_MAX_CHUNK: u32 = 256;

impl KernelSpec {
    /// The attention kernel for a pass of `phase`: split decode attention where its limits allow
    /// (GQA group ≤ 8, head_dim ≤ 256 and a multiple of 8 for 16-byte loads), else the general one.
    pub fn attention(
        phase: AttnPhase,
        head_dim: u32,
        gqa: u32,
        sliding_window: bool,
        softcap: bool,
        kv: KvPrecision,
    ) -> KernelSpec {
        let split = phase == AttnPhase::Decode
            && (1..=ATTN_DECODE_MAX_GQA).contains(&gqa)
            && head_dim <= ATTN_DECODE_MAX_HEAD_DIM
            && head_dim > 0
            && head_dim.is_multiple_of(8);
        if split {
            KernelSpec::AttnDecode { head_dim, gqa, sliding_window, softcap, kv }
        } else {
            KernelSpec::Attention { head_dim, gqa, sliding_window, softcap, kv }
        }
    }

    /// The same kernel over a KV cache of `kv` (ops that do not touch the cache are unchanged).
    pub fn with_kv(self, kv: KvPrecision) -> KernelSpec {
        match self {
            KernelSpec::Attention { head_dim, gqa, sliding_window, softcap, .. } => {
                KernelSpec::Attention { head_dim, gqa, sliding_window, softcap, kv }
            }
            KernelSpec::AttnDecode { head_dim, gqa, sliding_window, softcap, .. } => {
                KernelSpec::AttnDecode { head_dim, gqa, sliding_window, softcap, kv }
            }
            KernelSpec::KvAppend { .. } => KernelSpec::KvAppend { kv },
            KernelSpec::RopeKv { head_dim, rope_dims, kind, .. } => {
                KernelSpec::RopeKv { head_dim, rope_dims, kind, kv }
            }
            // Flash attention reads an f16 cache only: over f32 the general kernel runs instead.
            KernelSpec::FlashAttn { head_dim, gqa, sliding_window, softcap } if kv == KvPrecision::F32 => {
                KernelSpec::Attention { head_dim, gqa, sliding_window, softcap, kv }
            }
            other => other,
        }
    }
}

impl KernelSpec {
    /// The `extern "C"` entry point, spelled from the specialization (`mmv_q4_k_k4096`).
    pub fn entry_name(&self) -> String {
        let ty = |t: GgmlType| t.name().to_ascii_lowercase();
        match *self {
            KernelSpec::Embedding { wtype, n_embd } => format!("embed_{}_d{n_embd}", ty(wtype)),
            KernelSpec::RmsNorm { n, add_one } => format!("rmsnorm_n{n}{}", if add_one { "_w1" } else { "" }),
            KernelSpec::Rope { head_dim, rope_dims, kind } => {
                let k = if kind == RopeKind::Neox { "neox" } else { "normal" };
                format!("rope_{k}_hd{head_dim}_r{rope_dims}")
            }
            KernelSpec::MatVec { wtype, k } => format!("mmv_{}_k{k}", ty(wtype)),
            KernelSpec::MatMul { wtype, k } => format!("mmm_{}_k{k}", ty(wtype)),
            KernelSpec::QuantizeQ8_1 => "quantize_q8_1".into(),
            KernelSpec::MatVecQ8 { wtype, k, threads_per_row, rows_per_thread } => {
                format!("mmvq_{}_k{k}_t{threads_per_row}_r{rows_per_thread}", ty(wtype))
            }
            KernelSpec::Attention { head_dim, gqa, sliding_window, softcap, kv } => format!(
                "attn_hd{head_dim}_gqa{gqa}{}{}_kv{}",
                if sliding_window { "_swa" } else { "" },
                if softcap { "_softcap" } else { "" },
                kv.name()
            ),
            KernelSpec::AttnDecode { head_dim, gqa, sliding_window, softcap, kv } => format!(
                "attn_decode_hd{head_dim}_gqa{gqa}{}{}_kv{}",
                if sliding_window { "_swa" } else { "" },
                if softcap { "_softcap" } else { "" },
                kv.name()
            ),
            KernelSpec::MatMulQ8 { wtype, k, stream_k } => {
                format!("mmq_{}_k{k}{}", ty(wtype), if stream_k { "_streamk" } else { "" })
            }
            KernelSpec::FlashAttn { head_dim, gqa, sliding_window, softcap } => format!(
                "flash_attn_hd{head_dim}_gqa{gqa}{}{}",
                if sliding_window { "_swa" } else { "" },
                if softcap { "_softcap" } else { "" }
            ),
            KernelSpec::Glu { kind: GluKind::SwiGlu } => "swiglu".into(),
            KernelSpec::Glu { kind: GluKind::GeGlu } => "geglu".into(),
            KernelSpec::Elementwise { op } => match op {
                ElementwiseOp::Add => "add",
                ElementwiseOp::AddBias => "add_bias",
                ElementwiseOp::Softcap => "softcap",
            }
            .into(),
            KernelSpec::KvAppend { kv } => format!("kv_append_{}", kv.name()),
            KernelSpec::Argmax => "argmax".into(),
            KernelSpec::RmsNormQ8_1 { n, add_one, residual } => {
                format!("{}rmsnorm_q8_1_n{n}{}", if residual { "add_" } else { "" }, if add_one { "_w1" } else { "" })
            }
            KernelSpec::MatVecQ8Multi { k, wtypes, bias } => {
                let types: Vec<String> = wtypes.iter().flatten().map(|t| ty(*t)).collect();
                format!("mmvq{}_{}_k{k}{}", types.len(), types.join("_"), if bias { "_bias" } else { "" })
            }
            KernelSpec::RopeKv { head_dim, rope_dims, kind, kv } => {
                let k = if kind == RopeKind::Neox { "neox" } else { "normal" };
                format!("rope_kv_{k}_hd{head_dim}_r{rope_dims}_kv{}", kv.name())
            }
            KernelSpec::GluQ8_1 { kind: GluKind::SwiGlu } => "swiglu_q8_1".into(),
            KernelSpec::GluQ8_1 { kind: GluKind::GeGlu } => "geglu_q8_1".into(),
            KernelSpec::DequantF16 { wtype, k } => format!("dequant_f16_{}_k{k}", ty(wtype)),
            KernelSpec::ConvertF16 => "convert_f16".into(),
            KernelSpec::GemmF16 { k, tile: F16Tile::Large } => format!("gemm_f16_k{k}"),
            KernelSpec::GemmF16 { k, tile } => format!("gemm_f16_k{k}_t{}", tile.rows()),
        }
    }

    /// Threads per block, for a target of `warp_size` lanes: what the template's
    /// `__launch_bounds__` works out from the constants the renderer writes, and what a launch
    /// description launches with.
    pub fn block_threads(&self, warp_size: u32) -> u32 {
        match *self {
            KernelSpec::Rope { rope_dims, .. } | KernelSpec::RopeKv { rope_dims, .. } => rope_dims / 2,
            KernelSpec::MatVec { .. } | KernelSpec::MatMul { .. } => ROWS_PER_BLOCK * warp_size,
            KernelSpec::Attention { .. } => ATTN_WARPS * warp_size,
            KernelSpec::AttnDecode { .. } => ATTN_DECODE_WARPS * warp_size,
            KernelSpec::MatVecQ8 { .. } | KernelSpec::MatVecQ8Multi { .. } => MMVQ_THREADS,
            KernelSpec::MatMulQ8 { .. } => MMQ_THREADS,
            KernelSpec::FlashAttn { head_dim, .. } => flash_warps(head_dim) * warp_size,
            KernelSpec::QuantizeQ8_1 => QUANTIZE_THREADS,
            KernelSpec::GemmF16 { tile, .. } => tile.threads(),
            KernelSpec::Embedding { .. }
            | KernelSpec::RmsNorm { .. }
            | KernelSpec::Glu { .. }
            | KernelSpec::Elementwise { .. }
            | KernelSpec::KvAppend { .. }
            | KernelSpec::Argmax
            | KernelSpec::GluQ8_1 { .. }
            | KernelSpec::DequantF16 { .. }
            | KernelSpec::ConvertF16 => BLOCK_THREADS,
            KernelSpec::RmsNormQ8_1 { .. } => RMSNORM_Q8_1_THREADS,
        }
    }

    /// The weight type, for ops that read quantized weights.
    pub fn weight_type(&self) -> Option<GgmlType> {
        match *self {
            KernelSpec::Embedding { wtype, .. }
            | KernelSpec::MatVec { wtype, .. }
            | KernelSpec::MatMul { wtype, .. }
            | KernelSpec::MatVecQ8 { wtype, .. }
            | KernelSpec::MatMulQ8 { wtype, .. }
            | KernelSpec::DequantF16 { wtype, .. } => Some(wtype),
            _ => None,
        }
    }

    /// Refuses specializations the templates cannot take, before anything is rendered.
    pub fn validate(&self) -> Result<(), SpecError> {
        // Named only on error: every launch is checked, and a valid spec costs no allocation.
        let spec = || self.entry_name();
        let invalid = |what: String| Err(SpecError::Invalid { spec: spec(), what });
        if let Some(ty) = self.weight_type() {
            if !quant::SUPPORTED.contains(&ty) {
                return Err(SpecError::UnsupportedType { spec: spec(), ty });
            }
            let k = match *self {
                KernelSpec::Embedding { n_embd, .. } => n_embd,
                KernelSpec::MatVec { k, .. }
                | KernelSpec::MatMul { k, .. }
                | KernelSpec::MatVecQ8 { k, .. }
                | KernelSpec::MatMulQ8 { k, .. }
                | KernelSpec::DequantF16 { k, .. } => k,
                _ => unreachable!("weight_type is Some only for these"),
            };
            if k == 0 || !(k as usize).is_multiple_of(ty.block_elems()) {
                return Err(SpecError::PartialBlock { spec: spec(), k, ty, block: ty.block_elems() });
            }
        }
        match *self {
            KernelSpec::RmsNorm { n: 0, .. } => invalid("rows must have at least one element".into()),
            KernelSpec::Rope { head_dim, rope_dims, .. }
                if rope_dims == 0 || rope_dims % 2 != 0 || rope_dims > head_dim =>
            {
                invalid(format!("rope dims {rope_dims} must be even, non-zero and at most head_dim {head_dim}"))
            }
            KernelSpec::Attention { head_dim, gqa, .. } if head_dim == 0 || head_dim > MAX_HEAD_DIM || gqa == 0 => {
                invalid(format!("head_dim must be 1..={MAX_HEAD_DIM} and the GQA ratio at least 1"))
            }
            KernelSpec::AttnDecode { head_dim, gqa, .. }
                if head_dim == 0
                    || head_dim > ATTN_DECODE_MAX_HEAD_DIM
                    || !head_dim.is_multiple_of(8)
                    || !(1..=ATTN_DECODE_MAX_GQA).contains(&gqa) =>
            {
                invalid(format!(
                    "split decode attention takes head_dim a multiple of 8 up to {ATTN_DECODE_MAX_HEAD_DIM} and GQA groups of 1..={ATTN_DECODE_MAX_GQA}"
                ))
            }
            KernelSpec::RmsNormQ8_1 { n, .. } if n == 0 || !n.is_multiple_of(32) => {
                invalid(format!("rows of {n} are not whole q8_1 blocks of 32"))
            }
            KernelSpec::RopeKv { head_dim, rope_dims, .. }
                if rope_dims == 0 || rope_dims % 2 != 0 || rope_dims > head_dim =>
            {
                invalid(format!("rope dims {rope_dims} must be even, non-zero and at most head_dim {head_dim}"))
            }
            KernelSpec::MatVecQ8Multi { k, wtypes, .. } => validate_multi(k, wtypes).map_err(|what| SpecError::Invalid { spec: spec(), what }),
            KernelSpec::MatMulQ8 { wtype, .. } if !int8_matmul_type(wtype) => {
                invalid(format!("no int8 matrix product for {wtype} weights (they keep the float one)"))
            }
            KernelSpec::FlashAttn { head_dim, gqa, .. }
                if head_dim == 0 || head_dim > FLASH_MAX_HEAD_DIM || !head_dim.is_multiple_of(2) || gqa == 0 =>
            {
                invalid(format!(
                    "flash attention takes an even head_dim up to {FLASH_MAX_HEAD_DIM} and a GQA ratio of at least 1"
                ))
            }
            KernelSpec::GemmF16 { k, .. } if k == 0 || !k.is_multiple_of(GEMM_F16_STEP) => {
                invalid(format!("rows of {k} are not whole steps of {GEMM_F16_STEP}"))
            }
            KernelSpec::MatVecQ8 { wtype, .. } if !int8_matvec_type(wtype) => {
                invalid(format!("no int8 matvec for {wtype} weights (they keep the float matvec)"))
            }
            KernelSpec::MatVecQ8 { threads_per_row, rows_per_thread, .. }
                if !matches!(threads_per_row, 32 | 64 | 128) || !(1..=8).contains(&rows_per_thread) =>
            {
                invalid(format!(
                    "{threads_per_row} threads a row and {rows_per_thread} rows a thread: threads must be 32, 64 or 128, rows 1..=8"
                ))
            }
            _ => Ok(()),
        }
    }
}

/// A fused int8 matvec's segments: one to three, used ones first, each a type the int8 matvec
/// takes in whole blocks of `k`.
fn validate_multi(k: u32, wtypes: [Option<GgmlType>; 3]) -> Result<(), String> {
    let used = wtypes.iter().take_while(|t| t.is_some()).count();
    if used == 0 || wtypes[used..].iter().any(Option::is_some) {
        return Err("segments must be one to three, the used ones first".into());
    }
    for ty in wtypes.iter().flatten() {
        if !int8_matvec_type(*ty) {
            return Err(format!("no int8 matvec for {ty} weights (they keep the float matvec)"));
        }
        if k == 0 || !(k as usize).is_multiple_of(ty.block_elems()) || !k.is_multiple_of(32) {
            return Err(format!("row length {k} is not a whole number of {ty} blocks and of q8_1 blocks"));
        }
    }
    Ok(())
}

impl KernelSpec {
    /// The int8 decode pair standing in for a float matvec over quantized weights: the q8_1
    /// quantizer of its input and the int8 matvec (default layout). `None` for other specs and
    /// for float weights.
    pub fn int8_decode(&self) -> Option<(KernelSpec, KernelSpec)> {
        match *self {
            KernelSpec::MatVec { wtype, k } if int8_matvec_type(wtype) && k.is_multiple_of(32) => {
                let l = MmvqLayout::default_for(wtype, k);
                let mmvq = KernelSpec::MatVecQ8 {
                    wtype,
                    k,
                    threads_per_row: l.threads_per_row,
                    rows_per_thread: l.rows_per_thread,
                };
                Some((KernelSpec::QuantizeQ8_1, mmvq))
            }
            _ => None,
        }
    }
}

impl KernelSpec {
    /// The int8 prefill pair standing in for a float matrix product over quantized weights: the
    /// q8_1 quantizer of its input and the tiled int8 product. `None` for other specs and float
    /// weights.
    pub fn int8_prefill(&self) -> Option<(KernelSpec, KernelSpec)> {
        match *self {
            KernelSpec::MatMul { wtype, k } if int8_matmul_type(wtype) && k.is_multiple_of(32) => {
                Some((KernelSpec::QuantizeQ8_1, KernelSpec::MatMulQ8 { wtype, k, stream_k: false }))
            }
            _ => None,
        }
    }

    /// The f16 prefill trio standing in for a float matrix product (prefill on a target with a
    /// matrix unit): the weights' dequantization to f16, the input's rounding to f16 and the f16
    /// product. `None` for other specs and for rows that are not whole steps of the product.
    pub fn f16_prefill(&self) -> Option<[KernelSpec; 3]> {
        match *self {
            KernelSpec::MatMul { wtype, k } if k.is_multiple_of(GEMM_F16_STEP) => Some([
                KernelSpec::DequantF16 { wtype, k },
                KernelSpec::ConvertF16,
                KernelSpec::GemmF16 { k, tile: F16Tile::Large },
            ]),
            _ => None,
        }
    }

    /// Flash attention standing in for the general attention kernel in prefill, where it applies
    /// (f16 cache, an even head_dim up to 256). `None` otherwise.
    pub fn flash_prefill(&self) -> Option<KernelSpec> {
        match *self {
            KernelSpec::Attention { head_dim, gqa, sliding_window, softcap, kv: KvPrecision::F16 }
                if head_dim > 0 && head_dim <= FLASH_MAX_HEAD_DIM && head_dim.is_multiple_of(2) && gqa > 0 =>
            {
                Some(KernelSpec::FlashAttn { head_dim, gqa, sliding_window, softcap })
            }
            _ => None,
        }
    }
}

impl fmt::Display for KernelSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.entry_name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flash_attention_tiles_fit_shared_memory_at_every_head_size() {
        for (hd, bkv) in [(64, 64), (80, 64), (96, 64), (128, 32), (256, 16)] {
            assert_eq!(flash_kv_tile(hd, 64), bkv, "head_dim {hd}");
            assert_eq!(flash_kv_tile(hd, 32), bkv.min(32), "head_dim {hd}");
            assert!((flash_queries(hd) + 2 * bkv) * (hd + 8) * 2 <= FLASH_SHARED_BYTES);
        }
        // The f32 kernel's steps divide the block's queries.
        for hd in [2, 64, 96, 128, 130, 256] {
            assert_eq!(flash_queries(hd) % (flash_warps(hd) * flash_queries_per_warp(hd)), 0, "head_dim {hd}");
        }
        assert!(flash_on_matrix_unit(80, true) && !flash_on_matrix_unit(72, true) && !flash_on_matrix_unit(64, false));
    }

    #[test]
    fn f16_products_take_the_largest_tile_that_half_fills_the_gpu() {
        let h100 = Some(132);
        // The 7B's products over 512 tokens: 128, 344 and 128 large tiles.
        assert_eq!(F16Tile::for_product(4096, 512, h100), F16Tile::Large);
        assert_eq!(F16Tile::for_product(11008, 512, h100), F16Tile::Large);
        // SmolLM2's: 576 rows (5 × 4 large tiles) and 192 rows (2 × 4, then 3 × 8 medium).
        assert_eq!(F16Tile::for_product(576, 512, h100), F16Tile::Medium);
        assert_eq!(F16Tile::for_product(192, 512, h100), F16Tile::Small);
        // Nothing reaches half the GPU: the smallest; no multiprocessor count: the largest.
        assert_eq!(F16Tile::for_product(32, 7, h100), F16Tile::Small);
        assert_eq!(F16Tile::for_product(192, 512, None), F16Tile::Large);
        for tile in F16Tile::ALL {
            for warp in [32, 64] {
                let l = GemmF16Layout::new(tile, warp, 64 * 1024, false);
                assert_eq!(l.warps_m * l.warps_n * warp, tile.threads(), "{tile:?} warp {warp}");
                assert_eq!(tile.rows() % (16 * l.warps_m), 0, "{tile:?} warp {warp}: whole 16-row tiles a warp");
                assert_eq!(tile.tokens() % (16 * l.warps_n), 0, "{tile:?} warp {warp}: whole 16-token tiles a warp");
                // 64 KiB (AMD's LDS) holds one large stage, and three of the smaller tiles.
                let stages = if tile == F16Tile::Large { 1 } else { 3 };
                assert!(l.shared_bytes <= 64 * 1024 && l.stages == stages, "{tile:?}: {l:?}");
            }
        }
        // The H100's 227 KiB hold five wgmma stages of 32 KiB.
        let l = GemmF16Layout::new(F16Tile::Large, 32, 227 * 1024, true);
        assert_eq!((l.stages, l.shared_bytes), (5, 5 * 32768 + 1024));
        for tile in [F16Tile::Medium, F16Tile::Small] {
            assert_eq!(GemmF16Layout::new(tile, 32, 227 * 1024, true), GemmF16Layout::new(tile, 32, 227 * 1024, false));
        }
    }

    #[test]
    fn quantized_matvecs_get_the_int8_pair_and_float_ones_keep_theirs() {
        let pair = |wtype, k| KernelSpec::MatVec { wtype, k }.int8_decode().map(|(_, m)| m.entry_name());
        // The 7B's shapes: whole blocks of 128 threads, two rows a thread.
        assert_eq!(pair(GgmlType::Q4_K, 4096).as_deref(), Some("mmvq_q4_k_k4096_t128_r2"));
        assert_eq!(pair(GgmlType::Q6_K, 11008).as_deref(), Some("mmvq_q6_k_k11008_t128_r2"));
        // SmolLM2's 576-wide Q8_0 rows (36 units): one warp a row.
        assert_eq!(pair(GgmlType::Q8_0, 576).as_deref(), Some("mmvq_q8_0_k576_t32_r1"));
        for ty in [GgmlType::F32, GgmlType::F16, GgmlType::BF16] {
            assert_eq!(pair(ty, 4096), None, "{ty} keeps the float matvec");
        }
        assert_eq!(KernelSpec::Argmax.int8_decode(), None);
        let bad = KernelSpec::MatVecQ8 { wtype: GgmlType::F16, k: 64, threads_per_row: 32, rows_per_thread: 1 };
        assert!(bad.validate().unwrap_err().to_string().contains("keep the float matvec"));
        let bad = KernelSpec::MatVecQ8 { wtype: GgmlType::Q8_0, k: 64, threads_per_row: 48, rows_per_thread: 1 };
        assert!(bad.validate().unwrap_err().to_string().contains("threads must be 32, 64 or 128"));
        assert_eq!(MmvqLayout { threads_per_row: 32, rows_per_thread: 2 }.rows_per_block(), 8);
    }
}

#[cfg(test)]
mod mmq_layout_tests {
    use super::*;

    const TYPES: [GgmlType; 8] = [
        GgmlType::Q4_0,
        GgmlType::Q4_1,
        GgmlType::Q5_0,
        GgmlType::Q5_1,
        GgmlType::Q8_0,
        GgmlType::Q4_K,
        GgmlType::Q5_K,
        GgmlType::Q6_K,
    ];

    /// Every int8 type at the row lengths of the reference models and the GPU case table fits
    /// AMD's 64 KiB of LDS (one stage, fewer tokens a pass where needed), an sm_86's 99 KiB and an
    /// H100's 227 KiB; on the H100 the 7B's products keep two stages and the whole block's tokens in
    /// one pass, which the measured speed came from.
    #[test]
    fn mmq_layouts_fit_every_target_and_keep_the_measured_tiles_on_the_h100() {
        for ty in TYPES {
            assert!(int8_matmul_type(ty));
            for k in [256u32, 512, 576, 640, 768, 1024, 1536, 2048, 4096, 8960, 11008] {
                if !k.is_multiple_of(ty.block_elems() as u32) {
                    continue;
                }
                for (async_copy, max) in [(false, 64 * 1024), (true, 99 * 1024), (true, 227 * 1024)] {
                    let l = mmq_layout(ty, k, async_copy, max, 128);
                    assert!(l.shared_bytes <= max, "{ty:?} k {k}: {l:?} past {max}");
                    assert!(k.is_multiple_of(l.k_step) && l.k_step.is_multiple_of(32));
                    assert!(mmq_tokens(k).is_multiple_of(l.pass_tokens) && l.pass_tokens >= 16);
                    assert!(async_copy || l.stages == 1);
                    assert!(16 * l.w_copies >= l.k_step / ty.block_elems() as u32 * ty.block_bytes() as u32 + 15);
                }
            }
        }
        for ty in [GgmlType::Q4_K, GgmlType::Q6_K] {
            for k in [4096, 11008] {
                let l = mmq_layout(ty, k, true, 227 * 1024, 128);
                assert_eq!((l.k_step, l.stages, l.pass_tokens), (256, 2, 128), "{ty:?} k {k}");
            }
        }
    }
}
