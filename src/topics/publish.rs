//! What the Publish form sends, as data: a payload typed as text, JSON, hex or base64 turned
//! into bytes, and MQTT 5 properties typed as text turned into `mqtt::Props`. No UI here.

use crate::i18n::{L10n, l};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PayloadKind {
    #[default]
    Text,
    Json,
    Hex,
    Base64,
}

impl PayloadKind {
    pub fn code(self) -> &'static str {
        match self {
            PayloadKind::Text => "text",
            PayloadKind::Json => "json",
            PayloadKind::Hex => "hex",
            PayloadKind::Base64 => "base64",
        }
    }

    pub fn from_code(s: &str) -> Self {
        match s {
            "json" => PayloadKind::Json,
            "hex" => PayloadKind::Hex,
            "base64" => PayloadKind::Base64,
            _ => PayloadKind::Text,
        }
    }

    pub const ALL: [PayloadKind; 4] = [
        PayloadKind::Text,
        PayloadKind::Json,
        PayloadKind::Hex,
        PayloadKind::Base64,
    ];

    pub fn name(self) -> &'static str {
        match self {
            PayloadKind::Text => "text",
            PayloadKind::Json => "JSON",
            PayloadKind::Hex => "hex",
            PayloadKind::Base64 => "base64",
        }
    }

    /// The bytes to publish, or why not.
    pub fn encode(self, s: &str) -> Result<Vec<u8>, L10n> {
        use base64::Engine as _;
        match self {
            PayloadKind::Text => Ok(s.as_bytes().to_vec()),
            PayloadKind::Json => serde_json::from_str::<serde_json::Value>(s)
                .map(|_| s.as_bytes().to_vec())
                .map_err(|e| l(format!("not JSON: {e}"), format!("不是 JSON（“{e}”）"))),
            PayloadKind::Hex => {
                let clean: String = s.chars().filter(|c| !c.is_whitespace()).collect();
                if let Some(c) = clean.chars().find(|c| !c.is_ascii_hexdigit()) {
                    return Err(l(
                        format!("\"{c}\" is not a hex digit"),
                        format!("“{c}”不是十六进制数字"),
                    ));
                }
                if !clean.len().is_multiple_of(2) {
                    return Err(l(
                        "hex needs an even number of digits",
                        "十六进制需要偶数个数字",
                    ));
                }
                // All ASCII hex digits now: two bytes are two digits.
                Ok(clean
                    .as_bytes()
                    .chunks(2)
                    .map(|d| {
                        let v = |c: u8| (c as char).to_digit(16).unwrap_or(0) as u8;
                        v(d[0]) << 4 | v(d[1])
                    })
                    .collect())
            }
            PayloadKind::Base64 => base64::engine::general_purpose::STANDARD
                .decode(s.trim())
                .map_err(|e| l(format!("not base64: {e}"), format!("不是 base64（“{e}”）"))),
        }
    }
}

/// The Publish form's MQTT 5 properties, as typed.
#[derive(Debug, Clone, Default)]
pub struct Props5Form {
    pub content_type: String,
    pub response_topic: String,
    /// Sent as UTF-8 text.
    pub correlation: String,
    pub expiry_secs: String,
    /// `key=value` per line.
    pub user: String,
    pub utf8: bool,
}

impl Props5Form {
    /// The properties to send (`None`: none set), or why the form is wrong.
    pub fn build(&self) -> Result<Option<crate::mqtt::Props>, L10n> {
        let opt = |s: &str| Some(s.trim().to_owned()).filter(|x| !x.is_empty());
        let expiry = match self.expiry_secs.trim() {
            "" => None,
            x => Some(x.parse::<u32>().map_err(|_| {
                l(
                    format!("message expiry: \"{x}\" is not a number of seconds"),
                    format!("消息过期时间：“{x}”不是秒数"),
                )
            })?),
        };
        let response_topic = opt(&self.response_topic);
        if let Some(r) = &response_topic
            && r.contains(['+', '#'])
        {
            return Err(l(
                "the response topic cannot hold wildcards",
                "响应主题不能包含通配符",
            ));
        }
        let p = crate::mqtt::Props {
            payload_utf8: self.utf8.then_some(true),
            message_expiry_secs: expiry,
            content_type: opt(&self.content_type),
            response_topic,
            correlation_data: opt(&self.correlation).map(bytes::Bytes::from),
            user: crate::mqtt::props::parse_user_properties(&self.user)
                .map_err(|e| l(e.clone(), format!("用户属性有误（“{e}”）")))?,
            ..Default::default()
        };
        Ok(Some(p).filter(|p| !p.is_empty()))
    }
}
