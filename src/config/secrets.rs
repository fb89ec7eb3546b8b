//! Where broker passwords live: the operating system's credential store (the Secret Service —
//! GNOME Keyring, KWallet — on Linux, Credential Manager on Windows, the Keychain on macOS),
//! or, where none is reachable (a headless box, a CI machine, `MPBRIDGE_SECRETS=file`),
//! `secrets.json` beside the settings, 0600 in a 0700 folder. Settings files hold only an id
//! per password (`password_ref`), never the password.
//!
//! Reads look in both places (a password saved to the file while the store was away is still
//! found); writes go where [`Vault::kind`] says. A store that refuses a write (locked, full,
//! gone) hands this run's writes to the file and says why.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use keyring_core::{CredentialStore, Entry, Error};

use super::Secret;

/// The service name every entry is filed under.
pub const SERVICE: &str = "mpbridge";
/// `MPBRIDGE_SECRETS=file` keeps passwords in the file even where a store is reachable.
pub const SECRETS_ENV: &str = "MPBRIDGE_SECRETS";
/// The file used when no store is.
pub const FILE_NAME: &str = "secrets.json";

/// Where new passwords go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VaultKind {
    /// The operating system's store.
    Os(OsStore),
    /// `secrets.json`, and why not the operating system's store.
    File { path: PathBuf, why: FileWhy },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OsStore {
    SecretService,
    CredentialManager,
    Keychain,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileWhy {
    /// `MPBRIDGE_SECRETS=file`.
    Asked,
    /// No store answered (no session bus, no keyring daemon); the error it gave.
    Unreachable(String),
    /// The store answered but refused to keep a password (locked, cancelled); its error.
    Refused(String),
    /// This platform has no store we support.
    Unsupported,
}

/// The password store of one configuration folder.
pub struct Vault {
    kind: VaultKind,
    store: Option<(OsStore, Arc<CredentialStore>)>,
    file: PathBuf,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vault").field("kind", &self.kind).finish()
    }
}

#[cfg(target_os = "linux")]
fn os_store() -> Result<(OsStore, Arc<CredentialStore>), FileWhy> {
    let store = zbus_secret_service_keyring_store::Store::new()
        .map_err(|e| FileWhy::Unreachable(one_line(&e)))?;
    Ok((OsStore::SecretService, store))
}

#[cfg(windows)]
fn os_store() -> Result<(OsStore, Arc<CredentialStore>), FileWhy> {
    let store = windows_native_keyring_store::Store::new()
        .map_err(|e| FileWhy::Unreachable(one_line(&e)))?;
    Ok((OsStore::CredentialManager, store))
}

#[cfg(target_os = "macos")]
fn os_store() -> Result<(OsStore, Arc<CredentialStore>), FileWhy> {
    let store = apple_native_keyring_store::keychain::Store::new()
        .map_err(|e| FileWhy::Unreachable(one_line(&e)))?;
    Ok((OsStore::Keychain, store))
}

#[cfg(not(any(target_os = "linux", windows, target_os = "macos")))]
fn os_store() -> Result<(OsStore, Arc<CredentialStore>), FileWhy> {
    Err(FileWhy::Unsupported)
}

fn one_line(e: &dyn std::fmt::Display) -> String {
    let s = e.to_string();
    s.lines().next().unwrap_or_default().trim().to_owned()
}

impl Vault {
    /// The store for `config_dir`: the operating system's when it answers, else the file.
    /// Blocks for as long as the store takes to answer (a D-Bus round trip on Linux).
    pub fn open(config_dir: &Path) -> Vault {
        let file = config_dir.join(FILE_NAME);
        if std::env::var(SECRETS_ENV).is_ok_and(|v| v.trim().eq_ignore_ascii_case("file")) {
            return Vault::file_only(file, FileWhy::Asked);
        }
        match os_store().and_then(|(name, store)| {
            // A read of an entry that does not exist proves the store answers.
            let probe = Entry::new_in_store(&store, SERVICE, "probe")
                .and_then(|e| e.get_password().map(drop));
            match probe {
                Ok(()) | Err(Error::NoEntry) => Ok((name, store)),
                Err(e) => Err(FileWhy::Unreachable(one_line(&e))),
            }
        }) {
            Ok((name, store)) => Vault {
                kind: VaultKind::Os(name),
                store: Some((name, store)),
                file,
            },
            Err(why) => {
                tracing::info!("broker passwords go to {}: {why:?}", file.display());
                Vault::file_only(file, why)
            }
        }
    }

    /// Only the file, for `why`.
    pub fn file_only(file: PathBuf, why: FileWhy) -> Vault {
        Vault {
            kind: VaultKind::File {
                path: file.clone(),
                why,
            },
            store: None,
            file,
        }
    }

