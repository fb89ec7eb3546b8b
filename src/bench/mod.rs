//! `mpbridge bench …`: benchmarks that print ratios against a reference run side by side.
//! They are commands, not tests: numbers depend on the machine.

pub mod broker;
pub mod client;
mod frames;
mod procs;
pub mod relay;
pub mod soak;
mod soak_console;
pub mod topics;
pub use procs::program;
mod topics_broker;
