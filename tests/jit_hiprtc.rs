//! Every template compiles with the real hipRTC (Debian's ROCm 5.2) for gfx906, gfx90a and
//! gfx1030: each kernel the snapshot models need, and every weight type and head size the
//! templates promise. No kernel spills on gfx90a or gfx1030. Unknown targets are refused before
//! they reach hipRTC, which would abort the process. The compiler identity names the comgr and
//! LLVM that generate the code, and the preludes' warp-size check bites.

mod common;

use std::collections::BTreeSet;

use rocmforge::dtype::GgmlType;
use rocmforge::gguf::GgufFile;
use rocmforge::jit::{amd_kernel_resources, Compiler, HipRtc, JitError, Target, AMD_PROCESSORS};
use rocmforge::kernels::{render, KernelSpec, KvPrecision};
use rocmforge::model::ModelConfig;
use rocmforge::quant;

const TARGETS: [&str; 3] = ["gfx906", "gfx90a", "gfx1030"];

fn snapshot_specs() -> BTreeSet<KernelSpec> {
    let mut all = BTreeSet::new();
    for d in [common::llama_7b_q4_k_m(), common::qwen2_1_5b_q4_k_m()] {
        all.extend(rocmforge::exec::kernel_specs(&d.config, &d.tensors()).unwrap());
    }
    for file in ["SmolLM2-135M-Instruct.Q4_1.gguf", "gemma-3-270m-q4_k_m.gguf"] {
        if let Some(path) = common::model(file) {
            let f = GgufFile::open(path).unwrap();
            all.extend(rocmforge::exec::kernel_specs(&ModelConfig::from_gguf(&f).unwrap(), &f).unwrap());
        }
    }
    all
}

/// Every weight type for the three weight-reading ops; every head size, GQA ratio and flag.
fn coverage_specs() -> BTreeSet<KernelSpec> {
    let mut all = BTreeSet::new();
    for &wtype in quant::SUPPORTED {
        let k = 512;
        all.insert(KernelSpec::MatVec { wtype, k });
        all.insert(KernelSpec::MatMul { wtype, k });
        all.insert(KernelSpec::Embedding { wtype, n_embd: k });
    }
    for head_dim in [64, 80, 96, 128, 256] {
        for (gqa, sliding_window, softcap) in [(1, false, false), (4, true, false), (8, false, true), (3, true, true)] {
            for kv in [KvPrecision::F16, KvPrecision::F32] {
                all.insert(KernelSpec::Attention { head_dim, gqa, sliding_window, softcap, kv });
                all.insert(KernelSpec::AttnDecode { head_dim, gqa, sliding_window, softcap, kv });
            }
        }
    }
    // The split decode kernel's other GQA groups (its queries and sums live in registers).
    for head_dim in [64, 128, 256] {
        for gqa in [2, 5, 6, 7] {
            all.insert(KernelSpec::AttnDecode {
                head_dim,
                gqa,
                sliding_window: false,
                softcap: false,
                kv: KvPrecision::F16,
            });
        }
    }
    for kv in [KvPrecision::F16, KvPrecision::F32] {
        all.insert(KernelSpec::KvAppend { kv });
    }
    all
}

/// The int8 decode's kernels: the quantizer, and the int8 matvec of every weight type it takes at
/// the default layout of K = 4096 and at every group size and rows per thread it admits.
fn int8_specs() -> BTreeSet<KernelSpec> {
    let mut all = BTreeSet::new();
    all.insert(KernelSpec::QuantizeQ8_1);
    for &wtype in quant::SUPPORTED.iter().filter(|t| rocmforge::kernels::int8_matvec_type(**t)) {
        all.extend(KernelSpec::MatVec { wtype, k: 4096 }.int8_decode().map(|(_, m)| m));
        for (threads_per_row, rows_per_thread) in [(32, 1), (64, 2), (128, 4), (128, 8)] {
            all.insert(KernelSpec::MatVecQ8 { wtype, k: 2048, threads_per_row, rows_per_thread });
        }
    }
    all
}

/// The prefill's tiled kernels: the int8 matrix product of every weight type it takes at the
/// steps of K it stages (576: 64, 1536 and 11008: 128), and flash attention at every head size,
/// GQA ratio and flag.
fn prefill_specs() -> BTreeSet<KernelSpec> {
    let mut all = BTreeSet::new();
    for &wtype in quant::SUPPORTED.iter().filter(|t| rocmforge::kernels::int8_matvec_type(**t)) {
        for k in [576, 1536, 11008].into_iter().filter(|k| k % wtype.block_elems() as u32 == 0) {
            all.extend(KernelSpec::MatMul { wtype, k }.int8_prefill().map(|(_, m)| m));
        }
    }
    for head_dim in [64, 80, 96, 128, 256] {
        for (gqa, sliding_window, softcap) in [(1, false, false), (4, true, false), (8, false, true), (3, true, true)] {
            all.insert(KernelSpec::FlashAttn { head_dim, gqa, sliding_window, softcap });
        }
    }
    all
}

