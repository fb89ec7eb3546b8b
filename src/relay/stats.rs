//! What the relay knows about its connections: a record per connection (live and recently
//! closed), the rejected handshakes, totals. Bounded: the closed and rejected logs keep the
//! last [`HISTORY`] entries.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::handshake::MiniProgram;
use super::inspect::ConnectInfo;

/// How many closed connections and rejections are kept.
pub const HISTORY: usize = 1000;

/// Who ended a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    Client,
    Upstream,
    Relay,
    Operator,
}

impl std::fmt::Display for Side {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Side::Client => "client",
            Side::Upstream => "upstream",
            Side::Relay => "relay",
            Side::Operator => "operator",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CloseInfo {
    /// The WebSocket close code sent or received; `None` for an abrupt end.
    pub code: Option<u16>,
    pub reason: String,
    pub side: Side,
}

/// Everything recorded about one relayed connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConnRecord {
    pub id: u64,
    pub peer: SocketAddr,
    pub opened: chrono::DateTime<chrono::Local>,
    pub closed: Option<chrono::DateTime<chrono::Local>>,
    pub sni: Option<String>,
    pub tls_version: String,
    pub cipher: String,
    pub path: String,
    pub subprotocol: Option<String>,
    pub mini_program: Option<MiniProgramRecord>,
    pub user_agent: Option<String>,
    pub origin: Option<String>,
    pub upstream: Option<String>,
    /// Upstreams tried before `upstream`, with why each failed (failover).
    pub upstream_failures: Vec<String>,
    pub connect: Option<ConnectRecord>,
    pub connack: Option<u8>,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub packets_in: u64,
    pub packets_out: u64,
    pub close: Option<CloseInfo>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MiniProgramRecord {
    pub appid: String,
    pub version: String,
}

impl From<MiniProgram> for MiniProgramRecord {
    fn from(m: MiniProgram) -> Self {
        Self {
            appid: m.appid,
            version: m.version,
        }
    }
}

/// The CONNECT fields the relay keeps (never the password).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConnectRecord {
    pub client_id: String,
    pub username: Option<String>,
    pub protocol_level: u8,
    pub keep_alive_secs: u16,
    pub clean_session: bool,
}

impl From<ConnectInfo> for ConnectRecord {
    fn from(c: ConnectInfo) -> Self {
        Self {
            client_id: c.client_id,
            username: c.username,
            protocol_level: c.protocol_level,
            keep_alive_secs: c.keep_alive_secs,
            clean_session: c.clean_session,
        }
    }
}

/// Why a connection or handshake was refused. Labels `mpbridge_relay_rejected_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectKind {
    /// `max_connections` reached.
    ConnectionLimit,
    /// `max_connections_per_ip` reached for the client's address.
    PerIpLimit,
    /// The TLS handshake failed (no shared version or cipher, a bad certificate, not TLS).
    TlsFailed,
    /// The TLS handshake did not finish within `handshake_timeout`.
    TlsTimeout,
    /// The client closed, or the read failed, before a whole HTTP request came.
    ClosedEarly,
    /// No whole HTTP request within `handshake_timeout`.
    RequestTimeout,
    /// Not HTTP, or a head too large (400, 431).
    BadRequest,
    /// No route for the path (404).
    NoRoute,
    /// Not a valid RFC 6455 upgrade (426, 405, 400).
    NotWebSocket,
    /// No supported WebSocket subprotocol offered (400).
    Subprotocol,
    /// Refused by a route's Origin or Mini Program allowlist (403).
    NotAllowed,
    /// The client left while the upgrade was being answered.
    ClientLeft,
}

impl RejectKind {
    pub const ALL: [RejectKind; 12] = [
        RejectKind::ConnectionLimit,
        RejectKind::PerIpLimit,
        RejectKind::TlsFailed,
        RejectKind::TlsTimeout,
        RejectKind::ClosedEarly,
        RejectKind::RequestTimeout,
        RejectKind::BadRequest,
        RejectKind::NoRoute,
        RejectKind::NotWebSocket,
        RejectKind::Subprotocol,
        RejectKind::NotAllowed,
        RejectKind::ClientLeft,
    ];

