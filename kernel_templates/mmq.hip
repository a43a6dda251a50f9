// mmq (prefill, int8): Y[t, n] = Σ_k W[n, k]·X[t, k] for many tokens, X quantized to q8_1 blocks
// beforehand (quantize_q8_1.hip), as llama.cpp's MMQ. w: [n_rows] rows of K/QK blocks;
// a: [n_tokens][K/32] q8_1; y: [n_tokens][n_rows].
//
// Tiling. A block of MMQ_WARPS warps takes BM = 128 weight rows and BN = 16·MMQ_WN tokens; warp w
// owns rows 16·MMQ_WM·w .. +16·MMQ_WM against all BN tokens (MMQ_WM·MMQ_WN tiles of 16×16). Per
// step of KT values the block stages in shared memory, as ints of 4 int8 (rows LD ints apart, 16-byte
// aligned and conflict-free for the fragment reads):
//   sa: the weight rows unpacked to int8 (the format's mmq_w_chunk: one thread writes one row's
//       32-value chunk with two 16-byte stores), sw: per (chunk, row) a float2 of scales,
//   sb: the tokens' q8_1 quants, sx: per (chunk, token) a float2 (d, sum term).
// Each warp then runs the chunks of the step in order on the matrix unit (mma.h): a chunk's exact
// int32 sums times (weight scale · activation d), plus the weight's sum coefficient times the
// activation's sum term, accumulate in f32 (src/quant/vec_dot.rs), per element
//   acc += w_d·(x_d·(float)s) (+ w_m·x_sum),
// chunk after chunk (formats with a scale per 16 values: the first half, then the second).
//
// Why this shape: the matrix unit is cheap next to the f32 combine every element needs per chunk
// (4 f32 operations with a sum term, 2 without, which the bit-exact order above fixes), so the
// kernel is bound by instruction issue, and everything around that combine is kept small:
// - the scales a lane needs are read once per tile and chunk into registers (on mma.sync its
//   elements touch 2 rows and 4 tokens per 16×16 tile: two 8-byte and two 16-byte shared loads),
//   not once per element;
// - the matrix unit starts its sums from MMQ_BIAS, so int32 → f32 is one f32 subtract (exact:
//   the bits of 1.5·2^23 + s, |s| < 2^22, are a float with unit spacing) instead of a conversion;
// - fragments come in one ldmatrix each on CUDA; the weights are unpacked with 16-byte loads
//   where the format's blocks allow, each thread one whole chunk, all of a step's loads in flight
//   before the first store.
// On sm_90 a Q4_K chunk is 8 IMMA and ~200 instructions a warp (160 of them f32), was
// ~260. 128 rows × 64 tokens at KT = 128 keep shared memory at 33 KiB and registers near 80, so
// three blocks fit an SM and one block's global loads overlap the others' products.
constexpr int BM = MMQ_WARPS * 16 * MMQ_WM;   // weight rows per block (128)
constexpr int BN = 16 * MMQ_WN;               // tokens per block
constexpr int CH = MMQ_KT / 32;               // chunks per step
constexpr int LD = MMQ_KT / 4 + 4;            // ints between shared rows (conflict-free fragments)
constexpr int NT = MMQ_WARPS * WARP_SIZE;
static_assert(K % MMQ_KT == 0 && MMQ_KT % 32 == 0, "a step is whole 32-value chunks of the row");
static_assert(LD % 4 == 0, "rows of whole 16-byte groups (vector stores, ldmatrix)");
// f32 bits of 1.5·2^23: bias + s read as f32 is 12582912 + s exactly for |s| < 2^22, and a chunk's
// sum is at most 32·128·128 = 2^19 in magnitude.
constexpr int MMQ_BIAS = 0x4B400000;

__device__ __forceinline__ float mmq_unbias(int v) { return __int_as_float(v) - 12582912.0f; }

// One 16×16 tile's chunk (or half chunk): products from the matrix unit, combined into acc with
// the scales of the lane's rows (ws) and tokens (xs).
template <int HALF>
__device__ __forceinline__ void mmq_tile(float* acc, const mma_a& fa, const mma_b& fb, const float2* ws,
                                         const float2* xs) {
    int ci[MMA_C];
    mma_run<HALF>(ci, fa, fb, MMQ_BIAS);
#pragma unroll
    for (int e = 0; e < MMA_C; ++e) {
        // ws: (d0, m), or (d0, d1) for formats with two scales a chunk; xs: (d, sum term)
        float v = (HALF == 1 ? ws[e].y : ws[e].x) * (xs[e].x * mmq_unbias(ci[e]));
        if (HALF < 0 && MMQ_SUM != 0) v += ws[e].y * xs[e].y;
        acc[e] += v;
    }
}

