// embedding: out[t, :] = scale * dequant(W[ids[t], :]). One block per token. An id outside
// [0, n_rows) gets a row of NaN: the table is never read outside its rows.
// Specialization: the weight type's block_t / PART (quant fragment), N_EMBD, QK, BLOCK_THREADS.
RF_KERNEL void __launch_bounds__(BLOCK_THREADS)
KERNEL_NAME(const block_t* __restrict__ w, const int* __restrict__ ids, float* __restrict__ out, int n_rows,
            float scale) {
    rf_grid_wait();
    constexpr int BLOCKS_PER_ROW = N_EMBD / QK;
    constexpr int NPART = QK / PART;
    const int t = blockIdx.x;
    const int id = ids[t];
    float* dst = out + (long long)t * N_EMBD;
    if (id < 0 || id >= n_rows) {
        for (int i = threadIdx.x; i < N_EMBD; i += BLOCK_THREADS) dst[i] = __int_as_float(0x7fc00000);
        return;
    }
    const block_t* row = w + (long long)id * BLOCKS_PER_ROW;
    for (int u = threadIdx.x; u < BLOCKS_PER_ROW * NPART; u += BLOCK_THREADS) {
        float v[PART];
        dequant_part(row + u / NPART, u % NPART, v);
#pragma unroll
        for (int i = 0; i < PART; ++i) dst[(u / NPART) * QK + (u % NPART) * PART + i] = v[i] * scale;
    }
}
