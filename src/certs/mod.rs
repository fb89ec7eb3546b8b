//! Certificates: open what users have, inspect every certificate, judge the set with stable
//! verdicts (`CERT-*`), fetch what a server presents, and build a correct `fullchain.pem`.
//!
//! - `open`: files, zips and PKCS#12 → [`Opened`] (certificates, keys, one-sentence errors);
//! - `info`: one certificate → [`CertInfo`];
//! - this module: the set → [`Report`] (chain with who signed whom, findings, repair plan);
//! - `fetch`: a live server's chain as served;
//! - `repair`: writing `fullchain.pem` and the key.
//!
//! No egui here: the panel and the CLI both print a [`Report`].

pub mod fetch;
pub mod info;
pub mod keys;
pub mod open;
pub mod pem;
pub mod repair;
pub mod tls_words;
mod verdicts;

use std::time::Duration;

use rustls_pki_types::{CertificateDer, TrustAnchor, UnixTime};
use serde::Serialize;
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer as _;
use x509_parser::x509::{SubjectPublicKeyInfo, X509Name};

pub use info::CertInfo;
pub use keys::KeyDesc;
pub use open::{OpenError, Opened};

use crate::verdict::{Finding, L10n, Status};

/// The stable ids, in the order they are reported.
pub const CERT_IDS: [&str; 10] = [
    "CERT-PARSE",
    "CERT-KEY-MATCH",
    "CERT-NAME",
    "CERT-DATES",
    "CERT-CHAIN-ORDER",
    "CERT-CHAIN-COMPLETE",
    "CERT-TRUST",
    "CERT-SELF-SIGNED",
    "CERT-STRENGTH",
    "CERT-USAGE",
];

/// Whom to trust when judging a chain.
#[derive(Debug, Clone)]
pub struct Trust {
    /// The public roots WeChat and browsers ship: webpki-roots (Mozilla's list).
    pub public: Vec<TrustAnchor<'static>>,
    /// Private CAs the user supplied (`--ca`): judged, named, but never "public".
    pub extra: Vec<CertificateDer<'static>>,
    /// Also ask the operating system's verifier (its own store).
    pub os_store: bool,
}

impl Default for Trust {
    fn default() -> Self {
        Trust {
            public: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            extra: Vec::new(),
            os_store: true,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Request {
    /// The domain the certificate must cover (CERT-NAME); `None` skips that verdict.
    pub domain: Option<String>,
    pub trust: Trust,
    /// Unix seconds to judge at; `None` is now.
    pub at: Option<i64>,
}

/// How a certificate relates to the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Leaf,
    Intermediate,
    Root,
    /// Not part of the leaf's chain.
    Unrelated,
}

#[derive(Debug, Clone, Serialize)]
pub struct ChainEntry {
    /// Position in the order given (the file, or as served), from 0.
    pub index: usize,
    pub role: Role,
    /// Which entry signed this one (its `index`), when it is in the set.
    pub signed_by: Option<usize>,
    /// The issuer's name when the issuer is outside the set: a public root, a supplied CA, or
    /// missing.
    pub issuer_found: IssuerFound,
    #[serde(flatten)]
    pub info: CertInfo,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "name", rename_all = "snake_case")]
pub enum IssuerFound {
    /// Signed by another certificate of the set (see `signed_by`).
    InSet,
    /// Self-signed.
    Itself,
    PublicRoot(String),
    SuppliedCa(String),
    Missing,
}

/// What was negotiated with a live server (`cert fetch`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Served {
    pub target: String,
    /// The SNI sent, if any (none for an IP address).
    pub sni: Option<String>,
    pub tls_version: String,
    pub cipher: String,
    pub alpn: Option<String>,
}

/// How to build a correct `fullchain.pem` from what was opened.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum RepairPlan {
    /// Certificate indexes (given order) for fullchain.pem, leaf first, root left out; the
    /// index of the key that belongs to the leaf; what differs from what was given.
    Ready {
        order: Vec<usize>,
        key: Option<usize>,
        changes: Vec<L10n>,
    },
    /// It cannot be built from what was given, and why.
    Impossible { reason: L10n },
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub chain: Vec<ChainEntry>,
    pub findings: Vec<Finding>,
    pub notes: Vec<L10n>,
    /// The key that belongs to the leaf, if one was opened.
    pub key: Option<KeyDesc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub served: Option<Served>,
    pub repair: RepairPlan,
    /// The domain judged, if any.
    pub domain: Option<String>,
}

impl Report {
    pub fn finding(&self, id: &str) -> Option<&Finding> {
        self.findings.iter().find(|f| f.id == id)
    }

    pub fn worst(&self) -> Status {
        crate::verdict::worst(&self.findings)
    }

