// Q8_0 for the int8 matrix product (mmq.hip): the block's signed bytes as they are. (d·d8)·Σq·a.
constexpr int MMQ_SPLIT16 = 0;
constexpr int MMQ_SUM = 0;
__device__ __forceinline__ int mmq_w_int(const block_t* row, int c, int w) { return (int)ld_u32_a2(row[c].qs + 4 * w); }
__device__ __forceinline__ void mmq_w_scale(const block_t* row, int c, float* d0, float* d1, float* m) {
    *d0 = rf_half_to_float(row[c].d);
    *d1 = *d0;
    *m = 0.0f;
}
