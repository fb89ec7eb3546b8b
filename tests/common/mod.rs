//! Shared test helpers: temp folders, timeouts, processes killed on drop.
#![allow(dead_code)]

use std::future::Future;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Fails the test with `what` when `fut` takes longer than `secs`.
pub async fn within<T>(secs: u64, what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(Duration::from_secs(secs), fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {secs} s: {what}"),
    }
}

/// A child process that is killed when the test ends, however it ends.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        self.0.kill().ok();
        self.0.wait().ok();
    }
}

/// The mpbridge binary with its folders inside `root`.
pub fn mpbridge(root: &std::path::Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_mpbridge"));
    c.env("MPBRIDGE_CONFIG_DIR", root.join("config"))
        .env("MPBRIDGE_DATA_DIR", root.join("data"))
        .env_remove("MPBRIDGE_LOG")
        .stdin(Stdio::null());
    c
}

/// A multi-thread runtime like the one `main` owns.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}
