//! The live model the panels read: filled only in `ConsoleApp::logic` from backend events.

use std::collections::{HashMap, VecDeque};

use crate::backend::{BackendStatus, ConnId, Event, RelayView};
use crate::mqtt::MqttMessage;

/// How many recent messages the Overview keeps.
pub const RECENT_CAPACITY: usize = 200;
pub use crate::topics::rate::{RATE_WINDOW_SECS, RateSeries};

/// Topic prefix under which the console recognises devices.
pub const DEVICE_PREFIX: &str = "devices";

/// Relay throughput: one point per relay view refresh, the last two minutes.
#[derive(Debug, Default)]
pub struct Throughput {
    last: Option<(std::time::Instant, u64, u64)>,
    /// `(seconds since the first sample, bytes/s in, bytes/s out)`.
    pub points: VecDeque<[f64; 3]>,
    origin: Option<std::time::Instant>,
}

impl Throughput {
    pub const WINDOW_SECS: f64 = 120.0;

    pub fn add(&mut self, at: std::time::Instant, bytes_in: u64, bytes_out: u64) {
        let origin = *self.origin.get_or_insert(at);
        if let Some((t0, i0, o0)) = self.last {
            let dt = at.saturating_duration_since(t0).as_secs_f64();
            if dt > 0.0 {
                let t = at.saturating_duration_since(origin).as_secs_f64();
                self.points.push_back([
                    t,
                    bytes_in.saturating_sub(i0) as f64 / dt,
                    bytes_out.saturating_sub(o0) as f64 / dt,
                ]);
                while self
                    .points
                    .front()
                    .is_some_and(|p| p[0] < t - Self::WINDOW_SECS)
                {
                    self.points.pop_front();
                }
            }
        }
        self.last = Some((at, bytes_in, bytes_out));
    }
}

#[derive(Debug, Default)]
pub struct LiveModel {
    pub status: BackendStatus,
    /// The relay's connections (refreshed by the backend twice a second).
    pub relay: std::sync::Arc<RelayView>,
    pub throughput: Throughput,
    pub dropped: u64,
    pub recent: VecDeque<MqttMessage>,
    pub total_messages: u64,
    pub rate: RateSeries,
    /// The Devices panel's roster (devices.toml), fed by every message.
    pub roster: crate::devices::roster::Roster,
    /// The Topics panel's store, tree and subscriptions for the active connection.
    pub topics: crate::topics::Topics,
    /// The connection `topics` belongs to.
    pub active_conn: Option<ConnId>,
    /// The other open connections' stores, kept filling in the background (with a quarter
    /// of the bounds each), and swapped in when one becomes active.
    pub background: HashMap<ConnId, crate::topics::Topics>,
    /// The bounds of the active store.
    pub limits: crate::topics::Limits,
    /// The last publish that could not be queued, and why (shown under Publish until the next).
    pub publish_refused: Option<(String, crate::verdict::L10n)>,
    /// How many publishes were refused so far (the panel shows the newest after a click).
    pub publish_refusals: u64,
}

/// The bounds of a background connection's store: a quarter of the active one's.
pub fn background_limits(l: crate::topics::Limits) -> crate::topics::Limits {
    crate::topics::Limits {
        max_messages: (l.max_messages / 4).max(1),
        max_bytes: (l.max_bytes / 4).max(1),
        max_payload: l.max_payload,
    }
}

impl LiveModel {
    pub fn apply(&mut self, ev: Event) {
        match ev {
            Event::Message(conn, m) => {
                if self.active_conn.is_none() {
                    self.active_conn = Some(conn);
                }
                if Some(conn) == self.active_conn {
                    self.on_message(m)
                } else {
                    self.store_of(conn).on_message(
                        m.time.timestamp_millis(),
                        &m.topic,
                        &m.payload,
                        m.qos,
                        m.retain,
                        m.props,
                    );
                }
            }
            Event::PublishRefused { topic, why } => {
                self.publish_refusals += 1;
                self.publish_refused = Some((topic, why));
            }
            Event::SubAck {
                conn,
                filter,
                refused,
            } => {
                // As with messages: the first connection heard of takes the store made at start.
                if self.active_conn.is_none() {
                    self.active_conn = Some(conn);
                }
                self.store_of(conn).suback(filter, refused);
            }
        }
    }

    /// New bounds: the active store takes them, background ones a quarter (each drops its
    /// oldest messages on the next arrival when over).
    pub fn set_limits(&mut self, limits: crate::topics::Limits) {
        self.limits = limits;
        self.topics.store.limits = limits;
        for t in self.background.values_mut() {
            t.store.limits = background_limits(limits);
        }
    }

    /// The store of a connection (the active one's, or a background one, made when new).
    pub fn store_of(&mut self, id: ConnId) -> &mut crate::topics::Topics {
        if Some(id) == self.active_conn {
            return &mut self.topics;
        }
        let limits = background_limits(self.limits);
        self.background.entry(id).or_insert_with(|| {
            let mut t = crate::topics::Topics::new(limits);
            t.subscribe("#", 0);
            t
        })
    }

