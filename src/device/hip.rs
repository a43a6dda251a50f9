//! AMD GPUs through the HIP runtime's module API, loaded at run time (dlopen of libamdhip64), so
//! one binary runs with or without ROCm. Symmetric to cuda.rs: every launch, copy and fill goes on
//! the backend's own non-blocking stream, and decode steps run as HIP graphs where the runtime has
//! them (their symbols are optional: without them decode replays launch by launch). No AMD GPU is
//! available to us, so it is exercised up to device discovery (library found or not, no device:
//! clear errors); the graph calls are compile-checked against hip_runtime_api.h's declarations.

use std::ffi::{c_char, c_int, c_uint, c_void, CStr, CString};

use libloading::Library;

use super::{arg_slots, Backend, BackendGraph, DeviceError, RawNode, RawView, Shape};
use crate::jit::Target;
use crate::kernels::Launch;

type HipError = c_int;

/// hipStreamNonBlocking: no implicit synchronization with the null stream.
const HIP_STREAM_NON_BLOCKING: c_uint = 1;

/// hip_runtime_api.h's dim3.
#[repr(C)]
#[derive(Clone, Copy)]
struct Dim3 {
    x: c_uint,
    y: c_uint,
    z: c_uint,
}

/// hip_runtime_api.h's hipKernelNodeParams (its field order, not CUDA's). `func` may be a
/// hipFunction_t from hipModuleGetFunction: the runtime takes a pointer it does not know as one.
#[repr(C)]
struct KernelNodeParams {
    block_dim: Dim3,
    extra: *mut *mut c_void,
    func: *mut c_void,
    grid_dim: Dim3,
    kernel_params: *mut *mut c_void,
    shared_mem_bytes: c_uint,
}

/// hip_runtime_api.h's hipMemsetParams.
#[repr(C)]
struct MemsetParams {
    dst: *mut c_void,
    element_size: c_uint,
    height: usize,
    pitch: usize,
    value: c_uint,
    width: usize,
}

/// The graph entry points; a runtime without them leaves the backend without graphs.
#[derive(Clone, Copy)]
struct GraphApi {
    create: unsafe extern "C" fn(*mut *mut c_void, c_uint) -> HipError,
    add_kernel_node: unsafe extern "C" fn(
        *mut *mut c_void,
        *mut c_void,
        *const *mut c_void,
        usize,
        *const KernelNodeParams,
    ) -> HipError,
    add_memset_node:
        unsafe extern "C" fn(*mut *mut c_void, *mut c_void, *const *mut c_void, usize, *const MemsetParams) -> HipError,
    instantiate: unsafe extern "C" fn(*mut *mut c_void, *mut c_void, *mut *mut c_void, *mut c_char, usize) -> HipError,
    exec_kernel_node_set_params: unsafe extern "C" fn(*mut c_void, *mut c_void, *const KernelNodeParams) -> HipError,
    exec_memset_node_set_params: unsafe extern "C" fn(*mut c_void, *mut c_void, *const MemsetParams) -> HipError,
    launch: unsafe extern "C" fn(*mut c_void, *mut c_void) -> HipError,
    exec_destroy: unsafe extern "C" fn(*mut c_void) -> HipError,
    destroy: unsafe extern "C" fn(*mut c_void) -> HipError,
}

struct Api {
    init: unsafe extern "C" fn(c_uint) -> HipError,
    device_count: unsafe extern "C" fn(*mut c_int) -> HipError,
    set_device: unsafe extern "C" fn(c_int) -> HipError,
    device_name: unsafe extern "C" fn(*mut c_char, c_int, c_int) -> HipError,
    properties: unsafe extern "C" fn(*mut c_void, c_int) -> HipError,
    malloc: unsafe extern "C" fn(*mut *mut c_void, usize) -> HipError,
    free: unsafe extern "C" fn(*mut c_void) -> HipError,
    htod: unsafe extern "C" fn(*mut c_void, *const c_void, usize, *mut c_void) -> HipError,
    dtoh: unsafe extern "C" fn(*mut c_void, *mut c_void, usize, *mut c_void) -> HipError,
    dtod: unsafe extern "C" fn(*mut c_void, *mut c_void, usize, *mut c_void) -> HipError,
    memset_d32: unsafe extern "C" fn(*mut c_void, c_int, usize, *mut c_void) -> HipError,
    stream_create: unsafe extern "C" fn(*mut *mut c_void, c_uint) -> HipError,
    stream_synchronize: unsafe extern "C" fn(*mut c_void) -> HipError,
    stream_destroy: unsafe extern "C" fn(*mut c_void) -> HipError,
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
    mem_info: unsafe extern "C" fn(*mut usize, *mut usize) -> HipError,
    error_string: unsafe extern "C" fn(HipError) -> *const c_char,
}

