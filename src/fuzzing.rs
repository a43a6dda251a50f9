//! The body of the `gguf_reader` fuzz target, shared with the regression test that replays the
//! inputs it once crashed on (`fuzz/regressions/`).

use crate::gguf::GgufFile;
use crate::inspect::Summary;
use crate::quant;

/// Walks untrusted bytes the way `inspect` and the loader do: parse; then, if valid, every
/// tensor's bytes, dequantization of the small ones, every metadata value, and the model summary.
/// Must return (never panic, hang or over-allocate) for any input.
pub fn walk_untrusted_gguf(data: &[u8]) {
    let Ok(file) = GgufFile::from_bytes(data.to_vec()) else { return };
    for t in &file.tensors {
        let bytes = file.tensor_data(t);
        assert_eq!(bytes.len() as u64, t.n_bytes, "tensor views have their declared size");
        let _ = t.n_rows();
        if t.n_bytes <= 1 << 16 {
            let _ = quant::dequantize_to_vec(t.ty, bytes);
        }
    }
    for (_, value) in file.metadata.iter() {
        let _ = value.summary();
    }
    if let Ok(summary) = Summary::of(&file) {
        let _ = summary.to_string();
    }
}

/// The body of the `cache_entry` fuzz target: untrusted bytes as a cache entry file, as the same
/// file sealed with a valid hash (so that mutations reach the header and payload checks instead of
/// stopping at the hash), and as a code object for each kind of target. Must return (never panic,
/// hang or over-allocate) for any input.
pub fn walk_untrusted_cache_entry(data: &[u8]) {
    use crate::jit::{amd_kernel_resources, check_self_consistent, parse_entry, validate_code_object, Target};
    static TARGETS: std::sync::OnceLock<Vec<Target>> = std::sync::OnceLock::new();
    let targets = TARGETS.get_or_init(|| {
        ["gfx906", "gfx90a:sramecc+:xnack-", "gfx1030", "gfx1100", "sm_90", "sm_100a"]
            .iter()
            .map(|t| t.parse().expect("the fuzz targets parse"))
            .collect()
    });
    let walk = |file: &[u8]| {
        if let Ok((header, payload)) = parse_entry(file) {
            assert_eq!(payload.len() as u64, header.payload_len, "the payload has its declared length");
            if let Ok((checked, key)) = check_self_consistent(file) {
                assert_eq!(checked.key, key.hex());
                let target: Target = checked.target.parse().expect("a checked entry's target parses");
                validate_code_object(payload, &target, &checked.entry).expect("a checked entry's payload validates");
            }
        }
    };
    walk(data);
    let mut sealed = data.to_vec();
    sealed.extend_from_slice(blake3::hash(data).as_bytes());
    walk(&sealed);
    for target in targets {
        let _ = validate_code_object(data, target, "k");
    }
    let _ = amd_kernel_resources(data);
}
