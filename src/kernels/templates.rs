//! The template files, compiled into the binary so that rendering needs no files at run time.

macro_rules! template {
    ($path:literal) => {
        ($path, include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/kernel_templates/", $path)))
    };
}

/// (path under kernel_templates/, contents)
pub type Template = (&'static str, &'static str);

pub const PRELUDE_HIP: Template = template!("prelude_hip.h");
pub const PRELUDE_CUDA: Template = template!("prelude_cuda.h");
pub const COMMON: Template = template!("common.h");

pub const EMBEDDING: Template = template!("embedding.hip");
pub const RMSNORM: Template = template!("rmsnorm.hip");
pub const ROPE: Template = template!("rope.hip");
pub const MATVEC: Template = template!("matvec.hip");
pub const MATMUL: Template = template!("matmul.hip");
pub const ATTENTION: Template = template!("attention.hip");
pub const ATTN_DECODE: Template = template!("attn_decode.hip");
pub const GLU: Template = template!("glu.hip");
pub const ELEMENTWISE: Template = template!("elementwise.hip");
pub const KV_APPEND: Template = template!("kv_append.hip");
pub const ARGMAX: Template = template!("argmax.hip");
pub const QUANTIZE_Q8_1: Template = template!("quantize_q8_1.hip");
pub const MMVQ: Template = template!("mmvq.hip");
pub const RMSNORM_Q8_1: Template = template!("rmsnorm_q8_1.hip");
pub const MMVQ_MULTI: Template = template!("mmvq_multi.hip");
pub const MMVQ_SEGMENT: Template = template!("mmvq_segment.h");
pub const ROPE_KV: Template = template!("rope_kv.hip");
pub const GLU_Q8_1: Template = template!("glu_q8_1.hip");
pub const GLU_ACT: Template = template!("glu_act.h");
pub const KV_STORE: Template = template!("kv_store.h");
pub const MMQ: Template = template!("mmq.hip");
pub const DEQUANT_F16: Template = template!("dequant_f16.hip");
pub const CONVERT_F16: Template = template!("convert_f16.hip");
pub const GEMM_F16: Template = template!("gemm_f16.hip");
pub const FLASH_ATTN: Template = template!("flash_attn.hip");
/// Flash attention on the matrix units (f16 products), over [`MMA_F16`].
pub const FLASH_ATTN_MMA: Template = template!("flash_attn_mma.hip");
/// The matrix units' fragment layouts (mma.sync, MFMA, WMMA, or int8 dots without one).
pub const MMA: Template = template!("mma.h");
/// 16-byte copies from global to shared memory, asynchronous where the target has them.
pub const ASYNC_COPY: Template = template!("async_copy.h");
/// The matrix units' f16 tile products of flash attention (mma.sync, MFMA, WMMA).
pub const MMA_F16: Template = template!("mma_f16.h");
/// Hopper's warpgroup products (wgmma, sm_90a) of `gemm_f16`'s large tile.
pub const WGMMA: Template = template!("wgmma.h");

pub const Q_F32: Template = template!("quant/f32.h");
pub const Q_F16: Template = template!("quant/f16.h");
pub const Q_BF16: Template = template!("quant/bf16.h");
pub const Q_Q8_0: Template = template!("quant/q8_0.h");
pub const Q_Q4_0: Template = template!("quant/q4_0.h");
pub const Q_Q4_1: Template = template!("quant/q4_1.h");
pub const Q_Q5_0: Template = template!("quant/q5_0.h");
pub const Q_Q5_1: Template = template!("quant/q5_1.h");
pub const Q_K_SCALES: Template = template!("quant/k_scales.h");
pub const Q_Q4_K: Template = template!("quant/q4_k.h");
pub const Q_Q5_K: Template = template!("quant/q5_k.h");
pub const Q_Q6_K: Template = template!("quant/q6_k.h");
pub const Q_Q2_K: Template = template!("quant/q2_k.h");
pub const Q_Q3_K: Template = template!("quant/q3_k.h");
pub const Q_IQ4_TABLE: Template = template!("quant/iq4_table.h");
pub const Q_IQ4_NL: Template = template!("quant/iq4_nl.h");
pub const Q_IQ4_XS: Template = template!("quant/iq4_xs.h");

// The int8 path: the q8_1 activation block, and each weight type's dot with it.
pub const Q_Q8_1: Template = template!("quant/q8_1.h");
pub const Q8_1_WRITE: Template = template!("quant/q8_1_write.h");
pub const Q8_1_Q4_0: Template = template!("quant/q4_0_q8_1.h");
pub const Q8_1_Q4_1: Template = template!("quant/q4_1_q8_1.h");
pub const Q8_1_Q5_0: Template = template!("quant/q5_0_q8_1.h");
pub const Q8_1_Q5_1: Template = template!("quant/q5_1_q8_1.h");
pub const Q8_1_Q8_0: Template = template!("quant/q8_0_q8_1.h");
pub const Q8_1_K4: Template = template!("quant/k4_q8_1.h");
pub const Q8_1_Q4_K: Template = template!("quant/q4_k_q8_1.h");
pub const Q8_1_Q5_K: Template = template!("quant/q5_k_q8_1.h");
pub const Q8_1_Q6_K: Template = template!("quant/q6_k_q8_1.h");
pub const Q8_1_Q2_K: Template = template!("quant/q2_k_q8_1.h");
pub const Q8_1_Q3_K: Template = template!("quant/q3_k_q8_1.h");
pub const Q8_1_IQ4: Template = template!("quant/iq4_q8_1.h");
pub const Q8_1_IQ4_NL: Template = template!("quant/iq4_nl_q8_1.h");
pub const Q8_1_IQ4_XS: Template = template!("quant/iq4_xs_q8_1.h");

// The int8 matrix product: each weight type unpacked to int8 chunks with their scales.
pub const MMQ_Q4_0: Template = template!("quant/q4_0_mmq.h");
pub const MMQ_Q4_1: Template = template!("quant/q4_1_mmq.h");
pub const MMQ_Q5_0: Template = template!("quant/q5_0_mmq.h");
pub const MMQ_Q5_1: Template = template!("quant/q5_1_mmq.h");
pub const MMQ_Q8_0: Template = template!("quant/q8_0_mmq.h");
pub const MMQ_Q4_K: Template = template!("quant/q4_k_mmq.h");
pub const MMQ_Q5_K: Template = template!("quant/q5_k_mmq.h");
pub const MMQ_Q6_K: Template = template!("quant/q6_k_mmq.h");
