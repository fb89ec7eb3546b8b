//! The `CERT-*` verdicts over a set of certificates (and keys): the chain is built by name and
//! signature, then each rule speaks once.

use std::net::IpAddr;

use rustls_pki_types::{CertificateDer, ServerName, TrustAnchor};

use super::info::{CertInfo, weak_signature};
use super::keys::{PublicId, public_of_cert, public_of_key};
use super::{
    Anchor, ChainEntry, IssuerFound, Node, Opened, RepairPlan, Report, Request, Role, anchor_of,
    judging_time, signs,
};
use crate::i18n::l;
use crate::verdict::{Finding, L10n};

/// Days before expiry from which CERT-DATES warns.
pub const EXPIRY_WARN_DAYS: i64 = 30;

fn label(i: usize, info: &CertInfo) -> String {
    format!("#{} “{}”", i + 1, info.common_name)
}

pub(super) fn judge(opened: &Opened, nodes: &[Node<'_>], req: &Request, now: i64) -> Report {
    let mut findings = Vec::new();
    let notes = opened.notes.clone();
    let domain = req.domain.as_deref().map(normalize_host);

    findings.push(parse_finding(opened, nodes.len()));
    if nodes.is_empty() {
        return Report {
            chain: Vec::new(),
            findings,
            notes,
            key: None,
            served: None,
            repair: RepairPlan::Impossible {
                reason: l(
                    "There is no certificate to build a chain from.",
                    "没有可用于构建证书链的证书。",
                ),
            },
            domain,
        };
    }

    // Who signed whom inside the set.
    let signed_by = signers(nodes);
    let extra_anchors: Vec<TrustAnchor<'static>> = req
        .trust
        .extra
        .iter()
        .filter_map(|c| {
            webpki::anchor_from_trusted_cert(c)
                .ok()
                .map(|a| a.to_owned())
        })
        .collect();
    let issuer_found = issuers(nodes, &signed_by, req, &extra_anchors);

    // Which key belongs to which certificate.
    let key_ids: Vec<Option<PublicId>> = opened
        .keys
        .iter()
        .map(|k| public_of_key(&k.der).ok())
        .collect();
    let key_of = |i: usize| -> Option<usize> {
        let id = public_of_cert(&nodes[i].cert);
        key_ids.iter().position(|k| k.as_ref() == Some(&id))
    };

    let (leaf, built) = leaf_and_path(nodes, &signed_by, &key_of, domain.as_deref());
    let top = *built.last().unwrap_or(&leaf);
    let root_included = nodes[top].info.self_signed && top != leaf;

    let chain = chain_entries(nodes, leaf, &built, &signed_by, &issuer_found);
    let leaf_info = &nodes[leaf].info;
    let leaf_label = label(leaf, leaf_info);

    // CERT-KEY-MATCH.
    let leaf_key = key_of(leaf);
    let key_desc = leaf_key.map(|_| leaf_info.key.clone());
    findings.push(key_match(opened, nodes, leaf, &key_of));

    // CERT-NAME.
    findings.push(name_finding(leaf_info, domain.as_ref()));

    // CERT-DATES.
    findings.push(dates(nodes, &built, now));

    // CERT-CHAIN-ORDER.
    findings.push(order(nodes, leaf, &built, root_included));

    // CERT-TRUST (computed first: CHAIN-COMPLETE uses the OS verdict).
    let intermediates: Vec<CertificateDer<'static>> = built
        .iter()
        .skip(1)
        .map(|&i| CertificateDer::from(opened.certs[i].der.to_vec()))
        .collect();
    let leaf_der = CertificateDer::from(opened.certs[leaf].der.to_vec());
    let t = judging_time(now, leaf_info);
    let public_verdict = verify_path(&leaf_der, &intermediates, &req.trust.public, t);
    let extra_verdict = if extra_anchors.is_empty() {
        None
    } else {
        Some(verify_path(&leaf_der, &intermediates, &extra_anchors, t))
    };
    let os_verdict = if req.trust.os_store {
        Some(os_verify(
            &leaf_der,
            &intermediates,
            leaf_info,
            domain.as_deref(),
            t,
        ))
    } else {
        None
    };

    // CERT-CHAIN-COMPLETE.
    findings.push(complete(
        nodes,
        top,
        &issuer_found[top],
        os_verdict.as_ref().is_some_and(Result::is_ok),
    ));

    // CERT-TRUST.
    findings.push(trust(
        &public_verdict,
        extra_verdict.as_ref(),
        os_verdict.as_ref(),
    ));

    // CERT-SELF-SIGNED.
    findings.push(self_signed(nodes, leaf, &leaf_label));

    // CERT-STRENGTH.
    findings.push(strength(nodes, &built));

    // CERT-USAGE.
    findings.push(usage(leaf_info));

    let repair = plan_repair(
        opened,
        nodes,
        leaf,
        &built,
        leaf_key,
        &issuer_found[top],
        os_verdict.as_ref().is_some_and(Result::is_ok),
    );

    Report {
        chain,
        findings,
        notes,
        key: key_desc,
        served: None,
        repair,
        domain,
    }
}

/// The leaf (not a CA, signs nothing in the set; preferring the one a key belongs to, then
/// the one covering the domain, then the first) and the path from it up, by signature.
fn leaf_and_path(
    nodes: &[Node<'_>],
    signed_by: &[Option<usize>],
    key_of: &dyn Fn(usize) -> Option<usize>,
    domain: Option<&str>,
) -> (usize, Vec<usize>) {
    let n = nodes.len();
    let signs_something = |i: usize| signed_by.contains(&Some(i));
    let candidates: Vec<usize> = (0..n)
        .filter(|&i| !nodes[i].info.is_ca && !signs_something(i))
        .collect();
    let leaf = candidates
        .iter()
        .copied()
        .find(|&i| key_of(i).is_some())
        .or_else(|| {
            domain.and_then(|d| {
                candidates
                    .iter()
                    .copied()
                    .find(|&i| covers(&nodes[i].info, d))
            })
        })
        .or_else(|| candidates.first().copied())
        .unwrap_or(0);

    let mut built = vec![leaf];
    let mut cur = leaf;
    while let Some(next) = signed_by[cur] {
        if built.contains(&next) {
            break;
        }
        built.push(next);
        cur = next;
    }
    (leaf, built)
}

/// Every certificate with its role in the chain.
fn chain_entries(
    nodes: &[Node<'_>],
    leaf: usize,
    built: &[usize],
    signed_by: &[Option<usize>],
    issuer_found: &[IssuerFound],
) -> Vec<ChainEntry> {
    (0..nodes.len())
        .map(|i| ChainEntry {
            index: i,
            role: if i == leaf {
                Role::Leaf
            } else if !built.contains(&i) {
                Role::Unrelated
            } else if nodes[i].info.self_signed {
                Role::Root
            } else {
                Role::Intermediate
            },
            signed_by: signed_by[i],
            issuer_found: issuer_found[i].clone(),
            info: nodes[i].info.clone(),
        })
        .collect()
}

/// For each certificate, the one in the set that signed it.
fn signers(nodes: &[Node<'_>]) -> Vec<Option<usize>> {
    let n = nodes.len();
    (0..n)
        .map(|i| {
            if nodes[i].info.self_signed {
                return None;
            }
            (0..n).find(|&j| j != i && signs(&nodes[j].cert, &nodes[i].cert))
        })
        .collect()
}

/// Where each certificate's issuer was found: itself, the set, a public root, a supplied CA.
fn issuers(
    nodes: &[Node<'_>],
    signed_by: &[Option<usize>],
    req: &Request,
    extra_anchors: &[TrustAnchor<'static>],
) -> Vec<IssuerFound> {
    let public: Vec<Anchor> = req.trust.public.iter().map(anchor_of).collect();
    let extra: Vec<Anchor> = extra_anchors.iter().map(anchor_of).collect();
    (0..nodes.len())
        .map(|i| {
            if nodes[i].info.self_signed {
                IssuerFound::Itself
            } else if signed_by[i].is_some() {
                IssuerFound::InSet
            } else if let Some(a) = public.iter().find(|a| a.issued(&nodes[i].cert)) {
                IssuerFound::PublicRoot(a.name.clone())
            } else if let Some(a) = extra.iter().find(|a| a.issued(&nodes[i].cert)) {
                IssuerFound::SuppliedCa(a.name.clone())
            } else {
                IssuerFound::Missing
            }
        })
        .collect()
}

/// CERT-SELF-SIGNED: the leaf is issued by someone else.
fn self_signed(nodes: &[Node<'_>], leaf: usize, leaf_label: &str) -> Finding {
    let leaf_info = &nodes[leaf].info;
    if leaf_info.self_signed {
        Finding::fail(
            "CERT-SELF-SIGNED",
            l(
                format!("The leaf {leaf_label} is self-signed: no client trusts it."),
                format!("叶子证书 {leaf_label} 是自签名证书：任何客户端都不信任它。"),
            ),
            l(
                "Get a certificate from a public CA (the cloud provider's free DV certificate, or Let's Encrypt via certbot/acme.sh).",
                "向公共 CA 申请证书（云厂商的免费 DV 证书，或用 certbot/acme.sh 申请 Let's Encrypt）。",
            ),
        )
    } else {
        let issuer = super::display_name(nodes[leaf].cert.issuer());
        Finding::pass(
            "CERT-SELF-SIGNED",
            l(
                format!("The leaf is issued by “{issuer}”."),
                format!("叶子证书由“{issuer}”签发。"),
            ),
        )
    }
}

/// CERT-KEY-MATCH: the private key opened belongs to the leaf.
fn key_match(
    opened: &Opened,
    nodes: &[Node<'_>],
    leaf: usize,
    key_of: &dyn Fn(usize) -> Option<usize>,
) -> Finding {
    let n = nodes.len();
    let leaf_info = &nodes[leaf].info;
    let leaf_label = label(leaf, leaf_info);
    let leaf_key = key_of(leaf);
    if opened.keys.is_empty() {
        Finding::skip(
            "CERT-KEY-MATCH",
            l(
                "No private key was opened, so it was not compared.",
                "未打开私钥，未做比对。",
            ),
        )
    } else if let Some(k) = leaf_key {
        Finding::pass(
            "CERT-KEY-MATCH",
            l(
                format!(
                    "The key from {} belongs to the leaf {leaf_label} ({}).",
                    opened.keys[k].source, leaf_info.key
                ),
                format!(
                    "{} 中的私钥与叶子证书 {leaf_label} 匹配（{}）。",
                    opened.keys[k].source, leaf_info.key
                ),
            ),
        )
    } else {
        let other = (0..n).find(|&i| key_of(i).is_some());
        let (en, zh) = match other {
            Some(i) => (
                format!(
                    "The key belongs to {}, not to the leaf {leaf_label}.",
                    label(i, &nodes[i].info)
                ),
                format!(
                    "私钥属于 {}，而不是叶子证书 {leaf_label}。",
                    label(i, &nodes[i].info)
                ),
            ),
            None => (
                format!(
                    "No opened key belongs to the leaf {leaf_label}: the key is for another certificate (an old one, or another domain's)."
                ),
                format!(
                    "打开的私钥都不属于叶子证书 {leaf_label}：该私钥对应的是另一张证书（旧证书或其他域名的）。"
                ),
            ),
        };
        Finding::fail(
            "CERT-KEY-MATCH",
            l(en, zh),
            l(
                "Use the .key file that was generated with this certificate's request (same download or same CSR); a renewed certificate may have a new key.",
                "请使用与该证书同一次申请（同一下载包或同一 CSR）生成的 .key 文件；续期后的证书可能换了新私钥。",
            ),
        )
    }
}

/// CERT-PARSE: what was read, and what could not be.
fn parse_finding(opened: &Opened, n: usize) -> Finding {
    let errors: Vec<String> = opened.errors.iter().map(ToString::to_string).collect();
    let errors_zh: Vec<String> = opened.errors.iter().map(|e| e.l10n().zh).collect();
    if n == 0 {
        let detail = if !errors.is_empty() {
            errors.join(" ")
        } else if !opened.keys.is_empty() {
            format!(
                "{} holds a private key but no certificate.",
                opened.keys[0].source
            )
        } else {
            "No certificate was found in what was opened.".to_owned()
        };
        let zh = if errors.is_empty() && !opened.keys.is_empty() {
            format!("{} 中只有私钥，没有证书。", opened.keys[0].source)
        } else if errors.is_empty() {
            "打开的内容中没有证书。".to_owned()
        } else {
            format!("无法读取：{}", errors_zh.join("；"))
        };
        return Finding::fail(
            "CERT-PARSE",
            l(detail, zh),
            l(
                "Open the certificate file (PEM such as fullchain.pem or *_bundle.crt, DER, .pfx/.p12 or the provider's zip); give the key separately.",
                "请打开证书文件（PEM 如 fullchain.pem、*_bundle.crt，DER，.pfx/.p12 或云厂商下载的 zip）；私钥单独提供。",
            ),
        );
    }
    if errors.is_empty() {
        Finding::pass(
            "CERT-PARSE",
            l(
                format!(
                    "Read {} certificate(s) and {} private key(s).",
                    n,
                    opened.keys.len()
                ),
                format!("已读取 {} 张证书和 {} 个私钥。", n, opened.keys.len()),
            ),
        )
    } else {
        Finding::fail(
            "CERT-PARSE",
            l(
                format!("Read {} certificate(s), but: {}", n, errors.join(" ")),
                format!("已读取 {} 张证书，但有错误：{}", n, errors_zh.join("；")),
            ),
            l(
                "Fix or leave out the unreadable input (see the detail): a wrong password, a truncated copy, or a file that is not a certificate.",
                "修正或去掉无法读取的输入（见详情）：密码错误、复制不完整，或文件并非证书。",
            ),
        )
    }
}

/// CERT-NAME: the leaf covers the domain asked about.
fn name_finding(leaf_info: &CertInfo, domain: Option<&String>) -> Finding {
    let names = if leaf_info.sans.is_empty() {
        "none".to_owned()
    } else {
        leaf_info.sans.join(", ")
    };
    match domain {
        None => Finding::skip(
            "CERT-NAME",
            l(
                format!("No domain given. The leaf covers: {names}."),
                format!("未指定域名。叶子证书覆盖：{names}。"),
            ),
        ),
        Some(d) if covers(leaf_info, d) => Finding::pass(
            "CERT-NAME",
            l(
                format!("The leaf covers {d} (names: {names})."),
                format!("叶子证书覆盖 {d}（名称：{names}）。"),
            ),
        ),
        Some(d) => {
            let cn_only = leaf_info.sans.is_empty() && name_matches(&leaf_info.common_name, d);
            let (en, zh) = if cn_only {
                (
                    format!(
                        "The leaf names {d} only in its Common Name and has no Subject Alternative Name; clients ignore the CN."
                    ),
                    format!(
                        "叶子证书只在 CN 中写了 {d}，没有 SAN（使用者可选名称）；客户端不认 CN。"
                    ),
                )
            } else {
                (
                    format!("The leaf does not cover {d}; it covers: {names}."),
                    format!("叶子证书不覆盖 {d}；它覆盖的是：{names}。"),
                )
            };
            Finding::fail(
                "CERT-NAME",
                l(en, zh),
                l(
                    format!(
                        "Get a certificate whose SAN lists {d} (a wildcard *.example.com covers one label only: not example.com, not a.b.example.com), or connect with a name the certificate covers."
                    ),
                    format!(
                        "申请 SAN 中包含 {d} 的证书（通配符 *.example.com 只覆盖一级子域：不含 example.com，也不含 a.b.example.com），或改用证书覆盖的域名连接。"
                    ),
                ),
            )
        }
    }
}

/// Lowercase, no trailing dot, no brackets around IPv6.
pub fn normalize_host(h: &str) -> String {
    h.trim()
        .trim_end_matches('.')
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase()
}

/// RFC 6125 without the CN fallback: a DNS SAN equal to the host, or `*.rest` matching exactly
/// one label; IP hosts only match IP SANs.
pub fn covers(info: &CertInfo, host: &str) -> bool {
    let host = normalize_host(host);
    if let Ok(ip) = host.parse::<IpAddr>() {
        return info
            .sans
            .iter()
            .any(|s| s.parse::<IpAddr>().ok() == Some(ip));
    }
    info.sans
        .iter()
        .filter(|s| s.parse::<IpAddr>().is_err())
        .any(|s| name_matches(s, &host))
}

pub fn name_matches(pattern: &str, host: &str) -> bool {
    let pattern = normalize_host(pattern);
    let host = normalize_host(host);
    if host.parse::<IpAddr>().is_ok() {
        return pattern == host;
    }
    match pattern.strip_prefix("*.") {
        Some(suffix) => host
            .strip_suffix(suffix)
            .and_then(|label| label.strip_suffix('.'))
            .is_some_and(|label| !label.is_empty() && !label.contains('.')),
        None => pattern == host,
    }
}

fn day(ts: i64) -> String {
    chrono::DateTime::from_timestamp(ts, 0)
        .map(|d| d.format("%Y-%m-%d").to_string())
        .unwrap_or_default()
}

fn dates(nodes: &[Node<'_>], built: &[usize], now: i64) -> Finding {
    let renew = l(
        "Renew the certificate (or the intermediate) and deploy the new fullchain.pem; set a reminder or automate renewal (acme.sh / certbot).",
        "续期证书（或中间证书）并部署新的 fullchain.pem；设置提醒或自动续期（acme.sh / certbot）。",
    );
    for &i in built {
        let c = &nodes[i].info;
        if c.not_after_unix < now {
            let ago = (now - c.not_after_unix) / 86_400;
            return Finding::fail(
                "CERT-DATES",
                l(
                    format!(
                        "{} expired on {} ({ago} days ago).",
                        label(i, c),
                        day(c.not_after_unix)
                    ),
                    format!(
                        "{} 已于 {} 过期（{ago} 天前）。",
                        label(i, c),
                        day(c.not_after_unix)
                    ),
                ),
                renew,
            );
        }
        if c.not_before_unix > now {
            return Finding::fail(
                "CERT-DATES",
                l(
                    format!(
                        "{} is not valid before {}.",
                        label(i, c),
                        day(c.not_before_unix)
                    ),
                    format!("{} 在 {} 之前无效。", label(i, c), day(c.not_before_unix)),
                ),
                l(
                    "Check this machine's clock and the server's; if both are right, wait until the start date or reissue the certificate.",
                    "检查本机和服务器的时钟；若时钟无误，请等到生效日期或重新签发证书。",
                ),
            );
        }
    }
    for &i in built {
        let c = &nodes[i].info;
        let left = (c.not_after_unix - now).div_euclid(86_400);
        if left < EXPIRY_WARN_DAYS {
            return Finding::warn(
                "CERT-DATES",
                l(
                    format!(
                        "{} expires on {} ({left} days left).",
                        label(i, c),
                        day(c.not_after_unix)
                    ),
                    format!(
                        "{} 将于 {} 过期（剩余 {left} 天）。",
                        label(i, c),
                        day(c.not_after_unix)
                    ),
                ),
                renew,
            );
        }
    }
    let c = &nodes[built[0]].info;
    Finding::pass(
        "CERT-DATES",
        l(
            format!(
                "Valid until {} ({} days left).",
                day(c.not_after_unix),
                c.days_left
            ),
            format!(
                "有效期至 {}（剩余 {} 天）。",
                day(c.not_after_unix),
                c.days_left
            ),
        ),
    )
}

fn order(nodes: &[Node<'_>], leaf: usize, built: &[usize], root_included: bool) -> Finding {
    let expected: Vec<String> = built.iter().map(|&i| label(i, &nodes[i].info)).collect();
    let reorder = l(
        format!(
            "Put the certificates in this order: {} (leaf first, then each issuer). mpbridge can build it: Repair / `cert repair`.",
            expected.join(" → ")
        ),
        format!(
            "按此顺序排列：{}（叶子证书在前，其后依次是签发者）。可用 mpbridge 的“修复”或 `cert repair` 生成。",
            expected.join(" → ")
        ),
    );
    if leaf != 0 {
        return Finding::fail(
            "CERT-CHAIN-ORDER",
            l(
                format!(
                    "The leaf {} is not first; {} comes first.",
                    label(leaf, &nodes[leaf].info),
                    label(0, &nodes[0].info)
                ),
                format!(
                    "叶子证书 {} 不在第一位；排在第一位的是 {}。",
                    label(leaf, &nodes[leaf].info),
                    label(0, &nodes[0].info)
                ),
            ),
            reorder,
        );
    }
    // In the given order, the chain's members must follow each other.
    let given: Vec<usize> = (0..nodes.len()).filter(|i| built.contains(i)).collect();
    if given != built {
        return Finding::fail(
            "CERT-CHAIN-ORDER",
            l(
                "The certificates are out of order: each one must be followed by the one that signed it.",
                "证书顺序错误：每张证书后面必须紧跟签发它的证书。",
            ),
            reorder,
        );
    }
    let unrelated: Vec<String> = (0..nodes.len())
        .filter(|i| !built.contains(i))
        .map(|i| label(i, &nodes[i].info))
        .collect();
    if !unrelated.is_empty() {
        return Finding::warn(
            "CERT-CHAIN-ORDER",
            l(
                format!("Not part of the leaf's chain: {}.", unrelated.join(", ")),
                format!("以下证书不属于叶子证书的链：{}。", unrelated.join("，")),
            ),
            l(
                "Remove certificates that belong to other chains from fullchain.pem.",
                "从 fullchain.pem 中删除属于其他证书链的证书。",
            ),
        );
    }
    if root_included {
        let r = built[built.len() - 1];
        return Finding::warn(
            "CERT-CHAIN-ORDER",
            l(
                format!(
                    "In order, but the root {} is included: clients already have it, so it only adds bytes to every handshake.",
                    label(r, &nodes[r].info)
                ),
                format!(
                    "顺序正确，但包含了根证书 {}：客户端本就内置根证书，它只会让每次握手多传数据。",
                    label(r, &nodes[r].info)
                ),
            ),
            l(
                "Leave the root out of fullchain.pem (Repair does).",
                "从 fullchain.pem 中去掉根证书（“修复”会这样做）。",
            ),
        );
    }
    Finding::pass(
        "CERT-CHAIN-ORDER",
        l(
            format!("In order: {}.", expected.join(" → ")),
            format!("顺序正确：{}。", expected.join(" → ")),
        ),
    )
}

fn complete(nodes: &[Node<'_>], top: usize, found: &IssuerFound, os_ok: bool) -> Finding {
    let t = &nodes[top].info;
    match found {
        IssuerFound::Itself => Finding::pass(
            "CERT-CHAIN-COMPLETE",
            l(
                format!("Complete up to the root {}.", label(top, t)),
                format!("证书链完整，直到根证书 {}。", label(top, t)),
            ),
        ),
        IssuerFound::SuppliedCa(ca) => Finding::pass(
            "CERT-CHAIN-COMPLETE",
            l(
                format!(
                    "Complete: {} is signed by the CA you supplied, “{ca}”.",
                    label(top, t)
                ),
                format!("证书链完整：{} 由你提供的 CA“{ca}”签发。", label(top, t)),
            ),
        ),
        IssuerFound::PublicRoot(root) => Finding::pass(
            "CERT-CHAIN-COMPLETE",
            l(
                format!(
                    "Complete: {} is signed by the root “{root}”, which clients already have.",
                    label(top, t)
                ),
                format!(
                    "证书链完整：{} 由根证书“{root}”签发，客户端已内置该根证书。",
                    label(top, t)
                ),
            ),
        ),
        IssuerFound::InSet => Finding::pass("CERT-CHAIN-COMPLETE", l("Complete.", "证书链完整。")),
        IssuerFound::Missing if os_ok => Finding::pass(
            "CERT-CHAIN-COMPLETE",
            l(
                format!(
                    "Complete: {} is signed by a root in this computer's certificate store.",
                    label(top, t)
                ),
                format!("证书链完整：{} 由本机证书库中的根证书签发。", label(top, t)),
            ),
        ),
        IssuerFound::Missing => {
            let issuer = super::display_name(nodes[top].cert.issuer());
            let aia = t.ca_issuers.first().cloned();
            let (en_aia, zh_aia) = match &aia {
                Some(u) => (
                    format!(" It can be downloaded from {u}."),
                    format!("可从 {u} 下载。"),
                ),
                None => (String::new(), String::new()),
            };
            Finding::fail(
                "CERT-CHAIN-COMPLETE",
                l(
                    format!(
                        "The certificate that signed {} (“{issuer}”) is missing. Browsers and iOS may fetch it; Android WeChat does not, and fails.{en_aia}",
                        label(top, t)
                    ),
                    format!(
                        "缺少签发 {} 的证书（“{issuer}”）。浏览器和 iOS 可能会自动下载，安卓微信不会，连接会失败。{zh_aia}",
                        label(top, t)
                    ),
                ),
                l(
                    "Serve the full chain: use the provider's *_bundle.crt / fullchain.pem (not cert.pem), or append the intermediate after the leaf.",
                    "部署完整证书链：使用云厂商的 *_bundle.crt 或 fullchain.pem（而不是 cert.pem），或在叶子证书后追加中间证书。",
                ),
            )
        }
    }
}

/// Any extended key usage: trust is judged apart from usage (CERT-USAGE speaks about that).
struct AnyUsage;

impl webpki::ExtendedKeyUsageValidator for AnyUsage {
    fn validate(&self, _iter: webpki::KeyPurposeIdIter<'_, '_>) -> Result<(), webpki::Error> {
        Ok(())
    }
}

/// Verifies leaf + intermediates against anchors; the anchor's name on success.
fn verify_path(
    leaf: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    anchors: &[TrustAnchor<'_>],
    at: rustls_pki_types::UnixTime,
) -> Result<String, L10n> {
    let ee = webpki::EndEntityCert::try_from(leaf).map_err(|e| webpki_reason(&e))?;
    let path = ee
        .verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            anchors,
            intermediates,
            at,
            AnyUsage,
            None,
            None,
        )
        .map_err(|e| webpki_reason(&e))?;
    Ok(anchor_of(path.anchor()).name)
}

fn webpki_reason(e: &webpki::Error) -> L10n {
    match e {
        webpki::Error::UnknownIssuer => l(
            "no path to a trusted root (unknown issuer)",
            "找不到可信的根证书（未知签发者）",
        ),
        webpki::Error::UnsupportedSignatureAlgorithmContext(_) => l(
            "a signature uses an algorithm clients refuse (e.g. SHA-1)",
            "有签名使用了客户端拒绝的算法（如 SHA-1）",
        ),
        webpki::Error::UnsupportedSignatureAlgorithmForPublicKeyContext(_) => l(
            "a key is too weak or of an unsupported type (e.g. RSA 1024)",
            "有密钥太弱或类型不受支持（如 RSA 1024）",
        ),
        webpki::Error::InvalidSignatureForPublicKey => {
            l("a signature does not verify", "有签名验证失败")
        }
        webpki::Error::CaUsedAsEndEntity => l("the leaf is a CA certificate", "叶子证书是 CA 证书"),
        webpki::Error::EndEntityUsedAsCa => l(
            "a non-CA certificate signs another",
            "非 CA 证书签发了其他证书",
        ),
        other => L10n::same(format!("{other:?}")),
    }
}

fn os_verify(
    leaf: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    info: &CertInfo,
    domain: Option<&str>,
    at: rustls_pki_types::UnixTime,
) -> Result<(), L10n> {
    use rustls::client::danger::ServerCertVerifier as _;
    let name = domain
        .map(str::to_owned)
        .or_else(|| {
            info.sans
                .first()
                .map(|s| s.trim_start_matches("*.").to_owned())
        })
        .ok_or_else(|| {
            l(
                "the leaf has no name to verify with",
                "叶子证书没有可用于验证的名称",
            )
        })?;
    let name = ServerName::try_from(name).map_err(|e| L10n::same(e.to_string()))?;
    let verifier = rustls_platform_verifier::Verifier::new(crate::crypto::provider())
        .map_err(|e| L10n::same(e.to_string()))?;
    let owned_leaf = CertificateDer::from(leaf.to_vec());
    let owned_int: Vec<CertificateDer<'static>> = intermediates
        .iter()
        .map(|c| CertificateDer::from(c.to_vec()))
        .collect();
    match verifier.verify_server_cert(&owned_leaf, &owned_int, &name, &[], at) {
        Ok(_) => Ok(()),
        // The name is CERT-NAME's business.
        Err(rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName))
        | Err(rustls::Error::InvalidCertificate(
            rustls::CertificateError::NotValidForNameContext { .. },
        )) => Ok(()),
        Err(rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer)) => {
            Err(l("unknown issuer", "未知签发者"))
        }
        Err(e) => {
            let text = e.to_string();
            Err(windows_trust_error(&text).unwrap_or_else(|| L10n::same(text)))
        }
    }
}

/// Windows' certificate store answers with a bare HRESULT ("OS Error -2146762482
/// (FormatMessageW() returned error 317)"); say in words what the common ones mean.
fn windows_trust_error(text: &str) -> Option<L10n> {
    let code = text
        .split("OS Error ")
        .nth(1)?
        .split(|c: char| !(c == '-' || c.is_ascii_digit()))
        .next()?
        .parse::<i64>()
        .ok()? as u32;
    let (en, zh) = match code {
        0x800B_0109 => (
            "its root is not trusted by Windows",
            "Windows 不信任其根证书",
        ),
        0x800B_010A => (
            "Windows could not build a chain to a trusted root",
            "Windows 无法构建到受信任根证书的链",
        ),
        0x800B_0101 => ("expired or not yet valid", "已过期或尚未生效"),
        0x800B_010C => ("revoked", "已被吊销"),
        0x800B_010E | 0x8009_2012 | 0x8009_2013 => (
            "Windows could not check whether it is revoked (no revocation server reachable)",
            "Windows 无法检查其吊销状态（无法访问吊销服务器）",
        ),
        0x800B_010F => ("the name does not match", "名称不匹配"),
        0x800B_0110 => (
            "not meant for TLS servers (key usage)",
            "用途不是 TLS 服务器（密钥用法）",
        ),
        _ => return None,
    };
    Some(l(
        format!("{en}, Windows error {code:#010X}"),
        format!("{zh}，Windows 错误 {code:#010X}"),
    ))
}

fn trust(
    public: &Result<String, L10n>,
    extra: Option<&Result<String, L10n>>,
    os: Option<&Result<(), L10n>>,
) -> Finding {
    let (os_en, os_zh) = match os {
        Some(Ok(())) => (
            " This computer's certificate store trusts it too.".to_owned(),
            "本机证书库同样信任它。".to_owned(),
        ),
        Some(Err(e)) => (
            format!(
                " This computer's certificate store does not trust it either ({}).",
                e.en
            ),
            format!("本机证书库也不信任它（{}）。", e.zh),
        ),
        None => (String::new(), String::new()),
    };
    match public {
        Ok(root) => Finding::pass(
            "CERT-TRUST",
            l(
                format!("Chains to the public root “{root}”.{os_en}"),
                format!("可验证到公共根证书“{root}”。{os_zh}"),
            ),
        ),
        Err(reason) => {
            let (en, zh) = match extra {
                Some(Ok(ca)) => (
                    format!(
                        "Chains only to the CA you supplied (“{ca}”), not to a public root: WeChat refuses it outside developer tools' \"do not verify\" mode.{os_en}"
                    ),
                    format!(
                        "只能验证到你提供的 CA（“{ca}”），不是公共根证书：除开发者工具“不校验合法域名”模式外，微信会拒绝连接。{os_zh}"
                    ),
                ),
                _ => (
                    format!("Does not chain to a public root: {}.{os_en}", reason.en),
                    format!("无法验证到公共根证书：{}。{os_zh}", reason.zh),
                ),
            };
            Finding::fail(
                "CERT-TRUST",
                l(en, zh),
                l(
                    "Use a certificate from a public CA and serve its full chain; private or self-made CAs work only in tests.",
                    "使用公共 CA 签发的证书并部署完整证书链；私有或自建 CA 只能用于测试。",
                ),
            )
        }
    }
}

fn strength(nodes: &[Node<'_>], built: &[usize]) -> Finding {
    let remedy = l(
        "Reissue with RSA 2048+ or EC P-256+, signed with SHA-256 or stronger (every public CA does this by default).",
        "重新签发：RSA 2048 位以上或 EC P-256 以上，签名算法 SHA-256 或更强（公共 CA 默认如此）。",
    );
    for &i in built {
        let c = &nodes[i].info;
        let weak_key = match c.key.kind.as_str() {
            "RSA" => c.key.bits < 2048,
            "EC" => c.key.bits < 256,
            _ => false,
        };
        if weak_key {
            return Finding::fail(
                "CERT-STRENGTH",
                l(
                    format!("{} has a weak key: {}.", label(i, c), c.key),
                    format!("{} 的密钥太弱：{}。", label(i, c), c.key),
                ),
                remedy,
            );
        }
        // A root's own signature is never checked by clients.
        if !c.self_signed && weak_signature(&c.signature_algorithm) {
            return Finding::fail(
                "CERT-STRENGTH",
                l(
                    format!(
                        "{} is signed with {}, which clients refuse.",
                        label(i, c),
                        c.signature_algorithm
                    ),
                    format!(
                        "{} 使用 {} 签名，客户端会拒绝。",
                        label(i, c),
                        c.signature_algorithm
                    ),
                ),
                remedy,
            );
        }
    }
    let c = &nodes[built[0]].info;
    Finding::pass(
        "CERT-STRENGTH",
        l(
            format!("{}, {}.", c.key, c.signature_algorithm),
            format!("{}，{}。", c.key, c.signature_algorithm),
        ),
    )
}

fn usage(c: &CertInfo) -> Finding {
    let eku = &c.extended_key_usage;
    if !eku.is_empty() && !eku.iter().any(|u| u == "serverAuth" || u == "any") {
        return Finding::fail(
            "CERT-USAGE",
            l(
                format!(
                    "The leaf may only be used for {}, not for a TLS server (serverAuth).",
                    eku.join(", ")
                ),
                format!(
                    "叶子证书只能用于 {}，不能用于 TLS 服务器（serverAuth）。",
                    eku.join("、")
                ),
            ),
            l(
                "Request a server (SSL/TLS) certificate, not a client or code-signing one.",
                "申请服务器（SSL/TLS）证书，而不是客户端证书或代码签名证书。",
            ),
        );
    }
    let ku = &c.key_usage;
    let signs = ku.iter().any(|u| u == "digitalSignature");
    let rsa_kex = c.key.kind == "RSA" && ku.iter().any(|u| u == "keyEncipherment");
    if !ku.is_empty() && !signs && !rsa_kex {
        return Finding::fail(
            "CERT-USAGE",
            l(
                format!(
                    "The leaf's key usage ({}) does not allow TLS handshakes (digitalSignature).",
                    ku.join(", ")
                ),
                format!(
                    "叶子证书的密钥用法（{}）不允许 TLS 握手（digitalSignature）。",
                    ku.join("、")
                ),
            ),
            l(
                "Reissue the certificate with digitalSignature in its key usage.",
                "重新签发证书，密钥用法中包含 digitalSignature。",
            ),
        );
    }
    if c.is_ca {
        return Finding::warn(
            "CERT-USAGE",
            l(
                "The leaf is marked as a CA (basicConstraints CA:TRUE); many clients refuse such a server certificate.",
                "叶子证书被标记为 CA（basicConstraints CA:TRUE），很多客户端会拒绝这样的服务器证书。",
            ),
            l(
                "Reissue the server certificate with CA:FALSE.",
                "重新签发服务器证书，设置 CA:FALSE。",
            ),
        );
    }
    Finding::pass(
        "CERT-USAGE",
        l(
            if eku.is_empty() {
                "No usage restriction: serverAuth is allowed.".to_owned()
            } else {
                format!("serverAuth is allowed ({}).", eku.join(", "))
            },
            if eku.is_empty() {
                "无用途限制：允许 serverAuth。".to_owned()
            } else {
                format!("允许 serverAuth（{}）。", eku.join("、"))
            },
        ),
    )
}

fn plan_repair(
    opened: &Opened,
    nodes: &[Node<'_>],
    leaf: usize,
    built: &[usize],
    key: Option<usize>,
    top_found: &IssuerFound,
    os_ok: bool,
) -> RepairPlan {
    let top = built[built.len() - 1];
    if matches!(top_found, IssuerFound::Missing) && !os_ok {
        let issuer = super::display_name(nodes[top].cert.issuer());
        let aia = nodes[top].info.ca_issuers.first().cloned();
        return RepairPlan::Impossible {
            reason: l(
                format!(
                    "The intermediate certificate “{issuer}” is missing and cannot be built from what was opened. Open the provider's bundle (*_bundle.crt, *_chain.crt or the zip){}",
                    aia.map(|u| format!(", or download it from {u}."))
                        .unwrap_or_else(|| ".".into())
                ),
                format!(
                    "缺少中间证书“{issuer}”，无法用已打开的文件补全。请打开云厂商提供的证书包（*_bundle.crt、*_chain.crt 或 zip）{}",
                    nodes[top]
                        .info
                        .ca_issuers
                        .first()
                        .map(|u| format!("，或从 {u} 下载。"))
                        .unwrap_or_else(|| "。".into())
                ),
            ),
        };
    }
    let mut order: Vec<usize> = built.to_vec();
    let mut changes = Vec::new();
    if nodes[top].info.self_signed && top != leaf {
        order.pop();
        changes.push(l(
            format!("left out the root {}", label(top, &nodes[top].info)),
            format!("去掉根证书 {}", label(top, &nodes[top].info)),
        ));
    }
    let given: Vec<usize> = (0..nodes.len()).filter(|i| order.contains(i)).collect();
    if given != order || leaf != 0 {
        changes.push(l(
            "put the leaf first, then each issuer",
            "叶子证书在前，其后依次是签发者",
        ));
    }
    let dropped = (0..nodes.len()).filter(|i| !built.contains(i)).count();
    if dropped > 0 {
        changes.push(l(
            format!("left out {dropped} unrelated certificate(s)"),
            format!("去掉 {dropped} 张无关证书"),
        ));
    }
    // Intermediates that came from a different file than the leaf.
    let file_of = |s: &str| {
        s.rsplit_once(':')
            .map(|(f, _)| f.to_owned())
            .unwrap_or_else(|| s.to_owned())
    };
    let leaf_file = file_of(&opened.certs[leaf].source);
    for &i in order.iter().skip(1) {
        let f = file_of(&opened.certs[i].source);
        if f != leaf_file {
            changes.push(l(
                format!("took {} from {f}", label(i, &nodes[i].info)),
                format!("从 {f} 取得 {}", label(i, &nodes[i].info)),
            ));
        }
    }
    RepairPlan::Ready {
        order,
        key,
        changes,
    }
}

#[cfg(test)]
mod tests {
    use super::windows_trust_error;

    #[test]
    fn windows_store_errors_are_said_in_words() {
        let e = windows_trust_error(
            "invalid peer certificate: Other(OtherError(OS Error -2146762482 (FormatMessageW() returned error 317)))",
        )
        .expect("a known code");
        assert!(
            e.en.starts_with("Windows could not check whether it is revoked"),
            "{}",
            e.en
        );
        assert!(e.en.ends_with("0x800B010E"), "{}", e.en);
        assert!(e.zh.contains("吊销"), "{}", e.zh);
        let e = windows_trust_error("OS Error -2146762487").expect("untrusted root");
        assert!(e.en.contains("root is not trusted"), "{}", e.en);
        assert!(windows_trust_error("OS Error -1").is_none());
        assert!(windows_trust_error("unknown issuer").is_none());
    }
}
