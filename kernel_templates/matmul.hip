// matmul (prefill): Y[t, n] = sum_k W[n, k] * X[t, k] for T tokens. Each warp takes one weight row
// and TOKENS_PER_WARP tokens, so every dequantized weight is used TOKENS_PER_WARP times.
// Grid: (ceil(n_rows / ROWS_PER_BLOCK), ceil(n_tokens / TOKENS_PER_WARP)).
RF_KERNEL void __launch_bounds__(ROWS_PER_BLOCK * WARP_SIZE)
KERNEL_NAME(const block_t* __restrict__ w, const float* __restrict__ x, float* __restrict__ y, int n_rows, int n_tokens) {
    constexpr int BLOCKS_PER_ROW = K / QK;
    constexpr int NPART = QK / PART;
    const int row = blockIdx.x * ROWS_PER_BLOCK + threadIdx.x / WARP_SIZE;
    const int lane = threadIdx.x % WARP_SIZE;
    const int t0 = blockIdx.y * TOKENS_PER_WARP;
    if (row >= n_rows) return;
    const int nt = min(TOKENS_PER_WARP, n_tokens - t0);
    const block_t* wr = w + (long long)row * BLOCKS_PER_ROW;
    float acc[TOKENS_PER_WARP];
#pragma unroll
    for (int t = 0; t < TOKENS_PER_WARP; ++t) acc[t] = 0.0f;
    for (int u = lane; u < BLOCKS_PER_ROW * NPART; u += WARP_SIZE) {
        const int blk = u / NPART, part = u % NPART;
        float v[PART];
        dequant_part(wr + blk, part, v);
        const int k0 = blk * QK + part * PART;
#pragma unroll
        for (int t = 0; t < TOKENS_PER_WARP; ++t) {
            if (t < nt) {
                const float* xs = x + (long long)(t0 + t) * K + k0;
#pragma unroll
                for (int i = 0; i < PART; ++i) acc[t] += v[i] * xs[i];
            }
        }
    }
#pragma unroll
    for (int t = 0; t < TOKENS_PER_WARP; ++t) {
        const float s = warp_sum(acc[t]);
        if (lane == 0 && t < nt) y[(long long)(t0 + t) * n_rows + row] = s;
    }
}
