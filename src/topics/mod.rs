//! Live topics: the bounded message store, the topic tree, the subscriptions with their
//! colours and rates, payload views, and export to JSONL / CSV. Plain data fed from the UI's
//! event pump; no egui, no sockets.

pub mod publish;
pub mod rate;
pub mod saved;
pub mod store;
pub mod tree;
pub mod view;

use base64::Engine as _;
use bytes::Bytes;

use crate::mqtt::topic;
pub use rate::RateSeries;
pub use store::{Limits, Store, Stored};
pub use tree::Tree;

/// A subscription as the Topics panel shows it.
#[derive(Debug)]
pub struct Subscription {
    pub filter: String,
    pub qos: u8,
    pub color: [u8; 3],
    pub enabled: bool,
    pub rate: RateSeries,
    pub count: u64,
}

/// Colours handed to new subscriptions in turn.
pub const PALETTE: [[u8; 3]; 8] = [
    [0x1a, 0x7f, 0xd4],
    [0x2e, 0xa0, 0x43],
    [0xd2, 0x99, 0x22],
    [0xb5, 0x4a, 0xd8],
    [0xd0, 0x3b, 0x3b],
    [0x17, 0xa2, 0xb8],
    [0x8a, 0x6d, 0x3b],
    [0xe0, 0x5d, 0x9b],
];

#[derive(Debug, Default)]
pub struct Topics {
    pub store: Store,
    pub tree: Tree,
    pub subs: Vec<Subscription>,
    /// Filters the broker refused (their SUBACK) and why, until a SUBACK grants them.
    pub refused: std::collections::HashMap<String, crate::verdict::L10n>,
    pub ingested: u64,
}

impl Topics {
    pub fn new(limits: Limits) -> Self {
        Topics {
            store: Store::new(limits),
            ..Default::default()
        }
    }

    /// Adds a subscription (or re-enables the same filter); its index.
    pub fn subscribe(&mut self, filter: &str, qos: u8) -> usize {
        if let Some(i) = self.subs.iter().position(|s| s.filter == filter) {
            self.subs[i].enabled = true;
            self.subs[i].qos = qos;
            return i;
        }
        let color = PALETTE[self.subs.len() % PALETTE.len()];
        self.subs.push(Subscription {
            filter: filter.to_owned(),
            qos,
            color,
            enabled: true,
            rate: RateSeries::default(),
            count: 0,
        });
        self.subs.len() - 1
    }

    /// The broker's SUBACK for `filter`: refused (and why) or granted. Kept by filter, apart
    /// from the subscription list, so an answer that comes before the list is set survives.
    pub fn suback(&mut self, filter: String, refused: Option<crate::verdict::L10n>) {
        match refused {
            Some(why) => {
                self.refused.insert(filter, why);
            }
            None => {
                self.refused.remove(&filter);
            }
        }
    }

    /// The subscription a topic is shown under (its colour): the most recently added enabled
    /// one that matches, usually the most specific (`lab/#` added after `#`).
    pub fn sub_of(&self, topic_name: &str) -> Option<usize> {
        self.subs
            .iter()
            .rposition(|s| s.enabled && topic::matches(&s.filter, topic_name))
    }

    pub fn on_message(
        &mut self,
        time_ms: i64,
        topic_name: &str,
        payload: &Bytes,
        qos: u8,
        retain: bool,
        props: Option<std::sync::Arc<crate::mqtt::Props>>,
    ) {
        self.ingested += 1;
        self.store
            .push(time_ms, topic_name, payload, qos, retain, props);
        self.tree.on_message(topic_name, payload, retain, time_ms);
        // Every matching subscription counts it (overlapping filters each see the message).
        let second = time_ms.div_euclid(1000);
        for s in self.subs.iter_mut() {
            if s.enabled && topic::matches(&s.filter, topic_name) {
                s.count += 1;
                s.rate.add(second);
            }
        }
    }

    /// Store indexes of the messages that pass a query (see [`Query`]).
    pub fn search(
        &self,
        topic_filter: &str,
        text: &str,
        regex: bool,
    ) -> Result<Vec<usize>, String> {
        let q = Query::new(topic_filter, text, regex)?;
        Ok(self
            .store
            .iter()
            .enumerate()
            .filter(|(_, m)| q.matches(m))
            .map(|(i, _)| i)
            .collect())
    }
}

/// A search: a topic (a filter when it has wildcards, else a substring) and payload text (or
/// a regex over payload and topic).
pub struct Query {
    filter: String,
    wildcard: bool,
    needle: String,
    re: Option<regex_lite::Regex>,
}

impl Query {
    pub fn new(topic_filter: &str, text: &str, regex: bool) -> Result<Self, String> {
        let filter = topic_filter.trim().to_owned();
        let wildcard =
            topic::valid_filter(&filter) && (filter.contains('+') || filter.contains('#'));
        let re = if regex && !text.is_empty() {
            Some(regex_lite::Regex::new(text).map_err(|e| e.to_string())?)
        } else {
            None
        };
        Ok(Query {
            filter,
            wildcard,
            needle: text.to_lowercase(),
            re,
        })
    }

