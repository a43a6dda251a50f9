//! Writes small valid GGUF files (a seed corpus for `cargo fuzz run gguf_reader`): a tiny model of
//! each architecture with a tensor of every block format the CPU reference supports.
//!
//! usage: cargo run --example write_fuzz_seeds -- DIR

use rocmforge::dtype::GgmlType;
use rocmforge::gguf::{Array, GgufWriter, Value};
use rocmforge::quant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args().nth(1).ok_or("usage: write_fuzz_seeds DIR")?;
    std::fs::create_dir_all(&dir)?;
    for arch in ["llama", "qwen2", "gemma", "gemma2", "gemma3"] {
        let mut w = GgufWriter::new();
        w.set_str("general.architecture", arch)
            .set_u32(&format!("{arch}.block_count"), 2)
            .set_u32(&format!("{arch}.context_length"), 128)
            .set_u32(&format!("{arch}.embedding_length"), 256)
            .set_u32(&format!("{arch}.feed_forward_length"), 512)
            .set_u32(&format!("{arch}.attention.head_count"), 4)
            .set_u32(&format!("{arch}.attention.head_count_kv"), 2)
            .set_f32(&format!("{arch}.attention.layer_norm_rms_epsilon"), 1e-6)
            .set(&format!("{arch}.attention.sliding_window_pattern"), Value::Array(Array::Bool(vec![true, false])))
            .set("tokenizer.ggml.tokens", Value::Array(Array::String(vec![b"<s>".to_vec(), b"a".to_vec()])))
            .set("nested", Value::Array(Array::Array(vec![Array::U8(vec![1]), Array::F64(vec![2.0])])));
        for (i, &ty) in quant::SUPPORTED.iter().enumerate() {
            let bytes = ty.row_bytes(256).unwrap() as usize;
            let data = (0..bytes).map(|b| (b * 31 + i) as u8 & 0x3f).collect();
            w.add_tensor(&format!("blk.0.t{i}.weight"), &[256], ty, data);
        }
        w.add_tensor("token_embd.weight", &[32, 2], GgmlType::Q8_0, vec![0x11; 68]);
        w.write_to(format!("{dir}/{arch}.gguf"))?;
    }
    Ok(())
}
