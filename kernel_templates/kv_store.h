// Storing into a KV cache of kv_t (rendered): f32 copies, or f16 rounded to nearest, ties to even
// (as __float2half; the CPU device rounds the same way).
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
