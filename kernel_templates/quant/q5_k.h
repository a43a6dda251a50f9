// Q5_K: Q4_K plus a fifth bit: bit `sub` of qh[l] belongs to element l of sub-block `sub`.
struct block_t { u16 d; u16 dmin; u8 scales[12]; u8 qh[32]; u8 qs[128]; };
constexpr int QK_FRAGMENT = 256;
constexpr int PART = 16;
__device__ __forceinline__ void dequant_part(const block_t* b, int p, float* out) {
    const int sub = p >> 1, half = p & 1;
    int sc, mn;
    k_scale_min(b->scales, sub, &sc, &mn);
    const float scale = rf_half_to_float(b->d) * (float)sc, min = rf_half_to_float(b->dmin) * (float)mn;
    const u8* q = b->qs + 32 * (sub >> 1) + 16 * half;
    const u8* h = b->qh + 16 * half;
    const int shift = 4 * (sub & 1);
#pragma unroll
    for (int i = 0; i < PART; ++i) {
        const int v = ((q[i] >> shift) & 0x0F) | (((h[i] >> sub) & 1) << 4);
        out[i] = scale * (float)v - min;
    }
}

// Coalesced access: element 32*j + lane of the block (value `lane` of sub-block j).
__device__ __forceinline__ void dequant_lane8(const block_t* b, int lane, float* out) {
    const float d = rf_half_to_float(b->d), dmin = rf_half_to_float(b->dmin);
    const int h = b->qh[lane];
#pragma unroll
    for (int j = 0; j < 8; ++j) {
        int sc, mn;
        k_scale_min(b->scales, j, &sc, &mn);
        const int q = ((b->qs[32 * (j >> 1) + lane] >> (4 * (j & 1))) & 0x0F) | (((h >> j) & 1) << 4);
        out[j] = d * (float)sc * (float)q - dmin * (float)mn;
    }
}
