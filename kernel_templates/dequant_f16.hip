// dequant_f16 (prefill): the weight rows as f16, for gemm_f16.hip: out[n, k] = W[n, k] rounded to
// f16 once from the format's f32 value (quant/*.h's dequant_part, the arithmetic of the float
// matmul). A thread takes one PART-value run of one block.
// w: [n_rows] rows of K / QK blocks; out: [n_rows][K] f16 bits.
RF_KERNEL void __launch_bounds__(DQ_THREADS)
KERNEL_NAME(const block_t* __restrict__ w, u16* __restrict__ out, int n_rows) {
    rf_grid_wait();
    constexpr int PARTS = QK / PART, BLOCKS = K / QK;
    const long long i = (long long)blockIdx.x * DQ_THREADS + threadIdx.x;
    if (i >= (long long)n_rows * BLOCKS * PARTS) return;
    const long long blk = i / PARTS;
    const int part = (int)(i % PARTS);
    float v[PART];
    dequant_part(w + blk, part, v);
    u16* o = out + blk * QK + part * PART;
    if (PART % 8 == 0) {
        // 16-byte stores (a run starts 16-byte aligned: QK and PART are multiples of 8).
#pragma unroll
        for (int j = 0; j < PART; j += 8) {
            u32 h[4];
#pragma unroll
            for (int i = 0; i < 4; ++i)
                h[i] = (u32)rf_float_to_half(v[j + 2 * i]) | ((u32)rf_float_to_half(v[j + 2 * i + 1]) << 16);
            *(uint4*)(o + j) = make_uint4(h[0], h[1], h[2], h[3]);
        }
    } else {
#pragma unroll
        for (int j = 0; j < PART; ++j) o[j] = rf_float_to_half(v[j]);
    }
}