    /// The CLI's exit code: 2 when nothing could be read, 1 when a verdict fails, else 0.
    pub fn exit_code(&self) -> u8 {
        if self.chain.is_empty() {
            2
        } else if self.findings.iter().any(|f| f.status == Status::Fail) {
            1
        } else {
            0
        }
    }
}

/// One parsed certificate and what is known about its place in the set.
struct Node<'a> {
    cert: X509Certificate<'a>,
    info: CertInfo,
}

/// A trust anchor parsed for name matching and signature checks.
struct Anchor {
    name: String,
    subject: Vec<u8>,
    spki_der: Vec<u8>,
}

fn wrap_sequence(content: &[u8]) -> Vec<u8> {
    let mut out = vec![0x30];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .iter()
            .copied()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

fn anchor_of(ta: &TrustAnchor<'_>) -> Anchor {
    let subject = wrap_sequence(ta.subject.as_ref());
    let name = X509Name::from_der(&subject)
        .map(|(_, n)| display_name(&n))
        .unwrap_or_else(|_| "?".into());
    Anchor {
        name,
        subject,
        spki_der: wrap_sequence(ta.subject_public_key_info.as_ref()),
    }
}

impl Anchor {
    fn issued(&self, cert: &X509Certificate<'_>) -> bool {
        if cert.issuer().as_raw() != self.subject.as_slice() {
            return false;
        }
        match SubjectPublicKeyInfo::from_der(&self.spki_der) {
            Ok((_, spki)) => cert.verify_signature(Some(&spki)).is_ok(),
            Err(_) => false,
        }
    }
}

/// The common name, or the whole name when it has none.
pub fn display_name(n: &X509Name<'_>) -> String {
    n.iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_owned)
        .unwrap_or_else(|| n.to_string())
}

/// Does `cert` sign `child`? Same name, and the signature verifies with `cert`'s key.
fn signs(issuer: &X509Certificate<'_>, child: &X509Certificate<'_>) -> bool {
    child.issuer().as_raw() == issuer.subject().as_raw()
        && child.verify_signature(Some(issuer.public_key())).is_ok()
}

/// A time at which the leaf is valid, so that trust is judged apart from dates (CERT-DATES
/// speaks about those).
fn judging_time(now: i64, leaf: &CertInfo) -> UnixTime {
    let t = now.clamp(
        leaf.not_before_unix,
        leaf.not_after_unix.max(leaf.not_before_unix),
    );
    UnixTime::since_unix_epoch(Duration::from_secs(t.max(0) as u64))
}

/// Judges a set of opened certificates and keys.
pub fn analyze(opened: &Opened, req: &Request) -> Report {
    let now = req.at.unwrap_or_else(info::now_unix);
    // Files were parsed when opened, but a served chain was not: a certificate x509-parser
    // refuses becomes a CERT-PARSE error, and the rest keep their positions consistent.
    let mut usable = opened.clone();
    usable.certs.clear();
    for c in &opened.certs {
        match X509Certificate::from_der(c.der.as_ref()) {
            Ok(_) => usable.certs.push(c.clone()),
            Err(e) => usable.errors.push(OpenError::BadCert {
                name: c.source.clone(),
                line: None,
                reason: e.to_string(),
            }),
        }
    }
    let mut nodes: Vec<Node<'_>> = Vec::new();
    for c in &usable.certs {
        if let Ok((_, cert)) = X509Certificate::from_der(c.der.as_ref()) {
            let mut info = CertInfo::from_cert(&cert, c.der.as_ref(), &c.source);
            info.days_left = (info.not_after_unix - now).div_euclid(86_400);
            nodes.push(Node { cert, info });
        }
    }
    verdicts::judge(&usable, &nodes, req, now)
}

/// Opens paths (and key paths) and judges them: what `mpbridge cert inspect` does.
pub fn inspect_paths(
    paths: &[std::path::PathBuf],
    key_paths: &[std::path::PathBuf],
    password: Option<&str>,
    req: &Request,
) -> (Opened, Report) {
    let mut opened = Opened::default();
    for p in paths {
        open::open_path(p, password, &mut opened);
    }
    for k in key_paths {
        let mut keyset = Opened::default();
        open::open_path(k, password, &mut keyset);
        if keyset.keys.is_empty() && keyset.errors.is_empty() {
            keyset.errors.push(OpenError::Unsupported {
                name: k.display().to_string(),
                reason: format!(
                    "no private key in it (it holds {} certificate(s)); --key wants the key file",
                    keyset.certs.len()
                ),
            });
        }
        opened.extend(keyset);
    }
    let report = analyze(&opened, req);
    (opened, report)
}
