// mmq (prefill, int8): Y[t, n] = Σ_k W[n, k]·X[t, k] for many tokens, X quantized to q8_1 blocks
// beforehand (quantize_q8_1.hip), as llama.cpp's MMQ. A block of MMQ_WARPS warps takes BM weight
// rows and BN tokens; per step of KT values it unpacks its weight rows to int8 in shared memory
// (the format's mmq_w_int, with per-chunk scales from mmq_w_scale) beside the tokens' q8_1 quants,
// then each warp multiplies its WM×WN 16×16 tiles on the matrix unit (mma.h), one 32-value chunk
// at a time: the chunk's exact int32 sums times (weight scale · activation d), plus the weight's
// sum coefficient times the activation's sum term, accumulate in f32 (src/quant/vec_dot.rs).
// w: [n_rows] rows of K/QK blocks; a: [n_tokens][K/32] q8_1; y: [n_tokens][n_rows].
constexpr int BM = MMQ_WARPS * 16 * MMQ_WM;   // weight rows per block (128)
constexpr int BN = 16 * MMQ_WN;               // tokens per block (64; 32 for rows of K <= 2048, spec.rs mmq_wn)
constexpr int CH = MMQ_KT / 32;               // chunks per step
constexpr int LD = MMQ_KT / 4 + 4;            // ints between shared rows (conflict-free fragments)
constexpr int NT = MMQ_WARPS * WARP_SIZE;
static_assert(K % MMQ_KT == 0 && MMQ_KT % 32 == 0, "a step is whole 32-value chunks of the row");

template <int HALF>
__device__ __forceinline__ void mmq_chunk(float (*acc)[MMA_C], const int* sa, const int* sb, const float* sw,
                                          const float* sx, int wm0, int c) {
    mma_a fa[MMQ_WM];
#pragma unroll
    for (int i = 0; i < MMQ_WM; ++i) mma_load_a<HALF>(fa[i], sa + (wm0 + 16 * i) * LD + 8 * c, LD);
#pragma unroll
    for (int jn = 0; jn < MMQ_WN; ++jn) {
        mma_b fb;
        mma_load_b<HALF>(fb, sb + 16 * jn * LD + 8 * c, LD);
#pragma unroll
        for (int i = 0; i < MMQ_WM; ++i) {
            int ci[MMA_C];
#pragma unroll
            for (int e = 0; e < MMA_C; ++e) ci[e] = 0;
            mma_run<HALF>(ci, fa[i], fb);
#pragma unroll
            for (int e = 0; e < MMA_C; ++e) {
                const int r = wm0 + 16 * i + mma_row(e), n = 16 * jn + mma_col(e);
                // sw: [BM][CH][3] (d0, d1, m); sx: [BN][CH][2] (d, sum term)
                const float* w3 = sw + (r * CH + c) * 3;
                const float* x2 = sx + (n * CH + c) * 2;
                float v = w3[HALF == 1 ? 1 : 0] * (x2[0] * (float)ci[e]);
                if (HALF < 0 && MMQ_SUM != 0) v += w3[2] * x2[1];
                acc[MMQ_WN * i + jn][e] += v;
            }
        }
    }
}

RF_KERNEL void __launch_bounds__(NT)
KERNEL_NAME(const block_t* __restrict__ w, const block_q8_1* __restrict__ a, float* __restrict__ y, int n_rows,
            int n_tokens) {
    rf_grid_wait();
    constexpr int BLOCKS_PER_ROW = K / QK;
    constexpr int CHUNKS_PER_ROW = K / 32;
    __shared__ int sa[BM * LD];
    __shared__ int sb[BN * LD];
    __shared__ float sw[BM * CH * 3];
    __shared__ float sx[BN * CH * 2];
    const int tid = threadIdx.x, warp = tid / WARP_SIZE;
    const int row0 = blockIdx.x * BM, tok0 = blockIdx.y * BN;
    const int wm0 = warp * 16 * MMQ_WM;
    float acc[MMQ_WM * MMQ_WN][MMA_C];
#pragma unroll
    for (int i = 0; i < MMQ_WM * MMQ_WN; ++i)
#pragma unroll
        for (int e = 0; e < MMA_C; ++e) acc[i][e] = 0.0f;

    for (int c0 = 0; c0 < CHUNKS_PER_ROW; c0 += CH) {
        // Rows and tokens past the end repeat the last one (their results are not stored).
        for (int i = tid; i < BM * CH * 8; i += NT) {
            const int r = i / (CH * 8), c = (i / 8) % CH, wd = i % 8;
            const block_t* wr = w + (long long)min(row0 + r, n_rows - 1) * BLOCKS_PER_ROW;
            sa[r * LD + 8 * c + wd] = mmq_w_int(wr, c0 + c, wd);
        }
        for (int i = tid; i < BM * CH; i += NT) {
            const int r = i / CH, c = i % CH;
            const block_t* wr = w + (long long)min(row0 + r, n_rows - 1) * BLOCKS_PER_ROW;
            mmq_w_scale(wr, c0 + c, &sw[i * 3], &sw[i * 3 + 1], &sw[i * 3 + 2]);
        }
        for (int i = tid; i < BN * CH * 8; i += NT) {
            const int n = i / (CH * 8), c = (i / 8) % CH, wd = i % 8;
            const block_q8_1* ab = a + (long long)min(tok0 + n, n_tokens - 1) * CHUNKS_PER_ROW + c0 + c;
            sb[n * LD + 8 * c + wd] = q8_int(ab, wd);
        }
        for (int i = tid; i < BN * CH; i += NT) {
            const int n = i / CH, c = i % CH;
            const block_q8_1* ab = a + (long long)min(tok0 + n, n_tokens - 1) * CHUNKS_PER_ROW + c0 + c;
            const float d = q8_d(ab);
            float sum = 0.0f;
            if (MMQ_SUM == 1) sum = q8_s(ab);
            if (MMQ_SUM == 2) {
                int qs = 0;
#pragma unroll
                for (int j = 0; j < 8; ++j) qs = rf_dot4_i8(0x01010101, q8_int(ab, j), qs);
                sum = d * (float)qs; // exact: 11-bit d times |Σq| ≤ 4064
            }
            sx[i * 2] = d;
            sx[i * 2 + 1] = sum;
        }
        __syncthreads();
#pragma unroll 1
        for (int c = 0; c < CH; ++c) {
            if (MMQ_SPLIT16) {
                mmq_chunk<0>(acc, sa, sb, sw, sx, wm0, c);
                mmq_chunk<1>(acc, sa, sb, sw, sx, wm0, c);
            } else {
                mmq_chunk<-1>(acc, sa, sb, sw, sx, wm0, c);
            }
        }
        __syncthreads();
    }
#pragma unroll
    for (int i = 0; i < MMQ_WM; ++i)
#pragma unroll
        for (int jn = 0; jn < MMQ_WN; ++jn)
#pragma unroll
            for (int e = 0; e < MMA_C; ++e) {
                const int r = row0 + wm0 + 16 * i + mma_row(e), t = tok0 + 16 * jn + mma_col(e);
                if (r < n_rows && t < n_tokens) y[(long long)t * n_rows + r] = acc[MMQ_WN * i + jn][e];
            }
}
