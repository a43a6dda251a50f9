//! hipRTC, loaded at run time (dlopen), so one binary runs with or without ROCm; no GPU is
//! needed to compile.
//!
//! Where it is found: `ROCMFORGE_HIPRTC` (a path or a library name) when set, and nothing else;
//! otherwise `$ROCM_PATH/lib` and `/opt/rocm/lib` (`libhiprtc.so.N`, newest N first, then
//! `libamdhip64.so.N`, which holds hipRTC in ROCm 5.x), then the loader's path (Debian and Ubuntu
//! install `libhiprtc.so.6` / `libamdhip64.so.5` there).
//!
//! Which HIP release it belongs to (the capability table's `hip_since` / `hip_until` are per HIP
//! release): `hipRuntimeGetVersion` from the library itself (ROCm 5.x) or from the
//! `libamdhip64.so.N` beside it (ROCm 6+, whose `libhiprtc.so.N` has no such function), else the
//! version in the library's file name (`libhiprtc.so.6.4.43484`). When none says, every target is
//! refused: a hipRTC of unknown age may abort the process on a processor it does not know.
//!
//! The compiler identity (part of every cache key) names what generates the code: hipRTC's
//! version, the HIP release, and each library that compiles (hipRTC itself, comgr, LLVM), by real
//! file name and ELF build id. comgr and LLVM are loaded by hipRTC on its first program, so loading
//! creates and destroys one empty program and then reads them from `/proc/self/maps`.

use libloading::Library;
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::capability::amd_processor;
use super::compiler::{file_fingerprint, mapped_libraries, number_lines, Compiler, CompilerId, JitError};
use super::target::Target;
use crate::kernels::Dialect;

type Program = *mut c_void;
type HiprtcResult = c_int;

/// The hipRTC entry points we use, resolved once.
struct Api {
    create: unsafe extern "C" fn(
        *mut Program,
        *const c_char,
        *const c_char,
        c_int,
        *const *const c_char,
        *const *const c_char,
    ) -> HiprtcResult,
    compile: unsafe extern "C" fn(Program, c_int, *const *const c_char) -> HiprtcResult,
    log_size: unsafe extern "C" fn(Program, *mut usize) -> HiprtcResult,
    log: unsafe extern "C" fn(Program, *mut c_char) -> HiprtcResult,
    code_size: unsafe extern "C" fn(Program, *mut usize) -> HiprtcResult,
    code: unsafe extern "C" fn(Program, *mut c_char) -> HiprtcResult,
    destroy: unsafe extern "C" fn(*mut Program) -> HiprtcResult,
    error_string: unsafe extern "C" fn(HiprtcResult) -> *const c_char,
    version: unsafe extern "C" fn(*mut c_int, *mut c_int) -> HiprtcResult,
}

/// A HIP release, as `hipRuntimeGetVersion` encodes it (major·10⁷ + minor·10⁵ + patch).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct HipVersion {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl HipVersion {
    fn from_runtime(v: c_int) -> Option<HipVersion> {
        let v = u32::try_from(v).ok().filter(|&v| v >= 10_000_000)?;
        Some(HipVersion { major: v / 10_000_000, minor: (v / 100_000) % 100, patch: v % 100_000 })
    }

    /// From a file name such as `libhiprtc.so.6.4.43484` (three numbers after `.so.`).
    fn from_file_name(name: &str) -> Option<HipVersion> {
        let (_, tail) = name.split_once(".so.")?;
        let mut n = tail.split('.').map(|p| p.parse::<u32>().ok());
        let v = HipVersion { major: n.next()??, minor: n.next()??, patch: n.next()?? };
        (n.next().is_none() && v.major > 0).then_some(v)
    }

    fn at_least(&self, (major, minor): (u32, u32)) -> bool {
        (self.major, self.minor) >= (major, minor)
    }
}

impl std::fmt::Display for HipVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

pub struct HipRtc {
    api: Api,
    id: CompilerId,
    /// The HIP release this hipRTC belongs to; `None` when nothing says (every target refused).
    hip_version: Option<HipVersion>,
    /// Where the library was loaded from, as its real path.
    path: PathBuf,
    /// The `libamdhip64.so.N` beside a ROCm 6+ hipRTC, kept loaded once asked for its version.
    _runtime: Option<Library>,
    _lib: Library,
}

