//! The content-addressed kernel cache. Its trust model is written in `cache/README.md`.
//!
//! Key = blake3 over the schema version, compiler identity (name and version), full target string,
//! sorted options and the rendered source's blake3, each length-prefixed: nothing else, nothing
//! missing, so a rebuild of rocmforge that renders the same source reuses the entry and a warmed
//! cache can be shipped. One file per entry (`<root>/v2/<ab>/<key>.rfk`): magic, schema, a JSON
//! header naming every input but the source (whose hash it holds), the code object, and a blake3
//! of everything before it.
//!
//! An entry is used only when all of it checks out against what was asked: the hash, every header
//! field (key, entry point, target, compiler, options, source hash), and the payload itself
//! (`validate_code_object`: the target's ELF machine and processor, the entry point's symbol,
//! every size inside the file), under a size cap. Anything else is a bad entry: a miss, counted,
//! recompiled and replaced. Files are reached through folder handles opened without following
//! symlinks, entries are opened non-blocking and must be regular files owned by the user, and
//! new entries are written to a randomly named temporary file (`O_CREAT|O_EXCL|O_NOFOLLOW`) in
//! the same folder, then renamed into place: readers see a whole entry or none, and any number of
//! processes may warm, collect and clear one cache at once. A cache folder that cannot be written
//! degrades to memory with one warning. In memory, each key compiles once however many threads
//! ask.

use std::ffi::CString;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use dashmap::DashMap;
use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;
use serde::{Deserialize, Serialize};

use super::code_object::{validate_code_object, CodeObjectError, MAX_CODE_OBJECT_BYTES};
use super::compiler::{Compiler, CompilerId, JitError};
use super::target::Target;

pub const SCHEMA: u32 = 2;
const MAGIC: &[u8; 4] = b"RFKC";
const EXT: &str = "rfk";
/// The largest JSON header accepted.
const MAX_HEADER_BYTES: usize = 64 << 10;
/// The largest entry file read: a maximal code object, its header and the framing.
pub const MAX_ENTRY_BYTES: u64 = (MAX_CODE_OBJECT_BYTES + MAX_HEADER_BYTES + 12 + 32) as u64;
/// Temporary files older than this are a dead writer's, removed by `gc` and `clear`.
const STALE_TEMPORARY: Duration = Duration::from_secs(60);

/// A blake3 cache key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CacheKey(pub [u8; 32]);

impl CacheKey {
    /// Hashes every input that determines the compiled bytes.
    pub fn new(compiler: &CompilerId, target: &Target, options: &[String], source: &str) -> CacheKey {
        Self::derive(&compiler.to_string(), &target.to_string(), options, blake3::hash(source.as_bytes()).as_bytes())
    }

    /// The key of an entry from its header's fields (what `cache verify` recomputes).
    fn derive(compiler: &str, target: &str, options: &[String], source_hash: &[u8; 32]) -> CacheKey {
        let mut options = options.to_vec();
        options.sort();
        let mut h = blake3::Hasher::new();
        let mut field = |bytes: &[u8]| {
            h.update(&(bytes.len() as u64).to_le_bytes());
            h.update(bytes);
        };
        field(b"rocmforge kernel cache");
        field(&SCHEMA.to_le_bytes());
        field(compiler.as_bytes());
        field(target.as_bytes());
        field(&(options.len() as u64).to_le_bytes());
        for o in &options {
            field(o.as_bytes());
        }
        field(source_hash);
        CacheKey(*h.finalize().as_bytes())
    }

    pub fn hex(&self) -> String {
        hex(&self.0)
    }

    pub fn from_hex(s: &str) -> Option<CacheKey> {
        from_hex32(s).map(CacheKey)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn from_hex32(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 || !s.bytes().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)) {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// The header stored with each entry: every input of the key but the source, which it names by
/// hash.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EntryHeader {
    pub key: String,
    pub entry: String,
    pub target: String,
    pub compiler: String,
    /// Sorted.
    pub options: Vec<String>,
    pub source_blake3: String,
    pub payload_len: u64,
}

/// What a lookup expects an entry to say.
struct Expected<'a> {
    key: CacheKey,
    entry: &'a str,
    target: &'a Target,
    compiler: String,
    options: Vec<String>,
    source_blake3: String,
}

impl<'a> Expected<'a> {
    fn new(compiler: &dyn Compiler, target: &'a Target, entry: &'a str, source: &str) -> Expected<'a> {
        let mut options = compiler.options(target);
        options.sort();
        Expected {
            key: CacheKey::new(compiler.id(), target, &options, source),
            entry,
            target,
            compiler: compiler.id().to_string(),
            options,
            source_blake3: blake3::hash(source.as_bytes()).to_hex().to_string(),
        }
    }

    fn header(&self, payload_len: usize) -> EntryHeader {
        EntryHeader {
            key: self.key.hex(),
            entry: self.entry.to_string(),
            target: self.target.to_string(),
            compiler: self.compiler.clone(),
            options: self.options.clone(),
            source_blake3: self.source_blake3.clone(),
            payload_len: payload_len as u64,
        }
    }
}

