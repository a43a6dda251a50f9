// Q6_K for the int8 matrix product (mmq.hip): chunk c is quarter k = c%4 of half h = (c%8)/4 of
// super-block c/8; value l takes its low bits from ql[64h + 32(k%2) + l] (nibble k/2) and its high
// two from qh[32h + l] (bits 2k), less 32. Values 0-15 and 16-31 of a chunk are groups 2j and
// 2j+1 (j = c%8) with their own scales: (d·sc)·(d8·Σ(u−32)·a) per group, exact scale products.
constexpr int MMQ_SPLIT16 = 1;
constexpr int MMQ_SUM = 0;
__device__ __forceinline__ int mmq_w_int(const block_t* row, int c, int w) {
    const block_t* b = row + (c >> 3);
    const int j = c & 7, h = j >> 2, k = j & 3;
    const u32 ql = ld_u32_a2(b->ql + 64 * h + 32 * (k & 1) + 4 * w);
    const u32 qh = ld_u32_a2(b->qh + 32 * h + 4 * w);
    const u32 u = ((ql >> (4 * (k >> 1))) & 0x0F0F0F0Fu) | (((qh >> (2 * k)) & 0x03030303u) << 4);
    return q6_signed(u);
}
__device__ __forceinline__ void mmq_w_scale(const block_t* row, int c, float* d0, float* d1, float* m) {
    const block_t* b = row + (c >> 3);
    const int j = c & 7;
    const float d = rf_half_to_float(b->d);
    *d0 = d * (float)b->scales[2 * j];
    *d1 = d * (float)b->scales[2 * j + 1];
    *m = 0.0f;
}