/// ROCm 5.2's hipRTC livelocks when two threads of one process compile at once (seen here: both
/// cores spinning for half an hour). Every call into a program is serialised within a process;
/// the CLI gets its parallelism from worker processes instead.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Library names tried through the loader's path, after the ROCm folders.
const LOADER_NAMES: &[&str] =
    &["libhiprtc.so.7", "libhiprtc.so.6", "libhiprtc.so.5", "libhiprtc.so", "libamdhip64.so.5", "libamdhip64.so"];

/// The ROCm folders to look in, in order: `$ROCM_PATH/lib`, `/opt/rocm/lib`.
fn rocm_lib_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(root) = std::env::var_os("ROCM_PATH").filter(|r| !r.is_empty()) {
        dirs.push(PathBuf::from(root).join("lib"));
    }
    dirs.push(PathBuf::from("/opt/rocm/lib"));
    dirs
}

/// hipRTC candidates in `dir`: `libhiprtc.so.N` (newest N first), `libhiprtc.so`, then
/// `libamdhip64.so.N` for N ≤ 5 (ROCm 6+'s libamdhip64 only forwards to libhiprtc).
fn candidates_in(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut versioned: Vec<(u32, bool, String)> = Vec::new();
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        for (stem, is_hiprtc) in [("libhiprtc.so.", true), ("libamdhip64.so.", false)] {
            if let Some(Ok(major)) = name.strip_prefix(stem).map(str::parse::<u32>) {
                if is_hiprtc || major <= 5 {
                    versioned.push((major, is_hiprtc, e.path().to_string_lossy().into_owned()));
                }
            }
        }
    }
    // hipRTC before libamdhip64, newest major first.
    versioned.sort_by_key(|v| std::cmp::Reverse((v.1, v.0)));
    let mut out: Vec<String> = versioned.into_iter().map(|(_, _, p)| p).collect();
    let plain = dir.join("libhiprtc.so");
    if plain.exists() {
        let at = out.iter().position(|p| !p.contains("libhiprtc.so.")).unwrap_or(out.len());
        out.insert(at, plain.to_string_lossy().into_owned());
    }
    out
}

impl HipRtc {
    /// Finds and loads hipRTC (see the module documentation for where it looks).
    pub fn load() -> Result<HipRtc, JitError> {
        let mut tried = Vec::new();
        if let Some(name) = std::env::var("ROCMFORGE_HIPRTC").ok().filter(|n| !n.is_empty()) {
            return match Self::try_load(&name) {
                Ok(Some(rtc)) => Ok(rtc),
                Ok(None) => Err(JitError::LibraryNotFound {
                    what: "hipRTC",
                    tried: format!("ROCMFORGE_HIPRTC={name}"),
                    hint: "ROCMFORGE_HIPRTC must name a library that loads and exports hiprtcCreateProgram (libhiprtc.so.N, or libamdhip64.so.5 for ROCm 5)",
                }),
                Err(e) => Err(e),
            };
        }
        let names = rocm_lib_dirs()
            .iter()
            .flat_map(|d| candidates_in(d))
            .chain(LOADER_NAMES.iter().map(|n| n.to_string()))
            .collect::<Vec<_>>();
        for name in names {
            if let Some(rtc) = Self::try_load(&name)? {
                return Ok(rtc);
            }
            tried.push(name);
        }
        Err(JitError::LibraryNotFound {
            what: "hipRTC",
            tried: tried.join(", "),
            hint: "install ROCm (Debian 12: apt-get install libamdhip64-5 libhiprtc-builtins5 rocm-device-libs; Debian 13+/Ubuntu 25.04+: libhiprtc6 libhiprtc-builtins6 libamdhip64-6), set ROCM_PATH, or set ROCMFORGE_HIPRTC to the library's path",
        })
    }

    /// `Ok(None)` when `name` does not load or is not hipRTC.
    fn try_load(name: &str) -> Result<Option<HipRtc>, JitError> {
        // SAFETY: loading a shared library runs its initialisers; these are ROCm's own
        // libraries, which initialise without a GPU present.
        let Ok(lib) = (unsafe { Library::new(name) }) else { return Ok(None) };
        // SAFETY: reading a symbol's address; `lib` is loaded.
        if unsafe { lib.get::<*const c_void>(b"hiprtcCreateProgram\0") }.is_err() {
            return Ok(None);
        }
        Self::from_library(lib, name).map(Some)
    }

