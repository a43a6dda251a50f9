// Q5_K for the int8 matrix product (mmq.hip): Q4_K's nibbles and scales, value l of sub-block j
// takes its fifth bit from bit j of qh[l].
constexpr int MMQ_SPLIT16 = 0;
constexpr int MMQ_SUM = 2;
__device__ __forceinline__ int mmq_w_int(const block_t* row, int c, int w) {
    const block_t* b = row + (c >> 3);
    const int j = c & 7;
    const u32 q = *(const u32*)(b->qs + 32 * (j >> 1) + 4 * w);
    const u32 qh = *(const u32*)(b->qh + 4 * w);
    return (int)(((q >> (4 * (j & 1))) & 0x0F0F0F0Fu) | (((qh >> j) & 0x01010101u) << 4));
}
__device__ __forceinline__ void mmq_w_scale(const block_t* row, int c, float* d0, float* d1, float* m) {
    const block_t* b = row + (c >> 3);
    int sc, mn;
    k_scale_min(b->scales, c & 7, &sc, &mn);
    *d0 = rf_half_to_float(b->d) * (float)sc;
    *d1 = *d0;
    *m = -(rf_half_to_float(b->dmin) * (float)mn);
}
