//! What the broker plugs into rmqtt's extension points (the same traits rmqtt's own plugins
//! implement): a retained-message store that is consistent the moment a PUBLISH is
//! acknowledged and kept on disk, and shared subscriptions served round robin as mosquitto does.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use rmqtt::context::ServerContext;
use rmqtt::retain::{DefaultRetainStorage, RetainStorage};
use rmqtt::subscribe::SharedSubscription;
use rmqtt::types::{
    ClientId, Id, IsOnline, NodeId, Retain, SharedGroup, SubscriptionIdentifier,
    SubscriptionOptions, TopicFilter, TopicName,
};

/// Retained messages: rmqtt's in-memory topic tree for every read and write (so a SUBSCRIBE
/// that follows an acknowledged PUBLISH always sees it, as with mosquitto), written through to
/// a sled tree when the broker has a store. rmqtt's own retainer plugin queues writes to its
/// store, so a subscriber right after a clear could still get the cleared message.
///
/// A cheap handle: rmqtt holds one as its retain storage while the sweeper keeps a clone.
#[derive(Clone)]
pub struct RetainedStore(Arc<Stores>);

struct Stores {
    memory: DefaultRetainStorage,
    disk: Option<sled::Tree>,
}

/// On disk: when the message expires (Unix ms, 0 for never), then the message.
type Stored = (u64, Retain);

impl RetainedStore {
    /// Opens (or creates) the store in `dir` and loads what it holds; `None`: memory only.
    pub async fn open(dir: Option<&Path>) -> anyhow::Result<RetainedStore> {
        let memory = DefaultRetainStorage::new();
        let disk = match dir {
            Some(dir) => {
                // Retained messages are few and precious: on disk within 100 ms of a PUBLISH,
                // so a crash loses almost nothing (sled's default is 500 ms).
                let db = sled::Config::new()
                    .path(dir)
                    .cache_capacity(8 << 20)
                    .flush_every_ms(Some(100))
                    .open()?;
                let tree = db.open_tree("retained")?;
                let now = unix_ms();
                let mut stale = Vec::new();
                for item in tree.iter() {
                    let (key, value) = item?;
                    let topic = TopicName::from(String::from_utf8_lossy(&key).into_owned());
                    match postcard::from_bytes::<Stored>(&value) {
                        Ok((expires, retain)) if expires == 0 || expires > now => {
                            let left = (expires != 0).then(|| Duration::from_millis(expires - now));
                            memory.set_with_timeout(&topic, retain, left).await?;
                        }
                        // Expired while the broker was down, or unreadable: drop it.
                        _ => stale.push(key),
                    }
                }
                for key in stale {
                    tree.remove(key)?;
                }
                Some(tree)
            }
            None => None,
        };
        Ok(RetainedStore(Arc::new(Stores { memory, disk })))
    }

    /// Drops expired messages from memory and disk; run now and then.
    pub async fn sweep(&self) {
        self.0.memory.remove_expired_messages().await;
        if let Some(tree) = &self.0.disk {
            let now = unix_ms();
            let expired: Vec<_> = tree
                .iter()
                .filter_map(Result::ok)
                .filter(|(_, v)| {
                    postcard::from_bytes::<Stored>(v)
                        .map(|(expires, _)| expires != 0 && expires <= now)
                        .unwrap_or(true)
                })
                .map(|(k, _)| k)
                .collect();
            for key in expired {
                tree.remove(key).ok();
            }
        }
    }
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[async_trait]
impl RetainStorage for RetainedStore {
    fn enable(&self) -> bool {
        true
    }

    /// One broker, nothing to synchronise with.
    fn need_sync(&self) -> bool {
        false
    }