pub(super) struct HipBackend {
    api: Api,
    graph: Option<GraphApi>,
    name: String,
    target: Target,
    /// The non-blocking stream of every launch and copy (a hipStream_t, as an address).
    stream: usize,
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
            htod: sym!("hipMemcpyHtoDAsync"),
            dtoh: sym!("hipMemcpyDtoHAsync"),
            dtod: sym!("hipMemcpyDtoDAsync"),
            memset_d32: sym!("hipMemsetD32Async"),
            stream_create: sym!("hipStreamCreateWithFlags"),
            stream_synchronize: sym!("hipStreamSynchronize"),
            stream_destroy: sym!("hipStreamDestroy"),
            module_load: sym!("hipModuleLoadData"),
            module_unload: sym!("hipModuleUnload"),
            get_function: sym!("hipModuleGetFunction"),
            launch: sym!("hipModuleLaunchKernel"),
            mem_info: sym!("hipMemGetInfo"),
            error_string: sym!("hipGetErrorString"),
        };
        macro_rules! optional {
            ($name:literal) => {
                // SAFETY: as `sym!`; a missing symbol leaves the graphs out.
                unsafe { lib.get(concat!($name, "\0").as_bytes()) }.ok().map(|s| *s)
            };
        }
        let graph = (|| {
            Some(GraphApi {
                create: optional!("hipGraphCreate")?,
                add_kernel_node: optional!("hipGraphAddKernelNode")?,
                add_memset_node: optional!("hipGraphAddMemsetNode")?,
                instantiate: optional!("hipGraphInstantiate")?,
                exec_kernel_node_set_params: optional!("hipGraphExecKernelNodeSetParams")?,
                exec_memset_node_set_params: optional!("hipGraphExecMemsetNodeSetParams")?,
                launch: optional!("hipGraphLaunch")?,
                exec_destroy: optional!("hipGraphExecDestroy")?,
                destroy: optional!("hipGraphDestroy")?,
            })
        })();
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
        let mut stream = std::ptr::null_mut();
        // SAFETY: an out-pointer to a live local, after hipSetDevice: the stream is this device's.
        let rc = unsafe { (api.stream_create)(&mut stream, HIP_STREAM_NON_BLOCKING) };
        if rc != 0 {
            return Err(DeviceError::Call { backend: "hip", call: "hipStreamCreateWithFlags", message: err(&api, rc) });
        }
        let name = String::from_utf8_lossy(&name[..end]).into_owned();
        Ok(HipBackend { api, graph, name, target, stream: stream as usize, _lib: lib })
    }

    fn check(&self, call: &'static str, rc: HipError) -> Result<(), DeviceError> {
        if rc == 0 {
            return Ok(());
        }
        // SAFETY: HIP returns a static string for any code.
        let message = unsafe { CStr::from_ptr((self.api.error_string)(rc)) }.to_string_lossy().into_owned();
        Err(DeviceError::Call { backend: "hip", call, message })
    }

    fn stream(&self) -> *mut c_void {
        self.stream as *mut c_void
    }

    fn sync_stream(&self) -> Result<(), DeviceError> {
        // SAFETY: the stream was created in `open` and lives until Drop.
        self.check("hipStreamSynchronize", unsafe { (self.api.stream_synchronize)(self.stream()) })
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
        // SAFETY: the caller's contract: `dst` has room for `src`. Ordered after the queued
        // launches; the wait keeps `src` borrowed until the copy is done.
        let rc = unsafe { (self.api.htod)(dst as *mut c_void, src.as_ptr().cast(), src.len(), self.stream()) };
        self.check("hipMemcpyHtoDAsync", rc)?;
        self.sync_stream()
    }
    unsafe fn read(&self, src: u64, dst: &mut [u8]) -> Result<(), DeviceError> {
        // SAFETY: the caller's contract: `src` holds at least `dst.len()` bytes. `dst` is complete
        // once the stream is (the wait).
        let rc = unsafe { (self.api.dtoh)(dst.as_mut_ptr().cast(), src as *mut c_void, dst.len(), self.stream()) };
        self.check("hipMemcpyDtoHAsync", rc)?;
        self.sync_stream()
    }
    unsafe fn copy(&self, dst: u64, src: u64, bytes: usize) -> Result<(), DeviceError> {
        // SAFETY: the caller's contract: both ranges lie in live allocations.
        let rc = unsafe { (self.api.dtod)(dst as *mut c_void, src as *mut c_void, bytes, self.stream()) };
        self.check("hipMemcpyDtoDAsync", rc)
    }
    unsafe fn load(&self, code: &[u8], entry: &CString, shared_bytes: u32) -> Result<(usize, usize), DeviceError> {
        // Every AMD target's layouts keep within the 64 KiB of LDS a workgroup has without asking.
        if shared_bytes > 64 * 1024 {
            return Err(DeviceError::Misuse(format!(
                "{entry:?} wants {shared_bytes} bytes of LDS a block, past 64 KiB"
            )));
        }
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
    unsafe fn launch(&self, function: usize, launch: &Launch<RawView>, shape: Shape) -> Result<(), DeviceError> {
        let mut slots = arg_slots(launch);
        let mut ptrs: Vec<*mut c_void> = slots.iter_mut().map(|v| v as *mut u64 as *mut c_void).collect();
        let (grid, block) = (launch.grid(), shape.block(launch));
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
                shape.shared_bytes,
                self.stream(),
                ptrs.as_mut_ptr(),
                std::ptr::null_mut(),
            )
        };
        self.check("hipModuleLaunchKernel", rc)
    }
    fn synchronize(&self) -> Result<(), DeviceError> {
        self.sync_stream()
    }
    fn memory_used(&self) -> Result<u64, DeviceError> {
        let (mut free, mut total) = (0usize, 0usize);
        // SAFETY: two out-pointers to live locals.
        self.check("hipMemGetInfo", unsafe { (self.api.mem_info)(&mut free, &mut total) })?;
        Ok((total - free) as u64)
    }
    unsafe fn fill_i32(&self, dst: u64, value: i32, count: usize) -> Result<(), DeviceError> {
        // SAFETY: the caller's contract: `count` i32s at `dst` lie in one live allocation.
        self.check("hipMemsetD32Async", unsafe {
            (self.api.memset_d32)(dst as *mut c_void, value, count, self.stream())
        })
    }
    unsafe fn build_graph(&self, nodes: &[RawNode]) -> Result<Option<Box<dyn BackendGraph>>, DeviceError> {
        let Some(api) = self.graph else {
            return Err(DeviceError::Call {
                backend: "hip",
                call: "hipGraphCreate",
                message: "this HIP runtime has no graph API".into(),
            });
        };
        // Dropping `graph` on an error below destroys what was made so far.
        let mut graph = HipGraph {
            api,
            error_string: self.api.error_string,
            stream: self.stream,
            graph: 0,
            exec: 0,
            nodes: Vec::new(),
        };
        let mut g = std::ptr::null_mut();
        // SAFETY: an out-pointer to a live local; the flags must be 0.
        graph.check("hipGraphCreate", unsafe { (api.create)(&mut g, 0) })?;
        graph.graph = g as usize;
        for node in nodes {
            // Each node depends on the one before: the stream's order.
            let last = graph.nodes.last().map(|&n| n as *mut c_void);
            let (deps, n_deps) = match &last {
                Some(n) => (n as *const *mut c_void, 1),
                None => (std::ptr::null(), 0),
            };
            let mut added = std::ptr::null_mut();
            match node {
                RawNode::Launch { function, launch, shape } => {
                    let mut slots = arg_slots(launch);
                    let mut ptrs: Vec<*mut c_void> = slots.iter_mut().map(|v| v as *mut u64 as *mut c_void).collect();
                    let params = kernel_params(*function, launch, *shape, &mut ptrs);
                    // SAFETY: the caller's contract (a launch as `launch` takes it); the runtime
                    // copies the argument values before returning, while `slots` lives.
                    let rc = unsafe { (api.add_kernel_node)(&mut added, g, deps, n_deps, &params) };
                    graph.check("hipGraphAddKernelNode", rc)?;
                }
                RawNode::Fill { dst, value, count } => {
                    let params = memset_params(*dst, *value, *count);
                    // SAFETY: the caller's contract: the range lies in a live allocation.
                    let rc = unsafe { (api.add_memset_node)(&mut added, g, deps, n_deps, &params) };
                    graph.check("hipGraphAddMemsetNode", rc)?;
                }
            }
            graph.nodes.push(added as usize);
        }
        let mut exec = std::ptr::null_mut();
        // SAFETY: `g` is the graph just built; no error node or log is asked for.
        let rc = unsafe { (api.instantiate)(&mut exec, g, std::ptr::null_mut(), std::ptr::null_mut(), 0) };
        graph.check("hipGraphInstantiate", rc)?;
        graph.exec = exec as usize;
        Ok(Some(Box::new(graph)))
    }
}

