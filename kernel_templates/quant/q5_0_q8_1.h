// Q5_0 · q8_1 (int8 path): one unit per block; qh and qs (bytes 2..22) read as five words.
// d·(d8·Σu·a − 16·s8), as vec_dot_q5_0_q8_1 and src/quant/q5_0.rs.
constexpr int VDQ_UNITS = 1;
__device__ __forceinline__ float vec_dot_q8_1(const block_t* b, const block_q8_1* a, int) {
    u32 r[5];
    load_words_a2<5>(b->qh, r);
    const u32 qh = r[0];
    int sumi = 0;
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        const u32 lo = (r[1 + i] & 0x0F0F0F0Fu) | spread_bit4(qh >> (4 * i));
        const u32 hi = ((r[1 + i] >> 4) & 0x0F0F0F0Fu) | spread_bit4(qh >> (16 + 4 * i));
        sumi = rf_dot4_i8((int)lo, q8_int(a, i), sumi);
        sumi = rf_dot4_i8((int)hi, q8_int(a, i + 4), sumi);
    }
    return rf_half_to_float(b->d) * ((float)sumi * q8_d(a) - 16.0f * q8_s(a));
}
