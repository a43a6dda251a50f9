//! Kernel specialization: a [`KernelSpec`] (an op plus the values it is specialized for) renders
//! deterministic, self-contained HIP-dialect source from the templates in `kernel_templates/`.
//!
//! Rendering is pure: the same spec and [`RenderTarget`] give the same bytes on every machine, so
//! the source (with compiler identity, target and options) is the whole cache key. This module
//! knows block formats by their `GgmlType` and `quant` sizes only.

mod render;
mod spec;
mod templates;

pub use render::{render, DotI8, MatrixUnit, RenderTarget, RenderedKernel, ROWS_PER_BLOCK, TOKENS_PER_WARP};
pub use spec::{AttnPhase, Dialect, ElementwiseOp, GluKind, KernelSpec, RopeKind, SpecError};
