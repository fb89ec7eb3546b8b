//! The files service: folder checks, the native file dialog, exports into `<data>/exports/`.
//! Stateless; every command runs on the blocking pool.

use std::path::{Path, PathBuf};

use super::Reply;
use super::shared::{Service, Shared};
use crate::i18n::{L10n, l};

/// What the Settings, Topics and picker widgets ask of the disk.
pub enum FileCmd {
    /// Count files and bytes in a folder and check it is writable.
    InspectFolder {
        path: PathBuf,
        reply: Reply<FolderReport, L10n>,
    },
    /// The native file dialog (xdg portal or zenity on Linux): the files picked, none when
    /// cancelled, an error when no dialog is available.
    PickFiles {
        /// Pick one folder instead of files.
        folder: bool,
        reply: Reply<Vec<PathBuf>, L10n>,
    },
    /// Write messages as JSONL or CSV into `<data>/exports/` (serialised off the UI thread).
    ExportMessages {
        messages: Vec<crate::topics::Stored>,
        csv: bool,
        reply: Reply<PathBuf, L10n>,
    },
    /// Write text into `<data>/exports/NAME` (only the last component of NAME is used).
    ExportText {
        file_name: String,
        text: String,
        reply: Reply<PathBuf, L10n>,
    },
}

impl FileCmd {
    pub(super) fn refuse(self, why: &L10n) {
        let why = why.clone();
        match self {
            FileCmd::InspectFolder { reply, .. } => reply.send(Err(why)),
            FileCmd::PickFiles { reply, .. } => reply.send(Err(why)),
            FileCmd::ExportMessages { reply, .. } | FileCmd::ExportText { reply, .. } => {
                reply.send(Err(why))
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FolderReport {
    pub files: u64,
    pub bytes: u64,
}

pub(super) struct FilesService {
    shared: Shared,
}

impl FilesService {
    pub fn new(shared: Shared) -> Self {
        Self { shared }
    }

    fn exports(&self) -> PathBuf {
        self.shared.paths.data_dir.join("exports")
    }
}

impl Service for FilesService {
    type Cmd = FileCmd;

    async fn handle(&mut self, cmd: FileCmd) {
        let blocking = |f: Box<dyn FnOnce() + Send>| {
            self.shared.handle.spawn_blocking(f);
        };
        match cmd {
            FileCmd::InspectFolder { path, reply } => {
                blocking(Box::new(move || reply.send(inspect_folder(&path))));
            }
            FileCmd::PickFiles { folder, reply } => {
                blocking(Box::new(move || reply.send(pick(folder))));
            }
            FileCmd::ExportMessages {
                messages,
                csv,
                reply,
            } => {
                let dir = self.exports();
                blocking(Box::new(move || {
                    let (ext, text) = if csv {
                        ("csv", crate::topics::to_csv(messages.iter()))
                    } else {
                        ("jsonl", crate::topics::to_jsonl(messages.iter()))
                    };
                    let name = format!("messages-{}.{ext}", stamp());
                    reply.send(write_into(&dir, &name, &text));
                }));
            }
            FileCmd::ExportText {
                file_name,
                text,
                reply,
            } => {
                let dir = self.exports();
                blocking(Box::new(move || {
                    let name = Path::new(&file_name)
                        .file_name()
                        .map_or_else(|| "export.txt".into(), |n| n.to_string_lossy());
                    reply.send(write_into(&dir, &name, &text));
                }));
            }
        }
    }
}

/// `20261207-140423`, local time, for file names.
pub(super) fn stamp() -> String {
    chrono::Local::now().format("%Y%m%d-%H%M%S").to_string()
}

/// Writes `text` to `dir/name` atomically, creating `dir`.
pub(super) fn write_into(dir: &Path, name: &str, text: &str) -> Result<PathBuf, L10n> {
    let path = dir.join(name);
    std::fs::create_dir_all(dir)
        .and_then(|_| crate::config::store::save_atomic(&path, text))
        .map(|_| path.clone())
        .map_err(|e| cannot_write(&path, &e))
}

/// `cannot write PATH: why`, in both languages.
pub fn cannot_write(path: &Path, e: &std::io::Error) -> L10n {
    let e = crate::i18n::io_error(e);
    l(
        format!("cannot write {}: {}", path.display(), e.en),
        format!("无法写入 {}：{}", path.display(), e.zh),
    )
}

fn pick(folder: bool) -> Result<Vec<PathBuf>, L10n> {
    if !file_dialog_available() {
        return Err(l(
            "no file dialog on this system (it needs xdg-desktop-portal or zenity): drop the files on the panel or type a path",
            "本系统没有文件对话框（需要 xdg-desktop-portal 或 zenity）：请把文件拖到面板上，或输入路径",
        ));
    }
    let picked = if folder {
        rfd::FileDialog::new().pick_folder().map(|f| vec![f])
    } else {
        rfd::FileDialog::new()
            .add_filter(
                "certificates",
                &["pem", "crt", "cer", "der", "key", "pfx", "p12", "zip"],
            )
            .add_filter("all", &["*"])
            .pick_files()
    };
    Ok(picked.unwrap_or_default())
}

/// rfd answers "cancelled" when it has no dialog to show; tell the user instead.
fn file_dialog_available() -> bool {
    if !cfg!(target_os = "linux") {
        return true;
    }
    let on_path = |exe: &str| {
        std::env::var_os("PATH")
            .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(exe).is_file()))
    };
    std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_some() || on_path("zenity")
}

/// Walks a folder (bounded: 100 000 entries) and tries to create a file in it.
pub fn inspect_folder(path: &Path) -> Result<FolderReport, L10n> {
    let named = |e: std::io::Error| {
        let e = crate::i18n::io_error(&e);
        l(
            format!("{}: {}", path.display(), e.en),
            format!("{}：{}", path.display(), e.zh),
        )
    };
    std::fs::create_dir_all(path).map_err(named)?;
    let probe = path.join(format!(".mpbridge-write-test-{}", std::process::id()));
    std::fs::write(&probe, b"ok").map_err(named)?;
    std::fs::remove_file(&probe).ok();
    let mut report = FolderReport { files: 0, bytes: 0 };
    let mut stack = vec![path.to_path_buf()];
    let mut seen = 0u32;
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            seen += 1;
            if seen > 100_000 {
                return Ok(report);
            }
            match entry.metadata() {
                Ok(m) if m.is_dir() => stack.push(entry.path()),
                Ok(m) => {
                    report.files += 1;
                    report.bytes += m.len();
                }
                Err(_) => {}
            }
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Requested;

    fn paths(dir: &Path) -> crate::config::Paths {
        crate::config::Paths {
            config_dir: dir.join("config"),
            data_dir: dir.join("data"),
        }
    }

    #[tokio::test]
    async fn exports_stay_in_the_exports_folder_and_folders_are_counted() {
        let dir = tempfile::tempdir().unwrap();
        let (shared, _, _) = Shared::for_test(paths(dir.path()));
        let mut files = FilesService::new(shared);

        let (req, reply) = Requested::new(None);
        files
            .handle(FileCmd::ExportText {
                file_name: "../../escape.txt".into(),
                text: "hello".into(),
                reply,
            })
            .await;
        let written = req.wait().await.unwrap();
        assert_eq!(written, dir.path().join("data/exports/escape.txt"));
        assert_eq!(std::fs::read_to_string(&written).unwrap(), "hello");

        let (req, reply) = Requested::new(None);
        files
            .handle(FileCmd::InspectFolder {
                path: dir.path().join("data"),
                reply,
            })
            .await;
        assert_eq!(
            req.wait().await.unwrap(),
            FolderReport { files: 1, bytes: 5 }
        );
    }

    #[tokio::test]
    async fn an_unwritable_folder_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("file");
        std::fs::write(&blocker, "x").unwrap();
        let (shared, _, _) = Shared::for_test(paths(dir.path()));
        let (req, reply) = Requested::new(None);
        FilesService::new(shared)
            .handle(FileCmd::InspectFolder {
                path: blocker.join("sub"),
                reply,
            })
            .await;
        let e = req.wait().await.unwrap_err();
        assert!(e.en.contains("file/sub"), "{e:?}");
        assert!(
            e.zh.contains("file/sub") && e.zh.contains("不是文件夹"),
            "{e:?}"
        );
    }
}
