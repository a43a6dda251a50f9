//! The CPU as a device: buffers in host memory, and each launch run by the CPU reference op
//! (`crate::reference`), reading the launch description's fields by name. It lets the GPU executor
//! — its plan, buffer views, prefill passes and decode replay — run and be tested on any machine.
//! Every address is looked up in the allocation table: a bad one is an error, never a stray access.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::sync::{Mutex, MutexGuard};

use super::{Backend, DeviceError, RawView, Shape};
use crate::jit::Target;
use crate::kernels::launch::{self, Launch};
use crate::{quant, reference};

/// Allocations by start address (u64 words keep every buffer 8-byte aligned).
type Memory = BTreeMap<u64, Box<[u64]>>;

#[derive(Default)]
pub(super) struct CpuBackend {
    memory: Mutex<Memory>,
}

fn host(msg: impl Into<String>) -> DeviceError {
    DeviceError::Host(msg.into())
}

fn words_as_bytes(words: &[u64]) -> &[u8] {
    // SAFETY: viewing initialised u64s as bytes (alignment 1, same memory, 8 × the length).
    unsafe { std::slice::from_raw_parts(words.as_ptr().cast::<u8>(), words.len() * 8) }
}

fn words_as_bytes_mut(words: &mut [u64]) -> &mut [u8] {
    // SAFETY: as above; every byte pattern is a valid u64, so writes through the view are sound.
    unsafe { std::slice::from_raw_parts_mut(words.as_mut_ptr().cast::<u8>(), words.len() * 8) }
}

/// The allocation holding `addr`, and the offset of `addr` in it.
fn locate(mem: &Memory, addr: u64) -> Result<(u64, usize), DeviceError> {
    let (&start, words) = mem.range(..=addr).next_back().ok_or_else(|| host(format!("{addr:#x} is not allocated")))?;
    let off = (addr - start) as usize;
    if off >= words.len() * 8 {
        return Err(host(format!("{addr:#x} is not allocated")));
    }
    Ok((start, off))
}

/// The `len` bytes at `addr`.
fn bytes_at(mem: &Memory, addr: u64, len: usize) -> Result<&[u8], DeviceError> {
    let (start, off) = locate(mem, addr)?;
    let all = words_as_bytes(&mem[&start]);
    off.checked_add(len)
        .and_then(|end| all.get(off..end))
        .ok_or_else(|| host(format!("{len} bytes at {addr:#x} run past their allocation")))
}

fn bytes_at_mut(mem: &mut Memory, addr: u64, len: usize) -> Result<&mut [u8], DeviceError> {
    let (start, off) = locate(mem, addr)?;
    let all = words_as_bytes_mut(mem.get_mut(&start).expect("located just above"));
    off.checked_add(len)
        .and_then(|end| all.get_mut(off..end))
        .ok_or_else(|| host(format!("{len} bytes at {addr:#x} run past their allocation")))
}

/// The first `n` elements of a view, as bytes.
fn view<'m>(mem: &'m Memory, v: &RawView, n: usize) -> Result<&'m [u8], DeviceError> {
    bytes_at(mem, v.addr(), n * v.elem.size())
}

fn f32s(mem: &Memory, v: &RawView, n: usize) -> Result<Vec<f32>, DeviceError> {
    Ok(view(mem, v, n)?.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes"))).collect())
}

fn i32s(mem: &Memory, v: &RawView, n: usize) -> Result<Vec<i32>, DeviceError> {
    Ok(view(mem, v, n)?.chunks_exact(4).map(|c| i32::from_le_bytes(c.try_into().expect("4 bytes"))).collect())
}

/// The first `n` values of a KV cache view (f16 widened exactly, or f32).
fn kv_f32s(mem: &Memory, v: &RawView, n: usize) -> Result<Vec<f32>, DeviceError> {
    match v.elem {
        launch::Elem::F16 => {
            Ok(view(mem, v, n)?.chunks_exact(2).map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32()).collect())
        }
        _ => f32s(mem, v, n),
    }
}

/// Writes `data` at element `at` of a KV cache view: f16 rounded to nearest even (as the GPU's
/// `cvt.rn.f16.f32`), or f32 as is.
fn put_kv(mem: &mut Memory, v: &RawView, at: usize, data: &[f32]) -> Result<(), DeviceError> {
    if v.elem != launch::Elem::F16 {
        return put_f32s(mem, v, at, data);
    }
    let dst = bytes_at_mut(mem, v.addr() + (at * 2) as u64, data.len() * 2)?;
    for (d, x) in dst.chunks_exact_mut(2).zip(data) {
        d.copy_from_slice(&half::f16::from_f32(*x).to_le_bytes());
    }
    Ok(())
}

