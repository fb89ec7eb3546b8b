//! mpbridge: a desktop console and WSS relay for WeChat Mini Programs, ESP8266 devices and
//! MQTT brokers.
//!
//! Layout: `app/` and `ui/` are the only modules that use egui. `backend/` owns the tokio
//! side of the console; `mqtt/`, `sandbox/`, `devices/` and `config/` are plain domain and
//! network code; `relay/` is the WSS relay. See `docs/ARCHITECTURE.md`.

pub mod app;
pub mod backend;
pub mod bench;
pub mod certs;
pub mod checks;
pub mod cli;
pub mod config;
pub mod crypto;
pub mod devices;
#[cfg(test)]
mod fuzz_smoke;
pub mod i18n;
pub mod logging;
pub mod model;
pub mod mqtt;
pub mod relay;
pub mod sandbox;
pub mod topics;
pub mod ui;
pub mod verdict;

/// Spawns a named OS thread (clippy forbids unnamed ones).
pub fn spawn_named<F, T>(name: &str, f: F) -> std::io::Result<std::thread::JoinHandle<T>>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    std::thread::Builder::new().name(name.to_owned()).spawn(f)
}
