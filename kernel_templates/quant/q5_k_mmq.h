// Q5_K for the int8 matrix product (mmq.hip): Q4_K's nibbles and scales, value l of sub-block j
// takes its fifth bit from bit j of qh[l] (176-byte blocks: qh at byte 16, qs at 48, 16-byte loads).
constexpr int MMQ_SPLIT16 = 0;
constexpr int MMQ_SUM = 2;
__device__ __forceinline__ void mmq_w_chunk(const block_t* row, int c, int* q) {
    const block_t* b = row + (c >> 3);
    const int j = c & 7, s = 4 * (j & 1);
    const uint4* p = (const uint4*)(b->qs + 32 * (j >> 1));
    const uint4* ph = (const uint4*)b->qh;
    const uint4 u0 = p[0], u1 = p[1], h0 = ph[0], h1 = ph[1];
    const u32 u[8] = {u0.x, u0.y, u0.z, u0.w, u1.x, u1.y, u1.z, u1.w};
    const u32 h[8] = {h0.x, h0.y, h0.z, h0.w, h1.x, h1.y, h1.z, h1.w};
#pragma unroll
    for (int w = 0; w < 8; ++w) q[w] = (int)(((u[w] >> s) & 0x0F0F0F0Fu) | (((h[w] >> j) & 0x01010101u) << 4));
}
__device__ __forceinline__ void mmq_w_scale(const block_t* row, int c, float* d0, float* d1, float* m) {
    const block_t* b = row + (c >> 3);
    int sc, mn;
    k_scale_min(b->scales, c & 7, &sc, &mn);
    *d0 = rf_half_to_float(b->d) * (float)sc;
    *d1 = *d0;
    *m = -(rf_half_to_float(b->dmin) * (float)mn);
}
