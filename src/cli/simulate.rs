//! `mpbridge simulate`: a fleet of simulated ESP8266 devices against a broker.

use std::process::ExitCode;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::devices::sim::{self, SimOptions};

#[derive(Debug, clap::Args)]
pub struct SimulateArgs {
    /// The broker: mqtt://HOST:PORT (plain TCP, as PubSubClient connects).
    #[arg(long, value_name = "URL")]
    broker: String,
    /// How many devices.
    #[arg(long, default_value_t = 1)]
    devices: usize,
    /// Topic prefix: <prefix>/<id>/{status,telemetry,cmd,state}.
    #[arg(long, default_value = "devices")]
    prefix: String,
    /// Device ids are <id-prefix>-0001, <id-prefix>-0002, …
    #[arg(long, default_value = "esp8266")]
    id_prefix: String,
    /// Stop after SECS (default: until Ctrl-C).
    #[arg(long = "for", value_name = "SECS")]
    for_secs: Option<f64>,
    /// Telemetry every MS milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 1000)]
    telemetry_ms: u64,
    /// Flaky: each device drops its connection after a random time averaging SECS.
    #[arg(long, value_name = "SECS")]
    disconnect_every: Option<f64>,
    /// Flaky: answer commands MS milliseconds late.
    #[arg(long, value_name = "MS", default_value_t = 0)]
    answer_delay_ms: u64,
    /// Print one JSON line with the ids once started.
    #[arg(long)]
    json: bool,
}

pub fn run(args: SimulateArgs, rt: &tokio::runtime::Runtime) -> ExitCode {
    match rt.block_on(run_inner(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mpbridge: {e}");
            ExitCode::from(2)
        }
    }
}

async fn run_inner(a: SimulateArgs) -> Result<(), String> {
    if a.devices == 0 || a.devices > 10_000 {
        return Err("--devices must be between 1 and 10000".into());
    }
    for (name, v) in [
        ("--for", a.for_secs),
        ("--disconnect-every", a.disconnect_every),
    ] {
        if v.is_some_and(|s| !s.is_finite() || s < 0.0) {
            return Err(format!("{name} must be a number of seconds"));
        }
    }
    let (host, port) = crate::mqtt::broker_target(&a.broker)?;
    let addr = tokio::net::lookup_host((host.as_str(), port))
        .await
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .next()
        .ok_or_else(|| format!("{host} has no address"))?;
    // Refuse early and clearly when nothing listens there.
    tokio::time::timeout(Duration::from_secs(5), tokio::net::TcpStream::connect(addr))
        .await
        .map_err(|_| format!("{addr}: no answer within 5 s"))?
        .map_err(|e| format!("cannot connect to the broker at {addr}: {e}"))?;
    let mut base = SimOptions::demo("", addr);
    base.prefix = a.prefix.clone();
    base.telemetry_interval = Duration::from_millis(a.telemetry_ms.clamp(200, 3_600_000));
    base.disconnect_every = a
        .disconnect_every
        .map(|s| Duration::from_secs_f64(s.clamp(0.5, 86_400.0)));
    base.answer_delay = Duration::from_millis(a.answer_delay_ms.min(600_000));
    // A fleet connects over a few seconds, not in one millisecond.
    base.start_jitter = Duration::from_millis((a.devices as u64 * 5).min(5_000));
    let cancel = CancellationToken::new();
    let ids = sim::spawn_fleet(
        &tokio::runtime::Handle::current(),
        &base,
        &a.id_prefix,
        a.devices,
        &cancel,
    );
    if a.json {
        println!(
            "{}",
            serde_json::json!({ "broker": addr.to_string(), "prefix": a.prefix, "devices": ids })
        );
    } else {
        println!(
            "simulating {} device(s) ({} … {}) on {addr} under {}/",
            ids.len(),
            ids.first().map(String::as_str).unwrap_or(""),
            ids.last().map(String::as_str).unwrap_or(""),
            a.prefix
        );
    }
    use std::io::Write as _;
    std::io::stdout().flush().ok();
    match a.for_secs {
        Some(s) => {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs_f64(s.max(0.0))) => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        None => {
            tokio::signal::ctrl_c().await.ok();
        }
    }
    // Devices say `offline` like a device powered down, then leave.
    cancel.cancel();
    tokio::time::sleep(Duration::from_millis(500)).await;
    Ok(())
}

#[cfg(test)]
mod tests {

    #[test]
    fn targets() {
        assert_eq!(
            crate::mqtt::broker_target("mqtt://127.0.0.1:1883"),
            Ok(("127.0.0.1".into(), 1883))
        );
        assert_eq!(
            crate::mqtt::broker_target("broker.local"),
            Ok(("broker.local".into(), 1883))
        );
        assert!(crate::mqtt::broker_target("wss://a:1/mqtt").is_err());
        assert!(crate::mqtt::broker_target("mqtt://a:x").is_err());
    }
}
