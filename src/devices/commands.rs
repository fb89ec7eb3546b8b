//! Commands: a template filled for one device, the warnings worth a second look before it is
//! sent, and the acknowledgement it waits for — matched against every message the console
//! receives, with the latency measured from the publish.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::oneshot;

use super::config::{DeviceDef, Template};
use crate::verdict::L10n;

/// A command ready to publish.
#[derive(Debug, Clone, PartialEq)]
pub struct Prepared {
    pub device: String,
    pub topic: String,
    pub payload: String,
    pub qos: u8,
    pub retain: bool,
    pub ack: Option<AckSpec>,
    pub timeout: Duration,
}

/// What the answer must look like.
#[derive(Debug, Clone, PartialEq)]
pub struct AckSpec {
    pub topic: String,
    pub field: Option<String>,
    pub value: Option<String>,
    pub regex: Option<String>,
}

impl AckSpec {
    pub fn matches(&self, topic: &str, payload: &[u8]) -> bool {
        if topic != self.topic {
            return false;
        }
        if let Some(r) = &self.regex {
            return regex_lite::Regex::new(r)
                .map(|re| re.is_match(&String::from_utf8_lossy(payload)))
                .unwrap_or(false);
        }
        let Some(field) = &self.field else {
            return true;
        };
        let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(payload) else {
            return false;
        };
        match (map.get(field), &self.value) {
            (None, _) => false,
            (Some(_), None) => true,
            (Some(Value::String(s)), Some(want)) => s == want,
            (Some(v), Some(want)) => serde_json::from_str::<Value>(want).is_ok_and(|w| &w == v),
        }
    }
}

fn fill_params(s: &str, values: &BTreeMap<String, String>) -> String {
    let mut out = s.to_owned();
    for (k, v) in values {
        out = out.replace(&format!("{{{k}}}"), v);
    }
    out
}

/// Fills a template for a device; parameter errors are one sentence.
pub fn prepare(
    t: &Template,
    d: &DeviceDef,
    values: &BTreeMap<String, String>,
) -> Result<Prepared, crate::i18n::L10n> {
    for p in &t.params {
        let v = values.get(&p.name).ok_or_else(|| {
            crate::i18n::l(format!("{} is missing", p.name), format!("缺少 {}", p.name))
        })?;
        p.validate(v)?;
    }
    let fill = |s: &str| fill_params(&d.fill(s), values);
    Ok(Prepared {
        device: d.id.clone(),
        topic: fill(&t.topic),
        payload: fill(&t.payload),
        qos: t.qos.min(2),
        retain: t.retain,
        ack: t.ack.as_ref().map(|a| AckSpec {
            topic: fill(&a.topic),
            field: a.field.clone(),
            value: a.value.as_deref().map(fill),
            regex: a.regex.clone(),
        }),
        timeout: Duration::from_secs(t.timeout_secs.clamp(1, 3600)),
    })
}

/// The size of the PUBLISH packet a device receives: fixed header, topic, packet id, payload.
pub fn publish_packet_size(topic: &str, payload_len: usize, qos: u8) -> usize {
    let remaining = 2 + topic.len() + if qos > 0 { 2 } else { 0 } + payload_len;
    let len_bytes = match remaining {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    };
    1 + len_bytes + remaining
}

/// Why a command deserves a second look before it goes out.
pub fn warnings(p: &Prepared, t: &Template, d: &DeviceDef) -> Vec<L10n> {
    let mut w = Vec::new();
    let size = publish_packet_size(&p.topic, p.payload.len(), p.qos);
    if size > d.max_packet {
        w.push(L10n::new(
            format!(
                "The packet is {size} bytes; {} accepts at most {} (PubSubClient ignores larger packets without a word).",
                d.label(),
                d.max_packet
            ),
            format!(
                "报文 {size} 字节；{} 最多接收 {} 字节（PubSubClient 会静默丢弃更大的报文）。",
                d.label(),
                d.max_packet
            ),
        ));
    }
    if p.qos > d.max_qos {
        w.push(L10n::new(
            format!(
                "QoS {} to a device that subscribes with QoS {} at most: it receives it downgraded.",
                p.qos, d.max_qos
            ),
            format!(
                "以 QoS {} 发送给最多只能以 QoS {} 订阅的设备：设备收到的是降级后的消息。",
                p.qos, d.max_qos
            ),
        ));
    }
    if !t.user_properties.is_empty() && !d.mqtt5 {
        w.push(L10n::new(
            format!(
                "{} speaks MQTT 3.1.1: the template's MQTT 5 properties do not reach it.",
                d.label()
            ),
            format!(
                "{} 使用 MQTT 3.1.1：模板中的 MQTT 5 属性不会到达设备。",
                d.label()
            ),
        ));
    }
    if p.retain {
        w.push(L10n::new(
            "Retained: the broker keeps this command and the device runs it again after every reboot.",
            "保留消息：代理会保存此命令，设备每次重启后都会再执行一次。",
        ));
    }
    w
}

/// How a sent command ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The answer came, this long after the publish.
    Acknowledged { latency: Duration, payload: String },
    /// No answer within the timeout.
    TimedOut { after: Duration },
    /// Published; nothing to wait for.
    Sent,
}

