//! The packages' own pieces, checked with the real scripts and the test build of the binary:
//! the portable archive's install.sh (install into a prefix, run, uninstall, nothing left),
//! the desktop entry, the macOS bundle's layout and Info.plist, the crate lists Settings →
//! About shows. The `.deb` is built, installed and purged by `.ci/package-test`; the Windows
//! installer is tested under wine by `dist/windows/smoke.sh` (run by `dist/build.sh`, and by
//! the ignored test at the end once `dist/out/` holds a Windows build).

#![allow(clippy::unwrap_used)] // the shared test helpers unwrap: a panic is the failure report

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{cmd:?} failed: {text}");
    text
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            found.push(p.clone());
            if p.is_dir() {
                todo.push(p);
            }
        }
    }
    found
}

fn desktop_file_validate() -> bool {
    Command::new("desktop-file-validate")
        .arg("--help")
        .output()
        .is_ok()
}

#[test]
fn portable_archive_installs_runs_and_uninstalls_without_a_trace() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let stage = tmp.path().join("mpbridge-linux-x86_64");
    run(Command::new(root().join("dist/linux/stage.sh"))
        .arg(env!("CARGO_BIN_EXE_mpbridge"))
        .arg(root().join("LICENSE-MIT"))
        .arg(&stage));
    // A prefix with something of the user's in it already: it must survive the round trip.
    let prefix = tmp.path().join("prefix");
    std::fs::create_dir_all(prefix.join("share/applications")).expect("mkdir");
    std::fs::write(prefix.join("share/applications/other.desktop"), "x").expect("write");

    let said = run(Command::new(stage.join("install.sh"))
        .arg("--prefix")
        .arg(&prefix)
        .env("PATH", "/usr/bin:/bin"));
    assert!(said.contains("installed in"), "{said}");
    assert!(said.contains("not on your PATH"), "{said}");
    let exe = prefix.join("bin/mpbridge");
    let version = run(Command::new(&exe).arg("--version"));
    assert!(
        version.contains(env!("CARGO_PKG_VERSION")),
        "the installed binary runs: {version}"
    );
    for icon in ["16x16", "48x48", "256x256", "512x512"] {
        assert!(
            prefix
                .join(format!("share/icons/hicolor/{icon}/apps/mpbridge.png"))
                .is_file(),
            "{icon} icon"
        );
    }
    assert!(prefix.join("share/doc/mpbridge/copyright").is_file());
    assert!(
        prefix
            .join("share/doc/mpbridge/examples/mpbridge-relay.service")
            .is_file()
    );
    let entry = prefix.join("share/applications/mpbridge.desktop");
    let text = std::fs::read_to_string(&entry).expect("desktop entry");
    assert!(
        text.contains(&format!("Exec={}", exe.display())),
        "the menu entry names the installed binary by path: {text}"
    );
    if desktop_file_validate() {
        run(Command::new("desktop-file-validate").arg(&entry));
    } else {
        common::missing("desktop-file-validate (desktop-file-utils)");
    }

    let said = run(Command::new(stage.join("install.sh"))
        .arg("--uninstall")
        .arg("--prefix")
        .arg(&prefix));
    assert!(said.contains("removed"), "{said}");
    let mut left = files_under(&prefix);
    left.sort();
    assert_eq!(
        left,
        vec![
            prefix.join("share"),
            prefix.join("share/applications"),
            prefix.join("share/applications/other.desktop"),
        ],
        "nothing of mpbridge is left, and the user's own file stays"
    );

    // Uninstalling again says so in one sentence and fails.
    let out = Command::new(stage.join("install.sh"))
        .arg("--uninstall")
        .arg("--prefix")
        .arg(&prefix)
        .output()
        .expect("install.sh");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not installed"), "{err}");
}

#[test]
fn desktop_entry_is_valid_and_bilingual() {
    let entry = root().join("dist/linux/mpbridge.desktop");
    let text = std::fs::read_to_string(&entry).expect("desktop entry");
    for key in [
        "Comment[zh_CN]=",
        "GenericName[zh_CN]=",
        "Categories=Development;Network;",
    ] {
        assert!(text.contains(key), "{key}");
    }
    if desktop_file_validate() {
        run(Command::new("desktop-file-validate").arg(&entry));
    } else {
        common::missing("desktop-file-validate (desktop-file-utils)");
    }
}

