// gemm_f16 (prefill, f16 matrix units): Y[t, n] = Σ_k W[n, k]·X[t, k] with W and X in f16
// (dequant_f16.hip and convert_f16.hip wrote them) and f32 sums: f16 × f16 products are exact in
// f32, so the only roundings are the operands' to f16 and the sums'. A block of GF_WARPS warps
// takes GF_BM weight rows by GF_BN tokens (a tile of F16Tile in spec.rs, picked per launch); per
// step of 64 values it copies both tiles into shared memory (16-byte copies, asynchronous where
// the target has them; with GF_STAGES of them the copies of the next steps overlap this one's
// products), rows GF_LD halves apart (an odd number of 16-byte units, so the 8 rows a fragment
// load touches fall in distinct banks). Each warp takes 16·GF_TM rows by 16·GF_TN tokens as
// 16 × 16 tiles on the matrix unit (mma_f16.h: a weight row is a query row, a token a key), or,
// without one, as FMA dot products over the same tiles. On Hopper the 128 × 128 tile runs on
// wgmma instead (wgmma.h), two warpgroups of 64 rows.
// w: [n_rows][K] f16; x: [n_tokens][K] f16, token t's row scaled by 1 / x_scale[t] (a power of
// two, which the product multiplies back exactly); y: [n_tokens][n_rows] f32.
constexpr int BK = 64;
constexpr int NT = GF_WARPS * WARP_SIZE;
static_assert(K % BK == 0, "whole steps");
static_assert(GF_WARPS_M * GF_WARPS_N == GF_WARPS && GF_BM == GF_WARPS_M * 16 * GF_TM && GF_BN == GF_WARPS_N * 16 * GF_TN,
              "the warps tile the block");
static_assert(GF_LD % 8 == 0 && (GF_LD / 8) % 2 == 1 && GF_LD >= BK, "row layout");
constexpr int STAGE_HALVES = (GF_BM + GF_BN) * GF_LD;
// On Hopper (RF_WGMMA) the 128 × 128 tile's stages hold unpadded rows in the 128-byte swizzle,
// with 1024 bytes more to align them to the swizzle's period.
constexpr bool GF_WG = RF_WGMMA && GF_BM == 128 && GF_BN == 128 && GF_WARPS == 8;
constexpr int WG_STAGE_BYTES = (GF_BM + GF_BN) * BK * 2;
static_assert(GF_STAGES >= 1 && GF_STAGES <= (GF_WG ? 6 : 4) && (!GF_WG || GF_STAGES >= 3), "stages");
static_assert(GF_SMEM == (GF_WG ? GF_STAGES * WG_STAGE_BYTES + 1024 : GF_STAGES * STAGE_HALVES * 2),
              "shared memory size differs from spec.rs");

// Queues one step's copies of ROWS rows of `src` (rows past `n` repeat the last: their results are
// not stored) into `dst`.
template <int ROWS>
__device__ __forceinline__ void gf_copy(u16* dst, const u16* __restrict__ src, int row0, int n, int step) {
    constexpr int UNITS = ROWS * BK / 8;
#pragma unroll
    for (int u = threadIdx.x; u < UNITS; u += NT) {
        const int r = u / (BK / 8), c = u % (BK / 8);
        const u16* s = src + (long long)min(row0 + r, n - 1) * K + step * BK + 8 * c;
        rf_copy16(dst + r * GF_LD + 8 * c, s, 16);
    }
}

