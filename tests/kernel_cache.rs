//! The kernel cache: keys, bad entries, single flight, unwritable folders (with a counting fake
//! compiler whose output is a minimal code object), and the attacks of issue 12 written as what
//! they are: forged entries, planted symlinks, FIFOs and devices at entry paths, huge entries,
//! folders of other users, gc and clear racing, tampered bundles; then many processes warming,
//! collecting and clearing one cache at once (the real CLI and hipRTC).

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rocmforge::jit::{
    encode_entry, minimal_code_object, parse_entry, CacheKey, Compiler, CompilerId, JitError, KernelCache, Origin,
    Target, SCHEMA,
};
use rocmforge::kernels::Dialect;

/// "Compiles" to a minimal code object for the target defining the entry point, with the source
/// reversed after it (so that each source gives its own bytes), slowly, counting calls.
struct FakeCompiler {
    id: CompilerId,
    calls: AtomicUsize,
}

impl FakeCompiler {
    fn new() -> FakeCompiler {
        FakeCompiler { id: CompilerId { name: "fake", version: "1.0".into() }, calls: AtomicUsize::new(0) }
    }
}

fn fake_code(source: &str, entry: &str, target: &Target) -> Vec<u8> {
    let mut code = minimal_code_object(target, entry);
    code.extend(source.bytes().rev());
    code
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
    fn compile(&self, source: &str, entry: &str, target: &Target, _: &[String]) -> Result<Vec<u8>, JitError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(30));
        Ok(fake_code(source, entry, target))
    }
}

fn gfx90a() -> Target {
    "gfx90a".parse().unwrap()
}

fn open(root: &Path) -> KernelCache {
    KernelCache::open(root).expect("a private cache folder opens")
}

fn schema_dir(root: &Path) -> PathBuf {
    root.join(format!("v{SCHEMA}"))
}

fn entry_files(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for sub in std::fs::read_dir(schema_dir(root)).into_iter().flatten().flatten() {
        for f in std::fs::read_dir(sub.path()).into_iter().flatten().flatten() {
            out.push(f.path());
        }
    }
    out.sort();
    out
}

fn key_of(fake: &FakeCompiler, target: &Target, source: &str) -> CacheKey {
    CacheKey::new(fake.id(), target, &fake.options(target), source)
}

/// Runs `f` on another thread; fails the test if it does not return within `secs` (a hang).
fn within<T: Send + 'static>(secs: u64, what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(f()));
    rx.recv_timeout(Duration::from_secs(secs)).unwrap_or_else(|_| panic!("{what} hung for {secs} s"))
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
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
    let (code, origin) = open(&root).get_or_compile(&fake, &gfx90a(), "k", "source A").unwrap();
    assert_eq!(origin, Origin::Compiled);
    let cache = open(&root);
    let (again, origin) = cache.get_or_compile(&fake, &gfx90a(), "k", "source A").unwrap();
    assert_eq!((origin, again), (Origin::Disk, code));
    let (_, origin) = cache.get_or_compile(&fake, &gfx90a(), "k", "source A").unwrap();
    assert_eq!(origin, Origin::Memory);
    assert_eq!(fake.calls.load(Ordering::SeqCst), 1);
    assert_eq!(cache.list().len(), 1);
    assert_eq!(cache.list()[0].header.as_ref().unwrap().entry, "k");
}

#[test]
fn the_cache_root_and_its_folders_are_created_private() {
    let dir = common::temp_dir("cache-mode");
    let root = dir.join("a").join("kernels");
    open(&root).get_or_compile(&FakeCompiler::new(), &gfx90a(), "k", "s").unwrap();
    for d in [root.clone(), schema_dir(&root)] {
        let mode = std::fs::metadata(&d).unwrap().permissions().mode() & 0o777;
        println!("{}: mode {mode:03o}", d.display());
        assert_eq!(mode, 0o700, "{}", d.display());
    }
    let file = &entry_files(&root)[0];
    assert_eq!(std::fs::metadata(file).unwrap().permissions().mode() & 0o077, 0, "entries are private too");
}

/// Rewrites the entry of `victim_key` with a header and payload of our choosing, correctly
/// hashed: what someone able to write the cache folder can do.
fn resign(path: &Path, edit: impl FnOnce(&mut rocmforge::jit::EntryHeader, &mut Vec<u8>)) {
    let bytes = std::fs::read(path).unwrap();
    let (mut header, payload) = parse_entry(&bytes).unwrap();
    let mut payload = payload.to_vec();
    edit(&mut header, &mut payload);
    header.payload_len = payload.len() as u64;
    std::fs::write(path, encode_entry(&header, &payload)).unwrap();
}

