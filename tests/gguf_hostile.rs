//! Hand-written broken GGUF files: each must be refused with its own typed error, naming the
//! right byte offset, and never panic.

use rocmforge::dtype::GgmlType;
use rocmforge::gguf::{Array, GgufError, GgufFile, GgufWriter, Value};

/// Writes GGUF fields byte by byte, remembering where things went.
#[derive(Default)]
struct Raw(Vec<u8>);

impl Raw {
    fn header(version: u32, n_tensors: u64, n_kv: u64) -> Raw {
        let mut r = Raw::default();
        r.bytes(b"GGUF").u32(version).u64(n_tensors).u64(n_kv);
        r
    }
    fn pos(&self) -> u64 {
        self.0.len() as u64
    }
    fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.0.extend_from_slice(b);
        self
    }
    fn u32(&mut self, v: u32) -> &mut Self {
        self.bytes(&v.to_le_bytes())
    }
    fn u64(&mut self, v: u64) -> &mut Self {
        self.bytes(&v.to_le_bytes())
    }
    fn str(&mut self, s: &str) -> &mut Self {
        self.u64(s.len() as u64).bytes(s.as_bytes())
    }
    fn kv_u32(&mut self, key: &str, v: u32) -> &mut Self {
        self.str(key).u32(4).u32(v)
    }
    /// A tensor info: name, dims, type id, data offset.
    fn tensor(&mut self, name: &str, shape: &[u64], ty: u32, offset: u64) -> &mut Self {
        self.str(name).u32(shape.len() as u32);
        for &d in shape {
            self.u64(d);
        }
        self.u32(ty).u64(offset)
    }
    /// Pads to the 32-byte default alignment and appends `n` data bytes.
    fn data(&mut self, n: usize) -> &mut Self {
        let padded = self.0.len().div_ceil(32) * 32;
        self.0.resize(padded, 0);
        self.0.extend(std::iter::repeat_n(0xAB, n));
        self
    }
    fn parse(&self) -> Result<GgufFile, GgufError> {
        GgufFile::from_bytes(self.0.clone())
    }
}

fn expect_err(raw: &Raw) -> GgufError {
    match raw.parse() {
        Ok(f) => panic!("a broken file was accepted: {f:?}"),
        Err(e) => {
            // Every error renders to a message (the user sees it), and offsets lie in the file.
            assert!(!e.to_string().is_empty());
            if let Some(off) = e.offset() {
                assert!(off <= raw.0.len() as u64 + u32::MAX as u64, "offset {off} is nonsense");
            }
            e
        }
    }
}

/// A small valid file with every value type, a nested array and two tensors.
fn valid_file() -> Vec<u8> {
    let mut w = GgufWriter::new();
    w.set_str("general.architecture", "llama")
        .set("u8", Value::U8(7))
        .set("i8", Value::I8(-7))
        .set("u16", Value::U16(700))
        .set("i16", Value::I16(-700))
        .set_u32("u32", 70_000)
        .set("i32", Value::I32(-70_000))
        .set_f32("f32", 0.5)
        .set("bool", Value::Bool(true))
        .set("u64", Value::U64(1 << 40))
        .set("i64", Value::I64(-(1 << 40)))
        .set("f64", Value::F64(0.25))
        .set("strings", Value::Array(Array::String(vec![b"a".to_vec(), b"bc".to_vec()])))
        .set("nested", Value::Array(Array::Array(vec![Array::I32(vec![1, 2]), Array::I32(vec![3])])));
    w.add_f32("a", &[4, 2], &[1.0; 8]);
    w.add_tensor("b", &[32], GgmlType::Q8_0, vec![1; 34]);
    w.to_bytes()
}

#[test]
fn the_valid_file_round_trips_through_writer_and_reader() {
    let f = GgufFile::from_bytes(valid_file()).expect("the writer's output should parse");
    assert_eq!(f.version, 3);
    assert_eq!(f.metadata.len(), 14);
    assert_eq!(f.metadata.get("i16"), Some(&Value::I16(-700)));
    assert_eq!(f.metadata.get_u64("u64").unwrap(), 1 << 40);
    assert_eq!(f.metadata.get_f32("f64").unwrap(), 0.25);
    assert_eq!(
        f.metadata.get("nested"),
        Some(&Value::Array(Array::Array(vec![Array::I32(vec![1, 2]), Array::I32(vec![3])])))
    );
    assert_eq!(f.metadata.get_array("nested").unwrap().type_description(), "array[array[i32]]");
    let a = f.tensor("a").unwrap();
    assert_eq!((a.shape.clone(), a.n_bytes, a.offset), (vec![4, 2], 32, 0));
    assert_eq!(f.tensor_data(a), &[1.0f32.to_le_bytes(); 8].concat()[..]);
    let b = f.tensor("b").unwrap();
    assert_eq!((b.offset % 32, b.n_bytes), (0, 34));
    assert_eq!(f.tensor_data(b), &[1u8; 34][..]);
    assert_eq!(f.data_offset % 32, 0);
}

