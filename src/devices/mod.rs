//! Devices: the roster (`config`, `roster`), command templates with acknowledgements
//! (`commands`), the demo flow a Mini Program runs (`flow`) and the simulated ESP8266 (`sim`),
//! all on the same topic layout:
//! `<prefix>/<id>/status` (retained `online`, last will `offline`), `<prefix>/<id>/telemetry`,
//! `<prefix>/<id>/cmd` and `<prefix>/<id>/state`.

pub mod commands;
pub mod config;
pub mod flow;
pub mod roster;
pub mod sim;

/// The four topics of a device under `prefix`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceTopics {
    pub status: String,
    pub telemetry: String,
    pub cmd: String,
    pub state: String,
}

impl DeviceTopics {
    pub fn new(prefix: &str, id: &str) -> Self {
        let base = format!("{}/{id}", prefix.trim_end_matches('/'));
        Self {
            status: format!("{base}/status"),
            telemetry: format!("{base}/telemetry"),
            cmd: format!("{base}/cmd"),
            state: format!("{base}/state"),
        }
    }
}

/// Which device topic a message is on: `(device id, kind)` for `<prefix>/<id>/<kind>`.
pub fn classify<'a>(prefix: &str, topic: &'a str) -> Option<(&'a str, TopicKind)> {
    let rest = topic
        .strip_prefix(prefix.trim_end_matches('/'))?
        .strip_prefix('/')?;
    let (id, kind) = rest.split_once('/')?;
    if id.is_empty() {
        return None;
    }
    let kind = match kind {
        "status" => TopicKind::Status,
        "telemetry" => TopicKind::Telemetry,
        "cmd" => TopicKind::Cmd,
        "state" => TopicKind::State,
        _ => return None,
    };
    Some((id, kind))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicKind {
    Status,
    Telemetry,
    Cmd,
    State,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_topics() {
        assert_eq!(
            classify("devices", "devices/esp8266-demo/telemetry"),
            Some(("esp8266-demo", TopicKind::Telemetry))
        );
        assert_eq!(
            classify("devices/", "devices/a/status"),
            Some(("a", TopicKind::Status))
        );
        assert_eq!(classify("devices", "devices//status"), None);
        assert_eq!(classify("devices", "devices/a/b/status"), None);
        assert_eq!(classify("devices", "other/a/status"), None);
        assert_eq!(classify("devices", "devicesx/a/status"), None);
    }
}
