// Q4_K · q8_1 (int8 path): eight units per super-block (144 bytes, 16-aligned), unit c on the
// 16-byte run qs[16c..16c+16] (one 16-byte load): the low nibbles are elements 16·(c%2).. of
// sub-block 2·(c/2), the high nibbles the same elements of sub-block 2·(c/2)+1.
constexpr int VDQ_UNITS = 8;
__device__ __forceinline__ float vec_dot_q8_1(const block_t* b, const block_q8_1* a, int c) {
    const uint4 h = *(const uint4*)b;
    const uint4 q = *(const uint4*)(b->qs + 16 * c);
    const u32 qw[4] = {q.x, q.y, q.z, q.w};
    u32 u0[4], u1[4];
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        u0[i] = qw[i] & 0x0F0F0F0Fu;
        u1[i] = (qw[i] >> 4) & 0x0F0F0F0Fu;
    }
    return k4_unit(h, u0, u1, a, c >> 1, c & 1);
}
