//! The one translation system. Everything a user reads exists in English and Simplified
//! Chinese, side by side where it is written:
//!
//! - the console's own words are a table in `ui/i18n.rs`, each key with its two languages on
//!   neighbouring lines (`ui::i18n::Tr`);
//! - domain code (verdicts, checks, connection errors) returns an [`L10n`]: one sentence in both
//!   languages, built where the facts are known, rendered later in the reader's [`Language`].
//!
//! Placeholders are named (`{path}`), filled by [`fill`]; the tests check that both languages
//! name the same placeholders and that no English sentence leaks into a Chinese one
//! ([`english_in_chinese`]).
//!
//! Why a table of our own rather than fluent (i18n-embed) or rust-i18n: two languages, a few
//! hundred strings, no plural rules beyond what a number in the sentence gives; a missing
//! translation is a compile error here, and nothing is looked up by string at run time.

use std::collections::BTreeSet;

use serde::Serialize;

pub use crate::config::Language;

/// A sentence in both languages the product speaks.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct L10n {
    pub en: String,
    pub zh: String,
}

impl L10n {
    pub fn new(en: impl Into<String>, zh: impl Into<String>) -> Self {
        L10n {
            en: en.into(),
            zh: zh.into(),
        }
    }

    /// The same text in both languages (names, paths, numbers).
    pub fn same(s: impl Into<String>) -> Self {
        let s = s.into();
        L10n {
            en: s.clone(),
            zh: s,
        }
    }