#[test]
fn a_flipped_byte_a_truncated_entry_a_foreign_file_or_a_forged_entry_is_recompiled_and_counted() {
    let root = common::temp_dir("cache-bad");
    let fake = FakeCompiler::new();
    let gfx906: Target = "gfx906".parse().unwrap();
    open(&root).get_or_compile(&fake, &gfx90a(), "a", "source A").unwrap();
    open(&root).get_or_compile(&fake, &gfx90a(), "b", "source B").unwrap();
    open(&root).get_or_compile(&fake, &gfx906, "a", "source A").unwrap();
    let path_of = |t: &Target, src: &str| {
        let hex = key_of(&fake, t, src).hex();
        entry_files(&root).into_iter().find(|p| p.to_string_lossy().contains(&hex)).unwrap()
    };
    let path_a = path_of(&gfx90a(), "source A");
    let path_b = path_of(&gfx90a(), "source B");
    let path_a906 = path_of(&gfx906, "source A");
    let good = std::fs::read(&path_a).unwrap();
    let other_kernel = parse_entry(&std::fs::read(&path_b).unwrap()).unwrap().1.to_vec();
    let other_target = parse_entry(&std::fs::read(&path_a906).unwrap()).unwrap().1.to_vec();

    type Damage = Box<dyn Fn(&Path)>;
    let damage: Vec<(&str, Damage)> = vec![
        (
            "flipped payload byte",
            Box::new(|p: &Path| {
                let mut b = std::fs::read(p).unwrap();
                let i = b.len() - 40;
                b[i] ^= 0x01;
                std::fs::write(p, b).unwrap();
            }),
        ),
        (
            "flipped header byte",
            Box::new(|p: &Path| {
                let mut b = std::fs::read(p).unwrap();
                b[20] ^= 0x20;
                std::fs::write(p, b).unwrap();
            }),
        ),
        (
            "truncated",
            Box::new(|p: &Path| {
                let b = std::fs::read(p).unwrap();
                std::fs::write(p, &b[..b.len() / 2]).unwrap();
            }),
        ),
        ("emptied", Box::new(|p: &Path| std::fs::write(p, b"").unwrap())),
        // Forged: valid hash, right key, another kernel's code for the same target.
        ("another kernel's payload", Box::new(move |p: &Path| resign(p, |_, pl| *pl = other_kernel.clone()))),
        // Forged: valid hash, right key, the same kernel compiled for another target.
        ("another target's payload", Box::new(move |p: &Path| resign(p, |_, pl| *pl = other_target.clone()))),
        // Forged: the header claims another entry point (and the payload defines none of it).
        ("header names another entry", Box::new(|p: &Path| resign(p, |h, _| h.entry = "b".into()))),
        ("header names another target", Box::new(|p: &Path| resign(p, |h, _| h.target = "gfx906".into()))),
        ("header names another compiler", Box::new(|p: &Path| resign(p, |h, _| h.compiler = "fake (2.0)".into()))),
        ("payload is not ELF", Box::new(|p: &Path| resign(p, |_, pl| *pl = b"#!/bin/sh\necho pwned\n".to_vec()))),
    ];
    for (what, f) in damage.iter() {
        std::fs::write(&path_a, &good).unwrap();
        f(&path_a);
        let verify = open(&root).list();
        let bad: Vec<_> = verify.iter().filter(|e| e.header.is_err()).collect();
        println!("{what}: verify says {:?}", bad.iter().map(|e| e.header.as_ref().unwrap_err()).collect::<Vec<_>>());
        assert_eq!(bad.len(), 1, "{what}: verify reports the one bad entry");
        let before = fake.calls.load(Ordering::SeqCst);
        let cache = open(&root);
        assert!(!cache.has_valid_entry(&fake, &gfx90a(), "a", "source A"), "{what}: warm --check calls it missing");
        let (code, origin) = cache.get_or_compile(&fake, &gfx90a(), "a", "source A").unwrap();
        assert_eq!(origin, Origin::Compiled, "{what}: a bad entry is a miss");
        assert_eq!(code.as_slice(), fake_code("source A", "a", &gfx90a()).as_slice());
        assert_eq!(fake.calls.load(Ordering::SeqCst), before + 1);
        assert_eq!(cache.stats.replaced_bad.load(Ordering::SeqCst), 1, "{what}: counted");
        assert_eq!(std::fs::read(&path_a).unwrap(), good, "{what}: replaced by a good entry");
    }

    // B's file copied over A's: its header names another key.
    std::fs::copy(&path_b, &path_a).unwrap();
    let cache = open(&root);
    let (_, origin) = cache.get_or_compile(&fake, &gfx90a(), "a", "source A").unwrap();
    assert_eq!((origin, cache.stats.replaced_bad.load(Ordering::SeqCst)), (Origin::Compiled, 1));
    assert!(open(&root).list().iter().all(|e| e.header.is_ok()));
}