/// Writes `data` at element `at` of a view.
fn put_f32s(mem: &mut Memory, v: &RawView, at: usize, data: &[f32]) -> Result<(), DeviceError> {
    let dst = bytes_at_mut(mem, v.addr() + (at * 4) as u64, data.len() * 4)?;
    for (d, x) in dst.chunks_exact_mut(4).zip(data) {
        d.copy_from_slice(&x.to_le_bytes());
    }
    Ok(())
}

/// Writes `x` (whole blocks of 32) as q8_1 blocks at a view, as `quantize_row_q8_1` makes them.
/// The q8_1 blocks of `x` into `v`, and their (d, d·Σq) pairs into `ds`, as the GPU's quantizers.
fn put_q8_1(mem: &mut Memory, v: &RawView, ds: &RawView, x: &[f32]) -> Result<(), DeviceError> {
    let mut blocks = vec![quant::BlockQ8_1 { d: [0; 2], s: [0; 2], qs: [0; 32] }; x.len() / quant::QK8_1];
    quant::quantize_row_q8_1(x, &mut blocks);
    let dst = bytes_at_mut(mem, v.addr(), blocks.len() * launch::Q8_1_BLOCK_BYTES)?;
    for (d, b) in dst.chunks_exact_mut(launch::Q8_1_BLOCK_BYTES).zip(&blocks) {
        d[..2].copy_from_slice(&b.d);
        d[2..4].copy_from_slice(&b.s);
        d[4..].iter_mut().zip(&b.qs).for_each(|(o, &q)| *o = q as u8);
    }
    let pairs: Vec<f32> = blocks.iter().flat_map(|b| b.ds()).collect();
    put_f32s(mem, ds, 0, &pairs)
}

/// The shape and score options of an attention launch (decode: one query).
struct AttnRun {
    head_dim: u32,
    gqa: u32,
    n_head: usize,
    n_q: usize,
    pos0: usize,
    scale: f32,
    softcap: Option<f32>,
    window: Option<u32>,
}

/// Both attention kernels' reference: `[q, k_cache, v_cache, out]`, the caches as stored (f16 or
/// f32), queries at positions `pos0..pos0 + n_q`.
fn attention(mem: &mut Memory, [q, k, v, out]: [&RawView; 4], a: &AttnRun) -> Result<(), DeviceError> {
    let (hd, n_kv) = (a.head_dim as usize, a.n_head / a.gqa as usize);
    let q_all = f32s(mem, q, a.n_q * a.n_head * hd)?;
    let cache = (a.pos0 + a.n_q) * n_kv * hd;
    let (kc, vc) = (kv_f32s(mem, k, cache)?, kv_f32s(mem, v, cache)?);
    let shape = reference::AttnShape {
        n_head: a.n_head,
        n_head_kv: n_kv,
        head_dim: hd,
        head_dim_v: hd,
        scale: a.scale,
        softcap: a.softcap,
        window: a.window,
    };
    let mut result = vec![0f32; q_all.len()];
    reference::attention(&q_all, &kc, &vc, a.pos0, &shape, &mut result);
    put_f32s(mem, out, 0, &result)
}

/// Positions or token ids, which must be non-negative.
/// The cache row of each of `n` tokens: its position from the device, clamped to
/// `[0, max_pos0 + t]` as the kernels clamp it (the rows the launch was checked against).
fn cache_rows(mem: &Memory, positions: &RawView, n: usize, max_pos0: usize) -> Result<Vec<usize>, DeviceError> {
    Ok(i32s(mem, positions, n)?.into_iter().enumerate().map(|(t, p)| (p.max(0) as usize).min(max_pos0 + t)).collect())
}

/// Writes `n` rows of `row` values each (`data`) at the given cache rows.
fn put_kv_rows(mem: &mut Memory, cache: &RawView, rows: &[usize], row: usize, data: &[f32]) -> Result<(), DeviceError> {
    for (&r, values) in rows.iter().zip(data.chunks_exact(row)) {
        put_kv(mem, cache, r * row, values)?;
    }
    Ok(())
}

