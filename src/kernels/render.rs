//! Rendering: spec constants, then prelude, shared helpers, the weight format's fragment and the
//! op's template body, concatenated into one self-contained source (no `#include`).

use std::fmt::Write;

use super::launch::{ATTN_DECODE_MAX_SPLIT, ATTN_DECODE_MIN_CHUNK, ATTN_DECODE_TARGET_BLOCKS};
use super::spec::{flash_kv_tile, flash_on_matrix_unit, flash_queries, flash_queries_per_warp, flash_warps};
use super::spec::{mmq_layout, mmq_tokens, GemmF16Layout, MmqLayout, MMQ_ROWS, MMQ_THREADS};
use super::spec::{
    Dialect, ElementwiseOp, GluKind, KernelSpec, MmvqLayout, RopeKind, SpecError, ATTN_WARPS, BLOCK_THREADS,
    MMVQ_THREADS, QUANTIZE_THREADS, ROWS_PER_BLOCK, TOKENS_PER_WARP,
};
use super::spec::{F16Tile, GEMM_F16_LD};
use super::spec::{KvPrecision, ATTN_DECODE_MAX_CHUNK, ATTN_DECODE_WARPS, RMSNORM_Q8_1_THREADS};
use super::templates::{self as t, Template};
use crate::dtype::GgmlType;

/// What rendering depends on besides the spec: the dialect and what the target can do. The jit
/// layer fills it from its capability table (`jit::Target::render_target`); the renderer writes
/// it into every kernel as `#define`s, and the preludes choose code paths by those defines alone
/// (never `__has_builtin`: ROCm 5.2 answers yes for instructions the target lacks, then aborts).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RenderTarget {
    pub dialect: Dialect,
    /// Threads per warp: 64 on GCN/CDNA, 32 on RDNA (wave32, the default) and on NVIDIA.
    pub warp_size: u32,
    /// The int8 dot-product instruction (four int8 products summed into an int32).
    pub dot_i8: DotI8,
    /// The matrix unit.
    pub matrix: MatrixUnit,
    /// Programmatic dependent launch (a kernel may start before the previous one ends): sm_90+.
    pub pdl: bool,
    /// Bytes of shared memory (LDS) one block may take, dynamic included.
    pub shared_max: u32,
    /// Hopper's warpgroup matrix products (`wgmma`, sm_90 compiled as sm_90a).
    pub wgmma: bool,
}

/// The int8 dot-product instruction a target has.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DotI8 {
    /// None: the prelude's `rf_dot4_i8` falls back to four multiply-adds.
    None,
    /// NVIDIA `dp4a` (sm_61+).
    Dp4a,
    /// AMD `v_dot4_i32_i8`, `__builtin_amdgcn_sdot4` (gfx906, gfx908, gfx90a, gfx94x, gfx950,
    /// gfx1011, gfx1012, gfx103x).
    Sdot4,
    /// AMD `v_dot4_i32_iu8`, `__builtin_amdgcn_sudot4` (gfx11, gfx12).
    Sudot4,
}

/// The matrix unit a target has, with its generation where the instruction set differs by it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MatrixUnit {
    None,
    /// NVIDIA `mma.sync` (sm_80+).
    MmaSync,
    /// AMD MFMA (wave64), by CDNA generation: 1 gfx908, 2 gfx90a, 3 gfx94x, 4 gfx950.
    Mfma {
        cdna: u8,
    },
    /// AMD WMMA (wave32), by RDNA generation: 3 gfx11, 4 gfx12 (other builtins and layouts).
    Wmma {
        rdna: u8,
    },
}

impl RenderTarget {
    /// The shared-memory layout of this target's `mmq` kernel for `wtype` rows of `k` values.
    pub fn mmq_layout(&self, wtype: GgmlType, k: u32) -> MmqLayout {
        // cp.async is sm_80's, as mma.sync (async_copy.h asks __CUDA_ARCH__ the same).
        // Without a matrix unit each lane's dot products run one element at a time over its
        // accumulators: 32 tokens a pass keeps gfx906's and gfx1030's registers from spilling.
        let pass_max = if self.matrix == MatrixUnit::None { 32 } else { 128 };
        mmq_layout(wtype, k, self.matrix == MatrixUnit::MmaSync, self.shared_max, pass_max)
    }

    /// The block shape of this target's `gemm_f16` kernels of `tile`.
    pub fn gemm_f16_layout(&self, tile: F16Tile) -> GemmF16Layout {
        GemmF16Layout::new(tile, self.warp_size, self.shared_max, self.wgmma)
    }

