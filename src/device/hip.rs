//! AMD GPUs through the HIP runtime's module API, loaded at run time (dlopen of libamdhip64), so
//! one binary runs with or without ROCm. Symmetric to cuda.rs; no AMD GPU is available to us, so it
//! is exercised up to device discovery (library found or not, no device: clear errors).

use std::ffi::{c_char, c_int, c_uint, c_void, CStr, CString};

use libloading::Library;

use super::{arg_slots, Backend, DeviceError, RawView};
use crate::jit::Target;
use crate::kernels::Launch;

type HipError = c_int;

struct Api {
    init: unsafe extern "C" fn(c_uint) -> HipError,
    device_count: unsafe extern "C" fn(*mut c_int) -> HipError,
    set_device: unsafe extern "C" fn(c_int) -> HipError,
    device_name: unsafe extern "C" fn(*mut c_char, c_int, c_int) -> HipError,
    properties: unsafe extern "C" fn(*mut c_void, c_int) -> HipError,
    malloc: unsafe extern "C" fn(*mut *mut c_void, usize) -> HipError,
    free: unsafe extern "C" fn(*mut c_void) -> HipError,
    htod: unsafe extern "C" fn(*mut c_void, *const c_void, usize) -> HipError,
    dtoh: unsafe extern "C" fn(*mut c_void, *mut c_void, usize) -> HipError,
    dtod: unsafe extern "C" fn(*mut c_void, *mut c_void, usize) -> HipError,
    module_load: unsafe extern "C" fn(*mut *mut c_void, *const c_void) -> HipError,
    module_unload: unsafe extern "C" fn(*mut c_void) -> HipError,
    get_function: unsafe extern "C" fn(*mut *mut c_void, *mut c_void, *const c_char) -> HipError,
    #[allow(clippy::type_complexity)]
    launch: unsafe extern "C" fn(
        *mut c_void,
        c_uint,
        c_uint,
        c_uint,
        c_uint,
        c_uint,
        c_uint,
        c_uint,
        *mut c_void,
        *mut *mut c_void,
        *mut *mut c_void,
    ) -> HipError,
    synchronize: unsafe extern "C" fn() -> HipError,
    mem_info: unsafe extern "C" fn(*mut usize, *mut usize) -> HipError,
    error_string: unsafe extern "C" fn(HipError) -> *const c_char,
}

pub(super) struct HipBackend {
    api: Api,
    name: String,
    target: Target,
    _lib: Library,
}

const CANDIDATES: &[&str] =
    &["libamdhip64.so", "libamdhip64.so.7", "libamdhip64.so.6", "libamdhip64.so.5", "/opt/rocm/lib/libamdhip64.so"];

