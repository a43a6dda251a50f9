// kv_append: copy this pass's K and V rows (n_tokens rows of `row` floats) into the f32 caches at
// positions pos0 .. pos0 + n_tokens - 1.
RF_KERNEL void __launch_bounds__(256)
KERNEL_NAME(const float* __restrict__ k, const float* __restrict__ v, float* __restrict__ k_cache,
            float* __restrict__ v_cache, int row, int n_tokens, int pos0) {
    const long long i = (long long)blockIdx.x * 256 + threadIdx.x;
    if (i >= (long long)row * n_tokens) return;
    const long long dst = (long long)pos0 * row + i;
    k_cache[dst] = k[i];
    v_cache[dst] = v[i];
}
