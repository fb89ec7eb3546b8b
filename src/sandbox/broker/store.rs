//! The broker's store in the data folder: retained messages and persistent sessions, kept by
//! rmqtt's sled-backed plugins in `retained/` and `sessions/`.
//!
//! Before the broker opens it, the broker process checks that it can: a store another mpbridge
//! holds open (sled takes an exclusive lock) leaves this broker in memory; a store that cannot
//! be read is set aside as `<name>.corrupt-<timestamp>` and the broker starts empty. Neither
//! stops the broker, and the console names what happened.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// What the broker keeps its state in; reported by the broker process at start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum StoreState {
    /// Retained messages and persistent sessions survive a restart, in `path`.
    Persistent { path: PathBuf },
    /// The store could not be read: it was moved to `moved_to` and a new one started in `path`.
    SetAside {
        path: PathBuf,
        moved_to: PathBuf,
        why: String,
    },
    /// Kept in memory: no folder was given (tests), or the folder is in use by another broker.
    Memory {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        in_use: Option<PathBuf>,
    },
}

/// The sled databases inside a store folder.
#[cfg(feature = "embedded-broker")]
const PARTS: [&str; 2] = ["retained", "sessions"];

#[cfg(feature = "embedded-broker")]
/// Readies `dir` for the broker. `set_aside` moves an existing store away unconditionally
/// (the console asks for it when a broker died twice while opening this store).
pub fn prepare(dir: &Path, set_aside: bool) -> StoreState {
    if let Err(e) = create_private_dir(dir) {
        return aside_or_memory(dir, format!("cannot create the folder: {e}"));
    }
    if set_aside {
        return aside_or_memory(dir, "the broker stopped twice while opening it".to_owned());
    }
    for part in PARTS {
        match check(&dir.join(part)) {
            Check::Ok => {}
            Check::InUse => {
                return StoreState::Memory {
                    in_use: Some(dir.to_owned()),
                };
            }
            Check::Unreadable(why) => return aside_or_memory(dir, why),
        }
    }
    StoreState::Persistent {
        path: dir.to_owned(),
    }
}

#[cfg(feature = "embedded-broker")]
enum Check {
    Ok,
    InUse,
    Unreadable(String),
}

#[cfg(feature = "embedded-broker")]
/// Opens one sled database the way the plugin will, and closes it again.
fn check(path: &Path) -> Check {
    let path = path.to_owned();
    // sled reports most damage as an error; a panic on some byte pattern must not stop the
    // broker either.
    let opened = std::panic::catch_unwind(move || sled::Config::new().path(&path).open());
    match opened {
        Ok(Ok(db)) => {
            drop(db);
            Check::Ok
        }
        // sled wraps the lock failure in an error of its own wording.
        Ok(Err(sled::Error::Io(e)))
            if e.kind() == std::io::ErrorKind::WouldBlock
                || e.to_string().contains("could not acquire lock") =>
        {
            Check::InUse
        }
        Ok(Err(e)) => Check::Unreadable(e.to_string()),
        Err(_) => Check::Unreadable("reading it crashed the store library".to_owned()),
    }
}

#[cfg(feature = "embedded-broker")]
fn aside_or_memory(dir: &Path, why: String) -> StoreState {
    let stamp = chrono::Local::now().format("%Y%m%d-%H%M%S");
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "broker".to_owned());
    let moved_to = dir.with_file_name(format!("{name}.corrupt-{stamp}"));
    let moved = std::fs::rename(dir, &moved_to).is_ok() && create_private_dir(dir).is_ok();
    if moved {
        StoreState::SetAside {
            path: dir.to_owned(),
            moved_to,
            why,
        }
    } else {
        StoreState::Memory { in_use: None }
    }
}

#[cfg(feature = "embedded-broker")]
/// The store holds other people's messages: readable by this user only.
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

#[cfg(all(test, feature = "embedded-broker"))]
mod tests {
    use super::*;

    #[test]
    fn a_new_folder_is_persistent_and_private() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("broker");
        assert_eq!(
            prepare(&dir, false),
            StoreState::Persistent { path: dir.clone() }
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&dir).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o700);
        }
    }

    #[test]
    fn garbage_is_set_aside_and_a_new_store_starts() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("broker");
        std::fs::create_dir_all(dir.join("retained")).unwrap();
        std::fs::write(
            dir.join("retained").join("conf"),
            b"\xff\xfe not a sled config",
        )
        .unwrap();
        std::fs::write(dir.join("retained").join("db"), vec![0xA5u8; 4096]).unwrap();
        match prepare(&dir, false) {
            StoreState::SetAside { path, moved_to, .. } => {
                assert_eq!(path, dir);
                assert!(moved_to.join("retained").join("db").is_file());
                assert!(
                    moved_to
                        .file_name()
                        .unwrap()
                        .to_string_lossy()
                        .starts_with("broker.corrupt-")
                );
                // The new store opens.
                assert_eq!(
                    prepare(&dir, false),
                    StoreState::Persistent { path: dir.clone() }
                );
            }
            other => panic!("expected the store set aside, got {other:?}"),
        }
    }

    #[test]
    fn a_store_held_open_elsewhere_is_reported_in_use() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("broker");
        assert!(matches!(
            prepare(&dir, false),
            StoreState::Persistent { .. }
        ));
        let held = sled::Config::new()
            .path(dir.join("sessions"))
            .open()
            .unwrap();
        assert_eq!(
            prepare(&dir, false),
            StoreState::Memory {
                in_use: Some(dir.clone())
            }
        );
        drop(held);
    }
}
