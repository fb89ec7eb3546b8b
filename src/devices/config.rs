//! `devices.toml`: the roster (which devices, on which topics, with which limits), the
//! discovery pattern and the command templates. Absent: the sandbox's demo device and the
//! ESP8266 templates.
//!
//! ```toml
//! [discovery]
//! pattern = "devices/+/status"        # `+` is the device id
//!
//! [[device]]
//! id = "esp8266-demo"
//! name = "Demo board"
//! prefix = "devices"                  # topics: <prefix>/<id>/{status,telemetry,state,cmd}
//! kind = "esp8266"                    # which templates apply
//! max_packet = 256                    # PubSubClient's default buffer
//! max_qos = 1                         # PubSubClient subscribes with QoS 0 or 1
//! mqtt5 = false
//! plot = ["rssi", "free_heap", "temperature"]
//!
//! [[template]]
//! name = "LED"
//! kind = "esp8266"
//! topic = "{prefix}/{id}/cmd"
//! payload = '{"led":"{state}"}'
//! params = [{ name = "state", choices = ["on", "off", "toggle"] }]
//! ack = { topic = "{prefix}/{id}/state", field = "led" }
//! timeout_secs = 5
//! ```

use serde::{Deserialize, Serialize};

use crate::config::store::{ConfigFile, ParseError};

pub const DEFAULT_DISCOVERY: &str = "devices/+/status";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Discovery {
    pub pattern: String,
}

impl Default for Discovery {
    fn default() -> Self {
        Discovery {
            pattern: DEFAULT_DISCOVERY.into(),
        }
    }
}

/// One device: identity, topics and what its firmware can take.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceDef {
    pub id: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default = "default_prefix")]
    pub prefix: String,
    #[serde(default = "default_kind")]
    pub kind: String,
    /// Topic overrides; default `<prefix>/<id>/status|telemetry|state|cmd`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub availability: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub telemetry: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    #[serde(default = "default_online")]
    pub online_payload: String,
    #[serde(default = "default_offline")]
    pub offline_payload: String,
    /// Largest MQTT packet the device accepts (PubSubClient: 256).
    #[serde(default = "default_max_packet")]
    pub max_packet: usize,
    /// Highest QoS it can subscribe with (PubSubClient: 1).
    #[serde(default = "default_max_qos")]
    pub max_qos: u8,
    #[serde(default)]
    pub mqtt5: bool,
    /// Numeric telemetry fields to plot.
    #[serde(default = "default_plot")]
    pub plot: Vec<String>,
}

fn default_prefix() -> String {
    "devices".into()
}
fn default_kind() -> String {
    "esp8266".into()
}
fn default_online() -> String {
    "online".into()
}
fn default_offline() -> String {
    "offline".into()
}
fn default_max_packet() -> usize {
    256
}
fn default_max_qos() -> u8 {
    1
}
fn default_plot() -> Vec<String> {
    vec!["rssi".into(), "free_heap".into(), "temperature".into()]
}

impl DeviceDef {
    /// An ESP8266 with PubSubClient defaults.
    pub fn esp8266(id: &str, prefix: &str) -> Self {
        DeviceDef {
            id: id.to_owned(),
            name: String::new(),
            prefix: prefix.to_owned(),
            kind: default_kind(),
            availability: None,
            telemetry: None,
            state: None,
            command: None,
            online_payload: default_online(),
            offline_payload: default_offline(),
            max_packet: default_max_packet(),
            max_qos: default_max_qos(),
            mqtt5: false,
            plot: default_plot(),
        }
    }

    fn base(&self) -> String {
        format!("{}/{}", self.prefix.trim_end_matches('/'), self.id)
    }

    pub fn availability_topic(&self) -> String {
        self.availability
            .clone()
            .unwrap_or_else(|| format!("{}/status", self.base()))
    }
    pub fn telemetry_topic(&self) -> String {
        self.telemetry
            .clone()
            .unwrap_or_else(|| format!("{}/telemetry", self.base()))
    }
    pub fn state_topic(&self) -> String {
        self.state
            .clone()
            .unwrap_or_else(|| format!("{}/state", self.base()))
    }
    pub fn command_topic(&self) -> String {
        self.command
            .clone()
            .unwrap_or_else(|| format!("{}/cmd", self.base()))
    }

    pub fn label(&self) -> &str {
        if self.name.is_empty() {
            &self.id
        } else {
            &self.name
        }
    }

