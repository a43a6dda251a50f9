//! Devices behind one small trait: allocation, host↔device copies, loading a kernel (from a cached
//! code object on a GPU), launching it, synchronising. `cuda.rs` (driver API through cudarc) and
//! `hip.rs` (our dlopen FFI) are thin and symmetric; `cpu.rs` runs each kernel's op with the CPU
//! reference (exec/cpu.rs) on host memory. One executor (exec/gpu.rs) drives all three. The
//! plain CPU session (exec/session.rs) skips the device layer for speed and simplicity.

mod cpu;
mod cuda;
mod hip;

use crate::jit::Target;
use crate::kernels::KernelSpec;

pub use cpu::CpuDevice;
pub use cuda::CudaDevice;
pub use hip::HipDevice;

/// A device address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DevPtr(pub u64);

impl DevPtr {
    /// The address `bytes` further on.
    pub fn offset(self, bytes: usize) -> DevPtr {
        DevPtr(self.0 + bytes as u64)
    }
}

/// A kernel argument, passed by value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Arg {
    Ptr(DevPtr),
    I32(i32),
    F32(f32),
}

/// A loaded kernel entry point.
#[derive(Debug)]
pub struct Kernel {
    /// CUfunction / hipFunction_t, as an address (unused on the CPU).
    pub(crate) handle: usize,
    pub entry: String,
    pub spec: KernelSpec,
}

#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum DeviceError {
    #[error("{backend}: {what} not found: tried {tried}")]
    LibraryNotFound { backend: &'static str, what: &'static str, tried: String },
    #[error("{backend}: no usable GPU: {why}")]
    NoDevice { backend: &'static str, why: String },
    #[error("{backend}: {call} failed: {message}")]
    Call { backend: &'static str, call: &'static str, message: String },
    #[error("cpu device: {0}")]
    Host(String),
}

pub trait Device: Send + Sync {
    /// `cuda` or `hip`.
    fn backend(&self) -> &'static str;
    /// The GPU's name (`NVIDIA H100 80GB HBM3`).
    fn name(&self) -> &str;
    /// The compile target read from the device (`sm_90`, `gfx90a:sramecc+:xnack-`): kernels
    /// compiled for any other target are never loaded. `None`: the device needs no compiled code.
    fn target(&self) -> Option<&Target>;
    fn alloc(&self, bytes: usize) -> Result<DevPtr, DeviceError>;
    fn free(&self, ptr: DevPtr);
    fn upload(&self, dst: DevPtr, src: &[u8]) -> Result<(), DeviceError>;
    fn download(&self, src: DevPtr, dst: &mut [u8]) -> Result<(), DeviceError>;
    fn copy(&self, dst: DevPtr, src: DevPtr, bytes: usize) -> Result<(), DeviceError>;
    /// Loads `spec`'s kernel from its code object (`entry` in `code`).
    fn load_kernel(&self, spec: &KernelSpec, code: &[u8], entry: &str) -> Result<Kernel, DeviceError>;
    /// Queues a launch (asynchronous).
    fn launch(&self, kernel: &Kernel, grid: [u32; 3], block: [u32; 3], args: &[Arg]) -> Result<(), DeviceError>;
    /// Waits for every queued launch and copy.
    fn synchronize(&self) -> Result<(), DeviceError>;
    /// Bytes of device memory in use (by everything on the device).
    fn memory_used(&self) -> Result<u64, DeviceError>;
}

/// Kernel arguments as the launch APIs take them: an array of pointers to the values.
pub(crate) struct ArgPack {
    values: Vec<u64>,
}

impl ArgPack {
    pub fn new(args: &[Arg]) -> ArgPack {
        ArgPack {
            values: args
                .iter()
                .map(|a| match *a {
                    Arg::Ptr(p) => p.0,
                    Arg::I32(v) => v as u32 as u64,
                    Arg::F32(v) => v.to_bits() as u64,
                })
                .collect(),
        }
    }

    /// Pointers to each value (little-endian: a 4-byte argument reads the low half of its slot).
    pub fn pointers(&mut self) -> Vec<*mut std::ffi::c_void> {
        self.values.iter_mut().map(|v| v as *mut u64 as *mut std::ffi::c_void).collect()
    }
}

/// Opens the device `--device` names: `cuda`, `hip`, or `auto` (hip, then cuda). `None` for `cpu`
/// and for `auto` with no GPU; an error when a named GPU backend cannot be opened.
pub fn open(choice: &str) -> Result<Option<Box<dyn Device>>, DeviceError> {
    match choice {
        "cpu" => Ok(None),
        "cuda" => Ok(Some(Box::new(CudaDevice::open(0)?))),
        "hip" => Ok(Some(Box::new(HipDevice::open(0)?))),
        "auto" => {
            if let Ok(d) = HipDevice::open(0) {
                return Ok(Some(Box::new(d)));
            }
            Ok(CudaDevice::open(0).ok().map(|d| Box::new(d) as Box<dyn Device>))
        }
        other => Err(DeviceError::NoDevice {
            backend: "rocmforge",
            why: format!("unknown device {other:?}: expected cpu, cuda, hip or auto"),
        }),
    }
}
