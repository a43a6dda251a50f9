// Q4_0 for the int8 matrix product (mmq.hip): chunk c is block c; int w holds values 4w..4w+3,
// the low nibbles of qs[4w..] (w < 4) or the high nibbles of qs[4(w-4)..]. d·(d8·Σu·a) − 8d·s8.
constexpr int MMQ_SPLIT16 = 0;
constexpr int MMQ_SUM = 1;
__device__ __forceinline__ int mmq_w_int(const block_t* row, int c, int w) {
    const u32 q = ld_u32_a2(row[c].qs + 4 * (w & 3));
    return (int)((w < 4 ? q : q >> 4) & 0x0F0F0F0Fu);
}
__device__ __forceinline__ void mmq_w_scale(const block_t* row, int c, float* d0, float* d1, float* m) {
    const float d = rf_half_to_float(row[c].d);
    *d0 = d;
    *d1 = d;
    *m = -8.0f * d;
}