fn indices(mem: &Memory, v: &RawView, n: usize, what: &str) -> Result<Vec<u32>, DeviceError> {
    i32s(mem, v, n)?.into_iter().map(|i| u32::try_from(i).map_err(|_| host(format!("negative {what} {i}")))).collect()
}

/// Bytes of a row of `n` elements of `ty` (the launch check already held rows to whole blocks).
fn row_bytes(ty: crate::dtype::GgmlType, n: usize) -> Result<usize, DeviceError> {
    ty.row_bytes(n as u64).map(|b| b as usize).ok_or_else(|| host(format!("{n} elements are not whole {ty} blocks")))
}

/// q8_1 blocks from their 36-byte form. A quant of −128 (which no quantizer writes) is refused
/// by name, not passed to the reference, which assumes |q| ≤ 127.
fn q8_1_blocks(bytes: &[u8]) -> Result<Vec<quant::BlockQ8_1>, String> {
    bytes
        .chunks_exact(launch::Q8_1_BLOCK_BYTES)
        .enumerate()
        .map(|(i, c)| {
            let qs: [i8; 32] = std::array::from_fn(|j| c[4 + j] as i8);
            if qs.contains(&i8::MIN) {
                return Err(format!("q8_1 block {i} holds the quant -128, which no quantizer makes"));
            }
            Ok(quant::BlockQ8_1 { d: [c[0], c[1]], s: [c[2], c[3]], qs })
        })
        .collect()
}

