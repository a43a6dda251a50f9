//! Q8_1: the int8 activation format every quantized matrix product reads (CPU fast path and the
//! GPU int8 kernels alike). A block is 32 signed bytes, an f16 scale `d` and an f16 `s = d·Σq`,
//! laid out exactly as ggml's `block_q8_1` (`ggml-common.h`), and quantized exactly as
//! llama.cpp's `quantize_row_q8_1_ref` (`ggml-quants.c`): d = max|x| / 127, q = round(x / d) with
//! x multiplied by the f32 reciprocal and rounded half away from zero, s from the f32 d (not the
//! rounded f16 one). So a GPU kernel fed the same floats sees the same bytes.
//!
//! [`Q8Rows`] keeps the same numbers in the layout the CPU kernels read: the bytes of each row
//! contiguous, the scales widened to f32, and the sums the dot products need precomputed once
//! per activation row (they are reused by every weight row).

use super::q8_k::{nearest_int, quantize_32_ggml_cpu, ActFormat, BlockQ8K};
use crate::dtype::QK_K;

/// Values per Q8_1 block.
pub const QK8_1: usize = 32;

/// ggml's `block_q8_1`: f16 `d`, f16 `s = d·Σq` (both little-endian), 32 quants.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockQ8_1 {
    pub d: [u8; 2],
    pub s: [u8; 2],
    pub qs: [i8; QK8_1],
}
const _: () = assert!(std::mem::size_of::<BlockQ8_1>() == 2 + 2 + QK8_1);

impl BlockQ8_1 {
    /// The scale, widened to f32.
    pub fn d(&self) -> f32 {
        half::f16::from_le_bytes(self.d).to_f32()
    }

    /// The stored d·Σq, widened to f32.
    pub fn s(&self) -> f32 {
        half::f16::from_le_bytes(self.s).to_f32()
    }

    /// The scale terms the GPU's int8 matrix product reads beside the block: (d, d·Σq) with d the
    /// stored f16 widened, exact in f32 (11 bits times |Σq| ≤ 4064 fit its 24).
    pub fn ds(&self) -> [f32; 2] {
        let d = self.d();
        let sum: i32 = self.qs.iter().map(|&q| q as i32).sum();
        [d, d * sum as f32]
    }
}

/// One block of `quantize_row_q8_1_ref`.
pub fn quantize_block_q8_1(x: &[f32]) -> BlockQ8_1 {
    assert_eq!(x.len(), QK8_1, "a q8_1 block holds 32 values");
    let amax = x.iter().fold(0f32, |m, &v| if m > v.abs() { m } else { v.abs() });
    let d = amax / 127.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    let mut qs = [0i8; QK8_1];
    let mut sum = 0i32;
    for (q, &v) in qs.iter_mut().zip(x) {
        // roundf: half away from zero, as Rust's `round`. |v·id| ≤ 127 up to one rounding.
        *q = (v * id).round() as i8;
        sum += *q as i32;
    }
    BlockQ8_1 { d: half::f16::from_f32(d).to_le_bytes(), s: half::f16::from_f32(sum as f32 * d).to_le_bytes(), qs }
}

/// `quantize_row_q8_1_ref` over a row whose length is a multiple of 32.
pub fn quantize_row_q8_1(x: &[f32], out: &mut [BlockQ8_1]) {
    assert_eq!(x.len(), out.len() * QK8_1, "one q8_1 block per 32 values");
    for (b, chunk) in out.iter_mut().zip(x.chunks_exact(QK8_1)) {
        *b = quantize_block_q8_1(chunk);
    }
}

/// Q8_1 activations of `n` rows (tokens) of `k` values in the layout the CPU kernels read. Every
/// field is derived from the canonical blocks (see [`Q8Rows::to_blocks`]); the buffers are kept and
/// reused, so quantizing a new input of the same or smaller size allocates nothing.
#[derive(Default, Clone, Debug)]
pub struct Q8Rows {
    k: usize,
    n: usize,
    /// How the rows were quantized (Q8_K rows hold each 256-value block as eight 32-value
    /// blocks sharing its f32 d).
    format: ActFormat,
    /// [n][k] quants.
    pub(crate) qs: Vec<i8>,
    /// [n][k/32] the f16 d, widened.
    pub(crate) d: Vec<f32>,
    /// [n][k/32] the f16 s, widened.
    pub(crate) s: Vec<f32>,
    /// [n][k/32] Σq of each block (|Σq| ≤ 32·127).
    pub(crate) qsum: Vec<i32>,
    /// [n][k/32] d·Σq in f32: exact, since d has 11 significant bits and Σq at most 12.
    pub(crate) dsum: Vec<f32>,
    /// [n][k/16] d·Σq of each 16-value half block (Q2_K's minimums; exact, Σq has 11 bits).
    pub(crate) dsum16: Vec<f32>,
    /// [n][k/4] d of the block each group of 4 quants belongs to (the lane scales of the SIMD
    /// kernels, whose integer lanes each sum 4 products).
    pub(crate) d_lanes: Vec<f32>,
    /// [n][k/4] −Σ of each group of 4 quants (SIMD kernels start their lanes there to turn an
    /// unsigned weight `w + c` into the signed `w`).
    pub(crate) nsum4: Vec<i32>,
    /// The same numbers for whole groups of 16 rows, as AMX tile products read them (empty
    /// unless AMX is in use): [g][b][8][16][4] quants, 4 of block b per row per tile row.
    pub(crate) amx_qs: Vec<i8>,
    /// [g][b][16] d, s, d·Σq of block b of each row of group g.
    pub(crate) amx_d: Vec<f32>,
    pub(crate) amx_s: Vec<f32>,
    pub(crate) amx_dsum: Vec<f32>,
    /// [g][b][2][16] Σq of each 16-value half of block b, per row of group g.
    pub(crate) amx_qsum16: Vec<i32>,
}