    /// Follows the backend's active connection: its store becomes the Topics panel's, the
    /// previous one keeps filling in the background; stores of closed connections go.
    pub fn sync_active(&mut self) {
        let want = self.status.active;
        if self.active_conn.is_none() {
            // The first connection takes the store made at start (with `--subscribe` filters).
            self.active_conn = want;
        } else if want.is_some() && want != self.active_conn {
            let mut next = self
                .background
                .remove(&want.unwrap_or_default())
                .unwrap_or_else(|| {
                    let mut t = crate::topics::Topics::new(self.limits);
                    t.subscribe("#", 0);
                    t
                });
            next.store.limits = self.limits;
            let mut old = std::mem::replace(&mut self.topics, next);
            if let Some(prev) = self.active_conn {
                old.store.limits = background_limits(self.limits);
                self.background.insert(prev, old);
            }
            self.active_conn = want;
        }
        let open = &self.status.connections;
        self.background
            .retain(|id, _| open.iter().any(|c| c.id == *id));
    }

    fn on_message(&mut self, m: MqttMessage) {
        self.total_messages += 1;
        let ms = m.time.timestamp_millis();
        self.roster.on_message(&m.topic, &m.payload, ms);
        self.topics
            .on_message(ms, &m.topic, &m.payload, m.qos, m.retain, m.props.clone());
        self.rate.add(m.time.timestamp());
        if self.recent.len() >= RECENT_CAPACITY {
            self.recent.pop_front();
        }
        self.recent.push_back(m);
    }

    /// Takes a new relay view; updates the throughput when it is newer.
    pub fn set_relay_view(&mut self, view: std::sync::Arc<RelayView>) {
        if view.seq != self.relay.seq {
            if let Some(at) = view.taken {
                let t = &view.snapshot.totals;
                self.throughput.add(at, t.bytes_in, t.bytes_out);
            }
            self.relay = view;
        }
    }

    /// Devices online: the roster's and the discovered ones.
    pub fn devices_online(&self) -> usize {
        self.roster.online_count()
    }

    /// The sandbox is drawn with live data: a device online and telemetry received.
    pub fn has_live_data(&self) -> bool {
        self.roster
            .live
            .values()
            .any(|d| d.online == Some(true) && !d.telemetry.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(topic: &str, payload: &str, secs: i64) -> Event {
        use chrono::TimeZone;
        Event::Message(
            1,
            MqttMessage {
                time: chrono::Local.timestamp_opt(secs, 0).unwrap(),
                topic: topic.to_owned(),
                payload: payload.as_bytes().to_vec().into(),
                qos: 0,
                retain: false,
                props: None,
            },
        )
    }

    #[test]
    fn devices_and_rate() {
        let mut m = LiveModel::default();
        m.apply(msg("devices/a/status", "online", 100));
        assert!(!m.has_live_data());
        m.apply(msg("devices/a/telemetry", r#"{"rssi":-50}"#, 100));
        m.apply(msg("devices/b/status", "offline", 101));
        assert!(m.has_live_data());
        assert_eq!(m.devices_online(), 1);
        assert_eq!(m.rate.per_second(101), 2);
        assert_eq!(m.rate.per_second(102), 1);
        let pts = m.rate.points(102);
        assert_eq!(pts.len(), RATE_WINDOW_SECS as usize);
        assert_eq!(pts[pts.len() - 3], [-2.0, 2.0]);
        assert_eq!(pts[pts.len() - 2], [-1.0, 1.0]);
        assert_eq!(m.total_messages, 3);
    }

    fn on(conn: u32, topic: &str) -> Event {
        match msg(topic, "x", 100) {
            Event::Message(_, m) => Event::Message(conn, m),
            other => other,
        }
    }

    fn open(m: &mut LiveModel, ids: &[u32], active: u32) {
        m.status.connections = ids
            .iter()
            .map(|&id| crate::backend::ConnInfo {
                id,
                label: format!("c{id}"),
                url: String::new(),
                protocol: 4,
                state: crate::mqtt::ConnState::Idle,
                insecure: false,
            })
            .collect();
        m.status.active = Some(active);
        m.sync_active();
    }

    #[test]
    fn each_connection_fills_its_own_store() {
        let mut m = LiveModel::default();
        open(&mut m, &[1], 1);
        m.apply(on(1, "one/a"));
        // A second connection opens and becomes active; the first keeps filling behind.
        open(&mut m, &[1, 2], 2);
        m.apply(on(2, "two/a"));
        m.apply(on(1, "one/b"));
        assert!(m.topics.tree.find("two/a").is_some());
        assert!(m.topics.tree.find("one/a").is_none());
        let bg = &m.background[&1];
        assert!(bg.tree.find("one/a").is_some() && bg.tree.find("one/b").is_some());
        assert_eq!(bg.store.limits, background_limits(m.limits));
        // Back to the first: its store returns whole, with the full bounds.
        open(&mut m, &[1, 2], 1);
        assert!(m.topics.tree.find("one/b").is_some());
        assert_eq!(m.topics.store.limits, m.limits);
        assert!(m.background.contains_key(&2));
        // The second closes: its store goes.
        open(&mut m, &[1], 1);
        assert!(m.background.is_empty());
        // Smaller bounds apply at once.
        m.set_limits(crate::topics::Limits {
            max_messages: 1,
            ..m.limits
        });
        m.apply(on(1, "one/c"));
        assert_eq!(m.topics.store.len(), 1);
    }

    #[test]
    fn recent_is_bounded() {
        let mut m = LiveModel::default();
        for i in 0..(RECENT_CAPACITY + 50) {
            m.apply(msg("x", "y", i as i64));
        }
        assert_eq!(m.recent.len(), RECENT_CAPACITY);
        assert!(m.rate.buckets() <= RATE_WINDOW_SECS as usize);
    }
}
