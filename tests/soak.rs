//! The soak bench's short run, through the real binary with a real mosquitto: the relay holds
//! its sessions through certificate reloads and upstream restarts with nothing lost and nothing
//! leaked, and the console stays within its store's bound. The full-length figures are in the
//! README (`mpbridge bench soak`).
#![allow(clippy::unwrap_used)] // tests may unwrap: a panic is the failure report

mod common;

use std::io::Read;
use std::process::Stdio;
use std::time::{Duration, Instant};

#[test]
fn a_short_soak_holds_every_invariant() {
    assert!(
        common::Mosquitto::available(),
        "mosquitto is not installed (.ci/install-deps installs it)"
    );
    let root = tempfile::tempdir().unwrap();
    let mut cmd = common::mpbridge(root.path());
    cmd.args(["bench", "soak", "--json", "--secs", "20"])
        .args(["--connections", "100", "--churn", "20"])
        .args(["--reload-every", "5", "--restart-every", "8"])
        .args(["--traffic", "3", "--rate", "10"])
        .args([
            "--devices",
            "50",
            "--store-messages",
            "500",
            "--store-mb",
            "16",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = common::KillOnDrop(cmd.spawn().unwrap());
    let deadline = Instant::now() + Duration::from_secs(300);
    let status = loop {
        if let Some(s) = child.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "the soak did not end within 300 s"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let mut out = String::new();
    let mut err = String::new();
    child
        .0
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    child
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let report: serde_json::Value = serde_json::from_str(out.trim())
        .unwrap_or_else(|e| panic!("not the JSON report ({e}): {out}\n{err}"));
    let n = |part: &str, key: &str| {
        report[part][key]
            .as_f64()
            .unwrap_or_else(|| panic!("{part}.{key} missing: {report}"))
    };

    // The relay: faults happened, and it held.
    assert!(n("relay", "restarts") >= 2.0, "{report}");
    assert!(n("relay", "reloads_made") >= 3.0, "{report}");
    assert_eq!(
        n("relay", "reloads_served"),
        n("relay", "reloads_made"),
        "{report}"
    );
    assert_eq!(n("relay", "live_end"), 100.0, "{report}");
    assert!(n("relay", "churn_done") >= 200.0, "{report}");
    assert_eq!(n("relay", "tls_failed"), 0.0, "{report}");
    assert_eq!(n("relay", "refused_otherwise"), 0.0, "{report}");
    assert!(
        n("relay", "rss_end_kib") <= n("relay", "rss_start_kib") * 1.1,
        "{report}"
    );
    assert!(
        n("relay", "fds_end") <= n("relay", "fds_start") * 1.1,
        "{report}"
    );
    // Nothing lost: every QoS 1 message published came back, across reloads and restarts.
    assert!(n("relay", "published") >= 300.0, "{report}");
    assert_eq!(n("relay", "delivered"), n("relay", "published"), "{report}");
    assert_eq!(n("relay", "lost_near_restart"), 0.0, "{report}");
    assert_eq!(n("relay", "lost_otherwise"), 0.0, "{report}");
    assert_eq!(n("relay", "sessions_lost"), 0.0, "{report}");

    // The console: the store turned over and memory stayed within start + bound.
    assert!(
        n("console", "evicted") > 0.0,
        "the store never reached its bound: {report}"
    );
    assert!(n("console", "store_messages_end") <= 500.0, "{report}");
    assert!(
        n("console", "rss_max_kib") <= n("console", "rss_start_kib") + 16.0 * 1024.0,
        "{report}"
    );
    assert!(n("console", "devices_online_end") >= 50.0, "{report}");
    assert_eq!(n("console", "dropped"), 0.0, "{report}");

    assert_eq!(report["violations"], serde_json::json!([]), "{report}");
    assert!(status.success(), "exit {status}: {err}");
}
