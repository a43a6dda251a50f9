import ctypes, glob, sys, os, numpy as np
def lib(pat): return ctypes.CDLL(sorted(glob.glob(pat))[-1])
nv = lib("/usr/local/cuda/lib64/libnvrtc.so*"); cu = ctypes.CDLL("libcuda.so.1")
def ok(r, w):
    if r != 0: sys.exit(f"{w}: {r}")
src = open(os.path.join(os.path.dirname(__file__), "dequant.cu")).read().encode()
ok(cu.cuInit(0), "init"); dev = ctypes.c_int(); cu.cuDeviceGet(ctypes.byref(dev), 0)
ctx = ctypes.c_void_p(); cu.cuDevicePrimaryCtxRetain(ctypes.byref(ctx), dev); cu.cuCtxSetCurrent(ctx)
prog = ctypes.c_void_p(); ok(nv.nvrtcCreateProgram(ctypes.byref(prog), src, b"d.cu", 0, None, None), "create")
opts = [b"--gpu-architecture=sm_90", b"-std=c++17", b"-I/usr/local/cuda/include"]
r = nv.nvrtcCompileProgram(prog, len(opts), (ctypes.c_char_p * len(opts))(*opts))
n = ctypes.c_size_t(); nv.nvrtcGetProgramLogSize(prog, ctypes.byref(n)); log = ctypes.create_string_buffer(n.value); nv.nvrtcGetProgramLog(prog, log)
if r: sys.exit(log.value.decode())
nv.nvrtcGetCUBINSize(prog, ctypes.byref(n)); cub = ctypes.create_string_buffer(n.value); nv.nvrtcGetCUBIN(prog, cub)
mod = ctypes.c_void_p(); ok(cu.cuModuleLoadData(ctypes.byref(mod), cub), "load"); f = ctypes.c_void_p(); cu.cuModuleGetFunction(ctypes.byref(f), mod, b"dq_q4_k")
ev0, ev1 = ctypes.c_void_p(), ctypes.c_void_p(); cu.cuEventCreate(ctypes.byref(ev0), 0); cu.cuEventCreate(ctypes.byref(ev1), 0)
total = 0
for (rows, k, count) in [(4096, 4096, 128), (11008, 4096, 64), (4096, 11008, 32)]:
    nb = rows * k // 256
    raw = np.random.default_rng(0).integers(0, 256, nb * 144, dtype=np.uint8)
    raw.view(np.uint16).reshape(nb, 72)[:, 0] = np.float16(0.01).view(np.uint16); raw.view(np.uint16).reshape(nb, 72)[:, 1] = np.float16(0.005).view(np.uint16)
    dw, do = ctypes.c_uint64(), ctypes.c_uint64()
    cu.cuMemAlloc_v2(ctypes.byref(dw), ctypes.c_size_t(raw.nbytes)); cu.cuMemAlloc_v2(ctypes.byref(do), ctypes.c_size_t(nb * 512))
    cu.cuMemcpyHtoD_v2(dw, raw.ctypes.data_as(ctypes.c_void_p), ctypes.c_size_t(raw.nbytes))
    nbl = ctypes.c_longlong(nb)
    pp = (ctypes.c_void_p * 3)(*[ctypes.cast(ctypes.byref(a), ctypes.c_void_p) for a in (dw, do, nbl)])
    grid = (nb * 16 + 255) // 256
    for _ in range(3): ok(cu.cuLaunchKernel(f, grid, 1, 1, 256, 1, 1, 0, None, pp, None), "launch")
    cu.cuEventRecord(ev0, None)
    for _ in range(20): cu.cuLaunchKernel(f, grid, 1, 1, 256, 1, 1, 0, None, pp, None)
    cu.cuEventRecord(ev1, None); cu.cuEventSynchronize(ev1)
    ms = ctypes.c_float(); cu.cuEventElapsedTime(ctypes.byref(ms), ev0, ev1); us = ms.value * 1000 / 20
    # check one block against numpy
    out = np.zeros(256, np.float16); cu.cuMemcpyDtoH_v2(out.ctypes.data_as(ctypes.c_void_p), do, ctypes.c_size_t(512))
    b = raw[:144]; d, dmin = np.float32(b[:2].view(np.float16)[0]), np.float32(b[2:4].view(np.float16)[0]); q = b[4:16].astype(int); qs = b[16:]
    def sm(j): return (q[j] & 63, q[j + 4] & 63) if j < 4 else ((q[j + 4] & 15) | ((q[j - 4] >> 6) << 4), (q[j + 4] >> 4) | ((q[j] >> 6) << 4))
    ref = np.zeros(256, np.float32)
    for g in range(4):
        (s0, m0), (s1, m1) = sm(2 * g), sm(2 * g + 1)
        ref[64 * g:64 * g + 32] = np.float32(d * s0) * (qs[32 * g:32 * g + 32] & 15) - np.float32(dmin * m0)
        ref[64 * g + 32:64 * g + 64] = np.float32(d * s1) * (qs[32 * g:32 * g + 32] >> 4) - np.float32(dmin * m1)
    bad = int((out != ref.astype(np.float16)).sum())
    gbs = (raw.nbytes + nb * 512) / us / 1e3
    print(f"q4_k {rows}x{k}: {us:.1f} us ({gbs:.0f} GB/s), {bad} of 256 values differ from numpy; x{count} = {us*count/1000:.2f} ms a pass")
    total += us * count / 1000
    cu.cuMemFree_v2(dw); cu.cuMemFree_v2(do)
print(f"dequant of every 7B product as Q4_K: {total:.2f} ms a pass")
