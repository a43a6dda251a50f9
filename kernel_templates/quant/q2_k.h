// Q2_K: sixteen 16-element groups of 2-bit quants, each with a 4-bit scale (low nibble) and 4-bit
// min (high nibble) under f16 d and dmin; w = (d*sc) * q - (dmin*m). Element e = 128h + 32j + l
// is bits 2j.. of qs[32h + l]; its group is e / 16. Parts: the 16 groups.
struct block_t { u8 scales[16]; u8 qs[64]; u16 d; u16 dmin; };
constexpr int QK_FRAGMENT = 256;
constexpr int PART = 16;
__device__ __forceinline__ void dequant_part(const block_t* b, int p, float* out) {
    const int sc = b->scales[p];
    const float dl = rf_half_to_float(b->d) * (float)(sc & 0x0F), ml = rf_half_to_float(b->dmin) * (float)(sc >> 4);
    const int e0 = PART * p, shift = 2 * ((e0 & 127) >> 5);
    const u8* q = b->qs + 32 * (e0 >> 7) + (e0 & 31);
#pragma unroll
    for (int i = 0; i < PART; ++i) out[i] = dl * (float)((q[i] >> shift) & 3) - ml;
}

// Coalesced access: element 32*j + lane of the block.
__device__ __forceinline__ void dequant_lane8(const block_t* b, int lane, float* out) {
    const float d = rf_half_to_float(b->d), dmin = rf_half_to_float(b->dmin);
#pragma unroll
    for (int j = 0; j < 8; ++j) {
        const int sc = b->scales[2 * j + (lane >> 4)];
        const int q = (b->qs[32 * (j >> 2) + lane] >> (2 * (j & 3))) & 3;
        out[j] = d * (float)(sc & 0x0F) * (float)q - dmin * (float)(sc >> 4);
    }
}
