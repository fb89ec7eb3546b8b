//! `mpbridge cert inspect | fetch | repair`: the certificate verdicts headless.
//!
//! Exit codes: 0 nothing fails, 1 a verdict fails, 2 usage or unreadable input.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Subcommand;

use crate::certs::{self, ChainEntry, IssuerFound, RepairPlan, Report, Request, Trust};
use crate::i18n::Language;
use crate::verdict::Status;

#[derive(Debug, Subcommand)]
pub enum CertCmd {
    /// Open certificate files (PEM, DER, PKCS#12, provider zips), show the chain and judge it.
    Inspect {
        /// Certificate files, in the order a server would send them.
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
        /// The private key file (PEM or DER; may be encrypted).
        #[arg(long, value_name = "FILE")]
        key: Vec<PathBuf>,
        #[command(flatten)]
        common: Common,
    },
    /// Connect to a TLS server and judge the chain exactly as it is served.
    Fetch {
        /// host:port (port 443 when left out).
        #[arg(value_name = "HOST:PORT")]
        target: String,
        /// Server name to send (default: the host).
        #[arg(long, value_name = "NAME")]
        sni: Option<String>,
        /// Give up after SECS.
        #[arg(long, value_name = "SECS", default_value_t = 10.0)]
        timeout: f64,
        #[command(flatten)]
        common: Common,
    },
    /// Build a correct fullchain.pem (leaf, then intermediates, no root) and privkey.pem from
    /// what the files hold, into DIR.
    Repair {
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
        #[arg(long, value_name = "FILE")]
        key: Vec<PathBuf>,
        /// Where to write fullchain.pem and privkey.pem.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        #[command(flatten)]
        common: Common,
    },
}

#[derive(Debug, clap::Args)]
pub struct Common {
    /// Read the password of encrypted keys and PKCS#12 files from this environment variable.
    #[arg(long, value_name = "VAR")]
    password_env: Option<String>,
    /// The domain the certificate must cover (CERT-NAME).
    #[arg(long, value_name = "NAME")]
    domain: Option<String>,
    /// Also accept this private CA (PEM) as a root: for test setups; never "public".
    #[arg(long, value_name = "FILE")]
    ca: Vec<PathBuf>,
    /// Print JSON: {chain, findings, ...}.
    #[arg(long)]
    json: bool,
}

impl Common {
    fn request(&self) -> Result<(Request, Option<String>), String> {
        let password = match &self.password_env {
            Some(var) => Some(std::env::var(var).map_err(|_| {
                format!("--password-env {var}: the environment variable {var} is not set")
            })?),
            None => None,
        };
        let mut trust = Trust::default();
        for p in &self.ca {
            let mut o = certs::Opened::default();
            certs::open::open_path(p, None, &mut o);
            if let Some(e) = o.errors.first() {
                return Err(format!("--ca: {e}"));
            }
            if o.certs.is_empty() {
                return Err(format!("--ca {}: no certificate in it", p.display()));
            }
            trust.extra.extend(o.certs.into_iter().map(|c| c.der));
        }
        Ok((
            Request {
                domain: self.domain.clone(),
                trust,
                at: None,
            },
            password,
        ))
    }
}

pub fn run(cmd: CertCmd, lang: Language, rt: &tokio::runtime::Runtime) -> ExitCode {
    match run_inner(cmd, lang, rt) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("mpbridge: {e}");
            ExitCode::from(2)
        }
    }
}

