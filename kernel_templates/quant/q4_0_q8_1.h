// Q4_0 · q8_1 (int8 path): one unit per block. Int i of qs holds elements 4i..4i+3 (low nibbles)
// and 16+4i.. (high nibbles); d·(d8·Σu·a − 8·s8), as vec_dot_q4_0_q8_1 and src/quant/q4_0.rs.
constexpr int VDQ_UNITS = 1;
__device__ __forceinline__ float vec_dot_q8_1(const block_t* b, const block_q8_1* a, int) {
    u32 q[4];
    load_words_a2<4>(b->qs, q);
    int sumi = 0;
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        sumi = rf_dot4_i8((int)(q[i] & 0x0F0F0F0Fu), q8_int(a, i), sumi);
        sumi = rf_dot4_i8((int)((q[i] >> 4) & 0x0F0F0F0Fu), q8_int(a, i + 4), sumi);
    }
    return rf_half_to_float(b->d) * ((float)sumi * q8_d(a) - 8.0f * q8_s(a));
}
