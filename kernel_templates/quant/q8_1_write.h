// Writing q8_1 blocks, bit for bit as quantize_row_q8_1_ref (src/quant/q8_1.rs): d = max|x| / 127,
// q = roundf(x · (1/d)) (half away from zero), s = d·Σq, both stored as f16 rounded to nearest
// even. One 32-lane group per block, lane l on value l (the shuffles stay inside the group: masks
// below 32, so a wave64 holds two groups). Divisions are IEEE (NVRTC's default -prec-div=true;
// clang's HIP default correctly rounded fp32 divide).
__device__ __forceinline__ u16 rf_float_to_half_rn(float f) {
#if RF_BACKEND_CUDA
    u16 h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f));
    return h;
#else
    return __builtin_bit_cast(u16, (_Float16)f);
#endif
}

// Value `lane` (0..31) of block b is v; every lane of the group calls it. Beside the block, its
// scale terms as the int8 matrix product takes them (mmq.h), exact in f32: *ds = (d, d·Σq) with d
// the stored f16 widened (11 bits times |Σq| ≤ 4064 fits 24), so that kernel reads them instead
// of summing each block's quants again for every tile.
__device__ __forceinline__ void quantize_q8_1_lane(float v, block_q8_1* b, float2* ds, int lane) {
    float amax = fabsf(v);
#pragma unroll
    for (int m = 16; m > 0; m >>= 1) amax = fmaxf(amax, rf_shfl_xor(amax, m));
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    const int q = (int)roundf(v * id);
    int sum = q;
#pragma unroll
    for (int m = 16; m > 0; m >>= 1) sum += rf_shfl_xor_int(sum, m);
    b->qs[lane] = (i8)q;
    if (lane == 0) {
        const u16 d16 = rf_float_to_half_rn(d);
        b->d = d16;
        b->s = rf_float_to_half_rn((float)sum * d);
        const float dw = rf_half_to_float(d16);
        *ds = make_float2(dw, dw * (float)sum);
    }
}
