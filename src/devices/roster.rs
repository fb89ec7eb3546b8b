//! The live roster: every known device's availability (since when, reconnects, flapping),
//! last seen, latest telemetry and plotted fields, fed by the messages seen on the broker; and
//! the devices discovery proposes from topics that match the pattern. Plain data, no egui.

use std::collections::{BTreeMap, VecDeque};

use serde_json::Value;

use super::config::{DeviceDef, DevicesConfig};
use crate::mqtt::topic;

/// Points kept per plotted field (an hour at 1 Hz).
pub const SERIES_POINTS: usize = 3600;
/// Reconnects within this window that count as flapping.
pub const FLAP_WINDOW_S: i64 = 600;
pub const FLAP_COUNT: usize = 3;

#[derive(Debug, Clone, Default)]
pub struct DeviceLive {
    /// `Some(true)` online, `Some(false)` offline, `None` never heard of.
    pub online: Option<bool>,
    /// Unix seconds since the current availability.
    pub since: Option<i64>,
    pub last_seen: Option<i64>,
    /// Offline → online transitions seen.
    pub reconnects: u32,
    reconnect_times: VecDeque<i64>,
    /// The latest telemetry object.
    pub telemetry: serde_json::Map<String, Value>,
    /// The latest state message, as text.
    pub last_state: Option<String>,
    /// Plotted fields: (unix seconds with fraction, value).
    pub series: BTreeMap<String, VecDeque<[f64; 2]>>,
    pub messages: u64,
}

impl DeviceLive {
    /// Several reconnects in the last ten minutes.
    pub fn flapping(&self, now: i64) -> bool {
        self.reconnect_times
            .iter()
            .filter(|t| now - **t <= FLAP_WINDOW_S)
            .count()
            >= FLAP_COUNT
    }
}

/// A device seen on the broker but not in the roster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proposal {
    pub id: String,
    /// The levels before the id in the pattern (`devices` for `devices/+/status`).
    pub prefix: String,
    pub topic: String,
}

#[derive(Debug, Clone, Default)]
pub struct Roster {
    pub config: DevicesConfig,
    pub live: BTreeMap<String, DeviceLive>,
    /// Discovered ids not in the roster, by id.
    pub proposals: BTreeMap<String, Proposal>,
    /// Topic → (device index in `config.devices`, 0 availability / 1 telemetry / 2 state).
    index: std::collections::HashMap<String, (usize, u8)>,
}

fn now_f(now_ms: i64) -> f64 {
    now_ms as f64 / 1000.0
}

impl Roster {
    pub fn new(config: DevicesConfig) -> Self {
        let mut r = Roster {
            config,
            ..Default::default()
        };
        r.sync();
        r
    }

    /// Keeps live entries in step with the configured devices.
    pub fn sync(&mut self) {
        let ids: Vec<String> = self.config.devices.iter().map(|d| d.id.clone()).collect();
        let proposals = &self.proposals;
        self.live
            .retain(|id, _| ids.contains(id) || proposals.contains_key(id));
        for id in ids {
            self.proposals.remove(&id);
            self.live.entry(id).or_default();
        }
        self.index.clear();
        for (i, d) in self.config.devices.iter().enumerate() {
            self.index.insert(d.availability_topic(), (i, 0));
            self.index.insert(d.telemetry_topic(), (i, 1));
            self.index.insert(d.state_topic(), (i, 2));
        }
    }

    pub fn add(&mut self, def: DeviceDef) {
        if self.config.device(&def.id).is_none() {
            self.config.devices.push(def);
        }
        self.sync();
    }

    pub fn add_many(&mut self, defs: Vec<DeviceDef>) {
        let mut known: std::collections::HashSet<String> =
            self.config.devices.iter().map(|d| d.id.clone()).collect();
        for d in defs {
            if known.insert(d.id.clone()) {
                self.config.devices.push(d);
            }
        }
        self.sync();
    }

    pub fn remove(&mut self, id: &str) {
        self.config.devices.retain(|d| d.id != id);
        self.sync();
    }

    /// One message from the broker, at `now_ms` (Unix milliseconds).
    pub fn on_message(&mut self, topic_name: &str, payload: &[u8], now_ms: i64) {
        if self.index.is_empty() && !self.config.devices.is_empty() {
            self.sync();
        }
        // Discovery: a topic matching the pattern names a device.
        if let Some(caps) = topic::captures(&self.config.discovery.pattern, topic_name)
            && let Some(id) = caps.first()
            && !id.is_empty()
            && self.config.device(id).is_none()
            && !self.proposals.contains_key(*id)
        {
            let prefix = self
                .config
                .discovery
                .pattern
                .split("/+")
                .next()
                .unwrap_or("")
                .to_owned();
            self.proposals.entry((*id).to_owned()).or_insert(Proposal {
                id: (*id).to_owned(),
                prefix,
                topic: topic_name.to_owned(),
            });
        }
        // A device in the roster, or one discovered (its topics the default ones under the
        // discovery prefix): both are observed, so the Overview and the Devices panel read one
        // model.
        let found = match self.index.get(topic_name) {
            Some(&(i, kind)) => self.config.devices.get(i).cloned().map(|d| (d, kind)),
            None => self.discovered(topic_name),
        };
        if let Some((def, kind)) = found {
            let live = self.live.entry(def.id.clone()).or_default();
            observe(live, &def, kind, payload, now_ms);
        }
    }

