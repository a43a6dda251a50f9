//! NVRTC through cudarc (loaded at run time), producing CUBIN for an explicit `sm_XX`.

use std::ffi::{c_char, c_int, CString};

use cudarc::nvrtc::{result, sys};

use super::compiler::{loaded_library_file, number_lines, Compiler, CompilerId, JitError};
use super::target::Target;
use crate::kernels::Dialect;

pub struct Nvrtc {
    id: CompilerId,
    /// Compute capabilities ×10 this NVRTC can produce code for.
    archs: Vec<u32>,
}

impl Nvrtc {
    /// Loads NVRTC (libnvrtc.so.*; put CUDA's lib64 on LD_LIBRARY_PATH).
    pub fn load() -> Result<Nvrtc, JitError> {
        // SAFETY: only probes whether a candidate library loads; cudarc panics on first use
        // otherwise, so nothing else is called before this says yes.
        if !unsafe { sys::is_culib_present() } {
            return Err(JitError::LibraryNotFound {
                what: "NVRTC",
                tried: "libnvrtc.so, libnvrtc.so.13, libnvrtc.so.12 (cudarc's candidates)".into(),
                hint: "install the CUDA toolkit's NVRTC and add its lib64 folder to LD_LIBRARY_PATH",
            });
        }
        let (mut major, mut minor) = (0 as c_int, 0 as c_int);
        // SAFETY: the library is present; two out-pointers to live ints.
        unsafe { sys::nvrtcVersion(&mut major, &mut minor) };
        let mut n = 0 as c_int;
        // SAFETY: out-pointer to a live int.
        unsafe { sys::nvrtcGetNumSupportedArchs(&mut n) };
        let mut archs = vec![0 as c_int; n.max(0) as usize];
        // SAFETY: `archs` holds the `n` ints NVRTC reported.
        unsafe { sys::nvrtcGetSupportedArchs(archs.as_mut_ptr()) };
        let version = format!("nvrtc {major}.{minor}, {}", loaded_library_file("libnvrtc.so"));
        Ok(Nvrtc { id: CompilerId { name: "nvrtc", version }, archs: archs.into_iter().map(|a| a as u32).collect() })
    }
}

impl Compiler for Nvrtc {
    fn id(&self) -> &CompilerId {
        &self.id
    }

    fn dialect(&self) -> Dialect {
        Dialect::Cuda
    }

    fn check_target(&self, target: &Target) -> Result<(), JitError> {
        let refuse = |why: String| JitError::UnsupportedTarget {
            compiler: self.id.to_string(),
            target: target.to_string(),
            why,
        };
        match target {
            Target::Nvidia { sm, .. } if self.archs.contains(sm) => Ok(()),
            Target::Nvidia { .. } => Err(refuse(format!("this NVRTC produces code for {:?}", self.archs))),
            Target::Amd { .. } => {
                Err(refuse("NVRTC compiles for NVIDIA targets (sm_XX); AMD targets need hipRTC".into()))
            }
        }
    }

    fn options(&self, target: &Target) -> Vec<String> {
        // sm_90's architecture-specific features (wgmma) need sm_90a, whose code runs on sm_90
        // only: the JIT compiles for the GPU it runs on.
        let arch = match target {
            Target::Nvidia { sm: 90, .. } => format!("{target}a"),
            _ => target.to_string(),
        };
        vec![format!("--gpu-architecture={arch}"), "--std=c++17".into()]
    }

    fn compile(&self, source: &str, entry: &str, target: &Target, options: &[String]) -> Result<Vec<u8>, JitError> {
        self.check_target(target)?;
        let api = |call: &'static str| {
            move |e: result::NvrtcError| JitError::Api { call, code: e.0 as i64, message: format!("{e:?}") }
        };
        let src = CString::new(source).map_err(|_| JitError::Api {
            call: "nvrtcCreateProgram",
            code: -1,
            message: "source contains a NUL byte".into(),
        })?;
        let name = CString::new(format!("{entry}.cu")).expect("entry names have no NUL");
        let prog = result::create_program(&src, Some(&name)).map_err(api("nvrtcCreateProgram"))?;
        // SAFETY: `prog` is live until destroyed at the end of this function.
        let compiled = unsafe { result::compile_program(prog, options) };
        let out = match compiled {
            Err(_) => {
                // SAFETY: `prog` is live.
                let log = unsafe { result::get_program_log(prog) }.unwrap_or_default();
                let log: Vec<u8> = log.iter().map(|&c| c as u8).take_while(|&b| b != 0).collect();
                Err(JitError::Compile {
                    entry: entry.to_string(),
                    target: target.to_string(),
                    compiler: self.id.to_string(),
                    log: String::from_utf8_lossy(&log).trim_end().to_string(),
                    numbered_source: number_lines(source),
                })
            }
            Ok(()) => {
                let mut size = 0usize;
                // SAFETY: `prog` compiled; out-pointer to a live usize.
                unsafe { sys::nvrtcGetCUBINSize(prog, &mut size) }.result().map_err(api("nvrtcGetCUBINSize"))?;
                let mut cubin = vec![0u8; size];
                // SAFETY: `cubin` holds the `size` bytes NVRTC reported.
                unsafe { sys::nvrtcGetCUBIN(prog, cubin.as_mut_ptr() as *mut c_char) }
                    .result()
                    .map_err(api("nvrtcGetCUBIN"))?;
                Ok(cubin)
            }
        };
        // SAFETY: destroyed once, after its last use.
        let _ = unsafe { result::destroy_program(prog) };
        out
    }
}