/// Where a code object came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// Already in this process.
    Memory,
    /// Read from the cache folder.
    Disk,
    /// Compiled now.
    Compiled,
}

/// Counters since the cache was opened.
#[derive(Debug, Default)]
pub struct CacheStats {
    pub memory_hits: AtomicU64,
    pub disk_hits: AtomicU64,
    pub compiled: AtomicU64,
    /// Entries found bad (corrupt, truncated, foreign, forged, unsafe) and replaced.
    pub replaced_bad: AtomicU64,
    pub write_failures: AtomicU64,
}

/// Why a cache folder is refused as a whole.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error(
        "kernel cache {path} is owned by uid {owner}, not by you (uid {you}): refusing to load code from it. \
         Use a cache of your own (ROCMFORGE_CACHE_DIR), or, if the folder is shared on purpose, say so with \
         --shared-cache or ROCMFORGE_CACHE_SHARED=1"
    )]
    ForeignOwner { path: PathBuf, owner: u32, you: u32 },
    #[error(
        "kernel cache {path} is writable by {who} (mode {mode:03o}): anyone there could plant code in it. \
         Run `chmod go-w {path}`, or, if the folder is shared on purpose, say so with --shared-cache or \
         ROCMFORGE_CACHE_SHARED=1"
    )]
    Writable { path: PathBuf, who: &'static str, mode: u32 },
    #[error("kernel cache {path} is not a folder")]
    NotAFolder { path: PathBuf },
    #[error("kernel cache {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A whole entry file and a copy of its payload.
type FileAndPayload = (Vec<u8>, Vec<u8>);

type Slot = Arc<OnceLock<Result<Arc<Vec<u8>>, JitError>>>;

pub struct KernelCache {
    /// `None`: memory only.
    root: Option<PathBuf>,
    /// The folder is shared on purpose: other owners and group/other write bits are accepted.
    shared: bool,
    memory: DashMap<CacheKey, Slot>,
    disk_writable: AtomicBool,
    warnings: Mutex<Vec<String>>,
    pub stats: CacheStats,
}

/// Why an entry on disk was not used.
#[derive(Debug, PartialEq)]
pub enum BadEntry {
    Truncated,
    WrongMagic,
    WrongSchema(u32),
    BadHeader,
    HashMismatch,
    /// The file's header names another key (a file copied or renamed into the wrong place).
    Foreign,
    /// A header field differs from what was asked.
    Mismatch {
        field: &'static str,
        found: String,
        expected: String,
    },
    /// The header's fields do not hash to its key (an edited header).
    KeyNotDerived,
    /// The payload is not a loadable code object for the header's target and entry point.
    Payload(CodeObjectError),
    /// A FIFO, device, folder or symlink where an entry should be.
    NotRegularFile(&'static str),
    TooLarge(u64),
    /// Owned by another user or writable by others (and the cache is not shared on purpose).
    Unsafe(String),
    Unreadable(String),
}

impl std::fmt::Display for BadEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BadEntry::Truncated => f.write_str("truncated"),
            BadEntry::WrongMagic => f.write_str("not a rocmforge cache entry"),
            BadEntry::WrongSchema(s) => write!(f, "schema {s}, expected {SCHEMA}"),
            BadEntry::BadHeader => f.write_str("unreadable header"),
            BadEntry::HashMismatch => f.write_str("content hash mismatch (corrupt)"),
            BadEntry::Foreign => f.write_str("header names another key"),
            BadEntry::Mismatch { field, found, expected } => {
                write!(f, "header {field} is {found:?}, expected {expected:?}")
            }
            BadEntry::KeyNotDerived => f.write_str("header fields do not hash to its key (edited header)"),
            BadEntry::Payload(e) => write!(f, "payload: {e}"),
            BadEntry::NotRegularFile(kind) => write!(f, "a {kind}, not a regular file"),
            BadEntry::TooLarge(n) => write!(f, "{n} bytes, over the {MAX_ENTRY_BYTES}-byte limit"),
            BadEntry::Unsafe(why) => f.write_str(why),
            BadEntry::Unreadable(why) => write!(f, "unreadable: {why}"),
        }
    }
}

/// One entry (or something in the entry folders that should not be there), as `cache ls` and
/// `cache verify` show it.
#[derive(Clone, Debug)]
pub struct EntryInfo {
    pub path: PathBuf,
    pub bytes: u64,
    pub modified: SystemTime,
    /// The header of an entry that checked out whole, or why it is bad.
    pub header: Result<EntryHeader, String>,
    /// Folder under the schema folder and file name (None: the item is the folder itself).
    sub: String,
    name: Option<String>,
}

/// The file-system side: every path below the root is reached through folder handles opened with
/// `O_NOFOLLOW`, so nothing the cache does can be steered outside it by a symlink.
mod fsx {
    use super::*;

    pub fn is(e: &std::io::Error, errno: Errno) -> bool {
        e.raw_os_error() == Some(errno.raw_os_error())
    }

    pub fn cstr(name: &str) -> CString {
        CString::new(name).expect("cache names have no NUL")
    }

