//! The `rocmforge` command line. It calls the library's public API only.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use rocmforge::gguf::GgufFile;
use rocmforge::inspect::Summary;

/// Run GGUF language models on GPUs with kernels compiled at run time.
#[derive(Parser)]
#[command(version, about, long_about = None, after_help = "\
Examples:
  rocmforge inspect SmolLM2-135M-Instruct.Q4_1.gguf
  rocmforge inspect model.gguf --json | jq .head_dim
  rocmforge inspect model.gguf --metadata")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show a model's architecture, shapes, rope, vocabulary and tensor types.
    ///
    /// Reads only the header (the file is memory-mapped, tensor data is not touched), validating
    /// the whole layout: a broken file is reported with the byte offset of the problem.
    Inspect {
        /// The GGUF file to read.
        model: PathBuf,
        /// Print one JSON object (keys: architecture, n_layer, n_embd, n_head, n_head_kv,
        /// head_dim, rope_dims, rope_base, n_ctx_train, n_vocab, tensor_types, n_params, n_bytes).
        #[arg(long)]
        json: bool,
        /// Also list every metadata key with its type and (shortened) value.
        #[arg(long, conflicts_with = "json")]
        metadata: bool,
        /// Also list every tensor with its type, shape and size.
        #[arg(long, conflicts_with = "json")]
        tensors: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
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

fn run(cli: Cli) -> Result<(), Box<dyn std::error::Error>> {
    match cli.command {
        Command::Inspect { model, json, metadata, tensors } => {
            let file = GgufFile::open(&model)?;
            let summary = Summary::of(&file).map_err(|e| format!("{}: {e}", model.display()))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&summary)?);
                return Ok(());
            }
            println!("{}", model.display());
            println!("{summary}");
            if metadata {
                println!(
                    "\nmetadata ({} keys, GGUF v{}, alignment {}):",
                    file.metadata.len(),
                    file.version,
                    file.alignment
                );
                for (key, value) in file.metadata.iter() {
                    println!("  {key:<48} {:<16} {}", value.type_description(), value.summary());
                }
            }
            if tensors {
                println!("\ntensors ({}):", file.tensors.len());
                for t in &file.tensors {
                    println!(
                        "  {:<36} {:<6} {:>20} {:>12}",
                        t.name,
                        t.ty.name(),
                        format!("{:?}", t.shape),
                        rocmforge::inspect::human_bytes(t.n_bytes)
                    );
                }
            }
            Ok(())
        }
    }
}
