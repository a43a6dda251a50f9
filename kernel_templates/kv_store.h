// Storing into a KV cache of kv_t (rendered): f32 copies, or f16 rounded to nearest, ties to even
// (rf_float_to_half; the CPU device rounds the same way).
__device__ __forceinline__ void kv_store(float* dst, float x) { *dst = x; }
__device__ __forceinline__ void kv_store(u16* dst, float x) { *dst = rf_float_to_half(x); }