    /// `{id}` and `{prefix}` in a template string.
    pub fn fill(&self, s: &str) -> String {
        s.replace("{id}", &self.id)
            .replace("{prefix}", self.prefix.trim_end_matches('/'))
    }
}

/// A typed template parameter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Param {
    pub name: String,
    /// One of these values.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub choices: Vec<String>,
    /// An integer in this range (inclusive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<i64>,
    /// The value offered first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
}

impl Param {
    pub fn is_int(&self) -> bool {
        self.min.is_some() || self.max.is_some()
    }

    /// Checks a value; the error is one sentence.
    pub fn validate(&self, v: &str) -> Result<(), crate::i18n::L10n> {
        use crate::i18n::l;
        let name = &self.name;
        if !self.choices.is_empty() {
            if self.choices.iter().any(|c| c == v) {
                return Ok(());
            }
            return Err(l(
                format!("{name} must be one of {}", self.choices.join(", ")),
                format!("{name} 必须是以下之一：{}", self.choices.join("、")),
            ));
        }
        if self.is_int() {
            let n: i64 = v.trim().parse().map_err(|_| {
                l(
                    format!("{name} must be a whole number"),
                    format!("{name} 必须是整数"),
                )
            })?;
            let (lo, hi) = (self.min.unwrap_or(i64::MIN), self.max.unwrap_or(i64::MAX));
            if n < lo || n > hi {
                return Err(l(
                    format!("{name} must be between {lo} and {hi}"),
                    format!("{name} 必须在 {lo} 到 {hi} 之间"),
                ));
            }
        }
        Ok(())
    }

    pub fn initial(&self) -> String {
        self.default
            .clone()
            .or_else(|| self.choices.first().cloned())
            .or_else(|| self.min.map(|m| m.to_string()))
            .unwrap_or_default()
    }
}

/// What counts as the device's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AckDef {
    pub topic: String,
    /// A JSON field that must be present in the answer…
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// …and, if given, equal to this (placeholders allowed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Or: the payload matches this regular expression.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Template {
    pub name: String,
    #[serde(default = "default_kind")]
    pub kind: String,
    #[serde(default = "default_cmd_topic")]
    pub topic: String,
    pub payload: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub params: Vec<Param>,
    #[serde(default)]
    pub qos: u8,
    #[serde(default)]
    pub retain: bool,
    /// MQTT 5 user properties; a 3.1.1 device never sees them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub user_properties: Vec<(String, String)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ack: Option<AckDef>,
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
}

fn default_cmd_topic() -> String {
    "{prefix}/{id}/cmd".into()
}
fn default_timeout() -> u64 {
    5
}

/// The ESP8266 demo firmware's commands.
pub fn esp8266_templates() -> Vec<Template> {
    let state_ack = |field: &str, value: Option<&str>| {
        Some(AckDef {
            topic: "{prefix}/{id}/state".into(),
            field: Some(field.into()),
            value: value.map(str::to_owned),
            regex: None,
        })
    };
    vec![
        Template {
            name: "LED".into(),
            kind: default_kind(),
            topic: default_cmd_topic(),
            payload: r#"{"led":"{state}"}"#.into(),
            params: vec![Param {
                name: "state".into(),
                choices: vec!["on".into(), "off".into(), "toggle".into()],
                min: None,
                max: None,
                default: Some("toggle".into()),
            }],
            qos: 0,
            retain: false,
            user_properties: Vec::new(),
            ack: state_ack("led", None),
            timeout_secs: 5,
        },
        Template {
            name: "Telemetry interval".into(),
            kind: default_kind(),
            topic: default_cmd_topic(),
            payload: r#"{"interval_ms":{interval_ms}}"#.into(),
            params: vec![Param {
                name: "interval_ms".into(),
                choices: Vec::new(),
                min: Some(200),
                max: Some(3_600_000),
                default: Some("1000".into()),
            }],
            qos: 0,
            retain: false,
            user_properties: Vec::new(),
            ack: state_ack("interval_ms", Some("{interval_ms}")),
            timeout_secs: 5,
        },
        Template {
            name: "Reboot".into(),
            kind: default_kind(),
            topic: default_cmd_topic(),
            payload: r#"{"reboot":true}"#.into(),
            params: Vec::new(),
            qos: 0,
            retain: false,
            user_properties: Vec::new(),
            ack: Some(AckDef {
                topic: "{prefix}/{id}/status".into(),
                field: None,
                value: None,
                regex: Some("^online$".into()),
            }),
            timeout_secs: 15,
        },
    ]
}

