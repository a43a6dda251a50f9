//! insta snapshots of the rendered source of every distinct kernel that SmolLM2-135M (Q4_1, and
//! the Q3_K_M, Q2_K, Q2_K --pure and IQ4_XS variants of scripts/make_variants.sh), Gemma 3 270M, a 7B llama
//! (Q4_K_M layout) and a qwen2 model (Qwen2-1.5B shape, Q4_K_M) need, rendered for
//! gfx90a (HIP, wave64); plus one NVRTC rendering, and each model's kernel list. A change to a
//! template shows up here as a reviewable diff (`cargo insta review`).

mod common;

use std::collections::BTreeSet;

use rocmforge::gguf::GgufFile;
use rocmforge::jit::Target;
use rocmforge::kernels::{render, KernelSpec};
use rocmforge::model::ModelConfig;

/// (model name, its kernels); real models only when fetched.
fn model_kernel_sets() -> Vec<(String, BTreeSet<KernelSpec>)> {
    let mut sets = Vec::new();
    for d in [common::llama_7b_q4_k_m(), common::qwen2_1_5b_q4_k_m()] {
        sets.push((d.name.to_string(), rocmforge::exec::kernel_specs(&d.config, &d.tensors()).unwrap()));
    }
    for (name, file) in [
        ("smollm2-135m-q4_1", "SmolLM2-135M-Instruct.Q4_1.gguf"),
        ("gemma3-270m-q4_k_m", "gemma-3-270m-q4_k_m.gguf"),
        ("smollm2-135m-q3_k_m", "variants/smol-Q3_K_M.gguf"),
        ("smollm2-135m-q2_k", "variants/smol-Q2_K.gguf"),
        ("smollm2-135m-q2_k-pure", "variants/smol-Q2_K-pure.gguf"),
        ("smollm2-135m-iq4_xs", "variants/smol-IQ4_XS.gguf"),
    ] {
        if let Some(path) = common::model(file) {
            let f = GgufFile::open(path).unwrap();
            let cfg = ModelConfig::from_gguf(&f).unwrap();
            sets.push((name.to_string(), rocmforge::exec::kernel_specs(&cfg, &f).unwrap()));
        }
    }
    sets
}

#[test]
fn each_models_kernel_list_is_stable() {
    for (name, specs) in model_kernel_sets() {
        let list: Vec<String> = specs.iter().map(|s| s.entry_name()).collect();
        insta::assert_snapshot!(format!("kernels_of_{name}"), list.join("\n"));
    }
}

#[test]
fn rendered_sources_are_stable() {
    let target: Target = "gfx90a".parse().unwrap();
    let all: BTreeSet<KernelSpec> = model_kernel_sets().into_iter().flat_map(|(_, s)| s).collect();
    for spec in &all {
        let k = render(spec, target.render_target()).unwrap();
        insta::assert_snapshot!(format!("hip_wave64_{}", k.entry), k.source);
    }
}

#[test]
fn nvrtc_rendering_differs_only_in_prelude_and_warp() {
    let spec = KernelSpec::MatVec { wtype: rocmforge::dtype::GgmlType::Q4_K, k: 4096 };
    let cuda = render(&spec, "sm_90".parse::<Target>().unwrap().render_target()).unwrap();
    insta::assert_snapshot!("cuda_mmv_q4_k_k4096", cuda.source);
    let hip = render(&spec, "gfx1030".parse::<Target>().unwrap().render_target()).unwrap();
    assert!(
        hip.source.contains("constexpr int WARP_SIZE = 32;") && cuda.source.contains("constexpr int WARP_SIZE = 32;")
    );
    let strip = |s: &str| s.lines().filter(|l| !l.contains("prelude") && !l.contains("RF_BACKEND")).count();
    assert!(strip(&hip.source).abs_diff(strip(&cuda.source)) < 12, "the bodies should be the same");
}

#[test]
fn rendering_is_deterministic() {
    let target: Target = "gfx906".parse().unwrap();
    for (_, specs) in model_kernel_sets() {
        for spec in &specs {
            let a = render(spec, target.render_target()).unwrap();
            let b = render(spec, target.render_target()).unwrap();
            assert_eq!(a, b);
            assert!(!a.source.contains("#include"), "{}: rendered sources are self-contained", a.entry);
            assert!(a.source.contains(&format!("#define KERNEL_NAME {}", a.entry)));
        }
    }
}
