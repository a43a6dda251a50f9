// block_q8_1, the int8 activations of the mmvq kernels: f16 d, f16 s = d·Σq and 32 int8 quants,
// ggml's layout (36 bytes, 4-aligned), written by quantize_q8_1.hip.
struct block_q8_1 { u16 d; u16 s; i8 qs[32]; };
static_assert(sizeof(block_q8_1) == 36, "block_q8_1 is ggml's 36-byte block");

// Quants 4i..4i+3 of an activation block, as one int (little-endian bytes).
__device__ __forceinline__ int q8_int(const block_q8_1* a, int i) { return ((const int*)a->qs)[i]; }
__device__ __forceinline__ float q8_d(const block_q8_1* a) { return rf_half_to_float(a->d); }
__device__ __forceinline__ float q8_s(const block_q8_1* a) { return rf_half_to_float(a->s); }

// The low and high f16 of a 32-bit word, widened.
__device__ __forceinline__ float half_lo(u32 w) { return rf_half_to_float((u16)(w & 0xFFFFu)); }
__device__ __forceinline__ float half_hi(u32 w) { return rf_half_to_float((u16)(w >> 16)); }

// N little-endian words of a run that starts at a 2-aligned address (blocks of 18, 22, 34 or 210
// bytes): aligned 4-byte loads, realigned by a funnel shift, instead of 2N two-byte loads. A
// misaligned run reads the aligned word holding its last byte whole (never a new page).
template <int N>
__device__ __forceinline__ void load_words_a2(const void* p, u32* out) {
    const unsigned long long addr = (unsigned long long)p;
    const u32* base = (const u32*)(addr & ~3ull);
    const int shift = (int)(addr & 2) * 8;
    u32 w[N + 1];
#pragma unroll
    for (int i = 0; i < N; ++i) w[i] = base[i];
    w[N] = shift ? base[N] : 0u;
#pragma unroll
    for (int i = 0; i < N; ++i) out[i] = (u32)((((unsigned long long)w[i + 1] << 32) | w[i]) >> shift);
}

// Bits 0-3 of x moved to bit 4 of bytes 0-3 (the fifth bit of four 5-bit quants).
__device__ __forceinline__ u32 spread_bit4(u32 x) {
    return ((x & 1u) << 4) | ((x & 2u) << 11) | ((x & 4u) << 18) | ((x & 8u) << 25);
}
