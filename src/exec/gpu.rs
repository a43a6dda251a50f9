//! The GPU executor: one for every `Device` (CUDA and HIP). Weights are uploaded once in their
//! quantized form; the KV cache and activations live on the device; a decode step moves only the
//! token id in and the logits (or the argmax id) out. The decode pass is planned once — every
//! launch with its grid and arguments — and replayed each step with the new position.

use std::collections::HashMap;
use std::time::Instant;

use super::{ExecError, Model};
use crate::device::{Arg, DevPtr, Device, Kernel};
use crate::graph::{Buf, Graph, Step};
use crate::jit::{Engine, Origin};
use crate::kernels::{KernelSpec, ROWS_PER_BLOCK, TOKENS_PER_WARP};

/// What loading a model onto the device took.
#[derive(Clone, Debug, Default)]
pub struct LoadReport {
    pub upload_seconds: f64,
    pub jit_seconds: f64,
    pub kernels_compiled: usize,
    pub kernels_cached: usize,
    pub weight_bytes: u64,
}

/// A model resident on a device, with its kernels loaded.
pub struct GpuModel<'m> {
    pub model: &'m Model,
    pub device: Box<dyn Device>,
    weights: HashMap<String, DevPtr>,
    kernels: HashMap<KernelSpec, (Kernel, u32)>,
    pub report: LoadReport,
}

fn ceil_div(a: usize, b: usize) -> u32 {
    a.div_ceil(b) as u32
}

impl<'m> GpuModel<'m> {
    /// Compiles (or loads from the cache) every kernel the model needs for the device's own
    /// target, and uploads the weights.
    pub fn new(model: &'m Model, device: Box<dyn Device>, engine: &Engine) -> Result<GpuModel<'m>, ExecError> {
        let cfg = &model.config;
        if cfg.head_dim != cfg.head_dim_v {
            return Err(ExecError::Unsupported(format!(
                "the GPU KV cache needs equal key and value head sizes (this model: {} and {})",
                cfg.head_dim, cfg.head_dim_v
            )));
        }
        let specs: Vec<KernelSpec> = crate::graph::kernel_specs(cfg, model.file.as_ref())?.into_iter().collect();
        let start = Instant::now();
        let mut kernels = HashMap::new();
        let mut report = LoadReport::default();
        match device.target().cloned() {
            Some(target) => {
                if !engine.targets().contains(&target) {
                    return Err(ExecError::Unsupported(format!(
                        "the engine does not compile for this device's target {target}"
                    )));
                }
                let warm = engine.warm(&specs)?;
                for k in warm.kernels.iter().filter(|k| k.target == target) {
                    // An entry compiled for another target is never loaded (the key has the target).
                    let kernel = device.load_kernel(&k.spec, &k.code, &k.entry)?;
                    kernels.insert(k.spec, (kernel, k.block_threads));
                    match k.origin {
                        Origin::Compiled => report.kernels_compiled += 1,
                        _ => report.kernels_cached += 1,
                    }
                }
            }
            // A device that runs no compiled code (the CPU device) loads each spec directly.
            None => {
                for spec in &specs {
                    kernels.insert(*spec, (device.load_kernel(spec, &[], &spec.entry_name())?, 256));
                }
            }
        }
        report.jit_seconds = start.elapsed().as_secs_f64();

        let start = Instant::now();
        let mut weights = HashMap::new();
        for node in &model.decode.nodes {
            for name in &node.weights {
                if weights.contains_key(name) {
                    continue;
                }
                let bytes: Vec<u8> = match node.step {
                    // Norms and biases go up as f32, as the kernels read them.
                    Step::Norm { .. } | Step::BiasAdd { .. } => {
                        model.vector(name).iter().flat_map(|v| v.to_le_bytes()).collect()
                    }
                    _ => {
                        let t = model.file.require_tensor(name)?;
                        model.file.tensor_data(t).to_vec()
                    }
                };
                let ptr = device.alloc(bytes.len())?;
                device.upload(ptr, &bytes)?;
                report.weight_bytes += bytes.len() as u64;
                weights.insert(name.clone(), ptr);
            }
        }
        device.synchronize()?;
        report.upload_seconds = start.elapsed().as_secs_f64();
        Ok(GpuModel { model, device, weights, kernels, report })
    }
}

impl Drop for GpuModel<'_> {
    fn drop(&mut self) {
        for (_, p) in self.weights.drain() {
            self.device.free(p);
        }
    }
}