    pub fn kind(&self) -> &VaultKind {
        &self.kind
    }

    fn entry(&self, id: &str, label: Option<&str>) -> Option<Result<Entry, Error>> {
        let (_, store) = self.store.as_ref()?;
        // Only the Secret Service takes a label; the others refuse unknown modifiers.
        Some(match label {
            Some(label) if cfg!(target_os = "linux") => {
                let mods = std::collections::HashMap::from([("label", label)]);
                Entry::new_in_store_with_modifiers(store, SERVICE, id, &mods)
            }
            _ => Entry::new_in_store(store, SERVICE, id),
        })
    }

    /// The password filed under `id`, if any.
    pub fn get(&self, id: &str) -> Result<Option<Secret>, String> {
        // The file first: a password lands there only when the store refused it, so a copy
        // there is newer than any the store still holds.
        if let Some(s) = self.read_file()?.remove(id) {
            return Ok(Some(Secret::new(s)));
        }
        if let Some(entry) = self.entry(id, None) {
            match entry.and_then(|e| e.get_password()) {
                Ok(p) => return Ok(Some(Secret::new(p))),
                Err(Error::NoEntry) => {}
                Err(e) => return Err(one_line(&e)),
            }
        }
        Ok(None)
    }

    /// Files `value` under `id`; `label` names it in the store's own manager (Seahorse).
    /// A store that refuses sends this and later writes to the file, and says so in
    /// [`Vault::kind`].
    pub fn set(&mut self, id: &str, label: &str, value: &Secret) -> Result<(), String> {
        if matches!(self.kind, VaultKind::Os(_))
            && let Some(entry) = self.entry(id, Some(label))
        {
            match entry.and_then(|e| e.set_password(value.expose())) {
                Ok(()) => {
                    // An older copy in the file would shadow nothing, but must not linger.
                    return self.remove_from_file(id);
                }
                Err(e) => {
                    let why = one_line(&e);
                    tracing::warn!("the credential store refused a password: {why}");
                    self.kind = VaultKind::File {
                        path: self.file.clone(),
                        why: FileWhy::Refused(why),
                    };
                }
            }
        }
        let mut all = self.read_file()?;
        all.insert(id.to_owned(), value.expose().to_owned());
        self.write_file(&all)
    }

    /// Forgets the password under `id`, wherever it is.
    pub fn delete(&self, id: &str) -> Result<(), String> {
        if let Some(entry) = self.entry(id, None) {
            match entry.and_then(|e| e.delete_credential()) {
                Ok(()) | Err(Error::NoEntry) => {}
                Err(e) => return Err(one_line(&e)),
            }
        }
        self.remove_from_file(id)
    }

    fn remove_from_file(&self, id: &str) -> Result<(), String> {
        let mut all = self.read_file()?;
        if all.remove(id).is_some() {
            self.write_file(&all)?;
        }
        Ok(())
    }

    fn read_file(&self) -> Result<BTreeMap<String, String>, String> {
        match std::fs::read_to_string(&self.file) {
            Ok(text) => serde_json::from_str(&text)
                .map_err(|e| format!("{} is damaged: {e}", self.file.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
            Err(e) => Err(format!("cannot read {}: {e}", self.file.display())),
        }
    }

    fn write_file(&self, all: &BTreeMap<String, String>) -> Result<(), String> {
        let text = serde_json::to_string_pretty(all).unwrap_or_default();
        // No backup: it would keep the passwords just removed.
        super::store::write_atomic(&self.file, &text, false)
            .map_err(|e| format!("cannot write {}: {e}", self.file.display()))
    }
}

/// A new id for a password: random, so two configuration folders never share an entry.
pub fn new_id() -> String {
    format!("broker-{:016x}", rand::random::<u64>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_keeps_passwords_private_and_forgets_them() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("config");
        let mut v = Vault::file_only(cfg.join(FILE_NAME), FileWhy::Asked);
        v.set("a", "label", &Secret::new("hunter2")).unwrap();
        v.set("b", "label", &Secret::new("two")).unwrap();
        assert_eq!(v.get("a").unwrap().unwrap().expose(), "hunter2");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&cfg.join(FILE_NAME)), 0o600);
            assert_eq!(mode(&cfg), 0o700);
        }
        v.delete("a").unwrap();
        assert_eq!(v.get("a").unwrap(), None);
        assert_eq!(v.get("b").unwrap().unwrap().expose(), "two");
        // Nothing of the deleted password anywhere in the folder, backups included.
        for f in std::fs::read_dir(&cfg).unwrap() {
            let text = std::fs::read_to_string(f.unwrap().path()).unwrap_or_default();
            assert!(!text.contains("hunter2"), "{text}");
        }
        assert!(!format!("{v:?}").contains("two"));
    }
}