impl Q8Rows {
    pub fn new() -> Q8Rows {
        Q8Rows::default()
    }

    /// Values per row.
    pub fn k(&self) -> usize {
        self.k
    }

    /// Rows.
    pub fn n(&self) -> usize {
        self.n
    }

    /// Q8_1 blocks per row.
    pub fn blocks_per_row(&self) -> usize {
        self.k / QK8_1
    }

    /// How these rows were quantized.
    pub fn format(&self) -> ActFormat {
        self.format
    }

    fn reshape(&mut self, n: usize, k: usize) {
        assert!(k.is_multiple_of(QK8_1), "q8_1 rows are whole blocks of 32, not {k}");
        self.k = k;
        self.n = n;
        let nb = k / QK8_1;
        self.qs.resize(n * k, 0);
        self.d.resize(n * nb, 0.0);
        self.s.resize(n * nb, 0.0);
        self.qsum.resize(n * nb, 0);
        self.dsum.resize(n * nb, 0.0);
        self.dsum16.resize(2 * n * nb, 0.0);
        self.d_lanes.resize(n * k / 4, 0.0);
        self.nsum4.resize(n * k / 4, 0);
    }

    /// Quantizes `x` (`[n][k]`, k a multiple of 32) with `quantize_row_q8_1_ref`: the same bits
    /// as [`quantize_block_q8_1`], in code the compiler vectorizes (compiled for the host's
    /// widest vectors); many rows are split across rayon's threads.
    pub fn quantize(&mut self, x: &[f32], k: usize) {
        self.quantize_as(x, k, ActFormat::Q8_1Ref);
    }

    /// Quantizes `x` (`[n][k]`) to `format` (k a multiple of its block: 32, or 256 for Q8_K).
    pub fn quantize_as(&mut self, x: &[f32], k: usize, format: ActFormat) {
        assert!(k > 0 && x.len().is_multiple_of(k), "{} values are not whole rows of {k}", x.len());
        assert!(
            k.is_multiple_of(format.block()),
            "{} rows are whole blocks of {}, not {k}",
            format.name(),
            format.block()
        );
        self.format = format;
        self.reshape(x.len() / k, k);
        let view = self.view();
        quantize_split(view, x, k, format);
        self.build_amx_panels();
    }

    /// Takes Q8_K blocks (`[n][k/256]`) as they are. Quants of −128 are refused, as in
    /// [`Q8Rows::from_blocks`].
    pub fn from_q8k_blocks(blocks: &[BlockQ8K], k: usize) -> Q8Rows {
        let nb = k / QK_K;
        assert!(nb > 0 && k.is_multiple_of(QK_K), "q8_K rows are whole blocks of 256, not {k}");
        assert!(blocks.len().is_multiple_of(nb), "{} blocks are not whole rows of {k}", blocks.len());
        let mut rows = Q8Rows { format: ActFormat::Q8K, ..Q8Rows::new() };
        rows.reshape(blocks.len() / nb, k);
        for (i, b) in blocks.iter().enumerate() {
            assert!(b.qs.iter().all(|&q| q != i8::MIN), "q8_K block {i} holds −128, which no quantizer makes");
            let d = b.d();
            let mut view = rows.view();
            for (j, qs) in b.qs.chunks_exact(QK8_1).enumerate() {
                let qs: &[i8; QK8_1] = qs.try_into().expect("32 quants");
                fill_block(&mut view, 8 * i + j, qs, d, d * qs.iter().map(|&q| q as i32).sum::<i32>() as f32);
            }
        }
        rows.build_amx_panels();
        rows
    }

    /// The Q8_K blocks of row `t` (rows quantized to [`ActFormat::Q8K`]).
    pub fn to_q8k_blocks(&self, t: usize) -> Vec<BlockQ8K> {
        assert_eq!(self.format, ActFormat::Q8K, "these rows are {}, not q8_K", self.format.name());
        let nb = self.blocks_per_row();
        (0..self.k / QK_K)
            .map(|s| {
                let i = t * nb + 8 * s;
                let mut qs = [0i8; QK_K];
                qs.copy_from_slice(&self.qs[i * QK8_1..i * QK8_1 + QK_K]);
                BlockQ8K::new(self.d[i], qs)
            })
            .collect()
    }

