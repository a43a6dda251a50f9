// Q4_0: byte j holds element j (low nibble) and j+16 (high nibble); w = d * (q - 8).
// Parts: 4 runs of 8 elements (parts 0-1 low nibbles, 2-3 high nibbles).
struct block_t { u16 d; u8 qs[16]; };
constexpr int QK_FRAGMENT = 32;
constexpr int PART = 8;
__device__ __forceinline__ void dequant_part(const block_t* b, int p, float* out) {
    const float d = rf_half_to_float(b->d);
    const int shift = p < 2 ? 0 : 4, base = 8 * (p & 1);
#pragma unroll
    for (int i = 0; i < PART; ++i) out[i] = d * (float)((int)((b->qs[base + i] >> shift) & 0x0F) - 8);
}

// Coalesced access: element `lane` of each of the chunk's 8 blocks.
__device__ __forceinline__ void dequant_lane8(const block_t* chunk, int lane, float* out) {
#pragma unroll
    for (int j = 0; j < 8; ++j) {
        const int q = (chunk[j].qs[lane & 15] >> (lane < 16 ? 0 : 4)) & 0x0F;
        out[j] = rf_half_to_float(chunk[j].d) * (float)(q - 8);
    }
}
