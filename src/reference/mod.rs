//! The CPU reference ops: every op in plain Rust over f32 activations, dot products straight from
//! the quantized blocks (no dequantized copy of the model), threads over rows where that pays. They
//! are the oracle every GPU kernel is held to, so each op follows llama.cpp's CPU arithmetic where
//! the order matters (f64 sums in norms and softmax, the iterated rope angle).
//!
//! They sit below `device` and `exec`: the plain CPU session (exec/session.rs) runs them on the
//! graph, the CPU device (device/cpu.rs) runs them on launch descriptions. They know block formats
//! (`quant`) and the op kinds of `kernels`, nothing above.

use rayon::prelude::*;

use crate::dtype::GgmlType;
use crate::kernels::{GluKind, RopeExt};
use crate::quant::{self, dot_f32, QuantError};

/// `out[t] = scale · row ids[t]` of the embedding matrix (rows of `width` elements of `ty`).
pub fn embed(
    ty: GgmlType,
    table: &[u8],
    width: usize,
    ids: &[u32],
    scale: f32,
    out: &mut [f32],
) -> Result<(), QuantError> {
    let row_bytes = ty.row_bytes(width as u64).expect("embedding rows are whole blocks") as usize;
    for (t, &id) in ids.iter().enumerate() {
        let row = &table[id as usize * row_bytes..(id as usize + 1) * row_bytes];
        let dst = &mut out[t * width..(t + 1) * width];
        quant::dequantize(ty, row, dst)?;
        if scale != 1.0 {
            dst.iter_mut().for_each(|v| *v *= scale);
        }
    }
    Ok(())
}

/// RMSNorm of each row of `width`, times the weight (rows are tokens, or heads for Q/K norms).
pub fn rms_norm(x: &[f32], weight: &[f32], width: usize, eps: f32, out: &mut [f32]) {
    for (xr, yr) in x.chunks_exact(width).zip(out.chunks_exact_mut(width)) {
        let sum: f64 = xr.iter().map(|&v| (v as f64) * (v as f64)).sum();
        let mean = (sum / width as f64) as f32;
        let scale = 1.0 / (mean + eps).sqrt();
        for ((y, &v), &w) in yr.iter_mut().zip(xr).zip(weight) {
            *y = v * scale * w;
        }
    }
}

/// `out[t, r] = Σ_k W[r, k] · x[t, k]` for `n_out` weight rows of `k` elements of `ty`.
pub fn linear(ty: GgmlType, w: &[u8], k: usize, n_out: usize, x: &[f32], out: &mut [f32]) -> Result<(), QuantError> {
    let row_bytes = ty.row_bytes(k as u64).expect("weight rows are whole blocks") as usize;
    let n_tok = x.len() / k;
    if n_tok == 1 {
        // Decode: straight from the blocks.
        // Chunks of rows per task keep rayon's overhead small next to the work.
        return out[..n_out].par_chunks_mut(32).enumerate().try_for_each(|(c, chunk)| {
            for (i, o) in chunk.iter_mut().enumerate() {
                let r = c * 32 + i;
                *o = quant::dot(ty, &w[r * row_bytes..(r + 1) * row_bytes], x)?;
            }
            Ok(())
        });
    }
    // Prefill: dequantize each weight row once, use it for every token.
    let mut transposed = vec![0f32; n_out * n_tok];
    transposed.par_chunks_mut(n_tok).enumerate().try_for_each_init(
        || vec![0f32; k],
        |row, (r, dst)| {
            quant::dequantize(ty, &w[r * row_bytes..(r + 1) * row_bytes], row)?;
            for (t, d) in dst.iter_mut().enumerate() {
                *d = dot_f32(row, &x[t * k..(t + 1) * k]);
            }
            Ok::<(), QuantError>(())
        },
    )?;
    for t in 0..n_tok {
        for r in 0..n_out {
            out[t * n_out + r] = transposed[r * n_tok + t];
        }
    }
    Ok(())
}

/// `acc[i] += b[i]` (the residual adds).
pub fn add_assign(acc: &mut [f32], b: &[f32]) {
    acc.iter_mut().zip(b).for_each(|(x, y)| *x += y);
}

/// `x[t, i] += bias[i]` over rows of `width`.
pub fn bias_add(x: &mut [f32], bias: &[f32], width: usize) {
    for row in x.chunks_exact_mut(width) {
        row.iter_mut().zip(bias).for_each(|(v, b)| *v += b);
    }
}

/// What turns positions into rope angles: `base`, the linear `freq_scale`, Llama 3's or
/// LongRoPE's per-pair `freq_factors` (rope_dims/2 divisors) and YaRN's / LongRoPE's `ext`.
#[derive(Clone, Copy, Debug)]
pub struct RopeParams<'a> {
    pub base: f32,
    pub freq_scale: f32,
    pub freq_factors: Option<&'a [f32]>,
    pub ext: RopeExt,
}

