// glu: out[i] = act(gate[i]) * up[i], act = SiLU (SwiGLU) or tanh-approximated GELU (GeGLU).
RF_KERNEL void __launch_bounds__(256)
KERNEL_NAME(const float* __restrict__ gate, const float* __restrict__ up, float* __restrict__ out, int n) {
    const int i = blockIdx.x * 256 + threadIdx.x;
    if (i >= n) return;
    const float g = gate[i];
    float a;
    if (GELU) {
        const float c = 0.7978845608028654f; // sqrt(2 / pi)
        a = 0.5f * g * (1.0f + tanhf(c * (g + 0.044715f * g * g * g)));
    } else {
        a = g / (1.0f + expf(-g));
    }
    out[i] = a * up[i];
}
