//! The kernel cache: keys, bad entries, single flight, unwritable folders (with a counting fake
//! compiler), and many processes or a killed writer sharing one cache (the real CLI and hipRTC).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rocmforge::jit::{CacheKey, Compiler, CompilerId, JitError, KernelCache, Origin, Target};
use rocmforge::kernels::Dialect;

/// Compiles by reversing the source, slowly, counting calls.
struct FakeCompiler {
    id: CompilerId,
    calls: AtomicUsize,
}

impl FakeCompiler {
    fn new() -> FakeCompiler {
        FakeCompiler { id: CompilerId { name: "fake", version: "1.0".into() }, calls: AtomicUsize::new(0) }
    }
}

impl Compiler for FakeCompiler {
    fn id(&self) -> &CompilerId {
        &self.id
    }
    fn dialect(&self) -> Dialect {
        Dialect::Hip
    }
    fn check_target(&self, _: &Target) -> Result<(), JitError> {
        Ok(())
    }
    fn options(&self, _: &Target) -> Vec<String> {
        vec!["-O3".into()]
    }
    fn compile(&self, source: &str, _: &str, _: &Target, _: &[String]) -> Result<Vec<u8>, JitError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(30));
        Ok(source.bytes().rev().collect())
    }
}

fn gfx90a() -> Target {
    "gfx90a".parse().unwrap()
}

fn entry_files(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for sub in std::fs::read_dir(root.join("v1")).into_iter().flatten().flatten() {
        for f in std::fs::read_dir(sub.path()).into_iter().flatten().flatten() {
            out.push(f.path());
        }
    }
    out
}

#[test]
fn any_key_part_changed_gives_a_new_key_and_the_same_inputs_the_same_key() {
    let id = CompilerId { name: "hiprtc", version: "9.0, HIP 5.2.21153".into() };
    let opts = vec!["--offload-arch=gfx90a".to_string(), "-O3".to_string()];
    let base = CacheKey::new(&id, &gfx90a(), &opts, "src");
    assert_eq!(base, CacheKey::new(&id, &gfx90a(), &opts, "src"), "same inputs, same key");
    let reordered = vec![opts[1].clone(), opts[0].clone()];
    assert_eq!(base, CacheKey::new(&id, &gfx90a(), &reordered, "src"), "options are sorted");
    let variants = [
        CacheKey::new(&CompilerId { name: "nvrtc", ..id.clone() }, &gfx90a(), &opts, "src"),
        CacheKey::new(&CompilerId { version: "9.0, HIP 5.2.21154".into(), ..id.clone() }, &gfx90a(), &opts, "src"),
        CacheKey::new(&id, &"gfx90a:xnack-".parse().unwrap(), &opts, "src"),
        CacheKey::new(&id, &gfx90a(), &[opts.clone(), vec!["-ffast-math".into()]].concat(), "src"),
        CacheKey::new(&id, &gfx90a(), &opts[..1], "src"),
        CacheKey::new(&id, &gfx90a(), &opts, "src "),
        // Field boundaries cannot shift: "ab"+"c" is not "a"+"bc".
        CacheKey::new(&id, &gfx90a(), &["-Oa".into(), "b".into()], "src"),
        CacheKey::new(&id, &gfx90a(), &["-O".into(), "ab".into()], "src"),
    ];
    for (i, v) in variants.iter().enumerate() {
        assert_ne!(*v, base, "variant {i}");
    }
    assert_ne!(variants[6], variants[7]);
}

#[test]
fn entries_survive_the_process_and_are_hits_next_time() {
    let root = common::temp_dir("cache-hit");
    let fake = FakeCompiler::new();
    let (code, origin) = KernelCache::open(&root).get_or_compile(&fake, &gfx90a(), "k", "source A").unwrap();
    assert_eq!(origin, Origin::Compiled);
    let cache = KernelCache::open(&root);
    let (again, origin) = cache.get_or_compile(&fake, &gfx90a(), "k", "source A").unwrap();
    assert_eq!((origin, again), (Origin::Disk, code));
    let (_, origin) = cache.get_or_compile(&fake, &gfx90a(), "k", "source A").unwrap();
    assert_eq!(origin, Origin::Memory);
    assert_eq!(fake.calls.load(Ordering::SeqCst), 1);
    assert_eq!(cache.list().len(), 1);
    assert_eq!(cache.list()[0].header.as_ref().unwrap().entry, "k");
}

