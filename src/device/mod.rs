//! Devices: memory, kernels and launches, safe to use. A [`Device`] hands out [`DeviceBuffer`]s
//! (typed, length known, freed once when dropped) and [`Kernel`]s (tied to the module that holds
//! their code and to the device that loaded it); a kernel runs a launch description
//! ([`crate::kernels::Launch`]) over views of buffers, after checking that every buffer belongs to
//! its device and holds what the launch touches. A [`LaunchGraph`] is a fixed sequence of such
//! launches (and i32 fills) built once and run with one call — a CUDA or HIP graph — whose nodes
//! can be updated, each update checked the same way; it shares ownership of every allocation it
//! names, so none is freed under it. No device address leaves this module. Each GPU backend queues
//! all its work on one non-blocking stream of its own.
//!
//! Below that sits one small unsafe trait per backend: `cuda.rs` (the driver API through cudarc)
//! and `hip.rs` (our dlopen FFI) are thin and symmetric; `cpu.rs` keeps buffers in host memory
//! and runs each launch with the CPU reference ops, so the GPU executor runs (and is tested) on
//! any machine.

mod cpu;
mod cuda;
mod hip;

use std::ffi::CString;
use std::marker::PhantomData;
use std::sync::Arc;

use crate::jit::{CompiledKernel, Target};
use crate::kernels::{Arg, BufferRef, Elem, KernelSpec, Launch, LaunchError};

#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum DeviceError {
    #[error("{backend}: {what} not found: tried {tried}")]
    LibraryNotFound { backend: &'static str, what: &'static str, tried: String },
    #[error("{backend}: no usable GPU: {why}")]
    NoDevice { backend: &'static str, why: String },
    #[error("{backend}: {call} failed: {message}")]
    Call { backend: &'static str, call: &'static str, message: String },
    #[error(transparent)]
    Launch(#[from] LaunchError),
    #[error("{0}")]
    Misuse(String),
    #[error("cpu device: {0}")]
    Host(String),
}

/// An element type device buffers hold: plain old data of a fixed size, every bit pattern valid.
pub trait DeviceElem: Copy + Default + Send + Sync + 'static + sealed::Sealed {
    const ELEM: Elem;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for i32 {}
    impl Sealed for u8 {}
    impl Sealed for half::f16 {}
}

impl DeviceElem for f32 {
    const ELEM: Elem = Elem::F32;
}
impl DeviceElem for i32 {
    const ELEM: Elem = Elem::I32;
}
impl DeviceElem for u8 {
    const ELEM: Elem = Elem::U8;
}
impl DeviceElem for half::f16 {
    const ELEM: Elem = Elem::F16;
}

fn as_bytes<T: DeviceElem>(v: &[T]) -> &[u8] {
    // SAFETY: T is f32, i32, u8 or f16 (sealed): no padding, so every byte is initialised.
    unsafe { std::slice::from_raw_parts(v.as_ptr().cast::<u8>(), std::mem::size_of_val(v)) }
}

fn as_bytes_mut<T: DeviceElem>(v: &mut [T]) -> &mut [u8] {
    // SAFETY: T is f32, i32, u8 or f16 (sealed): every bit pattern is a valid value.
    unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr().cast::<u8>(), std::mem::size_of_val(v)) }
}

