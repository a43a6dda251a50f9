import ctypes, glob, sys, os
import numpy as np
def lib(pat): return ctypes.CDLL(sorted(glob.glob(pat))[-1])
nv = lib("/usr/local/cuda/lib64/libnvrtc.so*"); cu = ctypes.CDLL("libcuda.so.1")
def ok(r, w):
    if r != 0: sys.exit(f"{w}: {r}")
KERNEL = os.environ.get("KERNEL", "gemm_f16")
src = open(os.path.join(os.path.dirname(__file__), KERNEL + ".cu")).read().encode()
ARCH = b"sm_90a" if KERNEL == "gemm_wgmma" else b"sm_90"
ok(cu.cuInit(0), "init"); dev = ctypes.c_int(); ok(cu.cuDeviceGet(ctypes.byref(dev), 0), "dev")
ctx = ctypes.c_void_p(); ok(cu.cuDevicePrimaryCtxRetain(ctypes.byref(ctx), dev), "ctx"); ok(cu.cuCtxSetCurrent(ctx), "set")
def build(defs):
    prog = ctypes.c_void_p(); ok(nv.nvrtcCreateProgram(ctypes.byref(prog), src, b"g.cu", 0, None, None), "create")
    opts = [b"--gpu-architecture=" + ARCH, b"-std=c++17"] + [f"-D{k}={v}".encode() for k, v in defs.items()]
    arr = (ctypes.c_char_p * len(opts))(*opts)
    r = nv.nvrtcCompileProgram(prog, len(opts), arr)
    n = ctypes.c_size_t(); nv.nvrtcGetProgramLogSize(prog, ctypes.byref(n)); log = ctypes.create_string_buffer(n.value); nv.nvrtcGetProgramLog(prog, log)
    if r != 0: sys.exit(log.value.decode())
    nv.nvrtcGetCUBINSize(prog, ctypes.byref(n)); cub = ctypes.create_string_buffer(n.value); nv.nvrtcGetCUBIN(prog, cub)
    mod = ctypes.c_void_p(); ok(cu.cuModuleLoadData(ctypes.byref(mod), cub), "load")
    f = ctypes.c_void_p(); ok(cu.cuModuleGetFunction(ctypes.byref(f), mod, KERNEL.encode()), "func")
    regs = ctypes.c_int(); cu.cuFuncGetAttribute(ctypes.byref(regs), 4, f)
    spill = ctypes.c_int(); cu.cuFuncGetAttribute(ctypes.byref(spill), 3, f)  # local bytes
    return f, regs.value, spill.value
def alloc(a):
    p = ctypes.c_uint64(); ok(cu.cuMemAlloc_v2(ctypes.byref(p), ctypes.c_size_t(a.nbytes)), "alloc")
    ok(cu.cuMemcpyHtoD_v2(p, a.ctypes.data_as(ctypes.c_void_p), ctypes.c_size_t(a.nbytes)), "h2d"); return p
ev0, ev1 = ctypes.c_void_p(), ctypes.c_void_p(); cu.cuEventCreate(ctypes.byref(ev0), 0); cu.cuEventCreate(ctypes.byref(ev1), 0)
T = 512
rng = np.random.default_rng(1)
shapes = [(4096, 4096, 128), (11008, 4096, 64), (4096, 11008, 32)]
data = {}
for (n, k, _) in shapes:
    W = (rng.standard_normal((n, k)) * 0.02).astype(np.float16); X = rng.standard_normal((T, k)).astype(np.float16)
    data[(n, k)] = (W, X, [alloc(W) for _ in range(4)], alloc(X), alloc(np.zeros((T, n), np.float32)))
configs = [dict(BM=128, BN=128, WM=64, WN=32, STAGES=3, BK=64, MINB=2)] if KERNEL == "gemm_f16" else [dict(BM=128, BN=128, STAGES=3, BK=64), dict(BM=128, BN=128, STAGES=3, BK=64, MINB=2), dict(BM=128, BN=128, STAGES=4, BK=64, PIPE=1), dict(BM=128, BN=128, STAGES=5, BK=64, PIPE=1), dict(BM=128, BN=128, STAGES=4, BK=64, PIPE=1, MINB=2), dict(BM=128, BN=128, STAGES=3, BK=64, PIPE=1, MINB=2)]
for cfg in configs:
    f, regs, local = build(cfg)
    nt = 256 if KERNEL == "gemm_wgmma" else (cfg["BM"] // cfg["WM"]) * (cfg["BN"] // cfg["WN"]) * 32
    smem = cfg["STAGES"] * (cfg["BM"] + cfg["BN"]) * cfg.get("BK", 32) * 2
    ok(cu.cuFuncSetAttribute(f, 8, smem), "smem attr")
    total = 0.0; line = []
    for (n, k, count) in shapes:
        W, X, dws, dx, dy = data[(n, k)]
        dw = dws[0]
        args = [ctypes.c_uint64(dw.value), ctypes.c_uint64(dx.value), ctypes.c_uint64(dy.value), ctypes.c_int(n), ctypes.c_int(T), ctypes.c_int(k)]
        pp = (ctypes.c_void_p * 6)(*[ctypes.cast(ctypes.byref(a), ctypes.c_void_p) for a in args])
        launch = lambda: ok(cu.cuLaunchKernel(f, n // cfg["BM"], T // cfg["BN"], 1, nt, 1, 1, smem, None, pp, None), "launch")
        launch(); ok(cu.cuCtxSynchronize(), "sync")
        Y = np.zeros((T, n), np.float32); cu.cuMemcpyDtoH_v2(Y.ctypes.data_as(ctypes.c_void_p), dy, ctypes.c_size_t(Y.nbytes))
        ref = X.astype(np.float32) @ W.astype(np.float32).T
        err = float(np.abs(Y - ref).max() / np.abs(ref).max())
        pps = []
        for dwi in dws:
            a2 = [ctypes.c_uint64(dwi.value)] + args[1:]
            pps.append(((ctypes.c_void_p * 6)(*[ctypes.cast(ctypes.byref(a), ctypes.c_void_p) for a in a2]), a2))
        launch = lambda i=0: ok(cu.cuLaunchKernel(f, n // cfg["BM"], T // cfg["BN"], 1, nt, 1, 1, smem, None, pps[i % 4][0], None), "launch")
        for i in range(4): launch(i)
        cu.cuEventRecord(ev0, None)
        for i in range(32): launch(i)
        cu.cuEventRecord(ev1, None); cu.cuEventSynchronize(ev1)
        ms = ctypes.c_float(); cu.cuEventElapsedTime(ctypes.byref(ms), ev0, ev1); us = ms.value * 1000 / 32
        total += us * count / 1000
        line.append(f"{n}x{k}: {us:.1f} us ({2*n*k*T/us/1e6:.0f} TF, err {err:.1e})")
    print(f"{cfg} regs {regs} local {local}: " + "; ".join(line) + f" | 7B products {total:.2f} ms/pass", flush=True)
