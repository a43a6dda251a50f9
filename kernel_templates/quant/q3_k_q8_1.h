// Q3_K · q8_1 (int8 path): eight units per super-block (110 bytes, 2-aligned: word loads
// realigned), unit c on activation block c (elements 32c..32c+32, half h = c/4, quarter j = c%4):
// low bits 2j.. of qs[32h..32h+32], high bit c of hmask[0..32]. Per block d8·(sc0·Σq·a + sc1·Σq·a)
// over its two 16-value groups, times d, as src/quant/q3_k.rs.
constexpr int VDQ_UNITS = 8;

// Four 3-bit quants u (bytes 0..7) to the signed bytes u − 4: flip bit 2, then copy the new bit 2
// into bits 3-7 (0x04 · 0x3E = 0xF8, no carry between bytes).
__device__ __forceinline__ int q3_signed(u32 u) {
    const u32 t = u ^ 0x04040404u;
    return (int)(t | ((t & 0x04040404u) * 0x3Eu));
}

__device__ __forceinline__ float vec_dot_q8_1(const block_t* b, const block_q8_1* a, int c) {
    const int h = c >> 2, j = c & 3;
    u32 ql[8], hm[8];
    load_words_a2<8>(b->qs + 32 * h, ql);
    load_words_a2<8>(b->hmask, hm);
    const block_q8_1* ab = a + c;
    int s0 = 0, s1 = 0;
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        const u32 u0 = ((ql[i] >> (2 * j)) & 0x03030303u) | (((hm[i] >> c) & 0x01010101u) << 2);
        const u32 u1 = ((ql[i + 4] >> (2 * j)) & 0x03030303u) | (((hm[i + 4] >> c) & 0x01010101u) << 2);
        s0 = rf_dot4_i8(q3_signed(u0), q8_int(ab, i), s0);
        s1 = rf_dot4_i8(q3_signed(u1), q8_int(ab, i + 4), s1);
    }
    const int sc0 = q3_k_scale(b->scales, 2 * c), sc1 = q3_k_scale(b->scales, 2 * c + 1);
    return rf_half_to_float(b->d) * (q8_d(ab) * (float)(s0 * sc0 + s1 * sc1));
}
