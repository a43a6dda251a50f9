// attention: causal attention of this pass's queries over the KV cache, one block per
// (head, query). Query i sits at position pos0 + i and attends to positions [lo, pos0 + i];
// lo = pos0 + i - window + 1 (at least 0) when SLIDING_WINDOW. Scores are (scale*q).k, capped to
// softcap*tanh(s/softcap) when SOFTCAP. Each warp runs an online softmax over its share of the
// positions; the warps' partial results are merged at the end. GQA query heads share KV head
// h / GQA.
// q, out: [n_q][n_head][HEAD_DIM]; k, v: [position][n_head / GQA][HEAD_DIM] of kv_t (the
// rendered cache type: f16 bits, widened exactly, or f32); scores and sums in f32.
__device__ __forceinline__ float kv_load(float x) { return x; }
__device__ __forceinline__ float kv_load(u16 x) { return rf_half_to_float(x); }

RF_KERNEL void __launch_bounds__(NWARPS * WARP_SIZE)
KERNEL_NAME(const float* __restrict__ q, const kv_t* __restrict__ k, const kv_t* __restrict__ v,
            float* __restrict__ out, int n_head, int pos0, float scale, float softcap, int window) {
    rf_grid_wait();
    constexpr int DPL = (HEAD_DIM + WARP_SIZE - 1) / WARP_SIZE; // head dims per lane
    __shared__ float sm_m[NWARPS], sm_l[NWARPS];
    __shared__ float sm_acc[NWARPS][HEAD_DIM];
    const int h = blockIdx.x, qi = blockIdx.y;
    const int warp = threadIdx.x / WARP_SIZE, lane = threadIdx.x % WARP_SIZE;
    const int n_head_kv = n_head / GQA, hk = h / GQA;
    const int pos = pos0 + qi;
    const int lo = SLIDING_WINDOW ? max(0, pos - window + 1) : 0;

    const float* qv = q + ((long long)qi * n_head + h) * HEAD_DIM;
    float qr[DPL], acc[DPL];
#pragma unroll
    for (int j = 0; j < DPL; ++j) {
        const int d = lane + j * WARP_SIZE;
        qr[j] = d < HEAD_DIM ? qv[d] * scale : 0.0f;
        acc[j] = 0.0f;
    }
    float m = RF_NEG_INF, l = 0.0f;
    for (int p = lo + warp; p <= pos; p += NWARPS) {
        const long long row = ((long long)p * n_head_kv + hk) * HEAD_DIM;
        float s = 0.0f;
#pragma unroll
        for (int j = 0; j < DPL; ++j) {
            const int d = lane + j * WARP_SIZE;
            if (d < HEAD_DIM) s += qr[j] * kv_load(k[row + d]);
        }
        s = warp_sum(s);
        if (SOFTCAP) s = softcap * tanhf(s / softcap);
        const float m_new = fmaxf(m, s);
        const float corr = expf(m - m_new), e = expf(s - m_new);
        l = l * corr + e;
#pragma unroll
        for (int j = 0; j < DPL; ++j) {
            const int d = lane + j * WARP_SIZE;
            if (d < HEAD_DIM) acc[j] = acc[j] * corr + e * kv_load(v[row + d]);
        }
        m = m_new;
    }
    if (lane == 0) {
        sm_m[warp] = m;
        sm_l[warp] = l;
    }
#pragma unroll
    for (int j = 0; j < DPL; ++j) {
        const int d = lane + j * WARP_SIZE;
        if (d < HEAD_DIM) sm_acc[warp][d] = acc[j];
    }
    __syncthreads();
    float M = RF_NEG_INF;
#pragma unroll
    for (int w = 0; w < NWARPS; ++w) M = fmaxf(M, sm_m[w]);
    float L = 0.0f;
#pragma unroll
    for (int w = 0; w < NWARPS; ++w) L += sm_m[w] == RF_NEG_INF ? 0.0f : sm_l[w] * expf(sm_m[w] - M);
    float* o = out + ((long long)qi * n_head + h) * HEAD_DIM;
    for (int d = threadIdx.x; d < HEAD_DIM; d += NWARPS * WARP_SIZE) {
        float sum = 0.0f;
#pragma unroll
        for (int w = 0; w < NWARPS; ++w) sum += sm_m[w] == RF_NEG_INF ? 0.0f : sm_acc[w][d] * expf(sm_m[w] - M);
        o[d] = sum / L;
    }
}
