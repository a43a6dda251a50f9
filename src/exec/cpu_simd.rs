//! f32 vector helpers of the CPU fast path (dots, axpy, RMSNorm, exp-based activations). Each is
//! plain Rust written so LLVM vectorizes it (independent accumulators, no branches), compiled three
//! times: for AVX-512, for AVX2 + FMA, and for the baseline; the host's best is chosen at run time
//! from [`Isa::best`]. The exp is a Cephes-style polynomial (relative error about 2e-7), not libm:
//! it is what lets SiLU, GELU and softmax vectorize. The `_ggml` variants (SiLU, rope's rotation,
//! attention) compute as ggml-cpu does on x86-64 (its `ggml_v_expf`, GCC's fma contraction, its
//! reduction trees), bit for bit, because the fast path's 8-bit activations turn any last-bit
//! difference from llama.cpp into a rounding the other way.

#[cfg(target_arch = "x86_64")]
use crate::quant::Isa;

/// Defines `pub fn $name` dispatching to copies of `$imp` compiled for each x86 level.
macro_rules! multiversion {
    ($(#[$doc:meta])* fn $name:ident($($arg:ident: $ty:ty),*) $(-> $ret:ty)? => $imp:ident) => {
        $(#[$doc])*
        #[allow(clippy::too_many_arguments)]
        pub fn $name($($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma,f16c")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn wide($($arg: $ty),*) $(-> $ret)? { $imp($($arg),*) }
                #[target_feature(enable = "avx2,fma,f16c")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn avx2($($arg: $ty),*) $(-> $ret)? { $imp($($arg),*) }
                match Isa::best() {
                    // SAFETY: `Isa::best()` names only instruction sets detected on this host.
                    Isa::Avx512Vnni => return unsafe { wide($($arg),*) },
                    // SAFETY: as above.
                    Isa::Avx2 => return unsafe { avx2($($arg),*) },
                    _ => {}
                }
            }
            $imp($($arg),*)
        }
    };
}

const LANES: usize = 16;

#[inline(always)]
fn dot_impl(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0f32; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: f32 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..LANES {
            acc[i] = x[i].mul_add(y[i], acc[i]);
        }
    }
    acc.iter().sum::<f32>() + tail
}

#[inline(always)]
fn axpy_impl(y: &mut [f32], alpha: f32, x: &[f32]) {
    for (a, &b) in y.iter_mut().zip(x) {
        *a = alpha.mul_add(b, *a);
    }
}

#[inline(always)]
fn sum_squares_impl(x: &[f32]) -> f32 {
    let mut acc = [0f32; LANES];
    let c = x.chunks_exact(LANES);
    let tail: f32 = c.remainder().iter().map(|v| v * v).sum();
    for v in c {
        for i in 0..LANES {
            acc[i] = v[i].mul_add(v[i], acc[i]);
        }
    }
    acc.iter().sum::<f32>() + tail
}

#[inline(always)]
fn scale_mul_impl(out: &mut [f32], x: &[f32], scale: f32, w: &[f32]) {
    for ((o, &v), &g) in out.iter_mut().zip(x).zip(w) {
        *o = v * scale * g;
    }
}

/// e^x for x ≤ 88.7, branch free: x = n·ln2 + r, e^r by a degree-6 polynomial, 2^n from bits.
#[inline(always)]
fn exp_approx(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const C1: f32 = 0.693_359_4;
    const C2: f32 = -2.121_944_4e-4;
    let x = x.clamp(-87.0, 88.0);
    let n = (x * LOG2E).round();
    let r = x - n * C1 - n * C2;
    let mut p = 1.987_569_1e-4f32;
    p = p.mul_add(r, 1.398_2e-3);
    p = p.mul_add(r, 8.333_452e-3);
    p = p.mul_add(r, 4.166_579_6e-2);
    p = p.mul_add(r, 1.666_666_5e-1);
    p = p.mul_add(r, 0.5);
    let e = (p * r).mul_add(r, r) + 1.0;
    e * f32::from_bits(((n as i32 + 127) << 23) as u32)
}

/// e^x as ggml-cpu's AVX-512 `ggml_v_expf` computes it (the SiLU of its SwiGLU on this host):
/// n = round(x·log2e) by the 1.5·2²³ shift, b = x − n·ln2 in two fmas, a degree-5 polynomial in
/// b and b², then j·2ⁿ rounded once (`vscalefps`); |n| > 192 gives ∞ or 0.
#[inline(always)]
fn ggml_expf(x: f32) -> f32 {
    const SHIFT: f32 = 12_582_912.0; // 0x1.8p23
    let z = x.mul_add(f32::from_bits(0x3fb8_aa3b), SHIFT); // 0x1.715476p+0
    let n = z - SHIFT;
    let b = (-n).mul_add(f32::from_bits(0x35bf_be8e), (-n).mul_add(f32::from_bits(0x3f31_7200), x));
    let u = b * b;
    let p_hi = f32::from_bits(0x3c07_2010).mul_add(b, f32::from_bits(0x3d2b_9f17)); // 0x1.0e4020p-7, 0x1.573e2ep-5
    let p_lo = f32::from_bits(0x3e2a_af33).mul_add(b, f32::from_bits(0x3eff_fedb)); // 0x1.555e66p-3, 0x1.fffdb6p-2
    let p_one = f32::from_bits(0x3f7f_fff6).mul_add(b, 1.0); // 0x1.ffffecp-1
    let j = p_hi.mul_add(u, p_lo).mul_add(u, p_one);
    // j·2ⁿ with one rounding: 2ⁿ split where it leaves the normal exponents (by 2¹⁰⁰, so the
    // first product stays normal down to n = −192). Branch-free, so loops of it vectorize.
    let pow2 = |e: i32| f32::from_bits(((e.clamp(-126, 127) + 127) as u32) << 23);
    let e = n as i32;
    let scaled = if e > 127 {
        j * pow2(e - 100) * pow2(100)
    } else if e < -126 {
        j * pow2(e + 100) * pow2(-100)
    } else {
        j * pow2(e)
    };
    let out_of_range = if n <= 0.0 { 0.0 } else { f32::INFINITY };
    if n.abs() > 192.0 {
        out_of_range
    } else {
        scaled
    }
}

#[inline(always)]
fn silu_mul_impl(out: &mut [f32], gate: &[f32], up: &[f32]) {
    for ((o, &g), &u) in out.iter_mut().zip(gate).zip(up) {
        *o = g / (1.0 + exp_approx(-g)) * u;
    }
}

#[inline(always)]
fn silu_mul_ggml_impl(out: &mut [f32], gate: &[f32], up: &[f32]) {
    // ggml's `ggml_vec_swiglu_f32`: x / (1 + e^(0 − x)) times up.
    for ((o, &g), &u) in out.iter_mut().zip(gate).zip(up) {
        *o = g / (1.0 + ggml_expf(0.0 - g)) * u;
    }
}

#[inline(always)]
fn gelu_mul_impl(out: &mut [f32], gate: &[f32], up: &[f32]) {
    const C: f32 = 0.797_884_6; // sqrt(2/pi)
    for ((o, &g), &u) in out.iter_mut().zip(gate).zip(up) {
        let y = C * (g + 0.044715 * g * g * g);
        let tanh = 1.0 - 2.0 / (exp_approx(2.0 * y) + 1.0);
        *o = 0.5 * g * (1.0 + tanh) * u;
    }
}

/// x ← e^(x − max), returning Σ.
#[inline(always)]
fn exp_shift_sum_impl(x: &mut [f32], max: f32) -> f32 {
    let mut acc = [0f32; LANES];
    let mut chunks = x.chunks_exact_mut(LANES);
    for c in &mut chunks {
        for i in 0..LANES {
            c[i] = exp_approx(c[i] - max);
            acc[i] += c[i];
        }
    }
    let mut tail = 0f32;
    for v in chunks.into_remainder() {
        *v = exp_approx(*v - max);
        tail += *v;
    }
    acc.iter().sum::<f32>() + tail
}

#[inline(always)]
fn max_impl(x: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; LANES];
    let c = x.chunks_exact(LANES);
    let tail = c.remainder().iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    for v in c {
        for i in 0..LANES {
            acc[i] = acc[i].max(v[i]);
        }
    }
    acc.iter().fold(tail, |m, &v| m.max(v))
}