#[test]
fn a_compiler_output_that_is_no_code_object_for_the_target_is_an_error_not_an_entry() {
    struct Liar;
    impl Compiler for Liar {
        fn id(&self) -> &CompilerId {
            static ID: std::sync::OnceLock<CompilerId> = std::sync::OnceLock::new();
            ID.get_or_init(|| CompilerId { name: "liar", version: "1".into() })
        }
        fn dialect(&self) -> Dialect {
            Dialect::Hip
        }
        fn check_target(&self, _: &Target) -> Result<(), JitError> {
            Ok(())
        }
        fn options(&self, _: &Target) -> Vec<String> {
            Vec::new()
        }
        fn compile(&self, _: &str, entry: &str, _: &Target, _: &[String]) -> Result<Vec<u8>, JitError> {
            Ok(minimal_code_object(&"gfx906".parse().unwrap(), entry))
        }
    }
    let root = common::temp_dir("cache-liar");
    let err = open(&root).get_or_compile(&Liar, &gfx90a(), "k", "s").unwrap_err();
    println!("{err}");
    assert!(matches!(err, JitError::BadCodeObject { .. }) && err.to_string().contains("gfx906"), "{err}");
    assert!(entry_files(&root).is_empty(), "nothing stored");
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
    let cache = open(&blocker.join("cache"));
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
    open(&root).get_or_compile(&fake, &gfx90a(), "k", "kept").unwrap();
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
    let cache = open(&root);
    assert_eq!(cache.get_or_compile(&fake, &gfx90a(), "k", "kept").unwrap().1, Origin::Disk);
    assert_eq!(cache.get_or_compile(&fake, &gfx90a(), "k", "new").unwrap().1, Origin::Compiled);
    assert_eq!(cache.warnings().len(), 1);
    set_mode("u+w");
}

// ---- the cache folder's owner and mode (as ssh checks its keys) ----

#[test]
fn a_cache_root_writable_by_others_is_refused_unless_shared_on_purpose() {
    let root = common::temp_dir("cache-777");
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o777)).unwrap();
    let err = KernelCache::open(&root).err().expect("a world-writable cache is refused");
    println!("{err}");
    assert!(
        err.to_string().contains("writable by group and others") && err.to_string().contains("chmod go-w"),
        "{err}"
    );
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o770)).unwrap();
    let err = KernelCache::open(&root).err().expect("a group-writable cache is refused");
    assert!(err.to_string().contains("writable by its group"), "{err}");
    let shared = KernelCache::open_with(&root, true).expect("shared on purpose");
    shared.get_or_compile(&FakeCompiler::new(), &gfx90a(), "k", "s").unwrap();
    assert_eq!(open(&common::temp_dir("cache-755")).list().len(), 0, "a 0755 folder of one's own is fine");
}