/// The raw operations of one backend. Every method that takes a device address is unsafe: the
/// safe types above it (`Allocation`, `DeviceBuffer`, `Kernel`) are what keep addresses valid.
trait Backend: Send + Sync {
    /// `cuda`, `hip` or `cpu`.
    fn kind(&self) -> &'static str;
    fn name(&self) -> &str;
    fn target(&self) -> Option<&Target>;
    /// The GPU's multiprocessors (streaming multiprocessors, compute units), where known.
    fn multiprocessors(&self) -> Option<u32> {
        None
    }
    /// Allocates `bytes` (at least 1) of device memory; its contents are unspecified.
    fn alloc(&self, bytes: usize) -> Result<u64, DeviceError>;
    /// # Safety
    /// `addr` came from this backend's `alloc`, is freed once, and nothing uses it afterwards.
    unsafe fn free(&self, addr: u64);
    /// # Safety
    /// `[dst, dst + src.len())` lies inside one live allocation of this backend.
    unsafe fn write(&self, dst: u64, src: &[u8]) -> Result<(), DeviceError>;
    /// # Safety
    /// `[src, src + dst.len())` lies inside one live allocation of this backend.
    unsafe fn read(&self, src: u64, dst: &mut [u8]) -> Result<(), DeviceError>;
    /// # Safety
    /// Both `[dst, dst + bytes)` and `[src, src + bytes)` lie inside live allocations of this
    /// backend.
    unsafe fn copy(&self, dst: u64, src: u64, bytes: usize) -> Result<(), DeviceError>;
    /// Loads a code object and finds `entry` in it: (module, function), allowed to take
    /// `shared_bytes` of dynamic shared memory a block.
    ///
    /// # Safety
    /// `code` is a code object the JIT compiled for this device's target.
    unsafe fn load(&self, code: &[u8], entry: &CString, shared_bytes: u32) -> Result<(usize, usize), DeviceError>;
    /// # Safety
    /// `module` came from `load`, is unloaded once, and its function is not launched afterwards.
    unsafe fn unload(&self, module: usize);
    /// Queues `launch` (asynchronous).
    ///
    /// # Safety
    /// `function` is live and is the kernel `launch.spec()` renders, compiled for `shape`;
    /// `launch` passed [`Launch::check`] against these views, and every view lies inside a live
    /// allocation of this backend.
    unsafe fn launch(&self, function: usize, launch: &Launch<RawView>, shape: Shape) -> Result<(), DeviceError>;
    /// Waits for every queued launch and copy.
    fn synchronize(&self) -> Result<(), DeviceError>;
    /// Bytes of device memory in use (by everything on the device).
    fn memory_used(&self) -> Result<u64, DeviceError>;
    /// Queues writing `value` to the `count` i32s at `dst` (no host copy on a GPU).
    ///
    /// # Safety
    /// `[dst, dst + 4 * count)` lies inside one live allocation of this backend.
    unsafe fn fill_i32(&self, dst: u64, value: i32, count: usize) -> Result<(), DeviceError> {
        let bytes: Vec<u8> = std::iter::repeat_n(value.to_le_bytes(), count).flatten().collect();
        // SAFETY: the caller's contract.
        unsafe { self.write(dst, &bytes) }
    }
    /// Builds an executable graph that runs `nodes` one after another on the device's stream.
    /// `None`: the backend has no graphs (the CPU device), and the caller runs the nodes itself.
    ///
    /// # Safety
    /// Each launch node is as `launch` requires; each fill node's range lies inside a live
    /// allocation.
    unsafe fn build_graph(&self, nodes: &[RawNode]) -> Result<Option<Box<dyn BackendGraph>>, DeviceError> {
        let _ = nodes;
        Ok(None)
    }
}

/// One node of a launch graph as a backend sees it.
#[derive(Clone, Debug, PartialEq)]
// Nodes are built once per graph and a handful updated per token: their size does not matter.
#[allow(clippy::large_enum_variant)]
enum RawNode {
    Launch {
        function: usize,
        launch: Launch<RawView>,
        shape: Shape,
    },
    /// `value` written to the `count` i32s at `dst`.
    Fill {
        dst: u64,
        value: i32,
        count: usize,
    },
}