    /// Every field, borrowed apart.
    fn view(&mut self) -> BlocksMut<'_> {
        BlocksMut {
            qs: &mut self.qs,
            d: &mut self.d,
            s: &mut self.s,
            qsum: &mut self.qsum,
            dsum: &mut self.dsum,
            dsum16: &mut self.dsum16,
            d_lanes: &mut self.d_lanes,
            nsum4: &mut self.nsum4,
        }
    }

    /// Whole groups of 16 rows laid out for AMX tile products.
    pub fn amx_groups(&self) -> usize {
        if self.amx_d.is_empty() {
            0
        } else {
            self.n / 16
        }
    }

    /// Fills the AMX panels when AMX is in use and there is a whole group of 16 rows.
    fn build_amx_panels(&mut self) {
        let groups = self.n / 16;
        if groups == 0 || !super::simd::amx_usable() {
            self.amx_d.clear();
            return;
        }
        let (k, nb) = (self.k, self.k / QK8_1);
        self.amx_qs.resize(groups * nb * 512, 0);
        self.amx_d.resize(groups * nb * 16, 0.0);
        self.amx_s.resize(groups * nb * 16, 0.0);
        self.amx_dsum.resize(groups * nb * 16, 0.0);
        self.amx_qsum16.resize(groups * nb * 32, 0);
        for g in 0..groups {
            for b in 0..nb {
                let gb = g * nb + b;
                for tt in 0..16 {
                    let t = 16 * g + tt;
                    let src = &self.qs[t * k + 32 * b..t * k + 32 * b + 32];
                    for kk in 0..8 {
                        let dst = gb * 512 + kk * 64 + tt * 4;
                        self.amx_qs[dst..dst + 4].copy_from_slice(&src[4 * kk..4 * kk + 4]);
                    }
                    self.amx_d[gb * 16 + tt] = self.d[t * nb + b];
                    self.amx_s[gb * 16 + tt] = self.s[t * nb + b];
                    self.amx_dsum[gb * 16 + tt] = self.dsum[t * nb + b];
                    for h in 0..2 {
                        self.amx_qsum16[gb * 32 + h * 16 + tt] =
                            src[16 * h..16 * h + 16].iter().map(|&q| q as i32).sum();
                    }
                }
            }
        }
    }

    /// Takes canonical blocks (`[n][k/32]`) as they are. Quants of −128 are refused: the quantizer
    /// never makes them, and the kernels' 16-bit pair sums rely on |q| ≤ 127.
    pub fn from_blocks(blocks: &[BlockQ8_1], k: usize) -> Q8Rows {
        let nb = k / QK8_1;
        assert!(nb > 0 && blocks.len().is_multiple_of(nb), "{} blocks are not whole rows of {k}", blocks.len());
        let mut rows = Q8Rows::new();
        rows.reshape(blocks.len() / nb, k);
        for (i, b) in blocks.iter().enumerate() {
            assert!(b.qs.iter().all(|&q| q != i8::MIN), "q8_1 block {i} holds −128, which no quantizer makes");
            rows.set_block(i, b);
        }
        rows.build_amx_panels();
        rows
    }

    /// Block `i` (row-major over rows, then blocks) set from its canonical form.
    fn set_block(&mut self, i: usize, b: &BlockQ8_1) {
        let (d, s) = (b.d(), b.s());
        let qsum: i32 = b.qs.iter().map(|&q| q as i32).sum();
        self.qs[i * QK8_1..(i + 1) * QK8_1].copy_from_slice(&b.qs);
        self.d[i] = d;
        self.s[i] = s;
        self.qsum[i] = qsum;
        self.dsum[i] = d * qsum as f32;
        for h in 0..2 {
            self.dsum16[2 * i + h] = d * b.qs[16 * h..16 * h + 16].iter().map(|&q| q as i32).sum::<i32>() as f32;
        }
        self.d_lanes[i * 8..(i + 1) * 8].fill(d);
        for (g, n4) in b.qs.chunks_exact(4).zip(&mut self.nsum4[i * 8..(i + 1) * 8]) {
            *n4 = -g.iter().map(|&q| q as i32).sum::<i32>();
        }
    }

    /// The canonical blocks of row `t` (rows of 32-value blocks).
    pub fn to_blocks(&self, t: usize) -> Vec<BlockQ8_1> {
        assert_ne!(self.format, ActFormat::Q8K, "q8_K rows have no q8_1 blocks (to_q8k_blocks)");
        let nb = self.blocks_per_row();
        (0..nb)
            .map(|b| {
                let i = t * nb + b;
                let mut qs = [0i8; QK8_1];
                qs.copy_from_slice(&self.qs[i * QK8_1..(i + 1) * QK8_1]);
                BlockQ8_1 {
                    d: half::f16::from_f32(self.d[i]).to_le_bytes(),
                    s: half::f16::from_f32(self.s[i]).to_le_bytes(),
                    qs,
                }
            })
            .collect()
    }

    /// Row `t` dequantized (d·q), for tests and references.
    pub fn dequantize_row(&self, t: usize) -> Vec<f32> {
        let nb = self.blocks_per_row();
        (0..self.k).map(|j| self.d[t * nb + j / QK8_1] * self.qs[t * self.k + j] as f32).collect()
    }

    /// The blocks of row `t`, `blocks` of them from block `first`, as the scalar kernels read them.
    pub(crate) fn slice(&self, t: usize, first: usize, blocks: usize) -> Q8Slice<'_> {
        let b0 = t * self.blocks_per_row() + first;
        Q8Slice {
            qs: &self.qs[b0 * QK8_1..(b0 + blocks) * QK8_1],
            d: &self.d[b0..b0 + blocks],
            s: &self.s[b0..b0 + blocks],
            qsum: &self.qsum[b0..b0 + blocks],
        }
    }
}

