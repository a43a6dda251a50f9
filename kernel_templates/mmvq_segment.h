// One segment of a fused int8 matvec (mmvq_multi.hip), rendered inside the segment's namespace
// after its weight type's fragments: its block, its dot with q8_1 activations and its layout
// (THREADS_PER_ROW, ROWS_PER_THREAD: MmvqLayout::default_for), as one type the kernel takes.
struct Seg {
    typedef block_t Block;
    static constexpr int QK_ = QK;
    static constexpr int UNITS_PER_BLOCK = VDQ_UNITS;
    static constexpr int THREADS = THREADS_PER_ROW;
    static constexpr int ROWS = ROWS_PER_THREAD;
    static constexpr int ROWS_PER_BLOCK = (MMVQ_THREADS / THREADS_PER_ROW) * ROWS_PER_THREAD;
    static __device__ __forceinline__ float dot(const block_t* b, const block_q8_1* a, int unit) {
        return vec_dot_q8_1(b, a, unit);
    }
};
