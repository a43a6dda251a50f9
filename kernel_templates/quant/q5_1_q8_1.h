// Q5_1 · q8_1 (int8 path): one unit per block (24 bytes, 4-aligned: word loads).
// Σu·a·(d·d8) + m·s8, as vec_dot_q5_1_q8_1 and src/quant/q5_1.rs.
constexpr int VDQ_UNITS = 1;
__device__ __forceinline__ float vec_dot_q8_1(const block_t* b, const block_q8_1* a, int) {
    const u32* words = (const u32*)b;
    const u32 dm = words[0], qh = words[1];
    int sumi = 0;
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        const u32 q = words[2 + i];
        const u32 lo = (q & 0x0F0F0F0Fu) | spread_bit4(qh >> (4 * i));
        const u32 hi = ((q >> 4) & 0x0F0F0F0Fu) | spread_bit4(qh >> (16 + 4 * i));
        sumi = rf_dot4_i8((int)lo, q8_int(a, i), sumi);
        sumi = rf_dot4_i8((int)hi, q8_int(a, i + 4), sumi);
    }
    return (float)sumi * (half_lo(dm) * q8_d(a)) + half_hi(dm) * q8_s(a);
}