#[inline(always)]
fn add_impl(acc: &mut [f32], x: &[f32]) {
    for (a, &b) in acc.iter_mut().zip(x) {
        *a += b;
    }
}

/// out[i] = scale · q·rows[i], where row i is `rows[i·stride..i·stride + q.len()]`.
#[inline(always)]
fn scaled_dots_impl(q: &[f32], rows: &[f32], stride: usize, scale: f32, out: &mut [f32]) {
    let d = q.len();
    for (i, o) in out.iter_mut().enumerate() {
        *o = dot_impl(q, &rows[i * stride..i * stride + d]) * scale;
    }
}

/// out = Σ_i w[i]·rows[i], row i as in [`scaled_dots_impl`].
#[inline(always)]
fn weighted_rows_impl(w: &[f32], rows: &[f32], stride: usize, out: &mut [f32]) {
    out.fill(0.0);
    let d = out.len();
    for (i, &wi) in w.iter().enumerate() {
        axpy_impl(out, wi, &rows[i * stride..i * stride + d]);
    }
}

/// One query's attention over `scores.len()` cached positions: scores = scale·q·k (soft-capped
/// to cap·tanh(s/cap) when `softcap` > 0), softmax, out = Σ p·v. Keys and values are rows
/// `kstride`/`vstride` apart, starting at the first attended position.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn attend_impl(
    q: &[f32],
    keys: &[f32],
    kstride: usize,
    values: &[f32],
    vstride: usize,
    scale: f32,
    softcap: f32,
    scores: &mut [f32],
    out: &mut [f32],
) {
    scaled_dots_impl(q, keys, kstride, scale, scores);
    if softcap > 0.0 {
        for s in scores.iter_mut() {
            // tanh(y) = 1 − 2/(e^{2y} + 1)
            *s = softcap * (1.0 - 2.0 / (exp_approx(2.0 * *s / softcap) + 1.0));
        }
    }
    let max = max_impl(scores);
    let inv = 1.0 / exp_shift_sum_impl(scores, max);
    for s in scores.iter_mut() {
        *s *= inv;
    }
    weighted_rows_impl(scores, values, vstride, out);
}

