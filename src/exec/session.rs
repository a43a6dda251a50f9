//! A CPU session: a KV cache of fixed capacity and the walk over the graph's nodes.
//!
//! At capacity, `forward` refuses with `ContextFull` (no silent shifting): the caller decides
//! whether to start over or open a larger session.

use super::cpu_fast::{self, Activations, CpuPrecision, FastState};
use super::{ExecError, Model};
use crate::graph::{Buf, BufferPlan, Step};
use crate::reference;

const N_BUFS: usize = Buf::Logits as usize + 1;

/// Bytes of an f32 KV cache of `capacity` positions; `None` where that overflows 64 bits.
pub(crate) fn kv_cache_bytes(plan: &BufferPlan, capacity: usize) -> Option<u64> {
    let per_position = (plan.kv_width as u64).checked_add(plan.v_width as u64)?.checked_mul(4)?;
    per_position.checked_mul(plan.n_layer as u64)?.checked_mul(capacity as u64)
}

pub(crate) fn gib(bytes: u64) -> String {
    format!("{:.2} GiB ({bytes} bytes)", bytes as f64 / (1u64 << 30) as f64)
}

/// Host memory the kernel says can be allocated without swapping (`MemAvailable`), if it says.
fn host_available_bytes() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// The KV cache's size, refused before anything is allocated when it overflows or exceeds the
/// host's available memory.
fn check_host_memory(plan: &BufferPlan, capacity: usize) -> Result<u64, ExecError> {
    let need = kv_cache_bytes(plan, capacity).ok_or_else(|| ExecError::OutOfMemory {
        what: "KV cache",
        capacity,
        need: "more than 2^64 bytes".into(),
        limit: "no machine has that".into(),
    })?;
    if let Some(available) = host_available_bytes() {
        if need > available {
            return Err(ExecError::OutOfMemory {
                what: "KV cache",
                capacity,
                need: gib(need),
                limit: format!("the host has {} available", gib(available)),
            });
        }
    }
    Ok(need)
}

pub struct Session<'m> {
    model: &'m Model,
    capacity: usize,
    pos: usize,
    /// Per layer: [capacity][n_head_kv · head_dim] keys and [capacity][n_head_kv · head_dim_v] values.
    k_cache: Vec<Vec<f32>>,
    v_cache: Vec<Vec<f32>>,
    bufs: [Vec<f32>; N_BUFS],
    /// The fast path's state, when the session runs with `CpuPrecision::Fast`.
    fast: Option<Box<FastState>>,
}

impl<'m> Session<'m> {
    /// A session holding up to `capacity` positions (at most the trained context), computing
    /// exactly (f32 activations, the reference ops).
    pub fn new(model: &'m Model, capacity: usize) -> Result<Session<'m>, ExecError> {
        Session::with_precision(model, capacity, CpuPrecision::Exact)
    }

    /// A session computing with `precision`.
    pub fn with_precision(
        model: &'m Model,
        capacity: usize,
        precision: CpuPrecision,
    ) -> Result<Session<'m>, ExecError> {
        let max = model.config.n_ctx_train as usize;
        if capacity > max {
            return Err(ExecError::CapacityTooLarge { capacity, max });
        }
        let plan = &model.decode.buffers;
        let need = check_host_memory(plan, capacity)?;
        let zeros = |width: usize| -> Result<Vec<f32>, ExecError> {
            let n = capacity * width; // bounded: need did not overflow
            let mut v = Vec::new();
            v.try_reserve_exact(n).map_err(|_| ExecError::OutOfMemory {
                what: "KV cache",
                capacity,
                need: gib(need),
                limit: "the allocation failed".into(),
            })?;
            v.resize(n, 0.0);
            Ok(v)
        };
        Ok(Session {
            model,
            capacity,
            pos: 0,
            k_cache: (0..plan.n_layer).map(|_| zeros(plan.kv_width)).collect::<Result<_, _>>()?,
            v_cache: (0..plan.n_layer).map(|_| zeros(plan.v_width)).collect::<Result<_, _>>()?,
            bufs: Default::default(),
            fast: (precision == CpuPrecision::Fast).then(|| Box::new(FastState::new(model))),
        })
    }

