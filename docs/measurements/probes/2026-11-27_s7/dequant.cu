// Prototype: Q4_K rows -> f16 rows (ggml's dequantize_row_q4_K arithmetic, rounded to f16 once).
#include <cuda_fp16.h>
typedef unsigned char u8;
struct __align__(4) bq4k { __half d, dmin; u8 scales[12]; u8 qs[128]; };
extern "C" __global__ void dq_q4_k(const bq4k* __restrict__ w, __half* __restrict__ out, long long nblocks) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;   // 16 threads a block
    long long b = i >> 4;
    if (b >= nblocks) return;
    const int part = i & 15, g = part >> 2, l0 = (part & 3) * 8;
    const bq4k* blk = w + b;
    const float d = __half2float(blk->d), dmin = __half2float(blk->dmin);
    const u8* q = blk->scales;
    auto sm = [&](int j, int& sc, int& m) {
        if (j < 4) { sc = q[j] & 63; m = q[j + 4] & 63; }
        else { sc = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4); m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4); }
    };
    int s0, m0, s1, m1; sm(2 * g, s0, m0); sm(2 * g + 1, s1, m1);
    const float d0 = d * s0, mm0 = dmin * m0, d1 = d * s1, mm1 = dmin * m1;
    const uint2 qq = *(const uint2*)(blk->qs + 32 * g + l0);
    const u8* qb = (const u8*)&qq;
    __align__(16) __half lo[8], hi[8];
#pragma unroll
    for (int k = 0; k < 8; ++k) { lo[k] = __float2half_rn(d0 * (qb[k] & 15) - mm0); hi[k] = __float2half_rn(d1 * (qb[k] >> 4) - mm1); }
    __half* o = out + b * 256 + 64 * g + l0;
    *(uint4*)o = *(const uint4*)lo;
    *(uint4*)(o + 32) = *(const uint4*)hi;
}
