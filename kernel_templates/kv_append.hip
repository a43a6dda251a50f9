// kv_append: copy this pass's K and V rows (n_tokens rows of `row` floats) into the caches at
// positions pos0 .. pos0 + n_tokens - 1. The caches hold kv_t (rendered): f32 copies, or f16
// rounded to nearest, ties to even (as __float2half; the CPU device rounds the same way).
#ifdef RF_BACKEND_CUDA
__device__ __forceinline__ u16 kv_half(float f) {
    u16 h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f));
    return h;
}
#else
__device__ __forceinline__ u16 kv_half(float f) { return __builtin_bit_cast(u16, (_Float16)f); }
#endif
__device__ __forceinline__ void kv_store(float* dst, float x) { *dst = x; }
__device__ __forceinline__ void kv_store(u16* dst, float x) { *dst = kv_half(x); }

RF_KERNEL void __launch_bounds__(256)
KERNEL_NAME(const float* __restrict__ k, const float* __restrict__ v, kv_t* __restrict__ k_cache,
            kv_t* __restrict__ v_cache, int row, int n_tokens, int pos0) {
    const long long i = (long long)blockIdx.x * 256 + threadIdx.x;
    if (i >= (long long)row * n_tokens) return;
    const long long dst = (long long)pos0 * row + i;
    kv_store(k_cache + dst, k[i]);
    kv_store(v_cache + dst, v[i]);
}
