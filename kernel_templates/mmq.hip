// mmq (prefill, int8): Y[t, n] = Σ_k W[n, k]·X[t, k] for many tokens, X quantized to q8_1 blocks
// beforehand (quantize_q8_1.hip), as llama.cpp's MMQ. A block of MMQ_WARPS warps takes BM weight
// rows and MMQ_BLOCK_TOKENS tokens, BN at a time. Per step of MMQ_KT values it copies the rows' raw
// blocks and the tokens' q8_1 blocks into shared memory as they lie in global memory (16-byte
// copies, asynchronous where the target has them, MMQ_STAGES steps in flight), so the copy of the
// next step overlaps the products of this one. Each warp takes 16·MMQ_WM rows by 16·MMQ_WN tokens:
// it unpacks its rows' int8 values straight into matrix-unit fragments (the format's mmq_w_int,
// read from shared memory) and multiplies them by its tokens (mma.h), one 32-value chunk at a
// time: the chunk's exact int32 sums times (weight scale · activation d), plus the weight's sum
// coefficient times the activation's sum term, accumulate in f32 (src/quant/vec_dot.rs).
// w: [n_rows] rows of K/QK blocks; a: [n_tokens][K/32] q8_1; y: [n_tokens][n_rows].
// The renderer (spec.rs, mmq_layout) sizes the shared memory: MMQ_WROW bytes a weight row and
// MMQ_XROW a token a step (MMQ_WCOPY and MMQ_XCOPY 16-byte copies, and an odd number of 16-byte
// units between rows, so the 8 rows a fragment load touches fall in distinct banks), MMQ_SMEM in
// all, passed as the launch's dynamic shared memory.
constexpr int BM = MMQ_WARPS_M * 16 * MMQ_WM;   // weight rows per block (128)
constexpr int BN = MMQ_WARPS_N * 16 * MMQ_WN;   // tokens per pass
static_assert(MMQ_WARPS_M * MMQ_WARPS_N == MMQ_WARPS, "the warps tile the block");
constexpr int CH = MMQ_KT / 32;               // chunks per step
constexpr int NT = MMQ_WARPS * WARP_SIZE;
constexpr int NSTEPS = K / MMQ_KT;
constexpr long long W_ROW_BYTES = (long long)(K / QK) * BLOCK_BYTES;
constexpr long long X_ROW_BYTES = (long long)(K / 32) * sizeof(block_q8_1);
constexpr int W_SPAN = MMQ_KT / QK * BLOCK_BYTES;   // a row's bytes of one step
constexpr int X_SPAN = CH * (int)sizeof(block_q8_1);
constexpr int STAGE_BYTES = BM * MMQ_WROW + BN * MMQ_XROW;
static_assert(K % MMQ_KT == 0 && MMQ_KT % 32 == 0 && MMQ_KT % QK == 0, "a step is whole blocks and chunks");
static_assert(16 * MMQ_WCOPY >= W_SPAN + 15 && MMQ_WROW >= 16 * MMQ_WCOPY && MMQ_WROW % 32 == 16, "weight row layout");
static_assert(16 * MMQ_XCOPY >= X_SPAN + 15 && MMQ_XROW >= 16 * MMQ_XCOPY && MMQ_XROW % 32 == 16, "token row layout");
static_assert(MMQ_SMEM == MMQ_STAGES * STAGE_BYTES + (BM + BN) * CH * 8, "shared memory size differs from spec.rs");

// Where row `row`'s bytes of step `step` start in global memory (rows past the end repeat the last:
// their results are not stored), and that start's offset within its 16 bytes, which the copy to
// shared memory keeps (only the low four bits of the sum are needed, so 32-bit arithmetic does).
__device__ __forceinline__ const unsigned char* mmq_src(const void* base, long long row_bytes, int span, int row,
                                                        int last, int step) {
    return (const unsigned char*)base + (long long)min(row, last) * row_bytes + (long long)step * span;
}
__device__ __forceinline__ int mmq_shift(const void* base, long long row_bytes, int span, int row, int last,
                                         int step) {
    return (int)(((u32)(unsigned long long)base + (u32)min(row, last) * (u32)(row_bytes & 15) + (u32)step * (u32)span) & 15u);
}

