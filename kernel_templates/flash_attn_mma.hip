// flash_attn_mma (prefill, targets with a matrix unit): causal attention of a pass's queries over
// the f16 KV cache, both products on the matrix unit in f16 with f32 accumulators (mma_f16.h).
// Block (h, y) takes BQ = NWARPS·16 consecutive queries of head h (query i at position pos0 + i
// attends to [lo, pos0 + i], lo = pos0 + i - window + 1 (at least 0) when SLIDING_WINDOW); warp w
// owns queries 16w .. 16w + 15. The block walks the positions its queries see in tiles of BKV: the
// tile's K and V rows go to shared memory as they are in the cache (f16), each warp computes its
// 16 x BKV scores S = Q·Kᵀ, an online softmax per query (in f32) rescales the running sums, and
// P = exp(S - m), rounded to f16, is multiplied with the tile's V into the f32 output O += P·V.
// The running denominator l sums the f32 values of P (the rounding of P is error in the
// numerator only: at most u·max|v| of the output, u = 2^-11).
// The queries are scaled, then rounded to f16 once into shared memory: the product and the one
// rounding cost the same relative error (u) in either order, and the scores come out of the
// matrix unit already scaled (no multiply per score); |scale·q| ≤ |q| also keeps them further from
// f16's largest value. Scores are capped to softcap·tanh(s/softcap) when SOFTCAP.
// q, out: [n_q][n_head][HEAD_DIM] f32; k, v: [position][n_head / GQA][HEAD_DIM] of f16.
constexpr int BQ = NWARPS * 16;
constexpr int KS = HEAD_DIM / 16;   // 16-dim steps of S = Q·Kᵀ; 16-dim output tiles of O
constexpr int NT = BKV / 16;        // 16-key steps of a tile
constexpr int LDS = HEAD_DIM + 8;   // halves per shared row: 8 rows of 16-byte loads hit distinct banks
constexpr int CHUNKS = HEAD_DIM / 8; // 16-byte chunks per row
// The warp's query fragments stay in registers where they take at most 32 per lane (heads up to
// 128; up to 64 on RDNA 3, whose fragments repeat over the two half-waves).
constexpr bool Q_REGS = KS * sizeof(fa_q) <= 128;
static_assert(HEAD_DIM % 16 == 0 && BKV % 16 == 0, "whole 16x16 tiles");
struct alignas(16) fa_chunk { u32 w[4]; };

// One block per multiprocessor is enough (the second bound): NVRTC would otherwise hold a block
// to 128 registers and spill the soft-capped kernel's scores.