// Two blocks a multiprocessor on NVIDIA (128 registers a thread): one block's barriers and
// copies overlap the other's products. With wgmma one block, whose products are asynchronous.
#if RF_BACKEND_CUDA
#define GF_LAUNCH_BOUNDS __launch_bounds__(NT, GF_WG ? 1 : 2)
#else
#define GF_LAUNCH_BOUNDS __launch_bounds__(NT)
#endif
RF_KERNEL void GF_LAUNCH_BOUNDS
KERNEL_NAME(const u16* __restrict__ w, const u16* __restrict__ x, const float* __restrict__ x_scale,
            float* __restrict__ y, int n_rows, int n_tokens) {
    rf_grid_wait();
    extern __shared__ __attribute__((aligned(16))) unsigned char gf_smem[];
    u16* sm = (u16*)gf_smem;
    const int warp = threadIdx.x / WARP_SIZE;
    const int row0 = blockIdx.x * GF_BM, tok0 = blockIdx.y * GF_BN;
    constexpr int NSTEPS = K / BK;
#if RF_WGMMA
    if constexpr (GF_WG) {
        unsigned char* base = gf_smem + ((1024 - ((unsigned)__cvta_generic_to_shared(gf_smem) & 1023)) & 1023);
        const int wg = warp / 4, lane = threadIdx.x % WARP_SIZE;
        // Rows and tokens past the ends repeat the last (their results are not stored).
        auto copy_step = [&](int step) {
            unsigned char* sa = base + (step % GF_STAGES) * WG_STAGE_BYTES;
            unsigned char* sb = sa + GF_BM * 128;
#pragma unroll
            for (int i = threadIdx.x; i < GF_BM * 8; i += NT)
                rf_copy16(sa + wg_swizzle(i / 8, i % 8), w + (long long)min(row0 + i / 8, n_rows - 1) * K + step * BK + 8 * (i % 8), 16);
#pragma unroll
            for (int i = threadIdx.x; i < GF_BN * 8; i += NT)
                rf_copy16(sb + wg_swizzle(i / 8, i % 8), x + (long long)min(tok0 + i / 8, n_tokens - 1) * K + step * BK + 8 * (i % 8), 16);
        };
        float d[64];
#pragma unroll
        for (int i = 0; i < 64; ++i) d[i] = 0.0f;
        // Copies run GF_STAGES - 2 steps ahead, and one step's products overlap the next step's
        // issue: the stage a copy takes was last read by the products of two steps back, which
        // every warpgroup has waited for before the barrier.
#pragma unroll
        for (int s = 0; s < GF_STAGES - 2; ++s) {
            if (s < NSTEPS) copy_step(s);
            rf_copy_commit();
        }
#pragma unroll 1
        for (int step = 0; step < NSTEPS; ++step) {
            rf_copy_wait_groups<GF_STAGES - 3>();
            wg_proxy_fence();
            __syncthreads();
            if (step + GF_STAGES - 2 < NSTEPS) copy_step(step + GF_STAGES - 2);
            rf_copy_commit();
            const unsigned char* sa = base + (step % GF_STAGES) * WG_STAGE_BYTES + wg * 64 * 128;
            const unsigned char* sb = base + (step % GF_STAGES) * WG_STAGE_BYTES + GF_BM * 128;
            wg_fence();
#pragma unroll
            for (int kk = 0; kk < BK / 16; ++kk) wg_mma_64x128(d, wg_desc(sa) + 2 * kk, wg_desc(sb) + 2 * kk);
            wg_commit();
            wg_wait<1>();
        }
        wg_wait<0>();
        const int r = row0 + wg * 64 + (warp % 4) * 16 + lane / 4;
#pragma unroll
        for (int i = 0; i < 64; ++i) {
            const int ri = r + 8 * ((i / 2) % 2), t = tok0 + 8 * (i / 4) + 2 * (lane % 4) + i % 2;
            if (ri < n_rows && t < n_tokens) y[(long long)t * n_rows + ri] = d[i] * x_scale[t];
        }
        return;
    }
#endif
    const int wm0 = warp % GF_WARPS_M * 16 * GF_TM, wn0 = warp / GF_WARPS_M * 16 * GF_TN;
#if RF_MATRIX_MMA_SYNC || RF_MATRIX_MFMA || RF_MATRIX_WMMA
    constexpr int C = FA_C;
#else
    // Without a matrix unit a lane takes 16·16 / WARP_SIZE elements of each tile: column
    // lane % 16, rows lane / 16 + e·(WARP_SIZE / 16).
    constexpr int C = 256 / WARP_SIZE;
#endif
    float acc[GF_TM][GF_TN][C];
#pragma unroll
    for (int i = 0; i < GF_TM; ++i)
#pragma unroll
        for (int j = 0; j < GF_TN; ++j)
#pragma unroll
            for (int e = 0; e < C; ++e) acc[i][j][e] = 0.0f;
    auto copy_step = [&](int step) {
        u16* st = sm + (step % GF_STAGES) * STAGE_HALVES;
        gf_copy<GF_BM>(st, w, row0, n_rows, step);
        gf_copy<GF_BN>(st + GF_BM * GF_LD, x, tok0, n_tokens, step);
    };
    if (GF_STAGES > 1) {
#pragma unroll
        for (int s = 0; s < GF_STAGES - 1; ++s) {
            if (s < NSTEPS) copy_step(s);
            rf_copy_commit();
        }
    }
#pragma unroll 1
    for (int step = 0; step < NSTEPS; ++step) {
        if (GF_STAGES > 1) {
            rf_copy_wait_groups<GF_STAGES - 2>();
            // This step's tiles are in; every warp is done with the last step's, whose stage the
            // next copy takes.
            __syncthreads();
            if (step + GF_STAGES - 1 < NSTEPS) copy_step(step + GF_STAGES - 1);
            rf_copy_commit();
        } else {
            __syncthreads();   // every warp is done with the last step's tiles
            copy_step(step);
            rf_copy_wait();
            __syncthreads();
        }
        const u16* sw = sm + (step % GF_STAGES) * STAGE_HALVES + wm0 * GF_LD;
        const u16* sx = sm + (step % GF_STAGES) * STAGE_HALVES + (GF_BM + wn0) * GF_LD;
        // Unrolled on a matrix unit (its fragments are small); one 16-value slice at a time on
        // FMA, whose lanes hold their tiles' elements in registers (gfx1030 spills otherwise).
#if RF_MATRIX_MMA_SYNC || RF_MATRIX_MFMA || RF_MATRIX_WMMA
#pragma unroll
#else
#pragma unroll 1
#endif
        for (int kk = 0; kk < BK; kk += 16) {
#if RF_MATRIX_MMA_SYNC || RF_MATRIX_MFMA || RF_MATRIX_WMMA
            fa_q a[GF_TM];
#pragma unroll
            for (int i = 0; i < GF_TM; ++i) fa_load_q(a[i], sw + 16 * i * GF_LD + kk, GF_LD);
#pragma unroll
            for (int j = 0; j < GF_TN; ++j) {
                fa_k b;
                fa_load_k(b, sx + 16 * j * GF_LD + kk, GF_LD);
#pragma unroll
                for (int i = 0; i < GF_TM; ++i) fa_mma_qk(acc[i][j], a[i], b);
            }
#else
            const int lane = threadIdx.x % WARP_SIZE;
#pragma unroll
            for (int i = 0; i < GF_TM; ++i)
#pragma unroll
                for (int j = 0; j < GF_TN; ++j)
#pragma unroll
                    for (int e = 0; e < C; ++e) {
                        const u16* wr = sw + (16 * i + lane / 16 + e * (WARP_SIZE / 16)) * GF_LD + kk;
                        const u16* xr = sx + (16 * j + lane % 16) * GF_LD + kk;
                        float s = acc[i][j][e];
#pragma unroll
                        for (int q = 0; q < 16; ++q) s = fmaf(rf_half_to_float(wr[q]), rf_half_to_float(xr[q]), s);
                        acc[i][j][e] = s;
                    }
#endif
        }
    }
#pragma unroll
    for (int i = 0; i < GF_TM; ++i)
#pragma unroll
        for (int j = 0; j < GF_TN; ++j)
#pragma unroll
            for (int e = 0; e < C; ++e) {
#if RF_MATRIX_MMA_SYNC || RF_MATRIX_MFMA || RF_MATRIX_WMMA
                const int r = row0 + wm0 + 16 * i + fa_query(fa_slot(e)), t = tok0 + wn0 + 16 * j + fa_col(e);
#else
                const int lane = threadIdx.x % WARP_SIZE;
                const int r = row0 + wm0 + 16 * i + lane / 16 + e * (WARP_SIZE / 16), t = tok0 + wn0 + 16 * j + lane % 16;
#endif
                if (r < n_rows && t < n_tokens) y[(long long)t * n_rows + r] = acc[i][j][e] * x_scale[t];
            }
}
