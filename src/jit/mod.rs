//! Run-time compilation: the `Compiler` trait and its two implementations (hipRTC, NVRTC), the
//! content-addressed cache that wraps them, code-object resource reports, and the `Engine` that
//! compiles (or loads) every kernel a model needs, for any list of targets, in parallel.

mod bundle;
mod cache;
mod capability;
mod code_object;
mod compiler;
mod engine;
mod hiprtc;
mod nvrtc;
mod target;

pub use bundle::{import_bundle, read_bundle, write_bundle, BundleError, Manifest, ManifestEntry, MANIFEST};
pub use cache::{
    check_self_consistent, encode_entry, header_for, parse_entry, BadEntry, CacheError, CacheKey, CacheStats,
    EntryHeader, EntryInfo, KernelCache, Origin, MAX_ENTRY_BYTES, SCHEMA,
};
pub use capability::{amd_processor, nvidia_caps, AmdProcessor, AMD_PROCESSORS};
pub use code_object::{
    amd_f16_matrix_instructions, amd_int8_matrix_instructions, amd_kernel_resources, minimal_code_object,
    validate_code_object, CodeObjectError, KernelResources, MAX_CODE_OBJECT_BYTES,
};
pub use compiler::{elf_build_id, mapped_libraries, number_lines, Compiler, CompilerId, JitError, MappedLibrary};
pub use engine::{CompiledKernel, Engine, EngineBuilder, Progress, WarmReport};
pub use hiprtc::{HipRtc, HipVersion};
pub use nvrtc::Nvrtc;
pub use target::{Target, TargetError};
