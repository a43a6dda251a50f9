// mma_f16.h: one warp's f16 tile products for flash attention on the target's matrix unit, f32
// accumulators. A warp owns 16 queries. Its scores S = Q·Kᵀ over a tile of 16 keys and its output
// O += P·V over a tile of 16 head dims are 16x16 f32 tiles; a lane holds FA_C elements of each,
// element i belonging to query row fa_query(fa_slot(i)) (a lane serves FA_ROWS queries) and to
// key (or dim) fa_col(i). A query's row is spread over lanes: fa_row_max / fa_row_sum reduce over
// the lanes that share it. Operands sit in shared memory as rows of f16 bits, `ld` halves apart,
// every row 16-byte aligned: Q rows are queries, K and V rows positions, each over head dims.
//   mma.sync m16n8k16 .f16 (sm_80+): S = Q·Kᵀ, P taken from S's registers as the A operand of
//     O = P·V (PTX ISA "Matrix Fragments for mma.m16n8k16"); ldmatrix loads Q and K, and V
//     transposed (.trans) as P·V's B operand.
//   MFMA v_mfma_f32_16x16x16f16 (CDNA, wave64) and WMMA v_wmma_f32_16x16x16_f16 (RDNA 3 and 4,
//     wave32): the transposed products Sᵀ = K·Qᵀ and Oᵀ = Vᵀ·Pᵀ, whose result tiles give each
//     lane one query column (lane % 16), so that Sᵀ's registers are already Pᵀ's B operand
//     (RDNA 3 swaps half of them with the other half-wave, which holds the query's other keys).
__device__ __forceinline__ int fa_lane() { return (int)(threadIdx.x % WARP_SIZE); }

// Two f32 as f16 bits in one word, `lo` in the low half.
__device__ __forceinline__ u32 fa_pack(float lo, float hi) { return (u32)rf_float_to_half(lo) | ((u32)rf_float_to_half(hi) << 16); }

#if RF_MATRIX_MMA_SYNC
constexpr int FA_C = 8;     // two m16n8 tiles: cols 0-7, then 8-15
constexpr int FA_ROWS = 2;  // rows g and g + 8
__device__ __forceinline__ int fa_slot(int i) { return (i >> 1) & 1; }
__device__ __forceinline__ int fa_query(int slot) { return (fa_lane() >> 2) + 8 * slot; }
__device__ __forceinline__ int fa_col(int i) { return 8 * (i >> 2) + 2 * (fa_lane() & 3) + (i & 1); }
// A row lives in the 4 lanes of a quad.
__device__ __forceinline__ float fa_row_max(float v) {
    v = fmaxf(v, rf_shfl_xor(v, 1));
    return fmaxf(v, rf_shfl_xor(v, 2));
}
__device__ __forceinline__ float fa_row_sum(float v) {
    v += rf_shfl_xor(v, 1);
    return v + rf_shfl_xor(v, 2);
}
// A operand (16x16, row-major): x0 row g k 2t.., x1 row g+8, x2 row g k 8+2t.., x3 row g+8 k 8+2t..
struct fa_q { u32 x[4]; };
typedef fa_q fa_p;
// B operands of the two m16n8 halves h: x[2h] k 2t.. col 8h+g, x[2h+1] k 8+2t.. col 8h+g.
struct fa_k { u32 x[4]; };
typedef fa_k fa_v;
// The shared-memory window address ldmatrix takes.
__device__ __forceinline__ u32 fa_smem(const void* p) {
    u32 a;
    asm("{ .reg .u64 t; cvta.to.shared.u64 t, %1; cvt.u32.u64 %0, t; }" : "=r"(a) : "l"(p));
    return a;
}
// Four 8x8 matrices of f16; lane l gives the address of row l % 8 of matrix l / 8 and receives
// (row l / 4, cols 2(l % 4), +1) of each (of the transposed matrices with TRANS). volatile: the
// loads read shared memory written before a barrier and must stay after it.
template <bool TRANS>
__device__ __forceinline__ void fa_ldmatrix(u32* r, const u16* p) {
    if (TRANS)
        asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];"
                     : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                     : "r"(fa_smem(p)));
    else
        asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];"
                     : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                     : "r"(fa_smem(p)));
}
// Matrices rows 0-7 | 8-15 at dims 0-7, then the same at dims 8-15.
__device__ __forceinline__ void fa_load_q(fa_q& a, const u16* p, int ld) {
    fa_ldmatrix<false>(a.x, p + (fa_lane() & 15) * ld + 8 * (fa_lane() >> 4));
}
// Matrices keys 0-7 at dims 0-7 | 8-15, then keys 8-15.
__device__ __forceinline__ void fa_load_k(fa_k& b, const u16* p, int ld) {
    const int j = fa_lane() >> 3, r = fa_lane() & 7;
    fa_ldmatrix<false>(b.x, p + (8 * (j >> 1) + r) * ld + 8 * (j & 1));
}
// Transposed matrices keys 0-7 | 8-15 at dims 0-7, then at dims 8-15: B[k = key][n = dim].
__device__ __forceinline__ void fa_load_v(fa_v& b, const u16* p, int ld) {
    const int j = fa_lane() >> 3, r = fa_lane() & 7;
    fa_ldmatrix<true>(b.x, p + (8 * (j & 1) + r) * ld + 8 * (j >> 1));
}
__device__ __forceinline__ void fa_mma(float* d, const u32* a, const u32* b) {
#pragma unroll
    for (int h = 0; h < 2; ++h) {
        float* c = d + 4 * h;
        asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
            : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
            : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[2 * h]), "r"(b[2 * h + 1]));
    }
}
__device__ __forceinline__ void fa_mma_qk(float* s, const fa_q& q, const fa_k& k) { fa_mma(s, q.x, k.x); }
__device__ __forceinline__ void fa_mma_pv(float* o, const fa_p& p, const fa_v& v) { fa_mma(o, p.x, v.x); }
// S's accumulator layout is the A operand's: (row g, cols 2t, 2t+1) of each half become one word.
__device__ __forceinline__ void fa_make_p(fa_p& a, const float* s) {
#pragma unroll
    for (int j = 0; j < 4; ++j) a.x[j] = fa_pack(s[2 * j], s[2 * j + 1]);
}

