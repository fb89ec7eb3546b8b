//! `mpbridge relay --config FILE`: the relay headless, for systemd and servers.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

use crate::relay::handoff::Runtimes;
use crate::relay::{Relay, RelayConfig};

/// The threads that set connections up, `threads` of them; `None` for 0 (the default), when
/// the event loop sets them up itself. Measured on 2 cores beside mosquitto, the pool cost
/// CPU and memory per connection and gained nothing (docs/DECISIONS.md); it is for a relay
/// with cores to spare, in front of a broker cluster.
pub fn setup_pool(threads: u16) -> anyhow::Result<Option<tokio::runtime::Runtime>> {
    if threads == 0 {
        return Ok(None);
    }
    let n = usize::from(threads);
    let pool = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(n)
        .enable_all()
        .thread_name("mpbridge-setup")
        .build()
        .map_err(|e| anyhow::anyhow!("cannot start the connection setup threads: {e}"))?;
    Ok(Some(pool))
}

/// Files whose change triggers a reload: the config and every certificate and key it names.
fn watched(path: &Path, cfg: &RelayConfig) -> Vec<PathBuf> {
    let mut v = vec![
        path.to_path_buf(),
        cfg.certs.cert.clone(),
        cfg.certs.key.clone(),
    ];
    for (_, c, k) in &cfg.certs.sni {
        v.push(c.clone());
        v.push(k.clone());
    }
    v
}

fn stamp(files: &[PathBuf]) -> Vec<Option<(SystemTime, u64)>> {
    files
        .iter()
        .map(|f| {
            std::fs::metadata(f)
                .ok()
                .and_then(|m| Some((m.modified().ok()?, m.len())))
        })
        .collect()
}

/// `workers` > 1: this process and `workers - 1` children share the listen address
/// (SO_REUSEPORT); the children take their orders (`reload`, `stop`) on stdin and stop when
/// it closes, so they never outlive the parent. `worker_on`: run as such a child.
pub async fn run(
    path: &Path,
    workers: u16,
    worker_on: Option<SocketAddr>,
    runtimes: Runtimes,
) -> anyhow::Result<ExitCode> {
    let cfg = match RelayConfig::load(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("mpbridge relay: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    if let Some(addr) = worker_on {
        return run_worker(path, cfg, addr, runtimes).await;
    }
    if workers > 1 && !cfg!(unix) {
        eprintln!(
            "mpbridge relay: --workers needs SO_REUSEPORT, which this system lacks; run one process (it uses one core for data and serves thousands of connections)"
        );
        return Ok(ExitCode::from(2));
    }
    let shared = workers > 1;
    let relay = match Relay::start_shared(cfg.clone(), runtimes, shared).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("mpbridge relay: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let mut children = Vec::new();
    for _ in 1..workers {
        match spawn_worker(relay.addr()) {
            Ok(c) => children.push(c),
            Err(e) => {
                eprintln!("mpbridge relay: cannot start a worker process: {e}");
                tell(&mut children, "stop").await;
                relay.stop().await;
                return Ok(ExitCode::from(2));
            }
        }
    }
    let routes: Vec<String> = cfg
        .routes
        .iter()
        .map(|r| {
            let ups: Vec<_> = r.upstreams.iter().map(|u| u.to_string()).collect();
            format!("{} → {}", r.path, ups.join(" | "))
        })
        .collect();
    eprintln!(
        "mpbridge relay: listening on {} ({}){}",
        relay.addr(),
        routes.join("; "),
        if shared {
            format!(", {workers} worker processes")
        } else {
            String::new()
        }
    );

    let mut files = watched(path, &cfg);
    let mut last = stamp(&files);
    let reload = |why: &str, relay: &Relay| -> Option<RelayConfig> {
        match RelayConfig::load(path) {
            Ok(c) => match relay.reload(c.clone()) {
                Ok(()) => {
                    tracing::info!("reloaded ({why})");
                    Some(c)
                }
                Err(e) => {
                    tracing::error!("{e}; the running configuration stays");
                    None
                }
            },
            Err(e) => {
                tracing::error!("reload refused ({why}): {e}; the running configuration stays");
                None
            }
        }
    };

    #[cfg(unix)]
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    #[cfg(unix)]
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut poll = tokio::time::interval(Duration::from_secs(2));
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        #[cfg(unix)]
        let signalled = async {
            tokio::select! {
                _ = hup.recv() => true,
                _ = term.recv() => false,
            }
        };
        #[cfg(not(unix))]
        let signalled = std::future::pending::<bool>();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            s = signalled => {
                if !s { break; }
                if let Some(c) = reload("SIGHUP", &relay) {
                    files = watched(path, &c);
                    tell(&mut children, "reload").await;
                }
                last = stamp(&files);
            }
            _ = poll.tick() => {
                let now = stamp(&files);
                if now != last {
                    // Give an editor or certbot a moment to finish writing.
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    if let Some(c) = reload("file changed", &relay) {
                        files = watched(path, &c);
                        tell(&mut children, "reload").await;
                    }
                    last = stamp(&files);
                }
            }
        }
    }
    eprintln!("mpbridge relay: draining");
    tell(&mut children, "stop").await;
    relay.stop().await;
    for mut c in children {
        // A worker drains like this process; one that hangs is killed.
        if tokio::time::timeout(Duration::from_secs(40), c.wait())
            .await
            .is_err()
        {
            c.start_kill().ok();
            c.wait().await.ok();
        }
    }
    let t = relay.snapshot(0).totals;
    eprintln!(
        "mpbridge relay: stopped ({} upgraded, {} rejected, {} bytes in, {} bytes out)",
        t.upgraded, t.rejected, t.bytes_in, t.bytes_out
    );
    Ok(ExitCode::SUCCESS)
}