RF_KERNEL void __launch_bounds__(NT)
KERNEL_NAME(const block_t* __restrict__ w, const block_q8_1* __restrict__ a, float* __restrict__ y, int n_rows,
            int n_tokens) {
    rf_grid_wait();
    constexpr int BLOCKS_PER_ROW = K / QK;
    constexpr int CHUNKS_PER_ROW = K / 32;
    // uint4 storage: 16-byte aligned for the vector stores, LDS.128 and ldmatrix reads.
    __shared__ uint4 sa4[BM * LD / 4], sb4[BN * LD / 4], sw4[CH * BM / 2], sx4[CH * BN / 2];
    int* sa = (int*)sa4;
    int* sb = (int*)sb4;
    float2* sw = (float2*)sw4;
    float2* sx = (float2*)sx4;
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
        // Consecutive threads take consecutive rows of one chunk: conflict-free 16-byte stores.
        // Whole unrolled passes, so every thread's global loads are in flight at once.
#pragma unroll
        for (int p = 0; p < (BM * CH + NT - 1) / NT; ++p) {
            const int i = tid + p * NT;
            if (BM * CH % NT != 0 && i >= BM * CH) break;
            const int r = i % BM, c = i / BM;
            const block_t* wr = w + (long long)min(row0 + r, n_rows - 1) * BLOCKS_PER_ROW;
            int q[8];
            mmq_w_chunk(wr, c0 + c, q);
            uint4* dst = (uint4*)(sa + r * LD + 8 * c);
            dst[0] = uint4{(u32)q[0], (u32)q[1], (u32)q[2], (u32)q[3]};
            dst[1] = uint4{(u32)q[4], (u32)q[5], (u32)q[6], (u32)q[7]};
            float d0, d1, m;
            mmq_w_scale(wr, c0 + c, &d0, &d1, &m);
            sw[c * BM + r] = float2{d0, MMQ_SPLIT16 ? d1 : m};
        }
#pragma unroll
        for (int p = 0; p < (BN * CH + NT - 1) / NT; ++p) {
            const int i = tid + p * NT;
            if (BN * CH % NT != 0 && i >= BN * CH) break;
            const int n = i % BN, c = i / BN;
            const block_q8_1* ab = a + (long long)min(tok0 + n, n_tokens - 1) * CHUNKS_PER_ROW + c0 + c;
            int q[8];
#pragma unroll
            for (int j = 0; j < 8; ++j) q[j] = q8_int(ab, j);
            uint4* dst = (uint4*)(sb + n * LD + 8 * c);
            dst[0] = uint4{(u32)q[0], (u32)q[1], (u32)q[2], (u32)q[3]};
            dst[1] = uint4{(u32)q[4], (u32)q[5], (u32)q[6], (u32)q[7]};
            const float d = q8_d(ab);
            float sum = 0.0f;
            if (MMQ_SUM == 1) sum = q8_s(ab);
            if (MMQ_SUM == 2) {
                int qs = 0;
#pragma unroll
                for (int j = 0; j < 8; ++j) qs = rf_dot4_i8(0x01010101, q[j], qs);
                sum = d * (float)qs; // exact: 11-bit d times |Σq| ≤ 4064
            }
            sx[c * BN + n] = float2{d, sum};
        }
        __syncthreads();
#pragma unroll 1
        for (int c = 0; c < CH; ++c) {
            mma_a fa[MMQ_WM];
            float2 ws[MMQ_WM][MMA_C];
#pragma unroll
            for (int i = 0; i < MMQ_WM; ++i) {
                mma_load_a(fa[i], sa + (wm0 + 16 * i) * LD + 8 * c, LD);
#pragma unroll
                for (int e = 0; e < MMA_C; ++e) ws[i][e] = sw[c * BM + wm0 + 16 * i + mma_row(e)];
            }
#pragma unroll
            for (int jn = 0; jn < MMQ_WN; ++jn) {
                mma_b fb;
                mma_load_b(fb, sb + 16 * jn * LD + 8 * c, LD);
                float2 xs[MMA_C];
#pragma unroll
                for (int e = 0; e < MMA_C; ++e) xs[e] = sx[c * BN + 16 * jn + mma_col(e)];
#pragma unroll
                for (int i = 0; i < MMQ_WM; ++i) {
                    if (MMQ_SPLIT16) {
                        mmq_tile<0>(acc[MMQ_WN * i + jn], fa[i], fb, ws[i], xs);
                        mmq_tile<1>(acc[MMQ_WN * i + jn], fa[i], fb, ws[i], xs);
                    } else {
                        mmq_tile<-1>(acc[MMQ_WN * i + jn], fa[i], fb, ws[i], xs);
                    }
                }
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
