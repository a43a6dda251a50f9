// The gate's activation of a GLU: tanh-approximated GELU when GELU (GeGLU), else SiLU (SwiGLU).
__device__ __forceinline__ float glu_act(float g) {
    if (GELU) {
        const float c = 0.7978845608028654f; // sqrt(2 / pi)
        return 0.5f * g * (1.0f + tanhf(c * (g + 0.044715f * g * g * g)));
    }
    return g / (1.0f + expf(-g));
}
