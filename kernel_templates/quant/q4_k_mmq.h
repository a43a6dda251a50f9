// Q4_K for the int8 matrix product (mmq.hip): chunk c is sub-block j = c%8 of super-block c/8,
// the low (j even) or high nibbles of qs[32·(j/2) ..] (two 16-byte loads: 144-byte blocks, qs at
// byte 16). (d·sc_j)·(d8·Σu·a) − (dmin·m_j)·(d8·Σa): both scale products are exact in f32 (11-bit
// f16 times a 6-bit integer).
constexpr int MMQ_SPLIT16 = 0;
constexpr int MMQ_SUM = 2;
__device__ __forceinline__ void mmq_w_chunk(const block_t* row, int c, int* q) {
    const block_t* b = row + (c >> 3);
    const int j = c & 7, s = 4 * (j & 1);
    const uint4* p = (const uint4*)(b->qs + 32 * (j >> 1));
    const uint4 u0 = p[0], u1 = p[1];
    const u32 u[8] = {u0.x, u0.y, u0.z, u0.w, u1.x, u1.y, u1.z, u1.w};
#pragma unroll
    for (int w = 0; w < 8; ++w) q[w] = (int)((u[w] >> s) & 0x0F0F0F0Fu);
}
__device__ __forceinline__ void mmq_w_scale(const block_t* row, int c, float* d0, float* d1, float* m) {
    const block_t* b = row + (c >> 3);
    int sc, mn;
    k_scale_min(b->scales, c & 7, &sc, &mn);
    *d0 = rf_half_to_float(b->d) * (float)sc;
    *d1 = *d0;
    *m = -(rf_half_to_float(b->dmin) * (float)mn);
}
