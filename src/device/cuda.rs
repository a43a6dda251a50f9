//! NVIDIA GPUs through the CUDA driver API (cudarc, loaded at run time).

use std::ffi::c_void;
use std::sync::Mutex;

use cudarc::driver::{result, sys};

use super::{Arg, ArgPack, DevPtr, Device, DeviceError, Kernel};
use crate::jit::Target;
use crate::kernels::KernelSpec;

pub struct CudaDevice {
    name: String,
    target: Target,
    ctx: usize,
    modules: Mutex<Vec<usize>>,
}

fn call(call: &'static str) -> impl Fn(result::DriverError) -> DeviceError {
    move |e| DeviceError::Call { backend: "cuda", call, message: format!("{e:?}") }
}

impl CudaDevice {
    /// Opens GPU `ordinal` and makes its primary context current on this thread.
    pub fn open(ordinal: i32) -> Result<CudaDevice, DeviceError> {
        // SAFETY: probes whether libcuda loads; cudarc panics on first use otherwise.
        if !unsafe { sys::is_culib_present() } {
            return Err(DeviceError::LibraryNotFound {
                backend: "cuda",
                what: "the CUDA driver (libcuda.so)",
                tried: "cudarc's candidates".into(),
            });
        }
        result::init().map_err(call("cuInit"))?;
        let n = result::device::get_count().map_err(call("cuDeviceGetCount"))?;
        if ordinal >= n {
            return Err(DeviceError::NoDevice {
                backend: "cuda",
                why: format!("GPU {ordinal} asked for, {n} present"),
            });
        }
        let dev = result::device::get(ordinal).map_err(call("cuDeviceGet"))?;
        let name = result::device::get_name(dev).map_err(call("cuDeviceGetName"))?;
        // SAFETY: `dev` came from cuDeviceGet; attributes are plain ints.
        let (major, minor) = unsafe {
            (
                result::device::get_attribute(
                    dev,
                    sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR,
                )
                .map_err(call("cuDeviceGetAttribute"))?,
                result::device::get_attribute(
                    dev,
                    sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR,
                )
                .map_err(call("cuDeviceGetAttribute"))?,
            )
        };
        // SAFETY: the primary context of a valid device; released in Drop.
        let ctx = unsafe { result::primary_ctx::retain(dev) }.map_err(call("cuDevicePrimaryCtxRetain"))?;
        // SAFETY: `ctx` is live.
        unsafe { result::ctx::set_current(ctx) }.map_err(call("cuCtxSetCurrent"))?;
        let target = Target::Nvidia { sm: (major * 10 + minor) as u32, suffix: None };
        Ok(CudaDevice { name, target, ctx: ctx as usize, modules: Mutex::new(Vec::new()) })
    }

    fn make_current(&self) -> Result<(), DeviceError> {
        // SAFETY: the context lives as long as self.
        unsafe { result::ctx::set_current(self.ctx as sys::CUcontext) }.map_err(call("cuCtxSetCurrent"))
    }
}

impl Device for CudaDevice {
    fn backend(&self) -> &'static str {
        "cuda"
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn target(&self) -> Option<&Target> {
        Some(&self.target)
    }

    fn alloc(&self, bytes: usize) -> Result<DevPtr, DeviceError> {
        self.make_current()?;
        // SAFETY: a plain device allocation (never managed memory), freed by `free`.
        unsafe { result::malloc_sync(bytes.max(1)) }.map(DevPtr).map_err(call("cuMemAlloc"))
    }

    fn free(&self, ptr: DevPtr) {
        // SAFETY: `ptr` came from `alloc` and is freed once.
        let _ = unsafe { result::free_sync(ptr.0) };
    }

    fn upload(&self, dst: DevPtr, src: &[u8]) -> Result<(), DeviceError> {
        // SAFETY: `dst` has room for `src` (the executor sizes every buffer).
        unsafe { result::memcpy_htod_sync(dst.0, src) }.map_err(call("cuMemcpyHtoD"))
    }

    fn download(&self, src: DevPtr, dst: &mut [u8]) -> Result<(), DeviceError> {
        // SAFETY: `src` holds at least `dst.len()` bytes.
        unsafe { result::memcpy_dtoh_sync(dst, src.0) }.map_err(call("cuMemcpyDtoH"))
    }

    fn copy(&self, dst: DevPtr, src: DevPtr, bytes: usize) -> Result<(), DeviceError> {
        // SAFETY: both ranges are device allocations of at least `bytes`.
        unsafe { result::memcpy_dtod_sync(dst.0, src.0, bytes) }.map_err(call("cuMemcpyDtoD"))
    }

    fn load_kernel(&self, spec: &KernelSpec, code: &[u8], entry: &str) -> Result<Kernel, DeviceError> {
        self.make_current()?;
        // SAFETY: `code` is a CUBIN from NVRTC for this device's target; the driver copies it.
        let module =
            unsafe { result::module::load_data(code.as_ptr() as *const c_void) }.map_err(call("cuModuleLoadData"))?;
        self.modules.lock().expect("modules lock").push(module as usize);
        let name = std::ffi::CString::new(entry).expect("entry names have no NUL");
        // SAFETY: `module` is loaded and kept until Drop.
        let f = unsafe { result::module::get_function(module, name) }.map_err(call("cuModuleGetFunction"))?;
        Ok(Kernel { handle: f as usize, entry: entry.to_string(), spec: *spec })
    }

    fn launch(&self, kernel: &Kernel, grid: [u32; 3], block: [u32; 3], args: &[Arg]) -> Result<(), DeviceError> {
        let mut pack = ArgPack::new(args);
        let mut ptrs = pack.pointers();
        // SAFETY: the argument list matches the kernel's signature (the executor builds both
        // from the same step), every pointer argument is a live device allocation.
        unsafe {
            result::launch_kernel(
                kernel.handle as sys::CUfunction,
                (grid[0], grid[1], grid[2]),
                (block[0], block[1], block[2]),
                0,
                std::ptr::null_mut(),
                &mut ptrs,
            )
        }
        .map_err(|e| DeviceError::Call {
            backend: "cuda",
            call: "cuLaunchKernel",
            message: format!("{}: {e:?}", kernel.entry),
        })
    }

    fn synchronize(&self) -> Result<(), DeviceError> {
        result::ctx::synchronize().map_err(call("cuCtxSynchronize"))
    }

    fn memory_used(&self) -> Result<u64, DeviceError> {
        let (free, total) = result::mem_get_info().map_err(call("cuMemGetInfo"))?;
        Ok((total - free) as u64)
    }
}

impl Drop for CudaDevice {
    fn drop(&mut self) {
        for m in self.modules.lock().expect("modules lock").drain(..) {
            // SAFETY: each module was loaded once and is unloaded once.
            let _ = unsafe { result::module::unload(m as sys::CUmodule) };
        }
    }
}
