//! The devices service: device commands through the active connection with their
//! acknowledgement, the Mini Program demo flow on a second connection, and the simulated
//! fleet on the sandbox broker.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::Reply;
use super::connections::Link;
use super::retained::on_second_connection;
use super::shared::{Service, Shared};
use crate::devices::commands::{AckTracker, Outcome, Prepared};
use crate::i18n::{L10n, l};

/// What the Devices and Overview panels ask of the devices.
pub enum DeviceCmd {
    /// Publish a device command through the active connection and wait for its answer.
    Send {
        cmd: Box<Prepared>,
        reply: Reply<Outcome, L10n>,
    },
    /// Run the Mini Program demo flow for a device on its own connection, over the same
    /// transport as the active connection.
    RunFlow {
        device: Box<crate::devices::config::DeviceDef>,
        reply: Reply<Vec<crate::devices::flow::FlowStep>, L10n>,
    },
    /// Start simulated devices on the sandbox broker (replacing any running); their ids.
    SimulateStart {
        count: usize,
        reply: Reply<Vec<String>, L10n>,
    },
    SimulateStop,
}

impl DeviceCmd {
    pub(super) fn refuse(self, why: &L10n) {
        let why = why.clone();
        match self {
            DeviceCmd::Send { reply, .. } => reply.send(Err(why)),
            DeviceCmd::RunFlow { reply, .. } => reply.send(Err(why)),
            DeviceCmd::SimulateStart { reply, .. } => reply.send(Err(why)),
            DeviceCmd::SimulateStop => {}
        }
    }
}

/// The most simulated devices at once.
pub const MAX_SIMULATED: usize = 1000;

/// Said when a job needs a broker connection and there is none.
pub(super) fn not_connected() -> L10n {
    l("not connected to a broker", "未连接到代理")
}

pub(super) struct DevicesService {
    shared: Shared,
    link: watch::Receiver<Option<Link>>,
    acks: AckTracker,
    /// The sandbox broker, where simulated devices connect.
    sandbox_broker: Option<SocketAddr>,
    simulation: Option<CancellationToken>,
}

impl DevicesService {
    pub fn new(
        shared: Shared,
        link: watch::Receiver<Option<Link>>,
        acks: AckTracker,
        sandbox_broker: Option<SocketAddr>,
    ) -> Self {
        Self {
            shared,
            link,
            acks,
            sandbox_broker,
            simulation: None,
        }
    }

    fn send(&self, cmd: Prepared, reply: Reply<Outcome, L10n>) {
        let Some(link) = self.link.borrow().clone() else {
            reply.send(Err(not_connected()));
            return;
        };
        let qos = crate::mqtt::qos(cmd.qos);
        // Expect the answer before publishing: a fast device must not be missed.
        let rx = cmd.ack.clone().map(|a| self.acks.expect(a));
        let sent = Instant::now();
        let payload = cmd.payload.clone().into_bytes();
        if let Err(e) = link
            .worker
            .client
            .try_publish(&cmd.topic, qos, cmd.retain, payload, None)
        {
            let why = crate::mqtt::client::publish_refusal(e.to_string());
            reply.send(Err(l(
                format!("could not publish to {}: {}", cmd.topic, why.en),
                format!("无法发布到 {}：{}", cmd.topic, why.zh),
            )));
            return;
        }
        tracing::info!("command to {}: {} {}", cmd.device, cmd.topic, cmd.payload);
        let timeout = cmd.timeout;
        self.shared.handle.spawn(async move {
            let out = match rx {
                Some(rx) => crate::devices::commands::wait(rx, sent, timeout).await,
                None => Outcome::Sent,
            };
            reply.send(Ok(out));
        });
    }

    fn simulate(&mut self, count: usize) -> Result<Vec<String>, L10n> {
        self.stop_simulation();
        let Some(broker) = self.sandbox_broker else {
            return Err(l(
                "the simulator runs on the sandbox broker, which is not running",
                "模拟器运行在沙盒代理上，而沙盒代理没有运行",
            ));
        };
        let token = self.shared.cancel.child_token();
        let mut base = crate::devices::sim::SimOptions::demo("", broker);
        base.start_jitter = Duration::from_millis((count as u64 * 5).min(3_000));
        let ids = crate::devices::sim::spawn_fleet(
            &self.shared.handle,
            &base,
            "sim",
            count.clamp(1, MAX_SIMULATED),
            &token,
        );
        self.simulation = Some(token);
        Ok(ids)
    }

    fn stop_simulation(&mut self) {
        if let Some(c) = self.simulation.take() {
            c.cancel();
        }
    }
}

impl Service for DevicesService {
    type Cmd = DeviceCmd;

    async fn handle(&mut self, cmd: DeviceCmd) {
        match cmd {
            DeviceCmd::Send { cmd, reply } => self.send(*cmd, reply),
            DeviceCmd::RunFlow { device, reply } => {
                let route = self.link.borrow().as_ref().map(|l| l.route.clone());
                on_second_connection(
                    route.as_ref(),
                    &self.shared,
                    reply,
                    move |mqtt| async move {
                        let limit = Duration::from_secs(10);
                        Ok(crate::devices::flow::run(mqtt, &device, limit).await)
                    },
                );
            }
            DeviceCmd::SimulateStart { count, reply } => reply.send(self.simulate(count)),
            DeviceCmd::SimulateStop => self.stop_simulation(),
        }
    }

    async fn stop(mut self) {
        self.stop_simulation();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Requested;

    /// Without a connection a device command says so; without the sandbox the simulator does.
    #[tokio::test]
    async fn commands_need_a_connection_and_the_simulator_the_sandbox() {
        let dir = tempfile::tempdir().unwrap();
        let paths = crate::config::Paths {
            config_dir: dir.path().join("config"),
            data_dir: dir.path().join("data"),
        };
        let (shared, _, _) = Shared::for_test(paths);
        let (_link_tx, link) = watch::channel(None);
        let mut devices = DevicesService::new(shared, link, AckTracker::default(), None);

        let device = crate::devices::config::DeviceDef::esp8266("esp-1", "home");
        let template = &crate::devices::config::esp8266_templates()[0];
        let values = template
            .params
            .iter()
            .map(|p| (p.name.clone(), p.initial()))
            .collect();
        let cmd = crate::devices::commands::prepare(template, &device, &values).unwrap();
        let (req, reply) = Requested::new(None);
        devices
            .handle(DeviceCmd::Send {
                cmd: Box::new(cmd),
                reply,
            })
            .await;
        assert_eq!(req.wait().await.unwrap_err(), not_connected());

        let (req, reply) = Requested::new(None);
        devices
            .handle(DeviceCmd::RunFlow {
                device: Box::new(device),
                reply,
            })
            .await;
        assert_eq!(req.wait().await.unwrap_err(), not_connected());

        let (req, reply) = Requested::new(None);
        devices
            .handle(DeviceCmd::SimulateStart { count: 3, reply })
            .await;
        assert!(req.wait().await.unwrap_err().en.contains("sandbox broker"));
    }
}
