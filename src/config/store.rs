//! Reading and writing configuration files without ever losing one.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

/// A configuration type that can be read from TOML: raw serde first, then `validate`.
pub trait ConfigFile: Sized + Default {
    /// Parses and validates the whole text. Errors carry the line where known.
    fn parse(text: &str) -> Result<Self, ParseError>;
    /// The TOML text to write.
    fn render(&self) -> String;
}

/// Why a file's text was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", line.map(|l| format!("line {l}: ")).unwrap_or_default())]
pub struct ParseError {
    pub line: Option<usize>,
    pub message: String,
}

impl ParseError {
    pub fn at(
        text: &str,
        span: Option<std::ops::Range<usize>>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            line: span.map(|s| line_of(text, s.start)),
            message: message.into(),
        }
    }

    /// From a `toml` deserialization error: its first line, with the line number apart.
    pub fn from_toml(text: &str, err: &toml::de::Error) -> Self {
        Self::at(text, err.span(), err.message().trim().to_owned())
    }
}

/// 1-based line number of a byte offset.
pub fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()
        .get(..end)
        .map_or(0, |b| b.iter().filter(|&&c| c == b'\n').count())
        + 1
}

/// A file that could not be used, and what was done about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: PathBuf,
    pub line: Option<usize>,
    pub message: String,
    /// Where the unusable file was moved so that nothing is lost.
    pub kept_as: Option<PathBuf>,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, " line {line}")?;
        }
        write!(f, ": {}", self.message)?;
        if let Some(kept) = &self.kept_as {
            write!(f, " (kept as {})", kept.display())?;
        }
        Ok(())
    }
}

/// The outcome of [`load`]: always a usable value, and the problem if there was one.
#[derive(Debug)]
pub struct Loaded<T> {
    pub value: T,
    pub problem: Option<Problem>,
}

/// Largest configuration file we read; anything bigger is certainly not ours.
const MAX_CONFIG_BYTES: u64 = 4 * 1024 * 1024;

/// Loads `path`. A missing file gives the defaults. An unreadable or invalid file is renamed
/// to `NAME.corrupt-<timestamp>` (so the next save cannot overwrite it) and gives the defaults
/// plus a [`Problem`] naming the file, the line and what is wrong.
pub fn load<T: ConfigFile>(path: &Path) -> Loaded<T> {
    let text = match read_limited(path) {
        Ok(None) => {
            return Loaded {
                value: T::default(),
                problem: None,
            };
        }
        Ok(Some(text)) => text,
        Err(message) => return recover(path, None, message),
    };
    match T::parse(&text) {
        Ok(value) => Loaded {
            value,
            problem: None,
        },
        Err(err) => recover(path, err.line, err.message),
    }
}

fn read_limited(path: &Path) -> Result<Option<String>, String> {
    let meta = match fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read the file: {e}")),
    };
    if meta.len() > MAX_CONFIG_BYTES {
        return Err(format!(
            "the file is {} bytes, more than a configuration file can be ({MAX_CONFIG_BYTES})",
            meta.len()
        ));
    }
    let bytes = fs::read(path).map_err(|e| format!("cannot read the file: {e}"))?;
    String::from_utf8(bytes).map(Some).map_err(|e| {
        format!(
            "the file is not UTF-8 text (byte {})",
            e.utf8_error().valid_up_to()
        )
    })
}

fn recover<T: Default>(path: &Path, line: Option<usize>, message: String) -> Loaded<T> {
    let stamp = chrono::Local::now().format("%Y%m%d-%H%M%S");
    let mut kept = path.with_file_name(format!("{}.corrupt-{stamp}", file_name(path)));
    let mut n = 1;
    while kept.exists() {
        kept = path.with_file_name(format!("{}.corrupt-{stamp}-{n}", file_name(path)));
        n += 1;
    }
    let kept_as = match fs::rename(path, &kept) {
        Ok(()) => Some(kept),
        Err(e) => {
            tracing::warn!("could not move {} aside: {e}", path.display());
            None
        }
    };
    let problem = Problem {
        file: path.to_path_buf(),
        line,
        message,
        kept_as,
    };
    tracing::warn!("configuration problem: {problem}; started with defaults");
    Loaded {
        value: T::default(),
        problem: Some(problem),
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "config".to_owned())
}

