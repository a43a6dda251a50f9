// mma.h: one warp's 16x16 int32 tile product D = A·Bᵀ + c0 over a 32-value chunk of K, int8
// operands, on the target's matrix unit (the RF_MATRIX_* defines), with the fragment layouts of each:
//   mma.sync m16n8k32 / m16n8k16 .s8 (sm_80+, PTX ISA "Matrix Fragments for mma.m16n8k32"),
//   MFMA v_mfma_i32_16x16x16i8 (CDNA 1-2) and v_mfma_i32_16x16x32_i8 (CDNA 3-4), wave64,
//   WMMA v_wmma_i32_16x16x16_iu8 (RDNA 3: whole K-run a lane; RDNA 4: half of it), wave32,
//   and, without a matrix unit, the int8 dot instruction (rf_dot4_i8) lane by lane.
// Operands sit in shared memory as ints of 4 int8 along K: row r of A (a weight row) and column n
// of B (a token) at p + r·ld, the chunk's 32 values in 8 consecutive ints (16-byte aligned rows on
// CUDA, where ldmatrix reads them). mma_load_a/b take the whole chunk; mma_run<HALF> multiplies it
// whole (HALF < 0) or only its values 16·HALF .. 16·HALF + 15 (formats with one scale per 16
// values), every element of D starting from c0 (an integer bias the caller removes). Lane l holds
// MMA_C elements of D, element i at (mma_row(i), mma_col(i)).
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
// Four 8x16-byte matrices at rows p + 8·(m & 1) and bytes 16·(m >> 1) (m = x index) for A; for B
// the x index m = 2h + kh takes rows 8h and bytes 16·kh. CUDA reads each fragment with one
// ldmatrix (lanes 8m .. 8m+7 give matrix m's row addresses); elsewhere (the host emulation) lane
// by lane, the same values.
template <bool B>
__device__ __forceinline__ void mma_load_x4(int* x, const int* p, int ld) {
#if defined(RF_BACKEND_CUDA)
    const int m = mma_lane() >> 3, rr = mma_lane() & 7;
    const int rm = B ? (m >> 1) : (m & 1), km = B ? (m & 1) : (m >> 1);
    const unsigned addr = (unsigned)__cvta_generic_to_shared(p + (8 * rm + rr) * ld + 4 * km);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];"
                 : "=r"(x[0]), "=r"(x[1]), "=r"(x[2]), "=r"(x[3])
                 : "r"(addr));
#else
    const int g = mma_lane() >> 2, t = mma_lane() & 3;
#pragma unroll
    for (int m = 0; m < 4; ++m) {
        const int rm = B ? (m >> 1) : (m & 1), km = B ? (m & 1) : (m >> 1);
        x[m] = p[(8 * rm + g) * ld + 4 * km + t];
    }
