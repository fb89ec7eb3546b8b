//! Renderings of a check report: plain text for the terminal, Markdown for issues and wikis.

use std::fmt::Write as _;

use super::{CheckStatus, Report};

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
pub fn line(c: &super::Check, zh: bool) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "  {} {:<22} {:>6} ms  {}",
        tag(c.status),
        c.id,
        c.elapsed_ms,
        c.detail.get(zh)
    );
    if let Some(s) = &c.source {
        let _ = writeln!(o, "       {:<22}            {s}", "");
    }
    if !c.remedy.is_empty() && c.status != CheckStatus::Pass {
        let _ = writeln!(o, "       {:<22}            → {}", "", c.remedy.get(zh));
    }
    o
}

pub fn header(target: &str, zh: bool) -> String {
    format!("{} {target}\n", if zh { "检查" } else { "Checking" })
}

/// The whole report as text.
pub fn text(r: &Report, zh: bool) -> String {
    let mut o = header(&r.target, zh);
    for c in &r.checks {
        o.push_str(&line(c, zh));
    }
    o.push_str(&footer(r, zh));
    o
}

/// The summary and the snippet.
pub fn footer(r: &Report, zh: bool) -> String {
    let mut o = String::new();
    let s = &r.summary;
    let _ = writeln!(
        o,
        "{}: {} pass, {} warn, {} fail, {} manual, {} skipped",
        if zh { "合计" } else { "Summary" },
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
            if zh {
                "小程序代码："
            } else {
                "For the Mini Program:"
            }
        );
    }
    o
}

fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

pub fn markdown(r: &Report, zh: bool) -> String {
    let mut o = String::new();
    let s = &r.summary;
    let _ = writeln!(
        o,
        "# {} {}\n",
        if zh {
            "小程序合规检查："
        } else {
            "Mini Program compliance:"
        },
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
        if zh { "结果" } else { "status" },
        if zh { "规则" } else { "rule" },
        if zh { "详情" } else { "detail" },
        if zh { "修复" } else { "fix" },
    );
    for c in &r.checks {
        let detail = match &c.source {
            Some(src) => format!("{} (`{src}`)", c.detail.get(zh)),
            None => c.detail.get(zh).to_owned(),
        };
        let _ = writeln!(
            o,
            "| {} | `{}` | {} | {} | {} | {} |",
            c.status.as_str(),
            c.id,
            cell(c.title.get(zh)),
            cell(&detail),
            cell(c.remedy.get(zh)),
            c.elapsed_ms
        );
    }
    if let Some(w) = &r.whitelist {
        let _ = writeln!(
            o,
            "\n{}`{w}`",
            if zh {
                "socket合法域名："
            } else {
                "socket合法域名 entry:"
            }
        );
    }
    if let Some(sn) = &r.snippet {
        let _ = writeln!(o, "\n```js\n{sn}```");
    }
    o
}
