// Q2_K · q8_1 (int8 path): eight units per super-block (84 bytes, 4-aligned), unit c on
// activation block c (half h = c/4, quarter j = c%4): bits 2j.. of qs[32h..32h+32]. Its two
// 16-value groups' Σq·a times their scales and Σa (a dot with ones) times their minimums, in
// integers, then d·d8·Σ − dmin·d8·Σ, as vec_dot_q2_K_q8_1 and src/quant/q2_k.rs.
constexpr int VDQ_UNITS = 8;
__device__ __forceinline__ float vec_dot_q8_1(const block_t* b, const block_q8_1* a, int c) {
    const int h = c >> 2, j = c & 3;
    const u32* qw = (const u32*)(b->qs + 32 * h);
    const block_q8_1* ab = a + c;
    int s0 = 0, s1 = 0, m0 = 0, m1 = 0;
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        const int v0 = q8_int(ab, i), v1 = q8_int(ab, i + 4);
        s0 = rf_dot4_i8((int)((qw[i] >> (2 * j)) & 0x03030303u), v0, s0);
        s1 = rf_dot4_i8((int)((qw[i + 4] >> (2 * j)) & 0x03030303u), v1, s1);
        m0 = rf_dot4_i8(0x01010101, v0, m0);
        m1 = rf_dot4_i8(0x01010101, v1, m1);
    }
    const int sc0 = b->scales[2 * c], sc1 = b->scales[2 * c + 1];
    const float d8 = q8_d(ab);
    return rf_half_to_float(b->d) * (d8 * (float)(s0 * (sc0 & 0x0F) + s1 * (sc1 & 0x0F))) -
           rf_half_to_float(b->dmin) * (d8 * (float)(m0 * (sc0 >> 4) + m1 * (sc1 >> 4)));
}