/// An instantiated graph of a backend: its nodes run in order on the device's stream; a node's
/// parameters can be replaced between launches. Dropping it frees the backend's graph.
trait BackendGraph: Send + Sync {
    /// Replaces the parameters of node `index`.
    ///
    /// # Safety
    /// `node` is of the kind node `index` was built as (a launch of the same function, or a fill),
    /// and meets `build_graph`'s contract.
    unsafe fn set(&mut self, index: usize, node: &RawNode) -> Result<(), DeviceError>;
    /// Whether consecutive kernels are chained by programmatic dependent launch (a kernel's
    /// launch overlaps the end of the one before it).
    fn programmatic(&self) -> bool {
        false
    }
    /// Queues one run of the graph.
    ///
    /// # Safety
    /// Every node still meets `build_graph`'s contract: its function is loaded and its addresses
    /// lie inside live allocations.
    unsafe fn launch(&self) -> Result<(), DeviceError>;
}

/// How a loaded kernel runs beyond its launch description: the warp its code was compiled for and
/// the dynamic shared memory each block takes (the target's layout of the kernel, `mmq`'s tiles).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Shape {
    warp_size: u32,
    shared_bytes: u32,
}

impl Shape {
    /// Threads per block in x, y, z.
    fn block(&self, launch: &Launch<RawView>) -> [u32; 3] {
        launch.block(self.warp_size)
    }
}

/// A buffer's place as a backend sees it: the allocation's address, a byte offset into it, and
/// the elements from there that the view covers.
#[derive(Clone, Copy, Debug, PartialEq)]
struct RawView {
    base: u64,
    offset: usize,
    len: usize,
    elem: Elem,
}

impl RawView {
    /// The device address the kernel gets.
    fn addr(&self) -> u64 {
        self.base + self.offset as u64
    }
}

impl BufferRef for RawView {
    fn elem(&self) -> Elem {
        self.elem
    }
    fn len(&self) -> usize {
        self.len
    }
}

/// Kernel arguments as the launch APIs take them: one 8-byte slot per argument, in the template's
/// order (a 4-byte argument reads the low half of its slot: little-endian).
fn arg_slots(launch: &Launch<RawView>) -> Vec<u64> {
    launch
        .args()
        .iter()
        .map(|a| match *a {
            Arg::Buffer { buf, .. } => buf.addr(),
            // Launch::check held every int below 2³¹.
            Arg::Int { value, .. } => value as u32 as u64,
            Arg::Float { value, .. } => value.to_bits() as u64,
        })
        .collect()
}

/// A GPU, or the host CPU running the reference ops. Cheap to clone: clones share the device, and
/// every buffer and kernel keeps it alive.
#[derive(Clone)]
pub struct Device {
    backend: Arc<dyn Backend>,
}

impl std::fmt::Debug for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Device({} {})", self.backend.kind(), self.backend.name())
    }
}

/// Opens the device `--device` names: `cuda`, `hip`, or `auto` (hip, then cuda). `None` for `cpu`
/// and for `auto` with no GPU; an error when a named GPU backend cannot be opened.
pub fn open(choice: &str) -> Result<Option<Device>, DeviceError> {
    let gpu = |b: Result<Arc<dyn Backend>, DeviceError>| b.map(|backend| Some(Device { backend }));
    match choice {
        "cpu" => Ok(None),
        "cuda" => gpu(cuda::CudaBackend::open(0).map(|b| Arc::new(b) as Arc<dyn Backend>)),
        "hip" => gpu(hip::HipBackend::open(0).map(|b| Arc::new(b) as Arc<dyn Backend>)),
        "auto" => {
            if let Ok(d) = hip::HipBackend::open(0) {
                return Ok(Some(Device { backend: Arc::new(d) }));
            }
            Ok(cuda::CudaBackend::open(0).ok().map(|d| Device { backend: Arc::new(d) }))
        }
        other => Err(DeviceError::NoDevice {
            backend: "rocmforge",
            why: format!("unknown device {other:?}: expected cpu, cuda, hip or auto"),
        }),
    }
}

impl Device {
    /// The host CPU as a device: buffers in host memory, every launch run by the CPU reference.
    pub fn cpu() -> Device {
        Device { backend: Arc::new(cpu::CpuBackend::default()) }
    }

