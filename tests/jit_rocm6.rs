//! The reference models' kernels through the CLI (`rocmforge warm --report`, then `warm --check`)
//! under both ROCm toolchains CI has: Debian 12's ROCm 5.2 hipRTC on the host (gfx906, gfx90a,
//! gfx1030) and Debian sid's ROCm 6.4 hipRTC in the root `scripts/rocm6_root.sh` builds (gfx942,
//! gfx950, gfx1100, gfx1101, gfx1151, gfx1200, gfx1201), run there with chroot. Every kernel
//! compiles with 0 spills and 0 scratch bytes (read from the code object's metadata), the two
//! toolchains' cache entries never mix, and targets the loaded hipRTC cannot take exit 1.
//!
//! The sid root needs root privileges (chroot, mount). Without it these tests skip with a note,
//! unless `ROCMFORGE_REQUIRE_HIPRTC=1` (scripts/test.sh sets it), where a missing root fails.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The modern targets ROCm 6.4 compiles for.
const ROCM6_TARGETS: &str = "gfx942,gfx950,gfx1100,gfx1101,gfx1151,gfx1200,gfx1201";
/// Today's targets on ROCm 5.2.
const ROCM5_TARGETS: &str = "gfx906,gfx90a,gfx1030";
/// The reference models, relative to the model cache.
/// The reference models, and the SmolLM2 variants whose matrices are the newer formats (Q3_K in
/// smol-Q2_K's ffn_down, Q2_K in smol-Q2_K-pure's, IQ4_XS and IQ4_NL in smol-IQ4_XS).
const MODELS: [&str; 6] = [
    "variants/smol-Q4_K_M.gguf",
    "SmolLM2-135M-Instruct.Q4_1.gguf",
    "gemma-3-270m-q4_k_m.gguf",
    "variants/smol-Q2_K.gguf",
    "variants/smol-Q2_K-pure.gguf",
    "variants/smol-IQ4_XS.gguf",
];

fn required() -> bool {
    std::env::var("ROCMFORGE_REQUIRE_HIPRTC").as_deref() == Ok("1")
}

/// Where a command runs: on the host, or inside the sid root (paths given as seen from inside).
enum Toolchain {
    Host,
    Root(PathBuf),
}

/// A folder both toolchains see, with the rocmforge binary and the models in it; removed on drop.
struct Stage {
    toolchain: Toolchain,
    /// The folder as the host sees it.
    host: PathBuf,
    /// The same folder as the command sees it.
    inside: PathBuf,
    /// Whether dropping this removes the folder (a host view of a root's stage does not).
    owned: bool,
}

impl Drop for Stage {
    fn drop(&mut self) {
        if self.owned {
            let _ = std::fs::remove_dir_all(&self.host);
        }
    }
}

/// Hard-links `from` to `to` (same filesystem), else copies it.
fn link_or_copy(from: &Path, to: &Path) {
    if std::fs::hard_link(from, to).is_err() {
        std::fs::copy(from, to).unwrap_or_else(|e| panic!("copying {} to {}: {e}", from.display(), to.display()));
    }
}

fn is_root_user() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(1) == Some("0")))
        .unwrap_or(false)
}

/// The sid root with ROCm 6.4, ready and with /proc mounted, or `None` (with a note).
fn rocm6_root() -> Option<PathBuf> {
    let root = std::env::var_os("ROCMFORGE_ROCM6_ROOT").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/rocmforge/rocm6-root")
    });
    let why = if !root.join(".rocmforge-rocm6-ready").exists() {
        Some(format!("no ROCm 6.4 root at {} (run scripts/rocm6_root.sh)", root.display()))
    } else if !is_root_user() {
        Some("running rocmforge in the ROCm 6.4 root needs root (chroot)".to_string())
    } else {
        None
    };
    if let Some(why) = why {
        assert!(!required(), "{why}; ROCMFORGE_REQUIRE_HIPRTC=1 makes this a failure");
        eprintln!("skipping: {why}");
        return None;
    }
    // warm's worker processes re-run /proc/self/exe: the root needs its own /proc.
    static MOUNT: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _once = MOUNT.lock().unwrap_or_else(|p| p.into_inner());
    if !root.join("proc/self/exe").exists() {
        let status = Command::new("mount").args(["-t", "proc", "proc"]).arg(root.join("proc")).status().unwrap();
        assert!(status.success(), "mounting /proc in {}", root.display());
    }
    Some(root)
}