    fn from_library(lib: Library, name: &str) -> Result<HipRtc, JitError> {
        macro_rules! sym {
            ($s:literal) => {{
                // SAFETY: the symbol is hipRTC's C function of the declared signature (hiprtc.h);
                // the pointer stays valid while `lib` is kept in `_lib`.
                *unsafe { lib.get(concat!($s, "\0").as_bytes()) }.map_err(|e| JitError::MissingSymbol {
                    library: name.to_string(),
                    symbol: $s,
                    detail: e.to_string(),
                })?
            }};
        }
        let api = Api {
            create: sym!("hiprtcCreateProgram"),
            compile: sym!("hiprtcCompileProgram"),
            log_size: sym!("hiprtcGetProgramLogSize"),
            log: sym!("hiprtcGetProgramLog"),
            code_size: sym!("hiprtcGetCodeSize"),
            code: sym!("hiprtcGetCode"),
            destroy: sym!("hiprtcDestroyProgram"),
            error_string: sym!("hiprtcGetErrorString"),
            version: sym!("hiprtcVersion"),
        };
        let (mut major, mut minor) = (0, 0);
        // SAFETY: two out-pointers to live ints.
        unsafe { (api.version)(&mut major, &mut minor) };

        let path = loaded_path(name);
        let file_name = path.file_name().map_or_else(|| name.to_string(), |f| f.to_string_lossy().into_owned());
        let (hip_version, runtime) = hip_version_of(&lib, &path);

        // hipRTC loads comgr (and the LLVM it links) on its first program: make one, so the
        // identity can name them before anything is compiled or looked up in the cache.
        {
            let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            let mut prog: Program = std::ptr::null_mut();
            // SAFETY: a valid NUL-terminated source and name; no headers.
            let rc = unsafe {
                (api.create)(&mut prog, c"".as_ptr(), c"identity.hip".as_ptr(), 0, std::ptr::null(), std::ptr::null())
            };
            if rc == 0 {
                // SAFETY: `prog` came from hiprtcCreateProgram and is destroyed once, here.
                unsafe { (api.destroy)(&mut prog) };
            }
        }
        let mut parts = vec![
            format!("hiprtc {major}.{minor}"),
            format!("HIP {}", hip_version.map_or_else(|| "unknown".to_string(), |v| v.to_string())),
            format!("{file_name} [{}]", file_fingerprint(&path)),
        ];
        for l in mapped_libraries(&["libamd_comgr", "libLLVM", "libhiprtc-builtins"]) {
            parts.push(l.to_string());
        }
        let id = CompilerId { name: "hiprtc", version: parts.join(", ") };
        Ok(HipRtc { api, id, hip_version, path, _runtime: runtime, _lib: lib })
    }

    /// The HIP release this hipRTC belongs to, when something says.
    pub fn hip_version(&self) -> Option<HipVersion> {
        self.hip_version
    }

    /// The real path of the loaded hipRTC library.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A short name for messages: `hipRTC of HIP 5.2.21153 (libamdhip64.so.5.2.21153)`.
    fn short_name(&self) -> String {
        let file = self.path.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
        match self.hip_version {
            Some(v) => format!("hipRTC of HIP {v} ({file})"),
            None => format!("hipRTC of an unknown HIP release ({file})"),
        }
    }

    fn check(&self, call: &'static str, rc: HiprtcResult) -> Result<(), JitError> {
        if rc == 0 {
            return Ok(());
        }
        // SAFETY: hipRTC returns a static C string for any result code.
        let message = unsafe { CStr::from_ptr((self.api.error_string)(rc)) }.to_string_lossy().into_owned();
        Err(JitError::Api { call, code: rc as i64, message })
    }

    fn program_log(&self, prog: Program) -> String {
        let mut n = 0usize;
        // SAFETY: `prog` is a live program; out-pointer to a live usize.
        if unsafe { (self.api.log_size)(prog, &mut n) } != 0 || n == 0 {
            return String::new();
        }
        let mut buf = vec![0u8; n];
        // SAFETY: `buf` holds the `n` bytes hipRTC said the log takes.
        unsafe { (self.api.log)(prog, buf.as_mut_ptr().cast()) };
        String::from_utf8_lossy(&buf).trim_end_matches('\0').trim_end().to_string()
    }
}

/// Frees a hipRTC program however compilation ends.
struct ProgramGuard<'a> {
    rtc: &'a HipRtc,
    prog: Program,
}