    /// Bytes of dynamic shared memory a launch of `spec` takes on this target.
    pub fn dynamic_shared_bytes(&self, spec: &KernelSpec) -> u32 {
        match *spec {
            KernelSpec::MatMulQ8 { wtype, k, .. } => self.mmq_layout(wtype, k).shared_bytes,
            KernelSpec::GemmF16 { tile, .. } => self.gemm_f16_layout(tile).shared_bytes,
            _ => 0,
        }
    }

    /// The `#define`s that tell the preludes and templates what the target can do. Every name is
    /// always defined (0 when absent), so `#if RF_…` never reads an undefined macro as 0 by
    /// accident of a typo in one place only.
    fn defines(&self) -> Vec<(&'static str, u32)> {
        let (mfma, wmma) = match self.matrix {
            MatrixUnit::Mfma { cdna } => (u32::from(cdna), 0),
            MatrixUnit::Wmma { rdna } => (0, u32::from(rdna)),
            MatrixUnit::None | MatrixUnit::MmaSync => (0, 0),
        };
        vec![
            ("RF_WARP_SIZE", self.warp_size),
            ("RF_DOT_I8_DP4A", u32::from(self.dot_i8 == DotI8::Dp4a)),
            ("RF_DOT_I8_SDOT4", u32::from(self.dot_i8 == DotI8::Sdot4)),
            ("RF_DOT_I8_SUDOT4", u32::from(self.dot_i8 == DotI8::Sudot4)),
            ("RF_MATRIX_MMA_SYNC", u32::from(self.matrix == MatrixUnit::MmaSync)),
            ("RF_MATRIX_MFMA", mfma),
            ("RF_MATRIX_WMMA", wmma),
            ("RF_PDL", u32::from(self.pdl)),
            ("RF_WGMMA", u32::from(self.wgmma)),
        ]
    }
}

/// A rendered kernel: its entry point, its source, and the block size it must be launched with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RenderedKernel {
    pub spec: KernelSpec,
    pub entry: String,
    pub source: String,
    pub block_threads: u32,
}

