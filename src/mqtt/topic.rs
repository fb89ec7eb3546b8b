//! MQTT topic filters (MQTT 3.1.1 §4.7, MQTT 5 §4.7): `+` matches one level, `#` the rest
//! (including the parent level), and wildcards at the first level never match topics that
//! start with `$` (`$SYS/...`).

/// Does `filter` match `topic`?
pub fn matches(filter: &str, topic: &str) -> bool {
    captures(filter, topic).is_some()
}

/// The levels matched by each `+` of `filter`, in order, when it matches `topic`.
pub fn captures<'t>(filter: &str, topic: &'t str) -> Option<Vec<&'t str>> {
    if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return None;
    }
    let mut caps = Vec::new();
    let mut f = filter.split('/');
    let mut t = topic.split('/');
    loop {
        match (f.next(), t.next()) {
            (Some("#"), _) => return Some(caps),
            (Some("+"), Some(level)) => caps.push(level),
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return Some(caps),
            _ => return None,
        }
    }
}

/// A filter is valid when `#` is last and alone in its level and `+` is alone in its level.
pub fn valid_filter(filter: &str) -> bool {
    if filter.is_empty() {
        return false;
    }
    let levels: Vec<&str> = filter.split('/').collect();
    levels.iter().enumerate().all(|(i, l)| {
        (*l == "#" && i == levels.len() - 1) || *l == "+" || (!l.contains('#') && !l.contains('+'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_per_the_spec() {
        assert!(matches("sport/tennis/player1/#", "sport/tennis/player1"));
        assert!(matches(
            "sport/tennis/player1/#",
            "sport/tennis/player1/score/wimbledon"
        ));
        assert!(matches("sport/#", "sport"));
        assert!(matches("#", "a/b"));
        assert!(matches("+/+", "/finance"));
        assert!(matches("/+", "/finance"));
        assert!(!matches("+", "/finance"));
        assert!(matches("sport/+/player1", "sport/tennis/player1"));
        assert!(!matches("sport/+", "sport/tennis/player1"));
        assert!(matches("sport/+", "sport/"));
        assert!(!matches("#", "$SYS/broker/uptime"));
        assert!(!matches("+/monitor", "$SYS/monitor"));
        assert!(matches("$SYS/#", "$SYS/broker/uptime"));
        assert!(matches("$SYS/+/uptime", "$SYS/broker/uptime"));
        assert_eq!(
            captures("devices/+/status", "devices/esp-1/status"),
            Some(vec!["esp-1"])
        );
        assert!(!matches("devices/+/status", "devices/a/b/status"));
    }

    #[test]
    fn filter_validity() {
        for ok in ["#", "a/#", "+/b", "a/+/c", "/"] {
            assert!(valid_filter(ok), "{ok}");
        }
        for bad in ["", "a/#/c", "a#", "a/b+", "#/a"] {
            assert!(!valid_filter(bad), "{bad}");
        }
    }
}
