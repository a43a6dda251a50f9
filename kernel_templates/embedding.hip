// embedding: out[t, :] = scale * dequant(W[ids[t], :]). One block per token.
// Specialization: the weight type's block_t / PART (quant fragment), N_EMBD, QK, BLOCK_THREADS.
RF_KERNEL void __launch_bounds__(BLOCK_THREADS)
KERNEL_NAME(const block_t* __restrict__ w, const int* __restrict__ ids, float* __restrict__ out, float scale) {
    constexpr int BLOCKS_PER_ROW = N_EMBD / QK;
    constexpr int NPART = QK / PART;
    const int t = blockIdx.x;
    const block_t* row = w + (long long)ids[t] * BLOCKS_PER_ROW;
    float* dst = out + (long long)t * N_EMBD;
    for (int u = threadIdx.x; u < BLOCKS_PER_ROW * NPART; u += BLOCK_THREADS) {
        float v[PART];
        dequant_part(row + u / NPART, u % NPART, v);
#pragma unroll
        for (int i = 0; i < PART; ++i) dst[(u / NPART) * QK + (u % NPART) * PART + i] = v[i] * scale;
    }
}