    /// The Prometheus label value (also the JSON form).
    pub fn label(self) -> &'static str {
        match self {
            RejectKind::ConnectionLimit => "connection_limit",
            RejectKind::PerIpLimit => "per_ip_limit",
            RejectKind::TlsFailed => "tls_failed",
            RejectKind::TlsTimeout => "tls_timeout",
            RejectKind::ClosedEarly => "closed_early",
            RejectKind::RequestTimeout => "request_timeout",
            RejectKind::BadRequest => "bad_request",
            RejectKind::NoRoute => "no_route",
            RejectKind::NotWebSocket => "not_websocket",
            RejectKind::Subprotocol => "subprotocol",
            RejectKind::NotAllowed => "not_allowed",
            RejectKind::ClientLeft => "client_left",
        }
    }
}

/// A refused connection or handshake.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rejection {
    pub time: chrono::DateTime<chrono::Local>,
    pub peer: SocketAddr,
    pub sni: Option<String>,
    pub path: Option<String>,
    /// The HTTP status sent; `None` when the connection was dropped before HTTP (TLS, limits).
    pub status: Option<u16>,
    pub kind: RejectKind,
    /// The whole story, for the log and the console.
    pub reason: String,
}

/// Byte and packet counters of a live connection, updated without locks.
#[derive(Debug, Default)]
pub struct Counters {
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    pub packets_in: AtomicU64,
    pub packets_out: AtomicU64,
}

/// A live connection as the registry holds it.
pub struct LiveConn {
    pub record: Mutex<ConnRecord>,
    pub counters: Counters,
    /// Cancelled to close this connection from outside (the operator).
    pub close: CancellationToken,
}

impl LiveConn {
    pub fn snapshot(&self) -> Option<ConnRecord> {
        let mut r = self.record.lock().ok()?.clone();
        r.bytes_in = self.counters.bytes_in.load(Ordering::Relaxed);
        r.bytes_out = self.counters.bytes_out.load(Ordering::Relaxed);
        r.packets_in = self.counters.packets_in.load(Ordering::Relaxed);
        r.packets_out = self.counters.packets_out.load(Ordering::Relaxed);
        Some(r)
    }

    pub fn update(&self, f: impl FnOnce(&mut ConnRecord)) {
        if let Ok(mut r) = self.record.lock() {
            f(&mut r);
        }
    }
}

#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct Totals {
    pub accepted: u64,
    pub upgraded: u64,
    pub rejected: u64,
    /// Rejections by kind, in [`RejectKind::ALL`]'s order.
    pub rejected_by: [u64; RejectKind::ALL.len()],
    pub closed: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

/// Everything the UI (or `/metrics`) needs, copied out at once.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RelaySnapshot {
    pub live: Vec<ConnRecord>,
    pub closed: Vec<ConnRecord>,
    pub rejected: Vec<Rejection>,
    pub totals: Totals,
}

#[derive(Default)]
pub struct Registry {
    next_id: AtomicU64,
    live: Mutex<HashMap<u64, Arc<LiveConn>>>,
    closed: Mutex<VecDeque<ConnRecord>>,
    rejected: Mutex<VecDeque<Rejection>>,
    slots: Mutex<Slots>,
    accepted: AtomicU64,
    upgraded: AtomicU64,
    rejected_total: AtomicU64,
    rejected_by: [AtomicU64; RejectKind::ALL.len()],
    closed_total: AtomicU64,
    /// Bytes of connections already closed (live ones are summed at snapshot time).
    bytes_in_closed: AtomicU64,
    bytes_out_closed: AtomicU64,
}

/// Connections holding a slot: in all and per client address.
#[derive(Debug, Default)]
struct Slots {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

/// Holds a connection's slot in the limits; releasing it on drop.
pub struct Slot {
    registry: Arc<Registry>,
    ip: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Ok(mut s) = self.registry.slots.lock()
            && let Some(n) = s.per_ip.get_mut(&self.ip)
        {
            *n -= 1;
            if *n == 0 {
                s.per_ip.remove(&self.ip);
            }
            s.total = s.total.saturating_sub(1);
        }
    }
}