impl Stage {
    fn new(toolchain: Toolchain, tag: &str) -> Stage {
        let name = format!("rocmforge-test-{tag}-{}", std::process::id());
        let (host, inside) = match &toolchain {
            Toolchain::Host => (std::env::temp_dir().join(&name), std::env::temp_dir().join(&name)),
            Toolchain::Root(root) => (root.join("opt").join(&name), PathBuf::from("/opt").join(&name)),
        };
        let _ = std::fs::remove_dir_all(&host);
        std::fs::create_dir_all(host.join("models")).unwrap();
        link_or_copy(Path::new(env!("CARGO_BIN_EXE_rocmforge")), &host.join("rocmforge"));
        Stage { toolchain, host, inside, owned: true }
    }

    /// The same folder, seen from the host (for a stage inside the root).
    fn host_view(&self) -> Stage {
        Stage { toolchain: Toolchain::Host, host: self.host.clone(), inside: self.host.clone(), owned: false }
    }

    /// Puts a model where the command sees it; returns its path as the command sees it.
    fn model(&self, path: &Path) -> PathBuf {
        let name = path.file_name().unwrap();
        link_or_copy(path, &self.host.join("models").join(name));
        self.inside.join("models").join(name)
    }

    /// Runs `rocmforge ARGS` with the cache in the stage; (exit code, stdout, stderr).
    fn rocmforge(&self, args: &[&str]) -> (Option<i32>, String, String) {
        let exe = self.inside.join("rocmforge");
        let mut cmd = match &self.toolchain {
            Toolchain::Host => Command::new(&exe),
            Toolchain::Root(root) => {
                let mut c = Command::new("chroot");
                c.arg(root).arg(&exe);
                c
            }
        };
        let out = cmd.args(args).env("ROCMFORGE_CACHE_DIR", self.inside.join("cache")).output().unwrap();
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        (out.status.code(), text(&out.stdout), text(&out.stderr))
    }
}

/// One row of `warm --report`.
#[derive(Debug)]
struct Row {
    target: String,
    kernel: String,
    scratch: u64,
    spills: u64,
}

/// The rows of `warm --report` whose target is one of `targets`.
fn report_rows(stdout: &str, targets: &[&str]) -> Vec<Row> {
    stdout
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() != 8 || !targets.contains(&f[0]) {
                return None;
            }
            Some(Row {
                target: f[0].into(),
                kernel: f[1].into(),
                scratch: f[6].parse().ok()?,
                spills: f[7].parse().ok()?,
            })
        })
        .collect()
}

/// Warms every reference model for `targets` with `--report`, asserts every kernel compiled with
/// 0 spills and 0 scratch, then `warm --check` exits 0.
fn warm_reference_models(stage: &Stage, targets: &str) {
    let list: Vec<&str> = targets.split(',').collect();
    for m in MODELS {
        let Some(path) = common::model(m) else { continue };
        let model = stage.model(&path);
        let model = model.to_str().unwrap();
        let start = std::time::Instant::now();
        let (code, out, err) = stage.rocmforge(&["warm", model, "--target", targets, "--report"]);
        assert_eq!(code, Some(0), "{m} for {targets}:\n{out}\n{err}");
        let summary = out.lines().find(|l| l.contains(" kernels: ")).unwrap_or_default().to_string();
        let total: usize = summary.split_whitespace().next().and_then(|n| n.parse().ok()).expect("a summary line");
        let rows = report_rows(&out, &list);
        assert_eq!(rows.len(), total, "one report row per kernel:\n{out}");
        assert_eq!(total % list.len(), 0);
        for t in &list {
            assert_eq!(rows.iter().filter(|r| r.target == *t).count(), total / list.len(), "{t}");
        }
        let bad: Vec<String> = rows
            .iter()
            .filter(|r| r.scratch != 0 || r.spills != 0)
            .map(|r| format!("{} {}: {} scratch bytes, {} spills", r.target, r.kernel, r.scratch, r.spills))
            .collect();
        println!(
            "{m}: {total} kernels ({} per target) for {targets} in {:.1} s; {} with spills or scratch",
            total / list.len(),
            start.elapsed().as_secs_f64(),
            bad.len()
        );
        assert!(bad.is_empty(), "kernels with spills or scratch:\n{}", bad.join("\n"));
        let (code, out, err) = stage.rocmforge(&["warm", model, "--target", targets, "--check"]);
        assert_eq!(code, Some(0), "warm --check after the warm: {out}{err}");
    }
}

