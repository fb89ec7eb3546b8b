//! Configuration files: where they live, how they are read (raw → validated) and how they
//! are written (atomically, keeping the previous version).
//!
//! Every file is TOML with unknown keys rejected. A file that cannot be read or validated is
//! never lost: [`store::load`] renames it to `NAME.corrupt-<timestamp>` and hands back the
//! defaults together with a [`store::Problem`] that the console shows as a banner.

pub mod console;
pub mod paths;
pub mod secret;
pub mod secrets;
pub mod store;

pub use console::{ConsoleConfig, Language, LogLevel, StoreBounds, Theme};
pub use paths::Paths;
pub use secret::Secret;
pub use store::{Loaded, Problem};