// Queues the copies of one step for ROWS rows (weight rows or tokens): NT / ROWS threads a row,
// taking its copies in turn, 16 bytes a copy, nothing read at or past `end` (the copies are
// 16-aligned, so a row's first may start before it, inside the same allocation).
template <int ROWS, int COPIES, int ROW>
__device__ __forceinline__ void mmq_copy_rows(unsigned char* dst, const void* base, long long row_bytes, int span,
                                              int row0, int n, int step) {
    static_assert(NT % ROWS == 0, "whole threads a row");
    constexpr int P = NT / ROWS;
    const int r = threadIdx.x / P, p = threadIdx.x % P;
    const unsigned char* end = (const unsigned char*)base + (long long)n * row_bytes;
    const unsigned char* src = mmq_src(base, row_bytes, span, row0 + r, n - 1, step);
    const unsigned char* s16 = (const unsigned char*)((unsigned long long)src & ~15ull);
#pragma unroll
    for (int k = 0; k < (COPIES + P - 1) / P; ++k) {
        const int j = k * P + p;
        const long long left = (long long)(end - (s16 + 16 * j));
        if (j < COPIES)
            rf_copy16(dst + r * ROW + 16 * j, left > 0 ? s16 + 16 * j : (const unsigned char*)base,
                      (int)max(0ll, min(16ll, left)));
    }
}

#if RF_MATRIX_MMA_SYNC || RF_MATRIX_MFMA || RF_MATRIX_WMMA
// One 32-value chunk of the warp's rows (row(r): where the r-th row's blocks of this step start in
// shared memory) times every token of the block (tok(n), likewise), into acc. sws holds each
// row's scales of the step ([CH][BM] (d0, d1 or m)), sds each token's ([CH][BN] (d, sum term)).
template <int HALF, class WR, class XR>
__device__ __forceinline__ void mmq_chunk(float (*acc)[MMA_C], WR row, XR tok, const float2* sws, const float2* sds,
                                          int wm0, int wn0, int c) {
    mma_a fa[MMQ_WM];
    float wd[MMQ_WM][MMA_C], wm[MMQ_WM][MMA_C];
#pragma unroll
    for (int i = 0; i < MMQ_WM; ++i) {
        mma_load_a<HALF>(fa[i], [&](int r, int w) { return mmq_w_int(row(16 * i + r), c, w); });
#pragma unroll
        for (int e = 0; e < MMA_C; ++e) {
            const float2 sc = sws[c * BM + wm0 + 16 * i + mma_row(e)];
            wd[i][e] = HALF == 1 ? sc.y : sc.x;
            wm[i][e] = sc.y;
        }
    }
#pragma unroll
    for (int jn = 0; jn < MMQ_WN; ++jn) {
        mma_b fb;
        mma_load_b<HALF>(fb, [&](int n, int w) { return q8_int(tok(wn0 + 16 * jn + n) + c, w); });
        float xd[MMA_C], xm[MMA_C], xs[MMA_C];
#pragma unroll
        for (int e = 0; e < MMA_C; ++e) {
            const float2 ds = sds[c * BN + wn0 + 16 * jn + mma_col(e)];
            xd[e] = ds.x;
            xm[e] = -12582912.0f * ds.x;   // exact: d is an f16 (11 bits) and 1.5·2^23 has 2
            xs[e] = ds.y;
        }
#pragma unroll
        for (int i = 0; i < MMQ_WM; ++i) {
            // The sums start at 1.5·2^23 as f32 bits: |sum| < 2^22 (32 products of |int8| ≤ 127),
            // so the result's bits are the f32 1.5·2^23 + sum exactly (no int-to-float conversion,
            // which runs at a quarter of the rate), and fma(that, d, −1.5·2^23·d) rounds sum·d
            // once, as d·(float)sum would.
            int ci[MMA_C];
#pragma unroll
            for (int e = 0; e < MMA_C; ++e) ci[e] = 0x4B400000;
            mma_run<HALF>(ci, fa[i], fb);
#pragma unroll
            for (int e = 0; e < MMA_C; ++e) {
                const float xsum = fmaf(__int_as_float(ci[e]), xd[e], xm[e]);
                float& o = acc[MMQ_WN * i + jn][e];
                o = fmaf(wd[i][e], xsum, o);
                if (HALF < 0 && MMQ_SUM != 0) o = fmaf(wm[i][e], xs[e], o);
            }
        }
    }
}

