// Q5_1 for the int8 matrix product (mmq.hip): Q5_0's layout with a min (24-byte blocks,
// 4-aligned). (d·d8)·Σu·a + m·s8.
constexpr int MMQ_SPLIT16 = 0;
constexpr int MMQ_SUM = 1;
__device__ __forceinline__ int mmq_w_int(const block_t* row, int c, int w) {
    const u32* words = (const u32*)(row + c);
    const u32 q = words[2 + (w & 3)], qh = words[1];
    return (int)(((w < 4 ? q : q >> 4) & 0x0F0F0F0Fu) | spread_bit4(qh >> (4 * w)));
}
__device__ __forceinline__ void mmq_w_scale(const block_t* row, int c, float* d0, float* d1, float* m) {
    const u32 dm = ((const u32*)(row + c))[0];
    *d0 = half_lo(dm);
    *d1 = *d0;
    *m = half_hi(dm);
}
