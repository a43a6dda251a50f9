// IQ4_XS · q8_1 (int8 path): eight units per super-block (136 bytes, 8-aligned), unit ib on
// sub-block ib (qs[16ib..16ib+16], two 8-byte loads) and activation block ib:
// (d·d8)·(Σ table[q]·a·(sc − 32)), as vec_dot_iq4_xs_q8_1 and src/quant/iq4.rs.
constexpr int VDQ_UNITS = 8;
__device__ __forceinline__ float vec_dot_q8_1(const block_t* b, const block_q8_1* a, int ib) {
    const uint2 w0 = *(const uint2*)(b->qs + 16 * ib), w1 = *(const uint2*)(b->qs + 16 * ib + 8);
    const u32 q[4] = {w0.x, w0.y, w1.x, w1.y};
    const block_q8_1* ab = a + ib;
    return (rf_half_to_float(b->d) * q8_d(ab)) * (float)(iq4_dot32(q, ab) * iq4_xs_scale(b, ib));
}