/// The fields of a run of whole blocks, borrowed apart so two runs can be filled at once.
struct BlocksMut<'a> {
    qs: &'a mut [i8],
    d: &'a mut [f32],
    s: &'a mut [f32],
    qsum: &'a mut [i32],
    dsum: &'a mut [f32],
    dsum16: &'a mut [f32],
    d_lanes: &'a mut [f32],
    nsum4: &'a mut [i32],
}

impl<'a> BlocksMut<'a> {
    /// The first `b` blocks and the rest.
    fn split(self, b: usize) -> (BlocksMut<'a>, BlocksMut<'a>) {
        let (qs0, qs1) = self.qs.split_at_mut(b * QK8_1);
        let (d0, d1) = self.d.split_at_mut(b);
        let (s0, s1) = self.s.split_at_mut(b);
        let (q0, q1) = self.qsum.split_at_mut(b);
        let (ds0, ds1) = self.dsum.split_at_mut(b);
        let (h0, h1) = self.dsum16.split_at_mut(2 * b);
        let (l0, l1) = self.d_lanes.split_at_mut(8 * b);
        let (n0, n1) = self.nsum4.split_at_mut(8 * b);
        (
            BlocksMut { qs: qs0, d: d0, s: s0, qsum: q0, dsum: ds0, dsum16: h0, d_lanes: l0, nsum4: n0 },
            BlocksMut { qs: qs1, d: d1, s: s1, qsum: q1, dsum: ds1, dsum16: h1, d_lanes: l1, nsum4: n1 },
        )
    }
}

/// Quantizes rows of `k` from `x` into `rows` as `format`, halving the rows across rayon's
/// threads while each half is still worth a task.
fn quantize_split(rows: BlocksMut<'_>, x: &[f32], k: usize, format: ActFormat) {
    const MIN_VALUES: usize = 16 * 1024;
    let n = x.len() / k;
    if n >= 2 && x.len() >= 2 * MIN_VALUES {
        let half = n / 2;
        let (a, b) = rows.split(half * k / QK8_1);
        let (xa, xb) = x.split_at(half * k);
        rayon::join(|| quantize_split(a, xa, k, format), || quantize_split(b, xb, k, format));
        return;
    }
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,avx2,fma,f16c")]
        unsafe fn wide(rows: BlocksMut<'_>, x: &[f32], format: ActFormat) {
            match format {
                ActFormat::Q8_1Ref => quantize_all_avx512(rows, x),
                _ => quantize_ggml_cpu_avx512(rows, x, format),
            }
        }
        #[target_feature(enable = "avx2,fma,f16c")]
        unsafe fn avx2(rows: BlocksMut<'_>, x: &[f32], format: ActFormat) {
            match format {
                ActFormat::Q8_1Ref => quantize_all(rows, x),
                _ => quantize_ggml_cpu(rows, x, format),
            }
        }
        match super::Isa::best() {
            // SAFETY: `Isa::best()` names only instruction sets detected on this host.
            super::Isa::Avx512Vnni => return unsafe { wide(rows, x, format) },
            // SAFETY: as above.
            super::Isa::Avx2 => return unsafe { avx2(rows, x, format) },
            _ => {}
        }
    }
    match format {
        ActFormat::Q8_1Ref => quantize_all(rows, x),
        _ => quantize_ggml_cpu(rows, x, format),
    }
}

/// Block `i` of `rows` from its quants, its scale `d` (as the kernels multiply by it) and `s`.
#[inline(always)]
fn fill_block(rows: &mut BlocksMut<'_>, i: usize, qs: &[i8; QK8_1], d: f32, s: f32) {
    rows.qs[i * QK8_1..(i + 1) * QK8_1].copy_from_slice(qs);
    let mut sums = [0i32; 8];
    for (s, g) in sums.iter_mut().zip(qs.chunks_exact(4)) {
        *s = g[0] as i32 + g[1] as i32 + g[2] as i32 + g[3] as i32;
    }
    let qsum: i32 = sums.iter().sum();
    rows.d[i] = d;
    rows.s[i] = s;
    rows.qsum[i] = qsum;
    rows.dsum[i] = d * qsum as f32;
    rows.dsum16[2 * i] = d * (sums[0] + sums[1] + sums[2] + sums[3]) as f32;
    rows.dsum16[2 * i + 1] = d * (sums[4] + sums[5] + sums[6] + sums[7]) as f32;
    rows.d_lanes[i * 8..(i + 1) * 8].fill(d);
    for (n4, s) in rows.nsum4[i * 8..(i + 1) * 8].iter_mut().zip(sums) {
        *n4 = -s;
    }
}