/// Rope over each token's `heads` heads of `head_dim`, rotating the first `rope_dims`.
/// `neox` pairs (i, i + rope_dims/2); otherwise (2i, 2i+1). The angle is iterated in f32 as
/// llama.cpp's `ggml_rope_cache_init` does; `freq_factors` divide pair i's angle, then
/// [`RopeExt::cos_sin`] scales it (and its cos/sin), as there.
pub fn rope(
    x: &mut [f32],
    positions: &[u32],
    heads: usize,
    head_dim: usize,
    rope_dims: usize,
    neox: bool,
    p: &RopeParams,
) {
    let theta_scale = p.base.powf(-2.0 / rope_dims as f32);
    let mut cos_sin = vec![(0f32, 0f32); rope_dims / 2];
    for (t, &pos) in positions.iter().enumerate() {
        let mut theta = pos as f32;
        for (i, cs) in cos_sin.iter_mut().enumerate() {
            let th = p.freq_factors.map_or(theta, |ff| theta / ff[i]);
            *cs = p.ext.cos_sin(th, p.freq_scale, i);
            theta *= theta_scale;
        }
        for h in 0..heads {
            let v = &mut x[(t * heads + h) * head_dim..(t * heads + h + 1) * head_dim];
            for (i, &(c, s)) in cos_sin.iter().enumerate() {
                let (a, b) = if neox { (i, i + rope_dims / 2) } else { (2 * i, 2 * i + 1) };
                let (x0, x1) = (v[a], v[b]);
                v[a] = x0 * c - x1 * s;
                v[b] = x0 * s + x1 * c;
            }
        }
    }
}

/// Shapes and values of one attention call.
pub struct AttnShape {
    pub n_head: usize,
    pub n_head_kv: usize,
    pub head_dim: usize,
    pub head_dim_v: usize,
    pub scale: f32,
    pub softcap: Option<f32>,
    pub window: Option<u32>,
}

/// Causal attention: query t (at position pos0 + t) over cached positions [lo, pos0 + t].
/// k_cache / v_cache rows are [n_head_kv · head_dim] per position.
pub fn attention(q: &[f32], k_cache: &[f32], v_cache: &[f32], pos0: usize, s: &AttnShape, out: &mut [f32]) {
    let n_tok = q.len() / (s.n_head * s.head_dim);
    let gqa = s.n_head / s.n_head_kv;
    let (kw, vw) = (s.n_head_kv * s.head_dim, s.n_head_kv * s.head_dim_v);
    out.par_chunks_mut(s.head_dim_v).enumerate().take(n_tok * s.n_head).for_each(|(i, o)| {
        let (t, h) = (i / s.n_head, i % s.n_head);
        let hk = h / gqa;
        let pos = pos0 + t;
        let lo = s.window.map_or(0, |w| (pos + 1).saturating_sub(w as usize));
        let qv = &q[(t * s.n_head + h) * s.head_dim..(t * s.n_head + h + 1) * s.head_dim];
        let mut scores: Vec<f32> = (lo..=pos)
            .map(|p| {
                let kr = &k_cache[p * kw + hk * s.head_dim..p * kw + (hk + 1) * s.head_dim];
                let mut sc = dot_f32(qv, kr) * s.scale;
                if let Some(cap) = s.softcap {
                    sc = cap * (sc / cap).tanh();
                }
                sc
            })
            .collect();
        let max = scores.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
        let mut sum = 0f64;
        for sc in scores.iter_mut() {
            *sc = (*sc - max).exp();
            sum += *sc as f64;
        }
        let inv = (1.0 / sum) as f32;
        o.fill(0.0);
        for (j, p) in (lo..=pos).enumerate() {
            let wgt = scores[j] * inv;
            let vr = &v_cache[p * vw + hk * s.head_dim_v..p * vw + (hk + 1) * s.head_dim_v];
            o.iter_mut().zip(vr).for_each(|(a, &b)| *a += wgt * b);
        }
    });
}

/// out = act(gate) · up.
pub fn glu(gate: &[f32], up: &[f32], kind: GluKind, out: &mut [f32]) {
    for ((o, &g), &u) in out.iter_mut().zip(gate).zip(up) {
        let a = match kind {
            GluKind::SwiGlu => g / (1.0 + (-g).exp()),
            GluKind::GeGlu => {
                const C: f32 = 0.797_884_6; // sqrt(2/pi)
                0.5 * g * (1.0 + (C * (g + 0.044715 * g * g * g)).tanh())
            }
        };
        *o = a * u;
    }
}

/// x = cap · tanh(x / cap).
pub fn softcap(x: &mut [f32], cap: f32) {
    x.iter_mut().for_each(|v| *v = cap * (*v / cap).tanh());
}

/// The index of the largest value (the lowest on ties).
pub fn argmax(x: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in x.iter().enumerate() {
        if v > x[best] {
            best = i;
        }
    }
    best
}
