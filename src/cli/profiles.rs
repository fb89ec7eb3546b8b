//! `mpbridge profiles`: the saved broker profiles and where their passwords are kept, without
//! the window — for a headless box, and to move an older profiles.json's plain-text passwords
//! into the credential store as the console does at start.

use std::process::ExitCode;

use serde::Serialize;

use crate::config::Paths;
use crate::config::secrets::{FileWhy, OsStore, Vault, VaultKind};
use crate::mqtt::profile::Profiles;

#[derive(Serialize)]
struct Listed<'a> {
    name: &'a str,
    url: &'a str,
    username: Option<&'a str>,
    /// `kept`, `missing` or `none`.
    password: &'static str,
}

#[derive(Serialize)]
struct Report<'a> {
    /// `Secret Service`, `Credential Manager`, `Keychain` or `file`.
    store: &'static str,
    /// The file's path when the store is the file.
    file: Option<String>,
    /// Why the file and not the operating system's store.
    why: Option<String>,
    /// Plain-text passwords moved out of profiles.json by this run.
    moved: usize,
    profiles: Vec<Listed<'a>>,
}

pub fn run(paths: &Paths, json: bool) -> ExitCode {
    let file = paths.config_dir.join("profiles.json");
    let mut loaded = crate::config::store::load::<Profiles>(&file);
    if let Some(p) = &loaded.problem {
        eprintln!("mpbridge: {p}");
    }
    let mut vault = Vault::open(&paths.config_dir);
    let secured = loaded.value.secure(&mut vault, &file);
    let (store, path, why) = match vault.kind() {
        VaultKind::Os(OsStore::SecretService) => ("Secret Service", None, None),
        VaultKind::Os(OsStore::CredentialManager) => ("Credential Manager", None, None),
        VaultKind::Os(OsStore::Keychain) => ("Keychain", None, None),
        VaultKind::File { path, why } => (
            "file",
            Some(path.display().to_string()),
            Some(match why {
                FileWhy::Asked => "MPBRIDGE_SECRETS=file".to_owned(),
                FileWhy::Unreachable(e) => format!("no credential store answered: {e}"),
                FileWhy::Refused(e) => format!("the credential store refused: {e}"),
                FileWhy::Unsupported => "no credential store on this system".to_owned(),
            }),
        ),
    };
    let report = Report {
        store,
        file: path,
        why,
        moved: secured.moved,
        profiles: loaded
            .value
            .profiles
            .iter()
            .map(|p| Listed {
                name: &p.name,
                url: &p.url,
                username: p.username.as_deref(),
                password: if p.password_unread {
                    "missing"
                } else if p.password.as_ref().is_some_and(|s| !s.is_empty()) {
                    "kept"
                } else {
                    "none"
                },
            })
            .collect(),
    };
    if let Some(e) = &secured.error {
        eprintln!(
            "mpbridge: plain-text passwords stay in {}: {e}",
            file.display()
        );
    }
    if json {
        println!("{}", serde_json::to_string(&report).unwrap_or_default());
    } else {
        match (&report.file, &report.why) {
            (Some(f), Some(why)) => println!("passwords: {f} (0600; {why})"),
            _ => println!("passwords: {}", report.store),
        }
        if report.moved > 0 {
            println!(
                "moved {} plain-text passwords out of {}",
                report.moved,
                file.display()
            );
        }
        for p in &report.profiles {
            println!(
                "{:<24} {:<40} user {:<12} password {}",
                p.name,
                p.url,
                p.username.unwrap_or("-"),
                p.password
            );
        }
    }
    if secured.missing.is_empty() && secured.error.is_none() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
