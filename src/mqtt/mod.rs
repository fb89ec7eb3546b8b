//! The console's MQTT client side: a worker task that owns a rumqttc event loop, and the
//! plain types it reports with. No egui here.

pub mod topic;
pub mod wire;
pub mod worker;

use std::time::Duration;

use bytes::Bytes;

/// One message received from a broker.
#[derive(Debug, Clone)]
pub struct MqttMessage {
    pub time: chrono::DateTime<chrono::Local>,
    pub topic: String,
    pub payload: Bytes,
    pub qos: u8,
    pub retain: bool,
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
