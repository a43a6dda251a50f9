// prelude_cuda.h: what differs under NVRTC. No CUDA header is included (NVRTC's built-ins
// suffice), so the rendered source alone determines the binary.
#define RF_BACKEND_CUDA 1
#define RF_KERNEL extern "C" __global__
__device__ __forceinline__ float rf_shfl_xor(float v, int mask) { return __shfl_xor_sync(0xffffffffu, v, mask, WARP_SIZE); }
__device__ __forceinline__ int rf_shfl_xor_int(int v, int mask) { return __shfl_xor_sync(0xffffffffu, v, mask, WARP_SIZE); }
// f16 bits to f32: exact, with the hardware conversion.
__device__ __forceinline__ float rf_half_to_float(unsigned short h) {
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
    return f;
}
