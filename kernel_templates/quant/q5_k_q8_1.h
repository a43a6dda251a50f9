// Q5_K · q8_1 (int8 path): Q4_K's units (176-byte super-blocks, 16-aligned); unit c also loads
// qh[16·(c%2)..+16], whose bits 2·(c/2) and 2·(c/2)+1 are the fifth bits of its two runs.
constexpr int VDQ_UNITS = 8;
__device__ __forceinline__ float vec_dot_q8_1(const block_t* b, const block_q8_1* a, int c) {
    const int g = c >> 1, half = c & 1;
    const uint4 h = *(const uint4*)b;
    const uint4 q = *(const uint4*)(b->qs + 16 * c);
    const uint4 hb = *(const uint4*)(b->qh + 16 * half);
    const u32 qw[4] = {q.x, q.y, q.z, q.w};
    const u32 hw[4] = {hb.x, hb.y, hb.z, hb.w};
    u32 u0[4], u1[4];
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        u0[i] = (qw[i] & 0x0F0F0F0Fu) | (((hw[i] >> (2 * g)) & 0x01010101u) << 4);
        u1[i] = ((qw[i] >> 4) & 0x0F0F0F0Fu) | (((hw[i] >> (2 * g + 1)) & 0x01010101u) << 4);
    }
    return k4_unit(h, u0, u1, a, g, half);
}
