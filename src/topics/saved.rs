//! Saved payloads for the Topics panel's publish form (`payloads.json` in the config folder).

use serde::{Deserialize, Serialize};

use crate::config::store::{ConfigFile, ParseError};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SavedPayload {
    pub name: String,
    pub topic: String,
    pub payload: String,
    /// `text`, `json`, `hex` or `base64`.
    #[serde(default = "text")]
    pub kind: String,
    #[serde(default)]
    pub qos: u8,
    #[serde(default)]
    pub retain: bool,
}

fn text() -> String {
    "text".into()
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SavedPayloads {
    #[serde(default)]
    pub items: Vec<SavedPayload>,
}

impl ConfigFile for SavedPayloads {
    fn parse(text: &str) -> Result<Self, ParseError> {
        let s: SavedPayloads = serde_json::from_str(text).map_err(|e| ParseError {
            line: Some(e.line()),
            message: e.to_string(),
        })?;
        if let Some(bad) = s.items.iter().find(|i| i.qos > 2) {
            return Err(ParseError {
                line: None,
                message: format!("\"{}\": qos must be 0, 1 or 2", bad.name),
            });
        }
        Ok(s)
    }

    fn render(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}
