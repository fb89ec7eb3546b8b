//! Renderings of a check report: plain text for the terminal, Markdown for issues and wikis.

use std::fmt::Write as _;

use super::{CheckStatus, Report};
use crate::i18n::Language;

fn tag(s: CheckStatus) -> &'static str {
    match s {
        CheckStatus::Pass => "PASS",
        CheckStatus::Warn => "WARN",
        CheckStatus::Fail => "FAIL",
        CheckStatus::Manual => "TODO",
        CheckStatus::Skipped => "SKIP",
    }
}

/// One check as terminal lines (printed live as the run goes).
pub fn line(c: &super::Check, lang: Language) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "  {} {:<22} {:>6} ms  {}",
        tag(c.status),
        c.id,
        c.elapsed_ms,
        c.detail.get(lang)
    );
    if let Some(s) = &c.source {
        let _ = writeln!(o, "       {:<22}            {s}", "");
    }
    if !c.remedy.is_empty() && c.status != CheckStatus::Pass {
        let _ = writeln!(o, "       {:<22}            → {}", "", c.remedy.get(lang));
    }
    o
}

pub fn header(target: &str, lang: Language) -> String {
    format!("{} {target}\n", crate::i18n::pick(lang, "Checking", "检查"))
}

/// The whole report as text.
pub fn text(r: &Report, lang: Language) -> String {
    let mut o = header(&r.target, lang);
    for c in &r.checks {
        o.push_str(&line(c, lang));
    }
    o.push_str(&footer(r, lang));
    o
}

/// The summary and the snippet.
pub fn footer(r: &Report, lang: Language) -> String {
    let mut o = String::new();
    let s = &r.summary;
    let _ = writeln!(
        o,
        "{}: {} pass, {} warn, {} fail, {} manual, {} skipped",
        crate::i18n::pick(lang, "Summary", "合计"),
        s.pass,
        s.warn,
        s.fail,
        s.manual,
        s.skipped
    );
    if let Some(sn) = &r.snippet {
        let _ = writeln!(
            o,
            "\n{}\n{sn}",
            crate::i18n::pick(lang, "For the Mini Program:", "小程序代码：")
        );
    }
    o
}

fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

pub fn markdown(r: &Report, lang: Language) -> String {
    let mut o = String::new();
    let s = &r.summary;
    let _ = writeln!(
        o,
        "# {} {}\n",
        crate::i18n::pick(lang, "Mini Program compliance:", "小程序合规检查："),
        r.target
    );
    let _ = writeln!(
        o,
        "{} · {} pass · {} warn · {} fail · {} manual · {} skipped\n",
        r.started, s.pass, s.warn, s.fail, s.manual, s.skipped
    );
    let _ = writeln!(
        o,
        "| {} | id | {} | {} | {} | ms |\n|---|---|---|---|---|---|",
        crate::i18n::pick(lang, "status", "结果"),
        crate::i18n::pick(lang, "rule", "规则"),
        crate::i18n::pick(lang, "detail", "详情"),
        crate::i18n::pick(lang, "fix", "修复"),
    );
    for c in &r.checks {
        let detail = match &c.source {
            Some(src) => format!("{} (`{src}`)", c.detail.get(lang)),
            None => c.detail.get(lang).to_owned(),
        };
        let _ = writeln!(
            o,
            "| {} | `{}` | {} | {} | {} | {} |",
            c.status.as_str(),
            c.id,
            cell(c.title.get(lang)),
            cell(&detail),
            cell(c.remedy.get(lang)),
            c.elapsed_ms
        );
    }
    if let Some(w) = &r.whitelist {
        let _ = writeln!(
            o,
            "\n{}`{w}`",
            crate::i18n::pick(lang, "socket合法域名 entry:", "socket合法域名：")
        );
    }
    if let Some(sn) = &r.snippet {
        let _ = writeln!(o, "\n```js\n{sn}```");
    }
    o
}