#[test]
fn a_flipped_byte_a_truncated_entry_or_a_foreign_file_is_recompiled_and_counted() {
    let root = common::temp_dir("cache-bad");
    let fake = FakeCompiler::new();
    KernelCache::open(&root).get_or_compile(&fake, &gfx90a(), "a", "source A").unwrap();
    KernelCache::open(&root).get_or_compile(&fake, &gfx90a(), "b", "source B").unwrap();
    let files = entry_files(&root);
    assert_eq!(files.len(), 2);
    let key_a = CacheKey::new(fake.id(), &gfx90a(), &fake.options(&gfx90a()), "source A");
    let path_a = files.iter().find(|p| p.to_string_lossy().contains(&key_a.hex())).unwrap().clone();
    let path_b = files.iter().find(|p| **p != path_a).unwrap().clone();
    let good = std::fs::read(&path_a).unwrap();

    type Damage = Box<dyn Fn(&mut Vec<u8>)>;
    let damage: [(&str, Damage); 4] = [
        (
            "flipped payload byte",
            Box::new(|b: &mut Vec<u8>| {
                let i = b.len() - 40;
                b[i] ^= 0x01;
            }),
        ),
        ("flipped header byte", Box::new(|b: &mut Vec<u8>| b[20] ^= 0x20)),
        ("truncated", Box::new(|b: &mut Vec<u8>| b.truncate(b.len() / 2))),
        ("emptied", Box::new(|b: &mut Vec<u8>| b.clear())),
    ];
    for (what, f) in damage.iter() {
        let mut bytes = good.clone();
        f(&mut bytes);
        std::fs::write(&path_a, &bytes).unwrap();
        let before = fake.calls.load(Ordering::SeqCst);
        let cache = KernelCache::open(&root);
        let (code, origin) = cache.get_or_compile(&fake, &gfx90a(), "a", "source A").unwrap();
        assert_eq!(origin, Origin::Compiled, "{what}: a bad entry is a miss");
        assert_eq!(code.as_slice(), "source A".bytes().rev().collect::<Vec<_>>().as_slice());
        assert_eq!(fake.calls.load(Ordering::SeqCst), before + 1);
        let bad = cache.stats.replaced_bad.load(Ordering::SeqCst);
        assert_eq!(bad, 1, "{what}: counted");
        assert_eq!(std::fs::read(&path_a).unwrap(), good, "{what}: replaced by a good entry");
    }

    // B's file copied over A's: its header names another key.
    std::fs::copy(&path_b, &path_a).unwrap();
    let cache = KernelCache::open(&root);
    let (_, origin) = cache.get_or_compile(&fake, &gfx90a(), "a", "source A").unwrap();
    assert_eq!((origin, cache.stats.replaced_bad.load(Ordering::SeqCst)), (Origin::Compiled, 1));
}

#[test]
fn each_key_compiles_once_however_many_threads_ask() {
    let cache = Arc::new(KernelCache::memory_only());
    let fake = Arc::new(FakeCompiler::new());
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| cache.get_or_compile(fake.as_ref(), &gfx90a(), "k", "one source").unwrap());
        }
    });
    assert_eq!(fake.calls.load(Ordering::SeqCst), 1);
    assert_eq!(cache.stats.compiled.load(Ordering::SeqCst), 1);
    assert_eq!(cache.stats.memory_hits.load(Ordering::SeqCst), 7);
}

#[test]
fn an_unwritable_cache_folder_degrades_to_memory_with_one_warning() {
    let dir = common::temp_dir("cache-ro");
    let blocker = dir.join("not-a-folder");
    std::fs::write(&blocker, b"a file where the cache root should be").unwrap();
    let cache = KernelCache::open(blocker.join("cache"));
    let fake = FakeCompiler::new();
    for src in ["s1", "s2", "s3"] {
        let (_, origin) = cache.get_or_compile(&fake, &gfx90a(), "k", src).unwrap();
        assert_eq!(origin, Origin::Compiled);
    }
    let (_, origin) = cache.get_or_compile(&fake, &gfx90a(), "k", "s1").unwrap();
    assert_eq!(origin, Origin::Memory, "kept in memory");
    let warnings = cache.warnings();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("not-a-folder") && warnings[0].contains("memory"), "{}", warnings[0]);
}

#[test]
fn a_read_only_cache_folder_still_serves_its_entries() {
    let root = common::temp_dir("cache-readonly");
    let fake = FakeCompiler::new();
    KernelCache::open(&root).get_or_compile(&fake, &gfx90a(), "k", "kept").unwrap();
    let set_mode = |mode: &str| {
        let ok = Command::new("chmod").args(["-R", mode]).arg(&root).status().unwrap().success();
        assert!(ok);
    };
    set_mode("a-w");
    let probe = root.join("probe");
    if std::fs::write(&probe, b"x").is_ok() {
        // Root ignores permissions; the unwritable case is covered by the test above.
        let _ = std::fs::remove_file(&probe);
        set_mode("u+w");
        eprintln!("skipping the read-only half: running as root");
        return;
    }
    let cache = KernelCache::open(&root);
    assert_eq!(cache.get_or_compile(&fake, &gfx90a(), "k", "kept").unwrap().1, Origin::Disk);
    assert_eq!(cache.get_or_compile(&fake, &gfx90a(), "k", "new").unwrap().1, Origin::Compiled);
    assert_eq!(cache.warnings().len(), 1);
    set_mode("u+w");
}

// ---- many processes, and a writer killed mid-write (real CLI, real hipRTC) ----

fn rocmforge(cache: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_rocmforge"));
    c.env("ROCMFORGE_CACHE_DIR", cache);
    c
}

fn tiny_model(dir: &Path) -> PathBuf {
    let path = dir.join("tiny-llama.gguf");
    common::write_tiny_llama(&path);
    path
}