#elif RF_MATRIX_MFMA
// v_mfma_f32_16x16x16f16: A lane l row l%16, k 4(l/16)..+3; B lane l col l%16, the same k;
// D[4(l/16) + i][l%16]. With Sᵀ = K·Qᵀ lane l holds query l%16, keys 4(l/16) + i.
typedef _Float16 fa_h4 __attribute__((ext_vector_type(4)));
typedef float fa_f4 __attribute__((ext_vector_type(4)));
constexpr int FA_C = 4;
constexpr int FA_ROWS = 1;
__device__ __forceinline__ int fa_slot(int) { return 0; }
__device__ __forceinline__ int fa_query(int) { return fa_lane() & 15; }
__device__ __forceinline__ int fa_col(int i) { return 4 * (fa_lane() >> 4) + i; }
__device__ __forceinline__ float fa_row_max(float v) {
    v = fmaxf(v, rf_shfl_xor(v, 16));
    return fmaxf(v, rf_shfl_xor(v, 32));
}
__device__ __forceinline__ float fa_row_sum(float v) {
    v += rf_shfl_xor(v, 16);
    return v + rf_shfl_xor(v, 32);
}
struct fa_q { fa_h4 x; };
typedef fa_q fa_k;
typedef fa_q fa_p;
typedef fa_q fa_v;
__device__ __forceinline__ void fa_load_q(fa_q& a, const u16* p, int ld) {
    a.x = *(const fa_h4*)(p + (fa_lane() & 15) * ld + 4 * (fa_lane() >> 4));
}
__device__ __forceinline__ void fa_load_k(fa_k& a, const u16* p, int ld) { fa_load_q(a, p, ld); }
// Vᵀ as the A operand: dim l%16, keys 4(l/16)..+3, one from each of four rows.
__device__ __forceinline__ void fa_load_v(fa_v& a, const u16* p, int ld) {
    const u16* s = p + 4 * (fa_lane() >> 4) * ld + (fa_lane() & 15);
#pragma unroll
    for (int i = 0; i < 4; ++i) a.x[i] = __builtin_bit_cast(_Float16, s[i * ld]);
}
__device__ __forceinline__ void fa_mfma(float* d, fa_h4 a, fa_h4 b) {
    fa_f4 acc = {d[0], d[1], d[2], d[3]};
    acc = __builtin_amdgcn_mfma_f32_16x16x16f16(a, b, acc, 0, 0, 0);
#pragma unroll
    for (int i = 0; i < 4; ++i) d[i] = acc[i];
}
__device__ __forceinline__ void fa_mma_qk(float* s, const fa_q& q, const fa_k& k) { fa_mfma(s, k.x, q.x); }
__device__ __forceinline__ void fa_mma_pv(float* o, const fa_p& p, const fa_v& v) { fa_mfma(o, v.x, p.x); }
__device__ __forceinline__ void fa_make_p(fa_p& b, const float* s) {
#pragma unroll
    for (int i = 0; i < 4; ++i) b.x[i] = (_Float16)s[i];
}