    /// A discovered device's availability, telemetry or state topic (the default layout under
    /// the discovery pattern's prefix).
    fn discovered(&self, topic_name: &str) -> Option<(DeviceDef, u8)> {
        let prefix = self.config.discovery.pattern.split("/+").next()?;
        let (id, kind) = super::classify(prefix, topic_name)?;
        if !self.proposals.contains_key(id) {
            return None;
        }
        let kind = match kind {
            super::TopicKind::Status => 0,
            super::TopicKind::Telemetry => 1,
            super::TopicKind::State => 2,
            super::TopicKind::Cmd => return None,
        };
        Some((DeviceDef::esp8266(id, prefix), kind))
    }

    pub fn online_count(&self) -> usize {
        self.live
            .values()
            .filter(|l| l.online == Some(true))
            .count()
    }
}

/// One message on a device's topic of `kind` (0 availability, 1 telemetry, 2 state).
fn observe(live: &mut DeviceLive, def: &DeviceDef, kind: u8, payload: &[u8], now_ms: i64) {
    let now = now_ms.div_euclid(1000);
    live.messages += 1;
    match kind {
        0 => {
            let text = String::from_utf8_lossy(payload);
            let online = if text == def.online_payload {
                true
            } else if text == def.offline_payload || payload.is_empty() {
                false
            } else {
                return;
            };
            if live.online != Some(online) {
                if online && live.online == Some(false) {
                    live.reconnects += 1;
                    live.reconnect_times.push_back(now);
                    while live.reconnect_times.len() > 32 {
                        live.reconnect_times.pop_front();
                    }
                }
                live.online = Some(online);
                live.since = Some(now);
            }
            if online {
                live.last_seen = Some(now);
            }
        }
        1 => {
            live.last_seen = Some(now);
            // Telemetry from a device we thought offline: it is back (a reconnect).
            if live.online != Some(true) {
                if live.online == Some(false) {
                    live.reconnects += 1;
                    live.reconnect_times.push_back(now);
                    while live.reconnect_times.len() > 32 {
                        live.reconnect_times.pop_front();
                    }
                }
                live.online = Some(true);
                live.since = Some(now);
            }
            if let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(payload) {
                for field in &def.plot {
                    if let Some(v) = map.get(field).and_then(Value::as_f64) {
                        let s = live.series.entry(field.clone()).or_default();
                        s.push_back([now_f(now_ms), v]);
                        while s.len() > SERIES_POINTS {
                            s.pop_front();
                        }
                    }
                }
                live.telemetry = map;
            }
        }
        _ => {
            live.last_seen = Some(now);
            live.last_state = Some(String::from_utf8_lossy(payload).into_owned());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A device the roster does not list is proposed and observed all the same (the Overview
    /// shows it from this one model); added to the roster it keeps what was seen; removed, it
    /// goes until it is heard again.
    #[test]
    fn discovered_devices_are_observed_in_the_one_model() {
        let mut r = Roster::new(DevicesConfig::default());
        r.on_message("devices/sim-7/status", b"online", 1_000_000);
        r.on_message("devices/sim-7/telemetry", br#"{"rssi":-60}"#, 1_001_000);
        r.on_message("devices/sim-7/state", br#"{"led":"on"}"#, 1_002_000);
        assert!(r.proposals.contains_key("sim-7"));
        let live = &r.live["sim-7"];
        assert_eq!(live.online, Some(true));
        assert_eq!(live.telemetry["rssi"], -60);
        assert_eq!(live.last_state.as_deref(), Some(r#"{"led":"on"}"#));
        assert_eq!(r.online_count(), 1);
        r.add(DeviceDef::esp8266("sim-7", "devices"));
        assert!(!r.proposals.contains_key("sim-7"));
        assert_eq!(r.live["sim-7"].messages, 3, "what was seen is kept");
        r.remove("sim-7");
        assert!(!r.live.contains_key("sim-7"));
    }

    #[test]
    fn availability_reconnects_and_flapping() {
        let mut r = Roster::new(DevicesConfig::default());
        let t = "devices/esp8266-demo/status";
        r.on_message(t, b"online", 1_000);
        let l = &r.live["esp8266-demo"];
        assert_eq!((l.online, l.since, l.reconnects), (Some(true), Some(1), 0));
        for i in 0..3 {
            r.on_message(t, b"offline", 10_000 + i * 20_000);
            r.on_message(t, b"online", 20_000 + i * 20_000);
        }
        let l = &r.live["esp8266-demo"];
        assert_eq!(l.reconnects, 3);
        assert!(l.flapping(80));
        assert!(!l.flapping(80 + FLAP_WINDOW_S));
    }

    #[test]
    fn telemetry_fields_and_series() {
        let mut r = Roster::new(DevicesConfig::default());
        r.on_message(
            "devices/esp8266-demo/telemetry",
            br#"{"rssi":-60,"free_heap":40000,"temperature":22.5,"led":"on"}"#,
            5_500,
        );
        let l = &r.live["esp8266-demo"];
        assert_eq!(l.online, Some(true));
        assert_eq!(l.telemetry["led"], "on");
        assert_eq!(l.series["rssi"].back(), Some(&[5.5, -60.0]));
        assert_eq!(l.series.len(), 3);
    }

    #[test]
    fn discovery_proposes_unknown_ids_once() {
        let mut r = Roster::new(DevicesConfig::default());
        r.on_message("devices/esp-7/status", b"online", 0);
        r.on_message("devices/esp-7/status", b"offline", 0);
        r.on_message("devices/esp8266-demo/status", b"online", 0);
        r.on_message("other/x/status", b"online", 0);
        assert_eq!(r.proposals.keys().collect::<Vec<_>>(), vec!["esp-7"]);
        assert_eq!(r.proposals["esp-7"].prefix, "devices");
        r.add(DeviceDef::esp8266("esp-7", "devices"));
        assert!(r.proposals.is_empty());
        assert!(r.live.contains_key("esp-7"));
    }
}
