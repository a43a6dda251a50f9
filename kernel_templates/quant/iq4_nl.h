// IQ4_NL: byte j holds the 4-bit indices of element j (low nibble) and j+16 (high nibble) into
// kvalues_iq4nl; w = d * table[q]. Parts: 4 runs of 8 (parts 0-1 low nibbles, 2-3 high nibbles).
struct block_t { u16 d; u8 qs[16]; };
constexpr int QK_FRAGMENT = 32;
constexpr int PART = 8;
__device__ __forceinline__ void dequant_part(const block_t* b, int p, float* out) {
    const float d = rf_half_to_float(b->d);
    const int shift = p < 2 ? 0 : 4, base = 8 * (p & 1);
#pragma unroll
    for (int i = 0; i < PART; ++i) out[i] = d * (float)iq4nl_value((b->qs[base + i] >> shift) & 0x0F);
}

// Coalesced access: element `lane` of each of the chunk's 8 blocks.
__device__ __forceinline__ void dequant_lane8(const block_t* chunk, int lane, float* out) {
#pragma unroll
    for (int j = 0; j < 8; ++j) {
        const int q = (chunk[j].qs[lane & 15] >> (lane < 16 ? 0 : 4)) & 0x0F;
        out[j] = rf_half_to_float(chunk[j].d) * (float)iq4nl_value(q);
    }
}
