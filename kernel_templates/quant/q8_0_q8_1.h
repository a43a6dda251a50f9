// Q8_0 · q8_1 (int8 path): two units per block, 16 quants each (read as four words).
// (d·d8)·Σq·a, as vec_dot_q8_0_q8_1 and src/quant/q8_0.rs.
constexpr int VDQ_UNITS = 2;
__device__ __forceinline__ float vec_dot_q8_1(const block_t* b, const block_q8_1* a, int unit) {
    u32 q[4];
    load_words_a2<4>(b->qs + 16 * unit, q);
    int sumi = 0;
#pragma unroll
    for (int i = 0; i < 4; ++i) sumi = rf_dot4_i8((int)q[i], q8_int(a, 4 * unit + i), sumi);
    return (rf_half_to_float(b->d) * q8_d(a)) * (float)sumi;
}