    pub fn get(&self, lang: Language) -> &str {
        match lang {
            Language::En => &self.en,
            Language::ZhCn => &self.zh,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.en.is_empty()
    }

    /// This sentence after a lead-in, in each language: `e.after("cannot connect: ", "无法连接：")`.
    pub fn after(&self, en: &str, zh: &str) -> L10n {
        L10n::new(format!("{en}{}", self.en), format!("{zh}{}", self.zh))
    }
}

/// One of two fixed texts, in `lang` (for words that need no [`L10n`] value).
pub fn pick<'a>(lang: Language, en: &'a str, zh: &'a str) -> &'a str {
    match lang {
        Language::En => en,
        Language::ZhCn => zh,
    }
}

/// An I/O failure in plain words, by its kind; the OS error code is kept.
pub fn io_error(e: &std::io::Error) -> L10n {
    use std::io::ErrorKind as K;
    let (en, zh) = match e.kind() {
        K::ConnectionRefused => (
            "connection refused: nothing listens on that port",
            "连接被拒绝：该端口没有服务在监听",
        ),
        K::ConnectionReset => ("the other side reset the connection", "连接被对方重置"),
        K::ConnectionAborted => ("the connection was aborted", "连接被中止"),
        K::NotConnected => ("not connected", "未连接"),
        K::TimedOut => ("timed out", "超时"),
        K::UnexpectedEof | K::BrokenPipe => {
            ("the other side closed the connection", "对方关闭了连接")
        }
        K::NotFound => ("no such file or folder", "文件或文件夹不存在"),
        K::PermissionDenied => ("permission denied", "没有权限"),
        K::AddrInUse => ("the address is already in use", "地址已被占用"),
        K::AddrNotAvailable => (
            "the address is not available on this computer",
            "本机没有该地址",
        ),
        K::HostUnreachable => ("no route to the host", "无法到达该主机"),
        K::NetworkUnreachable => ("the network is unreachable", "网络不可达"),
        K::AlreadyExists => ("it already exists", "已经存在"),
        K::IsADirectory => ("it is a folder, not a file", "这是文件夹，不是文件"),
        K::NotADirectory => ("it is not a folder", "这不是文件夹"),
        K::StorageFull => ("the disk is full", "磁盘已满"),
        K::ReadOnlyFilesystem => ("the file system is read-only", "文件系统是只读的"),
        K::InvalidData => ("the data is not valid", "数据无效"),
        _ => return quoted(&e.to_string()),
    };
    match e.raw_os_error() {
        Some(code) => L10n::new(
            format!("{en} (OS error {code})"),
            format!("{zh}（系统错误 {code}）"),
        ),
        None => L10n::new(en, zh),
    }
}

/// A failure we have no words for: the original text, quoted, in both languages.
pub fn quoted(original: &str) -> L10n {
    L10n::new(original, format!("出错了：“{original}”"))
}

/// Shorthand for [`L10n::new`].
pub fn l(en: impl Into<String>, zh: impl Into<String>) -> L10n {
    L10n::new(en, zh)
}

/// Replaces each `{name}` in `template` with the argument of that name. A placeholder
/// without an argument stays as it is (and fails a debug build, so tests find it).
pub fn fill(template: &str, args: &[(&str, &dyn std::fmt::Display)]) -> String {
    let mut out = String::with_capacity(template.len() + 16);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find('}') {
            Some(close) if is_name(&after[..close]) => {
                let name = &after[..close];
                match args.iter().find(|(n, _)| *n == name) {
                    Some((_, v)) => out.push_str(&v.to_string()),
                    None => {
                        debug_assert!(false, "no argument {{{name}}} for {template:?}");
                        out.push_str(&rest[open..open + close + 2]);
                    }
                }
                rest = &after[close + 1..];
            }
            _ => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

fn is_name(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_lowercase() || c == '_')
}

/// The placeholder names in a template.
pub fn placeholders(template: &str) -> BTreeSet<&str> {
    let mut names = BTreeSet::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        match after.find('}') {
            Some(close) if is_name(&after[..close]) => {
                names.insert(&after[..close]);
                rest = &after[close + 1..];
            }
            _ => rest = after,
        }
    }
    names
}

/// Small English words that make a run of ASCII words a sentence rather than a name.
const ENGLISH: &[&str] = &[
    "a", "an", "the", "is", "are", "was", "not", "no", "or", "and", "of", "to", "in", "on", "for",
    "with", "from", "by", "at", "be", "been", "cannot", "could", "did", "does", "has", "have",
    "it", "its", "this", "that", "there", "neither", "nor", "failed", "refused", "missing",
    "invalid", "expected", "found", "unknown", "only", "must", "should", "when", "while", "after",
    "before", "because", "but", "too", "than", "into", "as", "can", "will",
];

/// English that leaked into a Chinese sentence: three or more ASCII words in a row, one of them
/// a small English word (`is`, `not`, `the`, `failed`…). Identifiers, paths, URLs, protocol
/// names and header names (`Sec-WebSocket-Protocol`, `mqtt.js`, `wss://`, `proxy_http_version`)
/// are not words, so they pass. The leaking phrase, if any.
pub fn english_in_chinese(zh: &str) -> Option<String> {
    fn flush(run: &mut Vec<&str>, small: &mut usize) -> Option<String> {
        let found = (run.len() >= 3 && *small > 0).then(|| run.join(" "));
        run.clear();
        *small = 0;
        found
    }
    // Text in “…” is quoted from elsewhere (a server's own words, an unknown error): not ours.
    let mut ours = String::with_capacity(zh.len());
    let mut depth = 0usize;
    for c in zh.chars() {
        match c {
            '“' => depth += 1,
            '”' => depth = depth.saturating_sub(1),
            _ if depth == 0 => ours.push(c),
            _ => {}
        }
    }
    let mut run: Vec<&str> = Vec::new();
    let mut small = 0;
    for token in ours.split_whitespace() {
        let core = token.trim_start_matches('(');
        let word = core.trim_end_matches([',', ';', ':', '.', ')', '!', '?']);
        let is_word =
            !word.is_empty() && word.chars().all(|c| c.is_ascii_alphabetic() || c == '\'');
        if !is_word {
            if let Some(found) = flush(&mut run, &mut small) {
                return Some(found);
            }
            continue;
        }
        run.push(word);
        if ENGLISH.contains(&word.to_ascii_lowercase().as_str()) {
            small += 1;
        }
        // Punctuation after a word ends its sentence.
        if word.len() < core.len()
            && let Some(found) = flush(&mut run, &mut small)
        {
            return Some(found);
        }
    }
    flush(&mut run, &mut small)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_by_name_in_any_order() {
        assert_eq!(
            fill("{files} files, {size}", &[("size", &"1 MB"), ("files", &3)]),
            "3 files, 1 MB"
        );
        assert_eq!(fill("none", &[]), "none");
        assert_eq!(fill("a {b c} {", &[]), "a {b c} {");
        assert_eq!(
            placeholders("{a} and {b_c} {a} {Not}"),
            BTreeSet::from(["a", "b_c"])
        );
    }

    #[test]
    fn english_sentences_in_chinese_are_found_and_names_are_not() {
        assert_eq!(
            english_in_chinese("无法读取：garbage.pem is neither a PEM or DER certificate")
                .as_deref(),
            Some("is neither a PEM or DER certificate")
        );
        assert_eq!(
            english_in_chinese("TLS 握手失败：handshake failed with the server").as_deref(),
            Some("failed with the server")
        );
        for fine in [
            "请在 nginx 中设置 proxy_http_version 1.1 和 Upgrade、Connection 两个请求头",
            "没有提供 Sec-WebSocket-Protocol；MQTT over WebSocket 需要 `mqtt`",
            "证书由 Let's Encrypt R3 签发",
            "DigiCert Global Root CA 不在微信信任的根证书中",
            "连接 wss://example.com:443/mqtt 失败",
            "mqtt.js 的 wx 传输",
            "出错了：“the peer is not happy with the thing”",
        ] {
            assert_eq!(english_in_chinese(fine), None, "{fine}");
        }
    }
}
