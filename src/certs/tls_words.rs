//! TLS failures of a broker connection in plain words, named after the certificate verdicts
//! (CERT-TRUST, CERT-NAME, …) the Certificates panel and `mpbridge cert fetch` explain.

use rustls::{AlertDescription, CertificateError, Error as TlsError};

use crate::verdict::L10n;

/// The rustls error somewhere in `e`'s chain (rumqttc wraps it in I/O and WebSocket errors).
pub fn find_rustls<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a TlsError> {
    let mut cur: Option<&'a (dyn std::error::Error + 'static)> = Some(e);
    let mut depth = 0;
    while let Some(err) = cur {
        if let Some(t) = err.downcast_ref::<TlsError>() {
            return Some(t);
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
            && let Some(t) = find_rustls(inner)
        {
            return Some(t);
        }
        depth += 1;
        if depth > 16 {
            return None;
        }
        cur = err.source();
    }
    None
}

/// Any failure in plain words: a TLS failure anywhere in its chain as [`explain`] says it, an
/// I/O failure by its kind, anything else quoted.
pub fn describe(e: &(dyn std::error::Error + 'static)) -> L10n {
    if let Some(t) = find_rustls(e) {
        return explain(t);
    }
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            return crate::i18n::io_error(io);
        }
        cur = err.source();
    }
    crate::i18n::quoted(&e.to_string())
}

/// What went wrong, for someone who has not read RFC 5280, in both languages.
pub fn explain(e: &TlsError) -> L10n {
    match e {
        TlsError::InvalidCertificate(c) => match c {
            CertificateError::UnknownIssuer => L10n::new(
                "the broker's certificate is not signed by a CA this profile trusts (CERT-TRUST); when the server leaves out its intermediate certificate this is CERT-CHAIN-COMPLETE",
                "代理的证书不是由本配置信任的 CA 签发的（CERT-TRUST）；若服务器没有发送中间证书，则是 CERT-CHAIN-COMPLETE",
            ),
            CertificateError::NotValidForName => L10n::new(
                "the broker's certificate is not for this host name (CERT-NAME)",
                "代理的证书与该主机名不符（CERT-NAME）",
            ),
            CertificateError::NotValidForNameContext {
                expected,
                presented,
            } => {
                let names = if presented.is_empty() {
                    None
                } else {
                    Some(presented.join(", "))
                };
                L10n::new(
                    format!(
                        "the broker's certificate is for {}, not {} (CERT-NAME)",
                        names.as_deref().unwrap_or("no name at all"),
                        expected.to_str()
                    ),
                    format!(
                        "代理的证书属于 {}，而不是 {}（CERT-NAME）",
                        names.as_deref().unwrap_or("（无任何名称）"),
                        expected.to_str()
                    ),
                )
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => L10n::new(
                "the broker's certificate has expired (CERT-DATES)",
                "代理的证书已过期（CERT-DATES）",
            ),
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                L10n::new(
                    "the broker's certificate is not valid yet (CERT-DATES)",
                    "代理的证书尚未生效（CERT-DATES）",
                )
            }
            CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
                L10n::new(
                    "the broker's certificate is not made for TLS servers (CERT-USAGE)",
                    "代理的证书不是用于 TLS 服务器的（CERT-USAGE）",
                )
            }
            CertificateError::BadSignature => L10n::new(
                "a signature in the broker's certificate chain does not verify",
                "代理证书链中的签名校验失败",
            ),
            CertificateError::Revoked => L10n::new(
                "the broker's certificate has been revoked",
                "代理的证书已被吊销",
            ),
            CertificateError::BadEncoding => L10n::new(
                "the broker sent a certificate that cannot be read (CERT-PARSE)",
                "代理发送的证书无法解析（CERT-PARSE）",
            ),
            other => L10n::new(
                format!("the broker's certificate was refused ({other:?})"),
                format!("代理的证书未通过校验（{other:?}）"),
            ),
        },
        TlsError::AlertReceived(a) => match a {
            AlertDescription::CertificateRequired => L10n::new(
                "the broker requires a client certificate and this profile sends none (set its client certificate and key)",
                "代理要求客户端证书，而本配置没有发送（请设置客户端证书和私钥）",
            ),
            AlertDescription::HandshakeFailure => L10n::new(
                format!(
                    "the broker ended the TLS handshake ({a:?}): it may want a client certificate, or shares no cipher with us"
                ),
                format!(
                    "代理终止了 TLS 握手（{a:?}）：可能需要客户端证书，或双方没有共同的加密套件"
                ),
            ),
            AlertDescription::ProtocolVersion => L10n::new(
                "the broker speaks no TLS version we accept (TLS 1.2 or 1.3)",
                "代理不支持我们接受的 TLS 版本（TLS 1.2 或 1.3）",
            ),
            AlertDescription::UnrecognisedName => L10n::new(
                "the broker does not know the server name we sent (SNI)",
                "代理不认识我们发送的服务器名称（SNI）",
            ),
            other => L10n::new(
                format!("the broker ended the TLS handshake ({other:?})"),
                format!("代理终止了 TLS 握手（{other:?}）"),
            ),
        },
        TlsError::PeerIncompatible(p) => L10n::new(
            format!("the broker shares no TLS version or cipher with us ({p:?})"),
            format!("代理与我们没有共同的 TLS 版本或加密套件（{p:?}）"),
        ),
        TlsError::NoCertificatesPresented => {
            L10n::new("the broker presented no certificate", "代理没有出示证书")
        }
        other => crate::i18n::quoted(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn found_through_io_and_named() {
        let inner = TlsError::InvalidCertificate(CertificateError::UnknownIssuer);
        let io = std::io::Error::new(std::io::ErrorKind::InvalidData, inner);
        let found = find_rustls(&io).unwrap();
        assert!(explain(found).en.contains("CERT-TRUST"));
        assert!(explain(found).zh.contains("CERT-TRUST"));
        let name = TlsError::InvalidCertificate(CertificateError::NotValidForNameContext {
            expected: rustls::pki_types::ServerName::try_from("broker.lab").unwrap(),
            presented: vec!["DnsName(\"other.lab\")".into()],
        });
        let s = explain(&name).en;
        assert!(s.contains("broker.lab") && s.contains("other.lab"), "{s}");
        let plain = std::io::Error::other("nothing");
        assert!(find_rustls(&plain).is_none());
    }
}
