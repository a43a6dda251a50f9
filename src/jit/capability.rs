//! What each target can do, as one table: warp size, the int8 dot instruction, the matrix unit,
//! programmatic dependent launch, which target features (`xnack`, `sramecc`) an AMD processor
//! has, and which HIP releases' hipRTC compile for it.
//!
//! The renderer writes these into every kernel as `#define`s (see `kernels::RenderTarget`); the
//! preludes choose by them, never by `__has_builtin` (ROCm 5.2's hipRTC answers yes for a gfx94x
//! MFMA on gfx90a, then aborts the process compiling it).
//!
//! Whether hipRTC can take a processor and its features is decided here, from this table, and
//! never by trying: ROCm 5.2's hipRTC aborts the whole process (rc 134, inside comgr) on a
//! processor it does not know (gfx940, gfx942, gfx1100, …) and on a feature the processor lacks
//! (`gfx1030:xnack+`, `gfx803:sramecc+`); ROCm 6.4's does the same on `gfx940`, `gfx941` (gone from
//! its LLVM) and `gfx1250`. A probe compile in a child process would learn the same thing, but a
//! library cannot re-run its host application as a child, and the answer would have to be cached
//! per compiler anyway; a table is deterministic, free, and testable without a GPU. Its rows come
//! from LLVM's processor table (AMDGPUUsage: "Processors", the target-feature column) and from
//! compiling one kernel per processor, feature and builtin in a child process with Debian's ROCm
//! 5.2 and ROCm 6.4 hipRTC (scripts/rocm6_root.sh provides the second). A processor's `hip_since`
//! is conservative where a release was not tried: refusing a target that would have worked costs
//! a clear error, accepting one that aborts costs the user's process.

use crate::kernels::{DotI8, MatrixUnit};

/// One AMD processor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AmdProcessor {
    pub name: &'static str,
    /// 64 on GCN/CDNA (gfx8, gfx9), 32 on RDNA (gfx10+, compiled in its default wave32 mode).
    pub warp_size: u32,
    pub dot_i8: DotI8,
    pub matrix: MatrixUnit,
    /// Whether the processor takes the `xnack` target feature (LLVM's AMDGPUUsage).
    pub xnack: bool,
    /// Whether the processor takes the `sramecc` target feature.
    pub sramecc: bool,
    /// The first HIP (major, minor) whose hipRTC compiles for it.
    pub hip_since: (u32, u32),
    /// The last HIP whose hipRTC still does (the processor was dropped after it), if any.
    pub hip_until: Option<(u32, u32)>,
}

const fn gcn(name: &'static str, xnack: bool) -> AmdProcessor {
    AmdProcessor {
        name,
        warp_size: 64,
        dot_i8: DotI8::None,
        matrix: MatrixUnit::None,
        xnack,
        sramecc: false,
        hip_since: (5, 0),
        hip_until: None,
    }
}

const fn cdna(name: &'static str, matrix: MatrixUnit, since: (u32, u32), until: Option<(u32, u32)>) -> AmdProcessor {
    AmdProcessor {
        name,
        warp_size: 64,
        dot_i8: DotI8::Sdot4,
        matrix,
        xnack: true,
        sramecc: true,
        hip_since: since,
        hip_until: until,
    }
}

const fn rdna(name: &'static str, dot_i8: DotI8, matrix: MatrixUnit, xnack: bool, since: (u32, u32)) -> AmdProcessor {
    AmdProcessor { name, warp_size: 32, dot_i8, matrix, xnack, sramecc: false, hip_since: since, hip_until: None }
}

const NO_MATRIX: MatrixUnit = MatrixUnit::None;
const WMMA_GFX11: MatrixUnit = MatrixUnit::Wmma { rdna: 3 };
const WMMA_GFX12: MatrixUnit = MatrixUnit::Wmma { rdna: 4 };

/// Every AMD processor rocmforge compiles for. A processor missing here is refused by name.
pub const AMD_PROCESSORS: &[AmdProcessor] = &[
    // GCN 3 and 5 (Vega): wave64, no int8 dot, no matrix unit.
    gcn("gfx803", false),
    gcn("gfx900", true),
    gcn("gfx902", true),
    gcn("gfx904", true),
    AmdProcessor { dot_i8: DotI8::Sdot4, sramecc: true, ..gcn("gfx906", true) },
    gcn("gfx909", true),
    gcn("gfx90c", true),
    // CDNA 1-4: MFMA.
    cdna("gfx908", MatrixUnit::Mfma { cdna: 1 }, (5, 0), None),
    cdna("gfx90a", MatrixUnit::Mfma { cdna: 2 }, (5, 0), None),
    // gfx940/gfx941 (MI300 pre-production) left LLVM 20; ROCm 6.4's hipRTC aborts on them.
    cdna("gfx940", MatrixUnit::Mfma { cdna: 3 }, (5, 4), Some((6, 3))),
    cdna("gfx941", MatrixUnit::Mfma { cdna: 3 }, (5, 4), Some((6, 3))),
    cdna("gfx942", MatrixUnit::Mfma { cdna: 3 }, (5, 4), None),
    cdna("gfx950", MatrixUnit::Mfma { cdna: 4 }, (6, 4), None),
    // RDNA 1: xnack; dot instructions on gfx1011/gfx1012 only.
    rdna("gfx1010", DotI8::None, NO_MATRIX, true, (5, 0)),
    rdna("gfx1011", DotI8::Sdot4, NO_MATRIX, true, (5, 0)),
    rdna("gfx1012", DotI8::Sdot4, NO_MATRIX, true, (5, 0)),
    rdna("gfx1013", DotI8::None, NO_MATRIX, true, (5, 0)),
    // RDNA 2: sdot4, no matrix unit, no xnack.
    rdna("gfx1030", DotI8::Sdot4, NO_MATRIX, false, (5, 0)),
    rdna("gfx1031", DotI8::Sdot4, NO_MATRIX, false, (5, 0)),
    rdna("gfx1032", DotI8::Sdot4, NO_MATRIX, false, (5, 0)),
    rdna("gfx1033", DotI8::Sdot4, NO_MATRIX, false, (5, 0)),
    rdna("gfx1034", DotI8::Sdot4, NO_MATRIX, false, (5, 0)),
    rdna("gfx1035", DotI8::Sdot4, NO_MATRIX, false, (5, 0)),
    rdna("gfx1036", DotI8::Sdot4, NO_MATRIX, false, (5, 0)),
    // RDNA 3 / 3.5: sudot4 and WMMA.
    rdna("gfx1100", DotI8::Sudot4, WMMA_GFX11, false, (5, 4)),
    rdna("gfx1101", DotI8::Sudot4, WMMA_GFX11, false, (5, 4)),
    rdna("gfx1102", DotI8::Sudot4, WMMA_GFX11, false, (5, 4)),
    rdna("gfx1103", DotI8::Sudot4, WMMA_GFX11, false, (5, 5)),
    rdna("gfx1150", DotI8::Sudot4, WMMA_GFX11, false, (6, 2)),
    rdna("gfx1151", DotI8::Sudot4, WMMA_GFX11, false, (6, 2)),
    rdna("gfx1152", DotI8::Sudot4, WMMA_GFX11, false, (6, 4)),
    rdna("gfx1153", DotI8::Sudot4, WMMA_GFX11, false, (7, 0)),
    // RDNA 4: sudot4 and the gfx12 WMMA (other builtins and layouts than gfx11's).
    rdna("gfx1200", DotI8::Sudot4, WMMA_GFX12, false, (6, 3)),
    rdna("gfx1201", DotI8::Sudot4, WMMA_GFX12, false, (6, 3)),
];