#[test]
fn typed_getters_name_the_key_and_both_types() {
    let f = GgufFile::from_bytes(valid_file()).unwrap();
    let e = f.metadata.get_str("u32").unwrap_err().to_string();
    assert!(e.contains("\"u32\"") && e.contains("string") && e.contains("found u32"), "{e}");
    let e = f.metadata.get_u32("u64").unwrap_err().to_string();
    assert!(e.contains("fits in u32"), "{e}");
    let e = f.metadata.get_u64("i8").unwrap_err().to_string();
    assert!(e.contains("unsigned") && e.contains("found i8"), "{e}");
    let e = f.metadata.get_f32("missing.key").unwrap_err();
    assert!(matches!(e, GgufError::MissingKey { ref key } if key == "missing.key"));
    assert!(f.metadata.get_array("strings").is_ok());
}

#[test]
fn truncation_at_any_byte_is_refused() {
    let full = valid_file();
    for len in 0..full.len() {
        let cut = &full[..len];
        match GgufFile::from_bytes(cut.to_vec()) {
            Ok(_) if len >= full.len() - 31 && only_trailing_padding(&full, len) => {}
            Ok(_) => panic!("a file cut at byte {len} of {} was accepted", full.len()),
            Err(GgufError::BadMagic { .. }) => assert!(len < 4, "cut at {len}"),
            Err(GgufError::Truncated { offset, .. }) => assert!(offset <= len as u64, "cut at {len}, offset {offset}"),
            Err(GgufError::CountTooLarge { offset, .. }) => assert!(offset < len as u64),
            Err(GgufError::TensorOutOfBounds { section, data_offset, n_bytes, file_len, .. }) => {
                assert_eq!(file_len, len as u64);
                assert!(section + data_offset + n_bytes > file_len);
            }
            Err(other) => panic!("cut at {len}: unexpected error {other}"),
        }
    }
}

/// The writer pads the last tensor to the alignment; cutting only that padding leaves a valid file.
fn only_trailing_padding(full: &[u8], len: usize) -> bool {
    full[len..].iter().all(|&b| b == 0)
}

#[test]
fn bad_magic_is_refused() {
    let mut raw = Raw::default();
    raw.bytes(b"GGML").u32(3).u64(0).u64(0);
    assert!(matches!(expect_err(&raw), GgufError::BadMagic { found } if found == b"GGML"));
    let raw = Raw(b"GG".to_vec());
    assert!(matches!(expect_err(&raw), GgufError::BadMagic { .. }));
}

#[test]
fn unsupported_versions_are_refused_with_a_hint() {
    for (version, hint) in [(1, "version 1"), (4, ""), (3u32.swap_bytes(), "big-endian")] {
        let raw = Raw::header(version, 0, 0);
        let e = expect_err(&raw);
        assert!(matches!(e, GgufError::UnsupportedVersion { version: v, .. } if v == version));
        assert!(e.to_string().contains(hint), "{e}");
        assert_eq!(e.offset(), Some(4));
    }
    assert!(Raw::header(2, 0, 0).parse().is_ok(), "version 2 is read");
}

#[test]
fn string_length_beyond_the_file_is_refused_before_allocating() {
    let mut raw = Raw::header(3, 0, 1);
    let at = raw.pos();
    raw.u64(u64::MAX).bytes(b"key").bytes(&[0; 16]);
    let e = expect_err(&raw);
    assert!(matches!(e, GgufError::CountTooLarge { offset, count: u64::MAX, .. } if offset == at), "{e}");

    let mut raw = Raw::header(3, 0, 1);
    raw.str("k").u32(8);
    let at = raw.pos();
    raw.u64(1 << 50).bytes(b"short");
    assert!(matches!(expect_err(&raw), GgufError::CountTooLarge { offset, .. } if offset == at));
}