#else
// Without a matrix unit (mma.h's element layout: lane l takes column l % 16 of a tile and rows
// l / 16 + e·(WARP_SIZE / 16)): each element's int8 dot products one at a time, the weight ints
// unpacked as they are used, so no lane holds whole rows of a tile in registers.
template <int HALF, class WR, class XR>
__device__ __forceinline__ void mmq_chunk(float (*acc)[MMA_C], WR row, XR tok, const float2* sws, const float2* sds,
                                          int wm0, int wn0, int c) {
    constexpr int J0 = HALF == 1 ? 4 : 0, J1 = HALF == 0 ? 4 : 8;
#pragma unroll
    for (int i = 0; i < MMQ_WM; ++i)
#pragma unroll
        for (int e = 0; e < MMA_C; ++e) {
            // One weight row's ints, then every token of the lane's column.
            const int r = 16 * i + mma_row(e);
            const block_t* wr = row(r);
            int a[8];
#pragma unroll
            for (int j = J0; j < J1; ++j) a[j] = mmq_w_int(wr, c, j);
            const float2 sc = sws[c * BM + wm0 + r];
#pragma unroll
            for (int jn = 0; jn < MMQ_WN; ++jn) {
                const int n = wn0 + 16 * jn + mma_col(e);
                const block_q8_1* xb = tok(n) + c;
                int sum = 0;
#pragma unroll
                for (int j = J0; j < J1; ++j) sum = rf_dot4_i8(a[j], q8_int(xb, j), sum);
                const float2 ds = sds[c * BN + n];
                float& o = acc[MMQ_WN * i + jn][e];
                o = fmaf(HALF == 1 ? sc.y : sc.x, ds.x * (float)sum, o);
                if (HALF < 0 && MMQ_SUM != 0) o = fmaf(sc.y, ds.y, o);
            }
        }
}

#endif

// Two blocks a multiprocessor on NVIDIA (128 registers a thread) where a warp's tile is small: one
// block's copies and barriers overlap the other's products. Larger tiles take the registers they
// need (one block, its copies overlapped by its own second stage).
#if RF_BACKEND_CUDA
#define MMQ_LAUNCH_BOUNDS __launch_bounds__(NT, MMQ_WM * MMQ_WN > 4 ? 1 : 2)
#else
#define MMQ_LAUNCH_BOUNDS __launch_bounds__(NT)
#endif
// The units of work of a stream-K launch: every tile's NSTEPS steps, tile after tile (row blocks
// fastest). Worker b takes units [units·b / workers, units·(b + 1) / workers). The launch checks
// that units · (workers + 1) fits an int.
__device__ __forceinline__ int mmq_unit_start(int units, int workers, int b) { return units * b / workers; }
// The worker whose units hold unit u.
__device__ __forceinline__ int mmq_worker_of(int units, int workers, int u) {
    return ((u + 1) * workers + units - 1) / units - 1;
}

// Four floats of another block's part of a stream-K tile (16-aligned), read where that block's
// stores are visible after the fences: L2 on NVIDIA (ld.global.cg), volatile reads elsewhere.
__device__ __forceinline__ float4 mmq_load_part(const float* p) {
#if RF_BACKEND_CUDA
    float4 v;
    asm volatile("ld.global.cg.v4.f32 {%0,%1,%2,%3}, [%4];" : "=f"(v.x), "=f"(v.y), "=f"(v.z), "=f"(v.w) : "l"(p));
    return v;
#else
    const volatile float* q = p;
    return make_float4(q[0], q[1], q[2], q[3]);
#endif
}

