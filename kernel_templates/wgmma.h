// wgmma.h (sm_90a): Hopper's warpgroup matrix product, for gemm_f16.hip. Four warps (a
// warpgroup) multiply a 64 × 16 f16 tile of A by a 16 × 128 tile of B into 64 × 128 f32
// accumulators (64 a thread), both operands read from shared memory through descriptors, not
// registers, asynchronously: wg_fence() before the first product of a batch, wg_commit() after
// its last, wg_wait<N>() until at most N batches are in flight. Both tiles are K-major rows of
// 64 halves (128 bytes) in the 128-byte swizzle: 16-byte chunk c of row r lies at
// r·128 + ((c ^ (r % 8)) · 16), each 8-row group 1024 bytes on a 1024-byte boundary (PTX ISA,
// "Matrix Descriptor Format" and "Shared Memory Matrix Layout").
// Accumulator i of lane l of warp w (within the group): row 16·w + l / 4 + 8·((i / 2) % 2),
// column 8·(i / 4) + 2·(l % 4) + i % 2.

__device__ __forceinline__ int wg_swizzle(int row, int chunk) { return row * 128 + ((chunk ^ (row & 7)) << 4); }

// The descriptor of a swizzled tile at p: start address / 16, leading offset 1 (unused in this
// swizzle), stride 1024 bytes between 8-row groups, 128-byte swizzle. Each 16 values further
// along K add 32 bytes: 2 to the descriptor.
__device__ __forceinline__ unsigned long long wg_desc(const void* p) {
    const unsigned long long a = (unsigned)__cvta_generic_to_shared(p);
    return ((a & 0x3FFFF) >> 4) | (1ull << 16) | ((unsigned long long)(1024 >> 4) << 32) | (1ull << 62);
}

__device__ __forceinline__ void wg_fence() { asm volatile("wgmma.fence.sync.aligned;" ::: "memory"); }
__device__ __forceinline__ void wg_commit() { asm volatile("wgmma.commit_group.sync.aligned;" ::: "memory"); }
template <int N>
__device__ __forceinline__ void wg_wait() { asm volatile("wgmma.wait_group.sync.aligned %0;" ::"n"(N) : "memory"); }
// Shared memory written by cp.async (the generic proxy) made visible to wgmma (the async proxy).
__device__ __forceinline__ void wg_proxy_fence() { asm volatile("fence.proxy.async.shared::cta;" ::: "memory"); }

// d += A·Bᵀ over 16 values of K: A 64 rows, B 128 rows, both K-major (the predicate keeps d).
__device__ __forceinline__ void wg_mma_64x128(float* d, unsigned long long a, unsigned long long b) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n128k16.f32.f16.f16 "
        "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, %64, %65, p, 1, 1, 0, 0;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
        : "l"(a), "l"(b), "r"(1));
}