#[test]
fn array_counts_beyond_the_file_are_refused() {
    for (elem, count) in [(4u32, 1u64 << 62), (8, 1000), (9, 1 << 40), (0, 100)] {
        let mut raw = Raw::header(3, 0, 1);
        raw.str("arr").u32(9).u32(elem);
        let at = raw.pos();
        raw.u64(count).bytes(&[0; 40]);
        let e = expect_err(&raw);
        assert!(matches!(e, GgufError::CountTooLarge { offset, count: c, .. } if offset == at && c == count), "{e}");
    }
}

#[test]
fn huge_tensor_and_key_counts_are_refused() {
    let raw = Raw::header(3, u64::MAX, 0);
    assert!(matches!(expect_err(&raw), GgufError::CountTooLarge { offset: 8, .. }));
    let raw = Raw::header(3, 0, 1 << 60);
    assert!(matches!(expect_err(&raw), GgufError::CountTooLarge { offset: 16, .. }));
}

#[test]
fn unknown_value_type_is_refused() {
    let mut raw = Raw::header(3, 0, 1);
    raw.str("k");
    let at = raw.pos();
    raw.u32(13).u32(0);
    assert!(matches!(expect_err(&raw), GgufError::UnknownValueType { offset, id: 13 } if offset == at));
}

#[test]
fn deeply_nested_arrays_are_refused() {
    let mut raw = Raw::header(3, 0, 1);
    raw.str("deep").u32(9);
    for _ in 0..100 {
        raw.u32(9).u64(1);
    }
    raw.u32(4).u64(0);
    assert!(matches!(expect_err(&raw), GgufError::NestingTooDeep { .. }));
}

#[test]
fn invalid_utf8_keys_and_names_are_refused() {
    let mut raw = Raw::header(3, 0, 1);
    raw.u64(2).bytes(&[0xff, 0xfe]).u32(4).u32(1);
    assert!(matches!(expect_err(&raw), GgufError::InvalidUtf8 { offset: 24, .. }));
}

#[test]
fn duplicate_keys_are_refused() {
    let mut raw = Raw::header(3, 0, 2);
    raw.kv_u32("a.b", 1);
    let at = raw.pos();
    raw.kv_u32("a.b", 2);
    assert!(matches!(expect_err(&raw), GgufError::DuplicateKey { offset, ref key } if offset == at && key == "a.b"));
}

#[test]
fn duplicate_tensor_names_are_refused() {
    let mut raw = Raw::header(3, 2, 0);
    raw.tensor("t", &[8], 0, 0);
    let at = raw.pos();
    raw.tensor("t", &[8], 0, 32).data(64);
    assert!(matches!(expect_err(&raw), GgufError::DuplicateTensor { offset, ref name } if offset == at && name == "t"));
}

#[test]
fn bad_alignment_values_are_refused() {
    for a in [0u32, 3, 48] {
        let mut raw = Raw::header(3, 0, 1);
        raw.str("general.alignment").u32(4);
        let at = raw.pos();
        raw.u32(a);
        assert!(
            matches!(expect_err(&raw), GgufError::BadAlignment { offset, value } if offset == at && value == a as u64)
        );
    }
    let mut raw = Raw::header(3, 0, 1);
    raw.str("general.alignment").u32(8).str("32");
    assert!(matches!(expect_err(&raw), GgufError::WrongType { .. }));
}

#[test]
fn custom_alignment_places_the_data_section() {
    let mut raw = Raw::header(3, 1, 1);
    raw.kv_u32("general.alignment", 64).tensor("t", &[4], 0, 0);
    let data_at = raw.pos().div_ceil(64) * 64;
    raw.0.resize(data_at as usize, 0);
    raw.bytes(&[0x11; 16]);
    let f = raw.parse().expect("a 64-aligned file should parse");
    assert_eq!((f.alignment, f.data_offset), (64, data_at));
    assert_eq!(f.tensor_data(f.tensor("t").unwrap()), &[0x11; 16]);

    let mut raw = Raw::header(3, 1, 1);
    raw.kv_u32("general.alignment", 64);
    let at = raw.pos();
    raw.tensor("t", &[4], 0, 32).data(128);
    assert!(
        matches!(expect_err(&raw), GgufError::MisalignedTensor { offset, data_offset: 32, alignment: 64, .. } if offset == at)
    );
}

#[test]
fn too_many_dimensions_are_refused() {
    let mut raw = Raw::header(3, 1, 0);
    raw.tensor("t", &[1, 1, 1, 1, 1], 0, 0).data(4);
    assert!(matches!(expect_err(&raw), GgufError::TooManyDims { offset: 24, n_dims: 5, .. }));
}

