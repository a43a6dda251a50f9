// rmsnorm_q8_1 (int8 decode): the residual add, RMSNorm and q8_1 quantize of the next matvec's
// input in one launch. x[r, :] += d[r, :] first when RESIDUAL (written back: the residual stream);
// then y[r, :] = x[r, :] / sqrt(mean(x[r, :]^2) + eps) * (w (+ 1 when ADD_ONE)), each step as
// elementwise.hip and rmsnorm.hip compute it (same sums in the same order), written as floats
// and as q8_1 blocks of those same floats, with their scale terms `ds` (quant/q8_1_write.h). One
// block per row; rows of N floats, N a multiple of 32. The sum of squares runs on the first
// SUM_THREADS threads, rmsnorm's block size, so it adds in rmsnorm's order (the other threads add
// exact zeros at the end); the norm and the quantize then spread over all BLOCK_THREADS (a single
// block per row: on a 4096-wide row a 256-thread block spent most of the launch quantizing).
RF_KERNEL void __launch_bounds__(BLOCK_THREADS)
KERNEL_NAME(float* __restrict__ x, const float* __restrict__ d, const float* __restrict__ w, float* __restrict__ y,
            block_q8_1* __restrict__ q, float2* __restrict__ ds, float eps) {
    rf_grid_wait();
    __shared__ float scratch[BLOCK_THREADS / WARP_SIZE];
    float* xr = x + (long long)blockIdx.x * N;
    float* yr = y + (long long)blockIdx.x * N;
    block_q8_1* qr = q + (long long)blockIdx.x * (N / 32);
    float2* dsr = ds + (long long)blockIdx.x * (N / 32);
    float ss = 0.0f;
    if (threadIdx.x < SUM_THREADS) {
        for (int i = threadIdx.x; i < N; i += SUM_THREADS) {
            float v = xr[i];
            if (RESIDUAL) {
                v = v + d[(long long)blockIdx.x * N + i];
                xr[i] = v;
            }
            ss += v * v;
        }
    }
    // block_sum's barriers also make the residual sums written above visible to every thread.
    ss = block_sum<BLOCK_THREADS>(ss, scratch);
    const float inv = rsqrtf(ss / (float)N + eps);
    // N is whole groups of 32: a group stays or leaves the loop together, so its shuffles see all
    // 32 lanes.
    for (int i = threadIdx.x; i < N; i += BLOCK_THREADS) {
        const float g = ADD_ONE ? w[i] + 1.0f : w[i];
        const float v = xr[i] * inv * g;
        yr[i] = v;
        quantize_q8_1_lane(v, qr + i / 32, dsr + i / 32, threadIdx.x % 32);
    }
}
