// Q6_K: sixteen 16-element groups with i8 scales under an f16 d; w = (d*sc) * (q - 32).
// Each 128-element half h takes low bits from ql[64h..] and two high bits from qh[32h..].
// Parts: the 16 groups.
struct block_t { u8 ql[128]; u8 qh[64]; i8 scales[16]; u16 d; };
constexpr int QK_FRAGMENT = 256;
constexpr int PART = 16;
__device__ __forceinline__ void dequant_part(const block_t* b, int p, float* out) {
    const float scale = rf_half_to_float(b->d) * (float)b->scales[p];
    const int e0 = PART * p, h = e0 >> 7, k = (e0 & 127) >> 5, l0 = e0 & 31;
    const u8* ql = b->ql + 64 * h + 32 * (k & 1) + l0;
    const u8* qh = b->qh + 32 * h + l0;
#pragma unroll
    for (int i = 0; i < PART; ++i) {
        const int lo = (ql[i] >> (4 * (k >> 1))) & 0x0F;
        const int hi = (qh[i] >> (2 * k)) & 0x03;
        out[i] = scale * (float)((lo | (hi << 4)) - 32);
    }
}

// Coalesced access: element 32*j + lane of the block (quarter j % 4 of half j / 4).
__device__ __forceinline__ void dequant_lane8(const block_t* b, int lane, float* out) {
    const float d = rf_half_to_float(b->d);
#pragma unroll
    for (int j = 0; j < 8; ++j) {
        const int h = j >> 2, k = j & 3;
        const int lo = (b->ql[64 * h + 32 * (k & 1) + lane] >> (4 * (k >> 1))) & 0x0F;
        const int hi = (b->qh[32 * h + lane] >> (2 * k)) & 0x03;
        out[j] = d * (float)b->scales[2 * j + (lane >> 4)] * (float)((lo | (hi << 4)) - 32);
    }
}
