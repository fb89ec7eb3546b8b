//! The keeper: one thread that owns the saved broker profiles and their password vault, and
//! writes every settings file (`console.toml`, `devices.toml`, `payloads.json`,
//! `profiles.json`) — in the order asked, never on the UI thread.
//!
//! It is a thread of its own rather than a backend task so that the runtime stopping cannot
//! drop a save: dropping the [`Keeper`] finishes what is queued, then joins the thread.
//! Talking to the operating system's credential store (D-Bus on Linux) blocks, and so do
//! fsyncs; both happen here.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::thread::JoinHandle;

use tokio::sync::watch;

use super::{Requested, Waker};
use crate::config::Paths;
use crate::config::secrets::{FILE_NAME, FileWhy, Vault, VaultKind};
use crate::config::store::{self, Problem};
use crate::i18n::L10n;
use crate::mqtt::profile::{Profile, Profiles, Secured};

/// Jobs waiting for the keeper at most.
const QUEUE: usize = 64;
/// A profiles file to import is at most this big.
const MAX_IMPORT_BYTES: u64 = 16 * 1024 * 1024;

/// A change to the saved profiles.
#[derive(Debug, Clone)]
pub enum ProfilesEdit {
    /// Insert or replace the profile at this index (`None`: append).
    Put(Option<usize>, Box<Profile>),
    Delete(usize),
    /// Import a file (our `profiles.json` or an MQTTX export).
    Import(PathBuf),
}

/// What a profiles edit did, once `profiles.json` was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProfilesDone {
    Saved {
        file: PathBuf,
        /// A deleted profile's password could not be removed from the vault.
        not_forgotten: Option<L10n>,
    },
    Imported {
        count: usize,
        from: PathBuf,
        /// What the importer said about the file (skipped entries, guessed fields).
        notes: Vec<L10n>,
    },
}

/// The vault refused: nothing was written.
fn vault_refused(e: &str) -> L10n {
    L10n::new(
        format!("the password store refused: {e}"),
        format!("密码存储拒绝了该操作（“{e}”）"),
    )
}

/// The profiles as the UI shows them.
#[derive(Debug, Clone, Default)]
pub struct ProfilesView {
    /// False until the file and the vault have been read.
    pub loaded: bool,
    pub profiles: Arc<Profiles>,
    /// Where passwords go.
    pub vault: Option<VaultKind>,
    /// What loading did: passwords moved into the vault, ones not found there.
    pub secured: Secured,
    /// `profiles.json` could not be used (it was set aside).
    pub problem: Option<Problem>,
}

enum Job {
    Save {
        path: PathBuf,
        text: String,
        reply: super::Reply<PathBuf, L10n>,
    },
    Profiles {
        edit: ProfilesEdit,
        reply: super::Reply<ProfilesDone, L10n>,
    },
}

/// The UI's handle on the keeper thread.
pub struct Keeper {
    jobs: Option<SyncSender<Job>>,
    thread: Option<JoinHandle<()>>,
    view: watch::Receiver<ProfilesView>,
    waker: Waker,
}

impl Keeper {
    /// Starts the thread; it reads `profiles.json` and opens the vault first (`secrets_in_file`:
    /// the file vault, as tests and `MPBRIDGE_SECRETS=file` ask).
    pub fn spawn(paths: &Paths, secrets_in_file: bool, waker: Waker) -> std::io::Result<Self> {
        let (tx, rx) = std::sync::mpsc::sync_channel(QUEUE);
        let (view_tx, view) = watch::channel(ProfilesView::default());
        let config_dir = paths.config_dir.clone();
        let wake = waker.clone();
        let thread = std::thread::Builder::new()
            .name("mpbridge-keeper".into())
            .spawn(move || {
                let state = State::open(&config_dir, secrets_in_file);
                run(state, rx, view_tx, wake);
            })?;
        Ok(Self {
            jobs: Some(tx),
            thread: Some(thread),
            view,
            waker,
        })
    }

    /// The profiles as last saved (or loaded).
    pub fn view(&self) -> watch::Ref<'_, ProfilesView> {
        self.view.borrow()
    }

    /// Writes `text` to `path` (atomically, with a backup); answers the path written.
    pub fn save(&self, path: PathBuf, text: String) -> Requested<PathBuf, L10n> {
        let (req, reply) = Requested::new(Some(self.waker.clone()));
        self.queue(Job::Save { path, text, reply });
        req
    }

    /// Applies an edit to the profiles, the vault and `profiles.json`.
    pub fn edit_profiles(&self, edit: ProfilesEdit) -> Requested<ProfilesDone, L10n> {
        let (req, reply) = Requested::new(Some(self.waker.clone()));
        self.queue(Job::Profiles { edit, reply });
        req
    }

    fn queue(&self, job: Job) {
        let Some(jobs) = &self.jobs else { return };
        match jobs.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(job)) => job.refuse(super::busy()),
            Err(TrySendError::Disconnected(job)) => job.refuse(super::stopped()),
        }
    }
}

