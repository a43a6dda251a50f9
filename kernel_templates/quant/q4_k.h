// Q4_K: eight 32-element sub-blocks with 6-bit scales and mins; w = (d*sc) * q - (dmin*m).
// Sub-block 2g takes the low nibbles of qs[32g..32g+32], 2g+1 the high ones. Parts: 16 runs of 16.
struct block_t { u16 d; u16 dmin; u8 scales[12]; u8 qs[128]; };
constexpr int QK_FRAGMENT = 256;
constexpr int PART = 16;
__device__ __forceinline__ void dequant_part(const block_t* b, int p, float* out) {
    const int sub = p >> 1, half = p & 1;
    int sc, mn;
    k_scale_min(b->scales, sub, &sc, &mn);
    const float scale = rf_half_to_float(b->d) * (float)sc, min = rf_half_to_float(b->dmin) * (float)mn;
    const u8* q = b->qs + 32 * (sub >> 1) + 16 * half;
    const int shift = 4 * (sub & 1);
#pragma unroll
    for (int i = 0; i < PART; ++i) out[i] = scale * (float)((q[i] >> shift) & 0x0F) - min;
}

// Coalesced access: element 32*j + lane of the block (value `lane` of sub-block j).
__device__ __forceinline__ void dequant_lane8(const block_t* b, int lane, float* out) {
    const float d = rf_half_to_float(b->d), dmin = rf_half_to_float(b->dmin);
#pragma unroll
    for (int j = 0; j < 8; ++j) {
        int sc, mn;
        k_scale_min(b->scales, j, &sc, &mn);
        const int q = (b->qs[32 * (j >> 1) + lane] >> (4 * (j & 1))) & 0x0F;
        out[j] = d * (float)sc * (float)q - dmin * (float)mn;
    }
}
