//! A simulated ESP8266 running PubSubClient-style firmware: MQTT 3.1.1, keepalive 15 s,
//! retained `online` on its status topic with last will `offline`, telemetry JSON on a timer,
//! JSON commands on its command topic answered with its new state:
//!
//! - `{"led":"on"|"off"|"toggle"}`
//! - `{"interval_ms":N}` (200 ≤ N ≤ 3 600 000)
//! - `{"reboot":true}`: the connection drops without DISCONNECT (the broker publishes the
//!   last will `offline`), then the device "boots" and comes back `online`.
//!
//! Anything else is answered with `{"error":"…"}` on the state topic. A packet larger than
//! PubSubClient's 256-byte buffer is dropped without a word, as the library does (`readPacket`
//! returns 0 and `loop()` ignores it): no answer, the connection stays up.
//!
//! Flaky options make it drop its connection now and then, or answer late.

use std::net::SocketAddr;
use std::time::Duration;

use rumqttc::{AsyncClient, Event, LastWill, MqttOptions, Packet, QoS};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::DeviceTopics;

/// PubSubClient's default buffer: packets larger than this are refused by the device.
pub const PUBSUB_MAX_PACKET: usize = 256;

#[derive(Debug, Clone)]
pub struct SimOptions {
    pub id: String,
    pub broker: SocketAddr,
    pub prefix: String,
    pub telemetry_interval: Duration,
    /// How long a reboot keeps the device away.
    pub boot_time: Duration,
    /// Flaky: drop the connection (no DISCONNECT) after a random time averaging this.
    pub disconnect_every: Option<Duration>,
    /// Flaky: answer commands this much later.
    pub answer_delay: Duration,
    /// Wait up to this long before the first connection (a fleet does not boot in one ms).
    pub start_jitter: Duration,
}

impl SimOptions {
    pub fn demo(id: &str, broker: SocketAddr) -> Self {
        Self {
            id: id.to_owned(),
            broker,
            prefix: "devices".to_owned(),
            telemetry_interval: Duration::from_secs(1),
            boot_time: Duration::from_millis(1500),
            disconnect_every: None,
            answer_delay: Duration::ZERO,
            start_jitter: Duration::ZERO,
        }
    }
}

/// Starts `count` devices named `<id_prefix>-0001`…; returns their ids.
pub fn spawn_fleet(
    handle: &tokio::runtime::Handle,
    base: &SimOptions,
    id_prefix: &str,
    count: usize,
    cancel: &CancellationToken,
) -> Vec<String> {
    (1..=count)
        .map(|i| {
            let id = format!("{id_prefix}-{i:04}");
            let mut o = base.clone();
            o.id = id.clone();
            spawn(handle, o, cancel.child_token());
            id
        })
        .collect()
}

/// The device's mutable state, as a real firmware would keep it.
#[derive(Debug, Clone)]
struct DeviceState {
    led: bool,
    interval_ms: u64,
    boots: u32,
    temperature: f64,
    humidity: f64,
    rssi: i64,
    free_heap: u64,
    booted_at: tokio::time::Instant,
}

impl DeviceState {
    fn new(interval: Duration) -> Self {
        Self {
            led: false,
            interval_ms: interval.as_millis().try_into().unwrap_or(1000),
            boots: 1,
            temperature: 23.5,
            humidity: 48.0,
            rssi: -58,
            free_heap: 41_000,
            booted_at: tokio::time::Instant::now(),
        }
    }

    fn uptime_s(&self) -> u64 {
        self.booted_at.elapsed().as_secs()
    }

    /// A small random walk so plots have something to show.
    fn drift(&mut self) {
        self.temperature = (self.temperature + rand::random_range(-0.15..=0.15)).clamp(15.0, 35.0);
        self.humidity = (self.humidity + rand::random_range(-0.4..=0.4)).clamp(20.0, 80.0);
        self.rssi = (self.rssi + rand::random_range(-2..=2)).clamp(-90, -35);
        self.free_heap =
            (self.free_heap as i64 + rand::random_range(-300..=300)).clamp(30_000, 46_000) as u64;
    }

