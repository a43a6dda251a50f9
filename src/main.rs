//! The `rocmforge` binary: everything is in the `cli` module.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
