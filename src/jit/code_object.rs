//! AMD code objects: per-kernel resource use (VGPRs, SGPRs, LDS, scratch, spills) read from the
//! ELF's `NT_AMDGPU_METADATA` note, a MessagePack map (AMDGPUUsage, "Code Object V3+ Metadata").

use std::collections::BTreeMap;

/// What one kernel uses, as the compiler recorded it.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct KernelResources {
    pub name: String,
    pub vgpr_count: u64,
    pub sgpr_count: u64,
    /// Accumulation VGPRs (gfx90a and later); 0 elsewhere.
    pub agpr_count: u64,
    /// Static LDS (group segment) bytes.
    pub lds_bytes: u64,
    /// Private (scratch) bytes per work-item.
    pub scratch_bytes: u64,
    pub vgpr_spill_count: u64,
    pub sgpr_spill_count: u64,
    pub wavefront_size: u64,
}

impl KernelResources {
    pub fn spills(&self) -> bool {
        self.vgpr_spill_count > 0 || self.sgpr_spill_count > 0
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CodeObjectError {
    #[error("not an ELF64 little-endian code object")]
    NotElf,
    #[error("code object truncated or malformed at byte {0}")]
    Malformed(usize),
    #[error("code object has no NT_AMDGPU_METADATA note")]
    NoMetadata,
    #[error("code object metadata is not valid MessagePack: {0}")]
    BadMetadata(&'static str),
}

const NT_AMDGPU_METADATA: u32 = 32;

/// Reads every kernel's resources from an AMD code object.
pub fn amd_kernel_resources(elf: &[u8]) -> Result<Vec<KernelResources>, CodeObjectError> {
    let note = metadata_note(elf)?;
    let mut reader = MsgPack { buf: note, pos: 0 };
    let root = reader.value(0)?;
    let kernels = root
        .get("amdhsa.kernels")
        .and_then(Value::as_array)
        .ok_or(CodeObjectError::BadMetadata("no amdhsa.kernels"))?;
    Ok(kernels
        .iter()
        .map(|k| {
            let n = |key: &str| k.get(key).and_then(Value::as_u64).unwrap_or(0);
            KernelResources {
                name: k.get(".name").and_then(Value::as_str).unwrap_or_default().to_string(),
                vgpr_count: n(".vgpr_count"),
                sgpr_count: n(".sgpr_count"),
                agpr_count: n(".agpr_count"),
                lds_bytes: n(".group_segment_fixed_size"),
                scratch_bytes: n(".private_segment_fixed_size"),
                vgpr_spill_count: n(".vgpr_spill_count"),
                sgpr_spill_count: n(".sgpr_spill_count"),
                wavefront_size: n(".wavefront_size"),
            }
        })
        .collect())
}

fn read<const N: usize>(b: &[u8], at: usize) -> Result<[u8; N], CodeObjectError> {
    b.get(at..at.checked_add(N).ok_or(CodeObjectError::Malformed(at))?)
        .map(|s| s.try_into().expect("slice has N bytes"))
        .ok_or(CodeObjectError::Malformed(at))
}

fn u16_at(b: &[u8], at: usize) -> Result<usize, CodeObjectError> {
    Ok(u16::from_le_bytes(read(b, at)?) as usize)
}
fn u32_at(b: &[u8], at: usize) -> Result<usize, CodeObjectError> {
    Ok(u32::from_le_bytes(read(b, at)?) as usize)
}
fn u64_at(b: &[u8], at: usize) -> Result<usize, CodeObjectError> {
    usize::try_from(u64::from_le_bytes(read(b, at)?)).map_err(|_| CodeObjectError::Malformed(at))
}

/// The descriptor of the AMDGPU metadata note, from the section headers.
fn metadata_note(elf: &[u8]) -> Result<&[u8], CodeObjectError> {
    if elf.get(..6) != Some(&[0x7f, b'E', b'L', b'F', 2, 1][..]) {
        return Err(CodeObjectError::NotElf);
    }
    let shoff = u64_at(elf, 0x28)?;
    let shentsize = u16_at(elf, 0x3a)?;
    let shnum = u16_at(elf, 0x3c)?;
    if shentsize < 0x28 {
        return Err(CodeObjectError::Malformed(0x3a));
    }
    for i in 0..shnum {
        let sh = i
            .checked_mul(shentsize)
            .and_then(|o| o.checked_add(shoff))
            .filter(|&sh| sh.checked_add(shentsize).is_some_and(|e| e <= elf.len()))
            .ok_or(CodeObjectError::Malformed(0x28))?;
        const SHT_NOTE: usize = 7;
        if u32_at(elf, sh + 4)? != SHT_NOTE {
            continue;
        }
        let (off, size) = (u64_at(elf, sh + 0x18)?, u64_at(elf, sh + 0x20)?);
        let end = off.checked_add(size).filter(|&e| e <= elf.len()).ok_or(CodeObjectError::Malformed(sh))?;
        let mut p = off;
        while p + 12 <= end {
            let (namesz, descsz, ty) = (u32_at(elf, p)?, u32_at(elf, p + 4)?, u32_at(elf, p + 8)? as u32);
            let name_at = p + 12;
            let desc_at = name_at + namesz.div_ceil(4) * 4;
            let desc_end = desc_at.checked_add(descsz).filter(|&e| e <= end).ok_or(CodeObjectError::Malformed(p))?;
            let name = elf.get(name_at..name_at + namesz).ok_or(CodeObjectError::Malformed(name_at))?;
            if ty == NT_AMDGPU_METADATA && name.starts_with(b"AMDGPU") {
                return Ok(&elf[desc_at..desc_end]);
            }
            p = desc_at + descsz.div_ceil(4) * 4;
        }
    }
    Err(CodeObjectError::NoMetadata)
}

/// The MessagePack values the metadata uses.
#[derive(Debug, PartialEq)]
enum Value {
    Nil,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    Bin(Vec<u8>),
    Array(Vec<Value>),
    Map(BTreeMap<String, Value>),
}

impl Value {
    fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Map(m) => m.get(key),
            _ => None,
        }
    }
    fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }
    fn as_u64(&self) -> Option<u64> {
        match self {
            Value::Int(i) => u64::try_from(*i).ok(),
            _ => None,
        }
    }
    fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
}