    fn telemetry(&self) -> Value {
        json!({
            "temperature": (self.temperature * 10.0).round() / 10.0,
            "humidity": (self.humidity * 10.0).round() / 10.0,
            "rssi": self.rssi,
            "free_heap": self.free_heap,
            "uptime": self.uptime_s(),
            "led": if self.led { "on" } else { "off" },
        })
    }

    fn state(&self) -> Value {
        json!({
            "led": if self.led { "on" } else { "off" },
            "interval_ms": self.interval_ms,
            "uptime": self.uptime_s(),
            "boots": self.boots,
        })
    }
}

/// What a command asks for.
#[derive(Debug, PartialEq)]
enum Action {
    Answer(Value),
    Reboot,
}

fn apply(state: &mut DeviceState, payload: &[u8]) -> Action {
    let error = |msg: &str| Action::Answer(json!({ "error": msg }));
    let Ok(cmd) = serde_json::from_slice::<Value>(payload) else {
        return error("not JSON");
    };
    let Some(obj) = cmd.as_object() else {
        return error("expected a JSON object");
    };
    let mut understood = false;
    if let Some(led) = obj.get("led") {
        match led.as_str() {
            Some("on") => state.led = true,
            Some("off") => state.led = false,
            Some("toggle") => state.led = !state.led,
            _ => return error("led must be \"on\", \"off\" or \"toggle\""),
        }
        understood = true;
    }
    if let Some(iv) = obj.get("interval_ms") {
        match iv.as_u64() {
            Some(ms) if (200..=3_600_000).contains(&ms) => state.interval_ms = ms,
            _ => return error("interval_ms must be a whole number from 200 to 3600000"),
        }
        understood = true;
    }
    if obj.get("reboot").and_then(Value::as_bool) == Some(true) {
        return Action::Reboot;
    }
    if understood {
        Action::Answer(state.state())
    } else {
        error("unknown command")
    }
}

/// Runs the device until `cancel`.
pub fn spawn(handle: &tokio::runtime::Handle, opts: SimOptions, cancel: CancellationToken) {
    handle.spawn(async move {
        let topics = DeviceTopics::new(&opts.prefix, &opts.id);
        let mut state = DeviceState::new(opts.telemetry_interval);
        if !opts.start_jitter.is_zero() {
            let wait = opts.start_jitter.mul_f64(rand::random::<f64>());
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
        }
        let mut attempt = 0u32;
        loop {
            match session(&opts, &topics, &mut state, &cancel).await {
                SessionEnd::Cancelled => break,
                SessionEnd::Reboot => {
                    tracing::info!("{}: rebooting", opts.id);
                    attempt = 0;
                    tokio::select! {
                        _ = cancel.cancelled() => break,
                        _ = tokio::time::sleep(opts.boot_time) => {}
                    }
                    state.boots += 1;
                    state.booted_at = tokio::time::Instant::now();
                }
                SessionEnd::Lost(e) => {
                    // PubSubClient sketches retry every few seconds; back off the same way.
                    let wait = crate::mqtt::backoff(attempt);
                    attempt = attempt.saturating_add(1);
                    tracing::debug!("{}: connection lost ({e}); retry in {wait:?}", opts.id);
                    tokio::select! {
                        _ = cancel.cancelled() => break,
                        _ = tokio::time::sleep(wait) => {}
                    }
                }
            }
        }
    });
}

enum SessionEnd {
    Cancelled,
    Reboot,
    Lost(String),
}