impl HipBackend {
    /// Opens GPU `ordinal`, reading its target (gcnArchName with features) from the device.
    pub(super) fn open(ordinal: i32) -> Result<HipBackend, DeviceError> {
        // SAFETY: ROCm's runtime library; its initialisers run without a GPU present.
        let (lib, lib_name) =
            CANDIDATES.iter().find_map(|n| unsafe { Library::new(n) }.ok().map(|l| (l, *n))).ok_or_else(|| {
                DeviceError::LibraryNotFound { backend: "hip", what: "the HIP runtime", tried: CANDIDATES.join(", ") }
            })?;
        macro_rules! sym {
            ($($name:literal),+) => {{
                // SAFETY: HIP's C functions of the declared signatures (hip_runtime_api.h); kept
                // valid by holding `lib`. The first name found is used (ROCm 6 renamed some).
                let found = None $(.or_else(|| unsafe { lib.get(concat!($name, "\0").as_bytes()) }.ok().map(|s| *s)))+;
                found.ok_or_else(|| DeviceError::LibraryNotFound { backend: "hip", what: concat!($($name, " "),+), tried: lib_name.into() })?
            }};
        }
        let api = Api {
            init: sym!("hipInit"),
            device_count: sym!("hipGetDeviceCount"),
            set_device: sym!("hipSetDevice"),
            device_name: sym!("hipDeviceGetName"),
            properties: sym!("hipGetDevicePropertiesR0600", "hipGetDeviceProperties"),
            malloc: sym!("hipMalloc"),
            free: sym!("hipFree"),
            htod: sym!("hipMemcpyHtoD"),
            dtoh: sym!("hipMemcpyDtoH"),
            dtod: sym!("hipMemcpyDtoD"),
            module_load: sym!("hipModuleLoadData"),
            module_unload: sym!("hipModuleUnload"),
            get_function: sym!("hipModuleGetFunction"),
            launch: sym!("hipModuleLaunchKernel"),
            synchronize: sym!("hipDeviceSynchronize"),
            mem_info: sym!("hipMemGetInfo"),
            error_string: sym!("hipGetErrorString"),
        };
        let err = |api: &Api, rc: HipError| {
            // SAFETY: HIP returns a static string for any code.
            unsafe { CStr::from_ptr((api.error_string)(rc)) }.to_string_lossy().into_owned()
        };
        // SAFETY: a plain call with a flags word.
        let rc = unsafe { (api.init)(0) };
        let mut n = 0;
        // SAFETY: an out-pointer to a live local.
        let rc_count = if rc == 0 { unsafe { (api.device_count)(&mut n) } } else { rc };
        if rc_count != 0 || n <= ordinal {
            let why = if rc_count != 0 { err(&api, rc_count) } else { format!("GPU {ordinal} asked for, {n} present") };
            return Err(DeviceError::NoDevice {
                backend: "hip",
                why: format!("{why} ({lib_name} loaded, but no AMD GPU answered)"),
            });
        }
        // SAFETY: a valid ordinal.
        let rc = unsafe { (api.set_device)(ordinal) };
        if rc != 0 {
            return Err(DeviceError::Call { backend: "hip", call: "hipSetDevice", message: err(&api, rc) });
        }
        let mut name = vec![0u8; 256];
        // SAFETY: `name` has room for 256 bytes.
        unsafe { (api.device_name)(name.as_mut_ptr().cast(), 256, ordinal) };
        // hipDeviceProp_t's layout moves between ROCm versions; gcnArchName is the one "gfx…"
        // string in it, so find it rather than hard-code an offset.
        let mut props = vec![0u8; 16384];
        // SAFETY: the buffer is larger than any hipDeviceProp_t.
        unsafe { (api.properties)(props.as_mut_ptr().cast(), ordinal) };
        let arch = props
            .windows(3)
            .position(|w| w == b"gfx")
            .map(|i| {
                let end = props[i..].iter().position(|&b| b == 0).map_or(props.len(), |e| i + e);
                String::from_utf8_lossy(&props[i..end]).into_owned()
            })
            .ok_or_else(|| DeviceError::NoDevice {
                backend: "hip",
                why: "the device reported no gcnArchName".into(),
            })?;
        let target: Target = arch
            .parse()
            .map_err(|e| DeviceError::NoDevice { backend: "hip", why: format!("device target {arch:?}: {e}") })?;
        let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
        Ok(HipBackend { api, name: String::from_utf8_lossy(&name[..end]).into_owned(), target, _lib: lib })
    }

    fn check(&self, call: &'static str, rc: HipError) -> Result<(), DeviceError> {
        if rc == 0 {
            return Ok(());
        }
        // SAFETY: HIP returns a static string for any code.
        let message = unsafe { CStr::from_ptr((self.api.error_string)(rc)) }.to_string_lossy().into_owned();
        Err(DeviceError::Call { backend: "hip", call, message })
    }
}

