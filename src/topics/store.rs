//! The message store: every received message in arrival order, bounded by count and bytes.
//! When full it drops the oldest and counts them; payloads over the keep limit are kept
//! truncated, with a marker and their real size — never cut silently. Plain data, no egui.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use bytes::Bytes;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_messages: usize,
    pub max_bytes: usize,
    /// Payloads larger than this are kept truncated to it.
    pub max_payload: usize,
}

impl From<crate::config::StoreBounds> for Limits {
    fn from(b: crate::config::StoreBounds) -> Self {
        Limits {
            max_messages: b.max_messages.max(1),
            max_bytes: b.max_mb.saturating_mul(1024 * 1024),
            max_payload: b.keep_payload_kb.saturating_mul(1024),
        }
    }
}

impl Default for Limits {
    /// Sized for the targets: one million small messages within 300 MB.
    fn default() -> Self {
        Limits {
            max_messages: 1_000_000,
            max_bytes: 192 * 1024 * 1024,
            max_payload: 4 * 1024 * 1024,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// Arrival number, from 0; stays valid when older messages are dropped.
    pub seq: u64,
    /// Unix milliseconds.
    pub time_ms: i64,
    pub topic: Arc<str>,
    /// The payload kept (the whole payload unless `size` is larger).
    pub payload: Bytes,
    /// The payload's real size.
    pub size: usize,
    pub qos: u8,
    pub retain: bool,
    /// MQTT 5 properties, when the message carried any.
    pub props: Option<Arc<crate::mqtt::Props>>,
}

impl Stored {
    pub fn truncated(&self) -> bool {
        self.size > self.payload.len()
    }
}

#[derive(Debug, Default)]
pub struct Store {
    pub limits: Limits,
    messages: VecDeque<Stored>,
    bytes: usize,
    next_seq: u64,
    /// Messages dropped to stay within the limits.
    pub dropped: u64,
    /// Interned topic names: one allocation per topic, not per message.
    topics: HashMap<Arc<str>, ()>,
}

/// Bytes a message costs besides its payload (the struct and the deque slot).
const OVERHEAD: usize = std::mem::size_of::<Stored>() + 16;

impl Store {
    pub fn new(limits: Limits) -> Self {
        Store {
            limits,
            ..Default::default()
        }
    }

    fn intern(&mut self, topic: &str) -> Arc<str> {
        if let Some((k, _)) = self.topics.get_key_value(topic) {
            return k.clone();
        }
        let k: Arc<str> = Arc::from(topic);
        self.topics.insert(k.clone(), ());
        k
    }

    /// Adds a message; returns its sequence number.
    pub fn push(
        &mut self,
        time_ms: i64,
        topic: &str,
        payload: &Bytes,
        qos: u8,
        retain: bool,
        props: Option<Arc<crate::mqtt::Props>>,
    ) -> u64 {
        let size = payload.len();
        let kept = if size > self.limits.max_payload {
            // A copy of the prefix: a slice would keep the whole large payload alive.
            Bytes::copy_from_slice(&payload[..self.limits.max_payload])
        } else {
            payload.clone()
        };
        let topic = self.intern(topic);
        let seq = self.next_seq;
        self.next_seq += 1;
        self.bytes += kept.len() + OVERHEAD;
        self.messages.push_back(Stored {
            seq,
            time_ms,
            topic,
            payload: kept,
            size,
            qos,
            retain,
            props,
        });
        while self.messages.len() > self.limits.max_messages.max(1)
            || (self.bytes > self.limits.max_bytes && self.messages.len() > 1)
        {
            if let Some(old) = self.messages.pop_front() {
                self.bytes -= old.payload.len() + OVERHEAD;
                self.dropped += 1;
                // The last message of a topic gone: forget the name too (the map holds one
                // reference, `old` the other).
                if Arc::strong_count(&old.topic) == 2 {
                    self.topics.remove(&old.topic);
                }
            }
        }
        seq
    }

    pub fn len(&self) -> usize {
        self.messages.len()
    }

    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    /// Bytes held (payloads plus per-message overhead).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn get(&self, i: usize) -> Option<&Stored> {
        self.messages.get(i)
    }

    /// By sequence number.
    pub fn by_seq(&self, seq: u64) -> Option<&Stored> {
        let first = self.messages.front()?.seq;
        self.messages
            .get(usize::try_from(seq.checked_sub(first)?).ok()?)
    }

    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &Stored> + ExactSizeIterator {
        self.messages.iter()
    }

    /// From the `index`-th message held (0: the oldest) to the newest.
    pub fn iter_from(&self, index: usize) -> impl Iterator<Item = &Stored> {
        self.messages.range(index.min(self.messages.len())..)
    }

    /// The message before `seq` on the same topic, for the diff view.
    pub fn previous_on_topic(&self, seq: u64) -> Option<&Stored> {
        let m = self.by_seq(seq)?;
        let first = self.messages.front()?.seq;
        let idx = usize::try_from(seq - first).ok()?;
        self.messages
            .range(..idx)
            .rev()
            .find(|x| Arc::ptr_eq(&x.topic, &m.topic))
    }

    pub fn clear(&mut self) {
        self.messages.clear();
        self.bytes = 0;
        self.topics.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_by_count_and_bytes_with_a_drop_counter() {
        let mut s = Store::new(Limits {
            max_messages: 3,
            max_bytes: usize::MAX,
            max_payload: 1024,
        });
        for i in 0..5 {
            s.push(i, "a", &Bytes::from_static(b"x"), 0, false, None);
        }
        assert_eq!(s.len(), 3);
        assert_eq!(s.dropped, 2);
        assert_eq!(s.get(0).unwrap().seq, 2);
        assert_eq!(s.by_seq(4).unwrap().time_ms, 4);
        assert!(s.by_seq(1).is_none());
        let mut s = Store::new(Limits {
            max_messages: 100,
            max_bytes: 3 * (100 + OVERHEAD),
            max_payload: 1024,
        });
        for i in 0..10 {
            s.push(i, "a", &Bytes::from(vec![0u8; 100]), 0, false, None);
        }
        assert_eq!(s.len(), 3);
        assert_eq!(s.dropped, 7);
    }

    #[test]
    fn large_payloads_are_kept_truncated_with_their_size() {
        let mut s = Store::new(Limits {
            max_payload: 10,
            ..Limits::default()
        });
        s.push(0, "big", &Bytes::from(vec![7u8; 1_000_000]), 1, true, None);
        let m = s.get(0).unwrap();
        assert_eq!(m.payload.len(), 10);
        assert_eq!(m.size, 1_000_000);
        assert!(m.truncated());
    }

    #[test]
    fn topics_are_interned_and_previous_found() {
        let mut s = Store::default();
        s.push(0, "a/b", &Bytes::from_static(b"1"), 0, false, None);
        s.push(1, "c", &Bytes::from_static(b"2"), 0, false, None);
        let seq = s.push(2, "a/b", &Bytes::from_static(b"3"), 0, false, None);
        assert!(Arc::ptr_eq(
            &s.get(0).unwrap().topic,
            &s.get(2).unwrap().topic
        ));
        assert_eq!(&s.previous_on_topic(seq).unwrap().payload[..], b"1");
        assert!(s.previous_on_topic(0).is_none());
    }
}
