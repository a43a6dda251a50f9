//! The content-addressed kernel cache.
//!
//! Key = blake3 over the schema version, compiler identity (name and version), full target string,
//! sorted options and rendered source, each length-prefixed: nothing else, nothing missing, so a
//! rebuild of rocmforge that renders the same source reuses the entry and a warmed cache can be
//! shipped. One file per entry (`<root>/v1/<ab>/<key>.rfk`): magic, schema, a JSON header, the
//! code object, and a blake3 of everything before it. Entries are written to a temporary file in
//! the same folder and renamed into place, so readers see a whole entry or none, and any number of
//! processes may warm one cache at once. A bad entry (hash mismatch, truncated, other schema, or
//! another key's file) is a miss: recompiled and replaced. A cache folder that cannot be written
//! degrades to memory with one warning. In memory, each key compiles once however many threads ask.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::SystemTime;

use dashmap::DashMap;
use serde::{Deserialize, Serialize};

use super::compiler::{Compiler, CompilerId, JitError};
use super::target::Target;

pub const SCHEMA: u32 = 1;
const MAGIC: &[u8; 4] = b"RFKC";
const EXT: &str = "rfk";

/// A blake3 cache key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CacheKey(pub [u8; 32]);

impl CacheKey {
    /// Hashes every input that determines the compiled bytes.
    pub fn new(compiler: &CompilerId, target: &Target, options: &[String], source: &str) -> CacheKey {
        let mut options = options.to_vec();
        options.sort();
        let mut h = blake3::Hasher::new();
        let mut field = |bytes: &[u8]| {
            h.update(&(bytes.len() as u64).to_le_bytes());
            h.update(bytes);
        };
        field(b"rocmforge kernel cache");
        field(&SCHEMA.to_le_bytes());
        field(compiler.name.as_bytes());
        field(compiler.version.as_bytes());
        field(target.to_string().as_bytes());
        field(&(options.len() as u64).to_le_bytes());
        for o in &options {
            field(o.as_bytes());
        }
        field(source.as_bytes());
        CacheKey(*h.finalize().as_bytes())
    }

    pub fn hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn from_hex(s: &str) -> Option<CacheKey> {
        if s.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, o) in out.iter_mut().enumerate() {
            *o = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(CacheKey(out))
    }
}

/// The header stored with each entry (for `cache ls` and to detect foreign files).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct EntryHeader {
    pub key: String,
    pub entry: String,
    pub target: String,
    pub compiler: String,
    pub options: Vec<String>,
    pub payload_len: u64,
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
    /// Entries found bad (corrupt, truncated, foreign) and replaced.
    pub replaced_bad: AtomicU64,
    pub write_failures: AtomicU64,
}

type Slot = Arc<OnceLock<Result<Arc<Vec<u8>>, JitError>>>;

pub struct KernelCache {
    /// `None`: memory only.
    root: Option<PathBuf>,
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
        }
    }
}

/// One entry, as `cache ls` shows it.
#[derive(Clone, Debug)]
pub struct EntryInfo {
    pub path: PathBuf,
    pub bytes: u64,
    pub modified: SystemTime,
    /// The header, or why the entry is bad.
    pub header: Result<EntryHeader, String>,
}

impl KernelCache {
    /// A cache rooted at `root` (created when first written).
    pub fn open(root: impl Into<PathBuf>) -> KernelCache {
        Self::with_root(Some(root.into()))
    }

    /// A cache that never touches the disk.
    pub fn memory_only() -> KernelCache {
        Self::with_root(None)
    }

