//! GGUF files as llama.cpp writes them: validated metadata, tensor infos and zero-copy tensor views
//! over a memory map.
//!
//! Spec: <https://github.com/ggml-org/ggml/blob/master/docs/gguf.md>. Versions 2 and 3 are read;
//! every length is bounded by the bytes left, and every tensor is checked to lie inside the file
//! without overlapping another, so later stages can slice tensor data without re-checking.

mod error;
mod reader;
mod value;
mod writer;

use std::collections::HashMap;
use std::fs::File;
use std::ops::Deref;
use std::path::Path;

pub use error::GgufError;
pub use reader::{DEFAULT_ALIGNMENT, MAX_ARRAY_NESTING, MAX_DIMS};
pub use value::{Array, Value, ValueType};
pub use writer::GgufWriter;

use crate::dtype::GgmlType;

/// One tensor's description from the file's tensor-info table.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorInfo {
    pub name: String,
    /// ggml order: `shape[0]` is the row length (contiguous), then rows, then higher dims.
    pub shape: Vec<u64>,
    pub ty: GgmlType,
    /// Offset of the data from the start of the data section.
    pub offset: u64,
    pub n_elems: u64,
    pub n_bytes: u64,
    /// Where this tensor's info starts in the file (for error messages).
    pub info_offset: u64,
}

impl TensorInfo {
    /// Elements per row (`shape[0]`).
    pub fn row_len(&self) -> u64 {
        self.shape.first().copied().unwrap_or(1)
    }

    /// Rows: the product of every dimension past the first.
    pub fn n_rows(&self) -> u64 {
        self.shape.iter().skip(1).product()
    }
}

/// Metadata key-value pairs in file order, with a name index.
#[derive(Clone, Debug, Default)]
pub struct Metadata {
    entries: Vec<(String, Value, u64)>,
    index: HashMap<String, usize>,
}

impl Metadata {
    pub(crate) fn push(&mut self, key: String, value: Value, value_offset: u64) {
        self.index.insert(key.clone(), self.entries.len());
        self.entries.push((key, value, value_offset));
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Pairs in file order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.entries.iter().map(|(k, v, _)| (k.as_str(), v))
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.index.get(key).map(|&i| &self.entries[i].1)
    }

    fn get_with_offset(&self, key: &str) -> Option<(&Value, u64)> {
        self.index.get(key).map(|&i| (&self.entries[i].1, self.entries[i].2))
    }

    fn require(&self, key: &str) -> Result<&Value, GgufError> {
        self.get(key).ok_or_else(|| GgufError::MissingKey { key: key.to_string() })
    }

    fn wrong(key: &str, expected: &'static str, found: &Value) -> GgufError {
        GgufError::WrongType { key: key.to_string(), expected, found: found.type_description() }
    }

    /// An unsigned integer of any width (GGUF writers differ: u32 in llama.cpp, u64 elsewhere).
    pub fn get_u64(&self, key: &str) -> Result<u64, GgufError> {
        let v = self.require(key)?;
        v.as_u64().ok_or_else(|| Self::wrong(key, "an unsigned integer", v))
    }

    /// Like `get_u64`, but narrowed to u32 with an error if it does not fit.
    pub fn get_u32(&self, key: &str) -> Result<u32, GgufError> {
        let v = self.require(key)?;
        v.as_u64().and_then(|x| u32::try_from(x).ok()).ok_or_else(|| Self::wrong(key, "an integer that fits in u32", v))
    }

    pub fn get_i64(&self, key: &str) -> Result<i64, GgufError> {
        let v = self.require(key)?;
        v.as_i64().ok_or_else(|| Self::wrong(key, "an integer", v))
    }

    /// f32, or f64 narrowed.
    pub fn get_f32(&self, key: &str) -> Result<f32, GgufError> {
        let v = self.require(key)?;
        v.as_f32().ok_or_else(|| Self::wrong(key, "a float (f32 or f64)", v))
    }

    pub fn get_bool(&self, key: &str) -> Result<bool, GgufError> {
        let v = self.require(key)?;
        v.as_bool().ok_or_else(|| Self::wrong(key, "bool", v))
    }

    /// A UTF-8 string.
    pub fn get_str(&self, key: &str) -> Result<&str, GgufError> {
        let v = self.require(key)?;
        let bytes = v.as_bytes().ok_or_else(|| Self::wrong(key, "string", v))?;
        std::str::from_utf8(bytes).map_err(|_| GgufError::WrongType {
            key: key.to_string(),
            expected: "UTF-8 string",
            found: "string with invalid UTF-8".into(),
        })
    }

    /// `Ok(None)` when absent; a present key must be a UTF-8 string.
    pub fn opt_str(&self, key: &str) -> Result<Option<&str>, GgufError> {
        match self.get(key) {
            None => Ok(None),
            Some(_) => self.get_str(key).map(Some),
        }
    }