/// Constant names and values written before the template.
struct Constants(Vec<(&'static str, String)>);

impl Constants {
    fn int(&mut self, name: &'static str, v: impl Into<i64>) -> &mut Self {
        self.0.push((name, format!("constexpr int {name} = {};", v.into())));
        self
    }
    fn flag(&mut self, name: &'static str, v: bool) -> &mut Self {
        self.0.push((name, format!("constexpr bool {name} = {v};")));
        self
    }
    /// `kv_t`, the KV cache's element: f16 bits (the preludes widen them), or f32.
    fn kv(&mut self, kv: KvPrecision) -> &mut Self {
        let ty = match kv {
            KvPrecision::F16 => "unsigned short",
            KvPrecision::F32 => "float",
        };
        self.0.push(("kv_t", format!("typedef {ty} kv_t;")));
        self
    }
}

/// Renders `spec` for `target`.
pub fn render(spec: &KernelSpec, target: RenderTarget) -> Result<RenderedKernel, SpecError> {
    spec.validate()?;
    let ws = target.warp_size;
    let mut c = Constants(Vec::new());
    c.int("WARP_SIZE", ws);
    let body = match *spec {
        KernelSpec::Embedding { n_embd, .. } => {
            c.int("N_EMBD", n_embd).int("BLOCK_THREADS", BLOCK_THREADS);
            t::EMBEDDING
        }
        KernelSpec::RmsNorm { n, add_one } => {
            c.int("N", n).flag("ADD_ONE", add_one).int("BLOCK_THREADS", BLOCK_THREADS);
            t::RMSNORM
        }
        KernelSpec::Rope { head_dim, rope_dims, kind } => {
            c.int("HEAD_DIM", head_dim).int("ROPE_DIMS", rope_dims).flag("NEOX", kind == RopeKind::Neox);
            t::ROPE
        }
        KernelSpec::MatVec { k, .. } => {
            c.int("K", k).int("ROWS_PER_BLOCK", ROWS_PER_BLOCK);
            t::MATVEC
        }
        KernelSpec::MatMul { k, .. } => {
            c.int("K", k).int("ROWS_PER_BLOCK", ROWS_PER_BLOCK).int("TOKENS_PER_WARP", TOKENS_PER_WARP);
            t::MATMUL
        }
        KernelSpec::QuantizeQ8_1 => {
            c.int("BLOCK_THREADS", QUANTIZE_THREADS);
            t::QUANTIZE_Q8_1
        }
        KernelSpec::MatVecQ8 { k, threads_per_row, rows_per_thread, .. } => {
            c.int("K", k)
                .int("MMVQ_THREADS", MMVQ_THREADS)
                .int("THREADS_PER_ROW", threads_per_row)
                .int("ROWS_PER_THREAD", rows_per_thread);
            t::MMVQ
        }
        KernelSpec::Attention { head_dim, gqa, sliding_window, softcap, kv } => {
            c.int("HEAD_DIM", head_dim)
                .int("GQA", gqa)
                .flag("SLIDING_WINDOW", sliding_window)
                .flag("SOFTCAP", softcap)
                .int("NWARPS", ATTN_WARPS)
                .kv(kv);
            t::ATTENTION
        }
        KernelSpec::AttnDecode { head_dim, gqa, sliding_window, softcap, kv } => {
            c.int("HEAD_DIM", head_dim)
                .int("GQA", gqa)
                .flag("SLIDING_WINDOW", sliding_window)
                .flag("SOFTCAP", softcap)
                .int("NWARPS", ATTN_DECODE_WARPS)
                .int("CHUNK_MAX", ATTN_DECODE_MAX_CHUNK)
                .int("CHUNK_MIN", ATTN_DECODE_MIN_CHUNK as u32)
                .int("TARGET_BLOCKS", ATTN_DECODE_TARGET_BLOCKS as u32)
                .int("MAX_SPLIT", ATTN_DECODE_MAX_SPLIT as u32)
                .kv(kv);
            t::ATTN_DECODE
        }
        KernelSpec::MatMulQ8 { wtype, k, stream_k } => {
            let l = target.mmq_layout(wtype, k);
            // Warps of 32 rows (two 16-row tiles) by the pass's tokens split among the rest: on
            // 8 warps a 4 × 2 grid, which halves each warp's activation loads against 16-row warps
            // over every token (H100, 7B pp512: 9036 against 8897 tokens/s; a one-stage layout at
            // two blocks a multiprocessor gave 8193).
            let warps = MMQ_THREADS / ws;
            // Without a matrix unit a fragment is a lane's whole rows in registers (mma.h): there
            // each warp keeps 16-row tiles (32 on wave64) over all the pass's tokens.
            let warps_m = if target.matrix == MatrixUnit::None { warps } else { (MMQ_ROWS / 32).min(warps) };
            let warps_n = warps / warps_m;
            c.int("K", k)
                .int("MMQ_WARPS", warps)
                .int("MMQ_WARPS_M", warps_m)
                .int("MMQ_WARPS_N", warps_n)
                .int("MMQ_WM", MMQ_ROWS / 16 / warps_m)
                .int("MMQ_WN", l.pass_tokens / 16 / warps_n)
                .int("MMQ_BLOCK_TOKENS", mmq_tokens(k))
                .int("MMQ_KT", l.k_step)
                .int("MMQ_STAGES", l.stages)
                .int("MMQ_WROW", l.w_row)
                .int("MMQ_XROW", l.x_row)
                .int("MMQ_WCOPY", l.w_copies)
                .int("MMQ_XCOPY", l.x_copies)
                .int("MMQ_SMEM", l.shared_bytes)
                .flag("MMQ_DS", l.ds_row > 0)
                .int("MMQ_DSROW", l.ds_row)
                .int("MMQ_DSCOPY", l.ds_copies)
                .flag("MMQ_STREAM_K", stream_k);
            t::MMQ
        }
        KernelSpec::FlashAttn { head_dim, gqa, sliding_window, softcap } => {
            c.int("HEAD_DIM", head_dim)
                .int("GQA", gqa)
                .flag("SLIDING_WINDOW", sliding_window)
                .flag("SOFTCAP", softcap)
                .int("NWARPS", flash_warps(head_dim));
            if flash_on_matrix_unit(head_dim, target.matrix != MatrixUnit::None) {
                // RDNA 3's operands repeat over the two half-waves (twice the registers): tiles
                // of 64 positions spill its soft-capped kernels at head_dim 96 and 128.
                let largest = if target.matrix == (MatrixUnit::Wmma { rdna: 3 }) { 32 } else { 64 };
                c.int("BKV", flash_kv_tile(head_dim, largest));
                t::FLASH_ATTN_MMA
            } else {
                c.int("QW", flash_queries_per_warp(head_dim)).int("BLOCK_Q", flash_queries(head_dim));
                t::FLASH_ATTN
            }
        }
        KernelSpec::Glu { kind } => {
            c.flag("GELU", kind == GluKind::GeGlu);
            t::GLU
        }
        KernelSpec::Elementwise { op } => {
            let code = match op {
                ElementwiseOp::Add => 0,
                ElementwiseOp::AddBias => 1,
                ElementwiseOp::Softcap => 2,
            };
            c.int("OP", code);
            t::ELEMENTWISE
        }
        KernelSpec::KvAppend { kv } => {
            c.kv(kv);
            t::KV_APPEND
        }
        KernelSpec::Argmax => {
            c.int("BLOCK_THREADS", BLOCK_THREADS);
            t::ARGMAX
        }
        KernelSpec::RmsNormQ8_1 { n, add_one, residual } => {
            c.int("N", n)
                .flag("ADD_ONE", add_one)
                .flag("RESIDUAL", residual)
                .int("BLOCK_THREADS", RMSNORM_Q8_1_THREADS)
                .int("SUM_THREADS", BLOCK_THREADS);
            t::RMSNORM_Q8_1
        }
        KernelSpec::MatVecQ8Multi { k, bias, .. } => {
            c.int("K", k).int("MMVQ_THREADS", MMVQ_THREADS).flag("HAS_BIAS", bias);
            t::MMVQ_MULTI
        }
        KernelSpec::RopeKv { head_dim, rope_dims, kind, kv } => {
            c.int("HEAD_DIM", head_dim).int("ROPE_DIMS", rope_dims).flag("NEOX", kind == RopeKind::Neox).kv(kv);
            t::ROPE_KV
        }
        KernelSpec::GluQ8_1 { kind } => {
            c.flag("GELU", kind == GluKind::GeGlu);
            t::GLU_Q8_1
        }
        KernelSpec::DequantF16 { k, .. } => {
            c.int("K", k).int("DQ_THREADS", BLOCK_THREADS);
            t::DEQUANT_F16
        }
        KernelSpec::ConvertF16 => {
            c.int("BLOCK_THREADS", BLOCK_THREADS);
            t::CONVERT_F16
        }
        KernelSpec::GemmF16 { k, tile } => {
            let l = target.gemm_f16_layout(tile);
            c.int("K", k)
                .int("GF_WARPS", l.warps_m * l.warps_n)
                .int("GF_WARPS_M", l.warps_m)
                .int("GF_WARPS_N", l.warps_n)
                .int("GF_BM", tile.rows())
                .int("GF_BN", tile.tokens())
                .int("GF_TM", tile.rows() / 16 / l.warps_m)
                .int("GF_TN", tile.tokens() / 16 / l.warps_n)
                .int("GF_STAGES", l.stages)
                .int("GF_LD", GEMM_F16_LD)
                .int("GF_SMEM", l.shared_bytes);
            t::GEMM_F16
        }
    };
    let mut fragments = match spec.weight_type() {
        Some(ty) => {
            c.int("QK", ty.block_elems() as i64).int("BLOCK_BYTES", ty.block_bytes() as i64);
            quant_fragments(ty)
        }
        None => Vec::new(),
    };
    let block_fragments = fragments.len();
    match *spec {
        KernelSpec::QuantizeQ8_1 | KernelSpec::RmsNormQ8_1 { .. } => fragments.extend([t::Q_Q8_1, t::Q8_1_WRITE]),
        KernelSpec::MatVecQ8 { wtype, .. } => {
            fragments.push(t::Q_Q8_1);
            fragments.extend(int8_fragments(wtype));
        }
        KernelSpec::MatVecQ8Multi { .. } => fragments.push(t::Q_Q8_1),
        KernelSpec::Glu { .. } => fragments.push(t::GLU_ACT),
        KernelSpec::GluQ8_1 { .. } => fragments.extend([t::Q_Q8_1, t::Q8_1_WRITE, t::GLU_ACT]),
        KernelSpec::KvAppend { .. } | KernelSpec::RopeKv { .. } => fragments.push(t::KV_STORE),
        KernelSpec::FlashAttn { head_dim, .. } if flash_on_matrix_unit(head_dim, target.matrix != MatrixUnit::None) => {
            fragments.push(t::MMA_F16)
        }
        KernelSpec::GemmF16 { .. } => {
            if target.matrix != MatrixUnit::None {
                fragments.push(t::MMA_F16);
            }
            if target.wgmma {
                fragments.push(t::WGMMA);
            }
            fragments.push(t::ASYNC_COPY);
        }
        KernelSpec::MatMulQ8 { wtype, .. } => {
            fragments.push(t::Q_Q8_1);
            fragments.extend(int8_fragments(wtype));
            fragments.push(t::MMA);
            fragments.push(t::ASYNC_COPY);
            fragments.push(mmq_fragment(wtype));
        }
        _ => {}
    }

    let entry = spec.entry_name();
    let prelude = match target.dialect {
        Dialect::Hip => t::PRELUDE_HIP,
        Dialect::Cuda => t::PRELUDE_CUDA,
    };
    let mut src = String::new();
    let _ =
        writeln!(src, "// rocmforge kernel {entry}: template {}, generated; edit kernel_templates/ instead.", body.0);
    let _ = writeln!(src, "#define KERNEL_NAME {entry}");
    // What the target can do (the jit layer's capability table): MFMA and WMMA hold the
    // generation (CDNA 1-4, RDNA 3-4), the others 0 or 1.
    for (name, value) in target.defines() {
        let _ = writeln!(src, "#define {name} {value}");
    }
    for (_, line) in &c.0 {
        src.push_str(line);
        src.push('\n');
    }
    let section = |src: &mut String, tpl: Template| {
        let _ = writeln!(src, "\n// ---- {} ----", tpl.0);
        src.push_str(tpl.1.trim_end());
        src.push('\n');
    };
    section(&mut src, prelude);
    section(&mut src, t::COMMON);
    for f in &fragments[..block_fragments] {
        section(&mut src, *f);
    }
    if block_fragments > 0 {
        // The device-side block layout must be the Rust one (src/quant): checked by the compiler.
        src.push_str(
            "static_assert(sizeof(block_t) == BLOCK_BYTES, \"block_t size differs from the Rust block\");\n\
             static_assert(QK_FRAGMENT == QK, \"block_t element count differs from the Rust block\");\n",
        );
    }
    for f in &fragments[block_fragments..] {
        section(&mut src, *f);
    }
    if let KernelSpec::MatVecQ8 { wtype, .. } = *spec {
        // The grid's default layout counts the units the fragment splits a block into.
        let _ = writeln!(
            src,
            "static_assert(VDQ_UNITS == {}, \"VDQ_UNITS differs from mmvq_units_per_block\");",
            super::spec::mmvq_units_per_block(wtype)
        );
    }
    if let KernelSpec::DequantF16 { wtype, .. } = *spec {
        // The launch's grid counts the runs dequant_part writes.
        let _ = writeln!(
            src,
            "static_assert(PART == {}, \"PART differs from launch::dequant_run\");",
            super::launch::dequant_run(wtype)
        );
    }
    if let KernelSpec::MatVecQ8Multi { k, wtypes, .. } = *spec {
        render_segments(&mut src, k, wtypes);
    }
    section(&mut src, body);
    Ok(RenderedKernel { spec: *spec, entry, source: src, block_threads: spec.block_threads(ws) })
}

/// The segments of a fused int8 matvec, each in its namespace `seg<i>`: its block constants and
/// layout, its weight type's block and int8 fragments, and the `Seg` type the kernel takes. An
/// unused segment aliases `seg0` (the kernel gives it no rows).
fn render_segments(src: &mut String, k: u32, wtypes: [Option<GgmlType>; 3]) {
    for (i, ty) in wtypes.iter().enumerate() {
        let Some(ty) = *ty else {
            let _ = writeln!(src, "\nnamespace seg{i} = seg0;");
            continue;
        };
        let l = MmvqLayout::default_for(ty, k);
        let _ = writeln!(src, "\n// ---- segment {i}: {} ----\nnamespace seg{i} {{", ty.name());
        let _ = writeln!(src, "constexpr int QK = {};", ty.block_elems());
        let _ = writeln!(src, "constexpr int BLOCK_BYTES = {};", ty.block_bytes());
        let _ = writeln!(src, "constexpr int THREADS_PER_ROW = {};", l.threads_per_row);
        let _ = writeln!(src, "constexpr int ROWS_PER_THREAD = {};", l.rows_per_thread);
        for f in quant_fragments(ty) {
            src.push_str(f.1.trim_end());
            src.push('\n');
        }
        src.push_str(
            "static_assert(sizeof(block_t) == BLOCK_BYTES, \"block_t size differs from the Rust block\");\n\
             static_assert(QK_FRAGMENT == QK, \"block_t element count differs from the Rust block\");\n",
        );
        for f in int8_fragments(ty) {
            src.push_str(f.1.trim_end());
            src.push('\n');
        }
        let _ = writeln!(
            src,
            "static_assert(VDQ_UNITS == {}, \"VDQ_UNITS differs from mmvq_units_per_block\");",
            super::spec::mmvq_units_per_block(ty)
        );
        src.push_str(t::MMVQ_SEGMENT.1.trim_end());
        let _ = writeln!(src, "\n}} // namespace seg{i}");
    }
}

/// The fragments that define `block_t` and `dequant_part` for a weight type.
fn quant_fragments(ty: GgmlType) -> Vec<Template> {
    match ty {
        GgmlType::F32 => vec![t::Q_F32],
        GgmlType::F16 => vec![t::Q_F16],
        GgmlType::BF16 => vec![t::Q_BF16],
        GgmlType::Q8_0 => vec![t::Q_Q8_0],
        GgmlType::Q4_0 => vec![t::Q_Q4_0],
        GgmlType::Q4_1 => vec![t::Q_Q4_1],
        GgmlType::Q5_0 => vec![t::Q_Q5_0],
        GgmlType::Q5_1 => vec![t::Q_Q5_1],
        GgmlType::Q4_K => vec![t::Q_K_SCALES, t::Q_Q4_K],
        GgmlType::Q5_K => vec![t::Q_K_SCALES, t::Q_Q5_K],
        GgmlType::Q6_K => vec![t::Q_Q6_K],
        GgmlType::Q2_K => vec![t::Q_Q2_K],
        GgmlType::Q3_K => vec![t::Q_Q3_K],
        GgmlType::IQ4_NL => vec![t::Q_IQ4_TABLE, t::Q_IQ4_NL],
        GgmlType::IQ4_XS => vec![t::Q_IQ4_TABLE, t::Q_IQ4_XS],
        other => unreachable!("validate() refuses {other}"),
    }
}

/// The fragment that defines `mmq_w_int` and `mmq_w_scale` (a weight row unpacked to int8 chunks
/// of 32 and their scales) for a weight type the int8 matrix product takes.
fn mmq_fragment(ty: GgmlType) -> Template {
    match ty {
        GgmlType::Q8_0 => t::MMQ_Q8_0,
        GgmlType::Q4_0 => t::MMQ_Q4_0,
        GgmlType::Q4_1 => t::MMQ_Q4_1,
        GgmlType::Q5_0 => t::MMQ_Q5_0,
        GgmlType::Q5_1 => t::MMQ_Q5_1,
        GgmlType::Q4_K => t::MMQ_Q4_K,
        GgmlType::Q5_K => t::MMQ_Q5_K,
        GgmlType::Q6_K => t::MMQ_Q6_K,
        other => unreachable!("validate() refuses an int8 matrix product over {other}"),
    }
}

/// The fragments that define `VDQ_UNITS` and `vec_dot_q8_1` (a weight block's int8 dot with its
/// q8_1 activation blocks) for a weight type the int8 matvec takes.
fn int8_fragments(ty: GgmlType) -> Vec<Template> {
    match ty {
        GgmlType::Q8_0 => vec![t::Q8_1_Q8_0],
        GgmlType::Q4_0 => vec![t::Q8_1_Q4_0],
        GgmlType::Q4_1 => vec![t::Q8_1_Q4_1],
        GgmlType::Q5_0 => vec![t::Q8_1_Q5_0],
        GgmlType::Q5_1 => vec![t::Q8_1_Q5_1],
        GgmlType::Q4_K => vec![t::Q8_1_K4, t::Q8_1_Q4_K],
        GgmlType::Q5_K => vec![t::Q8_1_K4, t::Q8_1_Q5_K],
        GgmlType::Q6_K => vec![t::Q8_1_Q6_K],
        GgmlType::Q2_K => vec![t::Q8_1_Q2_K],
        GgmlType::Q3_K => vec![t::Q8_1_Q3_K],
        GgmlType::IQ4_NL => vec![t::Q8_1_IQ4, t::Q8_1_IQ4_NL],
        GgmlType::IQ4_XS => vec![t::Q8_1_IQ4, t::Q8_1_IQ4_XS],
        other => unreachable!("validate() refuses an int8 matvec over {other}"),
    }
}