/// The table row of an AMD processor (`gfx90a`), if rocmforge knows it.
pub fn amd_processor(name: &str) -> Option<&'static AmdProcessor> {
    AMD_PROCESSORS.iter().find(|p| p.name == name)
}

/// Bytes of shared memory one block may take on an NVIDIA GPU of compute capability `sm` (×10),
/// with the opt-in for more than 48 KiB (CUDA C Programming Guide, "Technical Specifications per
/// Compute Capability").
pub fn nvidia_shared_max(sm: u32) -> u32 {
    let kib = match sm {
        90.. => 227,
        80 | 87 => 163,
        86 | 88 | 89 => 99,
        70..=72 => 96,
        75 => 64,
        _ => 48,
    };
    kib * 1024
}

/// What an NVIDIA GPU of compute capability `sm` (×10) can do.
pub fn nvidia_caps(sm: u32) -> (DotI8, MatrixUnit, bool) {
    let dot = if sm >= 61 { DotI8::Dp4a } else { DotI8::None };
    let matrix = if sm >= 80 { MatrixUnit::MmaSync } else { MatrixUnit::None };
    (dot, matrix, sm >= 90)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_holds_each_processor_once_with_consistent_rows() {
        for (i, p) in AMD_PROCESSORS.iter().enumerate() {
            assert!(AMD_PROCESSORS[..i].iter().all(|q| q.name != p.name), "{} twice", p.name);
            let gfx10_or_later = p.name.len() == 7;
            assert_eq!(p.warp_size, if gfx10_or_later { 32 } else { 64 }, "{}", p.name);
            // MFMA is wave64 only, WMMA wave32 only; sramecc exists only on wave64 parts.
            match p.matrix {
                MatrixUnit::Mfma { .. } => assert_eq!(p.warp_size, 64, "{}", p.name),
                MatrixUnit::Wmma { .. } => assert_eq!(p.warp_size, 32, "{}", p.name),
                _ => {}
            }
            assert!(!p.sramecc || p.warp_size == 64, "{}", p.name);
            assert!(p.hip_until.is_none_or(|u| u >= p.hip_since), "{}", p.name);
        }
    }

    #[test]
    fn the_issue_s_capabilities_hold() {
        let p = |n| amd_processor(n).unwrap_or_else(|| panic!("{n} in the table"));
        for n in ["gfx906", "gfx908", "gfx90a", "gfx942", "gfx1030"] {
            assert_eq!(p(n).dot_i8, DotI8::Sdot4, "{n}");
        }
        for n in ["gfx1100", "gfx1151", "gfx1200", "gfx1201"] {
            assert_eq!(p(n).dot_i8, DotI8::Sudot4, "{n}");
        }
        assert_eq!(p("gfx906").matrix, MatrixUnit::None);
        assert_eq!(p("gfx1030").matrix, MatrixUnit::None);
        assert_eq!(p("gfx90a").matrix, MatrixUnit::Mfma { cdna: 2 });
        assert_eq!(p("gfx950").matrix, MatrixUnit::Mfma { cdna: 4 });
        assert_eq!(p("gfx1101").matrix, MatrixUnit::Wmma { rdna: 3 });
        assert_eq!(p("gfx1201").matrix, MatrixUnit::Wmma { rdna: 4 });
        assert!(!p("gfx1030").xnack && p("gfx90a").xnack && p("gfx90a").sramecc && !p("gfx803").sramecc);
        assert_eq!(nvidia_caps(60), (DotI8::None, MatrixUnit::None, false));
        assert_eq!(nvidia_caps(61), (DotI8::Dp4a, MatrixUnit::None, false));
        assert_eq!(nvidia_caps(80), (DotI8::Dp4a, MatrixUnit::MmaSync, false));
        assert_eq!(nvidia_caps(90), (DotI8::Dp4a, MatrixUnit::MmaSync, true));
    }
}