/// The code objects in a stage's kernel cache (each entry's payload, from its ELF magic on).
fn cached_code_objects(stage: &Stage) -> Vec<Vec<u8>> {
    fn walk(dir: &Path, out: &mut Vec<Vec<u8>>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if let Ok(b) = std::fs::read(&p) {
                if let Some(at) = b.windows(4).position(|w| w == b"\x7fELF") {
                    out.push(b[at..].to_vec());
                }
            }
        }
    }
    let mut out = Vec::new();
    walk(&stage.host.join("cache"), &mut out);
    out
}

/// The prefill's int8 products (`mmq_*`) in the stage's cache run on the matrix units: every
/// code object for a processor in `matrix` holds MFMA or WMMA int8 instructions, every one for a
/// processor in `plain` (no matrix unit: the int8-dot tile) none. Prints the counts.
fn prefill_products_use_the_matrix_units(stage: &Stage, matrix: &[&str], plain: &[&str]) {
    let mut seen: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for elf in cached_code_objects(stage) {
        let Ok(res) = rocmforge::jit::amd_kernel_resources(&elf) else { continue };
        let Some(name) = res.iter().map(|r| r.name.clone()).find(|n| n.starts_with("mmq_")) else { continue };
        let (processor, count) = rocmforge::jit::amd_int8_matrix_instructions(&elf).expect("a readable code object");
        println!("{processor} {name}: {count} int8 matrix instructions");
        if matrix.contains(&processor.as_str()) {
            assert!(count > 0, "{processor} {name}: no MFMA/WMMA int8 instruction");
        } else if plain.contains(&processor.as_str()) {
            assert_eq!(count, 0, "{processor} {name}: a target without a matrix unit");
        }
        seen.entry(processor).or_default().push(name);
    }
    for p in matrix.iter().chain(plain) {
        assert!(seen.get(*p).is_some_and(|v| !v.is_empty()), "no mmq kernel compiled for {p}: {seen:?}");
    }
}

/// The f16 products of prefill in the stage's cache, the kernels named `prefix*` (flash
/// attention's `flash_attn_`, the f16 GEMM's `gemm_f16_`), run on the matrix units: every code
/// object for a processor in `matrix` holds f16 MFMA or WMMA instructions, every one for a
/// processor in `plain` (no matrix unit: the f32 or FMA kernel) none. Prints the counts.
fn f16_products_use_the_matrix_units(stage: &Stage, prefix: &str, matrix: &[&str], plain: &[&str]) {
    let mut seen: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for elf in cached_code_objects(stage) {
        let Ok(res) = rocmforge::jit::amd_kernel_resources(&elf) else { continue };
        let Some(name) = res.iter().map(|r| r.name.clone()).find(|n| n.starts_with(prefix)) else { continue };
        let (processor, count) = rocmforge::jit::amd_f16_matrix_instructions(&elf).expect("a readable code object");
        println!("{processor} {name}: {count} f16 matrix instructions");
        if matrix.contains(&processor.as_str()) {
            assert!(count > 0, "{processor} {name}: no f16 MFMA/WMMA instruction");
        } else if plain.contains(&processor.as_str()) {
            assert_eq!(count, 0, "{processor} {name}: a target without a matrix unit");
        }
        seen.entry(processor).or_default().push(name);
    }
    for p in matrix.iter().chain(plain) {
        assert!(seen.get(*p).is_some_and(|v| !v.is_empty()), "no {prefix}* kernel compiled for {p}: {seen:?}");
    }
}

#[test]
fn rocm_6_4_compiles_every_reference_kernel_for_the_modern_targets_without_spills() {
    let Some(root) = rocm6_root() else { return };
    let stage = Stage::new(Toolchain::Root(root), "rocm6");
    warm_reference_models(&stage, ROCM6_TARGETS);
    let matrix: Vec<&str> = ROCM6_TARGETS.split(',').collect();
    prefill_products_use_the_matrix_units(&stage.host_view(), &matrix, &[]);
    f16_products_use_the_matrix_units(&stage.host_view(), "flash_attn_", &matrix, &[]);
    f16_products_use_the_matrix_units(&stage.host_view(), "gemm_f16_", &matrix, &[]);
}

