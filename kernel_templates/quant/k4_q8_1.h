// Shared by Q4_K and Q5_K · q8_1 (int8 path). A super-block's first 16 bytes (d, dmin, the 12
// scale bytes) come in one 16-byte load: h.x = d | dmin << 16, h.y/h.z/h.w = scale bytes 0-3,
// 4-7, 8-11. (scale, min) of sub-block j as k_scale_min, with shifts instead of byte indexing.
__device__ __forceinline__ void k4_scale_min_words(uint4 h, int j, int* sc, int* mn) {
    const int s = 8 * (j & 3);
    const u32 y = h.y >> s, z = h.z >> s, w = h.w >> s;
    if (j < 4) {
        *sc = (int)(y & 63u);
        *mn = (int)(z & 63u);
    } else {
        *sc = (int)((w & 0x0Fu) | (((y >> 6) & 3u) << 4));
        *mn = (int)(((w >> 4) & 0x0Fu) | (((z >> 6) & 3u) << 4));
    }
}

// The unit's value: sub-blocks 2g (low nibbles u0) and 2g+1 (high nibbles u1) over elements
// 16·half .. 16·half+15 of each; Σu·a and Σa in integers (Σa by a dot with ones), combined as
// vec_dot_q4_K_q8_1: d·Σ d8·(Σu·a·sc) − dmin·Σ d8·(Σa·m).
__device__ __forceinline__ float k4_unit(uint4 h, const u32* u0, const u32* u1, const block_q8_1* a, int g, int half) {
    const block_q8_1* a0 = a + 2 * g;
    const block_q8_1* a1 = a0 + 1;
    int s0 = 0, s1 = 0, m0 = 0, m1 = 0;
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        const int v0 = q8_int(a0, 4 * half + i), v1 = q8_int(a1, 4 * half + i);
        s0 = rf_dot4_i8((int)u0[i], v0, s0);
        s1 = rf_dot4_i8((int)u1[i], v1, s1);
        m0 = rf_dot4_i8(0x01010101, v0, m0);
        m1 = rf_dot4_i8(0x01010101, v1, m1);
    }
    int sc0, mn0, sc1, mn1;
    k4_scale_min_words(h, 2 * g, &sc0, &mn0);
    k4_scale_min_words(h, 2 * g + 1, &sc1, &mn1);
    const float d80 = q8_d(a0), d81 = q8_d(a1);
    return half_lo(h.x) * (d80 * (float)(s0 * sc0) + d81 * (float)(s1 * sc1)) -
           half_hi(h.x) * (d80 * (float)(m0 * mn0) + d81 * (float)(m1 * mn1));
}