#[test]
fn a_cache_root_or_entry_of_another_user_is_refused_unless_shared_on_purpose() {
    if !is_root() {
        eprintln!("skipping: making files of another user needs root (CI runs as root)");
        return;
    }
    let nobody = rustix::process::Uid::from_raw(65534);
    let root = common::temp_dir("cache-foreign");
    let fake = FakeCompiler::new();
    open(&root).get_or_compile(&fake, &gfx90a(), "k", "s").unwrap();
    let entry = entry_files(&root).remove(0);

    // An entry planted by another user in a folder of ours: a bad entry, replaced.
    rustix::fs::chown(&entry, Some(nobody), None).unwrap();
    let cache = open(&root);
    let why = cache.list()[0].header.clone().unwrap_err();
    println!("{why}");
    assert!(why.contains("owned by uid 65534"), "{why}");
    assert_eq!(cache.get_or_compile(&fake, &gfx90a(), "k", "s").unwrap().1, Origin::Compiled);
    assert_eq!(std::fs::metadata(&entry).unwrap().uid(), 0, "replaced by our own");

    // A group-writable entry: the same.
    std::fs::set_permissions(&entry, std::fs::Permissions::from_mode(0o660)).unwrap();
    let why = open(&root).list()[0].header.clone().unwrap_err();
    assert!(why.contains("writable by its group"), "{why}");
    assert_eq!(
        KernelCache::open_with(&root, true).unwrap().get_or_compile(&fake, &gfx90a(), "k", "s").unwrap().1,
        Origin::Disk
    );

    // The root itself owned by another user: refused whole, naming the way out.
    rustix::fs::chown(&root, Some(nobody), None).unwrap();
    let err = KernelCache::open(&root).err().expect("a cache of another user is refused");
    println!("{err}");
    assert!(err.to_string().contains("owned by uid 65534") && err.to_string().contains("--shared-cache"), "{err}");
    assert!(KernelCache::open_with(&root, true).is_ok());
}

// ---- symlinks, FIFOs, devices and huge files where entries should be ----

#[test]
fn a_symlink_planted_at_an_entry_path_is_replaced_never_followed() {
    let dir = common::temp_dir("cache-symlink-entry");
    let (root, outside) = (dir.join("cache"), dir.join("precious.txt"));
    std::fs::write(&outside, b"do not touch").unwrap();
    let fake = FakeCompiler::new();
    let key = key_of(&fake, &gfx90a(), "s");
    let path = open(&root).entry_path(&key).unwrap();
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(&outside, &path).unwrap();
    let cache = open(&root);
    assert!(cache.list()[0].header.as_ref().unwrap_err().contains("symlink"));
    let (_, origin) = cache.get_or_compile(&fake, &gfx90a(), "k", "s").unwrap();
    assert_eq!((origin, cache.stats.replaced_bad.load(Ordering::SeqCst)), (Origin::Compiled, 1));
    assert_eq!(std::fs::read(&outside).unwrap(), b"do not touch");
    assert!(!std::fs::symlink_metadata(&path).unwrap().file_type().is_symlink(), "the link itself was replaced");
}

#[test]
fn a_symlinked_entry_folder_is_never_written_through() {
    let dir = common::temp_dir("cache-symlink-dir");
    let (root, outside) = (dir.join("cache"), dir.join("elsewhere"));
    std::fs::create_dir_all(&outside).unwrap();
    let fake = FakeCompiler::new();
    let hex = key_of(&fake, &gfx90a(), "s").hex();
    std::fs::create_dir_all(schema_dir(&root)).unwrap();
    std::os::unix::fs::symlink(&outside, schema_dir(&root).join(&hex[..2])).unwrap();
    let cache = open(&root);
    let (_, origin) = cache.get_or_compile(&fake, &gfx90a(), "k", "s").unwrap();
    assert_eq!(origin, Origin::Compiled);
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0, "nothing written outside the cache");
    assert_eq!(cache.warnings().len(), 1, "kept in memory, with a warning: {:?}", cache.warnings());
}

#[test]
fn gc_and_clear_never_follow_a_symlinked_folder_out_of_the_cache() {
    let dir = common::temp_dir("cache-gc-escape");
    let (root, outside) = (dir.join("cache"), dir.join("some-dir"));
    std::fs::create_dir_all(&outside).unwrap();
    let victims = [outside.join("model.rfk"), outside.join(".old.tmp"), outside.join(".x.y.tmp")];
    for v in &victims {
        std::fs::write(v, b"not the cache's").unwrap();
        let old = std::time::SystemTime::now() - Duration::from_secs(3600);
        std::fs::File::options().write(true).open(v).unwrap().set_modified(old).unwrap();
    }
    let fake = FakeCompiler::new();
    open(&root).get_or_compile(&fake, &gfx90a(), "k", "s").unwrap();
    let link = schema_dir(&root).join("zz");
    std::os::unix::fs::symlink(&outside, &link).unwrap();
    let cache = open(&root);
    let listed = cache.list();
    assert!(listed.iter().any(|e| e.path == link && e.header.is_err()), "verify reports the planted link: {listed:?}");
    let (removed, _) = cache.gc(1 << 30).unwrap();
    assert_eq!(removed, 1, "the link itself");
    std::os::unix::fs::symlink(&outside, &link).unwrap();
    cache.clear().unwrap();
    for v in &victims {
        assert_eq!(std::fs::read(v).unwrap(), b"not the cache's", "{} untouched", v.display());
    }
    assert!(std::fs::symlink_metadata(&link).is_err(), "the planted link is gone");
    assert!(entry_files(&root).is_empty(), "the real entry is cleared");
}