    /// `cuda`, `hip` or `cpu`.
    pub fn backend(&self) -> &'static str {
        self.backend.kind()
    }

    /// The GPU's name (`NVIDIA H100 80GB HBM3`).
    pub fn name(&self) -> &str {
        self.backend.name()
    }

    /// The compile target read from the device (`sm_90`, `gfx90a:sramecc+:xnack-`): kernels
    /// compiled for any other target are never loaded. `None`: the device runs no compiled code.
    pub fn target(&self) -> Option<&Target> {
        self.backend.target()
    }

    /// The GPU's multiprocessors (NVIDIA's SMs), for work split evenly over them; `None` where
    /// the backend does not say (HIP, the CPU).
    pub fn multiprocessors(&self) -> Option<u32> {
        self.backend.multiprocessors()
    }

    /// Lanes per warp of the device's kernels (32 where there is no target).
    pub fn warp_size(&self) -> u32 {
        self.target().map_or(32, |t| t.warp_size())
    }

    /// Whether `other` is this device (or a clone of it).
    pub fn same_as(&self, other: &Device) -> bool {
        Arc::ptr_eq(&self.backend, &other.backend)
    }

    /// A buffer of `len` elements (at least one byte is allocated); contents unspecified until
    /// written.
    pub fn alloc<T: DeviceElem>(&self, len: usize) -> Result<DeviceBuffer<T>, DeviceError> {
        let bytes = len
            .checked_mul(std::mem::size_of::<T>())
            .ok_or_else(|| DeviceError::Misuse(format!("{len} elements of {} overflow the address space", T::ELEM)))?;
        let base = self.backend.alloc(bytes.max(1))?;
        let alloc = Arc::new(Allocation { device: self.clone(), base, bytes });
        Ok(DeviceBuffer { alloc, len, _elem: PhantomData })
    }

    /// A buffer holding a copy of `src`.
    pub fn upload<T: DeviceElem>(&self, src: &[T]) -> Result<DeviceBuffer<T>, DeviceError> {
        let mut buf = self.alloc(src.len())?;
        buf.write(0, src)?;
        Ok(buf)
    }

    /// Loads a kernel the JIT compiled for this device's target.
    pub fn load_kernel(&self, compiled: &CompiledKernel) -> Result<Kernel, DeviceError> {
        let Some(target) = self.target() else {
            return Err(DeviceError::Misuse(format!(
                "{}: the {} device runs the reference ops, not compiled code (use reference_kernel)",
                compiled.entry,
                self.backend()
            )));
        };
        if &compiled.target != target {
            return Err(DeviceError::Misuse(format!(
                "{} was compiled for {}, this device is {target}",
                compiled.entry, compiled.target
            )));
        }
        let entry = CString::new(compiled.entry.as_str())
            .map_err(|_| DeviceError::Misuse(format!("entry name {:?} holds a NUL", compiled.entry)))?;
        let shape = Shape {
            warp_size: target.warp_size(),
            shared_bytes: target.render_target().dynamic_shared_bytes(&compiled.spec),
        };
        // SAFETY: a CompiledKernel's code is what the JIT compiled (or loaded, hash-checked, from
        // its cache) for its target, which is this device's.
        let (module, function) = unsafe { self.backend.load(&compiled.code, &entry, shape.shared_bytes)? };
        Ok(Kernel {
            module: Some(Module { device: self.clone(), handle: module }),
            function,
            device: self.clone(),
            spec: compiled.spec,
            entry: compiled.entry.clone(),
            shape,
        })
    }

    /// `spec`'s kernel on a device that runs no compiled code (the CPU device runs the reference
    /// op for it).
    pub fn reference_kernel(&self, spec: &KernelSpec) -> Result<Kernel, DeviceError> {
        if let Some(target) = self.target() {
            return Err(DeviceError::Misuse(format!(
                "{spec}: the {} device ({target}) needs the kernel compiled (use load_kernel)",
                self.backend()
            )));
        }
        Ok(Kernel {
            module: None,
            function: 0,
            device: self.clone(),
            spec: *spec,
            entry: spec.entry_name(),
            shape: Shape { warp_size: self.warp_size(), shared_bytes: 0 },
        })
    }

    /// Waits for every queued launch and copy.
    pub fn synchronize(&self) -> Result<(), DeviceError> {
        self.backend.synchronize()
    }

    /// Bytes of device memory in use (by everything on the device).
    pub fn memory_used(&self) -> Result<u64, DeviceError> {
        self.backend.memory_used()
    }
}