    /// `st_mode` as u32 (its type differs between platforms).
    #[allow(clippy::unnecessary_cast)]
    pub fn mode(stat: &rustix::fs::Stat) -> u32 {
        stat.st_mode as u32
    }

    pub fn kind(mode: u32) -> &'static str {
        match FileType::from_raw_mode(mode as _) {
            FileType::RegularFile => "regular file",
            FileType::Directory => "folder",
            FileType::Symlink => "symlink",
            FileType::Fifo => "FIFO",
            FileType::Socket => "socket",
            FileType::CharacterDevice => "character device",
            FileType::BlockDevice => "block device",
            FileType::Unknown => "file of unknown type",
        }
    }

    /// Owner and write-bit check: `None` when the item may be trusted.
    pub fn untrusted(stat: &rustix::fs::Stat, shared: bool) -> Option<(Option<u32>, Option<&'static str>)> {
        if shared {
            return None;
        }
        let you = rustix::process::geteuid().as_raw();
        let owner = (stat.st_uid != you).then_some(stat.st_uid);
        let mode = fsx::mode(stat) & 0o777;
        let writable = match (mode & 0o020 != 0, mode & 0o002 != 0) {
            (true, true) => Some("group and others"),
            (true, false) => Some("its group"),
            (false, true) => Some("others"),
            (false, false) => None,
        };
        (owner.is_some() || writable.is_some()).then_some((owner, writable))
    }

    pub fn describe_untrusted(what: &str, (owner, writable): (Option<u32>, Option<&'static str>)) -> String {
        let you = rustix::process::geteuid().as_raw();
        match (owner, writable) {
            (Some(o), _) => format!("{what} is owned by uid {o}, not by you (uid {you})"),
            (None, Some(w)) => format!("{what} is writable by {w}"),
            (None, None) => String::new(),
        }
    }

    /// Opens folder `name` in `dir` without following a symlink; checks type, owner and mode.
    /// `Ok(None)`: it does not exist.
    pub fn open_dir_in(dir: impl AsFd, name: &str, shared: bool) -> Result<Option<OwnedFd>, String> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        match rustix::fs::openat(dir, cstr(name).as_c_str(), flags, Mode::empty()) {
            Ok(fd) => {
                let stat = rustix::fs::fstat(&fd).map_err(|e| format!("folder {name}: {e}"))?;
                if let Some(why) = untrusted(&stat, shared) {
                    return Err(describe_untrusted(&format!("folder {name}"), why));
                }
                Ok(Some(fd))
            }
            Err(Errno::NOENT) => Ok(None),
            Err(Errno::LOOP | Errno::NOTDIR) => Err(format!("{name} is a symlink or a file, not a folder")),
            Err(e) => Err(format!("folder {name}: {e}")),
        }
    }

    /// Like `open_dir_in`, creating the folder (mode `mode`) when it is missing.
    pub fn make_dir_in(dir: &OwnedFd, name: &str, shared: bool, mode: u32) -> std::io::Result<OwnedFd> {
        match rustix::fs::mkdirat(dir, cstr(name).as_c_str(), Mode::from_raw_mode(mode as _)) {
            Ok(()) => {
                let fd = open_dir_in(dir, name, true).map_err(std::io::Error::other)?.ok_or(Errno::NOENT)?;
                if shared {
                    rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode as _))?;
                }
                Ok(fd)
            }
            Err(Errno::EXIST) => {
                open_dir_in(dir, name, shared).map_err(std::io::Error::other)?.ok_or_else(|| Errno::NOENT.into())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The names in a folder (not `.` and `..`), or none if it cannot be read.
    pub fn names(dir: &OwnedFd) -> Vec<String> {
        let Ok(iter) = rustix::fs::Dir::read_from(dir) else { return Vec::new() };
        let mut names: Vec<String> = iter
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().to_str().ok().map(str::to_string))
            .filter(|n| n != "." && n != "..")
            .collect();
        names.sort();
        names
    }

    /// `lstat` of `name` in `dir`; `None` if it vanished.
    pub fn stat_in(dir: &OwnedFd, name: &str) -> Option<rustix::fs::Stat> {
        rustix::fs::statat(dir, cstr(name).as_c_str(), AtFlags::SYMLINK_NOFOLLOW).ok()
    }

    /// Removes `name` from `dir` (a symlink itself, never its target); gone already is fine.
    pub fn remove_in(dir: &OwnedFd, name: &str) -> std::io::Result<bool> {
        match rustix::fs::unlinkat(dir, cstr(name).as_c_str(), AtFlags::empty()) {
            Ok(()) => Ok(true),
            Err(Errno::NOENT) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    pub fn mtime(stat: &rustix::fs::Stat) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::new(stat.st_mtime.max(0) as u64, stat.st_mtime_nsec as u32)
    }

    /// Reads a regular file of at most `max` bytes from `dir`, opened non-blocking without
    /// following a symlink, its type, owner and mode checked before the first byte is read.
    /// `Ok(None)`: no such file.
    pub fn read_entry_in(dir: &OwnedFd, name: &str, shared: bool, max: u64) -> Result<Option<Vec<u8>>, BadEntry> {
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY;
        let fd = match rustix::fs::openat(dir, cstr(name).as_c_str(), flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => return Ok(None),
            Err(Errno::LOOP) => return Err(BadEntry::NotRegularFile("symlink")),
            Err(e) => return Err(BadEntry::Unreadable(e.to_string())),
        };
        let stat = rustix::fs::fstat(&fd).map_err(|e| BadEntry::Unreadable(e.to_string()))?;
        if FileType::from_raw_mode(stat.st_mode as _) != FileType::RegularFile {
            return Err(BadEntry::NotRegularFile(kind(fsx::mode(&stat))));
        }
        if let Some(why) = untrusted(&stat, shared) {
            return Err(BadEntry::Unsafe(describe_untrusted("the entry", why)));
        }
        let size = stat.st_size.max(0) as u64;
        if size > max {
            return Err(BadEntry::TooLarge(size));
        }
        let mut bytes = Vec::with_capacity(size as usize);
        File::from(fd).take(max + 1).read_to_end(&mut bytes).map_err(|e| BadEntry::Unreadable(e.to_string()))?;
        if bytes.len() as u64 > max {
            return Err(BadEntry::TooLarge(bytes.len() as u64));
        }
        Ok(Some(bytes))
    }

    /// 16 random bytes as hex, for temporary file names no other process can predict.
    pub fn random_suffix() -> String {
        let mut buf = [0u8; 16];
        if rustix::rand::getrandom(&mut buf, rustix::rand::GetRandomFlags::empty()).is_err() {
            // getrandom(2) is missing only on kernels older than 3.17; O_EXCL still refuses to
            // follow or reuse a planted name, so the time makes a unique enough name there.
            let t = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
            buf[..16].copy_from_slice(&t.as_nanos().to_le_bytes());
        }
        hex(&buf)
    }
}

