//! Configuration files: fixtures, corrupt-file recovery, atomic saves.
#![allow(clippy::unwrap_used)] // tests may unwrap: a panic is the failure report

use std::fs;
use std::path::Path;

use mpbridge::config::store::{self, ConfigFile, backup_path};
use mpbridge::config::{ConsoleConfig, Language, Theme};

fn fixtures(kind: &str) -> Vec<std::path::PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/config")
        .join(kind);
    let mut files: Vec<_> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no fixtures in {}", dir.display());
    files
}

#[test]
fn every_valid_fixture_parses() {
    for f in fixtures("valid") {
        let text = fs::read_to_string(&f).unwrap();
        let c = ConsoleConfig::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        // And survives a round trip through the writer.
        assert_eq!(
            ConsoleConfig::parse(&c.render()).unwrap(),
            c,
            "{}",
            f.display()
        );
    }
}

/// Each invalid fixture starts with `# expect: line N: text` naming where and what.
#[test]
fn every_invalid_fixture_fails_with_line_and_reason() {
    for f in fixtures("invalid") {
        let text = fs::read_to_string(&f).unwrap();
        let expect = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# expect: line "))
            .unwrap_or_else(|| panic!("{} lacks an `# expect:` header", f.display()));
        let (line, reason) = expect.split_once(": ").unwrap();
        assert!(
            !reason.trim().is_empty(),
            "{}: say what the error is",
            f.display()
        );
        let err = ConsoleConfig::parse(&text).expect_err(&f.display().to_string());
        assert_eq!(
            err.line,
            Some(line.parse().unwrap()),
            "{}: {err}",
            f.display()
        );
        assert!(
            err.message.contains(reason),
            "{}: {err:?} lacks {reason:?}",
            f.display()
        );
    }
}

#[test]
fn corrupt_file_is_kept_aside_and_defaults_used() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("console.toml");
    let bad = "theme = \"dark\"\nlanguage = 42\n";
    fs::write(&path, bad).unwrap();

    let loaded = store::load::<ConsoleConfig>(&path);
    assert_eq!(loaded.value, ConsoleConfig::default());
    let problem = loaded.problem.expect("a problem is reported");
    assert_eq!(problem.line, Some(2));
    assert_eq!(problem.file, path);
    let kept = problem.kept_as.clone().expect("file kept");
    assert!(
        kept.file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("console.toml.corrupt-")
    );
    assert_eq!(fs::read_to_string(&kept).unwrap(), bad, "nothing lost");
    assert!(
        !path.exists(),
        "the bad file is moved, so a save cannot overwrite it"
    );
    let shown = problem.to_string();
    assert!(
        shown.contains("console.toml") && shown.contains("line 2"),
        "{shown}"
    );

    // Saving now writes a fresh file and leaves the kept one alone.
    store::save(&path, &ConsoleConfig::default()).unwrap();
    assert_eq!(fs::read_to_string(&kept).unwrap(), bad);
    // A second corruption in the same second gets its own name.
    fs::write(&path, "\u{0}\u{1}garbage").unwrap();
    let again = store::load::<ConsoleConfig>(&path)
        .problem
        .unwrap()
        .kept_as
        .unwrap();
    assert_ne!(again, kept);
    assert!(again.exists() && kept.exists());
}

#[test]
fn non_utf8_and_huge_files_are_problems_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("console.toml");
    fs::write(&path, [0xff, 0xfe, 0x00, 0x41]).unwrap();
    let p = store::load::<ConsoleConfig>(&path).problem.unwrap();
    assert!(p.message.contains("UTF-8"), "{p}");

    let f = fs::File::create(&path).unwrap();
    f.set_len(5 * 1024 * 1024).unwrap();
    let p = store::load::<ConsoleConfig>(&path).problem.unwrap();
    assert!(p.message.contains("bytes"), "{p}");
}

#[test]
fn missing_file_gives_defaults_without_problem() {
    let dir = tempfile::tempdir().unwrap();
    let loaded = store::load::<ConsoleConfig>(&dir.path().join("nope.toml"));
    assert!(loaded.problem.is_none());
    assert_eq!(loaded.value, ConsoleConfig::default());
}

/// A writer that crashed mid-save leaves a torn temp file beside the config; the config
/// itself is intact, the next load ignores the temp file, and the next save replaces it.
#[test]
fn atomic_save_survives_a_crash_mid_write() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("console.toml");
    let good = ConsoleConfig {
        language: Some(Language::ZhCn),
        theme: Theme::Light,
        ..Default::default()
    };
    store::save(&path, &good).unwrap();

    // Simulate the crash: the temp file of a dead writer, half written.
    let torn = dir.path().join(".console.toml.tmp-99999");
    let full = ConsoleConfig {
        theme: Theme::Dark,
        ..good.clone()
    }
    .render();
    fs::write(&torn, &full[..full.len() / 2]).unwrap();

    let loaded = store::load::<ConsoleConfig>(&path);
    assert!(loaded.problem.is_none());
    assert_eq!(loaded.value, good, "the committed file is whole");

    let newer = ConsoleConfig {
        theme: Theme::Dark,
        ..good.clone()
    };
    store::save(&path, &newer).unwrap();
    assert_eq!(store::load::<ConsoleConfig>(&path).value, newer);
    // The previous version is kept.
    let bak = fs::read_to_string(backup_path(&path)).unwrap();
    assert_eq!(ConsoleConfig::parse(&bak).unwrap(), good);
    // No temp file of ours is left behind.
    let ours = format!(".console.toml.tmp-{}", std::process::id());
    assert!(!dir.path().join(ours).exists());
}
