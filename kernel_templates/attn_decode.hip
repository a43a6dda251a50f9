// attn_decode: attention of one query token at position pos0 = pos[0] (clamped to [0, max_pos],
// the cache rows the host checked the launch against) over the KV cache, split
// across blocks over the positions (flash-decoding). Block (hk, c) takes the positions
// [lo + c*chunk, min(lo + (c+1)*chunk, pos0 + 1)) for the GQA query heads of KV head hk, so K and V
// are read once per group; lo = pos0 - window + 1 (at least 0) when SLIDING_WINDOW. The position
// comes from the device, so one decode graph serves every step: the grid has blocks for the
// longest context (src/kernels/launch.rs, AttnDecode::max_chunks), the chunk length is chosen here
// as the host's attn_decode_chunk chooses it (about TARGET_BLOCKS blocks over all KV heads, at most
// MAX_SPLIT a head, in multiples of CHUNK_MIN positions), and blocks past the last chunk return at
// once. Scores are
// (scale*q).k, capped to softcap*tanh(s/softcap) when SOFTCAP; cache values (kv_t: f16 bits
// widened exactly, or f32) are summed in f32.
//
// Within a block, P lanes share one position, each holding NV vectors of VEC cache values (16-byte
// loads); a warp covers PPW = WARP_SIZE / P positions at a time, UNROLL steps of the block's
// positions loaded before they are used. Pass 1 writes the chunk's scores
// to shared memory, pass 2 takes each head's max and exp, pass 3 sums the weighted V rows (lane
// groups, then the warp's position groups by shuffles, then the warps in a fixed order: the
// result does not depend on timing).
//
// One chunk writes out = acc / sum. Several write their partial (acc, max, sum) to part; the last
// block of the group to finish (an atomic count per group) merges them and resets its count to 0
// for the next launch. The merge sits in this kernel rather than in a second launch: it costs the
// last block a read of GQA * chunks * (HEAD_DIM + 2) floats (a few KiB), while a second launch per
// layer costs its launch latency (2-4 us without graphs, ~1 us in one; 32 layers of a 7B at
// 350 tokens/s are 32 of the 2.9 ms a token takes), and it keeps decode at one launch per layer.
// q, out: [n_head][HEAD_DIM]; k, v: [position][n_head / GQA][HEAD_DIM];
// part: [n_head][chunks][HEAD_DIM + 2] (acc, then max and sum); counters: [n_head / GQA].
__device__ __forceinline__ float kv_load(float x) { return x; }
__device__ __forceinline__ float kv_load(u16 x) { return rf_half_to_float(x); }

__host__ __device__ constexpr int rf_pow2_at_least(int n) { return n <= 1 ? 1 : 2 * rf_pow2_at_least((n + 1) / 2); }
constexpr int VEC = 16 / (int)sizeof(kv_t);   // cache values per 16-byte load
constexpr int GROUPS = HEAD_DIM / VEC;         // 16-byte vectors per head row
constexpr int P = rf_pow2_at_least(GROUPS) < WARP_SIZE ? rf_pow2_at_least(GROUPS) : WARP_SIZE;
constexpr int NV = (GROUPS + P - 1) / P;       // vectors per lane
constexpr int PPW = WARP_SIZE / P;             // positions per warp step
constexpr int PPB = NWARPS * PPW;              // positions per block step
// Block steps whose loads are issued before any is used: a 7B's 256 blocks on an H100 then keep
// about 16 KiB of K or V in flight per SM, what its latency-bandwidth product asks for.
constexpr int UNROLL = 4;
static_assert(HEAD_DIM % VEC == 0, "head rows must be whole 16-byte vectors");

struct alignas(16) kv_vec {
    kv_t v[VEC];
};