/// One device allocation; freed when dropped: by its buffer, or by the last [`LaunchGraph`] that
/// names it, whichever goes last.
struct Allocation {
    device: Device,
    base: u64,
    bytes: usize,
}

impl Drop for Allocation {
    fn drop(&mut self) {
        // Launches are asynchronous: one queued before the drop may still use the memory.
        let _ = self.device.backend.synchronize();
        // SAFETY: `base` came from this device's alloc; an Allocation is neither cloned nor
        // freed elsewhere (buffers and graphs share it through an Arc, and this is the last one),
        // every view of it borrows a holder, and no queued launch is left: nothing uses it after
        // this.
        unsafe { self.device.backend.free(self.base) };
    }
}

/// `len` elements of `T` in device memory, owned: freed once when dropped. Host copies in and out
/// are checked against the length; kernels see it through [`BufView`]s.
pub struct DeviceBuffer<T: DeviceElem> {
    alloc: Arc<Allocation>,
    len: usize,
    _elem: PhantomData<T>,
}

impl<T: DeviceElem> std::fmt::Debug for DeviceBuffer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DeviceBuffer<{}>[{}] on {:?}", T::ELEM, self.len, self.alloc.device)
    }
}

impl<T: DeviceElem> DeviceBuffer<T> {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes of device memory the buffer holds.
    pub fn bytes(&self) -> usize {
        self.alloc.bytes
    }

    pub fn device(&self) -> &Device {
        &self.alloc.device
    }

    /// The byte offset of elements `[offset, offset + n)`, if they lie inside the buffer.
    fn range(&self, offset: usize, n: usize, what: &str) -> Result<usize, DeviceError> {
        match offset.checked_add(n) {
            Some(end) if end <= self.len => Ok(offset * std::mem::size_of::<T>()),
            _ => Err(DeviceError::Misuse(format!(
                "{what} of {n} elements at {offset} runs past a buffer of {} {}",
                self.len,
                T::ELEM
            ))),
        }
    }

    /// Copies `src` into elements `[offset, offset + src.len())`.
    pub fn write(&mut self, offset: usize, src: &[T]) -> Result<(), DeviceError> {
        let at = self.range(offset, src.len(), "a write")?;
        if src.is_empty() {
            return Ok(());
        }
        // SAFETY: `range` checked that the bytes lie inside this live allocation.
        unsafe { self.alloc.device.backend.write(self.alloc.base + at as u64, as_bytes(src)) }
    }

    /// Copies elements `[offset, offset + dst.len())` into `dst`, after the launches queued before.
    pub fn read(&self, offset: usize, dst: &mut [T]) -> Result<(), DeviceError> {
        let at = self.range(offset, dst.len(), "a read")?;
        if dst.is_empty() {
            return Ok(());
        }
        // SAFETY: `range` checked that the bytes lie inside this live allocation.
        unsafe { self.alloc.device.backend.read(self.alloc.base + at as u64, as_bytes_mut(dst)) }
    }

    /// The whole buffer, copied to the host.
    pub fn to_vec(&self) -> Result<Vec<T>, DeviceError> {
        let mut v = vec![T::default(); self.len];
        self.read(0, &mut v)?;
        Ok(v)
    }

