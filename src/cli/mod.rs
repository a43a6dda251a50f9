//! The `rocmforge` command line, one module per subcommand. It calls the library's public API only.

mod bench;
mod cache;
mod chat;
mod generate;
mod inspect;
mod progress;
mod serve;
mod warm;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// What a subcommand returns: its exit code, or an error printed with its causes.
pub type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// Run GGUF language models on GPUs with kernels compiled at run time.
#[derive(Parser)]
#[command(version, about, long_about = None, after_help = r#"Examples:
  rocmforge inspect SmolLM2-135M-Instruct.Q4_1.gguf
  rocmforge inspect model.gguf --json | jq .head_dim
  rocmforge kernels model.gguf                          # the kernels the model needs
  rocmforge warm model.gguf --target gfx906,gfx90a,gfx1030
  rocmforge warm model.gguf --target gfx90a --check     # exit 1 if anything is not cached
  rocmforge run SmolLM2-135M-Instruct.Q4_1.gguf --chat -p "What is the capital of France?"
  rocmforge run model.gguf -p "Once upon a time" -n 64 --temp 0 # greedy
  rocmforge logits model.gguf -p "Hello" --out logits.bin     # llama-debug's format
  rocmforge chat SmolLM2-135M-Instruct.Q4_1.gguf             # talk to it in the terminal
  rocmforge serve model.gguf --port 8080                      # an OpenAI-compatible HTTP API
  rocmforge cache ls"#)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show a model's architecture, shapes, rope, vocabulary and tensor types.
    ///
    /// Reads only the header (the file is memory-mapped, tensor data is not touched), validating
    /// the whole layout: a broken file is reported with the byte offset of the problem.
    Inspect(inspect::InspectArgs),
    /// List the kernels a model needs, or print one kernel's rendered source.
    Kernels(warm::KernelsArgs),
    /// Compile every kernel a model needs for a list of GPU targets, without a GPU.
    ///
    /// Compiles in parallel over the cores into the kernel cache (ROCMFORGE_CACHE_DIR, else
    /// ~/.cache/rocmforge/kernels); a second run finds everything cached and compiles nothing.
    /// AMD targets use hipRTC, NVIDIA targets (sm_XX) NVRTC.
    Warm(warm::WarmArgs),
    /// Write the last position's logits for a prompt as raw little-endian f32 (the format of
    /// llama.cpp's `llama-debug --save-logits`).
    Logits(generate::LogitsArgs),
    /// Generate text from a prompt, streaming it as it is made.
    Run(generate::RunArgs),
    /// Chat with a model in the terminal: history kept, /reset, /exit; Ctrl-C stops an answer.
    Chat(chat::ChatArgs),
    /// Serve a model over HTTP with OpenAI's API: /v1/chat/completions (streamed or not),
    /// /v1/completions, /v1/models, /health.
    ///
    /// Kernels are compiled (or read from the cache) before the port opens. Requests wait in a
    /// bounded queue for the model's one session; past it they get 503.
    Serve(serve::ServeArgs),
    /// Measure a model: load, JIT (cold and warm), prefill and decode tokens/s, and decode against
    /// the memory-bandwidth roofline (weight bytes per token over the device's copy bandwidth).
    Bench(bench::BenchArgs),
    /// Look after the kernel cache.
    Cache(cache::CacheArgs),
}

/// `--device`, shared by every subcommand that runs a model.
#[derive(clap::Args)]
pub struct DeviceArg {
    /// Where to run: cpu, cuda, hip, or auto (hip, then cuda, then cpu).
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// The KV cache's precision on a GPU: f16 (half the memory and the bytes attention reads;
    /// values rounded to nearest) or f32. The CPU keeps f32.
    #[arg(long, default_value = "f16")]
    pub kv: rocmforge::kernels::KvPrecision,
    /// The decode arithmetic on a GPU: exact (f32 activations, the CPU reference's arithmetic) or
    /// fast (activations quantized to 8 bits and int8 dot products, as llama.cpp decodes: about
    /// 1.2x faster on a 7B, 2.4x on SmolLM2-135M, logits a little further from the reference).
    #[arg(long, default_value = "exact")]
    pub gpu_precision: rocmforge::exec::gpu::GpuPrecision,
}

impl DeviceArg {
    pub fn choice(&self) -> Result<rocmforge::llm::DeviceChoice> {
        Ok(self.device.parse()?)
    }
}

/// Lets a closed stdout pipe (`rocmforge … | head`) end the process quietly, as it does for other
/// Unix tools, instead of a panic in `print!`. Not for `serve`, which writes to sockets.
fn exit_quietly_on_closed_pipe() {
    #[cfg(unix)]
    // SAFETY: restoring the default disposition of SIGPIPE at start-up, before any thread exists;
    // `signal` with SIG_DFL has no other effect.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// Parses the command line, runs the subcommand, and prints an error with its causes.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Serve(_)) {
        exit_quietly_on_closed_pipe();
    }
    let result = match cli.command {
        Command::Inspect(a) => inspect::main(a),
        Command::Kernels(a) => warm::kernels_main(a),
        Command::Warm(a) => warm::main(a),
        Command::Cache(a) => cache::main(a),
        Command::Bench(a) => bench::main(a),
        Command::Logits(a) => generate::logits_main(a),
        Command::Run(a) => generate::run_main(a),
        Command::Chat(a) => chat::main(a),
        Command::Serve(a) => serve::main(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            let mut source = e.source();
            while let Some(s) = source {
                eprintln!("  caused by: {s}");
                source = s.source();
            }
            ExitCode::FAILURE
        }
    }
}
