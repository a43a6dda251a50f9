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
