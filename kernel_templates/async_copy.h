// async_copy.h: rf_copy16 copies 16 bytes from global src (16-aligned) to shared dst (16-aligned),
// the first n (0..16) of them read and the rest zero, so a tile's copy may run past the end of its
// buffer without touching what lies beyond. On NVIDIA sm_80+ the copy is asynchronous (cp.async,
// through L2 only): rf_copy_wait() waits for all of the thread's copies, and a barrier after it
// makes them visible to the block; rf_copy_commit() closes a group of copies and
// rf_copy_wait_groups<N>() waits until at most N groups are in flight. Elsewhere an ordinary load
// and store, and nothing to wait for.
#if RF_BACKEND_CUDA && __CUDA_ARCH__ >= 800
#define RF_ASYNC_COPY 1
__device__ __forceinline__ void rf_copy16(void* dst, const void* src, int n) {
    const unsigned s = (unsigned)__cvta_generic_to_shared(dst);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(s), "l"(src), "r"(n) : "memory");
}
__device__ __forceinline__ void rf_copy_wait() { asm volatile("cp.async.wait_all;" ::: "memory"); }
__device__ __forceinline__ void rf_copy_commit() { asm volatile("cp.async.commit_group;" ::: "memory"); }
template <int N>
__device__ __forceinline__ void rf_copy_wait_groups() { asm volatile("cp.async.wait_group %0;" ::"n"(N) : "memory"); }
#else
#define RF_ASYNC_COPY 0
__device__ __forceinline__ void rf_copy16(void* dst, const void* src, int n) {
    // Word by word, whole words where they lie before n, so nothing goes through the stack.
    const int* s = (const int*)src;
    int* d = (int*)dst;
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        u32 v = 0;
        if (n >= 4 * i + 4) {
            v = (u32)s[i];
        } else {
#pragma unroll
            for (int b = 0; b < 4; ++b)
                if (4 * i + b < n) v |= (u32)((const unsigned char*)src)[4 * i + b] << (8 * b);
        }
        d[i] = (int)v;
    }
}
__device__ __forceinline__ void rf_copy_wait() {}
__device__ __forceinline__ void rf_copy_commit() {}
template <int N>
__device__ __forceinline__ void rf_copy_wait_groups() {}
#endif
