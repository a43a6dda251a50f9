//! NVIDIA GPUs through the CUDA driver API (cudarc, loaded at run time). Every launch, copy and
//! fill goes on the backend's own non-blocking stream (never the legacy default stream, which
//! synchronizes with everything); decode steps run as CUDA graphs built from the same launches.

use std::ffi::{c_void, CString};

use cudarc::driver::{result, sys};

use super::{arg_slots, Backend, BackendGraph, DeviceError, RawNode, RawView, Shape};
use crate::jit::Target;
use crate::kernels::Launch;

pub(super) struct CudaBackend {
    name: String,
    target: Target,
    multiprocessors: u32,
    /// Plain launches chain by programmatic dependent launch (see `programmatic_launch`).
    stream_pdl: bool,
    dev: sys::CUdevice,
    /// The device's primary context (a CUcontext, as an address: Send + Sync).
    ctx: usize,
    /// The non-blocking stream of every launch and copy (a CUstream, as an address).
    stream: usize,
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
        let multiprocessors =
            attribute(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)?.max(1) as u32;
        // SAFETY: the primary context of a valid device; released in Drop.
        let ctx = unsafe { result::primary_ctx::retain(dev) }.map_err(call("cuDevicePrimaryCtxRetain"))?;
        let target = Target::Nvidia { sm: (major * 10 + minor) as u32, suffix: None };
        let mut backend =
            CudaBackend { name, target, multiprocessors, stream_pdl: false, dev, ctx: ctx as usize, stream: 0 };
        backend.stream_pdl = backend.programmatic_launch();
        backend.make_current()?;
        // Dropping `backend` on an error below releases the context (a null stream is not destroyed).
        let stream = result::stream::create(result::stream::StreamKind::NonBlocking).map_err(call("cuStreamCreate"))?;
        backend.stream = stream as usize;
        Ok(backend)
    }

    /// Makes the context current on the calling thread (buffers may be used and dropped on any).
    fn make_current(&self) -> Result<(), DeviceError> {
        // SAFETY: the context is retained until Drop.
        unsafe { result::ctx::set_current(self.ctx as sys::CUcontext) }.map_err(call("cuCtxSetCurrent"))
    }

    fn stream(&self) -> sys::CUstream {
        self.stream as sys::CUstream
    }

    /// Waits for the stream.
    fn sync_stream(&self) -> Result<(), DeviceError> {
        // SAFETY: the stream was created in `open` and lives until Drop.
        unsafe { result::stream::synchronize(self.stream()) }.map_err(call("cuStreamSynchronize"))
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

    fn multiprocessors(&self) -> Option<u32> {
        Some(self.multiprocessors)
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
        // SAFETY: the caller's contract: `dst` has room for `src`. The copy is ordered on the
        // stream after the launches queued before it; the wait below keeps `src` borrowed until
        // the copy is done (the caller may free it on return).
        unsafe { result::memcpy_htod_async(dst, src, self.stream()) }.map_err(call("cuMemcpyHtoDAsync"))?;
        self.sync_stream()
    }

    unsafe fn read(&self, src: u64, dst: &mut [u8]) -> Result<(), DeviceError> {
        self.make_current()?;
        // SAFETY: the caller's contract: `src` holds at least `dst.len()` bytes. Ordered after the
        // queued launches; `dst` is complete once the stream is (the wait below).
        unsafe { result::memcpy_dtoh_async(dst, src, self.stream()) }.map_err(call("cuMemcpyDtoHAsync"))?;
        self.sync_stream()
    }

    unsafe fn copy(&self, dst: u64, src: u64, bytes: usize) -> Result<(), DeviceError> {
        self.make_current()?;
        // SAFETY: the caller's contract: both ranges lie in live allocations.
        unsafe { result::memcpy_dtod_async(dst, src, bytes, self.stream()) }.map_err(call("cuMemcpyDtoDAsync"))
    }

    unsafe fn load(&self, code: &[u8], entry: &CString, shared_bytes: u32) -> Result<(usize, usize), DeviceError> {
        self.make_current()?;
        // SAFETY: the caller's contract: `code` is a CUBIN from NVRTC for this device's target;
        // the driver copies it.
        let module =
            unsafe { result::module::load_data(code.as_ptr() as *const c_void) }.map_err(call("cuModuleLoadData"))?;
        // SAFETY: `module` was just loaded.
        let found = unsafe { result::module::get_function(module, entry.clone()) }.map_err(call("cuModuleGetFunction"));
        // Blocks may take more than 48 KiB of dynamic shared memory only when the function says so.
        let allowed = found.and_then(|f| {
            if shared_bytes <= 48 * 1024 {
                return Ok(f);
            }
            let attr = sys::CUfunction_attribute::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES;
            // SAFETY: `f` is a live function of the module loaded above.
            unsafe { sys::cuFuncSetAttribute(f, attr, shared_bytes as i32) }
                .result()
                .map_err(call("cuFuncSetAttribute"))?;
            Ok(f)
        });
        match allowed {
            Ok(f) => Ok((module as usize, f as usize)),
            Err(e) => {
                // SAFETY: loaded above, unloaded once, no function of it escapes.
                let _ = unsafe { result::module::unload(module) };
                Err(e)
            }
        }
    }

    unsafe fn unload(&self, module: usize) {
        if self.make_current().is_ok() {
            // SAFETY: the caller's contract: loaded once, unloaded once.
            let _ = unsafe { result::module::unload(module as sys::CUmodule) };
        }
    }

    unsafe fn launch(&self, function: usize, launch: &Launch<RawView>, shape: Shape) -> Result<(), DeviceError> {
        self.make_current()?;
        let mut slots = arg_slots(launch);
        let mut ptrs: Vec<*mut c_void> = slots.iter_mut().map(|v| v as *mut u64 as *mut c_void).collect();
        let (grid, block) = (launch.grid(), shape.block(launch));
        let failed = |call: &'static str| {
            move |e| DeviceError::Call { backend: "cuda", call, message: format!("{}: {e:?}", launch.spec()) }
        };
        if self.stream_pdl {
            // Programmatic stream serialization: the kernel may be launched while the one before
            // it drains; it waits for it (rf_grid_wait, its first statement) before touching memory.
            // SAFETY: a plain-old-data attribute; the union member set is the one its id names.
            let mut attr: sys::CUlaunchAttribute = unsafe { std::mem::zeroed() };
            attr.id = sys::CUlaunchAttributeID::CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION;
            attr.value.programmaticStreamSerializationAllowed = 1;
            let config = sys::CUlaunchConfig {
                gridDimX: grid[0],
                gridDimY: grid[1],
                gridDimZ: grid[2],
                blockDimX: block[0],
                blockDimY: block[1],
                blockDimZ: block[2],
                sharedMemBytes: shape.shared_bytes,
                hStream: self.stream(),
                attrs: &mut attr,
                numAttrs: 1,
            };
            // SAFETY: as below; `config` and `attr` outlive the call.
            return unsafe {
                sys::cuLaunchKernelEx(&config, function as sys::CUfunction, ptrs.as_mut_ptr(), std::ptr::null_mut())
            }
            .result()
            .map_err(failed("cuLaunchKernelEx"));
        }
        // SAFETY: the caller's contract: `function` is live and is the kernel of `launch.spec()`,
        // whose template takes exactly `launch.args()` (arg_slots keeps their order), and every
        // buffer holds what the launch touches. `slots` outlives the call.
        unsafe {
            result::launch_kernel(
                function as sys::CUfunction,
                (grid[0], grid[1], grid[2]),
                (block[0], block[1], block[2]),
                shape.shared_bytes,
                self.stream(),
                &mut ptrs,
            )
        }
        .map_err(failed("cuLaunchKernel"))
    }

    fn synchronize(&self) -> Result<(), DeviceError> {
        self.make_current()?;
        self.sync_stream()
    }

    fn memory_used(&self) -> Result<u64, DeviceError> {
        self.make_current()?;
        let (free, total) = result::mem_get_info().map_err(call("cuMemGetInfo"))?;
        Ok((total - free) as u64)
    }

    unsafe fn fill_i32(&self, dst: u64, value: i32, count: usize) -> Result<(), DeviceError> {
        self.make_current()?;
        // SAFETY: the caller's contract: `count` i32s at `dst` lie in one live allocation.
        unsafe { sys::cuMemsetD32Async(dst, value as u32, count, self.stream()) }
            .result()
            .map_err(call("cuMemsetD32Async"))
    }

    unsafe fn build_graph(&self, nodes: &[RawNode]) -> Result<Option<Box<dyn BackendGraph>>, DeviceError> {
        self.make_current()?;
        // cudarc panics on a missing symbol; a driver older than CUDA 12 lacks the _v2 calls.
        if let Some(missing) = GRAPH_SYMBOLS.iter().find(|name| !driver_has(name)) {
            return Err(DeviceError::Call {
                backend: "cuda",
                call: "cuGraphCreate",
                message: format!("the driver lacks {missing} (a CUDA 12 driver has it)"),
            });
        }
        let programmatic = self.programmatic_launch();
        // Dropping `graph` on an error below destroys what was made so far.
        let mut graph =
            CudaGraph { ctx: self.ctx, stream: self.stream, graph: 0, exec: 0, nodes: Vec::new(), programmatic };
        let mut g = std::ptr::null_mut();
        // SAFETY: an out-pointer to a live local; the flags must be 0.
        unsafe { sys::cuGraphCreate(&mut g, 0) }.result().map_err(call("cuGraphCreate"))?;
        graph.graph = g as usize;
        let mut last_was_launch = false;
        for node in nodes {
            // Each node depends on the one before: the stream's order. Between two kernels the
            // edge is programmatic where the target allows it (added below, after the node).
            let last = graph.nodes.last().map(|&n| n as sys::CUgraphNode);
            let is_launch = matches!(node, RawNode::Launch { .. });
            let chained = programmatic && is_launch && last_was_launch;
            let (deps, n_deps) = match &last {
                Some(n) if !chained => (n as *const sys::CUgraphNode, 1),
                _ => (std::ptr::null(), 0),
            };
            let mut added = std::ptr::null_mut();
            match node {
                RawNode::Launch { function, launch, shape } => {
                    let mut slots = arg_slots(launch);
                    let mut ptrs: Vec<*mut c_void> = slots.iter_mut().map(|v| v as *mut u64 as *mut c_void).collect();
                    let params = kernel_params(*function, launch, *shape, &mut ptrs);
                    // SAFETY: the caller's contract (a launch as `launch` takes it); the driver
                    // copies the argument values before returning, while `slots` lives.
                    unsafe { sys::cuGraphAddKernelNode_v2(&mut added, g, deps, n_deps, &params) }
                        .result()
                        .map_err(|e| graph_call("cuGraphAddKernelNode", launch, e))?;
                }
                RawNode::Fill { dst, value, count } => {
                    let params = memset_params(*dst, *value, *count);
                    let ctx = self.ctx as sys::CUcontext;
                    // SAFETY: the caller's contract: the range lies in a live allocation of this
                    // context.
                    unsafe { sys::cuGraphAddMemsetNode(&mut added, g, deps, n_deps, &params, ctx) }
                        .result()
                        .map_err(call("cuGraphAddMemsetNode"))?;
                }
            }
            if let (true, Some(from)) = (chained, &last) {
                // The next kernel may launch once every block of this one has passed its
                // `rf_grid_wait` (griddepcontrol.launch_dependents) or exited; it waits there in
                // turn for this one's completion and writes.
                let edge = sys::CUgraphEdgeData {
                    from_port: sys::CU_GRAPH_KERNEL_NODE_PORT_PROGRAMMATIC as u8,
                    to_port: 0,
                    type_: sys::CUgraphDependencyType::CU_GRAPH_DEPENDENCY_TYPE_PROGRAMMATIC as u8,
                    reserved: [0; 5],
                };
                // SAFETY: both nodes belong to `g`; the edge data outlives the call.
                unsafe { sys::cuGraphAddDependencies_v2(g, from, &added, &edge, 1) }
                    .result()
                    .map_err(call("cuGraphAddDependencies_v2"))?;
            }
            last_was_launch = is_launch;
            graph.nodes.push(added as usize);
        }
        // SAFETY: `g` is the graph just built.
        let exec = unsafe { result::graph::instantiate(g, sys::CUgraphInstantiate_flags(0)) }
            .map_err(call("cuGraphInstantiateWithFlags"))?;
        graph.exec = exec as usize;
        Ok(Some(Box::new(graph)))
    }
}