    /// Copies all of `src` (same device, same length) into this buffer, device to device.
    pub fn copy_from(&mut self, src: &DeviceBuffer<T>) -> Result<(), DeviceError> {
        if !self.device().same_as(src.device()) || src.len != self.len {
            return Err(DeviceError::Misuse(format!(
                "a copy needs two buffers of one device and one length ({} and {} elements)",
                src.len, self.len
            )));
        }
        if self.len == 0 {
            return Ok(());
        }
        let bytes = self.len * std::mem::size_of::<T>();
        // SAFETY: both are live allocations of this device holding `bytes` (same length and type).
        unsafe { self.alloc.device.backend.copy(self.alloc.base, src.alloc.base, bytes) }
    }

    /// The whole buffer, as a kernel argument.
    pub fn view(&self) -> BufView<'_> {
        BufView { alloc: &self.alloc, offset: 0, len: self.len, elem: T::ELEM }
    }

    /// Elements `[offset, offset + len)`, as a kernel argument.
    pub fn slice(&self, offset: usize, len: usize) -> Result<BufView<'_>, DeviceError> {
        let at = self.range(offset, len, "a view")?;
        Ok(BufView { alloc: &self.alloc, offset: at, len, elem: T::ELEM })
    }
}

impl DeviceBuffer<i32> {
    /// Queues writing `value` to elements `[offset, offset + n)`: on a GPU a memset on the
    /// device's stream, with no host copy.
    pub fn fill(&mut self, offset: usize, n: usize, value: i32) -> Result<(), DeviceError> {
        let at = self.range(offset, n, "a fill")?;
        if n == 0 {
            return Ok(());
        }
        // SAFETY: `range` checked that the elements lie inside this live allocation.
        unsafe { self.alloc.device.backend.fill_i32(self.alloc.base + at as u64, value, n) }
    }
}

/// A borrowed view of (part of) a device buffer: what a [`Launch`] takes as a buffer argument.
#[derive(Clone, Copy)]
pub struct BufView<'a> {
    alloc: &'a Arc<Allocation>,
    /// Bytes from the allocation's start.
    offset: usize,
    /// Elements from `offset`.
    len: usize,
    elem: Elem,
}

impl std::fmt::Debug for BufView<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BufView<{}>[{}] at byte {}", self.elem, self.len, self.offset)
    }
}

impl BufferRef for BufView<'_> {
    fn elem(&self) -> Elem {
        self.elem
    }
    fn len(&self) -> usize {
        self.len
    }
}

/// A loaded code object; unloaded when its kernel is dropped.
struct Module {
    device: Device,
    handle: usize,
}

impl Drop for Module {
    fn drop(&mut self) {
        // A launch queued before the drop may still be running the code.
        let _ = self.device.backend.synchronize();
        // SAFETY: the handle came from this device's load; the Module is owned by one Kernel, which
        // is being dropped, so its function is never launched again, and no launch is queued.
        unsafe { self.device.backend.unload(self.handle) };
    }
}

/// A kernel loaded on a device: it holds its module (so its code stays loaded) and its device, and
/// runs launches of its own op only.
pub struct Kernel {
    // Dropped first: the module unloads while the device is still held.
    module: Option<Module>,
    function: usize,
    device: Device,
    spec: KernelSpec,
    entry: String,
    shape: Shape,
}

impl std::fmt::Debug for Kernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Kernel({} on {:?})", self.entry, self.device)
    }
}

impl Kernel {
    pub fn spec(&self) -> &KernelSpec {
        &self.spec
    }