impl Registry {
    /// Takes a connection slot if the limits allow: `Err` says which limit refused.
    pub fn admit(
        self: &Arc<Self>,
        ip: IpAddr,
        max_total: usize,
        max_per_ip: usize,
    ) -> Result<Slot, (RejectKind, String)> {
        let Ok(mut s) = self.slots.lock() else {
            return Err((RejectKind::ConnectionLimit, "relay state poisoned".into()));
        };
        if s.total >= max_total {
            return Err((
                RejectKind::ConnectionLimit,
                format!("max_connections ({max_total}) reached"),
            ));
        }
        let n = s.per_ip.entry(ip).or_insert(0);
        // 0: no cap per address (the default; a carrier-grade NAT puts thousands of phones
        // behind one).
        if max_per_ip > 0 && *n >= max_per_ip {
            return Err((
                RejectKind::PerIpLimit,
                format!("max_connections_per_ip ({max_per_ip}) reached for {ip}"),
            ));
        }
        *n += 1;
        s.total += 1;
        self.accepted.fetch_add(1, Ordering::Relaxed);
        Ok(Slot {
            registry: self.clone(),
            ip,
        })
    }

    /// Connections holding a slot (handshaking or relaying).
    pub fn open_count(&self) -> usize {
        self.slots.lock().map(|s| s.total).unwrap_or(0)
    }

    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed) + 1
    }

    pub fn reject(&self, r: Rejection) {
        self.rejected_total.fetch_add(1, Ordering::Relaxed);
        self.rejected_by[r.kind as usize].fetch_add(1, Ordering::Relaxed);
        tracing::info!(
            peer = %r.peer,
            kind = r.kind.label(),
            status = r.status.map(|s| s.to_string()).unwrap_or_else(|| "-".into()),
            path = r.path.as_deref().unwrap_or("-"),
            "rejected: {}",
            r.reason
        );
        push_bounded(&self.rejected, r);
    }

    pub fn register(&self, conn: Arc<LiveConn>) {
        self.upgraded.fetch_add(1, Ordering::Relaxed);
        if let (Ok(mut live), Some(r)) = (self.live.lock(), conn.snapshot()) {
            live.insert(r.id, conn);
        }
    }

    /// Moves a connection from live to closed.
    pub fn finish(&self, id: u64) -> Option<ConnRecord> {
        let conn = self.live.lock().ok()?.remove(&id)?;
        let mut r = conn.snapshot()?;
        r.closed.get_or_insert_with(chrono::Local::now);
        self.closed_total.fetch_add(1, Ordering::Relaxed);
        self.bytes_in_closed
            .fetch_add(r.bytes_in, Ordering::Relaxed);
        self.bytes_out_closed
            .fetch_add(r.bytes_out, Ordering::Relaxed);
        push_bounded(&self.closed, r.clone());
        Some(r)
    }

    /// Asks a live connection to close; false when it is not live.
    pub fn close(&self, id: u64) -> bool {
        let Ok(live) = self.live.lock() else {
            return false;
        };
        match live.get(&id) {
            Some(c) => {
                c.close.cancel();
                true
            }
            None => false,
        }
    }

    pub fn live_count(&self) -> usize {
        self.live.lock().map(|l| l.len()).unwrap_or(0)
    }

    /// Copies the state out; `history` bounds how many closed/rejected entries are copied.
    pub fn snapshot(&self, history: usize) -> RelaySnapshot {
        let mut live: Vec<ConnRecord> = self
            .live
            .lock()
            .map(|l| l.values().filter_map(|c| c.snapshot()).collect())
            .unwrap_or_default();
        live.sort_by_key(|r| r.id);
        let closed = tail(&self.closed, history);
        let rejected = tail(&self.rejected, history);
        let totals = Totals {
            accepted: self.accepted.load(Ordering::Relaxed),
            upgraded: self.upgraded.load(Ordering::Relaxed),
            rejected: self.rejected_total.load(Ordering::Relaxed),
            rejected_by: std::array::from_fn(|i| self.rejected_by[i].load(Ordering::Relaxed)),
            closed: self.closed_total.load(Ordering::Relaxed),
            bytes_in: self.bytes_in_closed.load(Ordering::Relaxed)
                + live.iter().map(|r| r.bytes_in).sum::<u64>(),
            bytes_out: self.bytes_out_closed.load(Ordering::Relaxed)
                + live.iter().map(|r| r.bytes_out).sum::<u64>(),
        };
        RelaySnapshot {
            live,
            closed,
            rejected,
            totals,
        }
    }

    /// Prometheus text exposition of the totals.
    pub fn prometheus(&self) -> String {
        let s = self.snapshot(0);
        let t = &s.totals;
        let mut out = String::new();
        fn metric(out: &mut String, name: &str, kind: &str, help: &str, v: u64) {
            out.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}\n"
            ));
        }
        metric(
            &mut out,
            "mpbridge_relay_connections",
            "gauge",
            "Relayed WebSocket connections open now.",
            s.live.len() as u64,
        );
        metric(
            &mut out,
            "mpbridge_relay_accepted_total",
            "counter",
            "TCP connections accepted.",
            t.accepted,
        );
        metric(
            &mut out,
            "mpbridge_relay_upgraded_total",
            "counter",
            "WebSocket upgrades completed.",
            t.upgraded,
        );
        out.push_str(
            "# HELP mpbridge_relay_rejected_total Connections or handshakes refused, by reason.\n\
             # TYPE mpbridge_relay_rejected_total counter\n",
        );
        for (kind, n) in RejectKind::ALL.iter().zip(t.rejected_by) {
            out.push_str(&format!(
                "mpbridge_relay_rejected_total{{reason=\"{}\"}} {n}\n",
                kind.label()
            ));
        }
        metric(
            &mut out,
            "mpbridge_relay_closed_total",
            "counter",
            "Relayed connections closed.",
            t.closed,
        );
        metric(
            &mut out,
            "mpbridge_relay_bytes_in_total",
            "counter",
            "Bytes from clients to upstreams.",
            t.bytes_in,
        );
        metric(
            &mut out,
            "mpbridge_relay_bytes_out_total",
            "counter",
            "Bytes from upstreams to clients.",
            t.bytes_out,
        );
        out
    }
}

