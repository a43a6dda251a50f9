// quantize_q8_1: n floats (a multiple of 32) to n/32 block_q8_1 and their scale terms `ds`
// (quant/q8_1_write.h).
RF_KERNEL void __launch_bounds__(BLOCK_THREADS)
KERNEL_NAME(const float* __restrict__ x, block_q8_1* __restrict__ out, float2* __restrict__ ds, int n) {
    rf_grid_wait();
    const int i = blockIdx.x * BLOCK_THREADS + threadIdx.x;
    // n is whole blocks of 32, so a group leaves (or stays) together.
    if (i >= n) return;
    quantize_q8_1_lane(x[i], out + i / 32, ds + i / 32, threadIdx.x % 32);
}