/// An argument whose value is known when the plan is made, or filled in at each replay.
#[derive(Clone, Copy, Debug)]
enum PlanArg {
    Fixed(Arg),
    /// The pass's first position.
    Pos0,
}

#[derive(Clone, Debug)]
struct Launch {
    spec: KernelSpec,
    grid: [u32; 3],
    block: [u32; 3],
    args: Vec<PlanArg>,
}

const N_BUFS: usize = Buf::Logits as usize + 1;

/// Tokens per prefill pass: activation buffers are sized by it, so it bounds their memory
/// (SmolLM2: 8.8 MB at 256) while keeping each pass large enough to fill the GPU.
pub const DEFAULT_MAX_BATCH: usize = 256;

/// A GPU session: device-resident KV cache and activation buffers for passes of up to
/// `max_batch` tokens (longer prompts are prefilled in chunks).
pub struct GpuSession<'g, 'm> {
    g: &'g GpuModel<'m>,
    capacity: usize,
    max_batch: usize,
    pos: usize,
    bufs: [DevPtr; N_BUFS],
    k_cache: Vec<DevPtr>,
    v_cache: Vec<DevPtr>,
    ids: DevPtr,
    positions: DevPtr,
    argmax: DevPtr,
    decode_plan: Vec<Launch>,
    logits: Vec<f32>,
    /// Bytes this session allocated on the device (KV cache, activations, ids, positions).
    pub allocated: SessionBytes,
}

/// Device memory a session holds, by purpose.
#[derive(Clone, Copy, Debug, Default)]
pub struct SessionBytes {
    pub kv_cache: u64,
    pub activations: u64,
}

impl<'g, 'm> GpuSession<'g, 'm> {
    pub fn new(g: &'g GpuModel<'m>, capacity: usize, max_batch: usize) -> Result<Self, ExecError> {
        let model = g.model;
        let max = model.config.n_ctx_train as usize;
        if capacity > max {
            return Err(ExecError::CapacityTooLarge { capacity, max });
        }
        let max_batch = max_batch.clamp(1, capacity.max(1));
        let plan = &model.prefill.buffers;
        let dev = g.device.as_ref();
        let mut bufs = [DevPtr(0); N_BUFS];
        let mut allocated = SessionBytes::default();
        for (buf, _) in &plan.sizes {
            let bytes = plan.len(*buf, max_batch) * 4;
            bufs[*buf as usize] = dev.alloc(bytes)?;
            allocated.activations += bytes as u64;
        }
        allocated.activations += (2 * max_batch * 4 + 4) as u64; // ids, positions, argmax

        // The KV cache, sized with checked arithmetic; a refusal names what was asked (issue 12).
        let need = super::session::kv_cache_bytes(plan, capacity).ok_or_else(|| ExecError::OutOfMemory {
            what: "KV cache",
            capacity,
            need: "more than 2^64 bytes".into(),
            limit: "no device has that".into(),
        })?;
        allocated.kv_cache = need;
        let kv = |w: usize| {
            dev.alloc(capacity * w * 4).map_err(|e| ExecError::OutOfMemory {
                what: "KV cache",
                capacity,
                need: super::session::gib(need),
                limit: format!("the device refused it: {e}"),
            })
        };
        let k_cache = (0..plan.n_layer).map(|_| kv(plan.kv_width)).collect::<Result<Vec<_>, _>>()?;
        let v_cache = (0..plan.n_layer).map(|_| kv(plan.v_width)).collect::<Result<Vec<_>, _>>()?;
        let mut s = GpuSession {
            g,
            capacity,
            max_batch,
            pos: 0,
            bufs,
            k_cache,
            v_cache,
            ids: dev.alloc(max_batch * 4)?,
            positions: dev.alloc(max_batch * 4)?,
            argmax: dev.alloc(4)?,
            decode_plan: Vec::new(),
            logits: vec![0.0; model.config.n_vocab as usize],
            allocated,
        };
        s.decode_plan = s.plan(&model.decode, 1)?;
        Ok(s)
    }

