// mma.h: one warp's 16x16 int32 tile product C += A·Bᵀ over a 32-value chunk of K, int8 operands,
// on the target's matrix unit (the RF_MATRIX_* defines), with the fragment layouts of each:
//   mma.sync m16n8k32 / m16n8k16 .s8 (sm_80+, PTX ISA "Matrix Fragments for mma.m16n8k32"),
//   MFMA v_mfma_i32_16x16x16i8 (CDNA 1-2) and v_mfma_i32_16x16x32_i8 (CDNA 3-4), wave64,
//   WMMA v_wmma_i32_16x16x16_iu8 (RDNA 3: whole K-run a lane; RDNA 4: half of it), wave32;
//   without a matrix unit only C's element layout (mmq.hip takes the dot products itself).
// A lane fetches the operand ints its fragment holds through f(r, w): the int of 4 int8 at word
// w (0..7, values 4w..4w+3 of the chunk) of row r (0..15) of A (a weight row) or column r of B (a
// token), so the caller decides where they live (mmq.hip unpacks raw blocks in shared memory).
// HALF < 0 takes the whole chunk; HALF = 0 or 1 only its values 16·HALF .. 16·HALF + 15 (formats
// with one scale per 16 values). Lane l holds MMA_C elements of C, element i at (mma_row(i),
// mma_col(i)); C comes in as the accumulator's start, whatever it is.
__device__ __forceinline__ int mma_lane() { return (int)(threadIdx.x % WARP_SIZE); }

// Four bytes at a 2-aligned address (blocks of 18, 22, 34 or 210 bytes), little-endian.
__device__ __forceinline__ u32 ld_u32_a2(const void* p) {
    const u16* h = (const u16*)p;
    return (u32)h[0] | ((u32)h[1] << 16);
}

#if RF_MATRIX_MMA_SYNC
constexpr int MMA_C = 8;  // two m16n8 tiles: cols 0-7, then 8-15
__device__ __forceinline__ int mma_row(int i) { return (mma_lane() >> 2) + 8 * ((i >> 1) & 1); }
__device__ __forceinline__ int mma_col(int i) { return 8 * (i >> 2) + 2 * (mma_lane() & 3) + (i & 1); }
// A (row-major 16x32): x0 row g k 4t.., x1 row g+8, x2 row g k 16+4t.., x3 row g+8 k 16+4t..
struct mma_a { int x[4]; };
// B (col-major 32x16), per m16n8 half h: x[2h] col 8h+g k 4t.., x[2h+1] k 16+4t..
struct mma_b { int x[4]; };
template <int HALF, class F>
__device__ __forceinline__ void mma_load_a(mma_a& a, F f) {
    const int g = mma_lane() >> 2, t = mma_lane() & 3;
    a.x[0] = HALF == 1 ? 0 : f(g, t);
    a.x[1] = HALF == 1 ? 0 : f(g + 8, t);
    a.x[2] = HALF == 0 ? 0 : f(g, 4 + t);
    a.x[3] = HALF == 0 ? 0 : f(g + 8, 4 + t);
}
template <int HALF, class F>
__device__ __forceinline__ void mma_load_b(mma_b& b, F f) {
    const int g = mma_lane() >> 2, t = mma_lane() & 3;
#pragma unroll
    for (int h = 0; h < 2; ++h) {
        b.x[2 * h] = HALF == 1 ? 0 : f(8 * h + g, t);
        b.x[2 * h + 1] = HALF == 0 ? 0 : f(8 * h + g, 4 + t);
    }
}
template <int HALF>
__device__ __forceinline__ void mma_run(int* c, const mma_a& a, const mma_b& b) {
#pragma unroll
    for (int h = 0; h < 2; ++h) {
        // C and D are separate operands, so a C that is the same constant in every call stays
        // in one set of registers instead of being copied into each D first.
        int* d = c + 4 * h;
        const int c0 = d[0], c1 = d[1], c2 = d[2], c3 = d[3];
        if (HALF < 0) {
            asm("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%10,%11,%12,%13};"
                : "=r"(d[0]), "=r"(d[1]), "=r"(d[2]), "=r"(d[3])
                : "r"(a.x[0]), "r"(a.x[1]), "r"(a.x[2]), "r"(a.x[3]), "r"(b.x[2 * h]), "r"(b.x[2 * h + 1]),
                  "r"(c0), "r"(c1), "r"(c2), "r"(c3));
        } else {
            // m16n8k16: A rows g, g+8 and B col g over k 4t.. of the half.
            asm("mma.sync.aligned.m16n8k16.row.col.s32.s8.s8.s32 {%0,%1,%2,%3}, {%4,%5}, {%6}, {%7,%8,%9,%10};"
                : "=r"(d[0]), "=r"(d[1]), "=r"(d[2]), "=r"(d[3])
                : "r"(a.x[2 * (HALF > 0)]), "r"(a.x[2 * (HALF > 0) + 1]), "r"(b.x[2 * h + (HALF > 0)]),
                  "r"(c0), "r"(c1), "r"(c2), "r"(c3));
        }
    }
}