fn mkfifo(path: &Path) {
    rustix::fs::mknodat(rustix::fs::CWD, path, rustix::fs::FileType::Fifo, rustix::fs::Mode::from_raw_mode(0o600), 0)
        .unwrap();
}

#[test]
fn a_fifo_a_device_link_or_a_4_gib_file_at_an_entry_path_is_a_bad_entry_not_a_hang() {
    let dir = common::temp_dir("cache-fifo");
    let root = dir.join("cache");
    let fake = Arc::new(FakeCompiler::new());
    type Plant<'a> = &'a dyn Fn(&Path);
    let cases: [(&str, &str, Plant); 3] = [
        ("a FIFO", "FIFO", &|p| mkfifo(p)),
        ("a symlink to /dev/zero", "symlink", &|p| std::os::unix::fs::symlink("/dev/zero", p).unwrap()),
        ("a sparse 4 GiB file", "limit", &|p| std::fs::File::create(p).unwrap().set_len(4 << 30).unwrap()),
    ];
    for (i, (what, says, plant)) in cases.iter().enumerate() {
        let src = format!("source {i}");
        let path = open(&root).entry_path(&key_of(&fake, &gfx90a(), &src)).unwrap();
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        plant(&path);
        let r = root.clone();
        let listed = within(20, "cache verify", move || open(&r).list());
        let why = listed.iter().find(|e| e.path == path).unwrap().header.clone().unwrap_err();
        println!("{what}: {why}");
        assert!(why.contains(says), "{what}: {why}");
        let (r, f, s) = (root.clone(), fake.clone(), src.clone());
        let origin = within(20, "warm", move || open(&r).get_or_compile(f.as_ref(), &gfx90a(), "k", &s).unwrap().1);
        assert_eq!(origin, Origin::Compiled, "{what}");
        assert!(std::fs::symlink_metadata(&path).unwrap().file_type().is_file(), "{what}: replaced by an entry");
    }
}

#[test]
fn gc_and_clear_racing_each_other_and_a_writer_never_fail() {
    let root = common::temp_dir("cache-race");
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let fake = Arc::new(FakeCompiler::new());
    let mut rounds = [0usize; 3];
    std::thread::scope(|s| {
        let writer = s.spawn(|| {
            let mut n = 0;
            for i in 0..60 {
                open(&root).get_or_compile(fake.as_ref(), &gfx90a(), "k", &format!("s{}", i % 7)).unwrap();
                n += 1;
            }
            stop.store(true, Ordering::SeqCst);
            n
        });
        let gc = s.spawn(|| {
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                open(&root).gc(100).expect("gc while others remove entries");
                n += 1;
            }
            n
        });
        let clear = s.spawn(|| {
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                open(&root).clear().expect("clear while others remove entries");
                n += 1;
            }
            n
        });
        rounds = [writer.join().unwrap(), gc.join().unwrap(), clear.join().unwrap()];
    });
    println!("writes, gc rounds, clear rounds: {rounds:?}");
    assert!(rounds[1] > 0 && rounds[2] > 0);
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

fn n_specs(model: &Path) -> usize {
    let kernels = rocmforge(Path::new("/nonexistent")).arg("kernels").arg(model).output().unwrap();
    String::from_utf8_lossy(&kernels.stdout).lines().count() - 1
}

fn tmp_files(cache: &Path) -> Vec<PathBuf> {
    entry_files(cache).into_iter().filter(|p| p.extension().is_some_and(|e| e == "tmp")).collect()
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
    assert!(
        stdout.contains(&format!("{} entries checked", 3 * n_specs(&model))) && stdout.contains(", 0 bad"),
        "{stdout}"
    );
    let check =
        rocmforge(&cache).args(["warm", "--check", "--target", "gfx906,gfx90a,gfx1030"]).arg(&model).output().unwrap();
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stdout));
}