    pub fn pos(&self) -> usize {
        self.pos
    }

    pub fn reset(&mut self) {
        self.pos = 0;
    }

    fn buf(&self, b: Buf) -> DevPtr {
        self.bufs[b as usize]
    }

    /// Every launch of a pass of `n` tokens through `graph`.
    fn plan(&self, graph: &Graph, n: usize) -> Result<Vec<Launch>, ExecError> {
        let cfg = &self.g.model.config;
        let ws = self.g.device.target().map_or(32, |t| t.warp_size()) as usize;
        let mut out = Vec::with_capacity(graph.nodes.len());
        let fixed = |a: Arg| PlanArg::Fixed(a);
        let ptr = |p: DevPtr| PlanArg::Fixed(Arg::Ptr(p));
        for node in &graph.nodes {
            let Some((_, bt)) = self.g.kernels.get(&node.spec) else {
                return Err(ExecError::Unsupported(format!("no kernel loaded for {}", node.spec)));
            };
            let bt = *bt;
            let weight = |i: usize| self.g.weights[&node.weights[i]];
            let elementwise = |total: usize| [ceil_div(total, 256), 1, 1];
            let (grid, block, args): ([u32; 3], [u32; 3], Vec<PlanArg>) = match node.step {
                Step::Embed { out, scale } => (
                    [n as u32, 1, 1],
                    [bt, 1, 1],
                    vec![ptr(weight(0)), ptr(self.ids), ptr(self.buf(out)), fixed(Arg::F32(scale))],
                ),
                Step::Norm { x, out, width, eps } => {
                    let rows = n * graph.buffers.width(x) / width as usize;
                    (
                        [rows as u32, 1, 1],
                        [bt, 1, 1],
                        vec![ptr(self.buf(x)), ptr(weight(0)), ptr(self.buf(out)), fixed(Arg::F32(eps))],
                    )
                }
                Step::Linear { x, out, n_out, last_only } => {
                    let t = self.g.model.file.require_tensor(&node.weights[0])?;
                    let k = t.row_len() as usize;
                    let (xp, tokens) =
                        if last_only { (self.buf(x).offset((n - 1) * k * 4), 1) } else { (self.buf(x), n) };
                    let n_out = n_out as usize;
                    match node.spec {
                        KernelSpec::MatVec { .. } => {
                            assert_eq!(tokens, 1, "{}: matrix-vector kernels take one token", node.name);
                            let args = vec![ptr(weight(0)), ptr(xp), ptr(self.buf(out)), fixed(Arg::I32(n_out as i32))];
                            (
                                [ceil_div(n_out, ROWS_PER_BLOCK as usize), 1, 1],
                                [(ROWS_PER_BLOCK as usize * ws) as u32, 1, 1],
                                args,
                            )
                        }
                        _ => {
                            let args = vec![
                                ptr(weight(0)),
                                ptr(xp),
                                ptr(self.buf(out)),
                                fixed(Arg::I32(n_out as i32)),
                                fixed(Arg::I32(tokens as i32)),
                            ];
                            let grid = [
                                ceil_div(n_out, ROWS_PER_BLOCK as usize),
                                ceil_div(tokens, TOKENS_PER_WARP as usize),
                                1,
                            ];
                            (grid, [(ROWS_PER_BLOCK as usize * ws) as u32, 1, 1], args)
                        }
                    }
                }
                Step::BiasAdd { x, width } => {
                    let total = n * width as usize;
                    let args = vec![
                        ptr(self.buf(x)),
                        ptr(weight(0)),
                        ptr(self.buf(x)),
                        fixed(Arg::I32(total as i32)),
                        fixed(Arg::I32(width as i32)),
                        fixed(Arg::F32(0.0)),
                    ];
                    (elementwise(total), [256, 1, 1], args)
                }
                Step::Rope { x, heads, base, freq_scale } => {
                    let args = vec![
                        ptr(self.buf(x)),
                        ptr(self.positions),
                        fixed(Arg::I32(heads as i32)),
                        fixed(Arg::F32(base)),
                        fixed(Arg::F32(freq_scale)),
                    ];
                    ([n as u32, heads, 1], [cfg.rope_dims / 2, 1, 1], args)
                }
                Step::KvAppend { layer } => {
                    let row = graph.buffers.kv_width;
                    let l = layer as usize;
                    let args = vec![
                        ptr(self.buf(Buf::K)),
                        ptr(self.buf(Buf::V)),
                        ptr(self.k_cache[l]),
                        ptr(self.v_cache[l]),
                        fixed(Arg::I32(row as i32)),
                        fixed(Arg::I32(n as i32)),
                        PlanArg::Pos0,
                    ];
                    (elementwise(row * n), [256, 1, 1], args)
                }
                Step::Attention { layer, scale, softcap, window } => {
                    let l = layer as usize;
                    let args = vec![
                        ptr(self.buf(Buf::Q)),
                        ptr(self.k_cache[l]),
                        ptr(self.v_cache[l]),
                        ptr(self.buf(Buf::AttnOut)),
                        fixed(Arg::I32(cfg.n_head as i32)),
                        PlanArg::Pos0,
                        fixed(Arg::F32(scale)),
                        fixed(Arg::F32(softcap.unwrap_or(0.0))),
                        fixed(Arg::I32(window.map_or(0, |w| w as i32))),
                    ];
                    ([cfg.n_head, n as u32, 1], [bt, 1, 1], args)
                }
                Step::Add { a, b, out } => {
                    let total = n * graph.buffers.width(a);
                    let args = vec![
                        ptr(self.buf(a)),
                        ptr(self.buf(b)),
                        ptr(self.buf(out)),
                        fixed(Arg::I32(total as i32)),
                        fixed(Arg::I32(0)),
                        fixed(Arg::F32(0.0)),
                    ];
                    (elementwise(total), [256, 1, 1], args)
                }
                Step::Glu { gate, up, out, .. } => {
                    let total = n * graph.buffers.width(gate);
                    let args =
                        vec![ptr(self.buf(gate)), ptr(self.buf(up)), ptr(self.buf(out)), fixed(Arg::I32(total as i32))];
                    (elementwise(total), [256, 1, 1], args)
                }
                Step::Softcap { x, cap } => {
                    let total = graph.buffers.len(x, n);
                    let xp = self.buf(x);
                    let args = vec![
                        ptr(xp),
                        ptr(xp),
                        ptr(xp),
                        fixed(Arg::I32(total as i32)),
                        fixed(Arg::I32(0)),
                        fixed(Arg::F32(cap)),
                    ];
                    (elementwise(total), [256, 1, 1], args)
                }
                Step::Argmax => {
                    let args = vec![ptr(self.buf(Buf::Logits)), ptr(self.argmax), fixed(Arg::I32(cfg.n_vocab as i32))];
                    ([1, 1, 1], [bt, 1, 1], args)
                }
                // Sampling other than greedy happens on the host, from the logits.
                Step::Softmax => continue,
            };
            out.push(Launch { spec: node.spec, grid, block, args });
        }
        Ok(out)
    }