impl Backend for HipBackend {
    fn kind(&self) -> &'static str {
        "hip"
    }
    fn name(&self) -> &str {
        &self.name
    }
    fn target(&self) -> Option<&Target> {
        Some(&self.target)
    }
    fn alloc(&self, bytes: usize) -> Result<u64, DeviceError> {
        let mut p = std::ptr::null_mut();
        // SAFETY: a plain device allocation into a live out-pointer, freed by `free`.
        self.check("hipMalloc", unsafe { (self.api.malloc)(&mut p, bytes) })?;
        Ok(p as u64)
    }
    unsafe fn free(&self, addr: u64) {
        // SAFETY: the caller's contract: `addr` came from `alloc` and is freed once.
        unsafe { (self.api.free)(addr as *mut c_void) };
    }
    unsafe fn write(&self, dst: u64, src: &[u8]) -> Result<(), DeviceError> {
        // SAFETY: the caller's contract: `dst` has room for `src`.
        self.check("hipMemcpyHtoD", unsafe { (self.api.htod)(dst as *mut c_void, src.as_ptr().cast(), src.len()) })
    }
    unsafe fn read(&self, src: u64, dst: &mut [u8]) -> Result<(), DeviceError> {
        // SAFETY: the caller's contract: `src` holds at least `dst.len()` bytes.
        self.check("hipMemcpyDtoH", unsafe { (self.api.dtoh)(dst.as_mut_ptr().cast(), src as *mut c_void, dst.len()) })
    }
    unsafe fn copy(&self, dst: u64, src: u64, bytes: usize) -> Result<(), DeviceError> {
        // SAFETY: the caller's contract: both ranges lie in live allocations.
        self.check("hipMemcpyDtoD", unsafe { (self.api.dtod)(dst as *mut c_void, src as *mut c_void, bytes) })
    }
    unsafe fn load(&self, code: &[u8], entry: &CString) -> Result<(usize, usize), DeviceError> {
        let mut module = std::ptr::null_mut();
        // SAFETY: the caller's contract: `code` is an AMD code object for this device's target.
        self.check("hipModuleLoadData", unsafe { (self.api.module_load)(&mut module, code.as_ptr().cast()) })?;
        let mut f = std::ptr::null_mut();
        // SAFETY: `module` was just loaded; `entry` is NUL-terminated.
        let found =
            self.check("hipModuleGetFunction", unsafe { (self.api.get_function)(&mut f, module, entry.as_ptr()) });
        if let Err(e) = found {
            // SAFETY: loaded above, unloaded once, no function of it escapes.
            unsafe { (self.api.module_unload)(module) };
            return Err(e);
        }
        Ok((module as usize, f as usize))
    }
    unsafe fn unload(&self, module: usize) {
        // SAFETY: the caller's contract: loaded once, unloaded once.
        unsafe { (self.api.module_unload)(module as *mut c_void) };
    }
    unsafe fn launch(&self, function: usize, launch: &Launch<RawView>, warp_size: u32) -> Result<(), DeviceError> {
        let mut slots = arg_slots(launch);
        let mut ptrs: Vec<*mut c_void> = slots.iter_mut().map(|v| v as *mut u64 as *mut c_void).collect();
        let (grid, block) = (launch.grid(), launch.block(warp_size));
        // SAFETY: the caller's contract: `function` is live and is the kernel of `launch.spec()`,
        // whose template takes exactly `launch.args()` (arg_slots keeps their order), and every
        // buffer holds what the launch touches. `slots` outlives the call.
        let rc = unsafe {
            (self.api.launch)(
                function as *mut c_void,
                grid[0],
                grid[1],
                grid[2],
                block[0],
                block[1],
                block[2],
                0,
                std::ptr::null_mut(),
                ptrs.as_mut_ptr(),
                std::ptr::null_mut(),
            )
        };
        self.check("hipModuleLaunchKernel", rc)
    }
    fn synchronize(&self) -> Result<(), DeviceError> {
        // SAFETY: no arguments.
        self.check("hipDeviceSynchronize", unsafe { (self.api.synchronize)() })
    }
    fn memory_used(&self) -> Result<u64, DeviceError> {
        let (mut free, mut total) = (0usize, 0usize);
        // SAFETY: two out-pointers to live locals.
        self.check("hipMemGetInfo", unsafe { (self.api.mem_info)(&mut free, &mut total) })?;
        Ok((total - free) as u64)
    }
}
