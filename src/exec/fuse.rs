//! Fusion of the GPU's int8 plans: a pattern pass over the decode or prefill graph that finds runs
//! of nodes the GPU runs as one launch. The graph stays the model's math (the CPU session never
//! sees this); the GPU executor asks [`at`] at each node while it plans an int8 decode step or
//! prefill pass, and the kernel list asks [`specs`] which fused kernels to compile. Each pattern
//! matches exactly or not at all, so whatever a model adds between the nodes (Gemma's post-norms,
//! Qwen3's Q/K norms) leaves that run unfused:
//! - `Add` of the residual stream, then `Norm` of it into another buffer that an int8 product (a
//!   decode matvec, a prefill GEMM) reads next: one `RmsNormQ8_1` (add, norm, and the q8_1
//!   quantize of the product's input, every token's row); the `Norm` alone (first layer, output
//!   norm) the same without the add.
//! - Two or three int8 decode `Linear`s over the same input (Q/K/V; gate and up), each with its
//!   `BiasAdd` or none: one `MatVecQ8Multi` (decode only).
//! - `Rope` of Q, `Rope` of K (same rope), `KvAppend`: one `RopeKv`.
//! - `Glu` whose output an int8 product reads next: one `GluQ8_1`.
//!
//! `ROCMFORGE_FUSE=0` turns the pass off (the unfused int8 plan), so a GPU run can compare both.

use std::collections::BTreeSet;

use crate::graph::{Buf, Graph, Node, Step};
use crate::kernels::{ElementwiseOp, KernelSpec, RopeExt};

/// A fused launch and the graph nodes it stands for.
#[derive(Clone, Debug, PartialEq)]
pub struct Fused {
    /// Nodes `first .. first + len` of the graph.
    pub first: usize,
    pub len: usize,
    pub spec: KernelSpec,
    pub kind: FusedKind,
}

#[derive(Clone, Debug, PartialEq)]
pub enum FusedKind {
    /// Optional residual add (`x += d`), then the norm of x into `out`, quantized to q8_1.
    NormQ8 { x: Buf, d: Option<Buf>, out: Buf, width: u32, eps: f32, norm: usize },
    /// Int8 matvecs over `x`: each (linear node, its bias node).
    MatVecs { x: Buf, k: u32, linears: Vec<(usize, Option<usize>)> },
    /// Rope of Q and K, and the KV append.
    RopeKv { rope_q: usize, rope_k: usize, append: usize },
    /// The GLU, quantized to q8_1.
    GluQ8 { glu: usize },
}

/// Whether fusion is on: unless `ROCMFORGE_FUSE=0`.
pub fn enabled_by_env() -> bool {
    !std::env::var("ROCMFORGE_FUSE").is_ok_and(|v| v.trim() == "0")
}

/// A `Linear` the int8 path runs (quantized weights, whole q8_1 blocks): a decode matvec, or a
/// prefill product over every token's row: its input, output, rows and row length.
fn int8_linear(node: &Node) -> Option<(Buf, Buf, u32, u32)> {
    match (&node.step, node.spec) {
        (&Step::Linear { x, out, n_out, .. }, KernelSpec::MatVec { k, .. }) if node.spec.int8_decode().is_some() => {
            Some((x, out, n_out, k))
        }
        (&Step::Linear { x, out, n_out, last_only: false, .. }, KernelSpec::MatMul { k, .. })
            if node.spec.int8_prefill().is_some() =>
        {
            Some((x, out, n_out, k))
        }
        _ => None,
    }
}

/// Whether node `i` is an int8 matvec reading `buf`.
fn int8_reads(graph: &Graph, i: usize, buf: Buf) -> bool {
    graph.nodes.get(i).and_then(int8_linear).is_some_and(|(x, ..)| x == buf)
}

/// The fused launch starting at node `i` of a decode or prefill graph, if a pattern matches there.
pub fn at(graph: &Graph, i: usize) -> Option<Fused> {
    norm_q8(graph, i).or_else(|| matvecs(graph, i)).or_else(|| rope_kv(graph, i)).or_else(|| glu_q8(graph, i))
}

fn norm_q8(graph: &Graph, i: usize) -> Option<Fused> {
    let nodes = &graph.nodes;
    let (add, norm) = match nodes.get(i)?.step {
        Step::Add { a, b, out } if a == out && a != b => (Some((a, b)), i + 1),
        Step::Norm { .. } => (None, i),
        _ => return None,
    };
    if add.is_some() && nodes[i].spec != (KernelSpec::Elementwise { op: ElementwiseOp::Add }) {
        return None;
    }
    let node = nodes.get(norm)?;
    let (Step::Norm { x, out, width, eps }, KernelSpec::RmsNorm { n, add_one }) = (&node.step, node.spec) else {
        return None;
    };
    // Whole rows of the buffer (not per-head norms), out of place, into the next matvec's input.
    let whole = n == *width && graph.buffers.width(*x) == *width as usize && width.is_multiple_of(32);
    let d = match add {
        Some((a, b)) if a == *x && b != *out => Some(b),
        Some(_) => return None,
        None => None,
    };
    if !whole || x == out || !int8_reads(graph, norm + 1, *out) {
        return None;
    }
    let spec = KernelSpec::RmsNormQ8_1 { n, add_one, residual: d.is_some() };
    let kind = FusedKind::NormQ8 { x: *x, d, out: *out, width: *width, eps: *eps, norm };
    Some(Fused { first: i, len: norm + 1 - i, spec, kind })
}