#[test]
fn dimension_products_that_overflow_are_refused() {
    let mut raw = Raw::header(3, 1, 0);
    raw.tensor("big", &[1 << 32, 1 << 32], 0, 0).data(64);
    assert!(matches!(expect_err(&raw), GgufError::ShapeOverflow { offset: 24, .. }));

    // Elements fit in 63 bits, bytes (×4 for F32) do not.
    let mut raw = Raw::header(3, 1, 0);
    raw.tensor("wide", &[1 << 31, 1 << 31], 0, 0).data(64);
    assert!(matches!(expect_err(&raw), GgufError::ShapeOverflow { .. }));

    // Found by the fuzzer: a zero row length hides an overflowing row count from the element count.
    let mut raw = Raw::header(3, 1, 0);
    raw.tensor("empty-rows", &[0, 1 << 40, 1 << 40], 0, 0).data(64);
    assert!(matches!(expect_err(&raw), GgufError::ShapeOverflow { .. }));

    let mut raw = Raw::header(3, 1, 0);
    raw.tensor("neg", &[u64::MAX], 0, 0).data(64);
    assert!(matches!(expect_err(&raw), GgufError::DimTooLarge { value: u64::MAX, .. }));
}

#[test]
fn unknown_tensor_types_are_refused() {
    for id in [4u32, 5, 31, 1000] {
        let mut raw = Raw::header(3, 1, 0);
        raw.tensor("t", &[32], id, 0).data(64);
        let at = 24 + 8 + 1 + 4 + 8; // header, name length, name, n_dims, one dim
        assert!(
            matches!(expect_err(&raw), GgufError::UnknownTensorType { offset, id: i, .. } if offset == at && i == id)
        );
    }
}

#[test]
fn rows_that_split_a_block_are_refused() {
    let mut raw = Raw::header(3, 1, 0);
    raw.tensor("q", &[100, 2], GgmlType::Q4_K as u32, 0).data(1024);
    assert!(matches!(expect_err(&raw), GgufError::PartialBlock { ne0: 100, block: 256, .. }));
}

#[test]
fn misaligned_tensor_offsets_are_refused() {
    let mut raw = Raw::header(3, 1, 0);
    raw.tensor("t", &[4], 0, 4).data(64);
    assert!(matches!(expect_err(&raw), GgufError::MisalignedTensor { offset: 24, data_offset: 4, alignment: 32, .. }));
}

#[test]
fn tensor_data_outside_the_file_is_refused() {
    let mut raw = Raw::header(3, 1, 0);
    raw.tensor("t", &[16], 0, 0).data(63);
    assert!(
        matches!(expect_err(&raw), GgufError::TensorOutOfBounds { offset: 24, ref name, n_bytes: 64, .. } if name == "t")
    );

    let mut raw = Raw::header(3, 1, 0);
    raw.tensor("far", &[16], 0, u64::MAX - 31).data(64);
    let e = expect_err(&raw);
    assert!(matches!(e, GgufError::TensorOutOfBounds { offset: 24, .. }), "{e}");
}

#[test]
fn overlapping_tensors_are_refused() {
    let mut raw = Raw::header(3, 2, 0);
    raw.tensor("a", &[16], 0, 0).tensor("b", &[16], 0, 64).data(128);
    let data = raw.parse().expect("disjoint tensors are fine").data_offset;

    let mut raw = Raw::header(3, 2, 0);
    raw.tensor("a", &[16], 0, 64).tensor("b", &[16], 0, 0).data(128);
    raw.parse().expect("tensors listed out of file order are fine");

    // "a" spans data bytes 64..192, "b" 0..128: they share 64..128.
    let mut raw = Raw::header(3, 2, 0);
    raw.tensor("a", &[32], 0, 64).tensor("b", &[32], 0, 0).data(256);
    let e = expect_err(&raw);
    assert!(
        matches!(e, GgufError::TensorOverlap { ref first, ref second, second_start, .. }
            if first == "b" && second == "a" && second_start == data + 64),
        "{e}"
    );
}

#[test]
fn empty_and_tiny_files_are_refused() {
    assert!(matches!(GgufFile::from_bytes(vec![]), Err(GgufError::BadMagic { .. })));
    let dir = std::env::temp_dir().join(format!("rocmforge-empty-{}", std::process::id()));
    std::fs::write(&dir, b"").unwrap();
    assert!(matches!(GgufFile::open(&dir), Err(GgufError::BadMagic { .. })));
    std::fs::remove_file(&dir).unwrap();
    let e = GgufFile::open("/nonexistent/model.gguf").unwrap_err();
    assert!(e.to_string().contains("/nonexistent/model.gguf"), "{e}");
}
