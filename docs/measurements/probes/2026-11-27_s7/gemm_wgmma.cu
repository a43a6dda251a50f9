// Prototype: Y[t][n] = sum_k W[n][k] * X[t][k] on Hopper's wgmma (sm_90a), W, X f16 K-major in
// shared memory in the 128-byte swizzle (16-byte chunk c of row r at r*128 + ((c ^ (r & 7)) << 4)).
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long long u64;
#ifndef STAGES
#define STAGES 4
#endif
#define BM 128
#ifndef PIPE
#define PIPE 0
#endif
#ifndef MINB
#define MINB 1
#endif
#define BN 128
#define BK 64
constexpr int NT = 256;   // two warpgroups, 64 rows each
__device__ __forceinline__ int sw(int row, int chunk) { return row * 128 + ((chunk ^ (row & 7)) << 4); }
__device__ __forceinline__ void cp16(void* s, const void* g) {
    u32 sa = (u32)__cvta_generic_to_shared(s);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"(sa), "l"(g));
}
__device__ __forceinline__ u64 desc(const void* p) {
    u64 a = (u32)__cvta_generic_to_shared(p);
    return ((a & 0x3FFFF) >> 4) | (1ull << 16) | ((u64)(1024 >> 4) << 32) | (1ull << 62);
}
__device__ __forceinline__ void wgmma(float* d, u64 da, u64 db, int scale_d) {
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n128k16.f32.f16.f16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, %64, %65, p, 1, 1, 0, 0;\n}\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
                 : "l"(da), "l"(db), "r"(scale_d));
}
extern "C" __global__ void __launch_bounds__(NT, MINB) gemm_wgmma(const u16* __restrict__ w, const u16* __restrict__ x, float* __restrict__ y, int n_rows, int n_tok, int K) {
    extern __shared__ __align__(1024) unsigned char smem[];
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, wg = warp >> 2;
    const int row0 = blockIdx.x * BM, tok0 = blockIdx.y * BN;
    constexpr int A_BYTES = BM * 128, B_BYTES = BN * 128, ST = A_BYTES + B_BYTES;
    if (tid == 0 && ((u32)__cvta_generic_to_shared(smem) & 1023)) __trap();
    auto load = [&](int stage, int kt) {
        unsigned char* sa = smem + stage * ST;
        unsigned char* sb = sa + A_BYTES;
#pragma unroll
        for (int i = tid; i < BM * 8; i += NT) cp16(sa + sw(i >> 3, i & 7), w + (long long)(row0 + (i >> 3)) * K + kt * BK + (i & 7) * 8);
#pragma unroll
        for (int i = tid; i < BN * 8; i += NT) cp16(sb + sw(i >> 3, i & 7), x + (long long)(tok0 + (i >> 3)) * K + kt * BK + (i & 7) * 8);
    };
    float d[64];
#pragma unroll
    for (int i = 0; i < 64; ++i) d[i] = 0.f;
    const int KT = K / BK;
#if PIPE
    // Loads run STAGES - 2 tiles ahead; wgmma of tile kt overlaps the issue of tile kt + 1.
#pragma unroll
    for (int s = 0; s < STAGES - 2; ++s) {
        if (s < KT) load(s, s);
        asm volatile("cp.async.commit_group;");
    }
#pragma unroll 1
    for (int kt = 0; kt < KT; ++kt) {
        asm volatile("cp.async.wait_group %0;" ::"n"(STAGES - 3));
        asm volatile("fence.proxy.async.shared::cta;");
        __syncthreads();   // every warpgroup's wgmma of tile kt - 2 is done (wait_group 1 below)
        if (kt + STAGES - 2 < KT) load((kt + STAGES - 2) % STAGES, kt + STAGES - 2);
        asm volatile("cp.async.commit_group;");
        const unsigned char* sa = smem + (kt % STAGES) * ST + wg * 64 * 128;
        const unsigned char* sb = smem + (kt % STAGES) * ST + A_BYTES;
        asm volatile("wgmma.fence.sync.aligned;" ::: "memory");
#pragma unroll
        for (int kk = 0; kk < 4; ++kk) wgmma(d, desc(sa) + 2 * kk, desc(sb) + 2 * kk, 1);
        asm volatile("wgmma.commit_group.sync.aligned;" ::: "memory");
        asm volatile("wgmma.wait_group.sync.aligned 1;" ::: "memory");
    }
    asm volatile("wgmma.wait_group.sync.aligned 0;" ::: "memory");
#else
#pragma unroll
    for (int s = 0; s < STAGES - 1; ++s) {
        if (s < KT) load(s, s);
        asm volatile("cp.async.commit_group;");
    }
#pragma unroll 1
    for (int kt = 0; kt < KT; ++kt) {
        asm volatile("cp.async.wait_group %0;" ::"n"(STAGES - 2));
        asm volatile("fence.proxy.async.shared::cta;");
        __syncthreads();
        if (kt + STAGES - 1 < KT) load((kt + STAGES - 1) % STAGES, kt + STAGES - 1);
        asm volatile("cp.async.commit_group;");
        const unsigned char* sa = smem + (kt % STAGES) * ST + wg * 64 * 128;
        const unsigned char* sb = smem + (kt % STAGES) * ST + A_BYTES;
        asm volatile("wgmma.fence.sync.aligned;" ::: "memory");
#pragma unroll
        for (int kk = 0; kk < 4; ++kk) wgmma(d, desc(sa) + 2 * kk, desc(sb) + 2 * kk, 1);
        asm volatile("wgmma.commit_group.sync.aligned;" ::: "memory");
        asm volatile("wgmma.wait_group.sync.aligned 0;" ::: "memory");
    }
#endif
    asm volatile("cp.async.wait_group 0;");
    const int r = row0 + wg * 64 + (warp & 3) * 16 + (lane >> 2);
#pragma unroll
    for (int j = 0; j < 16; ++j) {
        const int c = tok0 + 8 * j + 2 * (lane & 3);
        y[(long long)c * n_rows + r] = d[4 * j];
        y[(long long)(c + 1) * n_rows + r] = d[4 * j + 1];
        y[(long long)c * n_rows + r + 8] = d[4 * j + 2];
        y[(long long)(c + 1) * n_rows + r + 8] = d[4 * j + 3];
    }
}
