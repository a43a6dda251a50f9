// softmax over rows of n floats, in place allowed. One block per row.
RF_KERNEL void __launch_bounds__(BLOCK_THREADS)
KERNEL_NAME(const float* x, float* y, int n) {
    __shared__ float scratch[BLOCK_THREADS / WARP_SIZE];
    const float* xr = x + (long long)blockIdx.x * n;
    float* yr = y + (long long)blockIdx.x * n;
    float m = RF_NEG_INF;
    for (int i = threadIdx.x; i < n; i += BLOCK_THREADS) m = fmaxf(m, xr[i]);
    // block max through the same scratch: negate-sum would lose precision, so reduce by warps.
    m = warp_max(m);
    __syncthreads();
    if (threadIdx.x % WARP_SIZE == 0) scratch[threadIdx.x / WARP_SIZE] = m;
    __syncthreads();
    m = RF_NEG_INF;
    for (int w = 0; w < BLOCK_THREADS / WARP_SIZE; ++w) m = fmaxf(m, scratch[w]);
    float s = 0.0f;
    for (int i = threadIdx.x; i < n; i += BLOCK_THREADS) s += expf(xr[i] - m);
    s = block_sum<BLOCK_THREADS>(s, scratch);
    const float inv = 1.0f / s;
    for (int i = threadIdx.x; i < n; i += BLOCK_THREADS) yr[i] = expf(xr[i] - m) * inv;
}