/// `_mm512_reduce_add_ps` as GCC and clang expand it (ggml's `hsum` of 16 lanes): the 256-bit
/// halves added, then the 128-bit halves, then lanes (0, 2) and (1, 3), then those two.
#[inline(always)]
pub fn reduce16(v: &[f32; 16]) -> f32 {
    let h8: [f32; 8] = std::array::from_fn(|i| v[i] + v[i + 8]);
    let h4: [f32; 4] = std::array::from_fn(|i| h8[i] + h8[i + 4]);
    (h4[0] + h4[2]) + (h4[1] + h4[3])
}

/// ggml-cpu's `ggml_vec_dot_f32` on AVX-512 (what its KQ product runs, the queries being a
/// permuted, non-contiguous view): four 16-lane fma accumulators over steps of 64, folded as
/// (0 + 2) + (1 + 3), reduced as [`reduce16`], the last n mod 64 products fma'd in order.
#[inline(always)]
fn dot_ggml_impl(x: &[f32], y: &[f32]) -> f32 {
    let n = x.len().min(y.len());
    let np = n & !63;
    let mut acc = [[0f32; 16]; 4];
    for (xs, ys) in x[..np].chunks_exact(64).zip(y[..np].chunks_exact(64)) {
        for (j, a) in acc.iter_mut().enumerate() {
            for (l, v) in a.iter_mut().enumerate() {
                *v = xs[16 * j + l].mul_add(ys[16 * j + l], *v);
            }
        }
    }
    let folded: [f32; 16] = std::array::from_fn(|l| (acc[0][l] + acc[2][l]) + (acc[1][l] + acc[3][l]));
    let mut sum = reduce16(&folded);
    for i in np..n {
        sum = x[i].mul_add(y[i], sum);
    }
    sum
}