/// Every block of `x` into `rows` as ggml-cpu quantizes to `format` (see `q8_k`): Q8_0 and Q8_1
/// per 32 values (s exact for Q8_0, so its offset terms equal ggml's signed-integer dots; f16
/// for Q8_1), Q8_K per 256 (eight 32-value blocks sharing its f32 d).
#[inline(always)]
fn quantize_ggml_cpu(mut rows: BlocksMut<'_>, x: &[f32], format: ActFormat) {
    match format {
        ActFormat::Q8K => {
            for (sb, chunk) in x.chunks_exact(QK_K).enumerate() {
                let chunk: &[f32; QK_K] = chunk.try_into().expect("256 values");
                // The first largest |x| (ggml keeps the first on ties), found as the first value
                // whose |x| bits equal the largest (integer maxima vectorize).
                let abs_bits = |v: &f32| v.to_bits() & 0x7FFF_FFFF;
                let amax_bits = chunk.iter().fold(0u32, |m, v| m.max(abs_bits(v)));
                let (d, iscale) = if amax_bits == 0 {
                    (0.0, 0.0)
                } else {
                    let max = chunk[chunk.iter().position(|v| abs_bits(v) == amax_bits).expect("the maximum")];
                    let iscale = -127.0 / max;
                    (1.0 / iscale, iscale)
                };
                for (j, part) in chunk.chunks_exact(QK8_1).enumerate() {
                    let qs: [i8; QK8_1] = std::array::from_fn(|l| nearest_int(iscale * part[l]).min(127) as i8);
                    let qsum: i32 = qs.iter().map(|&q| q as i32).sum();
                    fill_block(&mut rows, 8 * sb + j, &qs, d, d * qsum as f32);
                }
            }
        }
        _ => {
            for (i, chunk) in x.chunks_exact(QK8_1).enumerate() {
                let (dw, d, qs) = quantize_32_ggml_cpu(chunk.try_into().expect("32 values"));
                let qsum: i32 = qs.iter().map(|&q| q as i32).sum();
                let s = if format == ActFormat::Q8_1 {
                    half::f16::from_f32(qsum as f32 * d).to_f32()
                } else {
                    dw * qsum as f32
                };
                fill_block(&mut rows, i, &qs, dw, s);
            }
        }
    }
}

/// Every block of `x` into `rows`: `quantize_block_q8_1` written without branches or calls, so
/// it vectorizes. Rounding half away from zero is t + (|v − t| ≥ ½ ? ±1 : 0) with t = trunc(v),
/// exact since v − t is.
#[inline(always)]
fn quantize_all(rows: BlocksMut<'_>, x: &[f32]) {
    for (i, chunk) in x.chunks_exact(QK8_1).enumerate() {
        let chunk: &[f32; QK8_1] = chunk.try_into().expect("32 values");
        let mut amax = 0f32;
        for &v in chunk {
            amax = if amax > v.abs() { amax } else { v.abs() };
        }
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        let qs: &mut [i8; QK8_1] = (&mut rows.qs[i * QK8_1..(i + 1) * QK8_1]).try_into().expect("32 quants");
        for (q, &v) in qs.iter_mut().zip(chunk) {
            let v = v * id;
            let t = v.trunc();
            let r = if (v - t).abs() >= 0.5 { t + 1f32.copysign(v) } else { t };
            *q = r as i8;
        }
        let mut sums = [0i32; 8];
        for (s, g) in sums.iter_mut().zip(qs.chunks_exact(4)) {
            *s = g[0] as i32 + g[1] as i32 + g[2] as i32 + g[3] as i32;
        }
        let qsum: i32 = sums.iter().sum();
        let dh = half::f16::from_f32(d);
        let dw = dh.to_f32();
        rows.d[i] = dw;
        rows.s[i] = half::f16::from_f32(qsum as f32 * d).to_f32();
        rows.qsum[i] = qsum;
        rows.dsum[i] = dw * qsum as f32;
        rows.dsum16[2 * i] = dw * (sums[0] + sums[1] + sums[2] + sums[3]) as f32;
        rows.dsum16[2 * i + 1] = dw * (sums[4] + sums[5] + sums[6] + sums[7]) as f32;
        rows.d_lanes[i * 8..(i + 1) * 8].fill(dw);
        for (n4, s) in rows.nsum4[i * 8..(i + 1) * 8].iter_mut().zip(sums) {
            *n4 = -s;
        }
    }
}