/// Starts this program again as a worker on `addr`: the same arguments (so the same config,
/// folders and log level) without `--workers`, plus `--worker-on ADDR`; stdin is its order pipe.
fn spawn_worker(addr: SocketAddr) -> std::io::Result<tokio::process::Child> {
    let mut args: Vec<std::ffi::OsString> = Vec::new();
    let mut skip = false;
    for a in std::env::args_os().skip(1) {
        if skip {
            skip = false;
            continue;
        }
        let text = a.to_string_lossy();
        if text == "--workers" {
            skip = true;
            continue;
        }
        if text.starts_with("--workers=") {
            continue;
        }
        args.push(a);
    }
    args.push("--worker-on".into());
    args.push(addr.to_string().into());
    tokio::process::Command::new(std::env::current_exe()?)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
}

/// Sends one order line to every worker (a worker that is gone is skipped).
async fn tell(children: &mut [tokio::process::Child], order: &str) {
    for c in children.iter_mut() {
        if let Some(stdin) = c.stdin.as_mut() {
            let line = format!("{order}\n");
            let _ = tokio::time::timeout(Duration::from_secs(2), stdin.write_all(line.as_bytes()))
                .await;
        }
        if order == "stop" {
            // Closing the pipe is the stop order for a worker that missed the line.
            c.stdin.take();
        }
    }
}

/// A worker: serves `addr` (shared with its parent) until told to stop, its stdin closes
/// (the parent is gone), or it gets SIGTERM / Ctrl-C. Reloads when told.
async fn run_worker(
    path: &Path,
    mut cfg: RelayConfig,
    addr: SocketAddr,
    runtimes: Runtimes,
) -> anyhow::Result<ExitCode> {
    cfg.listen = addr;
    let relay = match Relay::start_shared(cfg, runtimes, true).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("mpbridge relay worker: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let me = std::process::id();
    tracing::info!("relay worker {me} serving {addr}");
    let mut orders = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    #[cfg(unix)]
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        #[cfg(unix)]
        let terminated = term.recv();
        #[cfg(not(unix))]
        let terminated = std::future::pending::<Option<()>>();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = terminated => break,
            line = orders.next_line() => match line {
                Ok(Some(o)) if o.trim() == "reload" => {
                    match RelayConfig::load(path) {
                        Ok(mut c) => {
                            c.listen = addr;
                            match relay.reload(c) {
                                Ok(()) => tracing::info!("relay worker {me} reloaded"),
                                Err(e) => tracing::error!("relay worker {me}: {e}; the running configuration stays"),
                            }
                        }
                        Err(e) => tracing::error!("relay worker {me}: reload refused: {e}"),
                    }
                }
                Ok(Some(o)) if o.trim().is_empty() => {}
                _ => break,
            }
        }
    }
    relay.stop().await;
    tracing::info!("relay worker {me} stopped");
    Ok(ExitCode::SUCCESS)
}
