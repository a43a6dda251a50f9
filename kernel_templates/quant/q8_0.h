// Q8_0: 32 signed bytes under an f16 scale; w = q * d. Parts: 4 runs of 8.
struct block_t { u16 d; i8 qs[32]; };
constexpr int QK_FRAGMENT = 32;
constexpr int PART = 8;
__device__ __forceinline__ void dequant_part(const block_t* b, int p, float* out) {
    const float d = rf_half_to_float(b->d);
#pragma unroll
    for (int i = 0; i < PART; ++i) out[i] = (float)b->qs[PART * p + i] * d;
}

// Coalesced access: element `lane` of each of the chunk's 8 blocks (block j = elements 32j..32j+31).
__device__ __forceinline__ void dequant_lane8(const block_t* chunk, int lane, float* out) {
#pragma unroll
    for (int j = 0; j < 8; ++j) out[j] = (float)chunk[j].qs[lane] * rf_half_to_float(chunk[j].d);
}
