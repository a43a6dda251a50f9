// rope, in place on x[t, h, :] (HEAD_DIM floats per head): the first ROPE_DIMS dimensions
// rotate by pos[t] * base^(-2i/ROPE_DIMS) / freq_factors[i] * freq_scale (llama.cpp's order).
// freq_factors: ROPE_DIMS/2 per-pair divisors (Llama 3's rope_freqs.weight, Phi-3's LongRoPE
// factors; ones for none: x/1 is exact, so one kernel serves both).
// YaRN (ggml's rope_yarn): where ext_factor != 0, the angle mixes its scaled and unscaled values
// by a ramp over the pairs between corr_low and corr_high, and cos/sin are scaled by
// attn_factor * (1 + 0.1 ln(1/freq_scale)); otherwise by attn_factor alone (1: exact).
// NEOX pairs (i, i + ROPE_DIMS/2); the normal style pairs (2i, 2i+1). Grid: (tokens, heads); one
// thread per pair.
RF_KERNEL void __launch_bounds__(ROPE_DIMS / 2)
KERNEL_NAME(float* x, const int* __restrict__ pos, int n_heads, float base, float freq_scale,
            const float* __restrict__ freq_factors, float ext_factor, float attn_factor, float corr_low,
            float corr_high) {
    rf_grid_wait();
    const int t = blockIdx.x, h = blockIdx.y, i = threadIdx.x;
    float* v = x + ((long long)t * n_heads + h) * HEAD_DIM;
    float theta_extrap = (float)pos[t] * powf(base, -2.0f * (float)i / (float)ROPE_DIMS);
    theta_extrap /= freq_factors[i];
    float theta = freq_scale * theta_extrap;
    float mscale = attn_factor;
    if (ext_factor != 0.0f) {
        const float y = ((float)i - corr_low) / fmaxf(0.001f, corr_high - corr_low);
        const float ramp_mix = (1.0f - fminf(1.0f, fmaxf(0.0f, y))) * ext_factor;
        theta = theta * (1.0f - ramp_mix) + theta_extrap * ramp_mix;
        mscale *= 1.0f + 0.1f * logf(1.0f / freq_scale);
    }
    float s, c;
    sincosf(theta, &s, &c);
    c *= mscale;
    s *= mscale;
    const int a = NEOX ? i : 2 * i;
    const int b = NEOX ? i + ROPE_DIMS / 2 : 2 * i + 1;
    const float x0 = v[a], x1 = v[b];
    v[a] = x0 * c - x1 * s;
    v[b] = x0 * s + x1 * c;
}
