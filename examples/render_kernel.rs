//! Prints one kernel's rendered source for a target, for the host emulation in
//! scripts/kernel_emulation: `render_kernel TARGET mmq TYPE K [streamk]` or
//! `render_kernel TARGET flash HEAD_DIM GQA WINDOW(0|1) SOFTCAP(0|1)`.
use rocmforge::dtype::GgmlType;
use rocmforge::jit::Target;
use rocmforge::kernels::{render, KernelSpec};

fn main() -> Result<(), String> {
    let a: Vec<String> = std::env::args().collect();
    let arg = |i: usize| a.get(i).cloned().ok_or_else(|| format!("argument {i} missing (see the doc comment)"));
    let num = |i: usize| arg(i)?.parse::<u32>().map_err(|e| format!("argument {i}: {e}"));
    let target: Target = arg(1)?.parse().map_err(|e| format!("{e}"))?;
    let spec = match arg(2)?.as_str() {
        "flash" => KernelSpec::FlashAttn {
            head_dim: num(3)?,
            gqa: num(4)?,
            sliding_window: num(5)? == 1,
            softcap: num(6)? == 1,
        },
        "mmq" => {
            let ty = arg(3)?;
            let wtype = rocmforge::quant::SUPPORTED
                .iter()
                .copied()
                .find(|t: &GgmlType| t.name().eq_ignore_ascii_case(&ty))
                .ok_or_else(|| format!("no weight type {ty}"))?;
            KernelSpec::MatMulQ8 { wtype, k: num(4)?, stream_k: a.get(5).is_some_and(|s| s == "streamk") }
        }
        other => return Err(format!("no kernel kind {other}: mmq or flash")),
    };
    print!("{}", render(&spec, target.render_target()).map_err(|e| e.to_string())?.source);
    Ok(())
}