/// Stores a block's 32 quants `q` at `qs` and the negated sums of each 4 at `nsum4` (8 ints), and
/// returns the sums of its two 16-value halves.
///
/// # Safety
/// The host runs AVX-512 VNNI/VL and AVX2; `qs` has room for 32 bytes and `nsum4` for 8 ints.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,avx2,fma,f16c")]
#[inline]
unsafe fn store_quants_avx512(qs: *mut i8, nsum4: *mut i32, q: std::arch::x86_64::__m256i) -> (i32, i32) {
    use std::arch::x86_64::*;
    _mm256_storeu_si256(qs.cast(), q);
    let sum4 = _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_set1_epi8(1), q);
    _mm256_storeu_si256(nsum4.cast(), _mm256_sub_epi32(_mm256_setzero_si256(), sum4));
    // Both 128-bit halves (the two 16-value halves of the block) reduced at once.
    let h = _mm256_add_epi32(sum4, _mm256_shuffle_epi32::<0b01_00_11_10>(sum4));
    let h = _mm256_add_epi32(h, _mm256_shuffle_epi32::<0b10_11_00_01>(h));
    (_mm256_cvtsi256_si32(h), _mm_cvtsi128_si32(_mm256_extracti128_si256::<1>(h)))
}

/// [`quantize_all`] with AVX-512 intrinsics (the compiler keeps the block maximum scalar).
///
/// # Safety
/// The host must run AVX-512 F/BW/DQ/VL/VNNI and F16C.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn quantize_all_avx512(rows: BlocksMut<'_>, x: &[f32]) {
    use std::arch::x86_64::*;
    let nblocks = x.len() / QK8_1;
    assert!(rows.qs.len() >= x.len() && rows.nsum4.len() >= 8 * nblocks && rows.d_lanes.len() >= 8 * nblocks);
    /// f32 → f16 (nearest even, as the half crate) → f32.
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn f16_round(v: f32) -> f32 {
        _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(_mm_set_ss(v))))
    }
    /// 16 values times 1/d, rounded half away from zero, as bytes.
    #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma,f16c")]
    #[inline]
    unsafe fn quant(v: __m512, id: __m512) -> __m128i {
        let v = _mm512_mul_ps(v, id);
        let t = _mm512_roundscale_ps::<{ _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC }>(v);
        let away = _mm512_cmp_ps_mask::<_CMP_GE_OQ>(_mm512_abs_ps(_mm512_sub_ps(v, t)), _mm512_set1_ps(0.5));
        let step = _mm512_or_ps(_mm512_and_ps(v, _mm512_set1_ps(-0.0)), _mm512_set1_ps(1.0));
        _mm512_cvtepi32_epi8(_mm512_cvttps_epi32(_mm512_mask_add_ps(t, away, t, step)))
    }
    for i in 0..nblocks {
        let p = x.as_ptr().add(i * QK8_1);
        let (v0, v1) = (_mm512_loadu_ps(p), _mm512_loadu_ps(p.add(16)));
        let amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1)));
        let d = amax / 127.0;
        let id = _mm512_set1_ps(if d != 0.0 { 1.0 / d } else { 0.0 });
        let q = _mm256_set_m128i(quant(v1, id), quant(v0, id));
        let (half0, half1) =
            store_quants_avx512(rows.qs.as_mut_ptr().add(i * QK8_1), rows.nsum4.as_mut_ptr().add(8 * i), q);
        let qsum = half0 + half1;
        let dw = f16_round(d);
        rows.d[i] = dw;
        rows.s[i] = f16_round(qsum as f32 * d);
        rows.qsum[i] = qsum;
        rows.dsum[i] = dw * qsum as f32;
        rows.dsum16[2 * i] = dw * half0 as f32;
        rows.dsum16[2 * i + 1] = dw * half1 as f32;
        _mm256_storeu_ps(rows.d_lanes.as_mut_ptr().add(8 * i), _mm256_set1_ps(dw));
    }
}