    fn replay(&self, plan: &[Launch], pos0: usize) -> Result<(), ExecError> {
        let mut args = Vec::with_capacity(12);
        for l in plan {
            args.clear();
            args.extend(l.args.iter().map(|a| match *a {
                PlanArg::Fixed(a) => a,
                PlanArg::Pos0 => Arg::I32(pos0 as i32),
            }));
            let (kernel, _) = &self.g.kernels[&l.spec];
            self.g.device.launch(kernel, l.grid, l.block, &args)?;
        }
        Ok(())
    }

    /// Runs `tokens` through the model on the device (prefilling in chunks of `max_batch`), leaving
    /// the last position's logits (and their argmax) on the device.
    fn run(&mut self, tokens: &[u32]) -> Result<(), ExecError> {
        super::check_pass(&self.g.model.config, self.pos, self.capacity, tokens)?;
        for chunk in tokens.chunks(self.max_batch) {
            let n = chunk.len();
            let ids: Vec<u8> = chunk.iter().flat_map(|&t| t.to_le_bytes()).collect();
            let pos: Vec<u8> = (self.pos..self.pos + n).flat_map(|p| (p as u32).to_le_bytes()).collect();
            self.g.device.upload(self.ids, &ids)?;
            self.g.device.upload(self.positions, &pos)?;
            if n == 1 {
                self.replay(&self.decode_plan, self.pos)?;
            } else {
                let plan = self.plan(&self.g.model.prefill, n)?;
                self.replay(&plan, self.pos)?;
            }
            self.pos += n;
        }
        Ok(())
    }

