#![cfg_attr(windows, windows_subsystem = "windows")]
//! The `mpbridge` binary: everything lives in the library; see `mpbridge::cli`.

fn main() -> std::process::ExitCode {
    mpbridge::cli::main()
}