/// [`quantize_ggml_cpu`] with AVX-512 intrinsics: the same scales, the products rounded to
/// nearest even by `roundscale` (as `nearest_int` and ggml's `_mm256_round_ps`), the same sums.
///
/// # Safety
/// The host must run AVX-512 F/BW/DQ/VL/VNNI and F16C.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn quantize_ggml_cpu_avx512(rows: BlocksMut<'_>, x: &[f32], format: ActFormat) {
    use std::arch::x86_64::*;
    let nblocks = x.len() / QK8_1;
    assert!(rows.qs.len() >= x.len() && rows.nsum4.len() >= 8 * nblocks && rows.d_lanes.len() >= 8 * nblocks);
    assert!(rows.d.len() >= nblocks && rows.s.len() >= nblocks && rows.dsum16.len() >= 2 * nblocks);
    /// 16 values times `scale`, rounded to nearest even, at most 127, as bytes.
    #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma,f16c")]
    #[inline]
    unsafe fn quant(v: __m512, scale: __m512) -> __m128i {
        let r = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(_mm512_mul_ps(v, scale));
        _mm512_cvtepi32_epi8(_mm512_min_epi32(_mm512_cvtps_epi32(r), _mm512_set1_epi32(127)))
    }
    // Block i from its two halves' quants and the scale the kernels take; s = d·Σq exactly, or
    // (Q8_1) the f16 of Σq times `s_d`, ggml's f32 d before rounding.
    let mut store = |i: usize, q: __m256i, d: f32, s_d: Option<f32>| {
        let (half0, half1) =
            store_quants_avx512(rows.qs.as_mut_ptr().add(i * QK8_1), rows.nsum4.as_mut_ptr().add(8 * i), q);
        let qsum = half0 + half1;
        *rows.d.get_unchecked_mut(i) = d;
        *rows.s.get_unchecked_mut(i) = match s_d {
            Some(s_d) => half::f16::from_f32(qsum as f32 * s_d).to_f32(),
            None => d * qsum as f32,
        };
        *rows.qsum.get_unchecked_mut(i) = qsum;
        *rows.dsum.get_unchecked_mut(i) = d * qsum as f32;
        *rows.dsum16.get_unchecked_mut(2 * i) = d * half0 as f32;
        *rows.dsum16.get_unchecked_mut(2 * i + 1) = d * half1 as f32;
        _mm256_storeu_ps(rows.d_lanes.as_mut_ptr().add(8 * i), _mm256_set1_ps(d));
    };
    let abs_mask = _mm512_set1_ps(f32::from_bits(0x7FFF_FFFF));
    if format == ActFormat::Q8K {
        for sb in 0..x.len() / QK_K {
            let p = x.as_ptr().add(sb * QK_K);
            let mut m = _mm512_setzero_ps();
            for c in 0..16 {
                m = _mm512_max_ps(m, _mm512_and_ps(_mm512_loadu_ps(p.add(16 * c)), abs_mask));
            }
            let amax = _mm512_reduce_max_ps(m);
            let (d, iscale) = if amax == 0.0 {
                (0.0, 0.0)
            } else {
                // The first value whose |x| is the largest (ggml keeps the first on ties).
                let mut first = 0;
                for c in 0..16 {
                    let hit = _mm512_cmp_ps_mask::<_CMP_EQ_OQ>(
                        _mm512_and_ps(_mm512_loadu_ps(p.add(16 * c)), abs_mask),
                        _mm512_set1_ps(amax),
                    );
                    if hit != 0 {
                        first = 16 * c + hit.trailing_zeros() as usize;
                        break;
                    }
                }
                let iscale = -127.0 / *p.add(first);
                (1.0 / iscale, iscale)
            };
            let sc = _mm512_set1_ps(iscale);
            for j in 0..8 {
                let b = p.add(32 * j);
                let q = _mm256_set_m128i(quant(_mm512_loadu_ps(b.add(16)), sc), quant(_mm512_loadu_ps(b), sc));
                store(8 * sb + j, q, d, None);
            }
        }
        return;
    }
    for i in 0..nblocks {
        let p = x.as_ptr().add(i * QK8_1);
        let (v0, v1) = (_mm512_loadu_ps(p), _mm512_loadu_ps(p.add(16)));
        let amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_and_ps(v0, abs_mask), _mm512_and_ps(v1, abs_mask)));
        let d = amax / 127.0;
        let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
        let sc = _mm512_set1_ps(id);
        let q = _mm256_set_m128i(quant(v1, sc), quant(v0, sc));
        let dw = half::f16::from_f32(d).to_f32();
        store(i, q, dw, (format == ActFormat::Q8_1).then_some(d));
    }
}

/// Consecutive Q8_1 blocks of one row: what one weight block is dotted with.
#[derive(Clone, Copy)]
pub struct Q8Slice<'a> {
    pub qs: &'a [i8],
    pub d: &'a [f32],
    pub s: &'a [f32],
    pub qsum: &'a [i32],
}

