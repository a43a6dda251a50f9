//! f32 vector helpers of the CPU fast path (dots, axpy, RMSNorm, exp-based activations). Each is
//! plain Rust written so LLVM vectorizes it (independent accumulators, no branches), compiled three
//! times: for AVX-512, for AVX2 + FMA, and for the baseline; the host's best is chosen at run time
//! from [`Isa::best`]. The exp is a Cephes-style polynomial (relative error about 2e-7), not libm:
//! it is what lets GELU and softmax vectorize. SiLU and rope's rotation compute as ggml-cpu does on
//! x86-64 (its `ggml_v_expf`, GCC's fma contraction), bit for bit, because the fast path's 8-bit
//! activations turn any last-bit difference from llama.cpp into a rounding the other way.

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
    if n.abs() > 192.0 {
        return if n <= 0.0 { 0.0 } else { f32::INFINITY };
    }
    // j·2ⁿ with one rounding: 2ⁿ split where it leaves the normal exponents.
    let pow2 = |e: i32| f32::from_bits(((e + 127) as u32) << 23);
    let n = n as i32;
    if n > 127 {
        j * pow2(n - 64) * pow2(64)
    } else if n < -126 {
        j * pow2(n + 64) * pow2(-64)
    } else {
        j * pow2(n)
    }
}

#[inline(always)]
fn silu_mul_impl(out: &mut [f32], gate: &[f32], up: &[f32]) {
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
        silu_mul(&mut out, &a, &b);
        for i in 0..1000 {
            let want = a[i] / (1.0 + (-a[i]).exp()) * b[i];
            assert!((out[i] - want).abs() <= 1e-6 * (1.0 + want.abs()), "silu {i}");
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