impl KernelCache {
    /// A cache rooted at `root`, private to this user: refused if the folder exists and is owned
    /// by another user or writable by group or others (see `cache/README.md`). The folder is
    /// created (mode 0700) when first written.
    pub fn open(root: impl Into<PathBuf>) -> Result<KernelCache, CacheError> {
        Self::open_with(root, Self::shared_from_env())
    }

    /// `shared`: the folder is shared on purpose, so other owners and group/other write bits are
    /// accepted (entries are still checked whole against what was asked).
    pub fn open_with(root: impl Into<PathBuf>, shared: bool) -> Result<KernelCache, CacheError> {
        let cache = Self::with_root(Some(root.into()), shared);
        cache.check_root()?;
        Ok(cache)
    }

    /// `ROCMFORGE_CACHE_SHARED=1`: the default for `open`.
    pub fn shared_from_env() -> bool {
        std::env::var("ROCMFORGE_CACHE_SHARED").is_ok_and(|v| v == "1")
    }

    /// A cache that never touches the disk.
    pub fn memory_only() -> KernelCache {
        Self::with_root(None, false)
    }

    fn with_root(root: Option<PathBuf>, shared: bool) -> KernelCache {
        KernelCache {
            root,
            shared,
            memory: DashMap::new(),
            disk_writable: AtomicBool::new(true),
            warnings: Mutex::new(Vec::new()),
            stats: CacheStats::default(),
        }
    }