RF_KERNEL void __launch_bounds__(NWARPS * WARP_SIZE)
KERNEL_NAME(const float* __restrict__ q, const kv_t* __restrict__ k, const kv_t* __restrict__ v,
            float* __restrict__ out, float* __restrict__ part, int* __restrict__ counters,
            const int* __restrict__ pos, int max_pos, float scale, float softcap, int window) {
    rf_grid_wait();
    __shared__ float sm_s[GQA][CHUNK_MAX];
    __shared__ float sm_o[GQA][HEAD_DIM];
    __shared__ float sm_m[GQA], sm_l[GQA];
    __shared__ int sm_last;
    const int hk = blockIdx.x, c = blockIdx.y, n_kv = gridDim.x;
    const int warp = threadIdx.x / WARP_SIZE, lane = threadIdx.x % WARP_SIZE;
    const int sub = lane / P, gl = lane % P;
    const int pos0 = max(0, min(pos[0], max_pos));
    const int lo = SLIDING_WINDOW ? max(0, pos0 - window + 1) : 0;
    const int len = pos0 + 1 - lo;
    const int per_head = min((TARGET_BLOCKS + n_kv - 1) / n_kv, MAX_SPLIT);
    const int chunk = min(max(((len + per_head - 1) / per_head + CHUNK_MIN - 1) / CHUNK_MIN * CHUNK_MIN, CHUNK_MIN), CHUNK_MAX);
    const int n_chunks = (len + chunk - 1) / chunk;
    if (c >= n_chunks) return; // the grid is sized for the longest context
    const int p0 = lo + c * chunk;
    const int n = min(chunk, pos0 + 1 - p0);

    // Pass 1: scores of the chunk's positions for each query head of the group.
    {
        float qr[GQA][NV][VEC];
#pragma unroll
        for (int g = 0; g < GQA; ++g) {
            const float* qh = q + (long long)(hk * GQA + g) * HEAD_DIM;
#pragma unroll
            for (int j = 0; j < NV; ++j) {
                const int vi = j * P + gl;
#pragma unroll
                for (int e = 0; e < VEC; ++e) qr[g][j][e] = vi < GROUPS ? qh[vi * VEC + e] * scale : 0.0f;
            }
        }
        // The trip count is the same for every lane of a warp: the shuffles below see all of them.
        for (int i0 = warp * PPW; i0 < n; i0 += PPB * UNROLL) {
            kv_vec x[UNROLL][NV];
#pragma unroll
            for (int u = 0; u < UNROLL; ++u) {
                const int i = i0 + u * PPB + sub;
                const kv_t* row = k + ((long long)(p0 + i) * n_kv + hk) * HEAD_DIM;
#pragma unroll
                for (int j = 0; j < NV; ++j) {
                    const int vi = j * P + gl;
                    if (i < n && vi < GROUPS) x[u][j] = *(const kv_vec*)(row + vi * VEC);
                    else x[u][j] = kv_vec{};
                }
            }
#pragma unroll
            for (int u = 0; u < UNROLL; ++u) {
                const int i = i0 + u * PPB + sub;
                float s[GQA];
#pragma unroll
                for (int g = 0; g < GQA; ++g) s[g] = 0.0f;
#pragma unroll
                for (int j = 0; j < NV; ++j) {
#pragma unroll
                    for (int e = 0; e < VEC; ++e) {
                        const float kf = kv_load(x[u][j].v[e]);
#pragma unroll
                        for (int g = 0; g < GQA; ++g) s[g] += qr[g][j][e] * kf;
                    }
                }
#pragma unroll
                for (int g = 0; g < GQA; ++g) {
#pragma unroll
                    for (int m = P / 2; m > 0; m >>= 1) s[g] += rf_shfl_xor(s[g], m);
                }
                if (i < n && gl == 0) {
#pragma unroll
                    for (int g = 0; g < GQA; ++g) sm_s[g][i] = SOFTCAP ? softcap * tanhf(s[g] / softcap) : s[g];
                }
            }
        }
    }
    __syncthreads();

    // Pass 2: per head, the chunk's largest score, the weights exp(s - max) and their sum.
    for (int g = warp; g < GQA; g += NWARPS) {
        float mx = RF_NEG_INF;
        for (int i = lane; i < n; i += WARP_SIZE) mx = fmaxf(mx, sm_s[g][i]);
        mx = warp_max(mx);
        float sum = 0.0f;
        for (int i = lane; i < n; i += WARP_SIZE) {
            const float e = expf(sm_s[g][i] - mx);
            sm_s[g][i] = e;
            sum += e;
        }
        sum = warp_sum(sum);
        if (lane == 0) {
            sm_m[g] = mx;
            sm_l[g] = sum;
        }
    }
    __syncthreads();

    // Pass 3: the weighted sum of the chunk's V rows.
    float acc[GQA][NV][VEC];
#pragma unroll
    for (int g = 0; g < GQA; ++g)
#pragma unroll
        for (int j = 0; j < NV; ++j)
#pragma unroll
            for (int e = 0; e < VEC; ++e) acc[g][j][e] = 0.0f;
    for (int i0 = warp * PPW; i0 < n; i0 += PPB * UNROLL) {
        kv_vec x[UNROLL][NV];
#pragma unroll
        for (int u = 0; u < UNROLL; ++u) {
            const int i = i0 + u * PPB + sub;
            const kv_t* row = v + ((long long)(p0 + i) * n_kv + hk) * HEAD_DIM;
#pragma unroll
            for (int j = 0; j < NV; ++j) {
                const int vi = j * P + gl;
                if (i < n && vi < GROUPS) x[u][j] = *(const kv_vec*)(row + vi * VEC);
                else x[u][j] = kv_vec{};
            }
        }
#pragma unroll
        for (int u = 0; u < UNROLL; ++u) {
            const int i = i0 + u * PPB + sub;
            if (i >= n) continue; // sm_s holds no weight there
#pragma unroll
            for (int j = 0; j < NV; ++j) {
#pragma unroll
                for (int e = 0; e < VEC; ++e) {
                    const float vf = kv_load(x[u][j].v[e]);
#pragma unroll
                    for (int g = 0; g < GQA; ++g) acc[g][j][e] += sm_s[g][i] * vf;
                }
            }
        }
    }
    // Over the warp's position groups (lanes gl, gl + P, ...), then over the warps in order.
#pragma unroll
    for (int g = 0; g < GQA; ++g)
#pragma unroll
        for (int j = 0; j < NV; ++j)
#pragma unroll
            for (int e = 0; e < VEC; ++e)
#pragma unroll
                for (int m = P; m < WARP_SIZE; m <<= 1) acc[g][j][e] += rf_shfl_xor(acc[g][j][e], m);
    for (int w = 0; w < NWARPS; ++w) {
        if (warp == w && sub == 0) {
#pragma unroll
            for (int g = 0; g < GQA; ++g)
#pragma unroll
                for (int j = 0; j < NV; ++j) {
                    const int vi = j * P + gl;
                    if (vi < GROUPS) {
#pragma unroll
                        for (int e = 0; e < VEC; ++e) {
                            const int d = vi * VEC + e;
                            sm_o[g][d] = w == 0 ? acc[g][j][e] : sm_o[g][d] + acc[g][j][e];
                        }
                    }
                }
        }
        __syncthreads();
    }

    constexpr int ROW = HEAD_DIM + 2;
    if (n_chunks == 1) {
        for (int t = threadIdx.x; t < GQA * HEAD_DIM; t += NWARPS * WARP_SIZE) {
            const int g = t / HEAD_DIM, d = t % HEAD_DIM;
            out[(long long)(hk * GQA + g) * HEAD_DIM + d] = sm_o[g][d] / sm_l[g];
        }
        return;
    }
    for (int t = threadIdx.x; t < GQA * ROW; t += NWARPS * WARP_SIZE) {
        const int g = t / ROW, d = t % ROW;
        const float x = d < HEAD_DIM ? sm_o[g][d] : d == HEAD_DIM ? sm_m[g] : sm_l[g];
        part[((long long)(hk * GQA + g) * n_chunks + c) * ROW + d] = x;
    }
    // Publish the partial before counting this block done (the pattern of CUDA's
    // threadFenceReduction sample): the last block then sees every other block's partial.
    __threadfence();
    __syncthreads();
    if (threadIdx.x == 0) sm_last = atomicAdd(counters + hk, 1) == n_chunks - 1;
    __syncthreads();
    if (!sm_last) return;
    __threadfence();

    // Merge: out = sum_c acc_c * exp(m_c - M) / sum_c l_c * exp(m_c - M), M the largest m_c.
    // Volatile reads: other blocks wrote these during this launch (no stale cached copy is used).
    // A warp per head finds M and the denominator with its lanes over the chunks (their loads in
    // flight together), keeping the weights exp(m_c - M) in sm_s (free since pass 3); then each
    // thread sums one output element over the chunks.
    for (int g = warp; g < GQA; g += NWARPS) {
        const volatile float* ph = part + (long long)(hk * GQA + g) * n_chunks * ROW;
        float mx = RF_NEG_INF;
        for (int cc = lane; cc < n_chunks; cc += WARP_SIZE) mx = fmaxf(mx, ph[cc * ROW + HEAD_DIM]);
        mx = warp_max(mx);
        float den = 0.0f;
        for (int cc = lane; cc < n_chunks; cc += WARP_SIZE) {
            const float f = expf(ph[cc * ROW + HEAD_DIM] - mx);
            if (cc < CHUNK_MAX) sm_s[g][cc] = f;
            den += ph[cc * ROW + HEAD_DIM + 1] * f;
        }
        den = warp_sum(den);
        if (lane == 0) {
            sm_m[g] = mx;
            sm_l[g] = den;
        }
    }
    __syncthreads();
    for (int t = threadIdx.x; t < GQA * HEAD_DIM; t += NWARPS * WARP_SIZE) {
        const int g = t / HEAD_DIM, d = t % HEAD_DIM;
        const volatile float* ph = part + (long long)(hk * GQA + g) * n_chunks * ROW;
        float num = 0.0f;
#pragma unroll 4
        for (int cc = 0; cc < n_chunks; ++cc) {
            const float f = cc < CHUNK_MAX ? sm_s[g][cc] : expf(ph[cc * ROW + HEAD_DIM] - sm_m[g]);
            num += ph[cc * ROW + d] * f;
        }
        out[(long long)(hk * GQA + g) * HEAD_DIM + d] = num / sm_l[g];
    }
    if (threadIdx.x == 0) counters[hk] = 0;
}
