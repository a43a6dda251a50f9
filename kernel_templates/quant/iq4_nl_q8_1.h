// IQ4_NL · q8_1 (int8 path): one unit per block (18 bytes, 2-aligned: word loads realigned);
// (d·d8)·Σ table[q]·a, as vec_dot_iq4_nl_q8_1 and src/quant/iq4.rs.
constexpr int VDQ_UNITS = 1;
__device__ __forceinline__ float vec_dot_q8_1(const block_t* b, const block_q8_1* a, int) {
    u32 q[4];
    load_words_a2<4>(b->qs, q);
    return (rf_half_to_float(b->d) * q8_d(a)) * (float)iq4_dot32(q, a);
}
