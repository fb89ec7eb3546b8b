#![cfg_attr(windows, windows_subsystem = "windows")]
//! The `mpbridge` binary: everything lives in the library; see `mpbridge::cli`.

fn main() -> std::process::ExitCode {
    #[cfg(windows)]
    if std::env::args_os().len() > 1 {
        attach_console();
    }
    mpbridge::cli::main()
}

/// A Windows GUI program has no console, so `mpbridge --version` or `mpbridge relay` typed in
/// cmd or PowerShell would print nothing. With arguments, write to the console it was started
/// from, if any (a double-click has none, and nothing changes).
#[cfg(windows)]
#[allow(unsafe_code)]
fn attach_console() {
    use windows_sys::Win32::System::Console::{ATTACH_PARENT_PROCESS, AttachConsole};
    // SAFETY: AttachConsole takes a process id by value and touches no memory of ours; it
    // fails harmlessly when the parent has no console.
    unsafe {
        AttachConsole(ATTACH_PARENT_PROCESS);
    }
}