impl CudaBackend {
    /// Whether decode graphs and plain launches chain their kernels by programmatic dependent
    /// launch: the target's
    /// kernels are rendered with it (`RF_PDL`, sm_90+: each calls `rf_grid_wait` first), the
    /// driver has programmatic edges (CUDA 12.3+), and `ROCMFORGE_PDL=0` does not turn it off.
    fn programmatic_launch(&self) -> bool {
        let off = std::env::var("ROCMFORGE_PDL").is_ok_and(|v| v.trim() == "0");
        self.target.render_target().pdl && !off && driver_has("cuGraphAddDependencies_v2")
    }
}

/// The graph calls `build_graph` and `CudaGraph` make.
const GRAPH_SYMBOLS: &[&str] = &[
    "cuGraphCreate",
    "cuGraphAddKernelNode_v2",
    "cuGraphAddMemsetNode",
    "cuGraphInstantiateWithFlags",
    "cuGraphExecKernelNodeSetParams_v2",
    "cuGraphExecMemsetNodeSetParams",
    "cuGraphLaunch",
    "cuGraphExecDestroy",
    "cuGraphDestroy",
];

/// Whether the loaded driver exports `name`.
fn driver_has(name: &str) -> bool {
    // SAFETY: the driver library is loaded (`open` checked it is present and initialised it);
    // looking a symbol up calls nothing.
    unsafe { sys::culib().get::<unsafe extern "C" fn()>(name.as_bytes()) }.is_ok()
}