    /// The `extern "C"` entry point.
    pub fn entry(&self) -> &str {
        &self.entry
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Queues `launch` (asynchronous), after checking that it is this kernel's op, that every
    /// buffer lives on this kernel's device, and that each holds what the launch touches.
    pub fn launch(&self, launch: &Launch<BufView<'_>>) -> Result<(), DeviceError> {
        let raw = self.raw(launch)?;
        debug_assert!(self.module.is_some() || self.device.target().is_none());
        // SAFETY: `function` stays loaded while `self.module` lives; it is the kernel of
        // `self.spec`, which is the launch's; the launch passed its check against these views,
        // which borrow live allocations of this device (all checked by `raw`).
        unsafe { self.device.backend.launch(self.function, &raw, self.shape) }
    }

    /// `launch` over raw views, after the checks `launch` describes.
    fn raw(&self, launch: &Launch<BufView<'_>>) -> Result<Launch<RawView>, DeviceError> {
        if launch.spec() != self.spec {
            return Err(DeviceError::Misuse(format!(
                "a launch of {} given to kernel {}",
                launch.spec().entry_name(),
                self.entry
            )));
        }
        launch.check(self.shape.warp_size)?;
        let raw = launch.try_map(|v| {
            if !v.alloc.device.same_as(&self.device) {
                return Err(DeviceError::Misuse(format!(
                    "{}: a buffer of {:?} given to a kernel on {:?}",
                    self.entry, v.alloc.device, self.device
                )));
            }
            Ok(RawView { base: v.alloc.base, offset: v.offset, len: v.len, elem: v.elem })
        })?;
        Ok(raw)
    }
}

/// One node of a [`LaunchGraph`]: a kernel launch, or `value` written to every element of an i32
/// view (a per-step scalar such as the decode position, set with no host copy).
#[allow(clippy::large_enum_variant)]
pub enum GraphNode<'a, 'k> {
    Launch(&'k Kernel, Launch<BufView<'a>>),
    Fill(BufView<'a>, i32),
}

/// A fixed sequence of launches and fills, built once and run many times: on a GPU one executable
/// graph (a CUDA graph, a HIP graph), queued with one call; on a device without graphs (the CPU
/// device) the same nodes, run one by one. A node's parameters (its scalars, views and grid) can be
/// replaced between runs, each replacement checked as a launch is.
///
/// It holds what its nodes use: the kernels (borrowed, so their code stays loaded) and every
/// allocation a node names (shared, so no buffer is freed under it).
pub struct LaunchGraph<'k> {
    // Dropped first: the backend's graph goes while the device is still held.
    native: Option<Box<dyn BackendGraph>>,
    nodes: Vec<RawNode>,
    kernels: Vec<Option<&'k Kernel>>,
    /// Per node, the allocations it names.
    keep: Vec<Vec<Arc<Allocation>>>,
    device: Device,
}

impl std::fmt::Debug for LaunchGraph<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = if self.native.is_some() { "native" } else { "node by node" };
        write!(f, "LaunchGraph({} nodes, {kind}, on {:?})", self.nodes.len(), self.device)
    }
}

/// A node checked and resolved: its raw form, its kernel, the allocations it names.
type Resolved<'k> = (RawNode, Option<&'k Kernel>, Vec<Arc<Allocation>>);

impl Device {
    /// Builds a graph of `nodes`, run in order. Every launch is checked as [`Kernel::launch`]
    /// checks it. On a GPU an error here (the driver refused the graph) leaves the caller free to
    /// launch the same nodes one by one instead.
    pub fn graph<'k>(&self, nodes: Vec<GraphNode<'_, 'k>>) -> Result<LaunchGraph<'k>, DeviceError> {
        let (mut raw, mut kernels, mut keep) = (Vec::new(), Vec::new(), Vec::new());
        for node in &nodes {
            let (r, k, a) = self.resolve(node)?;
            raw.push(r);
            kernels.push(k);
            keep.push(a);
        }
        // SAFETY: every launch passed its kernel's checks against views of live allocations of
        // this device, each fill's view lies inside one (`resolve`); `keep` holds those
        // allocations and `kernels` the functions' modules for as long as the graph lives.
        let native = unsafe { self.backend.build_graph(&raw)? };
        Ok(LaunchGraph { native, nodes: raw, kernels, keep, device: self.clone() })
    }

