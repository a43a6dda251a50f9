// Prototype: Y[t][n] = sum_k W[n][k] * X[t][k], W and X f16 (K contiguous), Y f32; mma.sync m16n8k16.
typedef unsigned short u16;
typedef unsigned int u32;
#ifndef BM
#define BM 128
#endif
#ifndef BN
#define BN 128
#endif
#ifndef WM
#define WM 64
#endif
#ifndef WN
#define WN 32
#endif
#ifndef STAGES
#define STAGES 4
#endif
#ifndef BK
#define BK 32
#endif
#ifndef MINB
#define MINB 1
#endif
constexpr int CPR = BK / 8;
constexpr int WARPS = (BM / WM) * (BN / WN);
constexpr int NT = WARPS * 32;
constexpr int FM = WM / 16, FN = WN / 8;
// smem rows of 64 bytes (BK f16), 16-byte chunks swizzled by row: chunk ^ ((row >> 1) & 3)
__device__ __forceinline__ int sw(int row, int chunk) { return row * (BK * 2) + ((chunk ^ (CPR == 8 ? (row & 7) : ((row >> 1) & 3))) << 4); }
__device__ __forceinline__ void cp16(void* s, const void* g) {
    u32 sa = (u32)__cvta_generic_to_shared(s);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"(sa), "l"(g));
}
__device__ __forceinline__ void ldsm4(u32* r, const void* s) {
    u32 sa = (u32)__cvta_generic_to_shared(s);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];" : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(sa));
}
extern "C" __global__ void __launch_bounds__(NT, MINB) gemm_f16(const u16* __restrict__ w, const u16* __restrict__ x, float* __restrict__ y, int n_rows, int n_tok, int K) {
    extern __shared__ __align__(128) unsigned char smem[];
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int row0 = blockIdx.x * BM, tok0 = blockIdx.y * BN;
    const int wm0 = (warp % (BM / WM)) * WM, wn0 = (warp / (BM / WM)) * WN;
    constexpr int A_BYTES = BM * BK * 2, B_BYTES = BN * BK * 2, ST = A_BYTES + B_BYTES;
    auto load = [&](int stage, int kt) {
        unsigned char* sa = smem + stage * ST;
        unsigned char* sb = sa + A_BYTES;
        for (int i = tid; i < BM * CPR; i += NT) {
            int r = i / CPR, c = i % CPR;
            cp16(sa + sw(r, c), w + (long long)(row0 + r) * K + kt * BK + c * 8);
        }
        for (int i = tid; i < BN * CPR; i += NT) {
            int r = i / CPR, c = i % CPR;
            cp16(sb + sw(r, c), x + (long long)(tok0 + r) * K + kt * BK + c * 8);
        }
    };
    float acc[FM][FN][4];
#pragma unroll
    for (int i = 0; i < FM; ++i)
#pragma unroll
        for (int j = 0; j < FN; ++j)
#pragma unroll
            for (int e = 0; e < 4; ++e) acc[i][j][e] = 0.f;
    const int KT = K / BK;
#pragma unroll
    for (int s = 0; s < STAGES - 1; ++s) {
        if (s < KT) load(s, s);
        asm volatile("cp.async.commit_group;");
    }
#pragma unroll 1
    for (int kt = 0; kt < KT; ++kt) {
        asm volatile("cp.async.wait_group %0;" ::"n"(STAGES - 2));
        __syncthreads();
        if (kt + STAGES - 1 < KT) load((kt + STAGES - 1) % STAGES, kt + STAGES - 1);
        asm volatile("cp.async.commit_group;");
        const unsigned char* sa = smem + (kt % STAGES) * ST;
        const unsigned char* sb = sa + A_BYTES;
#pragma unroll
        for (int kk = 0; kk < BK / 16; ++kk) {
            u32 a[FM][4], b[FN][2];
#pragma unroll
            for (int i = 0; i < FM; ++i) {
                // x4: matrices (rows 0-7,k0-7) (rows 8-15,k0-7) (rows 0-7,k8-15) (rows 8-15,k8-15)
                int r = wm0 + 16 * i + (lane & 15), c = 2 * kk + (lane >> 4);
                ldsm4(a[i], sa + sw(r, c));
            }
#pragma unroll
            for (int j = 0; j < FN; j += 2) {
                // x4: (toks j*8.., k0-7) (toks j*8.., k8-15) (toks j*8+8.., k0-7) (toks j*8+8.., k8-15)
                int r = wn0 + 8 * j + (lane & 7) + ((lane >> 4) << 3), c = 2 * kk + ((lane >> 3) & 1);
                u32 t[4];
                ldsm4(t, sb + sw(r, c));
                b[j][0] = t[0]; b[j][1] = t[1]; b[j + 1][0] = t[2]; b[j + 1][1] = t[3];
            }
#pragma unroll
            for (int i = 0; i < FM; ++i)
#pragma unroll
                for (int j = 0; j < FN; ++j)
                    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
                                 : "+f"(acc[i][j][0]), "+f"(acc[i][j][1]), "+f"(acc[i][j][2]), "+f"(acc[i][j][3])
                                 : "r"(a[i][0]), "r"(a[i][1]), "r"(a[i][2]), "r"(a[i][3]), "r"(b[j][0]), "r"(b[j][1]));
        }
    }
    asm volatile("cp.async.wait_group 0;");
    // C fragment: rows g, g+8; cols 2t, 2t+1 (rows = weight rows, cols = tokens)
    const int g = lane >> 2, t = lane & 3;
#pragma unroll
    for (int i = 0; i < FM; ++i)
#pragma unroll
        for (int j = 0; j < FN; ++j) {
            int r = row0 + wm0 + 16 * i + g, c = tok0 + wn0 + 8 * j + 2 * t;
            y[(long long)c * n_rows + r] = acc[i][j][0];
            y[(long long)(c + 1) * n_rows + r] = acc[i][j][1];
            y[(long long)c * n_rows + r + 8] = acc[i][j][2];
            y[(long long)(c + 1) * n_rows + r + 8] = acc[i][j][3];
        }
}