impl Drop for Keeper {
    /// Finishes every queued job, then ends the thread.
    fn drop(&mut self) {
        self.jobs = None;
        if let Some(t) = self.thread.take()
            && t.join().is_err()
        {
            tracing::error!("the keeper thread panicked; a settings file may not be saved");
        }
    }
}

impl Job {
    fn refuse(self, why: L10n) {
        match self {
            Job::Save { reply, .. } => reply.send(Err(why)),
            Job::Profiles { reply, .. } => reply.send(Err(why)),
        }
    }
}

/// What the keeper thread owns.
struct State {
    profiles: Profiles,
    vault: Vault,
    file: PathBuf,
    secured: Secured,
    problem: Option<Problem>,
}

impl State {
    fn open(config_dir: &Path, secrets_in_file: bool) -> Self {
        let file = config_dir.join("profiles.json");
        let loaded = store::load::<Profiles>(&file);
        let mut vault = if secrets_in_file {
            Vault::file_only(config_dir.join(FILE_NAME), FileWhy::Asked)
        } else {
            Vault::open(config_dir)
        };
        let mut profiles = loaded.value;
        let secured = profiles.secure(&mut vault, &file);
        Self {
            profiles,
            vault,
            file,
            secured,
            problem: loaded.problem,
        }
    }

    fn view(&self) -> ProfilesView {
        ProfilesView {
            loaded: true,
            profiles: Arc::new(self.profiles.clone()),
            vault: Some(self.vault.kind().clone()),
            secured: self.secured.clone(),
            problem: self.problem.clone(),
        }
    }

    fn edit(&mut self, edit: ProfilesEdit) -> Result<ProfilesDone, L10n> {
        let list = &mut self.profiles.profiles;
        let mut not_forgotten = None;
        let mut imported = None;
        match edit {
            ProfilesEdit::Put(Some(i), p) if i < list.len() => list[i] = *p,
            ProfilesEdit::Put(_, p) => list.push(*p),
            ProfilesEdit::Delete(i) => {
                if i < list.len() {
                    let gone = list.remove(i);
                    if let Err(e) = self.profiles.forget(&gone, &self.vault) {
                        tracing::warn!("could not forget the password of {}: {e}", gone.name);
                        not_forgotten = Some(vault_refused(&e));
                    }
                }
            }
            ProfilesEdit::Import(from) => {
                let (mut found, notes) = read_import(&from).map_err(|why| {
                    L10n::new(
                        format!("{}: {}", from.display(), why.en),
                        format!("{}：{}", from.display(), why.zh),
                    )
                })?;
                Profiles::adopt(&mut found, &self.vault);
                imported = Some((found.len(), from, notes));
                list.extend(found);
            }
        }
        // Nothing is written when the vault refuses: the file never gets a password the
        // vault did not take.
        let sealed = self.profiles.seal(&mut self.vault).map_err(|e| {
            tracing::error!("could not keep a password: {e}");
            vault_refused(&e)
        })?;
        store::save(&self.file, &sealed).map_err(|e| super::files::cannot_write(&self.file, &e))?;
        Ok(match imported {
            Some((count, from, notes)) => ProfilesDone::Imported { count, from, notes },
            None => ProfilesDone::Saved {
                file: self.file.clone(),
                not_forgotten,
            },
        })
    }
}

/// Our export or MQTTX's, at most 16 MB.
fn read_import(path: &Path) -> Result<(Vec<Profile>, Vec<L10n>), L10n> {
    let text = match std::fs::metadata(path) {
        Ok(m) if m.len() > MAX_IMPORT_BYTES => {
            Err(L10n::new("larger than 16 MB", "文件超过 16 MB"))
        }
        Ok(_) => std::fs::read_to_string(path).map_err(|e| crate::i18n::io_error(&e)),
        Err(e) => Err(crate::i18n::io_error(&e)),
    }?;
    crate::mqtt::profile::import(&text)
}

