// mmvq (decode, int8): y[n] = Σ_k W[n, k]·x[k] with x quantized to q8_1 blocks beforehand
// (quantize_q8_1.hip, once per input). Each weight block splits into VDQ_UNITS units (the quant
// fragment's vec_dot_q8_1: 16-byte runs of quants unpacked with shifts and masks, products through
// rf_dot4_i8, scales applied once per run). A block of MMVQ_THREADS threads holds GROUPS groups of
// THREADS_PER_ROW; a group takes ROWS_PER_THREAD consecutive rows, its threads striding over the
// rows' units (consecutive threads on consecutive units: contiguous weight bytes), so each thread
// keeps ROWS_PER_THREAD weight loads in flight and reads each activation run once for all of
// them. Sums go over the group's lanes, then over its warps through shared memory.
template <int LANES>
__device__ __forceinline__ float lanes_sum(float v) {
#pragma unroll
    for (int m = LANES / 2; m > 0; m >>= 1) v += rf_shfl_xor(v, m);
    return v;
}

RF_KERNEL void __launch_bounds__(MMVQ_THREADS)
KERNEL_NAME(const block_t* __restrict__ w, const block_q8_1* __restrict__ a, float* __restrict__ y, int n_rows) {
    rf_grid_wait();
    constexpr int BLOCKS_PER_ROW = K / QK;
    constexpr int UNITS = BLOCKS_PER_ROW * VDQ_UNITS;
    constexpr int Q8_PER_BLOCK = QK / 32;
    constexpr int GROUPS = MMVQ_THREADS / THREADS_PER_ROW;
    constexpr int LANES = THREADS_PER_ROW < WARP_SIZE ? THREADS_PER_ROW : WARP_SIZE;
    constexpr int WARPS_PER_ROW = THREADS_PER_ROW / LANES;
    const int group = threadIdx.x / THREADS_PER_ROW, t = threadIdx.x % THREADS_PER_ROW;
    const int row0 = (blockIdx.x * GROUPS + group) * ROWS_PER_THREAD;
    float acc[ROWS_PER_THREAD];
#pragma unroll
    for (int r = 0; r < ROWS_PER_THREAD; ++r) acc[r] = 0.0f;
    for (int u = t; u < UNITS; u += THREADS_PER_ROW) {
        const int blk = u / VDQ_UNITS, unit = u % VDQ_UNITS;
        const block_q8_1* ab = a + blk * Q8_PER_BLOCK;
#pragma unroll
        for (int r = 0; r < ROWS_PER_THREAD; ++r) {
            if (row0 + r < n_rows) acc[r] += vec_dot_q8_1(w + (long long)(row0 + r) * BLOCKS_PER_ROW + blk, ab, unit);
        }
    }
#pragma unroll
    for (int r = 0; r < ROWS_PER_THREAD; ++r) acc[r] = lanes_sum<LANES>(acc[r]);
    if (WARPS_PER_ROW > 1) {
        __shared__ float part[MMVQ_THREADS / LANES][ROWS_PER_THREAD];
        const int warp = threadIdx.x / LANES;
        if (threadIdx.x % LANES == 0) {
#pragma unroll
            for (int r = 0; r < ROWS_PER_THREAD; ++r) part[warp][r] = acc[r];
        }
        __syncthreads();
        if (t < ROWS_PER_THREAD && row0 + t < n_rows) {
            float s = 0.0f;
#pragma unroll
            for (int i = 0; i < WARPS_PER_ROW; ++i) s += part[group * WARPS_PER_ROW + i][t];
            y[row0 + t] = s;
        }
    } else if (t == 0) {
#pragma unroll
        for (int r = 0; r < ROWS_PER_THREAD; ++r) {
            if (row0 + r < n_rows) y[row0 + r] = acc[r];
        }
    }
}
