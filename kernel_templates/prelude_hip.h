// prelude_hip.h: what differs under hipRTC. hipRTC's built-in preamble already declares the HIP
// runtime (threadIdx, __shfl_xor, half types): nothing is included here.
#define RF_BACKEND_HIP 1
#define RF_KERNEL extern "C" __global__
__device__ __forceinline__ float rf_shfl_xor(float v, int mask) { return __shfl_xor(v, mask, WARP_SIZE); }
__device__ __forceinline__ int rf_shfl_xor_int(int v, int mask) { return __shfl_xor(v, mask, WARP_SIZE); }
// f16 bits to f32: exact, via clang's native _Float16.
__device__ __forceinline__ float rf_half_to_float(unsigned short h) { return (float)__builtin_bit_cast(_Float16, h); }
