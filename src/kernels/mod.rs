//! Kernel specialization and launch: a [`KernelSpec`] (an op plus the values it is specialized
//! for) renders deterministic, self-contained HIP-dialect source from the templates in
//! `kernel_templates/`; a [`Launch`] (one typed description per op) says how that kernel is run:
//! its grid, block and arguments.
//!
//! Rendering is pure: the same spec and [`RenderTarget`] give the same bytes on every machine, so
//! the source (with compiler identity, target and options) is the whole cache key. This module
//! knows block formats by their `GgmlType` and `quant` sizes only.

pub mod launch;
mod render;
mod spec;
mod templates;

pub use launch::{Arg, BufferRef, Elem, Launch, LaunchError};
pub use render::{render, DotI8, MatrixUnit, RenderTarget, RenderedKernel};
pub use spec::{
    int8_matmul_type, int8_matvec_type, mmq_may_stream, mmvq_units_per_block, AttnPhase, Dialect, ElementwiseOp,
    F16Tile, GluKind, KernelSpec, MmvqLayout, RopeExt, RopeKind, SpecError, ATTN_WARPS, BLOCK_THREADS, MAX_HEAD_DIM,
    MMVQ_THREADS, QUANTIZE_THREADS, ROWS_PER_BLOCK, TOKENS_PER_WARP,
};
pub use spec::{KvPrecision, ATTN_DECODE_MAX_CHUNK, ATTN_DECODE_MAX_GQA, ATTN_DECODE_MAX_HEAD_DIM, ATTN_DECODE_WARPS};
