//! A broker's certificate refused while connecting: fetch the chain the broker serves and
//! judge it with the certificate verdicts (the same ones the Certificates panel and
//! `mpbridge cert fetch` show), so the error names the exact problem — "the server sends the
//! leaf without its intermediate (CERT-CHAIN-COMPLETE)" rather than "unknown issuer".

use std::time::Duration;

use crate::certs::{Request, Trust};
use crate::verdict::{L10n, Status};

/// How to look at a broker's certificate the way its profile trusts it.
#[derive(Debug, Clone)]
pub struct TlsProbe {
    /// `host:port` of the broker.
    pub addr: String,
    /// The server name presented (an override, or the URL's host).
    pub sni: Option<String>,
    /// The name the certificate must cover.
    pub domain: String,
    pub trust: Trust,
}

/// The verdicts worth naming when a handshake failed, most specific first.
const ORDER: [&str; 6] = [
    "CERT-CHAIN-COMPLETE",
    "CERT-NAME",
    "CERT-DATES",
    "CERT-USAGE",
    "CERT-SELF-SIGNED",
    "CERT-TRUST",
];

/// How long fetching and judging the chain may take.
pub const DIAGNOSE_WITHIN: Duration = Duration::from_secs(4);

/// The failed verdict that explains the refusal, in both languages; `None` when the chain
/// cannot be fetched or no verdict fails (the handshake's own words stand then).
pub async fn diagnose(target: &str, probe: &TlsProbe) -> Option<L10n> {
    let req = Request {
        domain: Some(probe.domain.clone()),
        trust: probe.trust.clone(),
        at: None,
    };
    let report =
        crate::certs::fetch::fetch_report(&probe.addr, probe.sni.as_deref(), req, DIAGNOSE_WITHIN)
            .await
            .ok()?;
    // A chain that reaches an intermediate and stops there is missing only its root: that is
    // a trust question (CERT-TRUST), not a server leaving out a certificate.
    let served_intermediate = report
        .chain
        .iter()
        .any(|c| c.role == crate::certs::Role::Intermediate);
    let f = ORDER
        .iter()
        .filter(|id| !(served_intermediate && **id == "CERT-CHAIN-COMPLETE"))
        .filter_map(|id| report.finding(id))
        .find(|f| f.status == Status::Fail)?;
    Some(L10n::new(
        format!(
            "{target}: the TLS handshake failed: {} ({}). {}",
            f.detail.en, f.id, f.remedy.en
        ),
        format!(
            "{target}：TLS 握手失败：{}（{}）。{}",
            f.detail.zh, f.id, f.remedy.zh
        ),
    ))
}