impl Drop for ProgramGuard<'_> {
    fn drop(&mut self) {
        // SAFETY: `prog` came from hiprtcCreateProgram and is destroyed once, here.
        unsafe { (self.rtc.api.destroy)(&mut self.prog) };
    }
}

impl Compiler for HipRtc {
    fn id(&self) -> &CompilerId {
        &self.id
    }

    fn dialect(&self) -> Dialect {
        Dialect::Hip
    }

    fn check_target(&self, target: &Target) -> Result<(), JitError> {
        let refuse =
            |why: String| JitError::UnsupportedTarget { compiler: self.short_name(), target: target.to_string(), why };
        let Target::Amd { processor, features } = target else {
            return Err(refuse("hipRTC compiles for AMD processors (gfx…); NVIDIA targets need NVRTC".into()));
        };
        let Some(row) = amd_processor(processor) else {
            return Err(refuse(format!("{processor} is not a processor rocmforge knows hipRTC to handle")));
        };
        // Target::from_str admits only features the processor has; a Target built by hand is
        // checked again here, because hipRTC aborts on the others.
        for f in features {
            let has = match f.trim_end_matches(['+', '-']) {
                "sramecc" => row.sramecc,
                "xnack" => row.xnack,
                _ => false,
            };
            if !has {
                return Err(refuse(format!("{processor} has no {f} feature")));
            }
        }
        let Some(v) = self.hip_version else {
            return Err(refuse(format!(
                "cannot tell which HIP release {} belongs to (no hipRuntimeGetVersion in it or in a libamdhip64 beside it, no version in its file name); an unknown hipRTC may abort the process on a processor it does not know",
                self.path.display()
            )));
        };
        if !v.at_least(row.hip_since) {
            return Err(refuse(format!(
                "{processor} needs HIP {}.{} or newer; this hipRTC is HIP {}.{} and would abort the process",
                row.hip_since.0, row.hip_since.1, v.major, v.minor
            )));
        }
        if let Some(until) = row.hip_until.filter(|&u| v.at_least((u.0, u.1 + 1))) {
            return Err(refuse(format!(
                "{processor} was dropped after HIP {}.{}; this hipRTC is HIP {}.{} and would abort the process",
                until.0, until.1, v.major, v.minor
            )));
        }
        Ok(())
    }

    fn options(&self, target: &Target) -> Vec<String> {
        vec![format!("--offload-arch={target}"), "-O3".into()]
    }

    fn compile(&self, source: &str, entry: &str, target: &Target, options: &[String]) -> Result<Vec<u8>, JitError> {
        self.check_target(target)?;
        let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let src = CString::new(source).map_err(|_| JitError::Api {
            call: "hiprtcCreateProgram",
            code: -1,
            message: "source contains a NUL byte".into(),
        })?;
        let name = CString::new(format!("{entry}.hip")).expect("entry names have no NUL");
        let opts: Vec<CString> =
            options.iter().map(|o| CString::new(o.as_str()).expect("options have no NUL")).collect();
        let opt_ptrs: Vec<*const c_char> = opts.iter().map(|o| o.as_ptr()).collect();

        let mut prog: Program = std::ptr::null_mut();
        // SAFETY: valid NUL-terminated strings; no headers.
        let rc =
            unsafe { (self.api.create)(&mut prog, src.as_ptr(), name.as_ptr(), 0, std::ptr::null(), std::ptr::null()) };
        self.check("hiprtcCreateProgram", rc)?;
        let guard = ProgramGuard { rtc: self, prog };

        // SAFETY: `prog` is live; `opt_ptrs` points at `opts`, which outlive the call.
        let rc = unsafe { (self.api.compile)(guard.prog, opt_ptrs.len() as c_int, opt_ptrs.as_ptr()) };
        if rc != 0 {
            return Err(JitError::Compile {
                entry: entry.to_string(),
                target: target.to_string(),
                compiler: self.id.to_string(),
                log: self.program_log(guard.prog),
                numbered_source: number_lines(source),
            });
        }
        let mut n = 0usize;
        // SAFETY: `prog` compiled; out-pointer to a live usize.
        self.check("hiprtcGetCodeSize", unsafe { (self.api.code_size)(guard.prog, &mut n) })?;
        let mut code = vec![0u8; n];
        // SAFETY: `code` holds the `n` bytes hipRTC reported.
        self.check("hiprtcGetCode", unsafe { (self.api.code)(guard.prog, code.as_mut_ptr().cast()) })?;
        Ok(code)
    }
}

