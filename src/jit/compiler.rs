//! The `Compiler` trait: a pure function from (source, target, options) to a code object. It knows
//! nothing of caching (cache.rs wraps it) or devices.

use std::fmt;
use std::path::{Path, PathBuf};

use super::target::Target;
use crate::kernels::Dialect;

/// What identifies a compiler build in cache keys: a new compiler version is a new key.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CompilerId {
    /// `hiprtc` or `nvrtc`.
    pub name: &'static str,
    /// Read from the loaded library (`hiprtc 9.0, HIP 5.2.21153, libamdhip64.so.5.2.21153`).
    pub version: String,
}

impl fmt::Display for CompilerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name, self.version)
    }
}

#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum JitError {
    #[error("{what} not found: tried {tried}. {hint}")]
    LibraryNotFound { what: &'static str, tried: String, hint: &'static str },
    #[error("{library}: symbol {symbol} is missing ({detail})")]
    MissingSymbol { library: String, symbol: &'static str, detail: String },
    #[error("{compiler} cannot compile for {target}: {why}")]
    UnsupportedTarget { compiler: String, target: String, why: String },
    #[error("{call} failed: {message} (code {code})")]
    Api { call: &'static str, code: i64, message: String },
    #[error(
        "compiling {entry} for {target} with {compiler} failed:\n{log}\n---- rendered source ----\n{numbered_source}"
    )]
    Compile { entry: String, target: String, compiler: String, log: String, numbered_source: String },
    #[error("{compiler} produced a code object for {entry} on {target} that fails the loader's checks: {why}")]
    BadCodeObject { entry: String, target: String, compiler: String, why: String },
    #[error("{0}")]
    Cache(String),
    #[error("no compiler loaded for target {target}: {why}")]
    NoCompiler { target: String, why: String },
}

/// The rendered source with line numbers, as compile errors show it.
pub fn number_lines(source: &str) -> String {
    source.lines().enumerate().map(|(i, l)| format!("{:4} | {l}\n", i + 1)).collect()
}

pub trait Compiler: Send + Sync {
    fn id(&self) -> &CompilerId;

    /// The dialect of the sources it takes.
    fn dialect(&self) -> Dialect;

    /// Refuses, before any compile, a target this compiler cannot take (some compilers abort the
    /// whole process on an unknown target).
    fn check_target(&self, target: &Target) -> Result<(), JitError>;

    /// The options it compiles `target` with; part of the cache key.
    fn options(&self, target: &Target) -> Vec<String>;

    /// Compiles `source` (with entry point `entry`) to a loadable code object.
    fn compile(&self, source: &str, entry: &str, target: &Target, options: &[String]) -> Result<Vec<u8>, JitError>;
}

/// The real file name (symlinks resolved) of a loaded shared library, for compiler identities:
/// `libamdhip64.so.5` → `libamdhip64.so.5.2.21153`. Falls back to `name`.
pub fn loaded_library_file(name: &str) -> String {
    let path: Option<PathBuf> = if name.contains('/') {
        Some(name.into())
    } else {
        let stem = name.split(".so").next().unwrap_or(name);
        mapped_libraries(&[&format!("{stem}.so")]).into_iter().next().map(|l| l.path)
    };
    path.and_then(|p| std::fs::canonicalize(p).ok())
        .and_then(|p| p.file_name().map(|f| f.to_string_lossy().into_owned()))
        .unwrap_or_else(|| name.to_string())
}

/// A shared library mapped into this process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MappedLibrary {
    /// The path the loader mapped (as `/proc/self/maps` shows it).
    pub path: PathBuf,
    /// The real file name, symlinks resolved (`libamd_comgr.so.2.4.0`).
    pub file_name: String,
    /// What pins its contents: the ELF build id (first 12 hex digits, `73a6cf8aad39`), else the
    /// file's size and modification time. A rebuilt or updated library (same file name, new
    /// package revision) gets a new fingerprint.
    pub fingerprint: String,
}

impl fmt::Display for MappedLibrary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} [{}]", self.file_name, self.fingerprint)
    }
}

