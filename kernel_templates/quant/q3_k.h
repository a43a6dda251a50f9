// Q3_K: sixteen 16-element groups of 3-bit quants (-4..3) with 6-bit scales around 32 under an
// f16 d; w = (d*(sc-32)) * q. Element e = 128h + 32j + l: low bits 2j.. of qs[32h + l], minus 4
// unless bit e/32 of hmask[l] is set. Scale g: nibble g/8 of scales[g%8], top bits 2(g/4).. of
// scales[8 + g%4]. Parts: the 16 groups.
struct block_t { u8 hmask[32]; u8 qs[64]; u8 scales[12]; u16 d; };
constexpr int QK_FRAGMENT = 256;
constexpr int PART = 16;
__device__ __forceinline__ int q3_k_scale(const u8* s, int g) {
    return (int)(((s[g & 7] >> (4 * (g >> 3))) & 0x0F) | (((s[8 + (g & 3)] >> (2 * (g >> 2))) & 3) << 4)) - 32;
}
__device__ __forceinline__ int q3_k_quant(const block_t* b, int e) {
    const int l = e & 31;
    const int low = (b->qs[32 * (e >> 7) + l] >> (2 * ((e & 127) >> 5))) & 3;
    return low - (((b->hmask[l] >> (e >> 5)) & 1) ? 0 : 4);
}
__device__ __forceinline__ void dequant_part(const block_t* b, int p, float* out) {
    const float dl = rf_half_to_float(b->d) * (float)q3_k_scale(b->scales, p);
#pragma unroll
    for (int i = 0; i < PART; ++i) out[i] = dl * (float)q3_k_quant(b, PART * p + i);
}

// Coalesced access: element 32*j + lane of the block.
__device__ __forceinline__ void dequant_lane8(const block_t* b, int lane, float* out) {
    const float d = rf_half_to_float(b->d);
#pragma unroll
    for (int j = 0; j < 8; ++j) out[j] = d * (float)q3_k_scale(b->scales, 2 * j + (lane >> 4)) * (float)q3_k_quant(b, 32 * j + lane);
}
