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
    /// [n][k/4] d of the block each group of 4 quants belongs to (the lane scales of the SIMD
    /// kernels, whose integer lanes each sum 4 products).
    pub(crate) d_lanes: Vec<f32>,
    /// [n][k/4] −Σ of each group of 4 quants (SIMD kernels start their lanes there to turn an
    /// unsigned weight `w + c` into the signed `w`).
    pub(crate) nsum4: Vec<i32>,
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
        self.d_lanes.resize(n * k / 4, 0.0);
        self.nsum4.resize(n * k / 4, 0);
    }

    /// Quantizes `x` ([n][k], k a multiple of 32) with `quantize_row_q8_1_ref`.
    pub fn quantize(&mut self, x: &[f32], k: usize) {
        assert!(k > 0 && x.len().is_multiple_of(k), "{} values are not whole rows of {k}", x.len());
        self.reshape(x.len() / k, k);
        for (i, chunk) in x.chunks_exact(QK8_1).enumerate() {
            self.set_block(i, &quantize_block_q8_1(chunk));
        }
    }

    /// Takes canonical blocks ([n][k/32]) as they are. Quants of −128 are refused: the quantizer
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
        self.d_lanes[i * 8..(i + 1) * 8].fill(d);
        for (g, n4) in b.qs.chunks_exact(4).zip(&mut self.nsum4[i * 8..(i + 1) * 8]) {
            *n4 = -g.iter().map(|&q| q as i32).sum::<i32>();
        }
    }

    /// The canonical blocks of row `t`.
    pub fn to_blocks(&self, t: usize) -> Vec<BlockQ8_1> {
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
        for (i, &ds) in rows.dsum.iter().enumerate() {
            assert_eq!(ds as f64, rows.d[i] as f64 * rows.qsum[i] as f64, "d·Σq is exact in f32");
        }
    }
}
