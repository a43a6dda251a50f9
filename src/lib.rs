//! rocmforge runs GGUF language models on GPUs with kernels compiled at run time.
//!
//! This release holds the data layer: [`gguf`] reads (and writes) GGUF files safely, [`quant`]
//! is the CPU reference for every block format, [`model`] turns metadata into a
//! [`model::ModelConfig`], and [`inspect`] summarises a model file.
//!
//! ```no_run
//! use rocmforge::{gguf::GgufFile, model::ModelConfig};
//! let file = GgufFile::open("SmolLM2-135M-Instruct.Q4_1.gguf")?;
//! let cfg = ModelConfig::from_gguf(&file)?;
//! assert_eq!(cfg.head_dim, 64);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod chat;
pub mod device;
pub mod dtype;
pub mod exec;
#[doc(hidden)]
pub mod fuzzing;
pub mod gguf;
pub mod graph;
pub mod inspect;
pub mod jit;
pub mod kernels;
pub mod llm;
pub mod model;
pub mod quant;
pub mod tokenizer;
