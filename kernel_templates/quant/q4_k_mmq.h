// Q4_K for the int8 matrix product (mmq.hip): chunk c is sub-block j = c%8 of super-block c/8,
// the low (j even) or high nibbles of qs[32·(j/2) ..]. (d·sc_j)·(d8·Σu·a) − (dmin·m_j)·(d8·Σa):
// both scale products are exact in f32 (11-bit f16 times a 6-bit integer).
constexpr int MMQ_SPLIT16 = 0;
constexpr int MMQ_SUM = 2;
__device__ __forceinline__ int mmq_w_int(const block_t* row, int c, int w) {
    const block_t* b = row + (c >> 3);
    const int j = c & 7;
    const u32 q = *(const u32*)(b->qs + 32 * (j >> 1) + 4 * w);
    return (int)((q >> (4 * (j & 1))) & 0x0F0F0F0Fu);
}
__device__ __forceinline__ void mmq_w_scale(const block_t* row, int c, float* d0, float* d1, float* m) {
    const block_t* b = row + (c >> 3);
    int sc, mn;
    k_scale_min(b->scales, c & 7, &sc, &mn);
    *d0 = rf_half_to_float(b->d) * (float)sc;
    *d1 = *d0;
    *m = -(rf_half_to_float(b->dmin) * (float)mn);
}