/// Issue 12's race: 8 `warm` processes with different target lists, while `cache gc` and
/// `cache clear` loop in two more, for 60 seconds. No process may fail; afterwards a final warm
/// leaves a cache that verifies whole, with no temporary file left.
#[test]
fn eight_warms_with_gc_and_clear_looping_for_60_seconds_never_fail() {
    if common::hiprtc().is_none() {
        return;
    }
    let dir = common::temp_dir("cache-storm");
    let (model, cache) = (tiny_model(&dir), dir.join("cache"));
    let lists = [
        "gfx906",
        "gfx90a",
        "gfx1030",
        "gfx906,gfx90a",
        "gfx90a,gfx1030",
        "gfx906,gfx1030",
        "gfx906,gfx90a,gfx1030",
        "gfx1030,gfx906",
    ];
    let deadline = Instant::now() + Duration::from_secs(60);
    let runs = AtomicUsize::new(0);
    let failures = std::sync::Mutex::new(Vec::new());
    let run = |args: &[&str], with_model: bool| {
        let mut c = rocmforge(&cache);
        c.args(args);
        if with_model {
            c.arg(&model);
        }
        let out = c.stdout(Stdio::null()).stderr(Stdio::piped()).output().unwrap();
        runs.fetch_add(1, Ordering::Relaxed);
        if !out.status.success() {
            failures.lock().unwrap().push(format!(
                "{args:?}: {:?} {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    };
    let counts: Vec<usize> = std::thread::scope(|s| {
        let mut handles = Vec::new();
        for list in lists {
            handles.push(s.spawn(move || {
                let mut n = 0;
                while Instant::now() < deadline {
                    run(&["warm", "--jobs", "1", "--target", list], true);
                    n += 1;
                }
                n
            }));
        }
        for args in [&["cache", "gc", "--max-size", "20K"][..], &["cache", "clear"][..]] {
            handles.push(s.spawn(move || {
                let mut n = 0;
                while Instant::now() < deadline {
                    run(args, false);
                    n += 1;
                }
                n
            }));
        }
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    println!(
        "runs per process slot (8 warms, gc, clear): {counts:?}; {} processes in all",
        runs.load(Ordering::Relaxed)
    );
    let failures = failures.into_inner().unwrap();
    assert!(failures.is_empty(), "{} processes failed:\n{}", failures.len(), failures.join("\n"));
    assert!(counts[8] > 1 && counts[9] > 1, "gc and clear looped: {counts:?}");

    let last = rocmforge(&cache).args(["warm", "--target", "gfx906,gfx90a,gfx1030"]).arg(&model).output().unwrap();
    assert!(last.status.success(), "{}", String::from_utf8_lossy(&last.stderr));
    let verify = rocmforge(&cache).args(["cache", "verify"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&verify.stdout);
    println!("{stdout}");
    assert!(verify.status.success(), "{stdout}");
    assert!(
        stdout.contains(&format!("{} entries checked", 3 * n_specs(&model))) && stdout.contains(", 0 bad"),
        "{stdout}"
    );
    assert_eq!(tmp_files(&cache), Vec::<PathBuf>::new(), "no temporary file left");
}

/// Issue 12's forgery with real code objects: the gfx90a `argmax` entry re-signed (valid hash,
/// right key) with the payload of the gfx906 `kv_append_f16` entry, and with gfx90a `kv_append_f16`'s.
#[test]
fn a_forged_entry_is_rejected_by_warm_warm_check_and_cache_verify() {
    if common::hiprtc().is_none() {
        return;
    }
    let dir = common::temp_dir("cache-forge");
    let (model, cache) = (tiny_model(&dir), dir.join("cache"));
    let warm = rocmforge(&cache).args(["warm", "--target", "gfx906,gfx90a"]).arg(&model).output().unwrap();
    assert!(warm.status.success(), "{}", String::from_utf8_lossy(&warm.stderr));
    let find = |target: &str, entry: &str| {
        entry_files(&cache)
            .into_iter()
            .find(|p| {
                let b = std::fs::read(p).unwrap();
                let (h, _) = parse_entry(&b).unwrap();
                h.target == target && h.entry == entry
            })
            .unwrap_or_else(|| panic!("{target} {entry} is cached"))
    };
    let argmax = find("gfx90a", "argmax");
    let good = std::fs::read(&argmax).unwrap();
    for (donor_target, donor_entry) in [("gfx906", "kv_append_f16"), ("gfx90a", "kv_append_f16"), ("gfx906", "argmax")]
    {
        let donor = std::fs::read(find(donor_target, donor_entry)).unwrap();
        let donor_payload = parse_entry(&donor).unwrap().1.to_vec();
        std::fs::write(&argmax, &good).unwrap();
        resign(&argmax, |_, p| *p = donor_payload);
        let what = format!("gfx90a argmax carrying {donor_target} {donor_entry}'s code");

        let verify = rocmforge(&cache).args(["cache", "verify"]).output().unwrap();
        let out = String::from_utf8_lossy(&verify.stdout);
        println!("{what}: {}", out.lines().next().unwrap_or_default());
        assert_eq!(verify.status.code(), Some(1), "{what}: verify fails: {out}");
        assert!(out.contains(", 1 bad") && out.contains(&argmax.display().to_string()), "{what}: {out}");

        let check = rocmforge(&cache).args(["warm", "--check", "--target", "gfx90a"]).arg(&model).output().unwrap();
        let out = String::from_utf8_lossy(&check.stdout);
        assert_eq!(check.status.code(), Some(1), "{what}: warm --check calls it missing: {out}");
        assert!(out.contains("1 of") && out.contains("argmax"), "{what}: {out}");

        let rewarm = rocmforge(&cache).args(["warm", "--target", "gfx90a"]).arg(&model).output().unwrap();
        let out = String::from_utf8_lossy(&rewarm.stdout);
        assert!(rewarm.status.success() && out.contains(": 1 compiled"), "{what}: warm recompiles it: {out}");
        assert_eq!(std::fs::read(&argmax).unwrap(), good, "{what}: the real entry is back");
    }
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
        if let Some(t) = tmp_files(&cache).into_iter().next() {
            break t;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "the writer never started an entry");
        std::thread::sleep(Duration::from_millis(20));
    };
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(tmp.exists() && std::fs::metadata(&tmp).unwrap().len() > 0, "half an entry was on disk when killed");
    let name = tmp.file_name().unwrap().to_string_lossy().into_owned();
    println!("temporary file: {name}");
    assert!(name.len() > 64 + 32, "a random part beside the key: {name}");
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
    let cache = open(&root);
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

// ---- bundles: export, import, and tampered bundles refused whole ----

fn tar_of(members: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, bytes) in members {
        let mut h = tar::Header::new_gnu();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        // Raw name bytes: the tar crate refuses `..` through its path API, an attacker does not.
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.set_cksum();
        b.append(&h, *bytes).unwrap();
    }
    b.into_inner().unwrap()
}

fn read_tar(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut a = tar::Archive::new(bytes);
    a.entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let name = e.path().unwrap().to_string_lossy().into_owned();
            let mut v = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut v).unwrap();
            (name, v)
        })
        .collect()
}

#[test]
fn a_bundle_exported_after_a_warm_imports_into_an_empty_cache_and_a_tampered_one_is_refused_whole() {
    if common::hiprtc().is_none() {
        return;
    }
    let dir = common::temp_dir("cache-bundle");
    let (model, cache, bundle) = (tiny_model(&dir), dir.join("cache"), dir.join("kernels.tar"));
    let targets = "gfx906,gfx1030";
    let export = rocmforge(&cache)
        .args(["cache", "export"])
        .arg(&bundle)
        .args(["--target", targets])
        .arg(&model)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&export.stderr);
    assert_eq!(export.status.code(), Some(1), "nothing warmed yet: {err}");
    assert!(err.contains("not cached") && err.contains("rocmforge warm"), "{err}");
    let warm = rocmforge(&cache).args(["warm", "--target", targets]).arg(&model).output().unwrap();
    assert!(warm.status.success(), "{}", String::from_utf8_lossy(&warm.stderr));
    let export = rocmforge(&cache)
        .args(["cache", "export"])
        .arg(&bundle)
        .args(["--target", targets])
        .arg(&model)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&export.stdout);
    println!("{out}");
    assert!(export.status.success(), "{}", String::from_utf8_lossy(&export.stderr));
    let n = 2 * n_specs(&model);
    assert!(out.contains(&format!("exported {n} entries")), "{out}");

    let fresh = dir.join("fresh");
    let import = rocmforge(&fresh).args(["cache", "import"]).arg(&bundle).output().unwrap();
    assert!(import.status.success(), "{}", String::from_utf8_lossy(&import.stderr));
    let check = rocmforge(&fresh).args(["warm", "--check", "--target", targets]).arg(&model).output().unwrap();
    assert!(check.status.success(), "the imported cache has every kernel: {}", String::from_utf8_lossy(&check.stdout));

    let members = read_tar(&std::fs::read(&bundle).unwrap());
    assert_eq!(members[0].0, "manifest.json");
    let manifest: serde_json::Value = serde_json::from_slice(&members[0].1).unwrap();
    assert_eq!(manifest["entries"].as_array().unwrap().len(), n);
    for field in ["key", "entry", "target", "compiler", "sha256"] {
        assert!(manifest["entries"][0][field].is_string(), "the manifest names each entry's {field}");
    }
    let refs: Vec<(&str, &[u8])> = members.iter().map(|(n, b)| (n.as_str(), b.as_slice())).collect();
    let (first_name, first_bytes) = (refs[1].0.to_string(), refs[1].1.to_vec());
    let mut flipped = first_bytes.clone();
    let i = flipped.len() / 2;
    flipped[i] ^= 1;
    // Re-signed with another payload, the manifest's sha256 updated to match: the entry's own
    // check still refuses it.
    let donor = parse_entry(refs[2].1).unwrap().1.to_vec();
    let (mut h, _) = parse_entry(&first_bytes).unwrap();
    h.payload_len = donor.len() as u64;
    let forged = encode_entry(&h, &donor);
    let forged_sha: String = {
        use sha2::Digest;
        sha2::Sha256::digest(&forged).iter().map(|b| format!("{b:02x}")).collect()
    };
    let mut manifest_forged = manifest.clone();
    manifest_forged["entries"][0]["sha256"] = forged_sha.into();
    manifest_forged["entries"][0]["bytes"] = forged.len().into();
    let manifest_forged = serde_json::to_vec(&manifest_forged).unwrap();
    let mut manifest_lies = manifest.clone();
    manifest_lies["entries"][0]["target"] = "gfx90a".into();
    let manifest_lies = serde_json::to_vec(&manifest_lies).unwrap();

    let replace = |at: usize, with: (&str, Vec<u8>)| -> Vec<u8> {
        let mut m: Vec<(String, Vec<u8>)> = members.clone();
        m[at] = (with.0.to_string(), with.1);
        tar_of(&m.iter().map(|(n, b)| (n.as_str(), b.as_slice())).collect::<Vec<_>>())
    };
    let cases: Vec<(&str, &str, Vec<u8>)> = vec![
        ("a flipped byte", "sha256", replace(1, (&first_name, flipped))),
        (
            "a listed entry missing",
            "missing",
            tar_of(&[refs[0]].into_iter().chain(refs[2..].iter().copied()).collect::<Vec<_>>()),
        ),
        ("an extra file", "more files", tar_of(&[refs.clone(), vec![("entries/extra.rfk", b"x")]].concat())),
        ("a path out of the cache", "more files", tar_of(&[refs.clone(), vec![("../../evil.rfk", b"x")]].concat())),
        ("a forged entry with a matching manifest", "payload", {
            let mut m = members.clone();
            m[0].1 = manifest_forged.clone();
            m[1].1 = forged.clone();
            tar_of(&m.iter().map(|(n, b)| (n.as_str(), b.as_slice())).collect::<Vec<_>>())
        }),
        ("a manifest that lies about a target", "manifest says", replace(0, ("manifest.json", manifest_lies.clone()))),
        ("no manifest first", "must be manifest.json", tar_of(&refs[1..])),
        ("not a tar", "not", b"just some bytes, not a tar archive at all".repeat(20)),
    ];
    for (what, says, bytes) in cases {
        let evil = dir.join("evil.tar");
        std::fs::write(&evil, bytes).unwrap();
        let target_dir = dir.join(format!("import-{}", what.replace(' ', "-")));
        let out = rocmforge(&target_dir).args(["cache", "import"]).arg(&evil).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        println!("{what}: {}", err.lines().next().unwrap_or_default());
        assert_eq!(out.status.code(), Some(1), "{what}: refused: {err}");
        assert!(err.contains(says), "{what}: {err}");
        assert!(entry_files(&target_dir).is_empty(), "{what}: nothing imported");
        assert!(!dir.join("evil.rfk").exists() && !dir.parent().unwrap().join("evil.rfk").exists());
    }
    // A FIFO given as the bundle is refused, not waited on.
    let fifo = dir.join("fifo.tar");
    mkfifo(&fifo);
    let mut c = rocmforge(&dir.join("fifo-import"));
    c.args(["cache", "import"]).arg(&fifo);
    let out = within(20, "cache import of a FIFO", move || c.output().unwrap());
    assert!(String::from_utf8_lossy(&out.stderr).contains("FIFO"), "{}", String::from_utf8_lossy(&out.stderr));
}
