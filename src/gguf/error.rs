//! Every way a GGUF file can be refused. Parse errors carry the byte offset where the problem
//! was found, so a user can `xxd -s OFFSET` the file and see it.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum GgufError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("not a GGUF file: magic at byte 0 is {found:02x?}, expected \"GGUF\" (47 47 55 46)")]
    BadMagic { found: Vec<u8> },

    #[error("unsupported GGUF version {version} at byte 4 (rocmforge reads versions 2 and 3){hint}")]
    UnsupportedVersion { version: u32, hint: &'static str },

    #[error("file truncated at byte {offset}: {what} needs {needed} bytes, {available} left")]
    Truncated { offset: u64, what: &'static str, needed: u64, available: u64 },

    #[error("{what} at byte {offset} claims {count} items, but the {available} bytes left hold at most {max}")]
    CountTooLarge { offset: u64, what: &'static str, count: u64, max: u64, available: u64 },

    #[error("unknown metadata value type {id} at byte {offset}")]
    UnknownValueType { offset: u64, id: u32 },

    #[error("metadata arrays nest deeper than {max} levels at byte {offset}")]
    NestingTooDeep { offset: u64, max: usize },

    #[error("{what} at byte {offset} is not valid UTF-8")]
    InvalidUtf8 { offset: u64, what: &'static str },

    #[error("duplicate metadata key {key:?} at byte {offset}")]
    DuplicateKey { offset: u64, key: String },

    #[error("duplicate tensor name {name:?} at byte {offset}")]
    DuplicateTensor { offset: u64, name: String },

    #[error("general.alignment at byte {offset} is {value}: it must be a non-zero power of two")]
    BadAlignment { offset: u64, value: u64 },

    #[error("tensor {name:?} at byte {offset} has {n_dims} dimensions; ggml allows at most {max}")]
    TooManyDims { offset: u64, name: String, n_dims: u32, max: u32 },

    #[error("tensor {name:?} at byte {offset}: dimension {dim} is {value}, beyond ggml's limit of 2^63-1")]
    DimTooLarge { offset: u64, name: String, dim: usize, value: u64 },

    #[error("tensor {name:?} at byte {offset}: shape {shape:?} overflows 64 bits when multiplied out")]
    ShapeOverflow { offset: u64, name: String, shape: Vec<u64> },

    #[error("tensor {name:?} at byte {offset} has unknown type id {id}")]
    UnknownTensorType { offset: u64, name: String, id: u32 },

    #[error("tensor {name:?} at byte {offset}: row of {ne0} elements is not a whole number of {ty} blocks ({block} elements)")]
    PartialBlock { offset: u64, name: String, ty: &'static str, ne0: u64, block: usize },

    #[error(
        "tensor {name:?} at byte {offset}: data offset {data_offset} is not a multiple of the alignment {alignment}"
    )]
    MisalignedTensor { offset: u64, name: String, data_offset: u64, alignment: u64 },

    #[error("tensor {name:?} (info at byte {offset}): {n_bytes} bytes at offset {data_offset} of the data section (which starts at byte {section}) run past the end of the file ({file_len} bytes)")]
    TensorOutOfBounds { offset: u64, name: String, data_offset: u64, n_bytes: u64, section: u64, file_len: u64 },

    #[error(
        "tensors {first:?} (file bytes {first_start}..{first_end}) and {second:?} (from byte {second_start}) overlap"
    )]
    TensorOverlap { first: String, first_start: u64, first_end: u64, second: String, second_start: u64 },

    #[error("metadata key {key:?} is missing")]
    MissingKey { key: String },

    #[error("metadata key {key:?}: expected {expected}, found {found}")]
    WrongType { key: String, expected: &'static str, found: String },

    #[error("no tensor named {name:?}")]
    MissingTensor { name: String },
}

impl GgufError {
    /// The byte offset the error points at, where it has one.
    pub fn offset(&self) -> Option<u64> {
        use GgufError::*;
        match self {
            BadMagic { .. } => Some(0),
            UnsupportedVersion { .. } => Some(4),
            Truncated { offset, .. }
            | CountTooLarge { offset, .. }
            | UnknownValueType { offset, .. }
            | NestingTooDeep { offset, .. }
            | InvalidUtf8 { offset, .. }
            | DuplicateKey { offset, .. }
            | DuplicateTensor { offset, .. }
            | BadAlignment { offset, .. }
            | TooManyDims { offset, .. }
            | DimTooLarge { offset, .. }
            | ShapeOverflow { offset, .. }
            | UnknownTensorType { offset, .. }
            | PartialBlock { offset, .. }
            | MisalignedTensor { offset, .. }
            | TensorOutOfBounds { offset, .. } => Some(*offset),
            TensorOverlap { second_start, .. } => Some(*second_start),
            Io { .. } | MissingKey { .. } | WrongType { .. } | MissingTensor { .. } => None,
        }
    }
}