// Steps k0 .. k1 - 1 of tile (rb, tb): weight rows rb·BM.., tokens tb·MMQ_BLOCK_TOKENS.. (in
// passes of BN). A whole tile (k0 = 0, k1 = NSTEPS) is stored to y; a part of one to `out`, the
// worker's slot ([MMQ_BLOCK_TOKENS][BM] floats), for the merge.
__device__ __forceinline__ void mmq_tile(unsigned char* mmq_smem, const block_t* __restrict__ w,
                                         const block_q8_1* __restrict__ a, float* __restrict__ y,
                                         float* __restrict__ out, int n_rows, int n_tokens, int rb, int tb, int k0,
                                         int k1) {
    float2* sws = (float2*)(mmq_smem + MMQ_STAGES * STAGE_BYTES);   // [CH][BM] (d0, d1 or m)
    float2* sds = sws + BM * CH;                                       // [CH][BN] (d, sum term)
    const int warp = threadIdx.x / WARP_SIZE;
    const int row0 = rb * BM;
    const bool whole = k0 == 0 && k1 == NSTEPS;
    // Warp (m, n) of the MMQ_WARPS_M × MMQ_WARPS_N grid takes rows wm0.. and tokens wn0.. of the tile.
    const int wm0 = warp % MMQ_WARPS_M * 16 * MMQ_WM, wn0 = warp / MMQ_WARPS_M * 16 * MMQ_WN;
    // The block's MMQ_BLOCK_TOKENS tokens in passes of BN (one pass where shared memory holds them).
    static_assert(MMQ_BLOCK_TOKENS % BN == 0, "whole passes");
#pragma unroll 1
    for (int pass = 0; pass < MMQ_BLOCK_TOKENS / BN; ++pass) {
        const int tok0 = tb * MMQ_BLOCK_TOKENS + pass * BN;
        if (tok0 >= n_tokens) break;
        if (pass > 0) __syncthreads();   // every warp is done with the last pass's tiles
        float acc[MMQ_WM * MMQ_WN][MMA_C];
#pragma unroll
        for (int i = 0; i < MMQ_WM * MMQ_WN; ++i)
#pragma unroll
            for (int e = 0; e < MMA_C; ++e) acc[i][e] = 0.0f;

        auto copy_step = [&](int step) {
            unsigned char* st = mmq_smem + (step % MMQ_STAGES) * STAGE_BYTES;
            mmq_copy_rows<BM, MMQ_WCOPY, MMQ_WROW>(st, w, W_ROW_BYTES, W_SPAN, row0, n_rows, step);
            mmq_copy_rows<BN, MMQ_XCOPY, MMQ_XROW>(st + BM * MMQ_WROW, a, X_ROW_BYTES, X_SPAN, tok0, n_tokens, step);
        };
        if (MMQ_STAGES > 1) copy_step(k0);
#pragma unroll 1
        for (int step = k0; step < k1; ++step) {
            if (MMQ_STAGES > 1) {
                rf_copy_wait();
                __syncthreads();   // this step's tiles are in; every warp is done with the last step's
                if (step + 1 < k1) copy_step(step + 1);
            } else {
                __syncthreads();   // every warp is done with the last step's tiles
                copy_step(step);
                rf_copy_wait();
                __syncthreads();
            }
            const unsigned char* st = mmq_smem + (step % MMQ_STAGES) * STAGE_BYTES;
            auto row = [&](int r) {
                const int rr = wm0 + r;
                return (const block_t*)(st + rr * MMQ_WROW + mmq_shift(w, W_ROW_BYTES, W_SPAN, row0 + rr, n_rows - 1, step));
            };
            auto tok = [&](int n) {
                return (const block_q8_1*)(st + BM * MMQ_WROW + n * MMQ_XROW +
                                           mmq_shift(a, X_ROW_BYTES, X_SPAN, tok0 + n, n_tokens - 1, step));
            };
            // Each row's and each token's scales of the step, once for all warps: the first BM
            // threads take a row each (all its chunks, so a block's scale bytes are read once), the
            // others the tokens' chunks.
            static_assert(NT > BM, "threads left for the tokens' scales");
            if (threadIdx.x < BM) {
                const int r = threadIdx.x;
                const block_t* b = (const block_t*)(st + r * MMQ_WROW +
                                                    mmq_shift(w, W_ROW_BYTES, W_SPAN, row0 + r, n_rows - 1, step));
#pragma unroll
                for (int c = 0; c < CH; ++c) {
                    float d0, d1, m;
                    mmq_w_scale(b, c, &d0, &d1, &m);
                    sws[c * BM + r] = make_float2(d0, MMQ_SPLIT16 ? d1 : m);
                }
            } else {
                // Lanes take a token's chunks side by side (its rows lie 16-byte multiples apart).
                for (int i = threadIdx.x - BM; i < BN * CH; i += NT - BM) {
                    const int n = i / CH, c = i % CH;
                    const block_q8_1* ab = tok(n) + c;
                    const float d = q8_d(ab);
                    float sum = 0.0f;
                    if (MMQ_SUM == 1) sum = q8_s(ab);
                    if (MMQ_SUM == 2) {
                        int qs = 0;
#pragma unroll
                        for (int j = 0; j < 8; ++j) qs = rf_dot4_i8(0x01010101, q8_int(ab, j), qs);
                        sum = d * (float)qs;   // exact: 11-bit d times |Σq| ≤ 4064
                    }
                    sds[c * BN + n] = make_float2(d, sum);
                }
            }
            __syncthreads();
            // Unrolled where the registers allow (mma.sync's fragments are small): the next
            // chunk's loads then overlap this one's products.
#if RF_MATRIX_MMA_SYNC
#pragma unroll
#else
#pragma unroll 1
#endif
            for (int c = 0; c < CH; ++c) {
                if (MMQ_SPLIT16) {
                    mmq_chunk<0>(acc, row, tok, sws, sds, wm0, wn0, c);
                    mmq_chunk<1>(acc, row, tok, sws, sds, wm0, wn0, c);
                } else {
                    mmq_chunk<-1>(acc, row, tok, sws, sds, wm0, wn0, c);
                }
            }
        }
#pragma unroll
        for (int i = 0; i < MMQ_WM; ++i)
#pragma unroll
            for (int jn = 0; jn < MMQ_WN; ++jn)
#pragma unroll
                for (int e = 0; e < MMA_C; ++e) {
                    const int r = wm0 + 16 * i + mma_row(e), tl = pass * BN + wn0 + 16 * jn + mma_col(e);
                    const int t = tb * MMQ_BLOCK_TOKENS + tl;
                    if (!whole)
                        out[tl * BM + r] = acc[MMQ_WN * i + jn][e];
                    else if (row0 + r < n_rows && t < n_tokens)
                        y[(long long)t * n_rows + row0 + r] = acc[MMQ_WN * i + jn][e];
                }
    }
}