    fn with_root(root: Option<PathBuf>) -> KernelCache {
        KernelCache {
            root,
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

    /// Warnings raised so far (a cache folder that could not be written).
    pub fn warnings(&self) -> Vec<String> {
        self.warnings.lock().expect("warnings lock").clone()
    }

    fn schema_dir(&self) -> Option<PathBuf> {
        self.root.as_ref().map(|r| r.join(format!("v{SCHEMA}")))
    }

    pub fn entry_path(&self, key: &CacheKey) -> Option<PathBuf> {
        let hex = key.hex();
        self.schema_dir().map(|d| d.join(&hex[..2]).join(format!("{hex}.{EXT}")))
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
        let options = compiler.options(target);
        let key = CacheKey::new(compiler.id(), target, &options, source);
        let slot: Slot = self.memory.entry(key).or_default().clone();
        let mut origin = Origin::Memory;
        let result = slot.get_or_init(|| {
            let (r, o) = self.load_or_compile(compiler, target, entry, source, &options, &key);
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
        target: &Target,
        entry: &str,
        source: &str,
        options: &[String],
        key: &CacheKey,
    ) -> (Result<Arc<Vec<u8>>, JitError>, Origin) {
        match self.read(key) {
            Ok(Some(code)) => {
                self.stats.disk_hits.fetch_add(1, Ordering::Relaxed);
                return (Ok(Arc::new(code)), Origin::Disk);
            }
            Ok(None) => {}
            Err(_bad) => {
                self.stats.replaced_bad.fetch_add(1, Ordering::Relaxed);
            }
        }
        let code = match compiler.compile(source, entry, target, options) {
            Ok(code) => code,
            Err(e) => return (Err(e), Origin::Compiled),
        };
        self.stats.compiled.fetch_add(1, Ordering::Relaxed);
        let header = EntryHeader {
            key: key.hex(),
            entry: entry.to_string(),
            target: target.to_string(),
            compiler: compiler.id().to_string(),
            options: options.to_vec(),
            payload_len: code.len() as u64,
        };
        self.store(key, &header, &code);
        (Ok(Arc::new(code)), Origin::Compiled)
    }

    /// Is a valid entry for these inputs on disk? (For `warm --check`; compiles nothing.)
    pub fn has_valid_entry(&self, key: &CacheKey) -> bool {
        matches!(self.read(key), Ok(Some(_)))
    }

    /// `Ok(None)`: no entry. `Err`: an entry that must not be used.
    fn read(&self, key: &CacheKey) -> Result<Option<Vec<u8>>, BadEntry> {
        let Some(path) = self.entry_path(key) else { return Ok(None) };
        let Ok(bytes) = fs::read(&path) else { return Ok(None) };
        let (header, payload) = parse_entry(&bytes)?;
        if header.key != key.hex() {
            return Err(BadEntry::Foreign);
        }
        Ok(Some(payload.to_vec()))
    }

    fn store(&self, key: &CacheKey, header: &EntryHeader, payload: &[u8]) {
        if !self.disk_writable.load(Ordering::Relaxed) {
            return;
        }
        let Some(path) = self.entry_path(key) else { return };
        if let Err(e) = write_entry(&path, header, payload) {
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

    /// Every entry file under the root (not temporary files).
    pub fn list(&self) -> Vec<EntryInfo> {
        let Some(dir) = self.schema_dir() else { return Vec::new() };
        let mut out = Vec::new();
        for sub in read_dir_sorted(&dir) {
            for path in read_dir_sorted(&sub) {
                if path.extension().and_then(|e| e.to_str()) != Some(EXT) {
                    continue;
                }
                let Ok(meta) = fs::metadata(&path) else { continue };
                let header = fs::read(&path)
                    .map_err(|e| e.to_string())
                    .and_then(|b| parse_entry(&b).map(|(h, _)| h).map_err(|e| e.to_string()))
                    .and_then(|h| {
                        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
                        if CacheKey::from_hex(stem).map(|k| k.hex()) == Some(h.key.clone()) {
                            Ok(h)
                        } else {
                            Err(BadEntry::Foreign.to_string())
                        }
                    });
                out.push(EntryInfo {
                    path,
                    bytes: meta.len(),
                    modified: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                    header,
                });
            }
        }
        out
    }

    /// Removes entries until the total is at most `max_bytes`, least recently modified first, and
    /// every bad entry and leftover temporary file. Returns (entries removed, bytes freed).
    pub fn gc(&self, max_bytes: u64) -> std::io::Result<(usize, u64)> {
        let mut entries = self.list();
        let (mut removed, mut freed) = self.remove_temporaries()?;
        for e in entries.iter().filter(|e| e.header.is_err()) {
            fs::remove_file(&e.path)?;
            removed += 1;
            freed += e.bytes;
        }
        entries.retain(|e| e.header.is_ok());
        entries.sort_by_key(|e| e.modified);
        let mut total: u64 = entries.iter().map(|e| e.bytes).sum();
        for e in entries {
            if total <= max_bytes {
                break;
            }
            fs::remove_file(&e.path)?;
            total -= e.bytes;
            removed += 1;
            freed += e.bytes;
        }
        Ok((removed, freed))
    }

    /// Removes every entry. Returns (entries removed, bytes freed).
    pub fn clear(&self) -> std::io::Result<(usize, u64)> {
        let entries = self.list();
        let (mut removed, mut freed) = self.remove_temporaries()?;
        for e in entries {
            fs::remove_file(&e.path)?;
            removed += 1;
            freed += e.bytes;
        }
        self.memory.clear();
        Ok((removed, freed))
    }

    /// Temporary files left by writers that died mid-write (older than a minute, so that live
    /// writers are left alone).
    fn remove_temporaries(&self) -> std::io::Result<(usize, u64)> {
        let Some(dir) = self.schema_dir() else { return Ok((0, 0)) };
        let (mut n, mut bytes) = (0, 0);
        for sub in read_dir_sorted(&dir) {
            for path in read_dir_sorted(&sub) {
                if path.extension().and_then(|e| e.to_str()) != Some("tmp") {
                    continue;
                }
                let Ok(meta) = fs::metadata(&path) else { continue };
                let age = meta.modified().ok().and_then(|m| m.elapsed().ok()).unwrap_or_default();
                if age.as_secs() >= 60 {
                    fs::remove_file(&path)?;
                    n += 1;
                    bytes += meta.len();
                }
            }
        }
        Ok((n, bytes))
    }
}

fn read_dir_sorted(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> =
        fs::read_dir(dir).map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect()).unwrap_or_default();
    v.sort();
    v
}

/// Splits and checks an entry file: magic, schema, header, payload length, trailing hash.
pub fn parse_entry(bytes: &[u8]) -> Result<(EntryHeader, &[u8]), BadEntry> {
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
    let header_bytes = body.get(12..12 + header_len).ok_or(BadEntry::Truncated)?;
    let header: EntryHeader = serde_json::from_slice(header_bytes).map_err(|_| BadEntry::BadHeader)?;
    let payload = &body[12 + header_len..];
    if payload.len() as u64 != header.payload_len {
        return Err(BadEntry::Truncated);
    }
    Ok((header, payload))
}

fn encode_entry(header: &EntryHeader, payload: &[u8]) -> Vec<u8> {
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

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Writes through a temporary file in the same folder, synced, then renamed into place.
fn write_entry(path: &Path, header: &EntryHeader, payload: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().expect("entry paths have a folder");
    fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".{}.{}.{}.tmp",
        path.file_stem().and_then(|s| s.to_str()).unwrap_or("entry"),
        std::process::id(),
        TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let bytes = encode_entry(header, payload);
    let result = (|| {
        let mut f = fs::File::create(&tmp)?;
        let half = bytes.len() / 2;
        f.write_all(&bytes[..half])?;
        stall_for_tests();
        f.write_all(&bytes[half..])?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Test hook: `ROCMFORGE_CACHE_TEST_STALL_MS` pauses every write halfway, so a test can kill the
/// writer there (tests/cache.rs). Unset in normal use.
fn stall_for_tests() {
    if let Some(ms) = std::env::var("ROCMFORGE_CACHE_TEST_STALL_MS").ok().and_then(|v| v.parse().ok()) {
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
}
