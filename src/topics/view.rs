//! Payload views (JSON pretty-printed, UTF-8 text, hex dump, base64) and a line diff with the
//! previous message on the same topic.

use base64::Engine as _;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// JSON when it parses, else text when it is UTF-8, else hex.
    #[default]
    Auto,
    Json,
    Text,
    Hex,
    Base64,
}

impl Format {
    pub const ALL: [Format; 5] = [
        Format::Auto,
        Format::Json,
        Format::Text,
        Format::Hex,
        Format::Base64,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Format::Auto => "auto",
            Format::Json => "JSON",
            Format::Text => "text",
            Format::Hex => "hex",
            Format::Base64 => "base64",
        }
    }
}

/// A hex dump: offset, 16 bytes, their ASCII.
pub fn hex_dump(b: &[u8]) -> String {
    let mut out = String::with_capacity(b.len() * 4 + 16);
    for (i, chunk) in b.chunks(16).enumerate() {
        out.push_str(&format!("{:08x}  ", i * 16));
        for j in 0..16 {
            match chunk.get(j) {
                Some(x) => out.push_str(&format!("{x:02x} ")),
                None => out.push_str("   "),
            }
            if j == 7 {
                out.push(' ');
            }
        }
        out.push(' ');
        out.extend(chunk.iter().map(|&c| {
            if (0x20..0x7f).contains(&c) {
                c as char
            } else {
                '.'
            }
        }));
        out.push('\n');
    }
    out
}

/// Up to `max` bytes as one line of text: control characters as spaces, bytes that are not
/// UTF-8 as `.` (as a hex dump's column shows them; no font draws U+FFFD everywhere).
pub fn preview(b: &[u8], max: usize) -> String {
    String::from_utf8_lossy(&b[..b.len().min(max)])
        .chars()
        .map(|c| match c {
            '\u{FFFD}' => '.',
            c if c.is_control() => ' ',
            c => c,
        })
        .collect()
}

/// The payload rendered in `format`; `Auto` says which it picked.
pub fn render(b: &[u8], format: Format) -> (Format, String) {
    match format {
        Format::Auto => {
            if let Ok(v) = serde_json::from_slice::<serde_json::Value>(b)
                && (v.is_object() || v.is_array())
            {
                return (
                    Format::Json,
                    serde_json::to_string_pretty(&v).unwrap_or_default(),
                );
            }
            match std::str::from_utf8(b) {
                Ok(s) => (Format::Text, s.to_owned()),
                Err(_) => (Format::Hex, hex_dump(b)),
            }
        }
        Format::Json => match serde_json::from_slice::<serde_json::Value>(b) {
            Ok(v) => (
                Format::Json,
                serde_json::to_string_pretty(&v).unwrap_or_default(),
            ),
            Err(e) => (Format::Json, format!("not JSON: {e}")),
        },
        Format::Text => (
            Format::Text,
            String::from_utf8_lossy(b).replace('\u{FFFD}', "."),
        ),
        Format::Hex => (Format::Hex, hex_dump(b)),
        Format::Base64 => (
            Format::Base64,
            base64::engine::general_purpose::STANDARD.encode(b),
        ),
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiffLine {
    Same(String),
    Added(String),
    Removed(String),
}

/// Line diff (longest common subsequence); `None` when the texts are too long to compare
/// within a frame.
pub fn diff(old: &str, new: &str) -> Option<Vec<DiffLine>> {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    if a.len() * b.len() > 250_000 {
        return None;
    }
    let (n, m) = (a.len(), b.len());
    let mut lcs = vec![0u32; (n + 1) * (m + 1)];
    let at = |i: usize, j: usize| i * (m + 1) + j;
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[at(i, j)] = if a[i] == b[j] {
                lcs[at(i + 1, j + 1)] + 1
            } else {
                lcs[at(i + 1, j)].max(lcs[at(i, j + 1)])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::new();
    while i < n && j < m {
        if a[i] == b[j] {
            out.push(DiffLine::Same(a[i].to_owned()));
            i += 1;
            j += 1;
        } else if lcs[at(i + 1, j)] >= lcs[at(i, j + 1)] {
            out.push(DiffLine::Removed(a[i].to_owned()));
            i += 1;
        } else {
            out.push(DiffLine::Added(b[j].to_owned()));
            j += 1;
        }
    }
    out.extend(a[i..].iter().map(|l| DiffLine::Removed((*l).to_owned())));
    out.extend(b[j..].iter().map(|l| DiffLine::Added((*l).to_owned())));
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(render(br#"{"a":1}"#, Format::Auto).0, Format::Json);
        assert!(render(br#"{"a":1}"#, Format::Auto).1.contains("\"a\": 1"));
        assert_eq!(
            render(b"hello", Format::Auto),
            (Format::Text, "hello".into())
        );
        assert_eq!(render(&[0xff, 0x00], Format::Auto).0, Format::Hex);
        assert_eq!(
            hex_dump(b"AB\x00"),
            "00000000  41 42 00                                          AB.\n"
        );
        assert_eq!(render(b"hi", Format::Base64).1, "aGk=");
        // Bytes that are not UTF-8 never reach a font as U+FFFD.
        assert_eq!(render(&[b'a', 0xff, 0xfe], Format::Text).1, "a..");
        assert_eq!(preview(&[0xff, 0xfe, 0xbe, 0xff, b'\n', b'x'], 5), ".... ");
        assert_eq!(preview("温度=21".as_bytes(), 64), "温度=21");
    }

    #[test]
    fn line_diff() {
        let d = diff("a\nb\nc", "a\nx\nc").unwrap();
        assert_eq!(
            d,
            vec![
                DiffLine::Same("a".into()),
                DiffLine::Removed("b".into()),
                DiffLine::Added("x".into()),
                DiffLine::Same("c".into()),
            ]
        );
    }
}