#endif
}
__device__ __forceinline__ void mma_load_a(mma_a& a, const int* p, int ld) { mma_load_x4<false>(a.x, p, ld); }
__device__ __forceinline__ void mma_load_b(mma_b& b, const int* p, int ld) { mma_load_x4<true>(b.x, p, ld); }
// D = A·B + c0: C is c0 in every register (ptxas keeps one quad of it), D fresh registers; the
// host emulation accumulates into d, hence d starts at c0.
template <int HALF>
__device__ __forceinline__ void mma_run(int* c, const mma_a& a, const mma_b& b, int c0) {
#pragma unroll
    for (int h = 0; h < 2; ++h) {
        int* d = c + 4 * h;
#pragma unroll
        for (int i = 0; i < 4; ++i) d[i] = c0;
        if (HALF < 0) {
            asm("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%10,%10,%10,%10};"
                : "=r"(d[0]), "=r"(d[1]), "=r"(d[2]), "=r"(d[3])
                : "r"(a.x[0]), "r"(a.x[1]), "r"(a.x[2]), "r"(a.x[3]), "r"(b.x[2 * h]), "r"(b.x[2 * h + 1]), "r"(c0));
        } else {
            // m16n8k16: A rows g, g+8 and B col g over k 4t.. of the half.
            asm("mma.sync.aligned.m16n8k16.row.col.s32.s8.s8.s32 {%0,%1,%2,%3}, {%4,%5}, {%6}, {%7,%7,%7,%7};"
                : "=r"(d[0]), "=r"(d[1]), "=r"(d[2]), "=r"(d[3])
                : "r"(a.x[2 * (HALF > 0)]), "r"(a.x[2 * (HALF > 0) + 1]), "r"(b.x[2 * h + (HALF > 0)]), "r"(c0));
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
// operand; lanes 0-31 hold K 0-15, lanes 32-63 K 16-31. A half takes A's bytes of the other
// half as zeros.
struct mma_a { long long x; };
typedef mma_a mma_b;
__device__ __forceinline__ void mma_load_a(mma_a& a, const int* p, int ld) {
    const int r = mma_lane() & 15, q = mma_lane() >> 4;
    const int* s = p + r * ld + 2 * q;
    a.x = (long long)(((unsigned long long)(u32)s[1] << 32) | (u32)s[0]);
}
__device__ __forceinline__ void mma_load_b(mma_b& b, const int* p, int ld) { mma_load_a(b, p, ld); }
template <int HALF>
__device__ __forceinline__ void mma_run(int* c, const mma_a& a, const mma_b& b, int c0) {
    const bool keep = HALF < 0 || (mma_lane() >> 5) == HALF;
    rf_v4i acc = {c0, c0, c0, c0};
    acc = __builtin_amdgcn_mfma_i32_16x16x32_i8(keep ? a.x : 0ll, b.x, acc, 0, 0, 0);
#pragma unroll
    for (int i = 0; i < 4; ++i) c[i] = acc[i];
}
#else
// v_mfma_i32_16x16x16i8, once per half: lane l holds row (col) l%16, K bytes 16h + 4·(l/16) .. +3.
struct mma_a { int x[2]; };
typedef mma_a mma_b;
__device__ __forceinline__ void mma_load_a(mma_a& a, const int* p, int ld) {
    const int r = mma_lane() & 15, q = mma_lane() >> 4;
    a.x[0] = p[r * ld + q];
    a.x[1] = p[r * ld + 4 + q];
}
__device__ __forceinline__ void mma_load_b(mma_b& b, const int* p, int ld) { mma_load_a(b, p, ld); }
template <int HALF>
__device__ __forceinline__ void mma_run(int* c, const mma_a& a, const mma_b& b, int c0) {
    rf_v4i acc = {c0, c0, c0, c0};
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
__device__ __forceinline__ void mma_load_a(mma_a& a, const int* p, int ld) {
    const int r = mma_lane() & 15, q = mma_lane() >> 4;
#pragma unroll
    for (int h = 0; h < 2; ++h) a.x[h] = rf_v2i{p[r * ld + 4 * h + 2 * q], p[r * ld + 4 * h + 2 * q + 1]};
}
__device__ __forceinline__ void mma_load_b(mma_b& b, const int* p, int ld) { mma_load_a(b, p, ld); }
template <int HALF>
__device__ __forceinline__ void mma_run(int* c, const mma_a& a, const mma_b& b, int c0) {
    rf_v8i acc = {c0, c0, c0, c0, c0, c0, c0, c0};
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
__device__ __forceinline__ void mma_load_a(mma_a& a, const int* p, int ld) {
    const int r = mma_lane() & 15;
#pragma unroll
    for (int h = 0; h < 2; ++h) {
        const int* s = p + r * ld + 4 * h;
        a.x[h] = rf_v4i{s[0], s[1], s[2], s[3]};
    }
}
__device__ __forceinline__ void mma_load_b(mma_b& b, const int* p, int ld) { mma_load_a(b, p, ld); }
template <int HALF>
__device__ __forceinline__ void mma_run(int* c, const mma_a& a, const mma_b& b, int c0) {
    rf_v8i acc = {c0, c0, c0, c0, c0, c0, c0, c0};
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
// No matrix unit: lane l takes column l%16 and rows l/16 + i·(WARP_SIZE/16), each by 8 (or 4)
// int8 dot instructions over its B column (held in registers) and the A row in shared memory.
constexpr int MMA_C = 256 / WARP_SIZE;
__device__ __forceinline__ int mma_row(int i) { return (mma_lane() >> 4) + i * (WARP_SIZE / 16); }
__device__ __forceinline__ int mma_col(int) { return mma_lane() & 15; }
struct mma_a { const int* p; int ld; };
struct mma_b { int x[8]; };
__device__ __forceinline__ void mma_load_a(mma_a& a, const int* p, int ld) {
    a.p = p;
    a.ld = ld;
}
__device__ __forceinline__ void mma_load_b(mma_b& b, const int* p, int ld) {
    const int* s = p + (mma_lane() & 15) * ld;
#pragma unroll
    for (int j = 0; j < 8; ++j) b.x[j] = s[j];
}
template <int HALF>
__device__ __forceinline__ void mma_run(int* c, const mma_a& a, const mma_b& b, int c0) {
    constexpr int J0 = HALF == 1 ? 4 : 0, J1 = HALF == 0 ? 4 : 8;
#pragma unroll
    for (int i = 0; i < MMA_C; ++i) {
        const int* s = a.p + mma_row(i) * a.ld;
        c[i] = c0;
#pragma unroll
        for (int j = J0; j < J1; ++j) c[i] = rf_dot4_i8(s[j], b.x[j], c[i]);
    }
}
#endif