    pub fn get_array(&self, key: &str) -> Result<&Array, GgufError> {
        let v = self.require(key)?;
        v.as_array().ok_or_else(|| Self::wrong(key, "array", v))
    }

    /// `Ok(None)` when the key is absent; a present key of the wrong type is still an error.
    pub fn opt<T>(&self, key: &str, get: impl Fn(&Self, &str) -> Result<T, GgufError>) -> Result<Option<T>, GgufError> {
        match self.get(key) {
            None => Ok(None),
            Some(_) => get(self, key).map(Some),
        }
    }
}

/// Opens `path` for reading without hanging on a FIFO or reading a device without end: the open is
/// non-blocking, and the type is checked before a byte is read (a symlink to a regular file is
/// fine; one to `/dev/zero` is not). Returns the file and its length.
pub fn open_regular_file(path: &Path) -> std::io::Result<(File, u64)> {
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    let flags = rustix::fs::OFlags::NONBLOCK | rustix::fs::OFlags::NOCTTY;
    let file = std::fs::OpenOptions::new().read(true).custom_flags(flags.bits() as i32).open(path)?;
    let meta = file.metadata()?;
    let t = meta.file_type();
    if !t.is_file() {
        let kind = if t.is_fifo() {
            "a FIFO"
        } else if t.is_char_device() || t.is_block_device() {
            "a device"
        } else if t.is_dir() {
            "a folder"
        } else if t.is_socket() {
            "a socket"
        } else {
            "not a regular file"
        };
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{kind}, not a regular file")));
    }
    Ok((file, meta.len()))
}

/// The file's bytes: a read-only memory map, or a buffer (tests, fuzzing, in-memory models).
enum Storage {
    Mapped(memmap2::Mmap),
    Owned(Vec<u8>),
}

impl Deref for Storage {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Storage::Mapped(m) => m,
            Storage::Owned(v) => v,
        }
    }
}

/// An opened, validated GGUF file.
pub struct GgufFile {
    pub version: u32,
    pub alignment: u64,
    pub metadata: Metadata,
    pub tensors: Vec<TensorInfo>,
    /// Absolute offset of the data section.
    pub data_offset: u64,
    tensor_index: HashMap<String, usize>,
    bytes: Storage,
}

impl GgufFile {
    /// Maps `path` read-only and validates it.
    pub fn open(path: impl AsRef<Path>) -> Result<GgufFile, GgufError> {
        let path = path.as_ref();
        let io = |source| GgufError::Io { path: path.to_path_buf(), source };
        let (file, len) = open_regular_file(path).map_err(io)?;
        let bytes = if len == 0 {
            Storage::Owned(Vec::new()) // mmap refuses empty files; the parser reports it
        } else {
            // SAFETY: the map is read-only and lives as long as `GgufFile`. Another process
            // truncating the file while it is mapped would fault on access; like every mmap-based
            // model loader (llama.cpp included), we accept that for zero-copy weights.
            Storage::Mapped(unsafe { memmap2::Mmap::map(&file) }.map_err(io)?)
        };
        Self::from_storage(bytes)
    }

    /// Validates an in-memory file.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<GgufFile, GgufError> {
        Self::from_storage(Storage::Owned(bytes))
    }

    fn from_storage(bytes: Storage) -> Result<GgufFile, GgufError> {
        let header = reader::parse(&bytes)?;
        let tensor_index = header.tensors.iter().enumerate().map(|(i, t)| (t.name.clone(), i)).collect();
        Ok(GgufFile {
            version: header.version,
            alignment: header.alignment,
            metadata: header.metadata,
            tensors: header.tensors,
            data_offset: header.data_offset,
            tensor_index,
            bytes,
        })
    }

    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensor_index.get(name).map(|&i| &self.tensors[i])
    }

    pub fn require_tensor(&self, name: &str) -> Result<&TensorInfo, GgufError> {
        self.tensor(name).ok_or_else(|| GgufError::MissingTensor { name: name.to_string() })
    }

    /// The tensor's bytes, borrowed from the map (no copy).
    pub fn tensor_data(&self, info: &TensorInfo) -> &[u8] {
        // In bounds: `reader::parse` checked data_offset + offset + n_bytes <= file length.
        let start = (self.data_offset + info.offset) as usize;
        &self.bytes[start..start + info.n_bytes as usize]
    }

    /// The whole file.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// `general.architecture`.
    pub fn architecture(&self) -> Result<&str, GgufError> {
        self.metadata.get_str("general.architecture")
    }
}

impl std::fmt::Debug for GgufFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufFile")
            .field("version", &self.version)
            .field("alignment", &self.alignment)
            .field("n_kv", &self.metadata.len())
            .field("n_tensors", &self.tensors.len())
            .field("data_offset", &self.data_offset)
            .finish()
    }
}