    async fn set(
        &self,
        topic: &TopicName,
        retain: Retain,
        expiry_interval: Option<Duration>,
    ) -> rmqtt::Result<()> {
        // A message without an expiry never expires (rmqtt passes zero for "none").
        let expiry = expiry_interval.filter(|d| !d.is_zero());
        if let Some(tree) = &self.0.disk {
            if retain.publish.payload.is_empty() {
                tree.remove(topic.as_bytes())?;
            } else {
                let expires = expiry
                    .map(|d| unix_ms() + d.as_millis() as u64)
                    .unwrap_or(0);
                let bytes = postcard::to_stdvec(&(expires, &retain))?;
                tree.insert(topic.as_bytes(), bytes)?;
            }
        }
        self.0.memory.set_with_timeout(topic, retain, expiry).await
    }

    async fn get(&self, topic_filter: &TopicFilter) -> rmqtt::Result<Vec<(TopicName, Retain)>> {
        self.0.memory.get_message(topic_filter).await
    }

    async fn count(&self) -> isize {
        self.0.memory.count().await
    }

    async fn max(&self) -> isize {
        self.0.memory.max().await
    }
}

/// Shared subscriptions (`$share/group/filter`): each message goes to one member of the
/// group, taking turns, connected members first (mosquitto's round robin).
#[derive(Default)]
pub struct RoundRobin {
    next: Mutex<HashMap<SharedGroup, AtomicUsize>>,
}

type Member = (
    NodeId,
    ClientId,
    SubscriptionOptions,
    Option<Vec<SubscriptionIdentifier>>,
    Option<IsOnline>,
);

#[async_trait]
impl SharedSubscription for RoundRobin {
    fn is_supported(&self) -> bool {
        true
    }

    async fn choice(
        &self,
        _scx: &ServerContext,
        group: &SharedGroup,
        _publisher: &Id,
        _topic: &TopicName,
        members: &[Member],
    ) -> Option<(usize, IsOnline)> {
        if members.is_empty() {
            return None;
        }
        let turn = {
            let mut next = self.next.lock().ok()?;
            next.entry(group.clone())
                .or_default()
                .fetch_add(1, Ordering::Relaxed)
        };
        let online: Vec<usize> = (0..members.len())
            .filter(|i| members[*i].4.unwrap_or(true))
            .collect();
        if online.is_empty() {
            let i = turn % members.len();
            Some((i, false))
        } else {
            Some((online[turn % online.len()], true))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn retain(payload: &'static [u8]) -> Retain {
        let publish = rmqtt::codec::types::Publish {
            dup: false,
            retain: true,
            qos: rmqtt::codec::types::QoS::AtLeastOnce,
            topic: "a/b".into(),
            packet_id: None,
            payload: bytes::Bytes::from_static(payload),
            properties: None,
        };
        let id = Id::new(0, 1, None, None, "test".into(), None);
        Retain {
            msg_id: None,
            from: rmqtt::types::From::from_custom(id),
            publish: publish.into(),
        }
    }

    #[tokio::test]
    async fn set_clear_and_reload_from_disk() {
        let t = tempfile::tempdir().unwrap();
        {
            let s = RetainedStore::open(Some(t.path())).await.unwrap();
            s.set(&"a/b".into(), retain(b"one"), None).await.unwrap();
            s.set(&"a/c".into(), retain(b"two"), Some(Duration::ZERO))
                .await
                .unwrap();
            s.set(&"a/d".into(), retain(b"gone"), None).await.unwrap();
            s.set(&"a/d".into(), retain(b""), None).await.unwrap();
            s.set(
                &"a/e".into(),
                retain(b"short"),
                Some(Duration::from_millis(1)),
            )
            .await
            .unwrap();
            assert_eq!(
                s.get(&"a/d".into()).await.unwrap().len(),
                0,
                "cleared at once"
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        let s = RetainedStore::open(Some(t.path())).await.unwrap();
        let mut got: Vec<String> = s
            .get(&"a/#".into())
            .await
            .unwrap()
            .into_iter()
            .map(|(t, r)| format!("{t}={}", String::from_utf8_lossy(&r.publish.payload)))
            .collect();
        got.sort();
        assert_eq!(got, ["a/b=one", "a/c=two"]);
    }
}