/// Path of the previous version kept by [`save_atomic`].
pub fn backup_path(path: &Path) -> PathBuf {
    path.with_file_name(format!("{}.bak", file_name(path)))
}

/// Writes `contents` to `path` so that a crash at any moment leaves either the old or the new
/// file in place, never a torn one: write a temp file beside it, fsync, keep the current file
/// as `NAME.bak`, rename the temp file over `path`, fsync the folder.
///
/// Settings may hold secrets (broker passwords, key paths): on Unix the file, its `.bak` and
/// the temp file are 0600 from their first byte, and a folder this creates is 0700; an
/// existing folder open to others is closed to them too.
pub fn save_atomic(path: &Path, contents: &str) -> std::io::Result<()> {
    write_atomic(path, contents, true)
}

/// [`save_atomic`], keeping the previous version as `NAME.bak` only when `keep_backup`.
pub fn write_atomic(path: &Path, contents: &str, keep_backup: bool) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    private_dir(dir)?;
    let tmp = dir.join(format!(".{}.tmp-{}", file_name(path), std::process::id()));
    {
        let mut f = private_file(&tmp)?;
        f.write_all(contents.as_bytes())?;
        f.sync_all()?;
    }
    if keep_backup && path.exists() {
        // Not fs::copy: it would carry an older file's 0644 over to the backup.
        let old = fs::read(path)?;
        let bak = backup_path(path);
        let mut f = private_file(&bak)?;
        f.write_all(&old)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    #[cfg(unix)]
    if let Ok(d) = fs::File::open(dir) {
        // Persisting the rename; a failure here leaves the new file in place anyway.
        d.sync_all().ok();
    }
    Ok(())
}

/// Creates `dir` (and its parents) and makes it 0700 on Unix.
pub fn private_dir(dir: &Path) -> std::io::Result<()> {
    fs::create_dir_all(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(dir)?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            fs::set_permissions(dir, fs::Permissions::from_mode(mode & 0o700))?;
        }
    }
    Ok(())
}

/// Opens `path` for writing, truncated, 0600 on Unix even if it existed with a wider mode.
fn private_file(path: &Path) -> std::io::Result<fs::File> {
    let mut o = fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        o.mode(0o600);
        let f = o.open(path)?;
        f.set_permissions(fs::Permissions::from_mode(0o600))?;
        Ok(f)
    }
    #[cfg(not(unix))]
    o.open(path)
}

/// Saves a config value atomically.
pub fn save<T: ConfigFile>(path: &Path, value: &T) -> std::io::Result<()> {
    save_atomic(path, &value.render())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_numbers() {
        let t = "a\nb\nc";
        assert_eq!(line_of(t, 0), 1);
        assert_eq!(line_of(t, 2), 2);
        assert_eq!(line_of(t, 4), 3);
        assert_eq!(line_of(t, 100), 3);
    }

    /// A broker password lives in profiles.json: the file, its backup and the folder are
    /// the user's alone, even when an older version left them readable to others.
    #[cfg(unix)]
    #[test]
    fn saved_files_and_their_folder_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("config");
        let p = dir.join("profiles.json");
        save_atomic(&p, "{\"password\":\"one\"}").unwrap();
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&p), 0o600);
        // An old install's world-readable file and folder.
        fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        save_atomic(&p, "{\"password\":\"two\"}").unwrap();
        assert_eq!(mode(&p), 0o600);
        assert_eq!(mode(&backup_path(&p)), 0o600, "the backup too");
        assert_eq!(mode(&dir), 0o700);
    }

    #[test]
    fn save_keeps_previous_version() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.toml");
        save_atomic(&p, "one = 1\n").unwrap();
        save_atomic(&p, "two = 2\n").unwrap();
        assert_eq!(fs::read_to_string(&p).unwrap(), "two = 2\n");
        assert_eq!(fs::read_to_string(backup_path(&p)).unwrap(), "one = 1\n");
    }
}
