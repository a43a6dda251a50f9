// kv_append: copy this pass's K and V rows (n_tokens rows of `row` floats) into the caches at
// positions pos0 .. pos0 + n_tokens - 1 (kv_store.h: f32, or f16 rounded to nearest even).
RF_KERNEL void __launch_bounds__(256)
KERNEL_NAME(const float* __restrict__ k, const float* __restrict__ v, kv_t* __restrict__ k_cache,
            kv_t* __restrict__ v_cache, int row, int n_tokens, int pos0) {
    const long long i = (long long)blockIdx.x * 256 + threadIdx.x;
    if (i >= (long long)row * n_tokens) return;
    const long long dst = (long long)pos0 * row + i;
    kv_store(k_cache + dst, k[i]);
    kv_store(v_cache + dst, v[i]);
}