/// The real path of a library this process has loaded by `name` (a path or a bare name).
fn loaded_path(name: &str) -> PathBuf {
    let mapped = if name.contains('/') {
        Some(PathBuf::from(name))
    } else {
        let stem = name.split(".so").next().unwrap_or(name);
        mapped_libraries(&[&format!("{stem}.so")]).into_iter().next().map(|l| l.path)
    };
    let path = mapped.unwrap_or_else(|| PathBuf::from(name));
    std::fs::canonicalize(&path).unwrap_or(path)
}

type RuntimeGetVersion = unsafe extern "C" fn(*mut c_int) -> c_int;

/// Calls `hipRuntimeGetVersion` in `lib`, if it has one and it answers.
fn runtime_version(lib: &Library) -> Option<HipVersion> {
    // SAFETY: optional symbol of signature `hipError_t hipRuntimeGetVersion(int*)` (hip_runtime_api.h).
    let f: RuntimeGetVersion = *unsafe { lib.get::<RuntimeGetVersion>(b"hipRuntimeGetVersion\0") }.ok()?;
    let mut v: c_int = 0;
    // SAFETY: one out-pointer to a live int; the call needs no GPU (it answers without one).
    let rc = unsafe { f(&mut v) };
    if rc != 0 {
        return None;
    }
    HipVersion::from_runtime(v)
}

/// The HIP release of the hipRTC at `path` (loaded as `lib`), and the runtime library asked, to
/// keep loaded: see the module documentation for the order.
fn hip_version_of(lib: &Library, path: &Path) -> (Option<HipVersion>, Option<Library>) {
    if let Some(v) = runtime_version(lib) {
        return (Some(v), None);
    }
    let file = path.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
    // ROCm 6+: the libamdhip64.so.N of the same major, in the same folder.
    let major = file.split_once(".so.").and_then(|(_, t)| t.split('.').next().map(str::to_string));
    if let (Some(major), Some(dir)) = (major, path.parent()) {
        let sibling = dir.join(format!("libamdhip64.so.{major}"));
        if sibling.exists() {
            // SAFETY: ROCm's HIP runtime library; its initialisers need no GPU.
            if let Ok(runtime) = unsafe { Library::new(&sibling) } {
                if let Some(v) = runtime_version(&runtime) {
                    return (Some(v), Some(runtime));
                }
            }
        }
    }
    (HipVersion::from_file_name(&file), None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hip_versions_read_from_the_runtime_and_from_file_names() {
        let v = HipVersion::from_runtime(60443484).unwrap();
        assert_eq!((v.major, v.minor, v.patch), (6, 4, 43484));
        assert_eq!(HipVersion::from_runtime(50221153).unwrap().to_string(), "5.2.21153");
        assert_eq!(HipVersion::from_runtime(0), None, "ROCm 6.4's libhiprtc read 0 before: refused, not HIP 0.0");
        assert_eq!(HipVersion::from_file_name("libhiprtc.so.6.4.43484"), Some(v));
        assert_eq!(HipVersion::from_file_name("libamdhip64.so.5.2.21153").unwrap().minor, 2);
        for name in ["libhiprtc.so.6", "libhiprtc.so", "libhiprtc.so.6.4", "libhiprtc.so.x.y.z", "libhiprtc.so.6.4.1.2"]
        {
            assert_eq!(HipVersion::from_file_name(name), None, "{name}");
        }
        assert!(v.at_least((6, 4)) && v.at_least((5, 4)) && !v.at_least((6, 5)) && !v.at_least((7, 0)));
    }

    #[test]
    fn rocm_folders_are_searched_newest_hiprtc_first() {
        let dir = std::env::temp_dir().join(format!("rocmforge-hiprtc-dir-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for f in
            ["libamdhip64.so.5", "libamdhip64.so.6", "libhiprtc.so.6", "libhiprtc.so.7", "libhiprtc.so", "libfoo.so.1"]
        {
            std::fs::write(dir.join(f), b"").unwrap();
        }
        let found: Vec<String> = candidates_in(&dir)
            .into_iter()
            .map(|p| Path::new(&p).file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(found, ["libhiprtc.so.7", "libhiprtc.so.6", "libhiprtc.so", "libamdhip64.so.5"]);
    }
}