fn compile_all(rtc: &HipRtc, specs: &BTreeSet<KernelSpec>) {
    compile_checked(rtc, specs, false);
}

/// Compiles every spec for the three targets; no spills on gfx90a and gfx1030, and on gfx906
/// too (each kernel's resources printed) when `gfx906_too`.
fn compile_checked(rtc: &HipRtc, specs: &BTreeSet<KernelSpec>, gfx906_too: bool) {
    let mut spills = Vec::new();
    for t in TARGETS {
        let target: Target = t.parse().unwrap();
        for spec in specs {
            let k = render(spec, target.render_target()).unwrap();
            let code =
                rtc.compile(&k.source, &k.entry, &target, &rtc.options(&target)).unwrap_or_else(|e| panic!("{e}"));
            let res = amd_kernel_resources(&code).expect("code objects carry metadata");
            let r =
                res.iter().find(|r| r.name == k.entry).unwrap_or_else(|| panic!("{} not in its code object", k.entry));
            assert!(r.vgpr_count > 0 && r.wavefront_size == target.warp_size() as u64, "{t} {}: {r:?}", k.entry);
            if gfx906_too {
                println!("{t} {}: {r:?}", k.entry);
            }
            if (gfx906_too || t != "gfx906") && r.spills() {
                spills.push(format!("{t} {}: {r:?}", k.entry));
            }
            // Flash attention's and the f16 GEMM's products run on the matrix unit (f16 MFMA on
            // gfx90a); the targets without one take the f32 or FMA kernel.
            let want_matrix = match *spec {
                KernelSpec::FlashAttn { head_dim, .. } => Some(t == "gfx90a" && head_dim % 16 == 0),
                KernelSpec::GemmF16 { .. } => Some(t == "gfx90a"),
                _ => None,
            };
            if let Some(want_matrix) = want_matrix {
                let (_, count) = rocmforge::jit::amd_f16_matrix_instructions(&code).expect("a readable code object");
                println!("{t} {}: {count} f16 matrix instructions", k.entry);
                assert_eq!(count > 0, want_matrix, "{t} {}: {count} f16 MFMA instructions", k.entry);
            }
        }
    }
    assert!(spills.is_empty(), "kernels spill:\n{}", spills.join("\n"));
}

#[test]
fn every_snapshot_kernel_compiles_for_three_amd_targets_without_spills() {
    let Some(rtc) = common::hiprtc() else { return };
    compile_all(&rtc, &snapshot_specs());
}

#[test]
fn the_int8_decode_kernels_compile_for_three_amd_targets_without_spills() {
    let Some(rtc) = common::hiprtc() else { return };
    compile_checked(&rtc, &int8_specs(), true);
}

#[test]
fn the_fused_decode_kernels_compile_for_three_amd_targets_without_spills() {
    let Some(rtc) = common::hiprtc() else { return };
    compile_checked(&rtc, &common::fused_coverage_specs(), true);
}

#[test]
fn the_prefill_kernels_compile_for_three_amd_targets_without_spills() {
    let Some(rtc) = common::hiprtc() else { return };
    compile_checked(&rtc, &prefill_specs(), true);
}

#[test]
fn every_weight_type_and_head_size_compiles() {
    let Some(rtc) = common::hiprtc() else { return };
    compile_all(&rtc, &coverage_specs());
}

#[test]
fn targets_this_hiprtc_would_abort_on_are_refused_cleanly() {
    let Some(rtc) = common::hiprtc() else { return };
    let v = rtc.hip_version().expect("the HIP release is known");
    let mut refused = Vec::new();
    for p in AMD_PROCESSORS {
        let too_new = (v.major, v.minor) < p.hip_since;
        let dropped = p.hip_until.is_some_and(|u| (v.major, v.minor) > u);
        let target: Target = p.name.parse().unwrap();
        match rtc.check_target(&target) {
            Ok(()) => assert!(!too_new && !dropped, "{} must be refused by HIP {v}", p.name),
            Err(e) => {
                assert!(too_new || dropped, "{} should be accepted by HIP {v}: {e}", p.name);
                assert!(matches!(e, JitError::UnsupportedTarget { .. }), "{e}");
                let says = if too_new { "needs HIP" } else { "was dropped after HIP" };
                assert!(e.to_string().contains(p.name) && e.to_string().contains(says), "{e}");
                // compile() checks too, so a caller that skips check_target is still safe.
                let e = rtc.compile("", "k", &target, &[]).unwrap_err();
                assert!(matches!(e, JitError::UnsupportedTarget { .. }));
                refused.push(p.name);
            }
        }
    }
    println!("HIP {v} refuses {refused:?}");
    if (v.major, v.minor) == (5, 2) {
        for t in ["gfx940", "gfx942", "gfx1100", "gfx1201", "gfx950"] {
            assert!(refused.contains(&t), "ROCm 5.2 aborts on {t}");
        }
    }
    // Targets the parser refuses, built by hand: hipRTC refuses them again rather than abort.
    let by_hand = |processor: &str, features: &[&str]| Target::Amd {
        processor: processor.into(),
        features: features.iter().map(|f| f.to_string()).collect(),
    };
    for (target, says) in [
        (by_hand("gfx1234", &[]), "gfx1234 is not a processor"),
        (by_hand("gfx1030", &["xnack+"]), "gfx1030 has no xnack+ feature"),
        (by_hand("gfx803", &["sramecc+"]), "gfx803 has no sramecc+ feature"),
    ] {
        let e = rtc.compile("", "k", &target, &[]).unwrap_err().to_string();
        assert!(e.contains(says), "{e}");
    }
    let e = rtc.check_target(&"sm_90".parse().unwrap()).unwrap_err().to_string();
    assert!(e.contains("NVRTC"), "{e}");
}