#elif RF_MATRIX_MFMA
typedef int rf_v4i __attribute__((ext_vector_type(4)));
constexpr int MMA_C = 4;  // D[4·(l/16) + i][l % 16]
__device__ __forceinline__ int mma_row(int i) { return 4 * (mma_lane() >> 4) + i; }
__device__ __forceinline__ int mma_col(int) { return mma_lane() & 15; }
#if RF_MATRIX_MFMA >= 3
// v_mfma_i32_16x16x32_i8: lane l holds row (col) l%16, K bytes 8·(l/16) .. +7 as one 64-bit
// operand; lanes 0-31 hold K 0-15, lanes 32-63 K 16-31.
struct mma_a { long long x; };
typedef mma_a mma_b;
template <int HALF, class F>
__device__ __forceinline__ void mma_load_a(mma_a& a, F f) {
    const int r = mma_lane() & 15, q = mma_lane() >> 4;
    const bool keep = HALF < 0 || (q >> 1) == HALF;
    a.x = keep ? (long long)(((unsigned long long)(u32)f(r, 2 * q + 1) << 32) | (u32)f(r, 2 * q)) : 0ll;
}
template <int HALF, class F>
__device__ __forceinline__ void mma_load_b(mma_b& b, F f) { mma_load_a<HALF>(b, f); }
template <int HALF>
__device__ __forceinline__ void mma_run(int* c, const mma_a& a, const mma_b& b) {
    rf_v4i acc = {c[0], c[1], c[2], c[3]};
    acc = __builtin_amdgcn_mfma_i32_16x16x32_i8(a.x, b.x, acc, 0, 0, 0);
#pragma unroll
    for (int i = 0; i < 4; ++i) c[i] = acc[i];
}
#else
// v_mfma_i32_16x16x16i8, once per half: lane l holds row (col) l%16, K bytes 16h + 4·(l/16) .. +3.
struct mma_a { int x[2]; };
typedef mma_a mma_b;
template <int HALF, class F>
__device__ __forceinline__ void mma_load_a(mma_a& a, F f) {
    const int r = mma_lane() & 15, q = mma_lane() >> 4;
    a.x[0] = HALF == 1 ? 0 : f(r, q);
    a.x[1] = HALF == 0 ? 0 : f(r, 4 + q);
}
template <int HALF, class F>
__device__ __forceinline__ void mma_load_b(mma_b& b, F f) { mma_load_a<HALF>(b, f); }
template <int HALF>
__device__ __forceinline__ void mma_run(int* c, const mma_a& a, const mma_b& b) {
    rf_v4i acc = {c[0], c[1], c[2], c[3]};
    if (HALF != 1) acc = __builtin_amdgcn_mfma_i32_16x16x16i8(a.x[0], b.x[0], acc, 0, 0, 0);
    if (HALF != 0) acc = __builtin_amdgcn_mfma_i32_16x16x16i8(a.x[1], b.x[1], acc, 0, 0, 0);
#pragma unroll
    for (int i = 0; i < 4; ++i) c[i] = acc[i];
}
#endif