/// The newest `n` entries, newest first.
fn tail<T: Clone>(q: &Mutex<VecDeque<T>>, n: usize) -> Vec<T> {
    q.lock()
        .map(|q| q.iter().rev().take(n).cloned().collect())
        .unwrap_or_default()
}

fn push_bounded<T>(q: &Mutex<VecDeque<T>>, v: T) {
    if let Ok(mut q) = q.lock() {
        if q.len() >= HISTORY {
            q.pop_front();
        }
        q.push_back(v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Without a per-IP cap (the default) one address takes as many as the total allows:
    /// the phones behind one carrier-grade NAT.
    #[test]
    fn no_per_ip_cap_by_default_and_the_total_still_holds() {
        let r = Arc::new(Registry::default());
        let ip: IpAddr = "100.64.0.1".parse().unwrap();
        let cap = super::super::config::Limits::default().max_connections_per_ip;
        assert_eq!(cap, 0);
        let held: Vec<Slot> = (0..1000).map(|_| r.admit(ip, 1000, cap).unwrap()).collect();
        let over = r.admit(ip, 1000, cap).err().map(|(k, _)| k);
        assert_eq!(over, Some(RejectKind::ConnectionLimit));
        drop(held);
        assert_eq!(r.open_count(), 0);
        // A cap, when set, refuses the address over it and no other.
        let _a = r.admit(ip, 10, 1).unwrap();
        let refused = r.admit(ip, 10, 1).err().map(|(k, _)| k);
        assert_eq!(refused, Some(RejectKind::PerIpLimit));
        assert!(r.admit("100.64.0.2".parse().unwrap(), 10, 1).is_ok());
    }
}