impl Drop for HipBackend {
    fn drop(&mut self) {
        // SAFETY: created in `open`; every buffer, kernel and graph holds the device, so nothing
        // uses the stream by now.
        unsafe { (self.api.stream_destroy)(self.stream()) };
    }
}

/// A kernel node's parameters; `ptrs` points at the argument values, which the runtime reads when
/// the node is added or set.
fn kernel_params(
    function: usize,
    launch: &Launch<RawView>,
    shape: Shape,
    ptrs: &mut [*mut c_void],
) -> KernelNodeParams {
    let (grid, block) = (launch.grid(), shape.block(launch));
    KernelNodeParams {
        block_dim: Dim3 { x: block[0], y: block[1], z: block[2] },
        extra: std::ptr::null_mut(),
        func: function as *mut c_void,
        grid_dim: Dim3 { x: grid[0], y: grid[1], z: grid[2] },
        kernel_params: ptrs.as_mut_ptr(),
        shared_mem_bytes: shape.shared_bytes,
    }
}

/// A memset node writing `value` to `count` consecutive i32s.
fn memset_params(dst: u64, value: i32, count: usize) -> MemsetParams {
    MemsetParams { dst: dst as *mut c_void, element_size: 4, height: 1, pitch: 0, value: value as c_uint, width: count }
}