/// A bounded MessagePack reader: lengths are checked against the bytes left, nesting is capped.
struct MsgPack<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl MsgPack<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], CodeObjectError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or(CodeObjectError::BadMetadata("truncated"))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn uint(&mut self, n: usize) -> Result<u64, CodeObjectError> {
        Ok(self.take(n)?.iter().fold(0u64, |acc, &b| (acc << 8) | b as u64))
    }
    fn value(&mut self, depth: usize) -> Result<Value, CodeObjectError> {
        if depth > 16 {
            return Err(CodeObjectError::BadMetadata("nested too deep"));
        }
        let tag = self.take(1)?[0];
        Ok(match tag {
            0x00..=0x7f => Value::Int(tag as i128),
            0xe0..=0xff => Value::Int((tag as i8) as i128),
            0x80..=0x8f => self.map((tag & 0x0f) as usize, depth)?,
            0x90..=0x9f => self.array((tag & 0x0f) as usize, depth)?,
            0xa0..=0xbf => self.str((tag & 0x1f) as usize)?,
            0xc0 => Value::Nil,
            0xc2 => Value::Bool(false),
            0xc3 => Value::Bool(true),
            0xc4..=0xc6 => {
                let n = self.uint(1 << (tag - 0xc4))? as usize;
                Value::Bin(self.take(n)?.to_vec())
            }
            0xca => Value::Float(f32::from_bits(self.uint(4)? as u32) as f64),
            0xcb => Value::Float(f64::from_bits(self.uint(8)?)),
            0xcc..=0xcf => Value::Int(self.uint(1 << (tag - 0xcc))? as i128),
            0xd0..=0xd3 => {
                let n = 1 << (tag - 0xd0);
                let raw = self.uint(n)?;
                let shift = 64 - 8 * n as u32;
                Value::Int((((raw << shift) as i64) >> shift) as i128)
            }
            0xd9..=0xdb => {
                let n = self.uint(1 << (tag - 0xd9))? as usize;
                self.str(n)?
            }
            0xdc | 0xdd => {
                let n = self.uint(if tag == 0xdc { 2 } else { 4 })? as usize;
                self.array(n, depth)?
            }
            0xde | 0xdf => {
                let n = self.uint(if tag == 0xde { 2 } else { 4 })? as usize;
                self.map(n, depth)?
            }
            _ => return Err(CodeObjectError::BadMetadata("unsupported MessagePack type")),
        })
    }
    fn str(&mut self, n: usize) -> Result<Value, CodeObjectError> {
        Ok(Value::Str(String::from_utf8_lossy(self.take(n)?).into_owned()))
    }
    fn array(&mut self, n: usize, depth: usize) -> Result<Value, CodeObjectError> {
        let mut items = Vec::with_capacity(n.min(self.buf.len() - self.pos));
        for _ in 0..n {
            items.push(self.value(depth + 1)?);
        }
        Ok(Value::Array(items))
    }
    fn map(&mut self, n: usize, depth: usize) -> Result<Value, CodeObjectError> {
        let mut m = BTreeMap::new();
        for _ in 0..n {
            let key = match self.value(depth + 1)? {
                Value::Str(s) => s,
                _ => return Err(CodeObjectError::BadMetadata("map key is not a string")),
            };
            m.insert(key, self.value(depth + 1)?);
        }
        Ok(Value::Map(m))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert_eq!(amd_kernel_resources(b"not elf"), Err(CodeObjectError::NotElf));
        let mut elf = vec![0x7f, b'E', b'L', b'F', 2, 1];
        elf.resize(64, 0xff);
        assert!(amd_kernel_resources(&elf).is_err());
        let mut r = MsgPack { buf: &[0xdd, 0xff, 0xff, 0xff, 0xff], pos: 0 };
        assert!(r.value(0).is_err(), "a huge array count with no bytes behind it");
    }

    #[test]
    fn msgpack_scalars_decode() {
        let mut r = MsgPack { buf: &[0x82, 0xa1, b'a', 0xd1, 0xff, 0x38, 0xa1, b'b', 0xcd, 0x04, 0x00], pos: 0 };
        let v = r.value(0).unwrap();
        assert_eq!(v.get("a"), Some(&Value::Int(-200)));
        assert_eq!(v.get("b").and_then(Value::as_u64), Some(1024));
    }
}
