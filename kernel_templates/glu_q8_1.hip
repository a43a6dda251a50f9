// glu_q8_1 (int8 decode): out[i] = act(gate[i]) * up[i] as glu.hip computes it, written as floats
// and as q8_1 blocks of those same floats with their scale terms `ds` (the down projection's
// input). n is whole blocks of 32.
RF_KERNEL void __launch_bounds__(256)
KERNEL_NAME(const float* __restrict__ gate, const float* __restrict__ up, float* __restrict__ out,
            block_q8_1* __restrict__ q, float2* __restrict__ ds, int n) {
    rf_grid_wait();
    const int i = blockIdx.x * 256 + threadIdx.x;
    // n is whole blocks of 32, so a group leaves (or stays) together.
    if (i >= n) return;
    const float v = glu_act(gate[i]) * up[i];
    out[i] = v;
    quantize_q8_1_lane(v, q + i / 32, ds + i / 32, threadIdx.x % 32);
}
