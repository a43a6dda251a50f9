// Q5_0 for the int8 matrix product (mmq.hip): Q4_0's nibbles, value e's fifth bit is bit e of qh.
// d·(d8·Σu·a) − 16d·s8.
constexpr int MMQ_SPLIT16 = 0;
constexpr int MMQ_SUM = 1;
__device__ __forceinline__ int mmq_w_int(const block_t* row, int c, int w) {
    const block_t* b = row + c;
    const u32 q = ld_u32_a2(b->qs + 4 * (w & 3)), qh = ld_u32_a2(b->qh);
    return (int)(((w < 4 ? q : q >> 4) & 0x0F0F0F0Fu) | spread_bit4(qh >> (4 * w)));
}
__device__ __forceinline__ void mmq_w_scale(const block_t* row, int c, float* d0, float* d1, float* m) {
    const float d = rf_half_to_float(row[c].d);
    *d0 = d;
    *d1 = d;
    *m = -16.0f * d;
}
