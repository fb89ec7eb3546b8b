//! `mpbridge relay --config FILE`: the relay headless, for systemd and servers.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use crate::relay::{Relay, RelayConfig};

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

pub async fn run(path: &Path) -> anyhow::Result<ExitCode> {
    let cfg = match RelayConfig::load(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("mpbridge relay: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let relay = match Relay::start(cfg.clone(), &tokio::runtime::Handle::current()).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("mpbridge relay: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let routes: Vec<String> = cfg
        .routes
        .iter()
        .map(|r| {
            let ups: Vec<_> = r.upstreams.iter().map(|u| u.to_string()).collect();
            format!("{} → {}", r.path, ups.join(" | "))
        })
        .collect();
    eprintln!(
        "mpbridge relay: listening on {} ({})",
        relay.addr(),
        routes.join("; ")
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
                    }
                    last = stamp(&files);
                }
            }
        }
    }
    eprintln!("mpbridge relay: draining");
    relay.stop().await;
    let t = relay.snapshot(0).totals;
    eprintln!(
        "mpbridge relay: stopped ({} upgraded, {} rejected, {} bytes in, {} bytes out)",
        t.upgraded, t.rejected, t.bytes_in, t.bytes_out
    );
    Ok(ExitCode::SUCCESS)
}