    fn resolve<'k>(&self, node: &GraphNode<'_, 'k>) -> Result<Resolved<'k>, DeviceError> {
        match node {
            GraphNode::Launch(kernel, launch) => {
                if !kernel.device.same_as(self) {
                    return Err(DeviceError::Misuse(format!(
                        "a graph on {self:?} given kernel {} of {:?}",
                        kernel.entry, kernel.device
                    )));
                }
                let raw = kernel.raw(launch)?;
                let keep = launch
                    .args()
                    .iter()
                    .filter_map(|a| match a {
                        Arg::Buffer { buf, .. } => Some(Arc::clone(buf.alloc)),
                        _ => None,
                    })
                    .collect();
                let node = RawNode::Launch { function: kernel.function, launch: raw, shape: kernel.shape };
                Ok((node, Some(*kernel), keep))
            }
            GraphNode::Fill(view, value) => {
                if !view.alloc.device.same_as(self) || view.elem != Elem::I32 {
                    return Err(DeviceError::Misuse(format!(
                        "a graph on {self:?} given a fill of {view:?} on {:?}",
                        view.alloc.device
                    )));
                }
                let node = RawNode::Fill { dst: view.alloc.base + view.offset as u64, value: *value, count: view.len };
                Ok((node, None, vec![Arc::clone(view.alloc)]))
            }
        }
    }
}

impl<'k> LaunchGraph<'k> {
    /// Nodes in the graph.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Whether the device runs it as one graph (false: node by node, on a device without graphs).
    pub fn is_native(&self) -> bool {
        self.native.is_some()
    }

    /// Whether its kernels are chained by programmatic dependent launch (sm_90+).
    pub fn is_programmatic(&self) -> bool {
        self.native.as_ref().is_some_and(|n| n.programmatic())
    }

    /// Replaces node `index` by `node`, which must be the same kind of node (a launch of the same
    /// kernel, or a fill); it is checked as a launch is. Returns whether anything changed (an
    /// identical node costs the device nothing).
    pub fn set(&mut self, index: usize, node: GraphNode<'_, 'k>) -> Result<bool, DeviceError> {
        let Some(old) = self.nodes.get(index) else {
            return Err(DeviceError::Misuse(format!("node {index} of a graph of {}", self.nodes.len())));
        };
        let (raw, kernel, keep) = self.device.resolve(&node)?;
        let same_kind = match (kernel, self.kernels[index]) {
            (Some(new), Some(was)) => std::ptr::eq(new, was),
            (None, None) => true,
            _ => false,
        };
        if !same_kind {
            return Err(DeviceError::Misuse(format!("node {index} of a graph replaced by another kind of node")));
        }
        if *old == raw {
            return Ok(false);
        }
        if let Some(native) = &mut self.native {
            // SAFETY: the same kind of node (checked above); `resolve` checked it against live
            // allocations of this device, which `keep` holds from here on.
            unsafe { native.set(index, &raw)? };
        }
        self.nodes[index] = raw;
        self.keep[index] = keep;
        Ok(true)
    }

    /// Queues one run of every node, in order.
    pub fn launch(&self) -> Result<(), DeviceError> {
        match &self.native {
            // SAFETY: every node was checked when set; `keep` holds the allocations it names and
            // `kernels` the modules of its functions.
            Some(native) => unsafe { native.launch() },
            None => {
                for node in &self.nodes {
                    // SAFETY: as above, node by node.
                    unsafe {
                        match node {
                            RawNode::Launch { function, launch, shape } => {
                                self.device.backend.launch(*function, launch, *shape)?
                            }
                            RawNode::Fill { dst, value, count } => {
                                self.device.backend.fill_i32(*dst, *value, *count)?
                            }
                        }
                    }
                }
                Ok(())
            }
        }
    }
}
