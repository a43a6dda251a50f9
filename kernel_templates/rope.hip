// rope, in place on x[t, h, :] (HEAD_DIM floats per head): the first ROPE_DIMS dimensions
// rotate by pos[t] * base^(-2i/ROPE_DIMS) / freq_factors[i] * freq_scale (llama.cpp's order).
// freq_factors: ROPE_DIMS/2 per-pair divisors (Llama 3's rope_freqs.weight; ones for none: x/1 is
// exact, so one kernel serves both).
// NEOX pairs (i, i + ROPE_DIMS/2); the normal style pairs (2i, 2i+1). Grid: (tokens, heads); one
// thread per pair.
RF_KERNEL void __launch_bounds__(ROPE_DIMS / 2)
KERNEL_NAME(float* x, const int* __restrict__ pos, int n_heads, float base, float freq_scale,
            const float* __restrict__ freq_factors) {
    const int t = blockIdx.x, h = blockIdx.y, i = threadIdx.x;
    float* v = x + ((long long)t * n_heads + h) * HEAD_DIM;
    float theta = (float)pos[t] * powf(base, -2.0f * (float)i / (float)ROPE_DIMS);
    theta /= freq_factors[i];
    theta *= freq_scale;
    float s, c;
    sincosf(theta, &s, &c);
    const int a = NEOX ? i : 2 * i;
    const int b = NEOX ? i + ROPE_DIMS / 2 : 2 * i + 1;
    const float x0 = v[a], x1 = v[b];
    v[a] = x0 * c - x1 * s;
    v[b] = x0 * s + x1 * c;
}
