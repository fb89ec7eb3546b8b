//! One real window under Xvfb: `mpbridge --screenshot` must draw live sandbox data and write
#![allow(clippy::unwrap_used)] // tests may unwrap: a panic is the failure report
//! a PNG that is not blank. Skipped (with the reason printed) only where no X server can be
//! started; `.ci/run` installs xvfb so CI always runs it.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::KillOnDrop;

fn have(cmd: &str) -> bool {
    std::process::Command::new("sh")
        .args(["-c", &format!("command -v {cmd}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Decodes an RGBA/RGB PNG; returns (width, height, distinct colours, share of the most
/// common colour).
fn png_stats(path: &std::path::Path) -> (u32, u32, usize, f64) {
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = info.color_type.samples();
    let mut counts = std::collections::HashMap::new();
    for px in buf[..info.buffer_size()].chunks(channels) {
        *counts.entry(px[..3].to_vec()).or_insert(0u64) += 1;
    }
    let total = u64::from(info.width) * u64::from(info.height);
    let top = counts.values().max().copied().unwrap_or(0);
    (
        info.width,
        info.height,
        counts.len(),
        top as f64 / total as f64,
    )
}

fn screenshot(lang: &str) {
    if !have("xvfb-run") {
        common::missing(
            "xvfb-run is not installed (apt-get install xvfb xauth); no X server to open a window",
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let shot = dir.path().join(format!("console-{lang}.png"));
    let mut cmd = std::process::Command::new("xvfb-run");
    cmd.env("MPBRIDGE_CONFIG_DIR", dir.path().join("config"))
        .env("MPBRIDGE_DATA_DIR", dir.path().join("data"))
        .env_remove("MPBRIDGE_LOG")
        .args(["-a", "-s", "-screen 0 1280x800x24"])
        .arg(env!("CARGO_BIN_EXE_mpbridge"))
        .arg("--screenshot")
        .arg(&shot)
        .args(["--quit-after", "40", "--lang", lang])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut guard = KillOnDrop(cmd.spawn().expect("xvfb-run starts"));
    let deadline = Instant::now() + Duration::from_secs(90);
    let status = loop {
        if let Some(s) = guard.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "mpbridge --screenshot did not exit within 90 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut stderr = String::new();
    use std::io::Read;
    guard
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .ok();
    assert!(status.success(), "exit {status:?}; stderr:\n{stderr}");
    assert!(stderr.contains("first frame drawn"), "{stderr}");
    let (w, h, colours, top) = png_stats(&shot);
    assert!(w >= 1000 && h >= 600, "window size {w}x{h}");
    assert!(colours > 50, "only {colours} colours: blank window?");
    assert!(
        top < 0.9,
        "one colour covers {:.0} % of the window: blank?",
        top * 100.0
    );
    // Keep the picture for people to look at.
    let keep =
        std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("console-{lang}.png"));
    std::fs::copy(&shot, &keep).ok();
    println!(
        "screenshot: {} ({w}x{h}, {colours} colours)",
        keep.display()
    );
}

#[test]
fn real_window_screenshot_english_and_chinese() {
    screenshot("en");
    screenshot("zh-CN");
}