impl Q8Slice<'_> {
    /// Σ u·q over the 32-block `b` for 32 weight integers `u`.
    #[inline]
    pub fn idot(&self, b: usize, u: &[i32; QK8_1]) -> i32 {
        self.qs[b * QK8_1..(b + 1) * QK8_1].iter().zip(u).map(|(&q, &w)| q as i32 * w).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_block_matches_ggml_rounding_and_sum() {
        // Hand-checked against quantize_row_q8_1_ref: amax 2.54 → d = 0.02, 1.27 → 63.5 → 64.
        let mut x = [0f32; 32];
        x[0] = 2.54;
        x[1] = -1.27;
        x[2] = 0.01;
        x[3] = -0.03;
        let b = quantize_block_q8_1(&x);
        let d = 2.54f32 / 127.0;
        let id = 1.0 / d;
        assert_eq!(b.qs[0], 127);
        assert_eq!(b.qs[1], (-1.27f32 * id).round() as i8);
        assert_eq!(b.qs[2], (0.01f32 * id).round() as i8);
        assert_eq!(b.d(), half::f16::from_f32(d).to_f32());
        let sum: i32 = b.qs.iter().map(|&q| q as i32).sum();
        assert_eq!(b.s(), half::f16::from_f32(sum as f32 * d).to_f32());
    }

    /// `blocks` blocks of `block` pseudo-random values in [-0.5, 0.5), block by block scaled far up
    /// or down, made of exact ties (integers and halves), all zero (`with_zeros`), or left as they are.
    fn mixed_blocks(seed: u32, blocks: usize, block: usize, with_zeros: bool) -> Vec<f32> {
        let mut state = seed;
        let kinds = if with_zeros { 6 } else { 5 };
        (0..blocks * block)
            .map(|i| {
                state = state.wrapping_mul(1664525).wrapping_add(1013904223);
                let u = (state >> 8) as f32 / (1u32 << 24) as f32 - 0.5;
                match (i / block) % kinds {
                    0 => u * 1e4,
                    1 => u * 1e-5,
                    2 => ((u * 254.0).round() / 2.0).max(-127.0),
                    3 if with_zeros => 0.0,
                    _ => u,
                }
            })
            .collect()
    }

    #[test]
    fn the_vectorized_quantizer_equals_the_reference_bit_for_bit() {
        let mut x = mixed_blocks(0x9E37_79B9, 1600, 32, false);
        x[32 * 7] = 127.0;
        x[32 * 7 + 1..32 * 8].iter_mut().enumerate().for_each(|(j, v)| *v = j as f32 - 15.5);
        let mut rows = Q8Rows::new();
        rows.quantize(&x, 32 * 8);
        let mut want = vec![BlockQ8_1 { d: [0; 2], s: [0; 2], qs: [0; 32] }; 1600];
        quantize_row_q8_1(&x, &mut want);
        let got: Vec<BlockQ8_1> = (0..rows.n()).flat_map(|t| rows.to_blocks(t)).collect();
        assert_eq!(got, want);
        let again = Q8Rows::from_blocks(&want, 32 * 8);
        assert_eq!((&rows.nsum4, &rows.dsum, &rows.d_lanes), (&again.nsum4, &again.dsum, &again.d_lanes));
        assert_eq!(rows.dsum16, again.dsum16);
    }

    #[test]
    fn the_vectorized_ggml_cpu_quantizers_equal_the_scalar_ones_bit_for_bit() {
        let mut x = mixed_blocks(0x2545_F491, 40, 256, true);
        // Ties of the largest |x| with both signs, in both orders.
        x[256 * 4 + 5] = -3.0;
        x[256 * 4 + 9] = 3.0;
        x[256 * 5 + 5] = 3.0;
        x[256 * 5 + 9] = -3.0;
        for format in [ActFormat::Q8_0, ActFormat::Q8_1, ActFormat::Q8K] {
            let mut fast = Q8Rows::new();
            fast.quantize_as(&x, 512, format);
            let mut scalar = Q8Rows { format, ..Q8Rows::new() };
            scalar.reshape(x.len() / 512, 512);
            quantize_ggml_cpu(scalar.view(), &x, format);
            let fields =
                |r: &Q8Rows| (r.qs.clone(), r.d.clone(), r.s.clone(), r.qsum.clone(), r.dsum.clone(), r.dsum16.clone());
            assert_eq!(fields(&fast), fields(&scalar), "{}", format.name());
            assert_eq!((&fast.d_lanes, &fast.nsum4), (&scalar.d_lanes, &scalar.nsum4), "{}", format.name());
        }
    }

    #[test]
    fn zeros_quantize_to_zero_scale() {
        let b = quantize_block_q8_1(&[0.0; 32]);
        assert_eq!((b.d(), b.s(), b.qs), (0.0, 0.0, [0; 32]));
    }

    #[test]
    fn rows_round_trip_through_blocks() {
        let x: Vec<f32> = (0..192).map(|i| ((i * 37) % 101) as f32 / 13.0 - 3.5).collect();
        let mut rows = Q8Rows::new();
        rows.quantize(&x, 96);
        assert_eq!((rows.n(), rows.k()), (2, 96));
        let mut blocks = rows.to_blocks(0);
        blocks.extend(rows.to_blocks(1));
        let mut direct = vec![BlockQ8_1 { d: [0; 2], s: [0; 2], qs: [0; 32] }; 6];
        quantize_row_q8_1(&x, &mut direct);
        assert_eq!(blocks, direct);
        let again = Q8Rows::from_blocks(&direct, 96);
        assert_eq!((again.qs, again.dsum, again.nsum4), (rows.qs.clone(), rows.dsum.clone(), rows.nsum4.clone()));
        assert_eq!(again.dsum16, rows.dsum16);
        for (i, &ds) in rows.dsum.iter().enumerate() {
            assert_eq!(ds as f64, rows.d[i] as f64 * rows.qsum[i] as f64, "d·Σq is exact in f32");
        }
    }
}
