# cuBLAS f16 GEMM (f32 accumulate) floor for the synthetic 7B's prefill products, 512 tokens.
import ctypes, glob, sys
def lib(pat):
    c = sorted(glob.glob(pat))
    return ctypes.CDLL(c[-1])
rt = lib("/usr/local/cuda/lib64/libcudart.so*")
cb = lib("/usr/local/cuda/lib64/libcublas.so*")
def ok(r, what):
    if r != 0: sys.exit(f"{what} failed: {r}")
h = ctypes.c_void_p(); ok(cb.cublasCreate_v2(ctypes.byref(h)), "create")
N = 512
shapes = {"qkvo 4096x4096": (4096, 4096, 4 * 32), "gate/up 11008x4096": (11008, 4096, 2 * 32), "down 4096x11008": (4096, 11008, 32)}
def alloc(n):
    p = ctypes.c_void_p(); ok(rt.cudaMalloc(ctypes.byref(p), ctypes.c_size_t(n)), "malloc"); rt.cudaMemset(p, 0, ctypes.c_size_t(n)); return p
ev0, ev1 = ctypes.c_void_p(), ctypes.c_void_p(); rt.cudaEventCreate(ctypes.byref(ev0)); rt.cudaEventCreate(ctypes.byref(ev1))
alpha, beta = ctypes.c_float(1.0), ctypes.c_float(0.0)
total = 0.0
for ctype, cname in [(0, "f32 out"), (2, "f16 out")]:
    total = 0.0
    for name, (m, k, count) in shapes.items():
        A, B, C = alloc(m * k * 2), alloc(k * N * 2), alloc(m * N * 4)
        def gemm():
            ok(cb.cublasGemmEx(h, 1, 0, m, N, k, ctypes.byref(alpha), A, 2, k, B, 2, k, ctypes.byref(beta), C, ctype, m, 68, -1), "gemm")
        for _ in range(5): gemm()
        rt.cudaEventRecord(ev0, None)
        reps = 50
        for _ in range(reps): gemm()
        rt.cudaEventRecord(ev1, None); rt.cudaEventSynchronize(ev1)
        ms = ctypes.c_float(); rt.cudaEventElapsedTime(ctypes.byref(ms), ev0, ev1)
        us = ms.value * 1000 / reps
        tf = 2 * m * k * N / us / 1e6
        print(f"{cname} {name}: {us:.1f} us each ({tf:.0f} TFLOPS), x{count} = {us*count/1000:.2f} ms a pass")
        total += us * count / 1000
        for p in (A, B, C): rt.cudaFree(p)
    print(f"{cname}: all products {total:.2f} ms a 512-token pass")
# dequant-like traffic: read 0.5625 B + write 2 B a value, as a device copy of that many bytes
vals = (4 * 4096 * 4096 + 3 * 11008 * 4096) * 32
src, dst = alloc(int(vals * 0.5625)), alloc(vals * 2 // 8)
rt.cudaEventRecord(ev0, None)
for _ in range(8): rt.cudaMemcpy(dst, src, ctypes.c_size_t(vals * 2 // 8), 3)
rt.cudaEventRecord(ev1, None); rt.cudaEventSynchronize(ev1)
ms = ctypes.c_float(); rt.cudaEventElapsedTime(ctypes.byref(ms), ev0, ev1)
print(f"writing the f16 weights once a pass ({vals*2/1e9:.1f} GB, as device copies): {ms.value:.2f} ms (read+write of that size)")
