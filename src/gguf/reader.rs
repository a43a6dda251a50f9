//! The GGUF parser: header, metadata and tensor infos from a byte slice, every length bounded by
//! the bytes left before anything is allocated for it.
//!
//! Format: <https://github.com/ggml-org/ggml/blob/master/docs/gguf.md> (versions 2 and 3, little
//! endian). Checks follow ggml's `gguf.cpp`, which refuses the same hostile inputs.

use std::collections::HashMap;

use super::error::GgufError;
use super::value::{Array, Value, ValueType};
use super::{Metadata, TensorInfo};
use crate::dtype::GgmlType;

pub const MAGIC: &[u8; 4] = b"GGUF";
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// ggml's GGML_MAX_DIMS.
pub const MAX_DIMS: u32 = 4;
/// Arrays of arrays deeper than this are refused: real files use one level, and unbounded
/// recursion would let a small file overflow the stack.
pub const MAX_ARRAY_NESTING: usize = 8;

/// Everything in a GGUF file except the tensor bytes.
#[derive(Debug)]
pub struct Header {
    pub version: u32,
    pub alignment: u64,
    pub metadata: Metadata,
    pub tensors: Vec<TensorInfo>,
    /// Absolute file offset of the data section (tensor offsets are relative to it).
    pub data_offset: u64,
}

/// A bounds-checked little-endian reader over the file's bytes.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn offset(&self) -> u64 {
        self.pos as u64
    }

    fn remaining(&self) -> u64 {
        (self.buf.len() - self.pos) as u64
    }

    fn take(&mut self, n: u64, what: &'static str) -> Result<&'a [u8], GgufError> {
        if n > self.remaining() {
            return Err(GgufError::Truncated { offset: self.offset(), what, needed: n, available: self.remaining() });
        }
        let start = self.pos;
        self.pos += n as usize;
        Ok(&self.buf[start..self.pos])
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], GgufError> {
        let bytes = self.take(N as u64, what)?;
        Ok(bytes.try_into().expect("take returned exactly N bytes"))
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, GgufError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &'static str) -> Result<u64, GgufError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    /// A count of items, each at least `min_len` bytes: refused if they cannot all fit.
    fn count(&mut self, what: &'static str, min_len: u64) -> Result<u64, GgufError> {
        let offset = self.offset();
        let count = self.u64(what)?;
        let max = self.remaining() / min_len.max(1);
        if count > max {
            return Err(GgufError::CountTooLarge { offset, what, count, max, available: self.remaining() });
        }
        Ok(count)
    }

    /// A GGUF string: u64 length, then that many bytes.
    fn string(&mut self, what: &'static str) -> Result<&'a [u8], GgufError> {
        let len = self.count(what, 1)?;
        self.take(len, what)
    }

    fn utf8(&mut self, what: &'static str) -> Result<String, GgufError> {
        let offset = self.offset();
        let bytes = self.string(what)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| GgufError::InvalidUtf8 { offset, what })
    }

    fn value_type(&mut self) -> Result<ValueType, GgufError> {
        let offset = self.offset();
        let id = self.u32("metadata value type")?;
        ValueType::from_id(id).ok_or(GgufError::UnknownValueType { offset, id })
    }

    fn value(&mut self, ty: ValueType, depth: usize) -> Result<Value, GgufError> {
        const W: &str = "metadata value";
        Ok(match ty {
            ValueType::U8 => Value::U8(self.array::<1>(W)?[0]),
            ValueType::I8 => Value::I8(self.array::<1>(W)?[0] as i8),
            ValueType::U16 => Value::U16(u16::from_le_bytes(self.array(W)?)),
            ValueType::I16 => Value::I16(i16::from_le_bytes(self.array(W)?)),
            ValueType::U32 => Value::U32(u32::from_le_bytes(self.array(W)?)),
            ValueType::I32 => Value::I32(i32::from_le_bytes(self.array(W)?)),
            ValueType::F32 => Value::F32(f32::from_le_bytes(self.array(W)?)),
            // ggml reads any non-zero byte as true; so do we.
            ValueType::Bool => Value::Bool(self.array::<1>(W)?[0] != 0),
            ValueType::String => Value::String(self.string("string value")?.to_vec()),
            ValueType::U64 => Value::U64(u64::from_le_bytes(self.array(W)?)),
            ValueType::I64 => Value::I64(i64::from_le_bytes(self.array(W)?)),
            ValueType::F64 => Value::F64(f64::from_le_bytes(self.array(W)?)),
            ValueType::Array => Value::Array(self.array_value(depth + 1)?),
        })
    }

    fn array_value(&mut self, depth: usize) -> Result<Array, GgufError> {
        if depth > MAX_ARRAY_NESTING {
            return Err(GgufError::NestingTooDeep { offset: self.offset(), max: MAX_ARRAY_NESTING });
        }
        let elem = self.value_type()?;
        let n = self.count("array element count", elem.min_encoded_len())? as usize;
        macro_rules! prim {
            ($variant:ident, $t:ty) => {{
                let bytes = self.take((n * std::mem::size_of::<$t>()) as u64, "array elements")?;
                Array::$variant(
                    bytes
                        .chunks_exact(std::mem::size_of::<$t>())
                        .map(|c| <$t>::from_le_bytes(c.try_into().expect("chunk has the element's size")))
                        .collect(),
                )
            }};
        }
        Ok(match elem {
            ValueType::U8 => prim!(U8, u8),
            ValueType::I8 => prim!(I8, i8),
            ValueType::U16 => prim!(U16, u16),
            ValueType::I16 => prim!(I16, i16),
            ValueType::U32 => prim!(U32, u32),
            ValueType::I32 => prim!(I32, i32),
            ValueType::F32 => prim!(F32, f32),
            ValueType::U64 => prim!(U64, u64),
            ValueType::I64 => prim!(I64, i64),
            ValueType::F64 => prim!(F64, f64),
            ValueType::Bool => Array::Bool(self.take(n as u64, "array elements")?.iter().map(|&b| b != 0).collect()),
            ValueType::String => {
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(self.string("string array element")?.to_vec());
                }
                Array::String(items)
            }
            ValueType::Array => {
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(self.array_value(depth + 1)?);
                }
                Array::Array(items)
            }
        })
    }
}

