//! The `Compiler` trait: a pure function from (source, target, options) to a code object. It knows
//! nothing of caching (cache.rs wraps it) or devices.

use std::fmt;
use std::path::{Path, PathBuf};

use super::target::Target;
use crate::kernels::Dialect;

/// What identifies a compiler build in cache keys: a new compiler version is a new key.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CompilerId {
    /// `hiprtc` or `nvrtc`.
    pub name: &'static str,
    /// Read from the loaded library (`hiprtc 9.0, HIP 5.2.21153, libamdhip64.so.5.2.21153`).
    pub version: String,
}

impl fmt::Display for CompilerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name, self.version)
    }
}

#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum JitError {
    #[error("{what} not found: tried {tried}. {hint}")]
    LibraryNotFound { what: &'static str, tried: String, hint: &'static str },
    #[error("{library}: symbol {symbol} is missing ({detail})")]
    MissingSymbol { library: String, symbol: &'static str, detail: String },
    #[error("{compiler} cannot compile for {target}: {why}")]
    UnsupportedTarget { compiler: String, target: String, why: String },
    #[error("{call} failed: {message} (code {code})")]
    Api { call: &'static str, code: i64, message: String },
    #[error(
        "compiling {entry} for {target} with {compiler} failed:\n{log}\n---- rendered source ----\n{numbered_source}"
    )]
    Compile { entry: String, target: String, compiler: String, log: String, numbered_source: String },
    #[error("{compiler} produced a code object for {entry} on {target} that fails the loader's checks: {why}")]
    BadCodeObject { entry: String, target: String, compiler: String, why: String },
    #[error("{0}")]
    Cache(String),
    #[error("no compiler loaded for target {target}: {why}")]
    NoCompiler { target: String, why: String },
}

/// The rendered source with line numbers, as compile errors show it.
pub fn number_lines(source: &str) -> String {
    source.lines().enumerate().map(|(i, l)| format!("{:4} | {l}\n", i + 1)).collect()
}

pub trait Compiler: Send + Sync {
    fn id(&self) -> &CompilerId;

    /// The dialect of the sources it takes.
    fn dialect(&self) -> Dialect;

    /// Refuses, before any compile, a target this compiler cannot take (some compilers abort the
    /// whole process on an unknown target).
    fn check_target(&self, target: &Target) -> Result<(), JitError>;

    /// The options it compiles `target` with; part of the cache key.
    fn options(&self, target: &Target) -> Vec<String>;

    /// Compiles `source` (with entry point `entry`) to a loadable code object.
    fn compile(&self, source: &str, entry: &str, target: &Target, options: &[String]) -> Result<Vec<u8>, JitError>;
}

/// The real file name (symlinks resolved) of a loaded shared library, for compiler identities:
/// `libamdhip64.so.5` → `libamdhip64.so.5.2.21153`. Falls back to `name`.
pub fn loaded_library_file(name: &str) -> String {
    let path: Option<PathBuf> = if name.contains('/') {
        Some(name.into())
    } else {
        let stem = name.split(".so").next().unwrap_or(name);
        std::fs::read_to_string("/proc/self/maps").ok().and_then(|maps| {
            maps.lines()
                .filter_map(|l| l.split_whitespace().nth(5))
                .find(|p| {
                    Path::new(p).file_name().is_some_and(|f| f.to_string_lossy().starts_with(&format!("{stem}.so")))
                })
                .map(PathBuf::from)
        })
    };
    path.and_then(|p| std::fs::canonicalize(p).ok())
        .and_then(|p| p.file_name().map(|f| f.to_string_lossy().into_owned()))
        .unwrap_or_else(|| name.to_string())
}
