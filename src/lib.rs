//! rocmforge runs GGUF language models on GPUs with kernels compiled at run time: HIP C++
//! templates specialized for the loaded model, compiled with hipRTC (AMD) or NVRTC (NVIDIA) on
//! first use, cached on disk by content hash, and launched by a graph executor built from the file.
//! Without a GPU it runs on the CPU.
//!
//! # The front door: [`llm::Llm`]
//!
//! ```no_run
//! use rocmforge::chat::Message;
//! use rocmforge::exec::GenerateParams;
//! use rocmforge::llm::{DeviceChoice, Llm};
//!
//! // HIP, else CUDA, else the CPU. The first run on a GPU compiles its kernels (cached after).
//! let llm = Llm::open("SmolLM2-135M-Instruct.Q4_1.gguf", DeviceChoice::Auto)?;
//!
//! // A chat, rendered with the model's own template; tokens stream as they are made.
//! let params = GenerateParams { max_tokens: 64, stop: vec!["\n\n".into()], ..Default::default() };
//! for token in llm.chat(&[Message::new("user", "What is the capital of France?")], params)? {
//!     print!("{}", token?.text);
//! }
//!
//! // Or plain text, collected whole.
//! let done = llm.generate("Once upon a time", GenerateParams::default())?.complete()?;
//! println!("{} ({:?}, {} tokens)", done.text, done.finished.reason, done.finished.completion_tokens);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! [`llm::Llm`] is `Clone + Send + Sync`: one worker thread owns the model, the device and one
//! session, and serves requests from a bounded queue; a [`llm::TokenStream`] is `Send` and cancels
//! its generation when dropped. [`llm::LlmOptions`] sets the context size, the queue, the kernel
//! cache and a progress callback for the first-run JIT.
//!
//! # The layers underneath
//!
//! - [`gguf`] reads (and writes) GGUF files, every length checked; [`quant`] is the CPU reference
//!   for every block format; [`model`] turns metadata into a [`model::ModelConfig`].
//! - [`tokenizer`] (SentencePiece and byte-level BPE) and [`chat`] (the file's Jinja chat template,
//!   rendered as Hugging Face renders it).
//! - [`graph`] is the forward pass as named nodes, each with one [`kernels::KernelSpec`];
//!   [`kernels`] renders their source; [`jit`] compiles and caches it ([`jit::Engine`] warms a
//!   cache for any list of targets, without a GPU).
//! - [`device`] (CUDA, HIP, and a CPU device) and [`exec`] (the CPU session, the GPU executor,
//!   sampling, generation) run it.
//!
//! ```no_run
//! use rocmforge::{gguf::GgufFile, model::ModelConfig};
//! let file = GgufFile::open("SmolLM2-135M-Instruct.Q4_1.gguf")?;
//! let cfg = ModelConfig::from_gguf(&file)?;
//! assert_eq!(cfg.head_dim, 64);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Features
//!
//! `cli` (on by default) builds the `rocmforge` binary: clap, indicatif progress bars, and the
//! OpenAI-compatible server (tokio, axum). An application that embeds the library can leave it
//! out: `rocmforge = { version = "0.1", default-features = false }`.

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
pub mod reference;
pub mod tokenizer;