struct Waiting {
    spec: AckSpec,
    tx: oneshot::Sender<String>,
}

/// Pending acknowledgements, matched against every incoming message.
#[derive(Clone, Default)]
pub struct AckTracker {
    waiting: Arc<Mutex<Vec<Waiting>>>,
}

impl AckTracker {
    /// Registers an expectation (before publishing, so a fast answer is not missed).
    pub fn expect(&self, spec: AckSpec) -> oneshot::Receiver<String> {
        let (tx, rx) = oneshot::channel();
        if let Ok(mut w) = self.waiting.lock() {
            w.retain(|x| !x.tx.is_closed());
            w.push(Waiting { spec, tx });
        }
        rx
    }

    /// A message arrived: it answers the oldest expectation it matches (one answer, one
    /// command: two quick LED commands are each acknowledged by their own reply).
    pub fn observe(&self, topic: &str, payload: &[u8]) {
        let Ok(mut w) = self.waiting.lock() else {
            return;
        };
        w.retain(|x| !x.tx.is_closed());
        if let Some(i) = w.iter().position(|x| x.spec.matches(topic, payload)) {
            let done = w.remove(i);
            done.tx
                .send(String::from_utf8_lossy(payload).into_owned())
                .ok();
        }
    }

    pub fn pending(&self) -> usize {
        self.waiting.lock().map(|w| w.len()).unwrap_or(0)
    }
}

/// Waits for the answer registered with [`AckTracker::expect`], from `sent`.
pub async fn wait(rx: oneshot::Receiver<String>, sent: Instant, timeout: Duration) -> Outcome {
    match tokio::time::timeout(timeout, rx).await {
        Ok(Ok(payload)) => Outcome::Acknowledged {
            latency: sent.elapsed(),
            payload,
        },
        _ => Outcome::TimedOut {
            after: sent.elapsed(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::config::{DeviceDef, esp8266_templates};

    #[test]
    fn templates_fill_and_acks_match() {
        let d = DeviceDef::esp8266("esp-1", "devices");
        let t = &esp8266_templates()[1];
        let mut v = BTreeMap::new();
        v.insert("interval_ms".to_owned(), "500".to_owned());
        let p = prepare(t, &d, &v).unwrap();
        assert_eq!(p.topic, "devices/esp-1/cmd");
        assert_eq!(p.payload, r#"{"interval_ms":500}"#);
        let ack = p.ack.unwrap();
        assert!(ack.matches("devices/esp-1/state", br#"{"interval_ms":500,"led":"on"}"#));
        assert!(!ack.matches("devices/esp-1/state", br#"{"interval_ms":1000}"#));
        assert!(!ack.matches("devices/esp-2/state", br#"{"interval_ms":500}"#));
        v.insert("interval_ms".to_owned(), "5".to_owned());
        assert!(prepare(t, &d, &v).unwrap_err().en.contains("between 200"));
        let reboot = prepare(&esp8266_templates()[2], &d, &BTreeMap::new()).unwrap();
        assert!(
            reboot
                .ack
                .unwrap()
                .matches("devices/esp-1/status", b"online")
        );
    }

    #[test]
    fn warnings_for_size_qos_and_retain() {
        let d = DeviceDef::esp8266("esp-1", "devices");
        let mut t = esp8266_templates()[0].clone();
        t.payload = format!(r#"{{"led":"{{state}}","pad":"{}"}}"#, "x".repeat(240));
        t.qos = 2;
        t.retain = true;
        let mut v = BTreeMap::new();
        v.insert("state".to_owned(), "on".to_owned());
        let p = prepare(&t, &d, &v).unwrap();
        let w = warnings(&p, &t, &d);
        assert_eq!(w.len(), 3, "{w:?}");
        assert!(w[0].en.contains("accepts at most 256"));
        assert_eq!(publish_packet_size("a/b", 10, 0), 1 + 1 + 2 + 3 + 10);
        assert_eq!(publish_packet_size("a", 200, 1), 1 + 2 + 2 + 1 + 2 + 200);
    }

    #[tokio::test]
    async fn tracker_answers_and_times_out() {
        let tr = AckTracker::default();
        let spec = AckSpec {
            topic: "t".into(),
            field: Some("led".into()),
            value: None,
            regex: None,
        };
        let rx = tr.expect(spec.clone());
        let rx2 = tr.expect(spec.clone());
        tr.observe("t", b"{}");
        assert_eq!(tr.pending(), 2);
        tr.observe("t", br#"{"led":"on"}"#);
        assert_eq!(tr.pending(), 1, "one reply answers one command");
        tr.observe("t", br#"{"led":"off"}"#);
        let out = wait(rx, Instant::now(), Duration::from_secs(1)).await;
        assert!(matches!(out, Outcome::Acknowledged { payload, .. } if payload.contains("on")));
        let out = wait(rx2, Instant::now(), Duration::from_secs(1)).await;
        assert!(matches!(out, Outcome::Acknowledged { payload, .. } if payload.contains("off")));
        let rx = tr.expect(spec);
        let out = wait(rx, Instant::now(), Duration::from_millis(50)).await;
        assert!(matches!(out, Outcome::TimedOut { .. }));
    }
}