/// One query's attention in llama.cpp's CPU order (flash attention off, f32 cache), over the
/// cache cells `first..first + scores.len()` (every other cell masked):
/// - scores: [`dot_ggml_impl`] times `scale` (`ggml_soft_max_ext`'s scale, one rounding);
/// - softmax: `ggml_v_expf(s − max)` cell by cell, summed per aligned chunk of 16 cells as
///   [`reduce16`] (masked cells 0) and the chunk sums added in f64; each weight times
///   (1/Σ) rounded to f32;
/// - values: with `one_token` (a pass of one query: `ggml_vec_dot_f32` over the cells) 64
///   lanes by cell mod 64 folded as [`dot_ggml_impl`]; otherwise (tinyBLAS, two or more
///   queries) 16 lanes by cell mod 16 then [`reduce16`]; each lane an fma chain in cell order.
///
/// `lanes` is scratch of at least 64·`out.len()` values.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn attend_ggml_impl(
    q: &[f32],
    keys: &[f32],
    kstride: usize,
    values: &[f32],
    vstride: usize,
    first: usize,
    scale: f32,
    one_token: bool,
    scores: &mut [f32],
    lanes: &mut [f32],
    out: &mut [f32],
) {
    let d = q.len();
    for (i, s) in scores.iter_mut().enumerate() {
        *s = dot_ggml_impl(&keys[i * kstride..i * kstride + d], q) * scale;
    }
    let max = max_impl(scores);
    for s in scores.iter_mut() {
        *s = ggml_expf(*s - max);
    }
    // The chunks of 16 cells from cell 0, masked cells 0.
    let lead = (16 - first % 16) % 16;
    let (head, rest) = scores.split_at(lead.min(scores.len()));
    let mut sum = 0f64;
    if !head.is_empty() {
        let mut chunk = [0f32; 16];
        chunk[first % 16..first % 16 + head.len()].copy_from_slice(head);
        sum += reduce16(&chunk) as f64;
    }
    let whole = rest.chunks_exact(16);
    let tail = whole.remainder();
    for c in whole {
        sum += reduce16(c.try_into().expect("16 cells")) as f64;
    }
    if !tail.is_empty() {
        let mut chunk = [0f32; 16];
        chunk[..tail.len()].copy_from_slice(tail);
        sum += reduce16(&chunk) as f64;
    }
    let inv = (1.0 / sum) as f32;
    for s in scores.iter_mut() {
        *s *= inv;
    }
    let dv = out.len();
    let n_lanes = if one_token { 64 } else { 16 };
    let lanes = &mut lanes[..n_lanes * dv];
    lanes.fill(0.0);
    for (i, &w) in scores.iter().enumerate() {
        let lane = &mut lanes[((first + i) % n_lanes) * dv..][..dv];
        for (a, &v) in lane.iter_mut().zip(&values[i * vstride..i * vstride + dv]) {
            *a = v.mul_add(w, *a);
        }
    }
    // The lanes are rows of `dv`: every fold below adds whole rows, so it runs along the values.
    if one_token {
        // ggml_vec_dot_f32's (0 + 2) + (1 + 3) of its four 16-lane accumulators.
        let (front, back) = lanes.split_at_mut(32 * dv);
        let (a0, a1) = front.split_at_mut(16 * dv);
        let (a2, a3) = back.split_at(16 * dv);
        for (((x0, &x1), &x2), &x3) in a0.iter_mut().zip(a1.iter()).zip(a2).zip(a3) {
            *x0 = (*x0 + x2) + (x1 + x3);
        }
    }
    // reduce16 row-wise: lanes i + (i + 8), then i + (i + 4), then (0 + 2) + (1 + 3).
    for half in [8, 4] {
        let (lo, hi) = lanes.split_at_mut(half * dv);
        for (a, &b) in lo.iter_mut().zip(&hi[..half * dv]) {
            *a += b;
        }
    }
    let (r0, rest) = lanes.split_at(dv);
    let (r1, rest) = rest.split_at(dv);
    let (r2, rest) = rest.split_at(dv);
    for ((((o, &x0), &x1), &x2), &x3) in out.iter_mut().zip(r0).zip(r1).zip(r2).zip(&rest[..dv]) {
        *o = (x0 + x2) + (x1 + x3);
    }
}

