// common.h: helpers every template shares, written once over the backend prelude.
typedef unsigned char u8;
typedef signed char i8;
typedef unsigned short u16;
typedef unsigned int u32;

#define RF_NEG_INF (-__int_as_float(0x7f800000))

// Sum over the warp; every lane gets the result.
__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int m = WARP_SIZE / 2; m > 0; m >>= 1) v += rf_shfl_xor(v, m);
    return v;
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
    for (int m = WARP_SIZE / 2; m > 0; m >>= 1) v = fmaxf(v, rf_shfl_xor(v, m));
    return v;
}

// Sum over a block of BLOCK threads (a multiple of WARP_SIZE); every thread gets the result.
// `scratch` holds at least BLOCK / WARP_SIZE floats.
template <int BLOCK>
__device__ __forceinline__ float block_sum(float v, float* scratch) {
    constexpr int NW = BLOCK / WARP_SIZE;
    v = warp_sum(v);
    if (NW == 1) return v;
    const int warp = threadIdx.x / WARP_SIZE, lane = threadIdx.x % WARP_SIZE;
    __syncthreads();
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    v = lane < NW ? scratch[lane] : 0.0f;
    return warp_sum(v);
}
