// Q5_0: Q4_0's nibbles plus a fifth bit per element (bit e of the little-endian u32 qh);
// w = d * (q - 16).
struct block_t { u16 d; u8 qh[4]; u8 qs[16]; };
constexpr int QK_FRAGMENT = 32;
constexpr int PART = 8;
__device__ __forceinline__ void dequant_part(const block_t* b, int p, float* out) {
    const float d = rf_half_to_float(b->d);
    const u32 qh = (u32)b->qh[0] | ((u32)b->qh[1] << 8) | ((u32)b->qh[2] << 16) | ((u32)b->qh[3] << 24);
    const int shift = p < 2 ? 0 : 4, base = 8 * (p & 1);
#pragma unroll
    for (int i = 0; i < PART; ++i) {
        const int e = PART * p + i;
        const int q = ((b->qs[base + i] >> shift) & 0x0F) | (((qh >> e) & 1) << 4);
        out[i] = d * (float)(q - 16);
    }
}

// Coalesced access: element `lane` of each of the chunk's 8 blocks.
__device__ __forceinline__ void dequant_lane8(const block_t* chunk, int lane, float* out) {
#pragma unroll
    for (int j = 0; j < 8; ++j) {
        const block_t* b = chunk + j;
        const u32 qh = (u32)b->qh[0] | ((u32)b->qh[1] << 8) | ((u32)b->qh[2] << 16) | ((u32)b->qh[3] << 24);
        const int q = ((b->qs[lane & 15] >> (lane < 16 ? 0 : 4)) & 0x0F) | (((qh >> lane) & 1) << 4);
        out[j] = rf_half_to_float(b->d) * (float)(q - 16);
    }
}
