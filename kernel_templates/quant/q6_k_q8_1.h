// Q6_K · q8_1 (int8 path): eight units per super-block (210 bytes, 2-aligned: word loads
// realigned). Unit c = (half h, pair j, side s): ql[64h+32j+16s..+16] and qh[32h+16s..+16] give
// elements l = 16s..16s+15 of quarter j (low nibbles, qh bits 2j) and quarter j+2 (high nibbles,
// qh bits 2j+4) of half h: groups 8h+2j+s and 8h+2j+4+s, activation blocks 4h+j and 4h+j+2.
// Per group d8·(sc·Σ(u−32)·a), times d, as src/quant/q6_k.rs.
constexpr int VDQ_UNITS = 8;

// Four 6-bit quants u (bytes 0..63) to the signed bytes u − 32: flip bit 5, then copy the new
// bit 5 into bits 6 and 7 (0x20 · 6 = 0xC0, no carry between bytes).
__device__ __forceinline__ int q6_signed(u32 u) {
    const u32 t = u ^ 0x20202020u;
    return (int)(t | ((t & 0x20202020u) * 6u));
}

__device__ __forceinline__ float vec_dot_q8_1(const block_t* b, const block_q8_1* a, int c) {
    const int h = c >> 2, j = (c >> 1) & 1, s = c & 1;
    u32 ql[4], qh[4];
    load_words_a2<4>(b->ql + 64 * h + 32 * j + 16 * s, ql);
    load_words_a2<4>(b->qh + 32 * h + 16 * s, qh);
    const block_q8_1* a0 = a + 4 * h + j;
    const block_q8_1* a1 = a0 + 2;
    int s0 = 0, s1 = 0;
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        const u32 lo = (ql[i] & 0x0F0F0F0Fu) | (((qh[i] >> (2 * j)) & 0x03030303u) << 4);
        const u32 hi = ((ql[i] >> 4) & 0x0F0F0F0Fu) | (((qh[i] >> (2 * j + 4)) & 0x03030303u) << 4);
        s0 = rf_dot4_i8(q6_signed(lo), q8_int(a0, 4 * s + i), s0);
        s1 = rf_dot4_i8(q6_signed(hi), q8_int(a1, 4 * s + i), s1);
    }
    const int sc0 = b->scales[8 * h + 2 * j + s], sc1 = b->scales[8 * h + 2 * j + 4 + s];
    return rf_half_to_float(b->d) * (q8_d(a0) * (float)(s0 * sc0) + q8_d(a1) * (float)(s1 * sc1));
}
