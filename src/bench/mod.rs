//! `mpbridge bench …`: benchmarks that print ratios against a reference run side by side.
//! They are commands, not tests: numbers depend on the machine.

pub mod client;
pub mod relay;
pub mod topics;
mod topics_broker;