async fn session(
    opts: &SimOptions,
    topics: &DeviceTopics,
    state: &mut DeviceState,
    cancel: &CancellationToken,
) -> SessionEnd {
    let mut mqtt = MqttOptions::new(
        opts.id.clone(),
        opts.broker.ip().to_string(),
        opts.broker.port(),
    );
    mqtt.set_keep_alive(Duration::from_secs(15));
    mqtt.set_clean_session(true);
    mqtt.set_max_packet_size(64 * 1024, PUBSUB_MAX_PACKET);
    mqtt.set_last_will(LastWill::new(
        &topics.status,
        "offline",
        QoS::AtLeastOnce,
        true,
    ));
    let (client, mut eventloop) = AsyncClient::new(mqtt, 32);
    let mut ticker = tokio::time::interval(Duration::from_millis(state.interval_ms));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut connected = false;
    // Flaky: when this connection will drop.
    let drop_at = opts.disconnect_every.map(|mean| {
        let exp = -(1.0 - rand::random::<f64>()).ln();
        tokio::time::Instant::now() + mean.mul_f64(exp.clamp(0.05, 5.0))
    });
    loop {
        tokio::select! {
            _ = async { tokio::time::sleep_until(drop_at.unwrap_or_else(tokio::time::Instant::now)).await }, if drop_at.is_some() && connected => {
                return SessionEnd::Lost("flaky: dropped on purpose".into());
            }
            _ = cancel.cancelled() => {
                // A clean shutdown: say goodbye like a device powered down by its owner.
                client.try_publish(&topics.status, QoS::AtLeastOnce, true, "offline").ok();
                client.try_disconnect().ok();
                let _drained = tokio::time::timeout(Duration::from_millis(300), async {
                    while eventloop.poll().await.is_ok() {}
                }).await;
                return SessionEnd::Cancelled;
            }
            _ = ticker.tick(), if connected => {
                state.drift();
                publish_json(&client, &topics.telemetry, &state.telemetry());
            }
            polled = eventloop.poll() => match polled {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    connected = true;
                    client.try_publish(&topics.status, QoS::AtLeastOnce, true, "online").ok();
                    client.try_subscribe(&topics.cmd, QoS::AtLeastOnce).ok();
                    ticker.reset_immediately();
                }
                Ok(Event::Incoming(Packet::Publish(p))) if p.topic == topics.cmd => {
                    let size = crate::devices::commands::publish_packet_size(
                        &p.topic,
                        p.payload.len(),
                        p.qos as u8,
                    );
                    if size > PUBSUB_MAX_PACKET {
                        // PubSubClient: readPacket() skips what does not fit and returns 0;
                        // loop() then ignores the packet. No answer, still connected.
                        tracing::debug!("{}: ignored a {size}-byte packet (buffer {PUBSUB_MAX_PACKET})", opts.id);
                        continue;
                    }
                    if !opts.answer_delay.is_zero() {
                        tokio::time::sleep(opts.answer_delay).await;
                    }
                    let before = state.interval_ms;
                    match apply(state, &p.payload) {
                        Action::Answer(v) => publish_json(&client, &topics.state, &v),
                        Action::Reboot => return SessionEnd::Reboot, // drops the socket: last will fires
                    }
                    if state.interval_ms != before {
                        ticker = tokio::time::interval(Duration::from_millis(state.interval_ms));
                        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    }
                }
                Ok(_) => {}
                Err(e) => return SessionEnd::Lost(e.to_string()),
            }
        }
    }
}

fn publish_json(client: &AsyncClient, topic: &str, value: &Value) {
    // PubSubClient publishes QoS 0 only.
    if let Err(e) = client.try_publish(topic, QoS::AtMostOnce, false, value.to_string()) {
        tracing::debug!("simulated device could not queue a publish on {topic}: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st() -> DeviceState {
        DeviceState::new(Duration::from_secs(1))
    }

    #[test]
    fn led_commands() {
        let mut s = st();
        assert!(matches!(apply(&mut s, br#"{"led":"on"}"#), Action::Answer(v) if v["led"] == "on"));
        assert!(
            matches!(apply(&mut s, br#"{"led":"toggle"}"#), Action::Answer(v) if v["led"] == "off")
        );
        assert!(
            matches!(apply(&mut s, br#"{"led":"blink"}"#), Action::Answer(v) if v.get("error").is_some())
        );
    }

    #[test]
    fn interval_and_reboot() {
        let mut s = st();
        assert!(
            matches!(apply(&mut s, br#"{"interval_ms":500}"#), Action::Answer(v) if v["interval_ms"] == 500)
        );
        assert!(
            matches!(apply(&mut s, br#"{"interval_ms":5}"#), Action::Answer(v) if v.get("error").is_some())
        );
        assert_eq!(apply(&mut s, br#"{"reboot":true}"#), Action::Reboot);
    }

    #[test]
    fn garbage() {
        let mut s = st();
        for bad in [&b"\xff\xfe"[..], b"[1,2]", b"{}", b"null"] {
            assert!(matches!(apply(&mut s, bad), Action::Answer(v) if v.get("error").is_some()));
        }
    }
}