fn run_inner(
    cmd: CertCmd,
    lang: Language,
    rt: &tokio::runtime::Runtime,
) -> Result<ExitCode, String> {
    match cmd {
        CertCmd::Inspect { files, key, common } => {
            let (req, password) = common.request()?;
            let (_, report) = certs::inspect_paths(&files, &key, password.as_deref(), &req);
            emit(&report, common.json, lang)?;
            Ok(ExitCode::from(report.exit_code()))
        }
        CertCmd::Fetch {
            target,
            sni,
            timeout,
            common,
        } => {
            let (req, _) = common.request()?;
            if !timeout.is_finite() || timeout <= 0.0 {
                return Err("--timeout must be a positive number of seconds".into());
            }
            let timeout = Duration::from_secs_f64(timeout.clamp(0.1, 300.0));
            let report = rt
                .block_on(certs::fetch::fetch_report(
                    &target,
                    sni.as_deref(),
                    req,
                    timeout,
                ))
                .map_err(|e| e.get(lang).to_owned())?;
            emit(&report, common.json, lang)?;
            Ok(ExitCode::from(report.exit_code()))
        }
        CertCmd::Repair {
            files,
            key,
            out,
            common,
        } => {
            let (req, password) = common.request()?;
            let (opened, report) = certs::inspect_paths(&files, &key, password.as_deref(), &req);
            if report.chain.is_empty() {
                emit(&report, common.json, lang)?;
                return Ok(ExitCode::from(2));
            }
            let written = certs::repair::write(&opened, &report.repair, &out);
            if common.json {
                let v = serde_json::json!({
                    "repair": report.repair,
                    "written": written.as_ref().ok().map(|w| serde_json::json!({
                        "fullchain": w.fullchain,
                        "key": w.key,
                    })),
                    "error": written.as_ref().err(),
                });
                println!("{v:#}");
            } else {
                match &written {
                    Ok(w) => {
                        println!("{}", crate::i18n::pick(lang, "Written:", "已写入："));
                        println!("  {}", w.fullchain.display());
                        if let Some(k) = &w.key {
                            println!("  {}", k.display());
                        }
                        if let RepairPlan::Ready { changes, .. } = &report.repair {
                            for c in changes {
                                println!("  - {}", c.get(lang));
                            }
                        }
                    }
                    Err(e) => eprintln!("mpbridge: {}", e.get(lang)),
                }
            }
            Ok(if written.is_ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
    }
}

fn emit(report: &Report, json: bool, lang: Language) -> Result<(), String> {
    if json {
        let s = serde_json::to_string_pretty(report).map_err(|e| e.to_string())?;
        println!("{s}");
    } else {
        print!("{}", render_text(report, lang));
    }
    Ok(())
}

fn role_name(e: &ChainEntry, lang: Language) -> &'static str {
    use certs::Role::*;
    let (en, zh) = match e.role {
        Leaf => ("leaf", "叶子"),
        Intermediate => ("intermediate", "中间"),
        Root => ("root", "根"),
        Unrelated => ("unrelated", "无关"),
    };
    crate::i18n::pick(lang, en, zh)
}

/// The human-readable report.
pub fn render_text(r: &Report, lang: Language) -> String {
    use std::fmt::Write as _;
    let mut o = String::new();
    let t = |en: &'static str, cn: &'static str| crate::i18n::pick(lang, en, cn);
    if let Some(s) = &r.served {
        let _ = writeln!(
            o,
            "{} {}  SNI {}  {}  {}  ALPN {}",
            t("Served by", "服务器"),
            s.target,
            s.sni.as_deref().unwrap_or("-"),
            s.tls_version,
            s.cipher,
            s.alpn.as_deref().unwrap_or("-")
        );
    }
    if !r.chain.is_empty() {
        let _ = writeln!(
            o,
            "{} ({}):",
            t("Certificates, in the order given", "证书（按给出的顺序）"),
            r.chain.len()
        );
    }
    for e in &r.chain {
        let c = &e.info;
        let _ = writeln!(
            o,
            "  #{} [{}] {}",
            e.index + 1,
            role_name(e, lang),
            c.common_name
        );
        let rows: Vec<(&str, String)> = vec![
            (t("subject", "主体"), c.subject.clone()),
            (t("issuer", "签发者"), c.issuer.clone()),
            (
                t("signed by", "签发证书"),
                match (&e.signed_by, &e.issuer_found) {
                    (Some(i), _) => format!("#{}", i + 1),
                    (None, IssuerFound::Itself) => {
                        t("itself (self-signed)", "自身（自签名）").into()
                    }
                    (None, IssuerFound::PublicRoot(n)) => {
                        format!("{} “{n}”", t("public root", "公共根证书"))
                    }
                    (None, IssuerFound::SuppliedCa(n)) => {
                        format!("{} “{n}”", t("supplied CA", "提供的 CA"))
                    }
                    (None, _) => t("missing", "缺失").into(),
                },
            ),
            (
                t("names", "名称"),
                if c.sans.is_empty() {
                    "-".into()
                } else {
                    c.sans.join(", ")
                },
            ),
            (t("serial", "序列号"), c.serial.clone()),
            (
                t("valid", "有效期"),
                format!(
                    "{} → {} ({} {})",
                    c.not_before,
                    c.not_after,
                    c.days_left,
                    t("days left", "天剩余")
                ),
            ),
            (t("key", "密钥"), c.key.to_string()),
            (t("signature", "签名算法"), c.signature_algorithm.clone()),
            ("SHA-256", c.sha256.clone()),
            ("SHA-1", c.sha1.clone()),
            (
                "CA",
                match (c.is_ca, c.path_len) {
                    (true, Some(p)) => format!("{} (pathlen {p})", t("yes", "是")),
                    (true, None) => t("yes", "是").into(),
                    (false, _) => t("no", "否").into(),
                },
            ),
            (t("key usage", "密钥用法"), join_or_dash(&c.key_usage)),
            (
                t("ext. key usage", "扩展密钥用法"),
                join_or_dash(&c.extended_key_usage),
            ),
            (t("CA issuers", "颁发者地址"), join_or_dash(&c.ca_issuers)),
            ("OCSP", join_or_dash(&c.ocsp)),
            ("CRL", join_or_dash(&c.crl)),
            (t("from", "来源"), c.source.clone()),
        ];
        for (k, v) in rows {
            let _ = writeln!(o, "      {k:<15} {v}");
        }
    }
    for n in &r.notes {
        let _ = writeln!(o, "{} {}", t("note:", "说明："), n.get(lang));
    }
    let _ = writeln!(o, "{}:", t("Verdicts", "检查结果"));
    for f in &r.findings {
        let tag = match f.status {
            Status::Pass => "PASS",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
            Status::Skip => "SKIP",
        };
        let _ = writeln!(o, "  {tag} {:<20} {}", f.id, f.detail.get(lang));
        if !f.remedy.is_empty() {
            let _ = writeln!(o, "       {:<20} → {}", "", f.remedy.get(lang));
        }
    }
    match &r.repair {
        RepairPlan::Ready { order, changes, .. } if !changes.is_empty() => {
            let list: Vec<String> = order.iter().map(|i| format!("#{}", i + 1)).collect();
            let _ = writeln!(
                o,
                "{} {} ({})",
                t("Repair: fullchain.pem =", "修复：fullchain.pem ="),
                list.join(" + "),
                changes
                    .iter()
                    .map(|c| c.get(lang).to_owned())
                    .collect::<Vec<_>>()
                    .join("; ")
            );
        }
        RepairPlan::Impossible { reason } if !r.chain.is_empty() => {
            let _ = writeln!(o, "{} {}", t("Repair:", "修复："), reason.get(lang));
        }
        _ => {}
    }
    o
}

fn join_or_dash(v: &[String]) -> String {
    if v.is_empty() {
        "-".into()
    } else {
        v.join(", ")
    }
}
