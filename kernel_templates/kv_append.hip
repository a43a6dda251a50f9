// kv_append: copy this pass's K and V rows (n_tokens rows of `row` floats) into the caches at the
// tokens' positions pos[t] (kv_store.h: f32, or f16 rounded to nearest even). The positions come
// from the device, so a decode graph runs at any position unchanged; each is clamped to
// [0, max_pos0 + t], the cache rows the host checked the launch against.
RF_KERNEL void __launch_bounds__(256)
KERNEL_NAME(const float* __restrict__ k, const float* __restrict__ v, kv_t* __restrict__ k_cache,
            kv_t* __restrict__ v_cache, const int* __restrict__ pos, int row, int n_tokens, int max_pos0) {
    rf_grid_wait();
    const long long i = (long long)blockIdx.x * 256 + threadIdx.x;
    if (i >= (long long)row * n_tokens) return;
    const int t = (int)(i / row);
    const int p = max(0, min(pos[t], max_pos0 + t));
    const long long dst = (long long)p * row + (i - (long long)t * row);
    kv_store(k_cache + dst, k[i]);
    kv_store(v_cache + dst, v[i]);
}
