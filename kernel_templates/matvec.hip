// matvec (decode): y[n] = sum_k W[n, k] * x[k], W rows of K elements in the quant format.
// One warp per row, ROWS_PER_BLOCK rows per block; lanes stride over (block, part) units.
RF_KERNEL void __launch_bounds__(ROWS_PER_BLOCK * WARP_SIZE)
KERNEL_NAME(const block_t* __restrict__ w, const float* __restrict__ x, float* __restrict__ y, int n_rows) {
    constexpr int BLOCKS_PER_ROW = K / QK;
    constexpr int NPART = QK / PART;
    const int row = blockIdx.x * ROWS_PER_BLOCK + threadIdx.x / WARP_SIZE;
    const int lane = threadIdx.x % WARP_SIZE;
    if (row >= n_rows) return;
    const block_t* wr = w + (long long)row * BLOCKS_PER_ROW;
    float acc = 0.0f;
    for (int u = lane; u < BLOCKS_PER_ROW * NPART; u += WARP_SIZE) {
        const int blk = u / NPART, part = u % NPART;
        float v[PART];
        dequant_part(wr + blk, part, v);
        const float* xs = x + blk * QK + part * PART;
#pragma unroll
        for (int i = 0; i < PART; ++i) acc += v[i] * xs[i];
    }
    acc = warp_sum(acc);
    if (lane == 0) y[row] = acc;
}