/// A HIP graph and its executable instance (handles as addresses: Send + Sync), with the entry
/// points it needs (the library stays loaded while the backend, which outlives its graphs, lives).
struct HipGraph {
    api: GraphApi,
    error_string: unsafe extern "C" fn(HipError) -> *const c_char,
    stream: usize,
    graph: usize,
    exec: usize,
    nodes: Vec<usize>,
}

impl HipGraph {
    fn check(&self, call: &'static str, rc: HipError) -> Result<(), DeviceError> {
        if rc == 0 {
            return Ok(());
        }
        // SAFETY: HIP returns a static string for any code.
        let message = unsafe { CStr::from_ptr((self.error_string)(rc)) }.to_string_lossy().into_owned();
        Err(DeviceError::Call { backend: "hip", call, message })
    }
}

impl BackendGraph for HipGraph {
    unsafe fn set(&mut self, index: usize, node: &RawNode) -> Result<(), DeviceError> {
        let (exec, handle) = (self.exec as *mut c_void, self.nodes[index] as *mut c_void);
        match node {
            RawNode::Launch { function, launch, shape } => {
                let mut slots = arg_slots(launch);
                let mut ptrs: Vec<*mut c_void> = slots.iter_mut().map(|v| v as *mut u64 as *mut c_void).collect();
                let params = kernel_params(*function, launch, *shape, &mut ptrs);
                // SAFETY: the caller's contract: node `index` is a kernel node of this function;
                // the runtime copies the argument values before returning.
                let rc = unsafe { (self.api.exec_kernel_node_set_params)(exec, handle, &params) };
                self.check("hipGraphExecKernelNodeSetParams", rc)
            }
            RawNode::Fill { dst, value, count } => {
                let params = memset_params(*dst, *value, *count);
                // SAFETY: the caller's contract: node `index` is a memset node.
                let rc = unsafe { (self.api.exec_memset_node_set_params)(exec, handle, &params) };
                self.check("hipGraphExecMemsetNodeSetParams", rc)
            }
        }
    }

    unsafe fn launch(&self) -> Result<(), DeviceError> {
        // SAFETY: the caller's contract; the stream lives as long as the backend.
        self.check("hipGraphLaunch", unsafe { (self.api.launch)(self.exec as *mut c_void, self.stream as *mut c_void) })
    }
}

impl Drop for HipGraph {
    fn drop(&mut self) {
        // SAFETY: made by `build_graph` and destroyed once, here.
        unsafe {
            if self.exec != 0 {
                (self.api.exec_destroy)(self.exec as *mut c_void);
            }
            if self.graph != 0 {
                (self.api.destroy)(self.graph as *mut c_void);
            }
        }
    }
}
