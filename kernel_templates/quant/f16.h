// F16 weights: one half per "block".
struct block_t { u16 v; };
constexpr int QK_FRAGMENT = 1;
constexpr int PART = 1;
__device__ __forceinline__ void dequant_part(const block_t* b, int, float* out) { out[0] = rf_half_to_float(b->v); }