RF_KERNEL void MMQ_LAUNCH_BOUNDS
KERNEL_NAME(const block_t* __restrict__ w, const block_q8_1* __restrict__ a, float* __restrict__ y,
            float* __restrict__ part, int* __restrict__ counters, int n_rows, int n_tokens, int workers) {
    rf_grid_wait();
    extern __shared__ __attribute__((aligned(16))) unsigned char mmq_smem[];
    // Data-parallel (workers = 0): block (x, y) takes tile (x, y) whole.
    if (!MMQ_STREAM_K) {
        mmq_tile(mmq_smem, w, a, y, nullptr, n_rows, n_tokens, blockIdx.x, blockIdx.y, 0, NSTEPS);
        return;
    }
    // Stream-K (where the tiles fill the GPU's multiprocessors unevenly): `workers` blocks share
    // the steps of all tiles evenly, so a tile may be split between consecutive workers. Each
    // stores its part of such a tile in its slot of `part` (slot 0: the part its units begin with;
    // 1: the one they end with), and the last of a tile's workers to finish (an atomic count a
    // tile, at the counter of its first worker) adds the parts in worker order, so the result does
    // not depend on which finished last, and resets the count.
    constexpr int TILE = BM * MMQ_BLOCK_TOKENS;
    static_assert(BM % 4 == 0 && TILE % (4 * NT) == 0, "the merge takes rows 4 at a time");
    __shared__ int sm_last;
    const int row_blocks = (n_rows + BM - 1) / BM;
    const int units = row_blocks * ((n_tokens + MMQ_BLOCK_TOKENS - 1) / MMQ_BLOCK_TOKENS) * NSTEPS;
    const int b = blockIdx.x;
    const int u_begin = mmq_unit_start(units, workers, b), u_end = mmq_unit_start(units, workers, b + 1);
#pragma unroll 1
    for (int u = u_begin; u < u_end;) {
        const int tile = u / NSTEPS;
        const int k0 = u % NSTEPS, k1 = min(NSTEPS, k0 + (u_end - u));
        const int rb = tile % row_blocks, tb = tile / row_blocks;
        float* out = part + ((long long)b * 2 + (u == u_begin ? 0 : 1)) * TILE;
        if (u != u_begin) __syncthreads();   // every warp is done with the last tile's shared memory
        mmq_tile(mmq_smem, w, a, y, out, n_rows, n_tokens, rb, tb, k0, k1);
        u += k1 - k0;
        if (k0 == 0 && k1 == NSTEPS) continue;
        // Publish the part before counting it (CUDA's threadFenceReduction pattern).
        const int b_lo = mmq_worker_of(units, workers, tile * NSTEPS);
        const int b_hi = mmq_worker_of(units, workers, tile * NSTEPS + NSTEPS - 1);
        __threadfence();
        __syncthreads();
        if (threadIdx.x == 0) sm_last = atomicAdd(counters + b_lo, 1) == b_hi - b_lo;
        __syncthreads();
        if (!sm_last) continue;
        __threadfence();
        // Four rows at a time (16-byte loads, a thread's all in flight together), read through L2,
        // where the other workers' stores are.
        constexpr int PER = TILE / (4 * NT);
        float4 sum[PER];
#pragma unroll
        for (int i = 0; i < PER; ++i) sum[i] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        for (int bb = b_lo; bb <= b_hi; ++bb) {
            // Worker bb's part of this tile is its first (slot 0) unless it began before it.
            const int slot = mmq_unit_start(units, workers, bb) >= tile * NSTEPS ? 0 : 1;
            const float* p = part + ((long long)bb * 2 + slot) * TILE;
#pragma unroll
            for (int i = 0; i < PER; ++i) {
                const float4 v = mmq_load_part(p + 4 * (threadIdx.x + i * NT));
                sum[i].x += v.x;
                sum[i].y += v.y;
                sum[i].z += v.z;
                sum[i].w += v.w;
            }
        }
#pragma unroll
        for (int i = 0; i < PER; ++i) {
            const int e = 4 * (threadIdx.x + i * NT);
            const int r = rb * BM + e % BM, t = tb * MMQ_BLOCK_TOKENS + e / BM;
            float* yr = y + (long long)t * n_rows + r;
            if (t < n_tokens) {
                if (r < n_rows) yr[0] = sum[i].x;
                if (r + 1 < n_rows) yr[1] = sum[i].y;
                if (r + 2 < n_rows) yr[2] = sum[i].z;
                if (r + 3 < n_rows) yr[3] = sum[i].w;
            }
        }
        if (threadIdx.x == 0) counters[b_lo] = 0;
    }
}