/// A kernel node's parameters; `ptrs` points at the argument values, which the driver reads when
/// the node is added or set.
fn kernel_params(
    function: usize,
    launch: &Launch<RawView>,
    shape: Shape,
    ptrs: &mut [*mut c_void],
) -> sys::CUDA_KERNEL_NODE_PARAMS {
    let (grid, block) = (launch.grid(), shape.block(launch));
    sys::CUDA_KERNEL_NODE_PARAMS {
        func: function as sys::CUfunction,
        gridDimX: grid[0],
        gridDimY: grid[1],
        gridDimZ: grid[2],
        blockDimX: block[0],
        blockDimY: block[1],
        blockDimZ: block[2],
        sharedMemBytes: shape.shared_bytes,
        kernelParams: ptrs.as_mut_ptr(),
        extra: std::ptr::null_mut(),
        // Both ignored when `func` is set.
        kern: std::ptr::null_mut(),
        ctx: std::ptr::null_mut(),
    }
}

/// A memset node writing `value` to `count` consecutive i32s.
fn memset_params(dst: u64, value: i32, count: usize) -> sys::CUDA_MEMSET_NODE_PARAMS {
    sys::CUDA_MEMSET_NODE_PARAMS { dst, pitch: 0, value: value as u32, elementSize: 4, width: count, height: 1 }
}