/// The shared libraries mapped into this process whose file name starts with one of `prefixes`,
/// once each, in the order the loader mapped them.
pub fn mapped_libraries(prefixes: &[&str]) -> Vec<MappedLibrary> {
    let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else { return Vec::new() };
    let mut seen: Vec<MappedLibrary> = Vec::new();
    for line in maps.lines() {
        // address perms offset dev inode path [(deleted)]
        let mut fields = line.split_whitespace();
        let range = fields.next().unwrap_or_default();
        let Some(path) = fields.nth(4) else { continue };
        let deleted = line.ends_with(" (deleted)");
        let Some(name) = Path::new(path).file_name().map(|f| f.to_string_lossy().into_owned()) else { continue };
        if !prefixes.iter().any(|p| name.starts_with(p)) || seen.iter().any(|l| l.path == Path::new(path)) {
            continue;
        }
        // A library replaced on disk since it was loaded (a package update while running) is read
        // through the mapping itself, so the fingerprint is that of the code in memory.
        let source = if deleted { PathBuf::from(format!("/proc/self/map_files/{range}")) } else { PathBuf::from(path) };
        let file_name = std::fs::canonicalize(path)
            .ok()
            .and_then(|p| p.file_name().map(|f| f.to_string_lossy().into_owned()))
            .unwrap_or(name);
        seen.push(MappedLibrary { path: path.into(), file_name, fingerprint: file_fingerprint(&source) });
    }
    seen
}

/// The ELF build id of a file (12 hex digits), else its size and modification time.
pub fn file_fingerprint(path: &Path) -> String {
    if let Some(id) = elf_build_id(path) {
        return id.iter().take(6).map(|b| format!("{b:02x}")).collect();
    }
    match std::fs::metadata(path) {
        Ok(m) => {
            let mtime = m.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok());
            format!("size {} mtime {}", m.len(), mtime.map_or(0, |d| d.as_secs()))
        }
        Err(_) => "unreadable".into(),
    }
}

/// The `NT_GNU_BUILD_ID` note of an ELF64 little-endian file, read from its `PT_NOTE` segments
/// (only the header, the program headers and the notes are read, not the whole library).
pub fn elf_build_id(path: &Path) -> Option<Vec<u8>> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(path).ok()?;
    let mut read_at = |at: u64, len: usize| -> Option<Vec<u8>> {
        if len > 1 << 20 {
            return None;
        }
        let mut buf = vec![0u8; len];
        f.seek(SeekFrom::Start(at)).ok()?;
        f.read_exact(&mut buf).ok()?;
        Some(buf)
    };
    let header = read_at(0, 64)?;
    if header[..6] != [0x7f, b'E', b'L', b'F', 2, 1] {
        return None;
    }
    let u16_at = |b: &[u8], at: usize| Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?));
    let u32_at = |b: &[u8], at: usize| Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?));
    let u64_at = |b: &[u8], at: usize| Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?));
    let (phoff, phentsize, phnum) = (u64_at(&header, 0x20)?, u16_at(&header, 0x36)? as usize, u16_at(&header, 0x38)?);
    if phentsize < 56 {
        return None;
    }
    let phdrs = read_at(phoff, phentsize * phnum as usize)?;
    const PT_NOTE: u32 = 4;
    const NT_GNU_BUILD_ID: u32 = 3;
    for ph in phdrs.chunks_exact(phentsize) {
        if u32_at(ph, 0)? != PT_NOTE {
            continue;
        }
        let notes = read_at(u64_at(ph, 0x08)?, usize::try_from(u64_at(ph, 0x20)?).ok()?)?;
        let mut p = 0;
        while p + 12 <= notes.len() {
            let (namesz, descsz, ty) =
                (u32_at(&notes, p)? as usize, u32_at(&notes, p + 4)? as usize, u32_at(&notes, p + 8)?);
            let desc_at = p + 12 + namesz.div_ceil(4) * 4;
            let desc = notes.get(desc_at..desc_at.checked_add(descsz)?)?;
            if ty == NT_GNU_BUILD_ID && notes.get(p + 12..p + 12 + namesz)?.starts_with(b"GNU") && !desc.is_empty() {
                return Some(desc.to_vec());
            }
            p = desc_at + descsz.div_ceil(4) * 4;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_ids_are_read_from_the_running_executable_and_libc() {
        // The test binary and libc carry build ids on Debian (readelf -n shows them).
        let exe = std::env::current_exe().unwrap();
        let id = elf_build_id(&exe).expect("the test binary has a build id");
        assert!(id.len() >= 8, "{id:?}");
        let libc = mapped_libraries(&["libc.so"]);
        assert_eq!(libc.len(), 1, "{libc:?}");
        assert_eq!(libc[0].fingerprint.len(), 12, "{:?}", libc[0]);
        assert!(elf_build_id(Path::new("/etc/hostname")).is_none());
    }
}
