//! `mpbridge bench …`: the benchmarks, each against its reference run side by side.

use std::process::ExitCode;

use super::BenchCmd;

pub fn run(cmd: BenchCmd, rt: &tokio::runtime::Runtime) -> anyhow::Result<ExitCode> {
    let _log = crate::logging::init(crate::config::LogLevel::Warn, None, true);
    match cmd {
        BenchCmd::Relay {
            secs,
            crowd,
            no_nginx,
            only,
            rounds,
            workers,
            matrix,
            relay_setup_threads,
            relay_bin,
            targets,
            qos,
            sizes,
            clients,
        } => {
            rt.block_on(crate::bench::relay::run(
                crate::bench::relay::BenchOptions {
                    secs,
                    crowd: crowd.into_iter().map(|n| n as usize).collect(),
                    with_nginx: !no_nginx,
                    only,
                    rounds: usize::from(rounds),
                    workers,
                    matrix,
                    setup_threads: relay_setup_threads,
                    relay_bin,
                    targets,
                    qos,
                    sizes: sizes.into_iter().map(|n| n as usize).collect(),
                    clients: clients.into_iter().map(|n| n as usize).collect(),
                },
            ))?;
            Ok(ExitCode::SUCCESS)
        }
        BenchCmd::Broker {
            secs,
            rounds,
            qos,
            sizes,
            clients,
            devices,
            device_secs,
        } => {
            rt.block_on(crate::bench::broker::run(
                crate::bench::broker::BenchOptions {
                    secs,
                    rounds: usize::from(rounds),
                    qos,
                    sizes: sizes.into_iter().map(|n| n as usize).collect(),
                    clients: clients.into_iter().map(|n| n as usize).collect(),
                    devices: devices as usize,
                    device_secs,
                },
            ))?;
            Ok(ExitCode::SUCCESS)
        }
        BenchCmd::Soak {
            secs,
            only,
            connections,
            churn,
            reload_every,
            restart_every,
            traffic,
            rate,
            devices,
            store_messages,
            store_mb,
            json,
        } => {
            let mut store = crate::config::StoreBounds::default();
            store.max_messages = store_messages.unwrap_or(store.max_messages);
            store.max_mb = store_mb.unwrap_or(store.max_mb);
            let held = crate::bench::soak::run(
                crate::bench::soak::SoakOptions {
                    secs,
                    parts: only,
                    connections: connections as usize,
                    churn,
                    reload_every,
                    restart_every,
                    traffic: traffic as usize,
                    rate,
                    devices: devices as usize,
                    store,
                    json,
                },
                rt,
            )?;
            Ok(if held {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        BenchCmd::Topics {
            secs,
            rate,
            topics,
            fill,
            broker,
        } => {
            crate::bench::topics::run(
                crate::bench::topics::BenchOptions {
                    secs,
                    rate,
                    topics,
                    fill,
                    broker,
                },
                rt,
            )?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