    /// `$ROCMFORGE_CACHE_DIR`, else `$XDG_CACHE_HOME/rocmforge/kernels`, else
    /// `~/.cache/rocmforge/kernels`.
    pub fn default_root() -> PathBuf {
        if let Some(dir) = std::env::var_os("ROCMFORGE_CACHE_DIR") {
            return dir.into();
        }
        let base = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| ".".into())).join(".cache"));
        base.join("rocmforge").join("kernels")
    }

    pub fn root(&self) -> Option<&Path> {
        self.root.as_deref()
    }

    pub fn is_shared(&self) -> bool {
        self.shared
    }

    /// Warnings raised so far (a cache folder that could not be written).
    pub fn warnings(&self) -> Vec<String> {
        self.warnings.lock().expect("warnings lock").clone()
    }

    fn schema_name() -> String {
        format!("v{SCHEMA}")
    }

    fn dir_mode(&self) -> u32 {
        if self.shared {
            0o2770
        } else {
            0o700
        }
    }

    /// The root folder, opened and checked (`Ok(None)`: memory only, or not created yet).
    fn open_root(&self) -> Result<Option<OwnedFd>, CacheError> {
        let Some(root) = &self.root else { return Ok(None) };
        let io = |source: std::io::Error| CacheError::Io { path: root.clone(), source };
        // The root itself may be reached through a symlink the user made (~/.cache on another
        // disk); what it points at must be theirs.
        let fd = match rustix::fs::open(root, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => return Ok(None),
            // A file where the root should be is refused; a file where a parent folder should be
            // leaves the cache unwritable (memory only, with a warning at the first write).
            Err(Errno::NOTDIR) if std::fs::symlink_metadata(root).is_ok() => {
                return Err(CacheError::NotAFolder { path: root.clone() })
            }
            Err(Errno::NOTDIR) => return Ok(None),
            Err(e) => return Err(io(e.into())),
        };
        let stat = rustix::fs::fstat(&fd).map_err(|e| io(e.into()))?;
        match fsx::untrusted(&stat, self.shared) {
            None => Ok(Some(fd)),
            Some((Some(owner), _)) => {
                Err(CacheError::ForeignOwner { path: root.clone(), owner, you: rustix::process::geteuid().as_raw() })
            }
            Some((None, who)) => Err(CacheError::Writable {
                path: root.clone(),
                who: who.unwrap_or("others"),
                mode: fsx::mode(&stat) & 0o7777,
            }),
        }
    }

    fn check_root(&self) -> Result<(), CacheError> {
        self.open_root().map(|_| ())
    }

    /// The root, created (mode 0700, or 2770 when shared) if missing.
    fn make_root(&self) -> std::io::Result<OwnedFd> {
        let root = self.root.as_ref().ok_or_else(|| std::io::Error::other("memory-only cache"))?;
        if let Some(fd) = self.open_root().map_err(std::io::Error::other)? {
            return Ok(fd);
        }
        use std::os::unix::fs::DirBuilderExt;
        match std::fs::DirBuilder::new().recursive(true).mode(self.dir_mode()).create(root) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        self.open_root().map_err(std::io::Error::other)?.ok_or_else(|| Errno::NOENT.into())
    }

    pub fn entry_path(&self, key: &CacheKey) -> Option<PathBuf> {
        let hex = key.hex();
        self.root.as_ref().map(|r| r.join(Self::schema_name()).join(&hex[..2]).join(format!("{hex}.{EXT}")))
    }

    /// The code object for `source`, from memory, disk, or the compiler (once per key however many
    /// threads ask).
    pub fn get_or_compile(
        &self,
        compiler: &dyn Compiler,
        target: &Target,
        entry: &str,
        source: &str,
    ) -> Result<(Arc<Vec<u8>>, Origin), JitError> {
        let expected = Expected::new(compiler, target, entry, source);
        let slot: Slot = self.memory.entry(expected.key).or_default().clone();
        let mut origin = Origin::Memory;
        let result = slot.get_or_init(|| {
            let (r, o) = self.load_or_compile(compiler, source, &expected);
            origin = o;
            r
        });
        if origin == Origin::Memory {
            self.stats.memory_hits.fetch_add(1, Ordering::Relaxed);
        }
        result.clone().map(|code| (code, origin))
    }

    fn load_or_compile(
        &self,
        compiler: &dyn Compiler,
        source: &str,
        expected: &Expected,
    ) -> (Result<Arc<Vec<u8>>, JitError>, Origin) {
        match self.read(expected) {
            Ok(Some((_, payload))) => {
                self.stats.disk_hits.fetch_add(1, Ordering::Relaxed);
                return (Ok(Arc::new(payload)), Origin::Disk);
            }
            Ok(None) => {}
            Err(_bad) => {
                self.stats.replaced_bad.fetch_add(1, Ordering::Relaxed);
            }
        }
        let code = match compiler.compile(source, expected.entry, expected.target, &expected.options) {
            Ok(code) => code,
            Err(e) => return (Err(e), Origin::Compiled),
        };
        // What the compiler made must pass the check every later reader applies; otherwise the
        // entry would be refused and recompiled forever.
        if let Err(e) = validate_code_object(&code, expected.target, expected.entry) {
            return (
                Err(JitError::BadCodeObject {
                    entry: expected.entry.to_string(),
                    target: expected.target.to_string(),
                    compiler: expected.compiler.clone(),
                    why: e.to_string(),
                }),
                Origin::Compiled,
            );
        }
        self.stats.compiled.fetch_add(1, Ordering::Relaxed);
        self.store(&expected.key, &encode_entry(&expected.header(code.len()), &code));
        (Ok(Arc::new(code)), Origin::Compiled)
    }

    /// Is a valid entry for these inputs on disk? (For `warm --check`; compiles nothing.)
    pub fn has_valid_entry(&self, compiler: &dyn Compiler, target: &Target, entry: &str, source: &str) -> bool {
        matches!(self.read(&Expected::new(compiler, target, entry, source)), Ok(Some(_)))
    }

    /// The whole entry file for these inputs, checked as a lookup checks it (for `cache export`).
    /// `Ok(None)`: not cached.
    pub fn entry_file(
        &self,
        compiler: &dyn Compiler,
        target: &Target,
        entry: &str,
        source: &str,
    ) -> Result<Option<(CacheKey, EntryHeader, Vec<u8>)>, BadEntry> {
        let expected = Expected::new(compiler, target, entry, source);
        let Some((file, _)) = self.read(&expected)? else { return Ok(None) };
        let (header, _) = parse_entry(&file)?;
        Ok(Some((expected.key, header, file)))
    }

    /// Reads the entry for `expected` and checks all of it. `Ok(None)`: no entry. `Err`: an
    /// entry that must not be used.
    fn read(&self, expected: &Expected) -> Result<Option<FileAndPayload>, BadEntry> {
        let Ok(Some(root)) = self.open_root() else { return Ok(None) };
        let hex = expected.key.hex();
        let Some(schema) = fsx::open_dir_in(&root, &Self::schema_name(), self.shared).map_err(BadEntry::Unsafe)? else {
            return Ok(None);
        };
        let Some(sub) = fsx::open_dir_in(&schema, &hex[..2], self.shared).map_err(BadEntry::Unsafe)? else {
            return Ok(None);
        };
        let Some(file) = fsx::read_entry_in(&sub, &format!("{hex}.{EXT}"), self.shared, MAX_ENTRY_BYTES)? else {
            return Ok(None);
        };
        let (header, payload) = parse_entry(&file)?;
        check_expected(&header, payload, expected)?;
        let payload = payload.to_vec();
        Ok(Some((file, payload)))
    }

    /// Stores an entry file under `key`, through a temporary file renamed into place.
    fn store(&self, key: &CacheKey, file: &[u8]) {
        if !self.disk_writable.load(Ordering::Relaxed) {
            return;
        }
        if let Err(e) = self.write_entry(key, file) {
            self.stats.write_failures.fetch_add(1, Ordering::Relaxed);
            if self.disk_writable.swap(false, Ordering::Relaxed) {
                let msg = format!(
                    "kernel cache {} cannot be written ({e}); compiled kernels stay in memory for this run",
                    self.root.as_ref().map(|r| r.display().to_string()).unwrap_or_default()
                );
                eprintln!("warning: {msg}");
                self.warnings.lock().expect("warnings lock").push(msg);
            }
        }
    }

    /// Writes through a randomly named temporary file created `O_CREAT|O_EXCL|O_NOFOLLOW` in the
    /// entry's folder (reached without following symlinks), synced, then renamed into place.
    fn write_entry(&self, key: &CacheKey, file: &[u8]) -> std::io::Result<()> {
        let hex = key.hex();
        let root = self.make_root()?;
        let schema = fsx::make_dir_in(&root, &Self::schema_name(), self.shared, self.dir_mode())?;
        let sub = fsx::make_dir_in(&schema, &hex[..2], self.shared, self.dir_mode())?;
        let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let file_mode = Mode::from_raw_mode(if self.shared { 0o640 } else { 0o600 });
        let (fd, tmp) = {
            let mut attempt = 0;
            loop {
                let tmp = format!(".{hex}.{}.tmp", fsx::random_suffix());
                match rustix::fs::openat(&sub, fsx::cstr(&tmp).as_c_str(), flags, file_mode) {
                    Ok(fd) => break (fd, tmp),
                    Err(Errno::EXIST) if attempt < 8 => attempt += 1,
                    Err(e) => return Err(e.into()),
                }
            }
        };
        let result = (|| {
            if self.shared {
                rustix::fs::fchmod(&fd, file_mode)?;
            }
            let mut f = File::from(fd);
            let half = file.len() / 2;
            f.write_all(&file[..half])?;
            stall_for_tests();
            f.write_all(&file[half..])?;
            f.sync_all()?;
            let name = fsx::cstr(&format!("{hex}.{EXT}"));
            rustix::fs::renameat(&sub, fsx::cstr(&tmp).as_c_str(), &sub, name.as_c_str())?;
            Ok(())
        })();
        if result.is_err() {
            let _ = fsx::remove_in(&sub, &tmp);
        }
        result
    }

    /// Stores an entry file from elsewhere (`cache import`) after checking it whole; returns its
    /// header.
    pub fn import_entry(&self, file: &[u8]) -> Result<EntryHeader, String> {
        let (header, key) = check_self_consistent(file).map_err(|e| e.to_string())?;
        self.write_entry(&key, file).map_err(|e| format!("writing entry {}: {e}", key.hex()))?;
        Ok(header)
    }

    /// Walks the entry folders without following symlinks: every entry (checked whole, against
    /// itself), and every item that should not be there (a symlink or file in place of a folder).
    /// Temporary files are not listed. Items that vanish during the walk are skipped.
    pub fn list(&self) -> Vec<EntryInfo> {
        let mut out = Vec::new();
        self.walk(|sub_name, sub, name, stat| {
            let path = self.item_path(sub_name, name);
            let Some(name) = name else {
                // A non-folder where an entry folder should be.
                let why = match stat {
                    Some(s) => format!("a {} where an entry folder should be", fsx::kind(fsx::mode(&s))),
                    None => "unsafe entry folder".into(),
                };
                out.push(EntryInfo {
                    path,
                    bytes: 0,
                    modified: SystemTime::UNIX_EPOCH,
                    header: Err(why),
                    sub: sub_name.to_string(),
                    name: None,
                });
                return;
            };
            let Some(sub) = sub else { return };
            let Some(stem) = name.strip_suffix(&format!(".{EXT}")) else { return };
            if name.starts_with('.') {
                return;
            }
            let Some(stat) = stat else { return };
            let header = match fsx::read_entry_in(sub, name, self.shared, MAX_ENTRY_BYTES) {
                Ok(None) => return, // vanished
                Ok(Some(file)) => match check_self_consistent(&file) {
                    Ok((h, _)) if h.key == stem => Ok(h),
                    Ok(_) => Err(BadEntry::Foreign.to_string()),
                    Err(e) => Err(e.to_string()),
                },
                Err(e) => Err(e.to_string()),
            };
            out.push(EntryInfo {
                path,
                bytes: stat.st_size.max(0) as u64,
                modified: fsx::mtime(&stat),
                header,
                sub: sub_name.to_string(),
                name: Some(name.to_string()),
            });
        });
        out
    }

    fn item_path(&self, sub: &str, name: Option<&str>) -> PathBuf {
        let mut p = self.root.clone().unwrap_or_default().join(Self::schema_name()).join(sub);
        if let Some(n) = name {
            p.push(n);
        }
        p
    }

    /// Calls `f(sub name, sub folder, file name, lstat)` for each item of each entry folder, and
    /// `f(sub name, None, None, lstat)` for an item of the schema folder that is not a safe
    /// folder. Never follows a symlink.
    fn walk(&self, mut f: impl FnMut(&str, Option<&OwnedFd>, Option<&str>, Option<rustix::fs::Stat>)) {
        let Ok(Some(root)) = self.open_root() else { return };
        let Ok(Some(schema)) = fsx::open_dir_in(&root, &Self::schema_name(), self.shared) else { return };
        for sub_name in fsx::names(&schema) {
            match fsx::open_dir_in(&schema, &sub_name, self.shared) {
                Ok(Some(sub)) => {
                    for name in fsx::names(&sub) {
                        let stat = fsx::stat_in(&sub, &name);
                        f(&sub_name, Some(&sub), Some(&name), stat);
                    }
                }
                Ok(None) => {}
                Err(_) => f(&sub_name, None, None, fsx::stat_in(&schema, &sub_name)),
            }
        }
    }

    /// Removes one listed item; gone already counts as removed by someone else (false).
    fn remove(&self, e: &EntryInfo) -> std::io::Result<bool> {
        let Ok(Some(root)) = self.open_root() else { return Ok(false) };
        let Ok(Some(schema)) = fsx::open_dir_in(&root, &Self::schema_name(), self.shared) else { return Ok(false) };
        match &e.name {
            // The item in place of a folder: a symlink is removed itself, never what it points at.
            None => match fsx::remove_in(&schema, &e.sub) {
                Err(err) if fsx::is(&err, Errno::ISDIR) => Ok(false), // a folder we may not trust: left alone
                r => r,
            },
            Some(name) => match fsx::open_dir_in(&schema, &e.sub, self.shared) {
                Ok(Some(sub)) => fsx::remove_in(&sub, name),
                _ => Ok(false),
            },
        }
    }

    /// Removes entries until the total is at most `max_bytes`, least recently modified first, and
    /// every bad entry and leftover temporary file. Returns (entries removed, bytes freed). Entries
    /// removed meanwhile by another process are skipped.
    pub fn gc(&self, max_bytes: u64) -> std::io::Result<(usize, u64)> {
        let mut entries = self.list();
        let (mut removed, mut freed) = self.remove_temporaries()?;
        for e in entries.iter().filter(|e| e.header.is_err()) {
            if self.remove(e)? {
                removed += 1;
                freed += e.bytes;
            }
        }
        entries.retain(|e| e.header.is_ok());
        entries.sort_by_key(|e| e.modified);
        let mut total: u64 = entries.iter().map(|e| e.bytes).sum();
        for e in entries {
            if total <= max_bytes {
                break;
            }
            if self.remove(&e)? {
                removed += 1;
                freed += e.bytes;
            }
            total -= e.bytes;
        }
        Ok((removed, freed))
    }

    /// Removes every entry (and stale temporary files). Returns (entries removed, bytes freed).
    pub fn clear(&self) -> std::io::Result<(usize, u64)> {
        let entries = self.list();
        let (mut removed, mut freed) = self.remove_temporaries()?;
        for e in entries {
            if self.remove(&e)? {
                removed += 1;
                freed += e.bytes;
            }
        }
        self.memory.clear();
        Ok((removed, freed))
    }

    /// Temporary files left by writers that died mid-write (older than a minute, so that live
    /// writers are left alone).
    fn remove_temporaries(&self) -> std::io::Result<(usize, u64)> {
        let (mut n, mut bytes) = (0, 0);
        let mut result = Ok(());
        self.walk(|_, sub, name, stat| {
            let (Some(sub), Some(name), Some(stat)) = (sub, name, stat) else { return };
            if !(name.starts_with('.') && name.ends_with(".tmp")) || result.is_err() {
                return;
            }
            let age = fsx::mtime(&stat).elapsed().unwrap_or_default();
            if age >= STALE_TEMPORARY {
                match fsx::remove_in(sub, name) {
                    Ok(true) => {
                        n += 1;
                        bytes += stat.st_size.max(0) as u64;
                    }
                    Ok(false) => {}
                    Err(e) => result = Err(e),
                }
            }
        });
        result.map(|()| (n, bytes))
    }
}

