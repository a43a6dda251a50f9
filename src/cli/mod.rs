//! The `rocmforge` command line, one module per subcommand. It calls the library's public API only.

mod bench;
mod cache;
mod generate;
mod inspect;
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
}

/// Parses the command line, runs the subcommand, and prints an error with its causes.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Inspect(a) => inspect::main(a),
        Command::Kernels(a) => warm::kernels_main(a),
        Command::Warm(a) => warm::main(a),
        Command::Cache(a) => cache::main(a),
        Command::Bench(a) => bench::main(a),
        Command::Logits(a) => generate::logits_main(a),
        Command::Run(a) => generate::run_main(a),
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
