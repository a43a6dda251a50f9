// Shared by IQ4_NL and IQ4_XS · q8_1 (int8 path): four 4-bit indices (bits 0-3 of each byte of
// q) to the four kvalues_iq4nl bytes they select, packed for rf_dot4_i8.
__device__ __forceinline__ int iq4nl_pack4(u32 q) {
    u32 r = 0;
#pragma unroll
    for (int i = 0; i < 4; ++i) r |= ((u32)iq4nl_value((int)((q >> (8 * i)) & 0x0Fu)) & 0xFFu) << (8 * i);
    return (int)r;
}

// Σ table[q]·a over 32 values: words q[0..4] of 16 bytes of nibbles (low nibbles elements 0-15,
// high nibbles 16-31) against one activation block.
__device__ __forceinline__ int iq4_dot32(const u32* q, const block_q8_1* a) {
    int sumi = 0;
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        sumi = rf_dot4_i8(iq4nl_pack4(q[i] & 0x0F0F0F0Fu), q8_int(a, i), sumi);
        sumi = rf_dot4_i8(iq4nl_pack4((q[i] >> 4) & 0x0F0F0F0Fu), q8_int(a, i + 4), sumi);
    }
    return sumi;
}