#elif RF_MATRIX_WMMA
typedef int rf_v4i __attribute__((ext_vector_type(4)));
typedef int rf_v8i __attribute__((ext_vector_type(8)));
constexpr int MMA_C = 8;
#if RF_MATRIX_WMMA >= 4
// gfx12 v_wmma_i32_16x16x16_iu8, once per half: lane l holds row (col) l%16, K bytes
// 16h + 8·(l/16) .. +7; D[8·(l/16) + i][l % 16].
typedef int rf_v2i __attribute__((ext_vector_type(2)));
__device__ __forceinline__ int mma_row(int i) { return 8 * (mma_lane() >> 4) + i; }
__device__ __forceinline__ int mma_col(int) { return mma_lane() & 15; }
struct mma_a { rf_v2i x[2]; };
typedef mma_a mma_b;
template <int HALF, class F>
__device__ __forceinline__ void mma_load_a(mma_a& a, F f) {
    const int r = mma_lane() & 15, q = mma_lane() >> 4;
#pragma unroll
    for (int h = 0; h < 2; ++h) {
        const bool keep = HALF < 0 || HALF == h;
        a.x[h] = rf_v2i{keep ? f(r, 4 * h + 2 * q) : 0, keep ? f(r, 4 * h + 2 * q + 1) : 0};
    }
}
template <int HALF, class F>
__device__ __forceinline__ void mma_load_b(mma_b& b, F f) { mma_load_a<HALF>(b, f); }
template <int HALF>
__device__ __forceinline__ void mma_run(int* c, const mma_a& a, const mma_b& b) {
    rf_v8i acc = {c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]};
#pragma unroll
    for (int h = 0; h < 2; ++h) {
        if (HALF < 0 || HALF == h)
            acc = __builtin_amdgcn_wmma_i32_16x16x16_iu8_w32_gfx12(true, a.x[h], true, b.x[h], acc, false);
    }
#pragma unroll
    for (int i = 0; i < 8; ++i) c[i] = acc[i];
}
#else
// gfx11 v_wmma_i32_16x16x16_iu8, once per half: lane l holds row (col) l%16, all 16 K bytes of the
// half (lanes 16-31 repeat lanes 0-15); D[2i + l/16][l % 16].
__device__ __forceinline__ int mma_row(int i) { return 2 * i + (mma_lane() >> 4); }
__device__ __forceinline__ int mma_col(int) { return mma_lane() & 15; }
struct mma_a { rf_v4i x[2]; };
typedef mma_a mma_b;
template <int HALF, class F>
__device__ __forceinline__ void mma_load_a(mma_a& a, F f) {
    const int r = mma_lane() & 15;
#pragma unroll
    for (int h = 0; h < 2; ++h) {
        const bool keep = HALF < 0 || HALF == h;
        const int w = 4 * h;
        a.x[h] = rf_v4i{keep ? f(r, w) : 0, keep ? f(r, w + 1) : 0, keep ? f(r, w + 2) : 0, keep ? f(r, w + 3) : 0};
    }
}
template <int HALF, class F>
__device__ __forceinline__ void mma_load_b(mma_b& b, F f) { mma_load_a<HALF>(b, f); }
template <int HALF>
__device__ __forceinline__ void mma_run(int* c, const mma_a& a, const mma_b& b) {
    rf_v8i acc = {c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]};
#pragma unroll
    for (int h = 0; h < 2; ++h) {
        if (HALF < 0 || HALF == h)
            acc = __builtin_amdgcn_wmma_i32_16x16x16_iu8_w32(true, a.x[h], true, b.x[h], acc, false);
    }
#pragma unroll
    for (int i = 0; i < 8; ++i) c[i] = acc[i];
}
#endif

#else
// No matrix unit: only the element layout (mmq.hip takes each element's int8 dot products itself):
// lane l takes column l%16 and rows l/16 + i·(WARP_SIZE/16).
constexpr int MMA_C = 256 / WARP_SIZE;
__device__ __forceinline__ int mma_row(int i) { return (mma_lane() >> 4) + i * (WARP_SIZE / 16); }
__device__ __forceinline__ int mma_col(int) { return mma_lane() & 15; }
#endif
