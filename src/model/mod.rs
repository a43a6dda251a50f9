//! Model configuration: every hyper-parameter the forward pass needs, read from GGUF metadata
//! through one key table (`keys.rs`), with the family-specific parts in one file per
//! architecture.

mod config;
mod gemma;
mod gemma2;
mod gemma3;
mod keys;
mod llama;
mod phi3;
mod qwen2;
mod qwen3;

pub use config::{
    Activation, Arch, ModelConfig, ModelError, RopeScaling, RopeStyle, ROPE_FACTORS_LONG, ROPE_FACTORS_SHORT,
    ROPE_FREQS,
};
pub use keys::Key;