    /// Runs `tokens` and returns the last position's logits.
    pub fn forward(&mut self, tokens: &[u32]) -> Result<&[f32], ExecError> {
        self.run(tokens)?;
        let mut bytes = vec![0u8; self.logits.len() * 4];
        self.g.device.download(self.buf(Buf::Logits), &mut bytes)?;
        for (l, c) in self.logits.iter_mut().zip(bytes.chunks_exact(4)) {
            *l = f32::from_le_bytes(c.try_into().expect("4 bytes"));
        }
        Ok(&self.logits)
    }

    /// Runs `tokens` and returns the greedy next token, moving 4 bytes back instead of the logits.
    pub fn forward_argmax(&mut self, tokens: &[u32]) -> Result<u32, ExecError> {
        self.run(tokens)?;
        let mut b = [0u8; 4];
        self.g.device.download(self.argmax, &mut b)?;
        Ok(u32::from_le_bytes(b))
    }
}

impl Drop for GpuSession<'_, '_> {
    fn drop(&mut self) {
        let dev = self.g.device.as_ref();
        for p in
            self.bufs.iter().chain(&self.k_cache).chain(&self.v_cache).chain([&self.ids, &self.positions, &self.argmax])
        {
            dev.free(*p);
        }
    }
}

impl super::Forward for GpuSession<'_, '_> {
    fn forward(&mut self, tokens: &[u32]) -> Result<&[f32], ExecError> {
        GpuSession::forward(self, tokens)
    }
    fn forward_argmax(&mut self, tokens: &[u32]) -> Result<u32, ExecError> {
        GpuSession::forward_argmax(self, tokens)
    }
    fn pos(&self) -> usize {
        self.pos
    }
    fn reset(&mut self) {
        GpuSession::reset(self)
    }
}

/// Device-to-device copy bandwidth in bytes per second (bytes read plus bytes written), over
/// `bytes`-sized buffers, median of 5: the ceiling decode is held to.
pub fn copy_bandwidth(device: &dyn Device, bytes: usize) -> Result<f64, ExecError> {
    let (a, b) = (device.alloc(bytes)?, device.alloc(bytes)?);
    device.copy(b, a, bytes)?; // warm-up
    device.synchronize()?;
    let mut times = Vec::new();
    for _ in 0..5 {
        let start = Instant::now();
        device.copy(b, a, bytes)?;
        device.synchronize()?;
        times.push(start.elapsed().as_secs_f64());
    }
    device.free(a);
    device.free(b);
    times.sort_by(|x, y| x.total_cmp(y));
    Ok(2.0 * bytes as f64 / times[2])
}

/// Bytes of weights a decode step reads: every matrix and vector once, one row of the embedding
/// (unless the output projection reads the whole table anyway).
pub fn decode_weight_bytes(model: &Model) -> u64 {
    let mut seen = std::collections::HashSet::new();
    let mut total = 0u64;
    for node in &model.decode.nodes {
        for name in &node.weights {
            if !seen.insert(name.clone()) {
                continue;
            }
            let Some(t) = model.file.tensor(name) else { continue };
            total += match node.step {
                Step::Embed { .. } => t.ty.row_bytes(t.row_len()).unwrap_or(0),
                _ => t.n_bytes,
            };
        }
    }
    // A tied embedding is read whole by the output projection: count it once, whole.
    let tied = model
        .decode
        .nodes
        .iter()
        .any(|n| matches!(n.step, Step::Linear { last_only: true, .. }) && n.weights[0] == "token_embd.weight");
    if tied {
        if let Some(t) = model.file.tensor("token_embd.weight") {
            total += t.n_bytes - t.ty.row_bytes(t.row_len()).unwrap_or(0);
        }
    }
    total
}
