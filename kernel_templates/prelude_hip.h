// prelude_hip.h: what differs under hipRTC. hipRTC's built-in preamble already declares the HIP
// runtime (threadIdx, __shfl_xor, half types): nothing is included here. What the target can do
// comes from the RF_* defines the renderer writes above (rocmforge's capability table), never
// from __has_builtin: ROCm 5.2 answers yes for instructions the target lacks, then aborts.
#define RF_BACKEND_HIP 1
#define RF_KERNEL extern "C" __global__

// The kernel was specialized for RF_WARP_SIZE lanes; the compiler must generate code for exactly
// that many (a wave64 kernel built in wave32 mode would silently drop half its lanes). Newer
// clang marks the macro deprecated (a warning only); without it the code-object metadata's
// wavefront size is what the tests check.
#pragma clang diagnostic push
#pragma clang diagnostic ignored "-Wunknown-warning-option"
#pragma clang diagnostic ignored "-Wdeprecated-pragma"
#if defined(__AMDGCN_WAVEFRONT_SIZE)
static_assert(RF_WARP_SIZE == __AMDGCN_WAVEFRONT_SIZE, "rendered warp size differs from the compiler's wavefront size");
#endif
#pragma clang diagnostic pop

__device__ __forceinline__ float rf_shfl_xor(float v, int mask) { return __shfl_xor(v, mask, WARP_SIZE); }
__device__ __forceinline__ int rf_shfl_xor_int(int v, int mask) { return __shfl_xor(v, mask, WARP_SIZE); }
// f16 bits to f32: exact, via clang's native _Float16.
__device__ __forceinline__ float rf_half_to_float(unsigned short h) { return (float)__builtin_bit_cast(_Float16, h); }
// f32 to f16 bits, rounded to nearest, ties to even.
__device__ __forceinline__ unsigned short rf_float_to_half(float f) { return __builtin_bit_cast(unsigned short, (_Float16)f); }

// Programmatic dependent launch is NVIDIA's (prelude_cuda.h); HIP kernels run in stream order.
__device__ __forceinline__ void rf_grid_wait() {}

// acc + the dot product of four signed bytes in a with four in b.
__device__ __forceinline__ int rf_dot4_i8(int a, int b, int acc) {
#if RF_DOT_I8_SDOT4
    return __builtin_amdgcn_sdot4(a, b, acc, false);
#elif RF_DOT_I8_SUDOT4
    return __builtin_amdgcn_sudot4(true, a, true, b, acc, false);
#else
#pragma unroll
    for (int i = 0; i < 32; i += 8) acc += (int)(signed char)(a >> i) * (int)(signed char)(b >> i);
    return acc;
#endif
}
