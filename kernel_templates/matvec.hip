// matvec (decode): y[n] = sum_k W[n, k] * x[k], W rows of K elements in the quant format.
// One warp per row, ROWS_PER_BLOCK rows per block. The row is walked in 256-element chunks, each
// taken by 32 lanes (a wave64 takes two chunks at once): lane l dequantizes elements l + 32j, so
// the weights' bytes and x are read contiguously across the lanes. Rows whose length is not a
// whole number of chunks (32-element formats) finish block by block.
RF_KERNEL void __launch_bounds__(ROWS_PER_BLOCK * WARP_SIZE)
KERNEL_NAME(const block_t* __restrict__ w, const float* __restrict__ x, float* __restrict__ y, int n_rows) {
    rf_grid_wait();
    constexpr int BLOCKS_PER_ROW = K / QK;
    constexpr int BLOCKS_PER_CHUNK = 256 / QK;
    constexpr int FULL_CHUNKS = K / 256;
    constexpr int GROUPS = WARP_SIZE / 32;
    const int row = blockIdx.x * ROWS_PER_BLOCK + threadIdx.x / WARP_SIZE;
    const int lane = threadIdx.x % WARP_SIZE, lane32 = lane % 32;
    if (row >= n_rows) return;
    const block_t* wr = w + (long long)row * BLOCKS_PER_ROW;
    float acc = 0.0f;
    for (int c = lane / 32; c < FULL_CHUNKS; c += GROUPS) {
        float v[8];
        dequant_lane8(wr + c * BLOCKS_PER_CHUNK, lane32, v);
        const float* xs = x + c * 256 + lane32;
#pragma unroll
        for (int j = 0; j < 8; ++j) acc += v[j] * xs[32 * j];
    }
    if (K % 256 != 0) {
        constexpr int TAIL = FULL_CHUNKS * BLOCKS_PER_CHUNK;
        constexpr int NPART = QK / PART;
        for (int u = lane; u < (BLOCKS_PER_ROW - TAIL) * NPART; u += WARP_SIZE) {
            const int blk = TAIL + u / NPART, part = u % NPART;
            float v[PART];
            dequant_part(wr + blk, part, v);
            const float* xs = x + blk * QK + part * PART;
#pragma unroll
            for (int i = 0; i < PART; ++i) acc += v[i] * xs[i];
        }
    }
    acc = warp_sum(acc);
    if (lane == 0) y[row] = acc;
}