#[test]
fn eight_processes_warming_one_empty_cache_leave_only_entries_that_verify() {
    if common::hiprtc().is_none() {
        return;
    }
    let dir = common::temp_dir("cache-8proc");
    let (model, cache) = (tiny_model(&dir), dir.join("cache"));
    let children: Vec<_> = (0..8)
        .map(|_| {
            rocmforge(&cache)
                .args(["warm", "--target", "gfx906,gfx90a,gfx1030", "--jobs", "1"])
                .arg(&model)
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let verify = rocmforge(&cache).args(["cache", "verify"]).output().unwrap();
    assert!(verify.status.success(), "{}", String::from_utf8_lossy(&verify.stdout));
    let stdout = String::from_utf8_lossy(&verify.stdout);
    let kernels = rocmforge(&cache).arg("kernels").arg(&model).output().unwrap();
    let n_specs = String::from_utf8_lossy(&kernels.stdout).lines().count() - 1;
    assert!(stdout.contains(&format!("{} entries checked", 3 * n_specs)) && stdout.contains(", 0 bad"), "{stdout}");
    let check =
        rocmforge(&cache).args(["warm", "--check", "--target", "gfx906,gfx90a,gfx1030"]).arg(&model).output().unwrap();
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stdout));
}

#[test]
fn a_writer_killed_mid_write_leaves_nothing_a_reader_accepts() {
    if common::hiprtc().is_none() {
        return;
    }
    let dir = common::temp_dir("cache-kill");
    let (model, cache) = (tiny_model(&dir), dir.join("cache"));
    let mut child = rocmforge(&cache)
        .env("ROCMFORGE_CACHE_TEST_STALL_MS", "60000")
        .args(["warm", "--target", "gfx90a", "--jobs", "1"])
        .arg(&model)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let tmp = loop {
        if let Some(t) = entry_files(&cache).into_iter().find(|p| p.extension().is_some_and(|e| e == "tmp")) {
            break t;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "the writer never started an entry");
        std::thread::sleep(Duration::from_millis(20));
    };
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(tmp.exists() && std::fs::metadata(&tmp).unwrap().len() > 0, "half an entry was on disk when killed");
    assert!(
        entry_files(&cache).iter().all(|p| p.extension().is_some_and(|e| e == "tmp")),
        "no entry was renamed into place"
    );

    let verify = rocmforge(&cache).args(["cache", "verify"]).output().unwrap();
    assert!(verify.status.success() && String::from_utf8_lossy(&verify.stdout).contains("0 entries checked"));
    let check = rocmforge(&cache).args(["warm", "--check", "--target", "gfx90a"]).arg(&model).output().unwrap();
    assert!(!check.status.success(), "the half-written kernel is missing, not accepted");
    let rewarm = rocmforge(&cache).args(["warm", "--target", "gfx90a"]).arg(&model).output().unwrap();
    assert!(rewarm.status.success(), "{}", String::from_utf8_lossy(&rewarm.stderr));
    let check = rocmforge(&cache).args(["warm", "--check", "--target", "gfx90a"]).arg(&model).output().unwrap();
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stdout));
}

#[test]
fn a_second_warm_compiles_nothing() {
    if common::hiprtc().is_none() {
        return;
    }
    let dir = common::temp_dir("cache-rewarm");
    let (model, cache) = (tiny_model(&dir), dir.join("cache"));
    let first = rocmforge(&cache).args(["warm", "--target", "gfx906,gfx1030"]).arg(&model).output().unwrap();
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    let second = rocmforge(&cache).args(["warm", "--target", "gfx906,gfx1030"]).arg(&model).output().unwrap();
    let out = String::from_utf8_lossy(&second.stdout);
    assert!(second.status.success() && out.contains(": 0 compiled"), "{out}");
}

#[test]
fn gc_keeps_the_newest_entries_under_the_limit_and_clear_empties_the_cache() {
    let root = common::temp_dir("cache-gc");
    let fake = FakeCompiler::new();
    let cache = KernelCache::open(&root);
    for i in 0..5 {
        cache.get_or_compile(&fake, &gfx90a(), "k", &format!("source number {i} {}", "x".repeat(1000))).unwrap();
        std::thread::sleep(Duration::from_millis(20)); // distinct modification times
    }
    let sizes: Vec<u64> = cache.list().iter().map(|e| e.bytes).collect();
    assert_eq!(sizes.len(), 5);
    let one = sizes[0];
    // A bad entry goes whatever the limit.
    let victim = cache.list()[0].path.clone();
    std::fs::write(&victim, b"garbage").unwrap();
    let (removed, _) = cache.gc(2 * one + one / 2).unwrap();
    assert_eq!(removed, 1 + 2, "the bad entry, then the two oldest of the four good ones");
    let left = cache.list();
    assert_eq!(left.len(), 2);
    assert!(left.iter().all(|e| e.header.is_ok()));
    let (removed, _) = cache.clear().unwrap();
    assert_eq!((removed, cache.list().len()), (2, 0));
}