fn graph_call(call: &'static str, launch: &Launch<RawView>, e: result::DriverError) -> DeviceError {
    DeviceError::Call { backend: "cuda", call, message: format!("{}: {e:?}", launch.spec()) }
}

/// A CUDA graph and its executable instance (handles as addresses: Send + Sync).
struct CudaGraph {
    ctx: usize,
    stream: usize,
    graph: usize,
    exec: usize,
    nodes: Vec<usize>,
    /// Kernels chained by programmatic dependent launch.
    programmatic: bool,
}

impl CudaGraph {
    fn make_current(&self) -> Result<(), DeviceError> {
        // SAFETY: the context is retained by the backend, which outlives its graphs.
        unsafe { result::ctx::set_current(self.ctx as sys::CUcontext) }.map_err(call("cuCtxSetCurrent"))
    }
}

impl BackendGraph for CudaGraph {
    unsafe fn set(&mut self, index: usize, node: &RawNode) -> Result<(), DeviceError> {
        self.make_current()?;
        let (exec, handle) = (self.exec as sys::CUgraphExec, self.nodes[index] as sys::CUgraphNode);
        match node {
            RawNode::Launch { function, launch, shape } => {
                let mut slots = arg_slots(launch);
                let mut ptrs: Vec<*mut c_void> = slots.iter_mut().map(|v| v as *mut u64 as *mut c_void).collect();
                let params = kernel_params(*function, launch, *shape, &mut ptrs);
                // SAFETY: the caller's contract: node `index` is a kernel node of this function;
                // the driver copies the argument values before returning.
                unsafe { sys::cuGraphExecKernelNodeSetParams_v2(exec, handle, &params) }
                    .result()
                    .map_err(|e| graph_call("cuGraphExecKernelNodeSetParams", launch, e))
            }
            RawNode::Fill { dst, value, count } => {
                let params = memset_params(*dst, *value, *count);
                // SAFETY: the caller's contract: node `index` is a memset node.
                unsafe { sys::cuGraphExecMemsetNodeSetParams(exec, handle, &params, self.ctx as sys::CUcontext) }
                    .result()
                    .map_err(call("cuGraphExecMemsetNodeSetParams"))
            }
        }
    }

    fn programmatic(&self) -> bool {
        self.programmatic
    }

    unsafe fn launch(&self) -> Result<(), DeviceError> {
        self.make_current()?;
        // SAFETY: the caller's contract; the stream lives as long as the backend.
        unsafe { result::graph::launch(self.exec as sys::CUgraphExec, self.stream as sys::CUstream) }
            .map_err(call("cuGraphLaunch"))
    }
}

impl Drop for CudaGraph {
    fn drop(&mut self) {
        if self.make_current().is_err() {
            return;
        }
        // SAFETY: made by `build_graph` and destroyed once, here. An instance still running is
        // freed by the driver when it completes.
        unsafe {
            if self.exec != 0 {
                let _ = result::graph::exec_destroy(self.exec as sys::CUgraphExec);
            }
            if self.graph != 0 {
                let _ = result::graph::destroy(self.graph as sys::CUgraph);
            }
        }
    }
}

impl Drop for CudaBackend {
    fn drop(&mut self) {
        if self.stream != 0 && self.make_current().is_ok() {
            // SAFETY: created in `open`; every buffer, kernel and graph holds the device, so nothing
            // uses the stream by now.
            let _ = unsafe { result::stream::destroy(self.stream()) };
        }
        // SAFETY: retained once in `open`; every buffer and kernel holds the device, so none is
        // left by the time it drops.
        let _ = unsafe { result::primary_ctx::release(self.dev) };
    }
}