impl CpuBackend {
    fn lock(&self) -> MutexGuard<'_, Memory> {
        self.memory.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs the reference op of `launch` (which passed its check) on host memory.
    fn run(&self, launch: &Launch<RawView>) -> Result<(), DeviceError> {
        let spec = launch.spec();
        let q = |e: crate::quant::QuantError| host(format!("{spec}: {e}"));
        let mem = &mut *self.lock();
        match launch {
            Launch::Embedding(l) => {
                let n_embd = l.n_embd as usize;
                let row_bytes = row_bytes(l.wtype, n_embd)?;
                let ids = indices(mem, &l.ids, l.n_tokens, "token id")?;
                if let Some(&bad) = ids.iter().find(|&&i| i as usize >= l.n_rows) {
                    return Err(host(format!("{spec}: token {bad} beyond {} rows", l.n_rows)));
                }
                let mut out = vec![0f32; l.n_tokens * n_embd];
                let table = view(mem, &l.table, l.n_rows * row_bytes)?;
                reference::embed(l.wtype, table, n_embd, &ids, l.scale, &mut out).map_err(q)?;
                put_f32s(mem, &l.out, 0, &out)
            }
            Launch::RmsNorm(l) => {
                let n = l.n as usize;
                let x = f32s(mem, &l.x, l.rows * n)?;
                let mut w = f32s(mem, &l.w, n)?;
                if l.add_one {
                    w.iter_mut().for_each(|v| *v += 1.0);
                }
                let mut y = vec![0f32; x.len()];
                reference::rms_norm(&x, &w, n, l.eps, &mut y);
                put_f32s(mem, &l.y, 0, &y)
            }
            Launch::Rope(l) => {
                let hd = l.head_dim as usize;
                let mut x = f32s(mem, &l.x, l.n_tokens * l.n_heads * hd)?;
                let pos = indices(mem, &l.positions, l.n_tokens, "position")?;
                let neox = l.kind == crate::kernels::RopeKind::Neox;
                let rd = l.rope_dims as usize;
                let ff = f32s(mem, &l.freq_factors, rd / 2)?;
                let p = reference::RopeParams {
                    base: l.base,
                    freq_scale: l.freq_scale,
                    freq_factors: Some(&ff),
                    ext: l.ext,
                };
                reference::rope(&mut x, &pos, l.n_heads, hd, rd, neox, &p);
                put_f32s(mem, &l.x, 0, &x)
            }
            Launch::MatVec(launch::MatVec { w, x, y, wtype, k, rows })
            | Launch::MatMul(launch::MatMul { w, x, y, wtype, k, rows, .. }) => {
                let tokens = match launch {
                    Launch::MatMul(l) => l.tokens,
                    _ => 1,
                };
                let k = *k as usize;
                let row_bytes = row_bytes(*wtype, k)?;
                let xs = f32s(mem, x, tokens * k)?;
                let mut out = vec![0f32; tokens * rows];
                reference::linear(*wtype, view(mem, w, rows * row_bytes)?, k, *rows, &xs, &mut out).map_err(q)?;
                put_f32s(mem, y, 0, &out)
            }
            // The weights rounded to f16 once from the reference's f32 value.
            Launch::DequantF16(l) => {
                let k = l.k as usize;
                let bytes = view(mem, &l.w, l.rows * row_bytes(l.wtype, k)?)?;
                let mut w = vec![0f32; l.rows * k];
                quant::dequantize(l.wtype, bytes, &mut w).map_err(q)?;
                put_kv(mem, &l.out, 0, &w)
            }
            Launch::ConvertF16(l) => {
                let k = l.k as usize;
                let mut x = f32s(mem, &l.x, l.rows * k)?;
                let mut inv = Vec::with_capacity(l.rows);
                for row in x.chunks_exact_mut(k) {
                    let p = launch::f16_row_exponent(row.iter().fold(0f32, |m, v| m.max(v.abs())));
                    let scale = 2f32.powi(p);
                    row.iter_mut().for_each(|v| *v *= scale);
                    inv.push(2f32.powi(-p));
                }
                put_kv(mem, &l.out, 0, &x)?;
                put_f32s(mem, &l.inv_scale, 0, &inv)
            }
            // f16 operands widened exactly; each sum in f32, in k order.
            Launch::GemmF16(l) => {
                let k = l.k as usize;
                let (w, x) = (kv_f32s(mem, &l.w, l.rows * k)?, kv_f32s(mem, &l.x, l.tokens * k)?);
                let scale = f32s(mem, &l.x_scale, l.tokens)?;
                let mut y = vec![0f32; l.tokens * l.rows];
                for (t, yt) in y.chunks_exact_mut(l.rows).enumerate() {
                    let xt = &x[t * k..(t + 1) * k];
                    for (r, v) in yt.iter_mut().enumerate() {
                        let sum = w[r * k..(r + 1) * k].iter().zip(xt).fold(0f32, |s, (a, b)| a.mul_add(*b, s));
                        *v = sum * scale[t];
                    }
                }
                put_f32s(mem, &l.y, 0, &y)
            }
            Launch::QuantizeQ8_1(l) => {
                let x = f32s(mem, &l.x, l.n)?;
                put_q8_1(mem, &l.out, &l.ds, &x)
            }
            Launch::MatVecQ8(l) => {
                let k = l.k as usize;
                let a =
                    q8_1_blocks(view(mem, &l.a, launch::q8_1_bytes(k))?).map_err(|e| host(format!("{spec}: {e}")))?;
                let a = quant::Q8Rows::from_blocks(&a, k);
                let w = view(mem, &l.w, l.rows * row_bytes(l.wtype, k)?)?;
                let mut y = vec![0f32; l.rows];
                quant::matvec_q8_1(l.wtype, w, k, &a, &mut y).map_err(q)?;
                put_f32s(mem, &l.y, 0, &y)
            }
            // Each segment as a lone int8 matvec, then its bias as add_bias adds it.
            Launch::MatVecQ8Multi(l) => {
                let k = l.k as usize;
                let a =
                    q8_1_blocks(view(mem, &l.a, launch::q8_1_bytes(k))?).map_err(|e| host(format!("{spec}: {e}")))?;
                let a = quant::Q8Rows::from_blocks(&a, k);
                let segments = [(&l.w0, &l.y0, &l.b0), (&l.w1, &l.y1, &l.b1), (&l.w2, &l.y2, &l.b2)];
                for ((w, y, b), (wtype, rows)) in segments.into_iter().zip(l.wtypes.iter().zip(l.rows)) {
                    let Some(wtype) = *wtype else { continue };
                    let w = view(mem, w, rows * row_bytes(wtype, k)?)?;
                    let mut out = vec![0f32; rows];
                    quant::matvec_q8_1(wtype, w, k, &a, &mut out).map_err(q)?;
                    if l.bias {
                        reference::bias_add(&mut out, &f32s(mem, b, rows)?, rows);
                    }
                    put_f32s(mem, y, 0, &out)?;
                }
                Ok(())
            }
            // The residual add, the norm and the quantizer as the three separate launches run them.
            Launch::RmsNormQ8_1(l) => {
                let n = l.n as usize;
                let mut x = f32s(mem, &l.x, l.rows * n)?;
                if l.residual {
                    reference::add_assign(&mut x, &f32s(mem, &l.d, l.rows * n)?);
                    put_f32s(mem, &l.x, 0, &x)?;
                }
                let mut w = f32s(mem, &l.w, n)?;
                if l.add_one {
                    w.iter_mut().for_each(|v| *v += 1.0);
                }
                let mut y = vec![0f32; x.len()];
                reference::rms_norm(&x, &w, n, l.eps, &mut y);
                put_f32s(mem, &l.y, 0, &y)?;
                put_q8_1(mem, &l.q, &l.ds, &y)
            }
            // Rope on Q and K as two rope launches, then the KV append of the rotated K and of V.
            Launch::RopeKv(l) => {
                let hd = l.head_dim as usize;
                let (nq, nk) = (l.n_tokens * l.n_head * hd, l.n_tokens * l.n_head_kv * hd);
                let (mut qs, mut ks, vs) = (f32s(mem, &l.q, nq)?, f32s(mem, &l.k, nk)?, f32s(mem, &l.v, nk)?);
                let pos = indices(mem, &l.positions, l.n_tokens, "position")?;
                let neox = l.kind == crate::kernels::RopeKind::Neox;
                let rd = l.rope_dims as usize;
                let ff = f32s(mem, &l.freq_factors, rd / 2)?;
                // The fused kernel has no YaRN / LongRoPE part (fusion leaves such ropes alone).
                let params = reference::RopeParams {
                    base: l.base,
                    freq_scale: l.freq_scale,
                    freq_factors: Some(&ff),
                    ext: crate::kernels::RopeExt::NONE,
                };
                reference::rope(&mut qs, &pos, l.n_head, hd, rd, neox, &params);
                reference::rope(&mut ks, &pos, l.n_head_kv, hd, rd, neox, &params);
                put_f32s(mem, &l.q, 0, &qs)?;
                put_f32s(mem, &l.k, 0, &ks)?;
                let row = l.n_head_kv * hd;
                let rows = cache_rows(mem, &l.positions, l.n_tokens, l.max_pos0)?;
                put_kv_rows(mem, &l.k_cache, &rows, row, &ks)?;
                put_kv_rows(mem, &l.v_cache, &rows, row, &vs)
            }
            Launch::GluQ8_1(l) => {
                let (g, u) = (f32s(mem, &l.gate, l.n)?, f32s(mem, &l.up, l.n)?);
                let mut out = vec![0f32; l.n];
                reference::glu(&g, &u, l.kind, &mut out);
                put_f32s(mem, &l.out, 0, &out)?;
                put_q8_1(mem, &l.q, &l.ds, &out)
            }
            Launch::MatMulQ8(l) => {
                let k = l.k as usize;
                let a = q8_1_blocks(view(mem, &l.a, launch::q8_1_bytes(l.tokens * k))?)
                    .map_err(|e| host(format!("{spec}: {e}")))?;
                let a = quant::Q8Rows::from_blocks(&a, k);
                let w = view(mem, &l.w, l.rows * row_bytes(l.wtype, k)?)?;
                let mut y = vec![0f32; l.tokens * l.rows];
                quant::matmul_q8_1(l.wtype, w, k, &a, &mut y).map_err(q)?;
                put_f32s(mem, &l.y, 0, &y)
            }
            // Flash attention computes the same attention as the general kernel (f16 cache).
            Launch::FlashAttn(l) => {
                let (head_dim, gqa, n_head, n_q, pos0) = (l.head_dim, l.gqa, l.n_head, l.n_q, l.pos0);
                let a =
                    AttnRun { head_dim, gqa, n_head, n_q, pos0, scale: l.scale, softcap: l.softcap, window: l.window };
                attention(mem, [&l.q, &l.k_cache, &l.v_cache, &l.out], &a)
            }
            Launch::Attention(l) => {
                let (head_dim, gqa, n_head, n_q, pos0) = (l.head_dim, l.gqa, l.n_head, l.n_q, l.pos0);
                let a =
                    AttnRun { head_dim, gqa, n_head, n_q, pos0, scale: l.scale, softcap: l.softcap, window: l.window };
                attention(mem, [&l.q, &l.k_cache, &l.v_cache, &l.out], &a)
            }
            // The split kernel computes the same attention (one query): the reference is whole.
            // It leaves `part` unused and the counters at 0, as the kernel leaves them.
            Launch::AttnDecode(l) => {
                let pos0 = cache_rows(mem, &l.positions, 1, l.max_pos)?[0];
                let (head_dim, gqa, n_head, n_q) = (l.head_dim, l.gqa, l.n_head, 1);
                let a =
                    AttnRun { head_dim, gqa, n_head, n_q, pos0, scale: l.scale, softcap: l.softcap, window: l.window };
                attention(mem, [&l.q, &l.k_cache, &l.v_cache, &l.out], &a)
            }
            Launch::Glu(l) => {
                let (g, u) = (f32s(mem, &l.gate, l.n)?, f32s(mem, &l.up, l.n)?);
                let mut out = vec![0f32; l.n];
                reference::glu(&g, &u, l.kind, &mut out);
                put_f32s(mem, &l.out, 0, &out)
            }
            Launch::Add(l) => {
                let mut acc = f32s(mem, &l.a, l.n)?;
                reference::add_assign(&mut acc, &f32s(mem, &l.b, l.n)?);
                put_f32s(mem, &l.out, 0, &acc)
            }
            Launch::AddBias(l) => {
                let mut x = f32s(mem, &l.x, l.n)?;
                reference::bias_add(&mut x, &f32s(mem, &l.bias, l.cols)?, l.cols);
                put_f32s(mem, &l.x, 0, &x)
            }
            Launch::Softcap(l) => {
                let mut x = f32s(mem, &l.x, l.n)?;
                reference::softcap(&mut x, l.cap);
                put_f32s(mem, &l.x, 0, &x)
            }
            Launch::KvAppend(l) => {
                let n = l.row * l.n_tokens;
                let (k, v) = (f32s(mem, &l.k, n)?, f32s(mem, &l.v, n)?);
                let rows = cache_rows(mem, &l.positions, l.n_tokens, l.max_pos0)?;
                put_kv_rows(mem, &l.k_cache, &rows, l.row, &k)?;
                put_kv_rows(mem, &l.v_cache, &rows, l.row, &v)
            }
            Launch::Argmax(l) => {
                let best = reference::argmax(&f32s(mem, &l.x, l.n)?) as i32;
                let dst = bytes_at_mut(mem, l.out.addr(), 4)?;
                dst.copy_from_slice(&best.to_le_bytes());
                Ok(())
            }
        }
    }
}

