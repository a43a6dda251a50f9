//! Run-time compilation: the `Compiler` trait and its two implementations (hipRTC, NVRTC), the
//! content-addressed cache that wraps them, code-object resource reports, and the `Engine` that
//! compiles (or loads) every kernel a model needs, for any list of targets, in parallel.

mod cache;
mod code_object;
mod compiler;
mod engine;
mod hiprtc;
mod nvrtc;
mod target;

pub use cache::{parse_entry, BadEntry, CacheKey, CacheStats, EntryHeader, EntryInfo, KernelCache, Origin, SCHEMA};
pub use code_object::{amd_kernel_resources, CodeObjectError, KernelResources};
pub use compiler::{number_lines, Compiler, CompilerId, JitError};
pub use engine::{CompiledKernel, Engine, EngineBuilder, Progress, WarmReport};
pub use hiprtc::HipRtc;
pub use nvrtc::Nvrtc;
pub use target::{Target, TargetError};
