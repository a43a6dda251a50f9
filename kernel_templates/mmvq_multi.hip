// mmvq_multi (decode, int8): up to three int8 matvecs over the same q8_1 input in one grid — the
// Q, K and V projections, or gate and up. Segment i (namespace seg<i>, its own weight type and
// layout) takes the first blocks after segment i-1's; within a segment a block runs mmvq.hip's
// body (same units, same sums in the same order), then adds the row's bias when HAS_BIAS (the
// one rounding add_bias makes). An unused segment has no rows (its namespace aliases seg0).
template <int LANES>
__device__ __forceinline__ float lanes_sum(float v) {
#pragma unroll
    for (int m = LANES / 2; m > 0; m >>= 1) v += rf_shfl_xor(v, m);
    return v;
}

template <class S>
__device__ __forceinline__ void mmvq_segment(const u8* __restrict__ wb, const block_q8_1* __restrict__ a,
                                             float* __restrict__ y, const float* __restrict__ bias, int n_rows,
                                             int blk) {
    typedef typename S::Block block_t;
    const block_t* w = (const block_t*)wb;
    constexpr int BLOCKS_PER_ROW = K / S::QK_;
    constexpr int UNITS = BLOCKS_PER_ROW * S::UNITS_PER_BLOCK;
    constexpr int Q8_PER_BLOCK = S::QK_ / 32;
    constexpr int TPR = S::THREADS, RPT = S::ROWS;
    constexpr int GROUPS = MMVQ_THREADS / TPR;
    constexpr int LANES = TPR < WARP_SIZE ? TPR : WARP_SIZE;
    constexpr int WARPS_PER_ROW = TPR / LANES;
    const int group = threadIdx.x / TPR, t = threadIdx.x % TPR;
    const int row0 = (blk * GROUPS + group) * RPT;
    float acc[RPT];
#pragma unroll
    for (int r = 0; r < RPT; ++r) acc[r] = 0.0f;
    for (int u = t; u < UNITS; u += TPR) {
        const int b = u / S::UNITS_PER_BLOCK, unit = u % S::UNITS_PER_BLOCK;
        const block_q8_1* ab = a + b * Q8_PER_BLOCK;
#pragma unroll
        for (int r = 0; r < RPT; ++r) {
            if (row0 + r < n_rows) acc[r] += S::dot(w + (long long)(row0 + r) * BLOCKS_PER_ROW + b, ab, unit);
        }
    }
#pragma unroll
    for (int r = 0; r < RPT; ++r) acc[r] = lanes_sum<LANES>(acc[r]);
    if (WARPS_PER_ROW > 1) {
        __shared__ float part[MMVQ_THREADS / LANES][RPT];
        const int warp = threadIdx.x / LANES;
        if (threadIdx.x % LANES == 0) {
#pragma unroll
            for (int r = 0; r < RPT; ++r) part[warp][r] = acc[r];
        }
        __syncthreads();
        if (t < RPT && row0 + t < n_rows) {
            float s = 0.0f;
#pragma unroll
            for (int i = 0; i < WARPS_PER_ROW; ++i) s += part[group * WARPS_PER_ROW + i][t];
            y[row0 + t] = HAS_BIAS ? s + bias[row0 + t] : s;
        }
    } else if (t == 0) {
#pragma unroll
        for (int r = 0; r < RPT; ++r) {
            if (row0 + r < n_rows) y[row0 + r] = HAS_BIAS ? acc[r] + bias[row0 + r] : acc[r];
        }
    }
}

RF_KERNEL void __launch_bounds__(MMVQ_THREADS)
KERNEL_NAME(const u8* __restrict__ w0, const u8* __restrict__ w1, const u8* __restrict__ w2,
            const block_q8_1* __restrict__ a, float* __restrict__ y0, float* __restrict__ y1, float* __restrict__ y2,
            const float* __restrict__ b0, const float* __restrict__ b1, const float* __restrict__ b2, int n_rows0,
            int n_rows1, int n_rows2) {
    rf_grid_wait();
    const int nb0 = (n_rows0 + seg0::Seg::ROWS_PER_BLOCK - 1) / seg0::Seg::ROWS_PER_BLOCK;
    const int nb1 = (n_rows1 + seg1::Seg::ROWS_PER_BLOCK - 1) / seg1::Seg::ROWS_PER_BLOCK;
    const int blk = blockIdx.x;
    if (blk < nb0) {
        mmvq_segment<seg0::Seg>(w0, a, y0, b0, n_rows0, blk);
    } else if (blk < nb0 + nb1) {
        mmvq_segment<seg1::Seg>(w1, a, y1, b1, n_rows1, blk - nb0);
    } else {
        mmvq_segment<seg2::Seg>(w2, a, y2, b2, n_rows2, blk - nb0 - nb1);
    }
}
