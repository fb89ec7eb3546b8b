//! A string that must never reach a log, a `Debug` dump or an error message.

use serde::{Deserialize, Serialize};

/// A password or passphrase. `Debug` and `Display` print `MASKED`; only [`Secret::expose`]
/// gives the value, so every place that uses it is easy to find.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MASKED")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MASKED")
    }
}

/// The URL without `user:password@`, for logs, titles and reports.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.trim().split_once("://") else {
        return url.trim().to_owned();
    };
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    match rest[..end].rfind('@') {
        Some(at) => format!("{scheme}://{}", &rest[at + 1..]),
        None => url.trim().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_prints_the_value() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?} {s}"), "MASKED MASKED");
        #[derive(Debug)]
        #[allow(dead_code)]
        struct Profile {
            password: Secret,
        }
        let dump = format!(
            "{:?}",
            Profile {
                password: s.clone()
            }
        );
        assert!(!dump.contains("hunter2"), "{dump}");
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn serializes_transparently() {
        #[derive(Serialize, Deserialize)]
        struct W {
            p: Secret,
        }
        let text = toml::to_string(&W {
            p: Secret::new("x y"),
        })
        .unwrap();
        assert_eq!(text.trim(), "p = \"x y\"");
        let back: W = toml::from_str(&text).unwrap();
        assert_eq!(back.p.expose(), "x y");
    }
}
