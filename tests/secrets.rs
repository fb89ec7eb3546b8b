//! Broker passwords in a real Secret Service (gnome-keyring in a D-Bus session of the test's
//! own), and in the private file where no store answers. Plain-text passwords an older version
//! left in profiles.json move out at the first start, backup included; `secret-tool` (libsecret,
//! not our code) finds them in the keyring.
#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used)] // tests may unwrap: a panic is the failure report

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A D-Bus session bus and an unlocked gnome-keyring on it, both killed on drop.
struct SecretService {
    _bus: common::KillOnDrop,
    _keyring: common::KillOnDrop,
    address: String,
    _dir: tempfile::TempDir,
}

impl SecretService {
    fn start() -> Self {
        for tool in ["dbus-daemon", "gnome-keyring-daemon", "secret-tool"] {
            assert!(
                mpbridge::bench::program(tool).is_absolute(),
                "{tool} is not installed (.ci/install-deps installs dbus, gnome-keyring and libsecret-tools)"
            );
        }
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("bus");
        let address = format!("unix:path={}", socket.display());
        let bus = common::KillOnDrop(
            Command::new("dbus-daemon")
                .args(["--session", "--nofork", "--nopidfile"])
                .arg(format!("--address={address}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        while !socket.exists() {
            assert!(Instant::now() < deadline, "dbus-daemon did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        let run = dir.path().join("run");
        std::fs::create_dir(&run).unwrap();
        let mut keyring = Command::new("gnome-keyring-daemon")
            .args(["--foreground", "--unlock", "--components=secrets"])
            .env("DBUS_SESSION_BUS_ADDRESS", &address)
            .env("HOME", dir.path())
            .env("XDG_RUNTIME_DIR", &run)
            .env("XDG_DATA_HOME", dir.path().join("data"))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // The login keyring's password, then end of input.
        keyring
            .stdin
            .take()
            .unwrap()
            .write_all(b"test-keyring")
            .unwrap();
        let keyring = common::KillOnDrop(keyring);
        let s = SecretService {
            _bus: bus,
            _keyring: keyring,
            address,
            _dir: dir,
        };
        // Ready when it stores: the daemon answers searches before its login collection
        // exists, and a store then fails ("result not returned from SS API").
        let deadline = Instant::now() + Duration::from_secs(15);
        while !s.stores() {
            assert!(
                Instant::now() < deadline,
                "the Secret Service did not store a probe secret within 15 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        s
    }

    /// Whether a probe secret can be stored in the default collection.
    fn stores(&self) -> bool {
        let Ok(mut child) = Command::new("secret-tool")
            .args(["store", "--label=probe", "service", "mpbridge-test-probe"])
            .env("DBUS_SESSION_BUS_ADDRESS", &self.address)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
        else {
            return false;
        };
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(b"probe").ok();
        }
        child.wait().map(|s| s.success()).unwrap_or(false)
    }

    /// secret-tool on this bus: (the search or lookup succeeded or found nothing, stdout).
    fn secret_tool(&self, args: &[&str]) -> (bool, String) {
        let out = Command::new("secret-tool")
            .args(args)
            .env("DBUS_SESSION_BUS_ADDRESS", &self.address)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        // "No such secret" is an answer; a bus error is not.
        let answered =
            out.status.success() || (err.trim().is_empty() && out.status.code() == Some(1));
        (answered, String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

fn old_profiles(config: &Path) -> PathBuf {
    std::fs::create_dir_all(config).unwrap();
    let file = config.join("profiles.json");
    // What an older mpbridge wrote: the password in plain text, readable by everyone.
    std::fs::write(
        &file,
        r#"{"profiles":[{"name":"prod","url":"mqtts://broker.example.com:8883","username":"tech","password":"hunter2"},{"name":"lab","url":"mqtt://127.0.0.1:1883"}]}"#,
    )
    .unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    file
}

fn profiles(root: &Path, bus: &str) -> (i32, serde_json::Value) {
    let out = common::mpbridge(root)
        .args(["profiles", "--json"])
        .env("DBUS_SESSION_BUS_ADDRESS", bus)
        .env_remove("MPBRIDGE_SECRETS")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let v = serde_json::from_str(text.trim()).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), v)
}

fn files_holding(dir: &Path, needle: &str) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|f| {
            let p = f.ok()?.path();
            let text = std::fs::read_to_string(&p).ok()?;
            text.contains(needle)
                .then(|| p.file_name().unwrap().to_string_lossy().into_owned())
        })
        .collect()
}

#[test]
fn plain_text_passwords_move_into_the_secret_service() {
    let ss = SecretService::start();
    let root = tempfile::tempdir().unwrap();
    let config = root.path().join("config");
    let file = old_profiles(&config);

    let (code, v) = profiles(root.path(), &ss.address);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["store"], "Secret Service", "{v}");
    assert_eq!(v["moved"], 1, "{v}");
    assert_eq!(v["profiles"][0]["password"], "kept", "{v}");
    assert_eq!(v["profiles"][1]["password"], "none", "{v}");
    // Gone from every file, the backup included; the file keeps a reference.
    assert_eq!(files_holding(&config, "hunter2"), Vec::<String>::new());
    let text = std::fs::read_to_string(&file).unwrap();
    let saved: serde_json::Value = serde_json::from_str(&text).unwrap();
    let id = saved["profiles"][0]["password_ref"]
        .as_str()
        .unwrap()
        .to_owned();
    // libsecret's own tool finds it in the keyring, labelled with the profile.
    let (_, found) = ss.secret_tool(&["lookup", "service", "mpbridge", "username", &id]);
    assert_eq!(found.trim(), "hunter2");
    let (_, listed) = ss.secret_tool(&["search", "--all", "service", "mpbridge"]);
    assert!(listed.contains("label = mpbridge: prod"), "{listed}");

    // Next start: nothing to move, the password still found.
    let (code, v) = profiles(root.path(), &ss.address);
    assert_eq!((code, &v["moved"]), (0, &serde_json::json!(0)), "{v}");
    assert_eq!(v["profiles"][0]["password"], "kept", "{v}");

    // Removed from the keyring behind our back: said, by name, with a failing exit.
    let cleared = Command::new("secret-tool")
        .args(["clear", "service", "mpbridge", "username", &id])
        .env("DBUS_SESSION_BUS_ADDRESS", &ss.address)
        .status()
        .unwrap();
    assert!(cleared.success());
    let (code, v) = profiles(root.path(), &ss.address);
    assert_eq!(code, 1, "{v}");
    assert_eq!(v["profiles"][0]["password"], "missing", "{v}");
}

#[test]
fn with_no_store_passwords_go_to_a_file_only_the_user_can_read() {
    let root = tempfile::tempdir().unwrap();
    let config = root.path().join("config");
    old_profiles(&config);
    let nobody = format!("unix:path={}", root.path().join("no-bus").display());
    let (code, v) = profiles(root.path(), &nobody);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["store"], "file", "{v}");
    assert!(
        v["why"]
            .as_str()
            .unwrap()
            .contains("no credential store answered"),
        "{v}"
    );
    assert_eq!(v["moved"], 1, "{v}");
    assert_eq!(
        files_holding(&config, "hunter2"),
        vec!["secrets.json".to_owned()]
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&config.join("secrets.json")), 0o600);
    assert_eq!(mode(&config.join("profiles.json")), 0o600);
    assert_eq!(mode(&config), 0o700);
    let (code, v) = profiles(root.path(), &nobody);
    assert_eq!(
        (code, &v["profiles"][0]["password"]),
        (0, &serde_json::json!("kept")),
        "{v}"
    );
}