#elif RF_MATRIX_WMMA
typedef float fa_f8 __attribute__((ext_vector_type(8)));
constexpr int FA_C = 8;
constexpr int FA_ROWS = 1;
__device__ __forceinline__ int fa_slot(int) { return 0; }
__device__ __forceinline__ int fa_query(int) { return fa_lane() & 15; }
__device__ __forceinline__ float fa_row_max(float v) { return fmaxf(v, rf_shfl_xor(v, 16)); }
__device__ __forceinline__ float fa_row_sum(float v) { return v + rf_shfl_xor(v, 16); }
#if RF_MATRIX_WMMA >= 4
// gfx12 v_wmma_f32_16x16x16_f16: A lane l row l%16, k 8(l/16)..+7; B lane l col l%16, the same k;
// D[8(l/16) + i][l%16]. With Sᵀ = K·Qᵀ lane l holds query l%16, keys 8(l/16) + i: Pᵀ's B operand.
typedef _Float16 fa_h8 __attribute__((ext_vector_type(8)));
__device__ __forceinline__ int fa_col(int i) { return 8 * (fa_lane() >> 4) + i; }
struct fa_q { fa_h8 x; };
typedef fa_q fa_k;
typedef fa_q fa_p;
typedef fa_q fa_v;
__device__ __forceinline__ void fa_load_q(fa_q& a, const u16* p, int ld) {
    a.x = *(const fa_h8*)(p + (fa_lane() & 15) * ld + 8 * (fa_lane() >> 4));
}
__device__ __forceinline__ void fa_load_k(fa_k& a, const u16* p, int ld) { fa_load_q(a, p, ld); }
__device__ __forceinline__ void fa_load_v(fa_v& a, const u16* p, int ld) {
    const u16* s = p + 8 * (fa_lane() >> 4) * ld + (fa_lane() & 15);
#pragma unroll
    for (int i = 0; i < 8; ++i) a.x[i] = __builtin_bit_cast(_Float16, s[i * ld]);
}
__device__ __forceinline__ void fa_wmma(float* d, fa_h8 a, fa_h8 b) {
    fa_f8 acc = {d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]};
    acc = __builtin_amdgcn_wmma_f32_16x16x16_f16_w32_gfx12(a, b, acc);
#pragma unroll
    for (int i = 0; i < 8; ++i) d[i] = acc[i];
}
__device__ __forceinline__ void fa_make_p(fa_p& b, const float* s) {
#pragma unroll
    for (int i = 0; i < 8; ++i) b.x[i] = (_Float16)s[i];
}
#else
// gfx11 v_wmma_f32_16x16x16_f16: A lane l row l%16, all 16 k; B lane l col l%16, all k (lanes
// 16-31 repeat lanes 0-15); D[2i + l/16][l%16]. With Sᵀ = K·Qᵀ lane l holds query l%16, keys
// 2i + l/16: Pᵀ's B operand needs the other half-wave's 8 keys of the same query too.
typedef _Float16 fa_h16 __attribute__((ext_vector_type(16)));
__device__ __forceinline__ int fa_col(int i) { return 2 * i + (fa_lane() >> 4); }
struct fa_q { fa_h16 x; };
typedef fa_q fa_k;
typedef fa_q fa_p;
typedef fa_q fa_v;
// Rows are 16-byte aligned: two 16-byte loads (the 32-byte vector type would claim more).
typedef _Float16 fa_h8 __attribute__((ext_vector_type(8)));
__device__ __forceinline__ void fa_load_q(fa_q& a, const u16* p, int ld) {
    const fa_h8* s = (const fa_h8*)(p + (fa_lane() & 15) * ld);
    a.x = __builtin_shufflevector(s[0], s[1], 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
}
__device__ __forceinline__ void fa_load_k(fa_k& a, const u16* p, int ld) { fa_load_q(a, p, ld); }
__device__ __forceinline__ void fa_load_v(fa_v& a, const u16* p, int ld) {
    const u16* s = p + (fa_lane() & 15);
#pragma unroll
    for (int i = 0; i < 16; ++i) a.x[i] = __builtin_bit_cast(_Float16, s[i * ld]);
}
__device__ __forceinline__ void fa_wmma(float* d, fa_h16 a, fa_h16 b) {
    fa_f8 acc = {d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]};
    acc = __builtin_amdgcn_wmma_f32_16x16x16_f16_w32(a, b, acc);
#pragma unroll
    for (int i = 0; i < 8; ++i) d[i] = acc[i];
}
// Own keys 2i + h (h = l/16), the other half-wave's 2i + 1 - h, exchanged two per word.
__device__ __forceinline__ void fa_make_p(fa_p& b, const float* s) {
    const bool h = fa_lane() >> 4;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
        const u32 mine = fa_pack(s[2 * j], s[2 * j + 1]);
        const u32 theirs = (u32)rf_shfl_xor_int((int)mine, 16);
#pragma unroll
        for (int e = 0; e < 2; ++e) {
            const _Float16 m = __builtin_bit_cast(_Float16, (u16)(mine >> (16 * e)));
            const _Float16 t = __builtin_bit_cast(_Float16, (u16)(theirs >> (16 * e)));
            const int i = 2 * j + e;
            b.x[2 * i] = h ? t : m;
            b.x[2 * i + 1] = h ? m : t;
        }
    }
}
#endif
__device__ __forceinline__ void fa_mma_qk(float* s, const fa_q& q, const fa_k& k) { fa_wmma(s, k.x, q.x); }
__device__ __forceinline__ void fa_mma_pv(float* o, const fa_p& p, const fa_v& v) { fa_wmma(o, v.x, p.x); }

#else
#error "mma_f16.h is rendered only for a target with a matrix unit (the f32 flash_attn.hip runs elsewhere)"
#endif
