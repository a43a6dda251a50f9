// ggml's kvalues_iq4nl (the 16 non-linear 4-bit levels of IQ4_NL and IQ4_XS), as the bytes of two
// 64-bit constants: a lookup in registers, with no table in memory.
__device__ __forceinline__ int iq4nl_value(int n) {
    const unsigned long long t = n < 8 ? 0xF6EADDCFBFAD9881ull : 0x7159453526190D01ull;
    return (int)(i8)(u8)(t >> (8 * (n & 7)));
}