/// Parses and validates everything but the tensor bytes; `buf` is the whole file.
pub fn parse(buf: &[u8]) -> Result<Header, GgufError> {
    let mut cur = Cursor { buf, pos: 0 };

    let magic = cur.take(4, "magic").map_err(|_| GgufError::BadMagic { found: buf[..buf.len().min(4)].to_vec() })?;
    if magic != MAGIC {
        return Err(GgufError::BadMagic { found: magic.to_vec() });
    }
    let version = cur.u32("version")?;
    if version != 2 && version != 3 {
        let hint = if version.swap_bytes() == 2 || version.swap_bytes() == 3 {
            "; this looks like a big-endian file"
        } else if version == 1 {
            "; version 1 files predate 64-bit counts: re-convert the model with a current llama.cpp"
        } else {
            ""
        };
        return Err(GgufError::UnsupportedVersion { version, hint });
    }

    // Smallest encodings: a tensor info is name length + n_dims + type + offset; a key-value
    // pair is key length + type + a one-byte value.
    let n_tensors = cur.count("tensor count", 8 + 4 + 4 + 8)?;
    let n_kv = cur.count("metadata key-value count", 8 + 4 + 1)?;

    let mut metadata = Metadata::default();
    for _ in 0..n_kv {
        let key_offset = cur.offset();
        let key = cur.utf8("metadata key")?;
        let ty = cur.value_type()?;
        let value_offset = cur.offset();
        let value = cur.value(ty, 0)?;
        if metadata.get(&key).is_some() {
            return Err(GgufError::DuplicateKey { offset: key_offset, key });
        }
        metadata.push(key, value, value_offset);
    }

    let alignment = match metadata.get_with_offset("general.alignment") {
        None => DEFAULT_ALIGNMENT,
        Some((value, offset)) => match value.as_u64() {
            Some(a) if a != 0 && a.is_power_of_two() => a,
            Some(a) => return Err(GgufError::BadAlignment { offset, value: a }),
            None => {
                return Err(GgufError::WrongType {
                    key: "general.alignment".into(),
                    expected: "u32",
                    found: value.type_description(),
                })
            }
        },
    };

    let mut tensors: Vec<TensorInfo> = Vec::with_capacity(n_tensors as usize);
    let mut names: HashMap<String, usize> = HashMap::with_capacity(n_tensors as usize);
    for _ in 0..n_tensors {
        let info_offset = cur.offset();
        let name = cur.utf8("tensor name")?;
        let n_dims = cur.u32("tensor dimension count")?;
        if n_dims > MAX_DIMS {
            return Err(GgufError::TooManyDims { offset: info_offset, name, n_dims, max: MAX_DIMS });
        }
        let mut shape = Vec::with_capacity(n_dims as usize);
        for dim in 0..n_dims as usize {
            let value = cur.u64("tensor dimension")?;
            if value > i64::MAX as u64 {
                return Err(GgufError::DimTooLarge { offset: info_offset, name, dim, value });
            }
            shape.push(value);
        }
        let type_offset = cur.offset();
        let type_id = cur.u32("tensor type")?;
        let ty = GgmlType::from_id(type_id).ok_or_else(|| GgufError::UnknownTensorType {
            offset: type_offset,
            name: name.clone(),
            id: type_id,
        })?;
        let data_offset = cur.u64("tensor data offset")?;

        let n_elems = shape.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d)).filter(|&n| n <= i64::MAX as u64);
        let Some(n_elems) = n_elems else {
            return Err(GgufError::ShapeOverflow { offset: info_offset, name, shape });
        };
        let ne0 = shape.first().copied().unwrap_or(1);
        let Some(row_bytes) = ty.row_bytes(ne0) else {
            return Err(GgufError::PartialBlock {
                offset: info_offset,
                name,
                ty: ty.name(),
                ne0,
                block: ty.block_elems(),
            });
        };
        // Checked on its own: with a zero row length, n_elems is 0 whatever the other dims are.
        let n_rows = shape.iter().skip(1).try_fold(1u64, |acc, &d| acc.checked_mul(d));
        let Some(n_bytes) = n_rows.and_then(|rows| row_bytes.checked_mul(rows)) else {
            return Err(GgufError::ShapeOverflow { offset: info_offset, name, shape });
        };
        if data_offset % alignment != 0 {
            return Err(GgufError::MisalignedTensor { offset: info_offset, name, data_offset, alignment });
        }
        if names.contains_key(&name) {
            return Err(GgufError::DuplicateTensor { offset: info_offset, name });
        }
        names.insert(name.clone(), tensors.len());
        tensors.push(TensorInfo { name, shape, ty, offset: data_offset, n_elems, n_bytes, info_offset });
    }

    // The data section starts at the next multiple of the alignment after the tensor infos.
    let data_offset = align_up(cur.offset(), alignment).ok_or(GgufError::Truncated {
        offset: cur.offset(),
        what: "data section alignment",
        needed: alignment,
        available: cur.remaining(),
    })?;
    check_tensor_placement(&tensors, data_offset, buf.len() as u64)?;

    Ok(Header { version, alignment, metadata, tensors, data_offset })
}