impl Backend for CpuBackend {
    fn kind(&self) -> &'static str {
        "cpu"
    }

    fn name(&self) -> &str {
        "host CPU (reference kernels)"
    }

    fn target(&self) -> Option<&Target> {
        None
    }

    fn alloc(&self, bytes: usize) -> Result<u64, DeviceError> {
        let words = vec![0u64; bytes.div_ceil(8).max(1)].into_boxed_slice();
        let addr = words.as_ptr() as u64;
        self.lock().insert(addr, words);
        Ok(addr)
    }

    unsafe fn free(&self, addr: u64) {
        self.lock().remove(&addr);
    }

    unsafe fn write(&self, dst: u64, src: &[u8]) -> Result<(), DeviceError> {
        bytes_at_mut(&mut self.lock(), dst, src.len())?.copy_from_slice(src);
        Ok(())
    }

    unsafe fn read(&self, src: u64, dst: &mut [u8]) -> Result<(), DeviceError> {
        dst.copy_from_slice(bytes_at(&self.lock(), src, dst.len())?);
        Ok(())
    }

    unsafe fn copy(&self, dst: u64, src: u64, bytes: usize) -> Result<(), DeviceError> {
        let mem = &mut *self.lock();
        let data = bytes_at(mem, src, bytes)?.to_vec();
        bytes_at_mut(mem, dst, bytes)?.copy_from_slice(&data);
        Ok(())
    }

    unsafe fn load(&self, _code: &[u8], entry: &CString, _shared_bytes: u32) -> Result<(usize, usize), DeviceError> {
        Err(host(format!("{entry:?}: the CPU device runs the reference ops, not code objects")))
    }

    unsafe fn unload(&self, _module: usize) {}

    unsafe fn launch(&self, _function: usize, launch: &Launch<RawView>, _shape: Shape) -> Result<(), DeviceError> {
        self.run(launch)
    }

    fn synchronize(&self) -> Result<(), DeviceError> {
        Ok(())
    }

    fn memory_used(&self) -> Result<u64, DeviceError> {
        Ok(self.lock().values().map(|b| b.len() as u64 * 8).sum())
    }
}