RF_KERNEL void __launch_bounds__(NWARPS * WARP_SIZE, 1)
KERNEL_NAME(const float* __restrict__ q, const u16* __restrict__ k, const u16* __restrict__ v,
            float* __restrict__ out, int n_head, int n_q, int pos0, float scale, float softcap, int window) {
    rf_grid_wait();
    __shared__ fa_chunk smem[(BQ + 2 * BKV) * LDS / 8];
    u16* sq = (u16*)smem;
    u16* sk = sq + BQ * LDS;
    u16* sv = sk + BKV * LDS;
    const int h = blockIdx.x, t0 = blockIdx.y * BQ;
    const int tid = threadIdx.x, warp = tid / WARP_SIZE;
    const int n_head_kv = n_head / GQA, hk = h / GQA;
    const int hi = pos0 + min(t0 + BQ, n_q) - 1;
    const int lo_all = SLIDING_WINDOW ? max(0, pos0 + t0 - window + 1) : 0;

    // The block's queries, scaled and rounded to f16; rows past the pass are 0.
    for (int i = tid; i < BQ * HEAD_DIM / 2; i += NWARPS * WARP_SIZE) {
        const int qi = i / (HEAD_DIM / 2), d = 2 * (i % (HEAD_DIM / 2));
        const int t = t0 + qi;
        float x0 = 0.0f, x1 = 0.0f;
        if (t < n_q) {
            const float* src = q + ((long long)t * n_head + h) * HEAD_DIM + d;
            x0 = src[0] * scale;
            x1 = src[1] * scale;
        }
        *(u32*)(sq + qi * LDS + d) = fa_pack(x0, x1);
    }
    const u16* sqw = sq + warp * 16 * LDS;

    float m[FA_ROWS], l[FA_ROWS];
    int pos[FA_ROWS], lo[FA_ROWS];
#pragma unroll
    for (int r = 0; r < FA_ROWS; ++r) {
        const int t = t0 + warp * 16 + fa_query(r);
        // A query past the pass attends to nothing (pos < lo): its results are not stored.
        pos[r] = t < n_q ? pos0 + t : -1;
        lo[r] = SLIDING_WINDOW ? max(0, pos[r] - window + 1) : 0;
        m[r] = RF_NEG_INF;
        l[r] = 0.0f; // this lane's part of the row's sum; the row's lanes add theirs at the end
    }
    float o[KS][FA_C];
#pragma unroll
    for (int d = 0; d < KS; ++d)
#pragma unroll
        for (int i = 0; i < FA_C; ++i) o[d][i] = 0.0f;
    const long long stride = (long long)n_head_kv * HEAD_DIM; // halves between positions
    const u16* kh = k + (long long)hk * HEAD_DIM;
    const u16* vh = v + (long long)hk * HEAD_DIM;

    // The positions the warp's queries see at all, [w_lo, w_hi]: 16-key steps outside it are
    // skipped (warp-uniform; their scores would all be masked).
    const int w_first = t0 + warp * 16, w_last = min(w_first + 15, n_q - 1);
    const int w_hi = w_first < n_q ? pos0 + w_last : -1; // -1: no query of the warp in the pass
    const int w_lo = SLIDING_WINDOW ? max(0, pos0 + w_first - window + 1) : 0;

    fa_q qr[Q_REGS ? KS : 1];
    __syncthreads(); // the queries are in place
    if (Q_REGS) {
#pragma unroll
        for (int s = 0; s < KS; ++s) fa_load_q(qr[Q_REGS ? s : 0], sqw + 16 * s, LDS);
    }

    for (int p0 = lo_all; p0 <= hi; p0 += BKV) {
        __syncthreads(); // every warp is done with the previous tile
        // Positions past hi (beyond what the launch may read) are zeros: P is 0 there, and 0·V
        // must not meet whatever the cache holds past the pass.
        for (int i = tid; i < BKV * CHUNKS; i += NWARPS * WARP_SIZE) {
            const int j = i / CHUNKS, c = 8 * (i % CHUNKS);
            fa_chunk* dk = (fa_chunk*)(sk + j * LDS + c);
            fa_chunk* dv = (fa_chunk*)(sv + j * LDS + c);
            if (p0 + j <= hi) {
                *dk = *(const fa_chunk*)(kh + (p0 + j) * stride + c);
                *dv = *(const fa_chunk*)(vh + (p0 + j) * stride + c);
            } else {
                *dk = fa_chunk{};
                *dv = fa_chunk{};
            }
        }
        __syncthreads();

        const auto seen = [&](int n) { return p0 + 16 * n <= w_hi && p0 + 16 * n + 15 >= w_lo; };
        float s[NT][FA_C];
#pragma unroll
        for (int n = 0; n < NT; ++n)
#pragma unroll
            for (int i = 0; i < FA_C; ++i) s[n][i] = 0.0f;
#pragma unroll
        for (int d = 0; d < KS; ++d) {
            fa_q qf;
            if (Q_REGS)
                qf = qr[Q_REGS ? d : 0];
            else
                fa_load_q(qf, sqw + 16 * d, LDS);
#pragma unroll
            for (int n = 0; n < NT; ++n) {
                if (!seen(n)) continue;
                fa_k kf;
                fa_load_k(kf, sk + 16 * n * LDS + 16 * d, LDS);
                fa_mma_qk(s[n], qf, kf);
            }
        }

        // Online softmax: caps, masks, the new row maxima, then P = exp(S - m) in place.
        float mx[FA_ROWS];
#pragma unroll
        for (int r = 0; r < FA_ROWS; ++r) mx[r] = m[r];
#pragma unroll
        for (int n = 0; n < NT; ++n) {
#pragma unroll
            for (int i = 0; i < FA_C; ++i) {
                const int p = p0 + 16 * n + fa_col(i), r = fa_slot(i);
                float x = s[n][i];
                if (SOFTCAP) x = softcap * tanhf(x / softcap);
                if (p > pos[r] || p < lo[r]) x = RF_NEG_INF;
                s[n][i] = x;
                mx[r] = fmaxf(mx[r], x);
            }
        }
        float corr[FA_ROWS];
#pragma unroll
        for (int r = 0; r < FA_ROWS; ++r) {
            const float m_new = fa_row_max(mx[r]);
            corr[r] = m_new == RF_NEG_INF ? 1.0f : expf(m[r] - m_new);
            m[r] = m_new;
            l[r] *= corr[r];
        }
#pragma unroll
        for (int n = 0; n < NT; ++n) {
#pragma unroll
            for (int i = 0; i < FA_C; ++i) {
                const int r = fa_slot(i);
                const float e = m[r] == RF_NEG_INF ? 0.0f : expf(s[n][i] - m[r]);
                s[n][i] = e;
                l[r] += e;
            }
        }
#pragma unroll
        for (int d = 0; d < KS; ++d)
#pragma unroll
            for (int i = 0; i < FA_C; ++i) o[d][i] *= corr[fa_slot(i)];

        // O += P·V, P rounded to f16.
#pragma unroll
        for (int n = 0; n < NT; ++n) {
            if (!seen(n)) continue;
            fa_p pf;
            fa_make_p(pf, s[n]);
#pragma unroll
            for (int d = 0; d < KS; ++d) {
                fa_v vf;
                fa_load_v(vf, sv + 16 * n * LDS + 16 * d, LDS);
                fa_mma_pv(o[d], pf, vf);
            }
        }
    }

#pragma unroll
    for (int r = 0; r < FA_ROWS; ++r) l[r] = fa_row_sum(l[r]);
#pragma unroll
    for (int d = 0; d < KS; ++d) {
#pragma unroll
        for (int i = 0; i < FA_C; ++i) {
            const int r = fa_slot(i), t = t0 + warp * 16 + fa_query(r);
            if (t < n_q) out[((long long)t * n_head + h) * HEAD_DIM + 16 * d + fa_col(i)] = o[d][i] / l[r];
        }
    }
}