multiversion!(
    /// One query's attention in llama.cpp's CPU order (see `attend_ggml_impl`).
    fn attend_ggml(
        q: &[f32],
        keys: &[f32],
        kstride: usize,
        values: &[f32],
        vstride: usize,
        first: usize,
        scale: f32,
        one_token: bool,
        scores: &mut [f32],
        lanes: &mut [f32],
        out: &mut [f32]
    ) => attend_ggml_impl
);
multiversion!(
    /// One query's attention (see `attend_impl`).
    fn attend(
        q: &[f32],
        keys: &[f32],
        kstride: usize,
        values: &[f32],
        vstride: usize,
        scale: f32,
        softcap: f32,
        scores: &mut [f32],
        out: &mut [f32]
    ) => attend_impl
);
multiversion!(
    /// Σ x².
    fn sum_squares(x: &[f32]) -> f32 => sum_squares_impl
);
multiversion!(
    /// out = x · scale · w.
    fn scale_mul(out: &mut [f32], x: &[f32], scale: f32, w: &[f32]) => scale_mul_impl
);
multiversion!(
    /// out = silu(gate) · up.
    fn silu_mul(out: &mut [f32], gate: &[f32], up: &[f32]) => silu_mul_impl
);
multiversion!(
    /// out = silu(gate) · up as ggml-cpu computes it on x86-64 (its `ggml_v_expf`).
    fn silu_mul_ggml(out: &mut [f32], gate: &[f32], up: &[f32]) => silu_mul_ggml_impl
);
multiversion!(
    /// out = gelu_tanh(gate) · up.
    fn gelu_mul(out: &mut [f32], gate: &[f32], up: &[f32]) => gelu_mul_impl
);
multiversion!(
    /// acc += x.
    fn add(acc: &mut [f32], x: &[f32]) => add_impl
);
multiversion!(
    /// Rope's rotation of one head (see `rotate_impl`).
    fn rotate(v: &mut [f32], cos_sin: &[(f32, f32)], neox: bool) => rotate_impl
);

