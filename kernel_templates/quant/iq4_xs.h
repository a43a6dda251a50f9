// IQ4_XS: eight 32-element sub-blocks laid out as IQ4_NL blocks (qs[16ib..16ib+16]), each with a
// 6-bit scale around 32 (low nibble from scales_l[ib/2], top two bits from bits 2ib.. of
// scales_h) under an f16 d; w = (d*(sc-32)) * table[q]. Parts: 16 runs of 16 (two per sub-block).
struct block_t { u16 d; u16 scales_h; u8 scales_l[4]; u8 qs[128]; };
constexpr int QK_FRAGMENT = 256;
constexpr int PART = 16;
__device__ __forceinline__ int iq4_xs_scale(const block_t* b, int ib) {
    return (int)(((b->scales_l[ib >> 1] >> (4 * (ib & 1))) & 0x0F) | (((b->scales_h >> (2 * ib)) & 3) << 4)) - 32;
}
__device__ __forceinline__ void dequant_part(const block_t* b, int p, float* out) {
    const int ib = p >> 1, shift = 4 * (p & 1);
    const float dl = rf_half_to_float(b->d) * (float)iq4_xs_scale(b, ib);
#pragma unroll
    for (int i = 0; i < PART; ++i) out[i] = dl * (float)iq4nl_value((b->qs[16 * ib + i] >> shift) & 0x0F);
}

// Coalesced access: element 32*j + lane of the block (value `lane` of sub-block j).
__device__ __forceinline__ void dequant_lane8(const block_t* b, int lane, float* out) {
    const float d = rf_half_to_float(b->d);
#pragma unroll
    for (int j = 0; j < 8; ++j) {
        const int q = (b->qs[16 * j + (lane & 15)] >> (lane < 16 ? 0 : 4)) & 0x0F;
        out[j] = d * (float)iq4_xs_scale(b, j) * (float)iq4nl_value(q);
    }
}