#[test]
fn compile_errors_carry_the_log_and_numbered_source() {
    let Some(rtc) = common::hiprtc() else { return };
    let target: Target = "gfx90a".parse().unwrap();
    let src = "extern \"C\" __global__ void broken(float* x) {\n  x[0] = undefined_name;\n}\n";
    let e = rtc.compile(src, "broken", &target, &rtc.options(&target)).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("undefined_name") && msg.contains("   2 |   x[0] = undefined_name;"), "{msg}");
    assert!(msg.contains("broken") && msg.contains("gfx90a"), "{msg}");
}

#[test]
fn compiler_identity_names_the_hip_version_and_the_code_generator() {
    let Some(rtc) = common::hiprtc() else { return };
    let id = rtc.id();
    println!("{id}");
    assert_eq!(id.name, "hiprtc");
    let v = rtc.hip_version().expect("the HIP release is known");
    assert!(id.version.contains(&format!("HIP {v}")), "{}", id.version);
    // comgr generates the code: named by real file name and build id.
    let at = id.version.find("libamd_comgr.so.").expect("the identity names comgr");
    let comgr = &id.version[at..];
    let fingerprint = &comgr[comgr.find(" [").unwrap() + 2..];
    assert!(fingerprint[..12].chars().all(|c| c.is_ascii_hexdigit()), "a build id: {comgr}");
    if (v.major, v.minor) == (5, 2) {
        // Debian 12: hipRTC inside libamdhip64 5.2, comgr 2.4 linking LLVM 15.
        for lib in ["libamdhip64.so.5.2.21153 [", "libamd_comgr.so.2.4.0 [", "libLLVM-15.so.1 ["] {
            assert!(id.version.contains(lib), "the identity names {lib}: {}", id.version);
        }
    }
}

#[test]
fn the_rendered_warp_size_must_be_the_compilers_wavefront_size() {
    // The preludes static_assert RF_WARP_SIZE against __AMDGCN_WAVEFRONT_SIZE: prove the check
    // bites by rendering the other warp size on purpose, for a wave64 and a wave32 processor.
    let Some(rtc) = common::hiprtc() else { return };
    for (t, right, wrong) in [("gfx90a", 64, 32), ("gfx1030", 32, 64)] {
        let target: Target = t.parse().unwrap();
        let k = render(&KernelSpec::Argmax, target.render_target()).unwrap();
        rtc.compile(&k.source, &k.entry, &target, &rtc.options(&target)).unwrap_or_else(|e| panic!("{e}"));
        let tampered =
            k.source.replace(&format!("#define RF_WARP_SIZE {right}\n"), &format!("#define RF_WARP_SIZE {wrong}\n"));
        assert_ne!(tampered, k.source);
        let e = rtc.compile(&tampered, &k.entry, &target, &rtc.options(&target)).unwrap_err().to_string();
        assert!(e.contains("rendered warp size differs from the compiler's wavefront size"), "{t}: {e}");
    }
}

#[test]
fn kernel_side_blocks_match_the_rust_blocks() {
    // The rendered source static_asserts sizeof(block_t) against the Rust block size; prove the
    // check bites by rendering a wrong size on purpose.
    let Some(rtc) = common::hiprtc() else { return };
    let target: Target = "gfx90a".parse().unwrap();
    let k = render(&KernelSpec::MatVec { wtype: GgmlType::Q6_K, k: 256 }, target.render_target()).unwrap();
    let tampered = k.source.replace("constexpr int BLOCK_BYTES = 210;", "constexpr int BLOCK_BYTES = 208;");
    assert_ne!(tampered, k.source);
    let e = rtc.compile(&tampered, &k.entry, &target, &rtc.options(&target)).unwrap_err().to_string();
    assert!(e.contains("block_t size differs"), "{e}");
}
