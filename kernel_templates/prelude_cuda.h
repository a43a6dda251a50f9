// prelude_cuda.h: what differs under NVRTC. No CUDA header is included (NVRTC's built-ins
// suffice), so the rendered source alone determines the binary. What the target can do comes
// from the RF_* defines the renderer writes above (rocmforge's capability table).
#define RF_BACKEND_CUDA 1
#define RF_KERNEL extern "C" __global__

// Every NVIDIA GPU runs 32-lane warps; the kernel must have been specialized for that.
static_assert(RF_WARP_SIZE == 32, "rendered warp size differs from the NVIDIA warp size (32)");

__device__ __forceinline__ float rf_shfl_xor(float v, int mask) { return __shfl_xor_sync(0xffffffffu, v, mask, WARP_SIZE); }
__device__ __forceinline__ int rf_shfl_xor_int(int v, int mask) { return __shfl_xor_sync(0xffffffffu, v, mask, WARP_SIZE); }
// f16 bits to f32: exact, with the hardware conversion.
__device__ __forceinline__ float rf_half_to_float(unsigned short h) {
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
    return f;
}
// f32 to f16 bits, rounded to nearest, ties to even (as __float2half; the CPU device's half::f16).
__device__ __forceinline__ unsigned short rf_float_to_half(float f) {
    unsigned short h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f));
    return h;
}

// Programmatic dependent launch (RF_PDL, sm_90+): in a decode graph a kernel may be launched while
// the one before it still runs. Every kernel calls rf_grid_wait() first, before it touches memory:
// it returns once the previous kernel has completed and its writes are visible (a no-op for a
// kernel launched the ordinary way), then lets the next kernel launch. So each kernel still sees
// all its predecessors' results, and only launch latency and block set-up overlap.
__device__ __forceinline__ void rf_grid_wait() {
#if RF_PDL
    asm volatile("griddepcontrol.wait;" ::: "memory");
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

// acc + the dot product of four signed bytes in a with four in b.
__device__ __forceinline__ int rf_dot4_i8(int a, int b, int acc) {
#if RF_DOT_I8_DP4A
    int r;
    asm("dp4a.s32.s32 %0, %1, %2, %3;" : "=r"(r) : "r"(a), "r"(b), "r"(acc));
    return r;
#else
#pragma unroll
    for (int i = 0; i < 32; i += 8) acc += (int)(signed char)(a >> i) * (int)(signed char)(b >> i);
    return acc;
#endif
}
