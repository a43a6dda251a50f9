// F16 weights: one half per "block".
struct block_t { u16 v; };
constexpr int QK_FRAGMENT = 1;
constexpr int PART = 1;
__device__ __forceinline__ void dequant_part(const block_t* b, int, float* out) { out[0] = rf_half_to_float(b->v); }

// Coalesced access: element 32*j + lane of a 256-element chunk, j = 0..7.
__device__ __forceinline__ void dequant_lane8(const block_t* chunk, int lane, float* out) {
#pragma unroll
    for (int j = 0; j < 8; ++j) out[j] = rf_half_to_float(chunk[32 * j + lane].v);
}
