// convert_f16 (prefill): each row of x (a token's K values) scaled by a power of two and rounded
// to f16 (nearest, ties to even), the activations gemm_f16.hip multiplies, and the inverse of that
// scale per row. The scale brings the row's largest |x| into [2^14, 2^15), so no value overflows
// f16 (whose largest is 65504; a GLU's output can pass it) and small rows keep f16's full
// precision; scaling by a power of two is exact, and gemm_f16 undoes it exactly. One block a row.
RF_KERNEL void __launch_bounds__(BLOCK_THREADS)
KERNEL_NAME(const float* __restrict__ x, u16* __restrict__ out, float* __restrict__ inv_scale, int k) {
    rf_grid_wait();
    __shared__ float red[BLOCK_THREADS / 32];
    const float* xr = x + (long long)blockIdx.x * k;
    u16* o = out + (long long)blockIdx.x * k;
    float m = 0.0f;
    for (int i = threadIdx.x; i < k; i += BLOCK_THREADS) m = fmaxf(m, fabsf(xr[i]));
    for (int s = 16; s > 0; s >>= 1) m = fmaxf(m, rf_shfl_xor(m, s));   // lanes in groups of 32
    if (threadIdx.x % 32 == 0) red[threadIdx.x / 32] = m;
    __syncthreads();
    m = 0.0f;
    for (int i = 0; i < BLOCK_THREADS / 32; ++i) m = fmaxf(m, red[i]);
    // frexpf: m in [2^(e-1), 2^e), so m·2^(15 - e) lies in [2^14, 2^15); the exponent is kept
    // within f32's normal range. A row of zeros, infinities or NaN keeps the scale 1 (and its
    // values, as the f32 product would).
    int e = 15;
    if (m > 0.0f && m <= 3.4e38f) frexpf(m, &e);
    const int p = min(100, max(-100, 15 - e));
    const float scale = ldexpf(1.0f, p);
    for (int i = threadIdx.x; i < k; i += BLOCK_THREADS) o[i] = rf_float_to_half(xr[i] * scale);
    if (threadIdx.x == 0) inv_scale[blockIdx.x] = ldexpf(1.0f, -p);
}