/// The whole file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DevicesConfig {
    #[serde(default)]
    pub discovery: Discovery,
    #[serde(default, rename = "device")]
    pub devices: Vec<DeviceDef>,
    #[serde(default, rename = "template")]
    pub templates: Vec<Template>,
}

impl Default for DevicesConfig {
    fn default() -> Self {
        DevicesConfig {
            discovery: Discovery::default(),
            devices: vec![DeviceDef::esp8266("esp8266-demo", "devices")],
            templates: esp8266_templates(),
        }
    }
}

impl DevicesConfig {
    pub fn device(&self, id: &str) -> Option<&DeviceDef> {
        self.devices.iter().find(|d| d.id == id)
    }

    pub fn templates_for<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a Template> {
        self.templates.iter().filter(move |t| t.kind == kind)
    }

    fn validate(&self, text: &str) -> Result<(), ParseError> {
        let at = |needle: &str, msg: String| {
            ParseError::at(text, text.find(needle).map(|i| i..i + 1), msg)
        };
        if !crate::mqtt::topic::valid_filter(&self.discovery.pattern)
            || !self.discovery.pattern.contains('+')
        {
            return Err(at(
                &self.discovery.pattern,
                format!(
                    "discovery.pattern \"{}\" must be a topic filter with a + where the device id is",
                    self.discovery.pattern
                ),
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for d in &self.devices {
            if d.id.is_empty() || d.id.contains(['/', '+', '#']) {
                return Err(at(
                    &format!("\"{}\"", d.id),
                    format!("device id \"{}\" must be non-empty, without / + #", d.id),
                ));
            }
            if !seen.insert(d.id.clone()) {
                return Err(at(
                    &format!("\"{}\"", d.id),
                    format!("device id \"{}\" appears twice", d.id),
                ));
            }
            if d.max_qos > 2 {
                return Err(at(&d.id, format!("{}: max_qos must be 0, 1 or 2", d.id)));
            }
            if d.max_packet < 16 {
                return Err(at(
                    &d.id,
                    format!("{}: max_packet must be at least 16 bytes", d.id),
                ));
            }
        }
        for t in &self.templates {
            if t.qos > 2 {
                return Err(at(
                    &t.name,
                    format!("template \"{}\": qos must be 0, 1 or 2", t.name),
                ));
            }
            if let Some(a) = &t.ack
                && let Some(r) = &a.regex
                && let Err(e) = regex_lite::Regex::new(r)
            {
                return Err(at(r, format!("template \"{}\": ack.regex: {e}", t.name)));
            }
            for p in &t.params {
                if let (Some(lo), Some(hi)) = (p.min, p.max)
                    && lo > hi
                {
                    return Err(at(
                        &p.name,
                        format!("template \"{}\": {} has min > max", t.name, p.name),
                    ));
                }
            }
        }
        Ok(())
    }
}

impl ConfigFile for DevicesConfig {
    fn parse(text: &str) -> Result<Self, ParseError> {
        let cfg: DevicesConfig =
            toml::from_str(text).map_err(|e| ParseError::from_toml(text, &e))?;
        cfg.validate(text)?;
        Ok(cfg)
    }

    fn render(&self) -> String {
        toml::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_round_trip_and_errors_name_the_line() {
        let d = DevicesConfig::default();
        let text = d.render();
        assert_eq!(DevicesConfig::parse(&text).unwrap(), d);
        let e =
            DevicesConfig::parse("[[device]]\nid = \"a\"\n[[device]]\nid = \"a\"\n").unwrap_err();
        assert!(e.message.contains("appears twice"), "{e}");
        assert_eq!(e.line, Some(2));
        let e = DevicesConfig::parse("[[device]]\nid = \"a\"\nmax_pakcet = 5\n").unwrap_err();
        assert_eq!(e.line, Some(3));
        let e = DevicesConfig::parse("[discovery]\npattern = \"devices/#\"\n").unwrap_err();
        assert!(e.message.contains("with a +"), "{e}");
    }

    #[test]
    fn params_validate() {
        let t = &esp8266_templates()[1];
        assert!(t.params[0].validate("500").is_ok());
        assert!(t.params[0].validate("5").is_err());
        assert!(t.params[0].validate("x").is_err());
        let led = &esp8266_templates()[0];
        assert!(
            led.params[0]
                .validate("blink")
                .unwrap_err()
                .en
                .contains("on, off, toggle")
        );
    }
}
