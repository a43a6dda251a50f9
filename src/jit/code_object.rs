//! Code objects as the drivers take them: every payload checked before it reaches
//! `hipModuleLoadData` / `cuModuleLoadData` (which take no length and trust the ELF headers), and
//! AMD per-kernel resource use (VGPRs, SGPRs, LDS, scratch, spills) read from the ELF's
//! `NT_AMDGPU_METADATA` note, a MessagePack map (AMDGPUUsage, "Code Object V3+ Metadata").
//!
//! The check (`validate_code_object`): an ELF64 little-endian file of the target's machine
//! (EM_AMDGPU 224 with the processor in `e_flags` and, from code object v4, the xnack/sramecc
//! settings the target names; EM_CUDA 190 with the SM in `e_flags`), whose header, program-header
//! and section-header tables and every section and segment lie inside the file, and whose symbol
//! table defines the kernel's entry point as a function.

use std::collections::BTreeMap;

use super::target::Target;

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
    #[error("code object of {size} bytes exceeds the {max}-byte limit")]
    TooLarge { size: usize, max: usize },
    #[error("code object is for machine {found} (e_machine), expected {expected} for {target}")]
    WrongMachine { found: u16, expected: u16, target: String },
    #[error("code object is for {found}, not {target} (e_flags {flags:#x})")]
    WrongProcessor { found: String, target: String, flags: u32 },
    #[error("code object for {target}: {feature} is {found} in e_flags {flags:#x}")]
    WrongFeature { target: String, feature: &'static str, found: &'static str, flags: u32 },
    #[error("no e_flags processor id is known for {0}: its code objects cannot be checked")]
    UnknownProcessor(String),
    #[error("code object ELF type {0} is not loadable (expected an executable or shared object)")]
    NotLoadable(u16),
    #[error("code object {what} {index} (offset {offset}, size {size}) lies outside the {len}-byte file")]
    OutOfBounds { what: &'static str, index: usize, offset: u64, size: u64, len: usize },
    #[error("code object has no symbol table")]
    NoSymbolTable,
    #[error("code object does not define the kernel {0:?}")]
    MissingKernel(String),
    #[error("code object truncated or malformed at byte {0}")]
    Malformed(usize),
    #[error("code object has no NT_AMDGPU_METADATA note")]
    NoMetadata,
    #[error("code object metadata is not valid MessagePack: {0}")]
    BadMetadata(&'static str),
}

const NT_AMDGPU_METADATA: u32 = 32;

/// The largest code object accepted (ours are a few KiB to a few hundred KiB).
pub const MAX_CODE_OBJECT_BYTES: usize = 64 << 20;

const EM_CUDA: u16 = 190;
const EM_AMDGPU: u16 = 224;
const ELFOSABI_AMDGPU_HSA: u8 = 64;
/// `e_ident[EI_ABIVERSION]` of AMD HSA code object v4; from it on, e_flags carry xnack/sramecc
/// as two-bit settings (unsupported, any, off, on).
const ELFABIVERSION_AMDGPU_HSA_V4: u8 = 2;
const EF_AMDGPU_MACH: u32 = 0xff;
const EF_AMDGPU_FEATURE_XNACK_V4: u32 = 0x300;
const EF_AMDGPU_FEATURE_SRAMECC_V4: u32 = 0xc00;

/// `EF_AMDGPU_MACH_AMDGCN_*`: e_flags processor ids, as LLVM's `BinaryFormat/ELF.h` assigns them.
#[rustfmt::skip]
const AMDGPU_MACH: &[(&str, u32)] = &[
    ("gfx600", 0x20), ("gfx601", 0x21), ("gfx700", 0x22), ("gfx701", 0x23), ("gfx702", 0x24),
    ("gfx703", 0x25), ("gfx704", 0x26), ("gfx801", 0x28), ("gfx802", 0x29), ("gfx803", 0x2a),
    ("gfx810", 0x2b), ("gfx900", 0x2c), ("gfx902", 0x2d), ("gfx904", 0x2e), ("gfx906", 0x2f),
    ("gfx908", 0x30), ("gfx909", 0x31), ("gfx90c", 0x32), ("gfx1010", 0x33), ("gfx1011", 0x34),
    ("gfx1012", 0x35), ("gfx1030", 0x36), ("gfx1031", 0x37), ("gfx1032", 0x38), ("gfx1033", 0x39),
    ("gfx602", 0x3a), ("gfx705", 0x3b), ("gfx805", 0x3c), ("gfx1035", 0x3d), ("gfx1034", 0x3e),
    ("gfx90a", 0x3f), ("gfx940", 0x40), ("gfx1100", 0x41), ("gfx1013", 0x42), ("gfx1150", 0x43),
    ("gfx1103", 0x44), ("gfx1036", 0x45), ("gfx1101", 0x46), ("gfx1102", 0x47), ("gfx1200", 0x48),
    ("gfx1250", 0x49), ("gfx1151", 0x4a), ("gfx941", 0x4b), ("gfx942", 0x4c), ("gfx1201", 0x4e),
    ("gfx950", 0x4f), ("gfx1152", 0x55), ("gfx1154", 0x57), ("gfx1153", 0x58), ("gfx1251", 0x5a),
    ("gfx1172", 0x5c), ("gfx1170", 0x5d), ("gfx1171", 0x5e),
];

fn amdgpu_mach_name(mach: u32) -> String {
    AMDGPU_MACH
        .iter()
        .find(|(_, m)| *m == mach)
        .map(|(n, _)| n.to_string())
        .unwrap_or(format!("processor id {mach:#x}"))
}

/// What a payload must be to reach a driver for `target`: see the module comment.
pub fn validate_code_object(elf: &[u8], target: &Target, entry: &str) -> Result<(), CodeObjectError> {
    if elf.len() > MAX_CODE_OBJECT_BYTES {
        return Err(CodeObjectError::TooLarge { size: elf.len(), max: MAX_CODE_OBJECT_BYTES });
    }
    // Magic, ELFCLASS64, ELFDATA2LSB, EV_CURRENT.
    if elf.len() < 64 || elf[..7] != [0x7f, b'E', b'L', b'F', 2, 1, 1] {
        return Err(CodeObjectError::NotElf);
    }
    let e_type = u16_at(elf, 0x10)? as u16;
    let e_machine = u16_at(elf, 0x12)? as u16;
    let e_flags = u32_at(elf, 0x30)? as u32;
    match target {
        Target::Amd { processor, features } => {
            let wrong =
                |found| CodeObjectError::WrongMachine { found, expected: EM_AMDGPU, target: target.to_string() };
            if e_machine != EM_AMDGPU || elf[7] != ELFOSABI_AMDGPU_HSA {
                return Err(wrong(e_machine));
            }
            let (_, mach) = AMDGPU_MACH
                .iter()
                .find(|(n, _)| n == processor)
                .ok_or_else(|| CodeObjectError::UnknownProcessor(processor.clone()))?;
            if e_flags & EF_AMDGPU_MACH != *mach {
                return Err(CodeObjectError::WrongProcessor {
                    found: amdgpu_mach_name(e_flags & EF_AMDGPU_MACH),
                    target: target.to_string(),
                    flags: e_flags,
                });
            }
            if elf[8] >= ELFABIVERSION_AMDGPU_HSA_V4 {
                check_amd_feature(target, features, "xnack", e_flags, EF_AMDGPU_FEATURE_XNACK_V4)?;
                check_amd_feature(target, features, "sramecc", e_flags, EF_AMDGPU_FEATURE_SRAMECC_V4)?;
            }
        }
        Target::Nvidia { sm, .. } => {
            if e_machine != EM_CUDA {
                return Err(CodeObjectError::WrongMachine {
                    found: e_machine,
                    expected: EM_CUDA,
                    target: target.to_string(),
                });
            }
            // The SM is the low byte of e_flags up to sm_90's ELF ABI and the second byte in the
            // Blackwell-era one (cuobjdump: sm_90 0x5a055a, sm_100 0x6006402); SM numbers (>= 30)
            // never collide with the other byte's small flag values.
            let (low, second) = (e_flags & 0xff, (e_flags >> 8) & 0xff);
            if low != *sm && second != *sm {
                return Err(CodeObjectError::WrongProcessor {
                    found: format!("sm_{low} / sm_{second}"),
                    target: target.to_string(),
                    flags: e_flags,
                });
            }
        }
    }
    const ET_EXEC: u16 = 2;
    const ET_DYN: u16 = 3;
    if e_type != ET_EXEC && e_type != ET_DYN {
        return Err(CodeObjectError::NotLoadable(e_type));
    }
    let sections = check_layout(elf)?;
    if !defines_function(elf, &sections, entry)? {
        return Err(CodeObjectError::MissingKernel(entry.to_string()));
    }
    Ok(())
}

/// The smallest ELF that passes [`validate_code_object`] for `target` and `entry`: a header, a
/// 4-byte `.text`, and a symbol table defining `entry`. It runs nowhere; it stands in for a
/// compiler's output in the cache's tests and seeds its fuzzing.
#[doc(hidden)]
pub fn minimal_code_object(target: &Target, entry: &str) -> Vec<u8> {
    let (machine, osabi, abiversion, flags) = match target {
        Target::Amd { processor, features } => {
            let mach = AMDGPU_MACH.iter().find(|(n, _)| n == processor).map(|(_, m)| *m).unwrap_or(0);
            let setting = |name: &str, unit: u32| match features.iter().find_map(|f| f.strip_prefix(name)) {
                Some("+") => 3 * unit,
                Some(_) => 2 * unit,
                None => unit, // any
            };
            (
                EM_AMDGPU,
                ELFOSABI_AMDGPU_HSA,
                ELFABIVERSION_AMDGPU_HSA_V4,
                mach | setting("xnack", 0x100) | setting("sramecc", 0x400),
            )
        }
        Target::Nvidia { sm, .. } => (EM_CUDA, 0x33, 7, (*sm << 16) | 0x500 | *sm),
    };
    let text = [0u8; 4];
    let strtab: Vec<u8> = [&[0u8][..], entry.as_bytes(), &[0]].concat();
    let shstrtab = b"\0.text\0.symtab\0.strtab\0.shstrtab\0";
    let mut symtab = vec![0u8; 24]; // the null symbol
    symtab.extend_from_slice(&1u32.to_le_bytes()); // st_name
    symtab.push(0x12); // STB_GLOBAL, STT_FUNC
    symtab.push(0);
    symtab.extend_from_slice(&1u16.to_le_bytes()); // .text
    symtab.extend_from_slice(&0u64.to_le_bytes());
    symtab.extend_from_slice(&(text.len() as u64).to_le_bytes());
    let mut body = Vec::new();
    let mut place = |bytes: &[u8]| {
        let at = 64 + body.len();
        body.extend_from_slice(bytes);
        while body.len() % 8 != 0 {
            body.push(0);
        }
        (at as u64, bytes.len() as u64)
    };
    let text_at = place(&text);
    let symtab_at = place(&symtab);
    let strtab_at = place(&strtab);
    let shstrtab_at = place(shstrtab);
    let shoff = 64 + body.len() as u64;
    let mut out = vec![0x7f, b'E', b'L', b'F', 2, 1, 1, osabi, abiversion, 0, 0, 0, 0, 0, 0, 0];
    out.extend_from_slice(&3u16.to_le_bytes()); // ET_DYN
    out.extend_from_slice(&machine.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes()); // e_version
    out.extend_from_slice(&0u64.to_le_bytes()); // e_entry
    out.extend_from_slice(&0u64.to_le_bytes()); // e_phoff
    out.extend_from_slice(&shoff.to_le_bytes());
    out.extend_from_slice(&flags.to_le_bytes());
    for v in [64u16, 56, 0, 64, 5, 4] {
        out.extend_from_slice(&v.to_le_bytes()); // ehsize, phentsize, phnum, shentsize, shnum, shstrndx
    }
    out.extend_from_slice(&body);
    let mut section = |name: u32, ty: u32, (offset, size): (u64, u64), link: u32, info: u32, entsize: u64| {
        out.extend_from_slice(&name.to_le_bytes());
        out.extend_from_slice(&ty.to_le_bytes());
        for v in [0u64, 0, offset, size] {
            out.extend_from_slice(&v.to_le_bytes()); // flags, addr, offset, size
        }
        out.extend_from_slice(&link.to_le_bytes());
        out.extend_from_slice(&info.to_le_bytes());
        out.extend_from_slice(&8u64.to_le_bytes());
        out.extend_from_slice(&entsize.to_le_bytes());
    };
    section(0, 0, (0, 0), 0, 0, 0);
    section(1, 1, text_at, 0, 0, 0);
    section(7, 2, symtab_at, 3, 1, 24);
    section(15, 3, strtab_at, 0, 0, 0);
    section(23, 3, shstrtab_at, 0, 0, 0);
    out
}

/// A feature the target names must have that setting in e_flags; one it leaves unnamed must be
/// "any" or "unsupported" (code built for one setting runs only on GPUs in that mode).
fn check_amd_feature(
    target: &Target,
    features: &[String],
    name: &'static str,
    flags: u32,
    mask: u32,
) -> Result<(), CodeObjectError> {
    let unit = mask & mask.wrapping_neg(); // the mask's lowest bit: unsupported 0, any 1, off 2, on 3
    let found = match (flags & mask) / unit {
        0 => "unsupported",
        1 => "any",
        2 => "off",
        _ => "on",
    };
    let wanted = features.iter().find_map(|f| f.strip_prefix(name)).map(|s| if s == "+" { "on" } else { "off" });
    let ok = match wanted {
        Some(w) => found == w,
        None => found == "any" || found == "unsupported",
    };
    if ok {
        Ok(())
    } else {
        Err(CodeObjectError::WrongFeature { target: target.to_string(), feature: name, found, flags })
    }
}

/// One section header's fields that the checks use.
struct Section {
    ty: u32,
    flags: usize,
    offset: usize,
    size: usize,
    link: usize,
    entsize: usize,
}

/// Checks that the header tables and every section and segment lie inside the file; returns the
/// section headers.
fn check_layout(elf: &[u8]) -> Result<Vec<Section>, CodeObjectError> {
    let len = elf.len();
    let out = |what, index, offset: usize, size: usize| CodeObjectError::OutOfBounds {
        what,
        index,
        offset: offset as u64,
        size: size as u64,
        len,
    };
    let within = |offset: usize, size: usize| offset.checked_add(size).is_some_and(|end| end <= len);
    if u16_at(elf, 0x34)? != 64 {
        return Err(CodeObjectError::Malformed(0x34)); // e_ehsize
    }
    let (phoff, phentsize, phnum) = (u64_at(elf, 0x20)?, u16_at(elf, 0x36)?, u16_at(elf, 0x38)?);
    if phnum > 0 {
        if phentsize != 56 {
            return Err(CodeObjectError::Malformed(0x36));
        }
        if !within(phoff, phnum * 56) {
            return Err(out("program header table", 0, phoff, phnum * 56));
        }
        for i in 0..phnum {
            let ph = phoff + i * 56;
            let (offset, filesz) = (u64_at(elf, ph + 8)?, u64_at(elf, ph + 0x20)?);
            if !within(offset, filesz) {
                return Err(out("segment", i, offset, filesz));
            }
        }
    }
    let (shoff, shentsize, shnum, shstrndx) =
        (u64_at(elf, 0x28)?, u16_at(elf, 0x3a)?, u16_at(elf, 0x3c)?, u16_at(elf, 0x3e)?);
    let mut sections = Vec::with_capacity(shnum);
    if shnum > 0 {
        if shentsize != 64 {
            return Err(CodeObjectError::Malformed(0x3a));
        }
        if !within(shoff, shnum * 64) {
            return Err(out("section header table", 0, shoff, shnum * 64));
        }
        if shstrndx >= shnum {
            return Err(CodeObjectError::Malformed(0x3e));
        }
        for i in 0..shnum {
            let sh = shoff + i * 64;
            let s = Section {
                ty: u32_at(elf, sh + 4)? as u32,
                flags: u64_at(elf, sh + 8)?,
                offset: u64_at(elf, sh + 0x18)?,
                size: u64_at(elf, sh + 0x20)?,
                link: u32_at(elf, sh + 0x28)?,
                entsize: u64_at(elf, sh + 0x38)?,
            };
            const SHT_NOBITS: u32 = 8;
            if s.ty != SHT_NOBITS && !within(s.offset, s.size) {
                return Err(out("section", i, s.offset, s.size));
            }
            sections.push(s);
        }
    }
    Ok(sections)
}

/// Does the symbol table define `name` as a function (STT_FUNC in a section)?
fn defines_function(elf: &[u8], sections: &[Section], name: &str) -> Result<bool, CodeObjectError> {
    const SHT_SYMTAB: u32 = 2;
    const SHT_STRTAB: u32 = 3;
    const STT_FUNC: u8 = 2;
    let mut any_symtab = false;
    for symtab in sections.iter().filter(|s| s.ty == SHT_SYMTAB) {
        any_symtab = true;
        let strtab = sections.get(symtab.link).filter(|s| s.ty == SHT_STRTAB).ok_or(CodeObjectError::NoSymbolTable)?;
        if symtab.entsize != 24 {
            return Err(CodeObjectError::NoSymbolTable);
        }
        let strings = &elf[strtab.offset..strtab.offset + strtab.size]; // in bounds: check_layout
        for i in 0..symtab.size / 24 {
            let sym = symtab.offset + i * 24;
            let (st_name, st_info, st_shndx) = (u32_at(elf, sym)?, elf[sym + 4], u16_at(elf, sym + 6)?);
            if st_info & 0xf != STT_FUNC || st_shndx == 0 || st_shndx >= sections.len() {
                continue;
            }
            let Some(rest) = strings.get(st_name..) else { continue };
            let sym_name = rest.split(|&b| b == 0).next().unwrap_or_default();
            if sym_name == name.as_bytes() && rest.len() > sym_name.len() {
                return Ok(true);
            }
        }
    }
    if any_symtab {
        Ok(false)
    } else {
        Err(CodeObjectError::NoSymbolTable)
    }
}

/// The processor an AMD code object is for (from `e_flags`), and how many int8 matrix-unit
/// instructions its executable sections hold: `v_mfma_i32_16x16x16i8` (CDNA 1-2, VOP3P opcode 0x55)
/// or `v_mfma_i32_16x16x32_i8` (CDNA 3-4, 0x57) on gfx9 (encoding bits 31:23 = 0x1a7), and
/// `v_wmma_i32_16x16x16_iu8` (opcode 0x44) on gfx11/gfx12 (bits 31:24 = 0xcc), as llvm-objdump
/// disassembles them. Instructions are 32-bit aligned, so every word is tried as an instruction's
/// first: the count is exact for code the decoder reads as these instructions, and a word of
/// another instruction that happens to match (a literal) would add one — the tests hold targets
/// without a matrix unit to 0 with the same scan.
pub fn amd_int8_matrix_instructions(elf: &[u8]) -> Result<(String, usize), CodeObjectError> {
    amd_matrix_instructions(elf, &[0x55, 0x57], 0x44)
}

/// The processor an AMD code object is for, and how many f16 matrix-unit instructions with f32
/// accumulators its executable sections hold: `v_mfma_f32_16x16x16f16` (CDNA 1-4, VOP3P opcode
/// 0x4d, bits 31:23 = 0x1a7) and `v_wmma_f32_16x16x16_f16` (RDNA 3-4, opcode 0x40, bits 31:24 =
/// 0xcc), as llvm-objdump disassembles them (flash attention's products). Counted word by word as
/// [`amd_int8_matrix_instructions`] counts.
pub fn amd_f16_matrix_instructions(elf: &[u8]) -> Result<(String, usize), CodeObjectError> {
    amd_matrix_instructions(elf, &[0x4d], 0x40)
}

/// The processor and the count of words in executable sections that decode as a gfx9 MFMA with
/// one of `mfma_ops` (bits 31:23 = 0x1a7) or, on gfx11/gfx12, a WMMA with `wmma_op` (bits 31:24 =
/// 0xcc): the opcode in bits 22:16.
fn amd_matrix_instructions(elf: &[u8], mfma_ops: &[u32], wmma_op: u32) -> Result<(String, usize), CodeObjectError> {
    const SHF_EXECINSTR: usize = 4;
    let processor = amdgpu_mach_name(u32_at(elf, 0x30)? as u32 & 0xff);
    let sections = check_layout(elf)?;
    let gfx9 = processor.starts_with("gfx9");
    let gfx11_12 = processor.starts_with("gfx11") || processor.starts_with("gfx12");
    let is_matrix = |w: u32| {
        let op = (w >> 16) & 0x7f;
        (gfx9 && w >> 23 == 0x1a7 && mfma_ops.contains(&op)) || (gfx11_12 && w >> 24 == 0xcc && op == wmma_op)
    };
    let mut count = 0;
    for s in sections.iter().filter(|s| s.flags & SHF_EXECINSTR != 0 && s.ty != 8) {
        let text = &elf[s.offset..s.offset + s.size];
        count += text.chunks_exact(4).filter(|c| is_matrix(u32::from_le_bytes([c[0], c[1], c[2], c[3]]))).count();
    }
    Ok((processor, count))
}

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

    fn t(s: &str) -> Target {
        s.parse().unwrap()
    }

    #[test]
    fn a_code_object_passes_only_for_its_own_target_and_entry() {
        for target in ["gfx906", "gfx90a:sramecc+:xnack-", "gfx1030", "sm_90", "sm_100"] {
            let elf = minimal_code_object(&t(target), "k");
            assert_eq!(validate_code_object(&elf, &t(target), "k"), Ok(()), "{target}");
            assert!(matches!(validate_code_object(&elf, &t(target), "other"), Err(CodeObjectError::MissingKernel(_))));
        }
        let gfx906 = minimal_code_object(&t("gfx906"), "k");
        let e = validate_code_object(&gfx906, &t("gfx90a"), "k").unwrap_err();
        assert_eq!(e.to_string(), "code object is for gfx906, not gfx90a (e_flags 0x52f)");
        assert!(matches!(validate_code_object(&gfx906, &t("sm_90"), "k"), Err(CodeObjectError::WrongMachine { .. })));
        let xnack_off = minimal_code_object(&t("gfx90a:xnack-"), "k");
        assert!(matches!(
            validate_code_object(&xnack_off, &t("gfx90a:xnack+"), "k"),
            Err(CodeObjectError::WrongFeature { feature: "xnack", found: "off", .. })
        ));
        assert!(validate_code_object(&xnack_off, &t("gfx90a"), "k").is_err(), "built for xnack- only");
        let sm80 = minimal_code_object(&t("sm_80"), "k");
        assert!(matches!(validate_code_object(&sm80, &t("sm_90"), "k"), Err(CodeObjectError::WrongProcessor { .. })));
    }

    #[test]
    fn sizes_outside_the_file_are_refused_before_anything_is_read_through_them() {
        let good = minimal_code_object(&t("gfx90a"), "k");
        let shoff = u64::from_le_bytes(good[0x28..0x30].try_into().unwrap()) as usize;
        let cases: [(&str, usize, u64); 4] = [
            ("section header table past the end", 0x28, good.len() as u64),
            ("a section's size past the end", shoff + 64 + 0x20, 1 << 40),
            ("a section's offset wrapping around", shoff + 64 + 0x18, u64::MAX - 2),
            ("a program header table past the end", 0x20, good.len() as u64 + 1),
        ];
        for (what, at, value) in cases {
            let mut elf = good.clone();
            elf[at..at + 8].copy_from_slice(&value.to_le_bytes());
            if what.contains("program") {
                elf[0x38..0x3a].copy_from_slice(&1u16.to_le_bytes());
            }
            let e = validate_code_object(&elf, &t("gfx90a"), "k").unwrap_err();
            assert!(matches!(e, CodeObjectError::OutOfBounds { .. }), "{what}: {e}");
        }
        let mut truncated = good.clone();
        truncated.truncate(good.len() - 10);
        assert!(validate_code_object(&truncated, &t("gfx90a"), "k").is_err());
        assert_eq!(validate_code_object(b"\x7fELF", &t("gfx90a"), "k"), Err(CodeObjectError::NotElf));
    }

    #[test]
    fn msgpack_scalars_decode() {
        let mut r = MsgPack { buf: &[0x82, 0xa1, b'a', 0xd1, 0xff, 0x38, 0xa1, b'b', 0xcd, 0x04, 0x00], pos: 0 };
        let v = r.value(0).unwrap();
        assert_eq!(v.get("a"), Some(&Value::Int(-200)));
        assert_eq!(v.get("b").and_then(Value::as_u64), Some(1024));
    }
}
