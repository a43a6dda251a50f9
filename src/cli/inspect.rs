//! `rocmforge inspect`: what a GGUF file holds.

use std::path::PathBuf;
use std::process::ExitCode;

use rocmforge::gguf::GgufFile;
use rocmforge::inspect::{human_bytes, Summary};

use super::Result;

#[derive(clap::Args)]
pub struct InspectArgs {
    /// The GGUF file to read.
    pub model: PathBuf,
    /// Print one JSON object (keys: architecture, n_layer, n_embd, n_head, n_head_kv, head_dim,
    /// rope_dims, rope_base, rope_scaling, rope_freq_factors, n_ctx_train, n_vocab, tensor_types,
    /// n_params, n_bytes).
    #[arg(long)]
    pub json: bool,
    /// Also list every metadata key with its type and (shortened) value.
    #[arg(long, conflicts_with = "json")]
    pub metadata: bool,
    /// Also list every tensor with its type, shape and size.
    #[arg(long, conflicts_with = "json")]
    pub tensors: bool,
}

pub fn main(a: InspectArgs) -> Result<ExitCode> {
    inspect(a.model, a.json, a.metadata, a.tensors)
}

fn inspect(model: PathBuf, json: bool, metadata: bool, tensors: bool) -> Result<ExitCode> {
    let file = GgufFile::open(&model)?;
    let summary = Summary::of(&file).map_err(|e| format!("{}: {e}", model.display()));
    if json {
        println!("{}", serde_json::to_string_pretty(&summary?)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("{}", model.display());
    match &summary {
        Ok(s) => println!("{s}"),
        // A valid GGUF that rocmforge cannot run still shows what it holds.
        Err(e) => {
            let arch = file.architecture().unwrap_or("(none)");
            let params: u64 = file.tensors.iter().map(|t| t.n_elems).sum();
            let bytes: u64 = file.tensors.iter().map(|t| t.n_bytes).sum();
            println!("architecture   {arch} (not runnable here)");
            println!("tensors        {} ({params} parameters, {})", file.tensors.len(), human_bytes(bytes));
            println!("metadata       {} keys, GGUF v{}", file.metadata.len(), file.version);
            eprintln!("note: {e}");
        }
    }
    if metadata {
        println!("\nmetadata ({} keys, GGUF v{}, alignment {}):", file.metadata.len(), file.version, file.alignment);
        for (key, value) in file.metadata.iter() {
            println!("  {key:<48} {:<16} {}", value.type_description(), value.summary());
        }
    }
    if tensors {
        println!("\ntensors ({}):", file.tensors.len());
        for t in &file.tensors {
            let shape = format!("{:?}", t.shape);
            println!("  {:<36} {:<6} {shape:>20} {:>12}", t.name, t.ty.name(), human_bytes(t.n_bytes));
        }
    }
    Ok(ExitCode::SUCCESS)
}
