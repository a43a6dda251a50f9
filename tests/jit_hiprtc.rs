//! Every template compiles with the real hipRTC (Debian's ROCm 5.2) for gfx906, gfx90a and
//! gfx1030: each kernel the snapshot models need, and every weight type and head size the
//! templates promise. No kernel spills on gfx90a or gfx1030. Unknown targets are refused before
//! they reach hipRTC, which would abort the process.

mod common;

use std::collections::BTreeSet;

use rocmforge::dtype::GgmlType;
use rocmforge::gguf::GgufFile;
use rocmforge::graph;
use rocmforge::jit::{amd_kernel_resources, Compiler, HipRtc, JitError, Target};
use rocmforge::kernels::{render, KernelSpec};
use rocmforge::model::ModelConfig;
use rocmforge::quant;

const TARGETS: [&str; 3] = ["gfx906", "gfx90a", "gfx1030"];

fn snapshot_specs() -> BTreeSet<KernelSpec> {
    let mut all = BTreeSet::new();
    for d in [common::llama_7b_q4_k_m(), common::qwen2_1_5b_q4_k_m()] {
        all.extend(graph::kernel_specs(&d.config, &d.tensors()).unwrap());
    }
    for file in ["SmolLM2-135M-Instruct.Q4_1.gguf", "gemma-3-270m-q4_k_m.gguf"] {
        if let Some(path) = common::model(file) {
            let f = GgufFile::open(path).unwrap();
            all.extend(graph::kernel_specs(&ModelConfig::from_gguf(&f).unwrap(), &f).unwrap());
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
            all.insert(KernelSpec::Attention { head_dim, gqa, sliding_window, softcap });
        }
    }
    all
}

fn compile_all(rtc: &HipRtc, specs: &BTreeSet<KernelSpec>) {
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
            if t != "gfx906" && r.spills() {
                spills.push(format!("{t} {}: {r:?}", k.entry));
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
fn every_weight_type_and_head_size_compiles() {
    let Some(rtc) = common::hiprtc() else { return };
    compile_all(&rtc, &coverage_specs());
}

#[test]
fn targets_this_hiprtc_would_abort_on_are_refused_cleanly() {
    let Some(rtc) = common::hiprtc() else { return };
    for t in ["gfx940", "gfx942", "gfx1100", "gfx1201", "gfx1234"] {
        let target: Target = t.parse().unwrap();
        let e = rtc.check_target(&target).unwrap_err();
        assert!(matches!(e, JitError::UnsupportedTarget { .. }), "{e}");
        assert!(e.to_string().contains(t), "{e}");
        // compile() checks too, so a caller that skips check_target is still safe.
        let e = rtc.compile("", "k", &target, &[]).unwrap_err();
        assert!(matches!(e, JitError::UnsupportedTarget { .. }));
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
fn compiler_identity_names_the_hip_version() {
    let Some(rtc) = common::hiprtc() else { return };
    let id = rtc.id();
    assert_eq!(id.name, "hiprtc");
    assert!(id.version.contains("HIP "), "{}", id.version);
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
