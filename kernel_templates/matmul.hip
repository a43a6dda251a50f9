// matmul (prefill): Y[t, n] = sum_k W[n, k] * X[t, k] for T tokens. Each warp takes one weight row
// and TOKENS_PER_WARP tokens, so every dequantized weight is used TOKENS_PER_WARP times; weights
// and X are read as in matvec (256-element chunks, lane l on elements l + 32j: contiguous across
// the lanes). Grid: (ceil(n_rows / ROWS_PER_BLOCK), ceil(n_tokens / TOKENS_PER_WARP)).
RF_KERNEL void __launch_bounds__(ROWS_PER_BLOCK * WARP_SIZE)
KERNEL_NAME(const block_t* __restrict__ w, const float* __restrict__ x, float* __restrict__ y, int n_rows, int n_tokens) {
    rf_grid_wait();
    constexpr int BLOCKS_PER_ROW = K / QK;
    constexpr int BLOCKS_PER_CHUNK = 256 / QK;
    constexpr int FULL_CHUNKS = K / 256;
    constexpr int GROUPS = WARP_SIZE / 32;
    const int row = blockIdx.x * ROWS_PER_BLOCK + threadIdx.x / WARP_SIZE;
    const int lane = threadIdx.x % WARP_SIZE, lane32 = lane % 32;
    const int t0 = blockIdx.y * TOKENS_PER_WARP;
    if (row >= n_rows) return;
    const int nt = min(TOKENS_PER_WARP, n_tokens - t0);
    const block_t* wr = w + (long long)row * BLOCKS_PER_ROW;
    const float* xt = x + (long long)t0 * K;
    float acc[TOKENS_PER_WARP];
#pragma unroll
    for (int t = 0; t < TOKENS_PER_WARP; ++t) acc[t] = 0.0f;
    for (int c = lane / 32; c < FULL_CHUNKS; c += GROUPS) {
        float v[8];
        dequant_lane8(wr + c * BLOCKS_PER_CHUNK, lane32, v);
#pragma unroll
        for (int t = 0; t < TOKENS_PER_WARP; ++t) {
            if (t < nt) {
                const float* xs = xt + (long long)t * K + c * 256 + lane32;
#pragma unroll
                for (int j = 0; j < 8; ++j) acc[t] += v[j] * xs[32 * j];
            }
        }
    }
    if (K % 256 != 0) {
        constexpr int TAIL = FULL_CHUNKS * BLOCKS_PER_CHUNK;
        constexpr int NPART = QK / PART;
        for (int u = lane; u < (BLOCKS_PER_ROW - TAIL) * NPART; u += WARP_SIZE) {
            const int blk = TAIL + u / NPART, part = u % NPART;
            float v[PART];
            dequant_part(wr + blk, part, v);
            const int k0 = blk * QK + part * PART;
#pragma unroll
            for (int t = 0; t < TOKENS_PER_WARP; ++t) {
                if (t < nt) {
                    const float* xs = xt + (long long)t * K + k0;
#pragma unroll
                    for (int i = 0; i < PART; ++i) acc[t] += v[i] * xs[i];
                }
            }
        }
    }
#pragma unroll
    for (int t = 0; t < TOKENS_PER_WARP; ++t) {
        const float s = warp_sum(acc[t]);
        if (lane == 0 && t < nt) y[(long long)(t0 + t) * n_rows + row] = s;
    }
}
