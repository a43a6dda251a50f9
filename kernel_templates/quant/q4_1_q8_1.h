// Q4_1 · q8_1 (int8 path): one unit per block (20 bytes, 4-aligned: word loads).
// Σu·a·(d·d8) + m·s8, as vec_dot_q4_1_q8_1 and src/quant/q4_1.rs.
constexpr int VDQ_UNITS = 1;
__device__ __forceinline__ float vec_dot_q8_1(const block_t* b, const block_q8_1* a, int) {
    const u32* words = (const u32*)b;
    const u32 dm = words[0];
    int sumi = 0;
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        const u32 q = words[1 + i];
        sumi = rf_dot4_i8((int)(q & 0x0F0F0F0Fu), q8_int(a, i), sumi);
        sumi = rf_dot4_i8((int)((q >> 4) & 0x0F0F0F0Fu), q8_int(a, i + 4), sumi);
    }
    return (float)sumi * (half_lo(dm) * q8_d(a)) + half_hi(dm) * q8_s(a);
}
