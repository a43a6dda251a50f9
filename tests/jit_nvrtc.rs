//! NVRTC compiles every template for sm_90 (run on the device machine: scripts/gpu_tests.sh).

mod common;

use std::collections::BTreeSet;

use rocmforge::jit::{Compiler, Nvrtc, Target};
use rocmforge::kernels::{render, KernelSpec, KvPrecision};
use rocmforge::quant;

#[test]
#[ignore = "needs a GPU machine's CUDA toolkit (NVRTC): run by scripts/gpu_tests.sh on the device"]
fn every_template_compiles_with_nvrtc_for_sm_90() {
    let nvrtc = Nvrtc::load().expect("NVRTC");
    let target: Target = "sm_90".parse().unwrap();
    nvrtc.check_target(&target).expect("sm_90 is supported");
    let mut specs = BTreeSet::new();
    for d in [common::llama_7b_q4_k_m(), common::qwen2_1_5b_q4_k_m()] {
        specs.extend(rocmforge::exec::kernel_specs(&d.config, &d.tensors()).unwrap());
    }
    for &wtype in quant::SUPPORTED {
        specs.insert(KernelSpec::MatVec { wtype, k: 512 });
        specs.insert(KernelSpec::MatMul { wtype, k: 512 });
        specs.insert(KernelSpec::Embedding { wtype, n_embd: 512 });
    }
    for head_dim in [64, 80, 96, 128, 256] {
        for kv in [KvPrecision::F16, KvPrecision::F32] {
            specs.insert(KernelSpec::Attention { head_dim, gqa: 4, sliding_window: true, softcap: true, kv });
            for gqa in [1, 3, 4, 6, 8] {
                specs.insert(KernelSpec::AttnDecode { head_dim, gqa, sliding_window: true, softcap: true, kv });
            }
            specs.insert(KernelSpec::KvAppend { kv });
        }
    }
    specs.extend(common::fused_coverage_specs());
    // The prefill's tiled kernels: mma.sync int8 products of every int8 type at each K step, and
    // flash attention at every head size and flag.
    for &wtype in quant::SUPPORTED.iter().filter(|t| rocmforge::kernels::int8_matvec_type(**t)) {
        for k in [576, 1536, 11008].into_iter().filter(|k| k % wtype.block_elems() as u32 == 0) {
            specs.extend(KernelSpec::MatMul { wtype, k }.int8_prefill().map(|(_, m)| m));
        }
    }
    for head_dim in [64, 80, 96, 128, 256] {
        for (gqa, sliding_window, softcap) in [(1, false, false), (4, true, true)] {
            specs.insert(KernelSpec::FlashAttn { head_dim, gqa, sliding_window, softcap });
        }
    }
    let start = std::time::Instant::now();
    for spec in &specs {
        let k = render(spec, target.render_target()).unwrap();
        let cubin =
            nvrtc.compile(&k.source, &k.entry, &target, &nvrtc.options(&target)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(&cubin[..4], b"\x7fELF", "{}: NVRTC returns a CUBIN (ELF)", k.entry);
    }
    println!(
        "{} kernels compiled with {} for sm_90 in {:.2} s",
        specs.len(),
        nvrtc.id(),
        start.elapsed().as_secs_f64()
    );
}
