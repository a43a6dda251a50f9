// Q5_0 for the int8 matrix product (mmq.hip): Q4_0's nibbles, value e's fifth bit is bit e of qh
// (qh and qs are one 2-aligned run of 5 words). d·(d8·Σu·a) − 16d·s8.
constexpr int MMQ_SPLIT16 = 0;
constexpr int MMQ_SUM = 1;
__device__ __forceinline__ void mmq_w_chunk(const block_t* row, int c, int* q) {
    u32 u[5];
    load_words_a2<5>(row[c].qh, u);
    const u32 qh = u[0];
#pragma unroll
    for (int w = 0; w < 4; ++w) {
        q[w] = (int)((u[1 + w] & 0x0F0F0F0Fu) | spread_bit4(qh >> (4 * w)));
        q[w + 4] = (int)(((u[1 + w] >> 4) & 0x0F0F0F0Fu) | spread_bit4(qh >> (4 * w + 16)));
    }
}
__device__ __forceinline__ void mmq_w_scale(const block_t* row, int c, float* d0, float* d1, float* m) {
    const float d = rf_half_to_float(row[c].d);
    *d0 = d;
    *d1 = d;
    *m = -16.0f * d;
}
