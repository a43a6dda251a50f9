// flash_attn (prefill, targets without a matrix unit; flash_attn_mma.hip runs on the others):
// causal attention of a pass's queries over the f16 KV cache, tiled, in f32. Block (h, y) takes
// BLOCK_Q consecutive queries of head h in steps of BQ = NWARPS·QW (query i at position pos0 + i
// attends to [lo, pos0 + i], lo = pos0 + i - window + 1 (at least 0) when SLIDING_WINDOW); each
// warp owns QW of a step's queries. The block walks the positions its queries see in tiles of
// WARP_SIZE: the tile's K rows go to shared memory, lane j scores position j against each of its
// warp's queries (the scaled queries are in shared memory), an online softmax per query rescales
// the running sums, then the tile's V rows replace the K rows and each lane adds the weighted rows
// to its share of the head dims. Scores are (scale·q)·k, capped to softcap·tanh(s/softcap) when
// SOFTCAP; f16 cache values are widened exactly; everything is summed in f32.
// q, out: [n_q][n_head][HEAD_DIM]; k, v: [position][n_head / GQA][HEAD_DIM] of f16.
constexpr int BQ = NWARPS * QW;
constexpr int BKV = WARP_SIZE;
constexpr int DPL = (HEAD_DIM + WARP_SIZE - 1) / WARP_SIZE; // output dims per lane
constexpr int HW = HEAD_DIM / 2;                             // 32-bit words per cached row
constexpr int LDW = HW + 1;                                  // words per shared row: lane j's rows on distinct banks
static_assert(HEAD_DIM % 2 == 0, "cached rows are whole 32-bit words");
static_assert(BLOCK_Q % BQ == 0, "a block's queries are whole steps");

RF_KERNEL void __launch_bounds__(NWARPS * WARP_SIZE)
KERNEL_NAME(const float* __restrict__ q, const u16* __restrict__ k, const u16* __restrict__ v,
            float* __restrict__ out, int n_head, int n_q, int pos0, float scale, float softcap, int window) {
    rf_grid_wait();
    __shared__ float sq[BQ * HEAD_DIM];
    __shared__ u32 skv[BKV * LDW];
    __shared__ float sp[NWARPS][QW][BKV];
    const int h = blockIdx.x;
    const int tid = threadIdx.x, warp = tid / WARP_SIZE, lane = tid % WARP_SIZE;
    const int n_head_kv = n_head / GQA, hk = h / GQA;
    // Each step starts after every warp has passed the previous step's last barrier, where the
    // queries, scores and cached rows were last read.
    for (int t0 = blockIdx.y * BLOCK_Q; t0 < min((int)(blockIdx.y + 1) * BLOCK_Q, n_q); t0 += BQ) {
        const int t_last = min(t0 + BQ, n_q) - 1;
        const int hi = pos0 + t_last;
        const int lo_all = SLIDING_WINDOW ? max(0, pos0 + t0 - window + 1) : 0;

        for (int i = tid; i < BQ * HEAD_DIM; i += NWARPS * WARP_SIZE) {
            const int qi = i / HEAD_DIM, d = i % HEAD_DIM;
            const int t = min(t0 + qi, n_q - 1);
            sq[i] = q[((long long)t * n_head + h) * HEAD_DIM + d] * scale;
        }
        float m[QW], l[QW], acc[QW][DPL];
        int pos[QW], lo[QW];
#pragma unroll
        for (int i = 0; i < QW; ++i) {
            const int t = t0 + warp * QW + i;
            // A query past the pass attends to nothing (pos < lo): its results are not stored.
            pos[i] = t < n_q ? pos0 + t : -1;
            lo[i] = SLIDING_WINDOW ? max(0, pos[i] - window + 1) : 0;
            m[i] = RF_NEG_INF;
            l[i] = 0.0f;
#pragma unroll
            for (int j = 0; j < DPL; ++j) acc[i][j] = 0.0f;
        }
        const long long stride = (long long)n_head_kv * HW; // words between positions
        const u32* kw = (const u32*)k + (long long)hk * HW;
        const u32* vw = (const u32*)v + (long long)hk * HW;

        for (int p0 = lo_all; p0 <= hi; p0 += BKV) {
            __syncthreads(); // the previous tile's V rows and the queries are in place / done with
            for (int i = tid; i < BKV * HW; i += NWARPS * WARP_SIZE) {
                const int j = i / HW, wd = i % HW;
                skv[j * LDW + wd] = p0 + j <= hi ? kw[(p0 + j) * stride + wd] : 0u;
            }
            __syncthreads();
            const int p = p0 + lane;
            const u32* kr = skv + lane * LDW;
            // Each K word is read once for all the warp's queries (broadcast query reads).
            float sc[QW];
#pragma unroll
            for (int i = 0; i < QW; ++i) sc[i] = 0.0f;
            for (int wd = 0; wd < HW; ++wd) {
                const u32 kk = kr[wd];
                const float k0 = rf_half_to_float((u16)(kk & 0xFFFFu)), k1 = rf_half_to_float((u16)(kk >> 16));
#pragma unroll
                for (int i = 0; i < QW; ++i) {
                    const float2 qq = *(const float2*)(sq + (warp * QW + i) * HEAD_DIM + 2 * wd);
                    sc[i] += qq.x * k0;
                    sc[i] += qq.y * k1;
                }
            }
#pragma unroll
            for (int i = 0; i < QW; ++i) {
                float s = sc[i];
                if (SOFTCAP) s = softcap * tanhf(s / softcap);
                if (p > pos[i] || p < lo[i]) s = RF_NEG_INF;
                const float m_new = fmaxf(m[i], warp_max(s));
                float e = 0.0f, corr = 1.0f;
                if (m_new != RF_NEG_INF) {
                    e = expf(s - m_new);
                    corr = expf(m[i] - m_new);
                }
                l[i] = l[i] * corr + warp_sum(e);
                m[i] = m_new;
#pragma unroll
                for (int j = 0; j < DPL; ++j) acc[i][j] *= corr;
                sp[warp][i][lane] = e;
            }
            __syncthreads();
            for (int i = tid; i < BKV * HW; i += NWARPS * WARP_SIZE) {
                const int j = i / HW, wd = i % HW;
                skv[j * LDW + wd] = p0 + j <= hi ? vw[(p0 + j) * stride + wd] : 0u;
            }
            __syncthreads();
            const u16* sv = (const u16*)skv;
            for (int j = 0; j < BKV; ++j) {
#pragma unroll
                for (int dd = 0; dd < DPL; ++dd) {
                    const int d = lane + dd * WARP_SIZE;
                    const float vv = d < HEAD_DIM ? rf_half_to_float(sv[2 * j * LDW + d]) : 0.0f;
#pragma unroll
                    for (int i = 0; i < QW; ++i) acc[i][dd] += sp[warp][i][j] * vv;
                }
            }
        }
#pragma unroll
        for (int i = 0; i < QW; ++i) {
            const int t = t0 + warp * QW + i;
            if (t >= n_q) continue;
            float* o = out + ((long long)t * n_head + h) * HEAD_DIM;
#pragma unroll
            for (int dd = 0; dd < DPL; ++dd) {
                const int d = lane + dd * WARP_SIZE;
                if (d < HEAD_DIM) o[d] = acc[i][dd] / l[i];
            }
        }
    }
}
