//! The console's MQTT client side: a worker task that owns a rumqttc event loop, and the
//! plain types it reports with. No egui here.

pub mod client;
pub mod profile;
pub mod props;
pub mod sni;
pub mod tls_words;
pub mod topic;
pub mod wire;
pub mod worker;

use std::time::Duration;

use std::sync::Arc;

use bytes::Bytes;

pub use props::Props;

/// Largest packet the console accepts or sends. Well above the store's keep limit, so a big
/// message is stored truncated instead of dropping the connection (rumqttc disconnects on a
/// packet over its limit, and a retained one would then come back on every reconnect).
pub const MAX_PACKET_BYTES: usize = 64 * 1024 * 1024;

/// One message received from a broker.
#[derive(Debug, Clone)]
pub struct MqttMessage {
    pub time: chrono::DateTime<chrono::Local>,
    pub topic: String,
    pub payload: Bytes,
    pub qos: u8,
    pub retain: bool,
    /// MQTT 5 publish properties, when the message carried any.
    pub props: Option<Arc<Props>>,
}

/// A broker connection's state, published on a `watch` channel.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ConnState {
    #[default]
    Idle,
    Connecting {
        attempt: u32,
    },
    Connected {
        since: chrono::DateTime<chrono::Local>,
    },
    /// Lost or refused; the worker retries after `retry_in`.
    Disconnected {
        error: String,
        retry_in: Duration,
    },
}

impl ConnState {
    pub fn is_connected(&self) -> bool {
        matches!(self, ConnState::Connected { .. })
    }
}

/// Reconnect delay: exponential from 250 ms to 10 s, with up to 25 % random jitter so that
/// many clients do not reconnect in lockstep.
pub fn backoff(attempt: u32) -> Duration {
    let base_ms = 250u64.saturating_mul(1u64 << attempt.min(6)).min(10_000);
    let jitter = rand::random_range(0..=base_ms / 4);
    Duration::from_millis(base_ms + jitter)
}

/// A TLS failure named after the certificate verdicts, pointing at the command that shows more.
pub fn tls_failure(target: &str, e: &rustls::Error) -> String {
    format!(
        "{target}: the TLS handshake failed: {}; `mpbridge cert fetch HOST:PORT` shows the chain it serves",
        tls_words::explain(e)
    )
}

/// A connection failure in plain words: CONNACK codes decoded, the host named.
pub fn describe_error(target: &str, e: &rumqttc::ConnectionError) -> String {
    use rumqttc::{ConnectReturnCode as C, ConnectionError as E};
    use std::io::ErrorKind;
    if let Some(t) = tls_words::find_rustls(e) {
        return tls_failure(target, t);
    }
    match e {
        E::ConnectionRefused(code) => {
            let (n, text) = match code {
                C::Success => (0, "accepted"),
                C::RefusedProtocolVersion => (1, "unacceptable protocol version"),
                C::BadClientId => (2, "client id rejected"),
                C::ServiceUnavailable => (3, "server unavailable"),
                C::BadUserNamePassword => (4, "bad user name or password"),
                C::NotAuthorized => (5, "not authorized"),
            };
            format!("{target} refused the connection: {text} (CONNACK {n})")
        }
        E::Io(io) if io.kind() == ErrorKind::ConnectionRefused => {
            format!("nothing accepts connections at {target}")
        }
        E::Io(io) if io.to_string().contains("lookup") || io.to_string().contains("resolve") => {
            format!("cannot resolve the host of {target} ({io})")
        }
        E::Io(io) if io.kind() == ErrorKind::TimedOut => format!("{target} did not answer in time"),
        E::Tls(t) => format!(
            "{target}: the TLS handshake failed ({t}); `mpbridge cert fetch HOST:PORT` shows the certificate it serves"
        ),
        E::NetworkTimeout => format!("{target} did not answer in time"),
        other => format!("{target}: {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        assert!(
            backoff(0) >= Duration::from_millis(250) && backoff(0) <= Duration::from_millis(313)
        );
        assert!(backoff(3) >= Duration::from_millis(2000));
        for a in [6, 7, 20, u32::MAX] {
            let d = backoff(a);
            assert!(
                d >= Duration::from_secs(10) && d <= Duration::from_millis(12_500),
                "{d:?}"
            );
        }
    }
}
