// Q4_1 for the int8 matrix product (mmq.hip): Q4_0's nibbles (20-byte blocks, 4-aligned).
// (d·d8)·Σu·a + m·s8.
constexpr int MMQ_SPLIT16 = 0;
constexpr int MMQ_SUM = 1;
__device__ __forceinline__ int mmq_w_int(const block_t* row, int c, int w) {
    const u32 q = ((const u32*)(row + c))[1 + (w & 3)];
    return (int)((w < 4 ? q : q >> 4) & 0x0F0F0F0Fu);
}
__device__ __forceinline__ void mmq_w_scale(const block_t* row, int c, float* d0, float* d1, float* m) {
    const u32 dm = ((const u32*)(row + c))[0];
    *d0 = half_lo(dm);
    *d1 = *d0;
    *m = half_hi(dm);
}