#[test]
fn rocm_5_2_compiles_every_reference_kernel_for_its_targets_without_spills() {
    if common::hiprtc().is_none() {
        return;
    }
    let stage = Stage::new(Toolchain::Host, "rocm5");
    warm_reference_models(&stage, ROCM5_TARGETS);
    prefill_products_use_the_matrix_units(&stage, &["gfx90a"], &["gfx906", "gfx1030"]);
    f16_products_use_the_matrix_units(&stage, "flash_attn_", &["gfx90a"], &["gfx906", "gfx1030"]);
    f16_products_use_the_matrix_units(&stage, "gemm_f16_", &["gfx90a"], &["gfx906", "gfx1030"]);
}

#[test]
fn the_two_toolchains_never_share_cache_entries() {
    let Some(root) = rocm6_root() else { return };
    if common::hiprtc().is_none() {
        return;
    }
    let Some(path) = common::model("SmolLM2-135M-Instruct.Q4_1.gguf") else { return };
    // One cache folder, inside the root so that both toolchains see it.
    let sid = Stage::new(Toolchain::Root(root), "mix");
    let host = sid.host_view();
    let model_inside = sid.model(&path);
    let model_inside = model_inside.to_str().unwrap();
    let model_host = host.host.join("models").join(path.file_name().unwrap());
    let model_host = model_host.to_str().unwrap();

    // The kernels warm compiles for the model (the fused int8 decode's included, and the f32 KV cache's).
    let n = common::kernels_warmed(&path);
    let (code, out, err) = host.rocmforge(&["warm", model_host, "--target", "gfx90a"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains(&format!("{n} kernels: {n} compiled")), "{out}");
    // The same kernels, source and target: none of ROCm 5.2's entries is ROCm 6.4's.
    let (code, out, _) = sid.rocmforge(&["warm", model_inside, "--target", "gfx90a", "--check"]);
    assert_eq!(code, Some(1), "ROCm 6.4 must not see ROCm 5.2's entries: {out}");
    assert!(out.contains(&format!("{n} of {n} kernels are missing")), "{out}");
    let (code, out, err) = sid.rocmforge(&["warm", model_inside, "--target", "gfx90a"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains(&format!("{n} kernels: {n} compiled")), "{out}");
    // Both sets stay, each found by its own toolchain.
    let (code, _, _) = host.rocmforge(&["warm", model_host, "--target", "gfx90a", "--check"]);
    assert_eq!(code, Some(0));
    let (code, out, _) = host.rocmforge(&["cache", "ls"]);
    assert_eq!(code, Some(0));
    assert!(out.starts_with(&format!("{} entries", 2 * n)), "{out}");
    let compilers: std::collections::BTreeSet<&str> =
        out.lines().skip(1).filter_map(|l| l.split_once("hiprtc (").map(|(_, c)| c)).collect();
    assert_eq!(compilers.len(), 2, "two compiler identities: {compilers:#?}");
    assert!(compilers.iter().any(|c| c.contains("HIP 5.2.") && c.contains("libamd_comgr.so.2")), "{compilers:#?}");
    assert!(compilers.iter().any(|c| c.contains("HIP 6.4.") && c.contains("libamd_comgr.so.3")), "{compilers:#?}");
    assert!(compilers.iter().all(|c| c.contains("libLLVM")), "the LLVM that generates code is named: {compilers:#?}");
}

#[test]
fn targets_rocm_6_4_cannot_take_exit_one_inside_the_root() {
    let Some(root) = rocm6_root() else { return };
    let Some(path) = common::model("SmolLM2-135M-Instruct.Q4_1.gguf") else { return };
    let stage = Stage::new(Toolchain::Root(root), "refuse6");
    let model = stage.model(&path);
    let model = model.to_str().unwrap();
    for (target, says) in [
        ("gfx1030:xnack+", "gfx1030 has no xnack"),
        ("gfx940", "gfx940 was dropped after HIP 6.3"),
        ("gfx941", "gfx941 was dropped after HIP 6.3"),
        ("gfx1153", "gfx1153 needs HIP 7.0"),
        ("gfx1250", "gfx1250 is not an AMD processor rocmforge knows"),
        ("sm_90", "NVRTC"),
    ] {
        let (code, out, err) = stage.rocmforge(&["warm", model, "--target", target]);
        println!("{target}: exit {code:?}: {}", err.trim());
        assert_eq!(code, Some(1), "{target}: a clean refusal, not an abort:\n{out}{err}");
        assert!(err.contains(says), "{target}: {err}");
    }
    assert!(
        !stage.host.join("cache").exists()
            || std::fs::read_dir(stage.host.join("cache/v1")).map(|d| d.count()).unwrap_or(0) == 0,
        "nothing was compiled"
    );
}

/// A kernel that uses what the capability table says each processor has: the int8 dot through
/// the prelude's `rf_dot4_i8` (which picks sdot4 / sudot4 / the fallback by the RF_DOT_I8_*
/// defines) and the matrix unit's builtin chosen by RF_MATRIX_MFMA / RF_MATRIX_WMMA.
const CAPS_PROBE: &str = r#"
typedef float rf_f4 __attribute__((ext_vector_type(4)));
typedef float rf_f8 __attribute__((ext_vector_type(8)));
typedef _Float16 rf_h8 __attribute__((ext_vector_type(8)));
typedef _Float16 rf_h16 __attribute__((ext_vector_type(16)));
extern "C" __global__ void caps_probe(int* x, float* f, _Float16* h) {
    const int i = threadIdx.x;
    x[i] = rf_dot4_i8(x[i + 64], x[i + 128], x[0]);
#if RF_MATRIX_MFMA
    rf_f4* acc = (rf_f4*)f;
    acc[i] = __builtin_amdgcn_mfma_f32_16x16x4f32(f[256 + i], f[320 + i], acc[i], 0, 0, 0);
#elif RF_MATRIX_WMMA == 3
    rf_f8* acc = (rf_f8*)f;
    acc[i] = __builtin_amdgcn_wmma_f32_16x16x16_f16_w32(((rf_h16*)h)[i], ((rf_h16*)h)[i + 32], acc[i]);
#elif RF_MATRIX_WMMA == 4
    rf_f8* acc = (rf_f8*)f;
    acc[i] = __builtin_amdgcn_wmma_f32_16x16x16_f16_w32_gfx12(((rf_h8*)h)[i], ((rf_h8*)h)[i + 32], acc[i]);
#endif
}
"#;

/// Compiles [`CAPS_PROBE`], with the hipRTC this process loads, for every processor of the
/// table that hipRTC takes, and prints them. The test below runs it under each toolchain.
#[test]
#[ignore = "a helper: each_processor_s_capabilities_compile_under_both_toolchains runs it on the host and in the ROCm 6.4 root"]
fn helper_compile_the_capability_probe() {
    use rocmforge::jit::{Compiler, HipRtc, Target, AMD_PROCESSORS};
    use rocmforge::kernels::{render, KernelSpec};
    let rtc = HipRtc::load().expect("hipRTC");
    let mut probed = Vec::new();
    for p in AMD_PROCESSORS {
        let target: Target = p.name.parse().unwrap();
        if rtc.check_target(&target).is_err() {
            continue;
        }
        let source = render(&KernelSpec::Argmax, target.render_target()).unwrap().source + CAPS_PROBE;
        rtc.compile(&source, "caps_probe", &target, &rtc.options(&target))
            .unwrap_or_else(|e| panic!("{} ({:?}, {:?}): {e}", p.name, p.dot_i8, p.matrix));
        probed.push(p.name);
    }
    println!("{}", rtc.id());
    println!("probed: {}", probed.join(" "));
}

#[test]
fn each_processor_s_capabilities_compile_under_both_toolchains() {
    let run = |cmd: &mut Command| {
        let out = cmd
            .args(["--ignored", "--exact", "helper_compile_the_capability_probe", "--nocapture", "--test-threads=1"])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
        let probed = stdout.lines().find_map(|l| l.strip_prefix("probed: ")).expect("a probed line").to_string();
        println!("{probed}");
        probed.split(' ').map(str::to_string).collect::<Vec<_>>()
    };
    let exe = std::env::current_exe().unwrap();
    if common::hiprtc().is_some() {
        let probed = run(&mut Command::new(&exe));
        for t in ROCM5_TARGETS.split(',') {
            assert!(probed.iter().any(|p| p == t), "{t} probed on the host");
        }
    }
    let Some(root) = rocm6_root() else { return };
    let stage = Stage::new(Toolchain::Root(root.clone()), "caps");
    link_or_copy(&exe, &stage.host.join("probe"));
    let probed = run(Command::new("chroot").arg(&root).arg(stage.inside.join("probe")));
    for t in ROCM6_TARGETS.split(',').chain(ROCM5_TARGETS.split(',')) {
        assert!(probed.iter().any(|p| p == t), "{t} probed with ROCm 6.4");
    }
}
