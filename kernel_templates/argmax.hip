// argmax over n floats; one block writes the index of the largest (the lowest index on ties).
RF_KERNEL void __launch_bounds__(BLOCK_THREADS)
KERNEL_NAME(const float* __restrict__ x, int* __restrict__ out, int n) {
    rf_grid_wait();
    __shared__ float best_v[BLOCK_THREADS];
    __shared__ int best_i[BLOCK_THREADS];
    float bv = RF_NEG_INF;
    int bi = 0x7fffffff;
    for (int i = threadIdx.x; i < n; i += BLOCK_THREADS) {
        if (x[i] > bv) { bv = x[i]; bi = i; }
    }
    best_v[threadIdx.x] = bv;
    best_i[threadIdx.x] = bi;
    __syncthreads();
    for (int s = BLOCK_THREADS / 2; s > 0; s >>= 1) {
        if (threadIdx.x < s) {
            const float ov = best_v[threadIdx.x + s];
            const int oi = best_i[threadIdx.x + s];
            if (ov > best_v[threadIdx.x] || (ov == best_v[threadIdx.x] && oi < best_i[threadIdx.x])) {
                best_v[threadIdx.x] = ov;
                best_i[threadIdx.x] = oi;
            }
        }
        __syncthreads();
    }
    if (threadIdx.x == 0) *out = best_i[0] == 0x7fffffff ? 0 : best_i[0];
}
