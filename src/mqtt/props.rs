//! MQTT 5 publish properties in plain types: what a received message carried, what the
//! Publish form sends, and how both are shown and exported. rumqttc's own types stay here.

use base64::Engine as _;
use bytes::Bytes;
use rumqttc::v5::mqttbytes::v5::PublishProperties;

/// The publish properties of MQTT 5 (§3.3.2.3). All optional; empty means "none sent".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Props {
    /// Payload format indicator: `Some(true)` says the payload is UTF-8 text.
    pub payload_utf8: Option<bool>,
    pub message_expiry_secs: Option<u32>,
    pub content_type: Option<String>,
    pub response_topic: Option<String>,
    pub correlation_data: Option<Bytes>,
    pub user: Vec<(String, String)>,
    /// Which of our subscriptions matched (set by the broker, received only).
    pub subscription_ids: Vec<usize>,
    /// A received topic alias (rumqttc resolves the topic name itself).
    pub topic_alias: Option<u16>,
}

impl Props {
    pub fn is_empty(&self) -> bool {
        *self == Props::default()
    }

    /// The properties as rumqttc sends them (subscription ids and aliases are not ours to set).
    pub fn to_v5(&self) -> PublishProperties {
        PublishProperties {
            payload_format_indicator: self.payload_utf8.map(u8::from),
            message_expiry_interval: self.message_expiry_secs,
            topic_alias: None,
            response_topic: self.response_topic.clone(),
            correlation_data: self.correlation_data.clone(),
            user_properties: self.user.clone(),
            subscription_identifiers: Vec::new(),
            content_type: self.content_type.clone(),
        }
    }

    /// Rows for the payload view: (which property, value), in the order of the
    /// specification. The UI names them in its language.
    pub fn rows(&self) -> Vec<(PropName, String)> {
        let mut out = Vec::new();
        if let Some(u) = self.payload_utf8 {
            out.push((
                PropName::PayloadFormat,
                if u { "1 (UTF-8)" } else { "0 (bytes)" }.into(),
            ));
        }
        if let Some(e) = self.message_expiry_secs {
            out.push((PropName::MessageExpiry, e.to_string()));
        }
        if let Some(c) = &self.content_type {
            out.push((PropName::ContentType, c.clone()));
        }
        if let Some(r) = &self.response_topic {
            out.push((PropName::ResponseTopic, r.clone()));
        }
        if let Some(c) = &self.correlation_data {
            out.push((PropName::CorrelationData, text_or_hex(c)));
        }
        for (k, v) in &self.user {
            out.push((PropName::User(k.clone()), v.clone()));
        }
        if !self.subscription_ids.is_empty() {
            let ids: Vec<String> = self
                .subscription_ids
                .iter()
                .map(|i| i.to_string())
                .collect();
            out.push((PropName::SubscriptionIds, ids.join(", ")));
        }
        if let Some(a) = self.topic_alias {
            out.push((PropName::TopicAlias, a.to_string()));
        }
        out
    }

    /// A JSON object for exports: lossless (correlation data as UTF-8 or base64).
    pub fn to_json(&self) -> serde_json::Value {
        let mut m = serde_json::Map::new();
        if let Some(u) = self.payload_utf8 {
            m.insert("payload_format_indicator".into(), u8::from(u).into());
        }
        if let Some(e) = self.message_expiry_secs {
            m.insert("message_expiry_interval".into(), e.into());
        }
        if let Some(c) = &self.content_type {
            m.insert("content_type".into(), c.clone().into());
        }
        if let Some(r) = &self.response_topic {
            m.insert("response_topic".into(), r.clone().into());
        }
        if let Some(c) = &self.correlation_data {
            let v = match std::str::from_utf8(c) {
                Ok(s) => serde_json::json!({"encoding": "utf8", "data": s}),
                Err(_) => serde_json::json!({
                    "encoding": "base64",
                    "data": base64::engine::general_purpose::STANDARD.encode(c),
                }),
            };
            m.insert("correlation_data".into(), v);
        }
        if !self.user.is_empty() {
            // Pairs, not an object: MQTT allows the same key twice.
            let pairs: Vec<serde_json::Value> = self
                .user
                .iter()
                .map(|(k, v)| serde_json::json!([k, v]))
                .collect();
            m.insert("user_properties".into(), pairs.into());
        }
        if !self.subscription_ids.is_empty() {
            m.insert(
                "subscription_identifiers".into(),
                self.subscription_ids.clone().into(),
            );
        }
        serde_json::Value::Object(m)
    }
}

/// Which property a payload-view row shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PropName {
    PayloadFormat,
    /// Seconds.
    MessageExpiry,
    ContentType,
    ResponseTopic,
    CorrelationData,
    /// A user property with its key.
    User(String),
    SubscriptionIds,
    TopicAlias,
}

impl From<PublishProperties> for Props {
    fn from(p: PublishProperties) -> Self {
        Props {
            payload_utf8: p.payload_format_indicator.map(|f| f == 1),
            message_expiry_secs: p.message_expiry_interval,
            content_type: p.content_type,
            response_topic: p.response_topic,
            correlation_data: p.correlation_data,
            user: p.user_properties,
            subscription_ids: p.subscription_identifiers,
            topic_alias: p.topic_alias,
        }
    }
}

fn text_or_hex(b: &[u8]) -> String {
    match std::str::from_utf8(b) {
        Ok(s) if !s.chars().any(char::is_control) => s.to_owned(),
        _ => b
            .iter()
            .map(|x| format!("{x:02x}"))
            .collect::<Vec<_>>()
            .join(" "),
    }
}

/// User properties from the Publish form: one `key=value` per line (blank lines skipped).
pub fn parse_user_properties(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let (k, v) = line
            .split_once('=')
            .ok_or_else(|| format!("user property line {}: write key=value", n + 1))?;
        let k = k.trim();
        if k.is_empty() {
            return Err(format!("user property line {}: the key is empty", n + 1));
        }
        out.push((k.to_owned(), v.trim().to_owned()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_rows_and_json() {
        let p = Props {
            payload_utf8: Some(true),
            message_expiry_secs: Some(60),
            content_type: Some("application/json".into()),
            response_topic: Some("replies/console".into()),
            correlation_data: Some(Bytes::from_static(&[0xff, 0x01])),
            user: vec![("a".into(), "1".into()), ("a".into(), "2".into())],
            ..Default::default()
        };
        let back = Props::from(p.to_v5());
        assert_eq!(back, p);
        let rows = p.rows();
        assert!(rows.contains(&(PropName::CorrelationData, "ff 01".into())));
        assert_eq!(
            rows.iter()
                .filter(|(k, _)| *k == PropName::User("a".into()))
                .count(),
            2
        );
        let j = p.to_json();
        assert_eq!(j["correlation_data"]["encoding"], "base64");
        assert_eq!(j["correlation_data"]["data"], "/wE=");
        assert_eq!(j["user_properties"][1][1], "2");
        assert!(Props::default().is_empty() && !p.is_empty());
    }

    #[test]
    fn user_property_lines() {
        assert_eq!(
            parse_user_properties("a = 1\n\n b=x=y ").unwrap(),
            vec![("a".into(), "1".into()), ("b".into(), "x=y".into())]
        );
        assert!(
            parse_user_properties("novalue")
                .unwrap_err()
                .contains("line 1")
        );
        assert!(parse_user_properties("=v").unwrap_err().contains("empty"));
    }
}