fn align_up(x: u64, alignment: u64) -> Option<u64> {
    x.checked_add(alignment - 1).map(|v| v / alignment * alignment)
}

/// Every tensor's bytes lie inside the file and no two tensors share a byte.
fn check_tensor_placement(tensors: &[TensorInfo], data_offset: u64, file_len: u64) -> Result<(), GgufError> {
    let mut spans = Vec::with_capacity(tensors.len());
    for t in tensors {
        let start = data_offset.checked_add(t.offset);
        let end = start.and_then(|s| s.checked_add(t.n_bytes));
        match (start, end) {
            (Some(start), Some(end)) if end <= file_len => spans.push((start, end, t)),
            _ => {
                return Err(GgufError::TensorOutOfBounds {
                    offset: t.info_offset,
                    name: t.name.clone(),
                    data_offset: t.offset,
                    n_bytes: t.n_bytes,
                    section: data_offset,
                    file_len,
                })
            }
        }
    }
    spans.sort_by_key(|&(start, end, _)| (start, end));
    for pair in spans.windows(2) {
        let (a_start, a_end, a) = pair[0];
        let (b_start, _, b) = pair[1];
        if b_start < a_end {
            return Err(GgufError::TensorOverlap {
                first: a.name.clone(),
                first_start: a_start,
                first_end: a_end,
                second: b.name.clone(),
                second_start: b_start,
            });
        }
    }
    Ok(())
}
