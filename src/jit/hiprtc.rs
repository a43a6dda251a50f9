//! hipRTC, loaded at run time (dlopen): `libhiprtc.so.*`, else `libamdhip64.so.*`, which holds
//! hipRTC in ROCm 5.x. One binary runs with or without ROCm; no GPU is needed to compile.

use libloading::Library;
use std::ffi::{c_char, c_int, c_void, CStr, CString};

use super::compiler::{loaded_library_file, number_lines, Compiler, CompilerId, JitError};
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

pub struct HipRtc {
    api: Api,
    id: CompilerId,
    /// HIP runtime version as (major, minor): decides which processors this build knows.
    hip_version: (u32, u32),
    _lib: Library,
}

/// Library names tried in order; `ROCMFORGE_HIPRTC` (a path or name) goes first when set.
const CANDIDATES: &[&str] = &[
    "libhiprtc.so",
    "libhiprtc.so.7",
    "libhiprtc.so.6",
    "libhiprtc.so.5",
    "libamdhip64.so",
    "libamdhip64.so.7",
    "libamdhip64.so.6",
    "libamdhip64.so.5",
    "/opt/rocm/lib/libhiprtc.so",
    "/opt/rocm/lib/libamdhip64.so",
];

/// AMD processors and the first HIP (major, minor) whose hipRTC compiles for them. A processor
/// not listed, or listed for a later HIP, is refused before the compiler sees it: ROCm 5.2's
/// hipRTC aborts the whole process on gfx940, gfx942 and gfx1100 (seen on Debian's 5.2.3).
const AMD_PROCESSORS: &[(&str, (u32, u32))] = &[
    ("gfx803", (5, 0)),
    ("gfx900", (5, 0)),
    ("gfx902", (5, 0)),
    ("gfx904", (5, 0)),
    ("gfx906", (5, 0)),
    ("gfx908", (5, 0)),
    ("gfx909", (5, 0)),
    ("gfx90a", (5, 0)),
    ("gfx90c", (5, 0)),
    ("gfx1010", (5, 0)),
    ("gfx1011", (5, 0)),
    ("gfx1012", (5, 0)),
    ("gfx1013", (5, 0)),
    ("gfx1030", (5, 0)),
    ("gfx1031", (5, 0)),
    ("gfx1032", (5, 0)),
    ("gfx1033", (5, 0)),
    ("gfx1034", (5, 0)),
    ("gfx1035", (5, 0)),
    ("gfx1036", (5, 0)),
    ("gfx940", (5, 4)),
    ("gfx941", (5, 4)),
    ("gfx942", (5, 4)),
    ("gfx1100", (5, 4)),
    ("gfx1101", (5, 4)),
    ("gfx1102", (5, 4)),
    ("gfx1103", (5, 5)),
    ("gfx1150", (6, 2)),
    ("gfx1151", (6, 2)),
    ("gfx1200", (6, 3)),
    ("gfx1201", (6, 3)),
    ("gfx950", (6, 4)),
];

impl HipRtc {
    /// Finds and loads hipRTC.
    pub fn load() -> Result<HipRtc, JitError> {
        let mut tried = Vec::new();
        let env = std::env::var("ROCMFORGE_HIPRTC").ok();
        for name in env.iter().map(String::as_str).chain(CANDIDATES.iter().copied()) {
            tried.push(name.to_string());
            // SAFETY: loading a shared library runs its initialisers; these are ROCm's own
            // libraries, which initialise without a GPU present.
            let Ok(lib) = (unsafe { Library::new(name) }) else { continue };
            // SAFETY: reading a symbol's address; `lib` is loaded.
            if unsafe { lib.get::<*const c_void>(b"hiprtcCreateProgram\0") }.is_err() {
                continue;
            }
            return Self::from_library(lib, name);
        }
        Err(JitError::LibraryNotFound {
            what: "hipRTC",
            tried: tried.join(", "),
            hint: "install ROCm (Debian/Ubuntu: apt-get install libamdhip64-5 libhiprtc-builtins5 rocm-device-libs) or set ROCMFORGE_HIPRTC to the library's path",
        })
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

        // The HIP runtime version pins the actual build (hipRTC's own version moves rarely).
        // SAFETY: optional symbol of signature `hipError_t hipRuntimeGetVersion(int*)`; it needs no device.
        let runtime: Option<unsafe extern "C" fn(*mut c_int) -> c_int> =
            unsafe { lib.get(b"hipRuntimeGetVersion\0") }.ok().map(|s| *s);
        let mut hip = 0;
        if let Some(f) = runtime {
            // SAFETY: one out-pointer to a live int.
            unsafe { f(&mut hip) };
        }
        let hip_version = ((hip / 10_000_000) as u32, ((hip / 100_000) % 100) as u32);
        let real_file = loaded_library_file(name);
        let version =
            format!("hiprtc {major}.{minor}, HIP {}.{}.{}, {real_file}", hip_version.0, hip_version.1, hip % 100_000);
        Ok(HipRtc { api, id: CompilerId { name: "hiprtc", version }, hip_version, _lib: lib })
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
        let refuse = |why: String| JitError::UnsupportedTarget {
            compiler: self.id.to_string(),
            target: target.to_string(),
            why,
        };
        let Target::Amd { processor, .. } = target else {
            return Err(refuse("hipRTC compiles for AMD processors (gfx…); NVIDIA targets need NVRTC".into()));
        };
        match AMD_PROCESSORS.iter().find(|(p, _)| p == processor) {
            None => Err(refuse(format!("{processor} is not a processor rocmforge knows hipRTC to handle"))),
            Some((_, min)) if self.hip_version < *min => Err(refuse(format!(
                "{processor} needs HIP {}.{} or newer; this hipRTC is HIP {}.{} and would abort the process",
                min.0, min.1, self.hip_version.0, self.hip_version.1
            ))),
            Some(_) => Ok(()),
        }
    }

    fn options(&self, target: &Target) -> Vec<String> {
        vec![format!("--offload-arch={target}"), "-O3".into()]
    }

    fn compile(&self, source: &str, entry: &str, target: &Target, options: &[String]) -> Result<Vec<u8>, JitError> {
        self.check_target(target)?;
        // ROCm 5.2's hipRTC livelocks when two threads of one process compile at once (seen here:
        // both cores spinning for half an hour). Compiles are serialised within a process; the CLI
        // gets its parallelism from worker processes instead.
        static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
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