fn matvecs(graph: &Graph, i: usize) -> Option<Fused> {
    let nodes = &graph.nodes;
    // Decode matvecs only: prefill runs each GEMM over the shared quantized input.
    if !matches!(nodes.get(i)?.spec, KernelSpec::MatVec { .. }) {
        return None;
    }
    let (x, _, _, k) = int8_linear(nodes.get(i)?)?;
    let mut linears = Vec::new();
    let mut j = i;
    while linears.len() < 3 {
        let Some((xj, out, n_out, kj)) = nodes.get(j).and_then(int8_linear) else { break };
        if xj != x || kj != k || out == x {
            break;
        }
        let bias = match nodes.get(j + 1) {
            Some(Node { step: Step::BiasAdd { x: bx, width }, .. }) if *bx == out && *width == n_out => Some(j + 1),
            _ => None,
        };
        // All with a bias or none.
        if linears.first().is_some_and(|(_, b): &(usize, Option<usize>)| b.is_some() != bias.is_some()) {
            break;
        }
        linears.push((j, bias));
        j += 1 + usize::from(bias.is_some());
    }
    if linears.len() < 2 {
        return None;
    }
    let mut wtypes = [None; 3];
    for (slot, (l, _)) in wtypes.iter_mut().zip(&linears) {
        *slot = nodes[*l].spec.weight_type();
    }
    let spec = KernelSpec::MatVecQ8Multi { k, wtypes, bias: linears[0].1.is_some() };
    Some(Fused { first: i, len: j - i, spec, kind: FusedKind::MatVecs { x, k, linears } })
}

fn rope_kv(graph: &Graph, i: usize) -> Option<Fused> {
    let nodes = &graph.nodes;
    let (q, k, append) = (nodes.get(i)?, nodes.get(i + 1)?, nodes.get(i + 2)?);
    let (
        Step::Rope { x: Buf::Q, base, freq_scale, freq_factors, ext, long_factors_above: None, .. },
        Step::Rope {
            x: Buf::K, base: kb, freq_scale: kfs, freq_factors: kff, ext: kext, long_factors_above: None, ..
        },
        Step::KvAppend { .. },
    ) = (&q.step, &k.step, &append.step)
    else {
        return None;
    };
    let (KernelSpec::Rope { head_dim, rope_dims, kind }, KernelSpec::KvAppend { kv }) = (q.spec, append.spec) else {
        return None;
    };
    // The fused kernel rotates by θ alone: YaRN's ramp and cos/sin scale, and LongRoPE's choice of
    // factors by context, stay with the plain rope kernel.
    let plain = *ext == RopeExt::NONE && *kext == RopeExt::NONE;
    let same = q.spec == k.spec && q.weights == k.weights && (base, freq_scale, freq_factors) == (kb, kfs, kff);
    // The append copies whole K and V rows of heads of head_dim.
    let rows = graph.buffers.width(Buf::K) == graph.buffers.kv_width && graph.buffers.kv_width == graph.buffers.v_width;
    if !plain || !same || !rows {
        return None;
    }
    let spec = KernelSpec::RopeKv { head_dim, rope_dims, kind, kv };
    Some(Fused { first: i, len: 3, spec, kind: FusedKind::RopeKv { rope_q: i, rope_k: i + 1, append: i + 2 } })
}

fn glu_q8(graph: &Graph, i: usize) -> Option<Fused> {
    let node = graph.nodes.get(i)?;
    let (Step::Glu { gate, out, .. }, KernelSpec::Glu { kind }) = (&node.step, node.spec) else {
        return None;
    };
    if !graph.buffers.width(*gate).is_multiple_of(32) || !int8_reads(graph, i + 1, *out) {
        return None;
    }
    Some(Fused { first: i, len: 1, spec: KernelSpec::GluQ8_1 { kind }, kind: FusedKind::GluQ8 { glu: i } })
}

/// Every fused launch of a graph, in order (what the GPU's int8 plan runs fused).
pub fn all(graph: &Graph) -> Vec<Fused> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < graph.nodes.len() {
        match at(graph, i) {
            Some(f) => {
                i += f.len;
                out.push(f);
            }
            None => i += 1,
        }
    }
    out
}

/// The kernels the fused int8 plan of `graph` needs beyond the graph's own.
pub fn specs(graph: &Graph) -> BTreeSet<KernelSpec> {
    all(graph).into_iter().map(|f| f.spec).collect()
}
