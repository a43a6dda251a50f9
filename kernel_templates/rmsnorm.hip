// rmsnorm: y[r, :] = x[r, :] / sqrt(mean(x[r, :]^2) + eps) * (w (+ 1 when ADD_ONE)).
// One block per row; rows of N floats. In place is allowed (y == x).
RF_KERNEL void __launch_bounds__(BLOCK_THREADS)
KERNEL_NAME(const float* x, const float* __restrict__ w, float* y, float eps) {
    rf_grid_wait();
    __shared__ float scratch[BLOCK_THREADS / WARP_SIZE];
    const float* xr = x + (long long)blockIdx.x * N;
    float* yr = y + (long long)blockIdx.x * N;
    float ss = 0.0f;
    for (int i = threadIdx.x; i < N; i += BLOCK_THREADS) ss += xr[i] * xr[i];
    ss = block_sum<BLOCK_THREADS>(ss, scratch);
    const float inv = rsqrtf(ss / (float)N + eps);
    for (int i = threadIdx.x; i < N; i += BLOCK_THREADS) {
        const float g = ADD_ONE ? w[i] + 1.0f : w[i];
        yr[i] = xr[i] * inv * g;
    }
}