/// Every header field against what the lookup asked, then the payload.
fn check_expected(header: &EntryHeader, payload: &[u8], expected: &Expected) -> Result<(), BadEntry> {
    if header.key != expected.key.hex() {
        return Err(BadEntry::Foreign);
    }
    let target = expected.target.to_string();
    let fields: [(&'static str, &str, &str); 4] = [
        ("entry", &header.entry, expected.entry),
        ("target", &header.target, &target),
        ("compiler", &header.compiler, &expected.compiler),
        ("source_blake3", &header.source_blake3, &expected.source_blake3),
    ];
    for (field, found, want) in fields {
        if found != want {
            return Err(BadEntry::Mismatch { field, found: found.to_string(), expected: want.to_string() });
        }
    }
    if header.options != expected.options {
        return Err(BadEntry::Mismatch {
            field: "options",
            found: header.options.join(" "),
            expected: expected.options.join(" "),
        });
    }
    validate_code_object(payload, expected.target, expected.entry).map_err(BadEntry::Payload)
}

/// An entry checked against itself (for `verify` and `import`, which know no source): its header
/// fields hash to its key, its target parses, and its payload is a code object of that target
/// defining that entry point. Returns the header and key.
pub fn check_self_consistent(file: &[u8]) -> Result<(EntryHeader, CacheKey), BadEntry> {
    let (header, payload) = parse_entry(file)?;
    let key = CacheKey::from_hex(&header.key).ok_or(BadEntry::BadHeader)?;
    let source_hash = from_hex32(&header.source_blake3).ok_or(BadEntry::BadHeader)?;
    let mut sorted = header.options.clone();
    sorted.sort();
    if sorted != header.options
        || CacheKey::derive(&header.compiler, &header.target, &header.options, &source_hash) != key
    {
        return Err(BadEntry::KeyNotDerived);
    }
    let target: Target = header.target.parse().map_err(|_| BadEntry::BadHeader)?;
    validate_code_object(payload, &target, &header.entry).map_err(BadEntry::Payload)?;
    Ok((header, key))
}

/// Splits and checks an entry file: magic, schema, header, payload length, trailing hash.
pub fn parse_entry(bytes: &[u8]) -> Result<(EntryHeader, &[u8]), BadEntry> {
    if bytes.len() as u64 > MAX_ENTRY_BYTES {
        return Err(BadEntry::TooLarge(bytes.len() as u64));
    }
    if bytes.len() < 12 + 32 {
        return Err(if bytes.starts_with(MAGIC) || bytes.is_empty() {
            BadEntry::Truncated
        } else {
            BadEntry::WrongMagic
        });
    }
    if &bytes[..4] != MAGIC {
        return Err(BadEntry::WrongMagic);
    }
    let schema = u32::from_le_bytes(bytes[4..8].try_into().expect("4 bytes"));
    if schema != SCHEMA {
        return Err(BadEntry::WrongSchema(schema));
    }
    let (body, hash) = bytes.split_at(bytes.len() - 32);
    if blake3::hash(body).as_bytes() != hash {
        return Err(BadEntry::HashMismatch);
    }
    let header_len = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes")) as usize;
    if header_len > MAX_HEADER_BYTES {
        return Err(BadEntry::BadHeader);
    }
    let header_bytes = body.get(12..12 + header_len).ok_or(BadEntry::Truncated)?;
    let header: EntryHeader = serde_json::from_slice(header_bytes).map_err(|_| BadEntry::BadHeader)?;
    let payload = &body[12 + header_len..];
    if payload.len() as u64 != header.payload_len {
        return Err(BadEntry::Truncated);
    }
    Ok((header, payload))
}

/// Frames an entry: magic, schema, header length, header, payload, blake3 of all that.
pub fn encode_entry(header: &EntryHeader, payload: &[u8]) -> Vec<u8> {
    let header_json = serde_json::to_vec(header).expect("the header serializes");
    let mut out = Vec::with_capacity(12 + header_json.len() + payload.len() + 32);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&SCHEMA.to_le_bytes());
    out.extend_from_slice(&(header_json.len() as u32).to_le_bytes());
    out.extend_from_slice(&header_json);
    out.extend_from_slice(payload);
    let hash = blake3::hash(&out);
    out.extend_from_slice(hash.as_bytes());
    out
}

/// The header a compiler's output for these inputs is stored under (tests forge entries with it).
pub fn header_for(
    compiler: &dyn Compiler,
    target: &Target,
    entry: &str,
    source: &str,
    payload_len: usize,
) -> EntryHeader {
    Expected::new(compiler, target, entry, source).header(payload_len)
}

/// Test hook: `ROCMFORGE_CACHE_TEST_STALL_MS` pauses every write halfway, so a test can kill the
/// writer there (tests/kernel_cache.rs). Unset in normal use.
fn stall_for_tests() {
    if let Some(ms) = std::env::var("ROCMFORGE_CACHE_TEST_STALL_MS").ok().and_then(|v| v.parse().ok()) {
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
}