    pub fn matches(&self, m: &Stored) -> bool {
        let topic_ok = self.filter.is_empty()
            || if self.wildcard {
                topic::matches(&self.filter, &m.topic)
            } else {
                m.topic.contains(self.filter.as_str())
            };
        if !topic_ok {
            return false;
        }
        if self.needle.is_empty() {
            return true;
        }
        let body = String::from_utf8_lossy(&m.payload);
        match &self.re {
            Some(re) => re.is_match(&body) || re.is_match(&m.topic),
            None => body.to_lowercase().contains(&self.needle),
        }
    }
}

fn encode(payload: &[u8]) -> (&'static str, String) {
    match std::str::from_utf8(payload) {
        Ok(s) => ("utf8", s.to_owned()),
        Err(_) => (
            "base64",
            base64::engine::general_purpose::STANDARD.encode(payload),
        ),
    }
}

fn rfc3339_ms(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|d| d.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_default()
}

/// One JSON object per line: time, topic, qos, retain, size, payload with its encoding
/// (`utf8` or `base64`: lossless), and `truncated` when the store kept only a prefix.
pub fn to_jsonl<'a>(messages: impl Iterator<Item = &'a Stored>) -> String {
    let mut out = String::new();
    for m in messages {
        let (enc, payload) = encode(&m.payload);
        let mut v = serde_json::json!({
            "time": rfc3339_ms(m.time_ms),
            "topic": &*m.topic,
            "qos": m.qos,
            "retain": m.retain,
            "size": m.size,
            "encoding": enc,
            "payload": payload,
            "truncated": m.truncated(),
        });
        if let Some(p) = &m.props {
            v["properties"] = p.to_json();
        }
        out.push_str(&v.to_string());
        out.push('\n');
    }
    out
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// CSV with a header; the payload column is UTF-8 text or base64, said by `encoding`; MQTT 5
/// properties, when there are any, as a JSON object in the last column.
pub fn to_csv<'a>(messages: impl Iterator<Item = &'a Stored>) -> String {
    let mut out =
        String::from("time,topic,qos,retain,size,encoding,payload,truncated,properties\n");
    for m in messages {
        let (enc, payload) = encode(&m.payload);
        let props = m
            .props
            .as_ref()
            .map(|p| p.to_json().to_string())
            .unwrap_or_default();
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{},{}\n",
            rfc3339_ms(m.time_ms),
            csv_field(&m.topic),
            m.qos,
            m.retain,
            m.size,
            enc,
            csv_field(&payload),
            m.truncated(),
            csv_field(&props)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscriptions_search_and_export() {
        let mut t = Topics::default();
        t.subscribe("devices/#", 0);
        t.subscribe("$SYS/#", 0);
        t.on_message(
            1_000,
            "devices/a/telemetry",
            &Bytes::from_static(br#"{"rssi":-50}"#),
            0,
            false,
            None,
        );
        t.on_message(
            1_500,
            "$SYS/broker/uptime",
            &Bytes::from_static(b"12 s"),
            0,
            true,
            None,
        );
        t.on_message(
            2_000,
            "other",
            &Bytes::from_static(&[0xff, 0x00, b',']),
            1,
            false,
            None,
        );
        assert_eq!(t.subs[0].count, 1);
        assert_eq!(t.subs[1].count, 1);
        assert_eq!(t.sub_of("other"), None);
        assert_eq!(t.search("devices/#", "", false).unwrap(), vec![0]);
        assert_eq!(t.search("", "rssi", false).unwrap(), vec![0]);
        assert_eq!(t.search("", r"^\d+ s$", true).unwrap(), vec![1]);
        assert!(t.search("", "(", true).is_err());
        let jsonl = to_jsonl(t.store.iter());
        let lines: Vec<serde_json::Value> = jsonl
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[2]["encoding"], "base64");
        assert_eq!(lines[2]["payload"], "/wAs");
        assert_eq!(lines[1]["retain"], true);
        let csv = to_csv(t.store.iter());
        assert_eq!(csv.lines().count(), 4);
        assert!(csv.contains(r#""{""rssi"":-50}""#), "{csv}");
        // MQTT 5 properties travel with the message into both exports.
        let props = crate::mqtt::Props {
            content_type: Some("text/plain".into()),
            user: vec![("k".into(), "v,1".into())],
            ..Default::default()
        };
        t.on_message(
            2_200,
            "v5/x",
            &Bytes::from_static(b"p"),
            1,
            false,
            Some(std::sync::Arc::new(props)),
        );
        let last = t.store.iter().last().unwrap();
        let line: serde_json::Value =
            serde_json::from_str(to_jsonl(std::iter::once(last)).trim()).unwrap();
        assert_eq!(line["properties"]["content_type"], "text/plain");
        assert_eq!(line["properties"]["user_properties"][0][1], "v,1");
        let csv = to_csv(std::iter::once(last));
        assert!(
            csv.lines().nth(1).unwrap().ends_with(
                r#","{""content_type"":""text/plain"",""user_properties"":[[""k"",""v,1""]]}""#
            ),
            "{csv}"
        );
        t.subscribe("devices/a/#", 0);
        t.on_message(
            2_500,
            "devices/a/state",
            &Bytes::from_static(b"{}"),
            0,
            false,
            None,
        );
        assert_eq!(t.subs[0].count, 2, "overlapping filters both count");
        assert_eq!(
            t.sub_of("devices/a/state"),
            Some(2),
            "the most specific colours it"
        );
    }
}