fn run(mut state: State, jobs: Receiver<Job>, view: watch::Sender<ProfilesView>, wake: Waker) {
    view.send_replace(state.view());
    wake();
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        batch.extend(jobs.try_iter());
        // A file saved several times in a row (a slider dragged) is written once, with the
        // last text; the earlier saves get that write's answer.
        let mut last = std::collections::HashMap::new();
        for (i, job) in batch.iter().enumerate() {
            if let Job::Save { path, .. } = job {
                last.insert(path.clone(), i);
            }
        }
        let mut waiting: Vec<(PathBuf, super::Reply<PathBuf, L10n>)> = Vec::new();
        for (i, job) in batch.into_iter().enumerate() {
            match job {
                Job::Save { path, reply, .. } if last.get(&path) != Some(&i) => {
                    waiting.push((path, reply));
                }
                Job::Save { path, text, reply } => {
                    let result = store::save_atomic(&path, &text)
                        .map(|()| path.clone())
                        .map_err(|e| super::files::cannot_write(&path, &e));
                    if let Err(e) = &result {
                        tracing::error!("{}", e.en);
                    }
                    let (same, other): (Vec<_>, Vec<_>) =
                        waiting.into_iter().partition(|(p, _)| *p == path);
                    waiting = other;
                    for (_, r) in same {
                        r.send(result.clone());
                    }
                    reply.send(result);
                }
                Job::Profiles { edit, reply } => {
                    let result = state.edit(edit);
                    view.send_replace(state.view());
                    reply.send(result);
                }
            }
        }
        wake();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keeper(dir: &Path) -> Keeper {
        let paths = Paths {
            config_dir: dir.join("config"),
            data_dir: dir.join("data"),
        };
        Keeper::spawn(&paths, true, Arc::new(|| {})).unwrap()
    }

    fn wait<T: Clone, E: Clone + From<super::super::Abandoned>>(
        mut r: Requested<T, E>,
    ) -> Result<T, E> {
        let start = std::time::Instant::now();
        loop {
            if let Some(r) = r.poll() {
                return r.clone();
            }
            assert!(start.elapsed().as_secs() < 20, "the keeper did not answer");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }

    /// Saves queued behind each other are written once with the last text, every one is
    /// answered, and dropping the keeper finishes what is queued.
    #[test]
    fn saves_coalesce_and_drop_flushes() {
        let dir = tempfile::tempdir().unwrap();
        let k = keeper(dir.path());
        let file = dir.path().join("config/console.toml");
        let answers: Vec<_> = (0..20)
            .map(|i| k.save(file.clone(), format!("n = {i}\n")))
            .collect();
        let other = dir.path().join("config/devices.toml");
        let last = k.save(other.clone(), "x = 1\n".into());
        drop(k);
        for a in answers {
            assert_eq!(wait(a).unwrap(), file);
        }
        assert_eq!(wait(last).unwrap(), other);
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "n = 19\n");
        assert_eq!(std::fs::read_to_string(&other).unwrap(), "x = 1\n");
    }

    /// Profile edits apply in order; the password goes to the vault, never into
    /// profiles.json; a bad import names the file and changes nothing; a deleted profile's
    /// password leaves the vault.
    #[test]
    fn profile_edits_keep_passwords_out_of_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let k = keeper(dir.path());
        let mut p = Profile::new("lab", "mqtts://broker.lab:8883");
        p.password = Some(crate::config::Secret::new("hunter2-secret"));
        let first = k.edit_profiles(ProfilesEdit::Put(None, Box::new(p.clone())));
        p.name = "lab 2".into();
        let second = k.edit_profiles(ProfilesEdit::Put(None, Box::new(p)));
        assert!(matches!(wait(first), Ok(ProfilesDone::Saved { .. })));
        assert!(matches!(wait(second), Ok(ProfilesDone::Saved { .. })));
        let view = k.view().clone();
        assert!(view.loaded);
        let names: Vec<_> = view
            .profiles
            .profiles
            .iter()
            .map(|p| p.name.as_str())
            .collect();
        assert_eq!(names, ["lab", "lab 2"]);
        let file = std::fs::read_to_string(dir.path().join("config/profiles.json")).unwrap();
        assert!(
            !file.contains("hunter2-secret") && file.contains("password_ref"),
            "{file}"
        );
        let secrets = dir.path().join("config").join(FILE_NAME);
        assert!(
            std::fs::read_to_string(&secrets)
                .unwrap()
                .contains("hunter2-secret")
        );

        let missing = dir.path().join("nope.json");
        match wait(k.edit_profiles(ProfilesEdit::Import(missing.clone()))) {
            Err(e) => {
                assert!(e.en.starts_with(&*missing.to_string_lossy()), "{e:?}");
                assert!(e.zh.contains("文件或文件夹不存在"), "{e:?}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(k.view().profiles.profiles.len(), 2);

        wait(k.edit_profiles(ProfilesEdit::Delete(0))).unwrap();
        wait(k.edit_profiles(ProfilesEdit::Delete(0))).unwrap();
        assert!(k.view().profiles.profiles.is_empty());
        assert!(
            !std::fs::read_to_string(&secrets)
                .unwrap()
                .contains("hunter2-secret")
        );
    }
}