#[test]
fn macos_bundle_has_the_binary_the_plist_names_and_this_version() {
    let tmp = tempfile::tempdir().expect("tempdir");
    run(Command::new(root().join("dist/macos/bundle.sh"))
        .arg(env!("CARGO_BIN_EXE_mpbridge"))
        .arg(tmp.path())
        .arg("--no-dmg"));
    let app = tmp.path().join("mpbridge.app/Contents");
    // Python's plistlib is a real plist parser: the file must parse, not just look right.
    let fields = run(Command::new("python3")
        .arg("-c")
        .arg(
            "import plistlib,sys; p=plistlib.load(open(sys.argv[1],'rb')); \
         print(p['CFBundleExecutable'], p['CFBundleShortVersionString'], p['CFBundleVersion'], \
         p['CFBundleIconFile'], p['CFBundlePackageType'], p['CFBundleIdentifier'])",
        )
        .arg(app.join("Info.plist")));
    let f: Vec<&str> = fields.split_whitespace().collect();
    assert_eq!(f.len(), 6, "{fields}");
    let (exe, short, long, icon, kind) = (f[0], f[1], f[2], f[3], f[4]);
    assert_eq!(kind, "APPL");
    assert_eq!(short, env!("CARGO_PKG_VERSION"));
    assert_eq!(long, env!("CARGO_PKG_VERSION"));
    let bin = app.join("MacOS").join(exe);
    assert!(
        bin.is_file(),
        "the plist names {exe}, which is in Contents/MacOS"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&bin)
            .expect("binary")
            .permissions()
            .mode();
        assert!(mode & 0o111 != 0, "executable");
    }
    let icns = std::fs::read(app.join("Resources").join(icon)).expect("icon file");
    assert_eq!(&icns[..4], b"icns", "a real .icns");
    let licences = std::fs::read_to_string(app.join("Resources/LICENSES.txt")).expect("licences");
    assert!(licences.contains("Rust crates linked into the binary for aarch64-apple-darwin"));
}

/// Settings → About lists the crates built in; the lists are generated per target and must
/// follow Cargo.lock (`dist/licenses.py --list` rewrites them).
#[test]
fn about_lists_name_every_linked_crate() {
    let tmp = tempfile::tempdir().expect("tempdir");
    for (target, file) in [
        ("x86_64-unknown-linux-gnu", "crates-linux.txt"),
        ("x86_64-pc-windows-gnu", "crates-windows.txt"),
        ("aarch64-apple-darwin", "crates-macos.txt"),
    ] {
        let fresh = tmp.path().join(file);
        run(Command::new("python3")
            .arg(root().join("dist/licenses.py"))
            .arg("--target")
            .arg(target)
            .arg("--list")
            .arg(&fresh));
        let fresh = std::fs::read_to_string(&fresh).expect("list");
        let committed =
            std::fs::read_to_string(root().join("assets/licenses").join(file)).expect("list");
        assert!(
            fresh.lines().count() > 300,
            "{target}: {} crates",
            fresh.lines().count()
        );
        assert!(fresh.contains("rustls "), "{target}");
        assert_eq!(
            committed, fresh,
            "assets/licenses/{file} is stale: run dist/licenses.py --target {target} --list assets/licenses/{file}"
        );
    }
}

/// The Windows installer under wine: needs `dist/build.sh --windows` first (a 25-minute
/// cross-build with Debian's toolchain, too slow for every CI run), so it runs on demand:
/// `cargo test --test dist -- --ignored`.
#[test]
#[ignore = "needs dist/out/ from dist/build.sh --windows; run with --ignored"]
fn windows_installer_under_wine() {
    let v = env!("CARGO_PKG_VERSION");
    let out = root().join("dist/out");
    let exe = out.join(format!("mpbridge-{v}-windows-x86_64.exe"));
    let setup = out.join(format!("mpbridge-{v}-windows-x86_64-setup.exe"));
    assert!(
        exe.is_file() && setup.is_file(),
        "run dist/build.sh --windows first"
    );
    let said = run(Command::new(root().join("dist/windows/smoke.sh"))
        .arg(&exe)
        .arg(&setup));
    assert!(said.contains("every check passed"), "{said}");
}