/// The first 2·`cos_sin.len()` values of `v` rotated pair by pair (neox: value i with value
/// i + half; otherwise 2i with 2i + 1), as ggml-cpu's `rotate_pairs` runs on x86-64: GCC
/// contracts each of its two expressions into one fma, x0·c − x1·s as fma(x0, c, −(x1·s)) and
/// x0·s + x1·c as fma(x0, s, x1·c) (checked bit for bit against its tensors).
#[inline(always)]
fn rotate_impl(v: &mut [f32], cos_sin: &[(f32, f32)], neox: bool) {
    let half = cos_sin.len();
    let turn = |x0: f32, x1: f32, (c, s): (f32, f32)| (x0.mul_add(c, -(x1 * s)), x0.mul_add(s, x1 * c));
    if neox {
        let (a, b) = v[..2 * half].split_at_mut(half);
        for ((x0, x1), &cs) in a.iter_mut().zip(b.iter_mut()).zip(cos_sin) {
            (*x0, *x1) = turn(*x0, *x1, cs);
        }
    } else {
        for (pair, &cs) in v[..2 * half].chunks_exact_mut(2).zip(cos_sin) {
            (pair[0], pair[1]) = turn(pair[0], pair[1], cs);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_approx_is_within_a_few_ulps_of_libm() {
        let mut worst = 0f64;
        let mut x = -80.0f32;
        while x < 80.0 {
            let want = (x as f64).exp();
            let rel = ((exp_approx(x) as f64 - want) / want).abs();
            worst = worst.max(rel);
            x += 0.013;
        }
        eprintln!("exp_approx: worst relative error {worst:.2e} over [-80, 80]");
        assert!(worst < 1e-6, "{worst:e}");
        assert!(exp_approx(-1000.0) < 1e-37);
        assert!(exp_approx(1000.0).is_finite());
    }

    #[test]
    fn helpers_agree_with_plain_loops() {
        let a: Vec<f32> = (0..1000).map(|i| ((i * 37) % 101) as f32 / 50.0 - 1.0).collect();
        let b: Vec<f32> = (0..1000).map(|i| ((i * 53) % 89) as f32 / 40.0 - 1.1).collect();
        let mut out = vec![0f32; 1000];
        for ggml in [false, true] {
            if ggml {
                silu_mul_ggml(&mut out, &a, &b);
            } else {
                silu_mul(&mut out, &a, &b);
            }
            for i in 0..1000 {
                let want = a[i] / (1.0 + (-a[i]).exp()) * b[i];
                assert!((out[i] - want).abs() <= 1e-6 * (1.0 + want.abs()), "silu {i} (ggml {ggml})");
            }
        }
        gelu_mul(&mut out, &a, &b);
        for i in 0..1000 {
            let g = a[i];
            let want = 0.5 * g * (1.0 + (0.797_884_6 * (g + 0.044715 * g * g * g)).tanh()) * b[i];
            assert!((out[i] - want).abs() <= 1e-6 * (1.0 + want.abs()), "gelu {i}");
        }
        assert_eq!(sum_squares(&a) as f64 as f32, sum_squares(&a));
        let want: f64 = a.iter().map(|&v| v as f64 * v as f64).sum();
        assert!((sum_squares(&a) as f64 - want).abs() < 1e-3);
    }

    #[test]
    fn ggml_order_attention_equals_a_plain_softmax_attention() {
        // 70 cells of 2 interleaved heads of 80 (a head dim with a tail past 64), attended from
        // cells 3.. (a window) to the last; one-token and several-token orders.
        let (n, d, heads, first) = (70, 80, 2, 3);
        let keys: Vec<f32> = (0..n * heads * d).map(|i| ((i * 29) % 97) as f32 / 30.0 - 1.5).collect();
        let values: Vec<f32> = (0..n * heads * d).map(|i| ((i * 13) % 83) as f32 / 20.0 - 2.0).collect();
        let q: Vec<f32> = (0..d).map(|i| i as f32 / 40.0 - 1.0).collect();
        let (k1, v1) = (&keys[first * heads * d + d..], &values[first * heads * d + d..]);
        let cells = n - first;
        let mut s: Vec<f64> = (0..cells)
            .map(|p| (0..d).map(|j| q[j] as f64 * k1[p * heads * d + j] as f64).sum::<f64>() * 0.125)
            .collect();
        let m = s.iter().cloned().fold(f64::MIN, f64::max);
        s.iter_mut().for_each(|v| *v = (*v - m).exp());
        let z: f64 = s.iter().sum();
        for one_token in [false, true] {
            let (mut scores, mut lanes, mut out) = (vec![0f32; cells], vec![0f32; 64 * d], vec![0f32; d]);
            let (k, v) = (&k1[..(cells - 1) * heads * d + d], &v1[..(cells - 1) * heads * d + d]);
            attend_ggml(&q, k, heads * d, v, heads * d, first, 0.125, one_token, &mut scores, &mut lanes, &mut out);
            let mut portable = vec![0f32; d];
            attend_ggml_impl(
                &q,
                k,
                heads * d,
                v,
                heads * d,
                first,
                0.125,
                one_token,
                &mut scores,
                &mut lanes,
                &mut portable,
            );
            assert_eq!(out, portable, "one_token {one_token}: the SIMD build is the portable one bit for bit");
            for j in 0..d {
                let want: f64 = (0..cells).map(|p| s[p] / z * v1[p * heads * d + j] as f64).sum();
                assert!((out[j] as f64 - want).abs() < 1e-5, "one_token {one_token}, dim {j}: {} vs {want}", out[j]);
            }
        }
    }

    #[test]
    fn ggml_expf_is_exp_down_into_the_subnormals() {
        // Every x·log2e from −192 (the last n ggml scales, where j·2ⁿ is subnormal or 0) to 88.
        let mut x = -133.0f32;
        while x < 88.0 {
            let (got, want) = (ggml_expf(x) as f64, (x as f64).exp());
            let ulp = (f32::MIN_POSITIVE as f64 * f32::EPSILON as f64).max(want * f32::EPSILON as f64);
            assert!((got - want).abs() <= 2.0 * ulp, "e^{x}: {got:e} vs {want:e}");
            x += 0.037;
        }
        assert_eq!(ggml_expf(-200.0), 0.0);
        assert_eq!(ggml_expf(200.0), f32::INFINITY);
    }

    #[test]
    fn reduce16_and_the_ggml_dot_add_in_ggml_order() {
        // 1 and fifteen quarter-ulps: in order each quarter-ulp rounds away (1); GCC's
        // `_mm512_reduce_add_ps` tree pairs lane 0 with 8 (1), lanes 1..8 with 9..16 (ε/2 each),
        // then h4[0] = 1 + ε/2 (a tie, to even: 1), h4[1..4] = ε; then (1 + ε) + 2ε = 1 + 3ε.
        let eps = f32::EPSILON;
        let mut v = [eps / 4.0; 16];
        v[0] = 1.0;
        assert_eq!(v.iter().sum::<f32>(), 1.0);
        assert_eq!(reduce16(&v), 1.0 + 3.0 * eps);
        let x: Vec<f32> = (0..100).map(|i| (i as f32 * 0.37).sin()).collect();
        let y: Vec<f32> = (0..100).map(|i| (i as f32 * 0.11).cos()).collect();
        let want: f64 = x.iter().zip(&y).map(|(&a, &b)| a as f64 * b as f64).sum();
        assert!((dot_ggml_impl(&x, &y) as f64 - want).abs() < 1e-5);
    }

    #[test]
    fn attend_equals_a_plain_softmax_attention() {
        // 40 positions of 3 interleaved heads of 16; attend to head 1, with and without a soft-cap.
        let (n, d, heads) = (40, 16, 3);
        let keys: Vec<f32> = (0..n * heads * d).map(|i| ((i * 29) % 97) as f32 / 30.0 - 1.5).collect();
        let values: Vec<f32> = (0..n * heads * d).map(|i| ((i * 13) % 83) as f32 / 20.0 - 2.0).collect();
        let q: Vec<f32> = (0..d).map(|i| i as f32 / 8.0 - 1.0).collect();
        for cap in [0.0f32, 5.0] {
            let (mut scores, mut out) = (vec![0f32; n], vec![0f32; d]);
            let (k1, v1) = (&keys[d..], &values[d..]);
            attend(
                &q,
                &k1[..(n - 1) * heads * d + d],
                heads * d,
                &v1[..(n - 1) * heads * d + d],
                heads * d,
                0.25,
                cap,
                &mut scores,
                &mut out,
            );
            let mut s: Vec<f64> = (0..n)
                .map(|p| {
                    let dot: f64 = (0..d).map(|j| q[j] as f64 * k1[p * heads * d + j] as f64).sum::<f64>() * 0.25;
                    if cap > 0.0 {
                        cap as f64 * (dot / cap as f64).tanh()
                    } else {
                        dot
                    }
                })
                .collect();
            let m = s.iter().cloned().fold(f64::MIN, f64::max);
            s.iter_mut().for_each(|v| *v = (*v - m).exp());
            let z: f64 = s.iter().sum();
            for j in 0..d {
                let want: f64 = (0..n).map(|p| s[p] / z * v1[p * heads * d + j] as f64).sum();
                assert!((out[j] as f64 - want).abs() < 1e-5, "cap {cap}, dim {j}: {} vs {want}", out[j]);
            }
        }
    }
}
