//! NVIDIA GPUs through the CUDA driver API (cudarc, loaded at run time).

use std::ffi::{c_void, CString};

use cudarc::driver::{result, sys};

use super::{arg_slots, Backend, DeviceError, RawView};
use crate::jit::Target;
use crate::kernels::Launch;

pub(super) struct CudaBackend {
    name: String,
    target: Target,
    dev: sys::CUdevice,
    /// The device's primary context (a CUcontext, as an address: Send + Sync).
    ctx: usize,
}

fn call(call: &'static str) -> impl Fn(result::DriverError) -> DeviceError {
    move |e| DeviceError::Call { backend: "cuda", call, message: format!("{e:?}") }
}

impl CudaBackend {
    /// Opens GPU `ordinal` and retains its primary context.
    pub(super) fn open(ordinal: i32) -> Result<CudaBackend, DeviceError> {
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
        let attribute = |a| {
            // SAFETY: `dev` came from cuDeviceGet; attributes are plain ints.
            unsafe { result::device::get_attribute(dev, a) }.map_err(call("cuDeviceGetAttribute"))
        };
        let major = attribute(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR)?;
        let minor = attribute(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR)?;
        // SAFETY: the primary context of a valid device; released in Drop.
        let ctx = unsafe { result::primary_ctx::retain(dev) }.map_err(call("cuDevicePrimaryCtxRetain"))?;
        let target = Target::Nvidia { sm: (major * 10 + minor) as u32, suffix: None };
        let backend = CudaBackend { name, target, dev, ctx: ctx as usize };
        backend.make_current()?;
        Ok(backend)
    }

    /// Makes the context current on the calling thread (buffers may be used and dropped on any).
    fn make_current(&self) -> Result<(), DeviceError> {
        // SAFETY: the context is retained until Drop.
        unsafe { result::ctx::set_current(self.ctx as sys::CUcontext) }.map_err(call("cuCtxSetCurrent"))
    }
}

impl Backend for CudaBackend {
    fn kind(&self) -> &'static str {
        "cuda"
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn target(&self) -> Option<&Target> {
        Some(&self.target)
    }

    fn alloc(&self, bytes: usize) -> Result<u64, DeviceError> {
        self.make_current()?;
        // SAFETY: a plain device allocation (never managed memory), freed by `free`.
        unsafe { result::malloc_sync(bytes) }.map_err(call("cuMemAlloc"))
    }

    unsafe fn free(&self, addr: u64) {
        if self.make_current().is_ok() {
            // SAFETY: the caller's contract: `addr` came from `alloc` and is freed once.
            let _ = unsafe { result::free_sync(addr) };
        }
    }

    unsafe fn write(&self, dst: u64, src: &[u8]) -> Result<(), DeviceError> {
        self.make_current()?;
        // SAFETY: the caller's contract: `dst` has room for `src`.
        unsafe { result::memcpy_htod_sync(dst, src) }.map_err(call("cuMemcpyHtoD"))
    }

    unsafe fn read(&self, src: u64, dst: &mut [u8]) -> Result<(), DeviceError> {
        self.make_current()?;
        // SAFETY: the caller's contract: `src` holds at least `dst.len()` bytes.
        unsafe { result::memcpy_dtoh_sync(dst, src) }.map_err(call("cuMemcpyDtoH"))
    }

    unsafe fn copy(&self, dst: u64, src: u64, bytes: usize) -> Result<(), DeviceError> {
        self.make_current()?;
        // SAFETY: the caller's contract: both ranges lie in live allocations.
        unsafe { result::memcpy_dtod_sync(dst, src, bytes) }.map_err(call("cuMemcpyDtoD"))
    }

    unsafe fn load(&self, code: &[u8], entry: &CString) -> Result<(usize, usize), DeviceError> {
        self.make_current()?;
        // SAFETY: the caller's contract: `code` is a CUBIN from NVRTC for this device's target;
        // the driver copies it.
        let module =
            unsafe { result::module::load_data(code.as_ptr() as *const c_void) }.map_err(call("cuModuleLoadData"))?;
        // SAFETY: `module` was just loaded.
        match unsafe { result::module::get_function(module, entry.clone()) } {
            Ok(f) => Ok((module as usize, f as usize)),
            Err(e) => {
                // SAFETY: loaded above, unloaded once, no function of it escapes.
                let _ = unsafe { result::module::unload(module) };
                Err(call("cuModuleGetFunction")(e))
            }
        }
    }

    unsafe fn unload(&self, module: usize) {
        if self.make_current().is_ok() {
            // SAFETY: the caller's contract: loaded once, unloaded once.
            let _ = unsafe { result::module::unload(module as sys::CUmodule) };
        }
    }

    unsafe fn launch(&self, function: usize, launch: &Launch<RawView>, warp_size: u32) -> Result<(), DeviceError> {
        self.make_current()?;
        let mut slots = arg_slots(launch);
        let mut ptrs: Vec<*mut c_void> = slots.iter_mut().map(|v| v as *mut u64 as *mut c_void).collect();
        let (grid, block) = (launch.grid(), launch.block(warp_size));
        // SAFETY: the caller's contract: `function` is live and is the kernel of `launch.spec()`,
        // whose template takes exactly `launch.args()` (arg_slots keeps their order), and every
        // buffer holds what the launch touches. `slots` outlives the call.
        unsafe {
            result::launch_kernel(
                function as sys::CUfunction,
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
            message: format!("{}: {e:?}", launch.spec()),
        })
    }

    fn synchronize(&self) -> Result<(), DeviceError> {
        self.make_current()?;
        result::ctx::synchronize().map_err(call("cuCtxSynchronize"))
    }

    fn memory_used(&self) -> Result<u64, DeviceError> {
        self.make_current()?;
        let (free, total) = result::mem_get_info().map_err(call("cuMemGetInfo"))?;
        Ok((total - free) as u64)
    }
}

impl Drop for CudaBackend {
    fn drop(&mut self) {
        // SAFETY: retained once in `open`; every buffer and kernel holds the device, so none is
        // left by the time it drops.
        let _ = unsafe { result::primary_ctx::release(self.dev) };
    }
}
