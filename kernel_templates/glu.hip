// glu: out[i] = act(gate[i]) * up[i], act = SiLU (SwiGLU) or tanh-approximated GELU (GeGLU).
RF_KERNEL void __launch_bounds__(256)
KERNEL_NAME(const float* __restrict__ gate, const float* __restrict__ up, float* __restrict__ out, int n) {
    rf_grid_wait();
    const int i = blockIdx.x * 256 + threadIdx.x;
    if (i >= n) return;
    out[i] = glu_act(gate[i]) * up[i];
}