    /// Positions used so far.
    pub fn pos(&self) -> usize {
        self.pos
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn precision(&self) -> CpuPrecision {
        if self.fast.is_some() {
            CpuPrecision::Fast
        } else {
            CpuPrecision::Exact
        }
    }

    /// Whose int8 arithmetic the fast path reproduces (None in exact mode).
    pub fn activations(&self) -> Option<Activations> {
        self.fast.as_ref().map(|f| f.activations())
    }

    /// Makes the fast path reproduce `activations`' int8 arithmetic from the next pass on
    /// (llama.cpp's CPU backend by default; [`Activations::Gpu`] to hold the GPU's int8 path to
    /// the CPU). Refused in exact mode, which quantizes nothing.
    pub fn set_activations(&mut self, activations: Activations) -> Result<(), ExecError> {
        match self.fast.as_mut() {
            Some(fast) => {
                fast.set_activations(activations);
                Ok(())
            }
            None => Err(ExecError::Unsupported(format!(
                "{} activations: an exact session quantizes no activations (CpuPrecision::Fast does)",
                activations.name()
            ))),
        }
    }

    /// The instruction set the fast path's projections run on (None in exact mode).
    pub fn isa(&self) -> Option<crate::quant::Isa> {
        self.fast.as_ref().map(|f| f.isa())
    }

    /// Bytes the fast path holds as a huge-page copy of the projection weights (0 if none).
    pub fn copied_weight_bytes(&self) -> usize {
        self.fast.as_ref().map_or(0, |f| f.copied_weight_bytes())
    }

    /// Forgets every position (the cache is overwritten by the next pass).
    pub fn reset(&mut self) {
        self.pos = 0;
    }

    /// Runs `tokens` (one: decode; several: prefill) and returns the last position's logits.
    pub fn forward(&mut self, tokens: &[u32]) -> Result<&[f32], ExecError> {
        let cfg = &self.model.config;
        super::check_pass(cfg, self.pos, self.capacity, tokens)?;
        let n = tokens.len();
        let graph = self.model.graph(n);
        for (i, (buf, _)) in graph.buffers.sizes.iter().enumerate() {
            debug_assert_eq!(*buf as usize, i);
            self.bufs[i].resize(graph.buffers.len(*buf, n), 0.0);
        }
        let pos0 = self.pos;
        if let Some(fast) = self.fast.as_mut() {
            let pass = cpu_fast::Pass {
                model: self.model,
                k_cache: &mut self.k_cache,
                v_cache: &mut self.v_cache,
                bufs: &mut self.bufs,
                pos0,
                capacity: self.capacity,
            };
            cpu_fast::forward(fast, pass, tokens)?;
            self.pos += n;
            return Ok(&self.bufs[Buf::Logits as usize]);
        }
        let positions: Vec<u32> = (pos0 as u32..(pos0 + n) as u32).collect();
        let file = &self.model.file;
        for node in &graph.nodes {
            match node.step {
                Step::Embed { out, scale } => {
                    let t = file.require_tensor(&node.weights[0])?;
                    reference::embed(
                        t.ty,
                        file.tensor_data(t),
                        cfg.n_embd as usize,
                        tokens,
                        scale,
                        &mut self.bufs[out as usize],
                    )?;
                }
                Step::Norm { x, out, width, eps } => {
                    let w = self.model.vector(&node.weights[0]);
                    if x == out {
                        let src = std::mem::take(&mut self.bufs[x as usize]);
                        let mut dst = vec![0.0; src.len()];
                        reference::rms_norm(&src, w, width as usize, eps, &mut dst);
                        self.bufs[out as usize] = dst;
                    } else {
                        let [src, dst] =
                            self.bufs.get_disjoint_mut([x as usize, out as usize]).expect("distinct buffers");
                        reference::rms_norm(src, w, width as usize, eps, dst);
                    }
                }
                Step::Linear { x, out, n_out, last_only, .. } => {
                    let t = file.require_tensor(&node.weights[0])?;
                    let k = t.row_len() as usize;
                    let [src, dst] = self.bufs.get_disjoint_mut([x as usize, out as usize]).expect("distinct buffers");
                    let src = if last_only { &src[(n - 1) * k..n * k] } else { &src[..] };
                    let w = node.step.weight_bytes(file.tensor_data(t));
                    reference::linear(t.ty, w, k, n_out as usize, src, dst)?;
                }
                Step::BiasAdd { x, width } => {
                    reference::bias_add(
                        &mut self.bufs[x as usize],
                        self.model.vector(&node.weights[0]),
                        width as usize,
                    );
                }
                Step::Rope { x, heads, base, freq_scale, freq_factors, ext, .. } => {
                    let neox = cfg.rope_style == crate::model::RopeStyle::Neox;
                    let (hd, rd) = (cfg.head_dim as usize, cfg.rope_dims as usize);
                    let which = crate::graph::rope_factors_weight(&node.step, self.capacity);
                    let freq_factors = freq_factors.then(|| self.model.vector(&node.weights[which]));
                    let p = reference::RopeParams { base, freq_scale, freq_factors, ext };
                    reference::rope(&mut self.bufs[x as usize], &positions, heads as usize, hd, rd, neox, &p);
                }
                Step::KvAppend { layer } => {
                    let (kw, vw) = (graph.buffers.kv_width, graph.buffers.v_width);
                    let l = layer as usize;
                    self.k_cache[l][pos0 * kw..(pos0 + n) * kw].copy_from_slice(&self.bufs[Buf::K as usize]);
                    self.v_cache[l][pos0 * vw..(pos0 + n) * vw].copy_from_slice(&self.bufs[Buf::V as usize]);
                }
                Step::Attention { layer, scale, softcap, window } => {
                    let shape = reference::AttnShape {
                        n_head: cfg.n_head as usize,
                        n_head_kv: cfg.n_head_kv as usize,
                        head_dim: cfg.head_dim as usize,
                        head_dim_v: cfg.head_dim_v as usize,
                        scale,
                        softcap,
                        window,
                    };
                    let l = layer as usize;
                    let [q, o] =
                        self.bufs.get_disjoint_mut([Buf::Q as usize, Buf::AttnOut as usize]).expect("distinct");
                    reference::attention(q, &self.k_cache[l], &self.v_cache[l], pos0, &shape, o);
                }
                Step::Add { a, b, out } => {
                    // Residual adds accumulate into their first operand (the graph builds no other).
                    assert_eq!(a, out, "{}: an add must write its first operand", node.name);
                    let [acc, add] = self.bufs.get_disjoint_mut([a as usize, b as usize]).expect("distinct");
                    reference::add_assign(acc, add);
                }
                Step::Glu { gate, up, out, kind } => {
                    let [g, u, o] =
                        self.bufs.get_disjoint_mut([gate as usize, up as usize, out as usize]).expect("distinct");
                    reference::glu(g, u, kind, o);
                }
                Step::Softcap { x, cap } => reference::softcap(&mut self.bufs[x as usize], cap),
                // Sampling happens on the host for the CPU backend.
                Step::Argmax => {}
            }
        }
        self.pos += n;
        Ok(&self.bufs[Buf::Logits as usize])
    }
}

impl super::Forward for Session<'_> {
    fn forward(&mut self, tokens: &[u32]) -> Result<&[f32], ExecError> {
        Session::forward(self, tokens)
    }
    fn pos(&self) -> usize {
        self.pos
    }
    fn reset(&mut self) {
        Session::reset(self)
    }
}
