//! The processes a benchmark starts and what it reads about them from /proc: memory and CPU
//! time, children included.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::bail;

/// A process killed (after its `stop` command, when it has one) when dropped.
pub(super) struct Proc {
    pub(super) name: &'static str,
    pub(super) child: Child,
    /// How to ask it to stop first (nginx: `-s stop`, so the master stops its workers;
    /// killing the master alone leaves them holding the port).
    pub(super) stop: Option<Command>,
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.as_mut() {
            stop.stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .ok();
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

/// The path of a program: on PATH, else in the sbin folders where Debian installs daemons
/// (mosquitto, nginx) and that a non-root PATH lacks; the bare name when found nowhere (the
/// spawn then fails with "not found").
pub fn program(name: &str) -> std::path::PathBuf {
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    find_in(name, on_path)
}

fn find_in(name: &str, path: Vec<std::path::PathBuf>) -> std::path::PathBuf {
    let sbin = ["/usr/local/sbin", "/usr/sbin", "/sbin"].map(std::path::PathBuf::from);
    path.into_iter()
        .chain(sbin)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| std::path::PathBuf::from(name))
}

/// Fails with one sentence when mosquitto, the reference every bench runs beside, is absent.
pub(super) fn require_mosquitto() -> anyhow::Result<()> {
    let found = Command::new(program("mosquitto"))
        .arg("-h")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !found {
        bail!("mosquitto is not installed (apt-get install mosquitto)");
    }
    Ok(())
}

/// The first line of `mosquitto -h` ("mosquitto version 2.0.11"); empty when it is absent.
pub(super) fn mosquitto_version() -> String {
    Command::new(program("mosquitto"))
        .arg("-h")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .map(|l| l.trim().to_owned())
        })
        .unwrap_or_default()
}

/// A throwaway CA for a bench: its certificate in `dir/ca.pem`, and the issuer for leaves.
pub(super) fn test_ca(
    dir: &std::path::Path,
    name: &str,
) -> anyhow::Result<(std::path::PathBuf, rcgen::Issuer<'static, rcgen::KeyPair>)> {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    let cert = params.self_signed(&key)?;
    let path = dir.join("ca.pem");
    std::fs::write(&path, cert.pem())?;
    Ok((path, Issuer::new(params, key)))
}

/// The `p` quantile (0–1) of latencies in microseconds, sorted, in milliseconds; NaN when
/// there is none.
pub(super) fn quantile_ms(sorted_us: &[u32], p: f64) -> f64 {
    if sorted_us.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted_us.len() as f64 - 1.0) * p).round() as usize;
    f64::from(sorted_us[i.min(sorted_us.len() - 1)]) / 1000.0
}

/// Keeps the latency of a delivered message whose payload starts with its send time (8 bytes,
/// nanoseconds since `epoch`, big-endian), in microseconds; at most 200 000 of them.
pub(super) fn record_latency(payload: &[u8], epoch: std::time::Instant, lat: &mut Vec<u32>) {
    let Some(ts) = payload.get(..8).and_then(|b| <[u8; 8]>::try_from(b).ok()) else {
        return;
    };
    let now = epoch.elapsed().as_nanos() as u64;
    if lat.len() < 200_000 {
        lat.push((now.saturating_sub(u64::from_be_bytes(ts)) / 1000) as u32);
    }
}

/// Starts mosquitto with the configuration file `conf`; killed when dropped.
pub(super) fn spawn_mosquitto(conf: &std::path::Path) -> anyhow::Result<Proc> {
    let child = Command::new(program("mosquitto"))
        .arg("-c")
        .arg(conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    Ok(Proc {
        name: "mosquitto",
        child,
        stop: None,
    })
}

pub(super) fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

pub(super) fn wait_listening(port: u16, what: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(15);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            bail!("{what} did not listen on 127.0.0.1:{port} within 15 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// A process and its direct children (nginx's and the relay's workers).
pub(super) fn family(pid: u32) -> Vec<u32> {
    let mut all = vec![pid];
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for e in entries.flatten() {
            let Some(child) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            let ppid = std::fs::read_to_string(format!("/proc/{child}/stat"))
                .ok()
                .and_then(|s| s.rsplit(')').next().map(str::to_owned))
                .and_then(|s| {
                    s.split_whitespace()
                        .nth(1)
                        .and_then(|p| p.parse::<u32>().ok())
                });
            if ppid == Some(pid) {
                all.push(child);
            }
        }
    }
    all
}

/// Resident memory of a process and its children, in KiB.
pub(super) fn rss_kib(pid: u32) -> u64 {
    family(pid).into_iter().map(rss_alone_kib).sum()
}

/// Resident memory of one process, in KiB.
pub(super) fn rss_alone_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// Open descriptors of a process and its children.
pub(super) fn fds(pid: u32) -> u64 {
    family(pid)
        .into_iter()
        .filter_map(|p| std::fs::read_dir(format!("/proc/{p}/fd")).ok())
        .map(|d| d.count() as u64)
        .sum()
}

/// CPU time (user + system) of a process and its children so far, in seconds.
pub(super) fn cpu_secs(pid: u32) -> f64 {
    // /proc reports times in USER_HZ, which the kernel ABI fixes at 100 on Linux.
    const USER_HZ: f64 = 100.0;
    let read = |p: u32| -> u64 {
        std::fs::read_to_string(format!("/proc/{p}/stat"))
            .ok()
            .and_then(|s| {
                let rest = s.rsplit(')').next()?.to_owned();
                let f: Vec<&str> = rest.split_whitespace().collect();
                // After the command: state is field 0, utime 11, stime 12.
                Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
            })
            .unwrap_or(0)
    };
    family(pid).into_iter().map(read).sum::<u64>() as f64 / USER_HZ
}

#[cfg(test)]
mod tests {
    /// A non-root PATH (`/usr/bin:/bin`) lacks /usr/sbin, where Debian puts nginx and
    /// mosquitto: they are found there anyway.
    #[test]
    fn daemons_in_sbin_are_found_without_sbin_on_path() {
        let user_path = vec!["/usr/bin".into(), "/bin".into()];
        for daemon in ["nginx", "mosquitto"] {
            let in_sbin = std::path::Path::new("/usr/sbin").join(daemon);
            assert!(
                in_sbin.is_file() || std::env::var_os("CI").is_none(),
                "{daemon} is not installed (.ci/install-deps installs it)"
            );
            if in_sbin.is_file() {
                assert_eq!(super::find_in(daemon, user_path.clone()), in_sbin);
            }
        }
        assert_eq!(
            super::find_in("no-such-program-here", user_path),
            std::path::PathBuf::from("no-such-program-here")
        );
        assert_eq!(
            super::find_in("sh", vec!["/bin".into()]),
            std::path::PathBuf::from("/bin/sh")
        );
    }
}
