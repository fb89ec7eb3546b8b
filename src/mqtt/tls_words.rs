//! TLS failures of a broker connection in plain words, named after the certificate verdicts
//! (CERT-TRUST, CERT-NAME, …) the Certificates panel and `mpbridge cert fetch` explain.

use rustls::{AlertDescription, CertificateError, Error as TlsError};

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

/// What went wrong, for someone who has not read RFC 5280.
pub fn explain(e: &TlsError) -> String {
    match e {
        TlsError::InvalidCertificate(c) => match c {
            CertificateError::UnknownIssuer => "the broker's certificate is not signed by a CA this profile trusts (CERT-TRUST); when the server leaves out its intermediate certificate this is CERT-CHAIN-COMPLETE".into(),
            CertificateError::NotValidForName => {
                "the broker's certificate is not for this host name (CERT-NAME)".into()
            }
            CertificateError::NotValidForNameContext { expected, presented } => format!(
                "the broker's certificate is for {}, not {} (CERT-NAME)",
                if presented.is_empty() {
                    "no name at all".to_owned()
                } else {
                    presented.join(", ")
                },
                expected.to_str()
            ),
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                "the broker's certificate has expired (CERT-DATES)".into()
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "the broker's certificate is not valid yet (CERT-DATES)".into()
            }
            CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
                "the broker's certificate is not made for TLS servers (CERT-USAGE)".into()
            }
            CertificateError::BadSignature => {
                "a signature in the broker's certificate chain does not verify".into()
            }
            CertificateError::Revoked => "the broker's certificate has been revoked".into(),
            CertificateError::BadEncoding => {
                "the broker sent a certificate that cannot be read (CERT-PARSE)".into()
            }
            other => format!("the broker's certificate was refused ({other:?})"),
        },
        TlsError::AlertReceived(a) => match a {
            AlertDescription::CertificateRequired | AlertDescription::HandshakeFailure => format!(
                "the broker ended the TLS handshake ({a:?}): it may want a client certificate, or shares no cipher with us"
            ),
            AlertDescription::ProtocolVersion => {
                "the broker speaks no TLS version we accept (TLS 1.2 or 1.3)".into()
            }
            AlertDescription::UnrecognisedName => {
                "the broker does not know the server name we sent (SNI)".into()
            }
            other => format!("the broker ended the TLS handshake ({other:?})"),
        },
        TlsError::PeerIncompatible(p) => {
            format!("the broker shares no TLS version or cipher with us ({p:?})")
        }
        TlsError::NoCertificatesPresented => "the broker presented no certificate".into(),
        other => other.to_string(),
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
        assert!(explain(found).contains("CERT-TRUST"));
        let name = TlsError::InvalidCertificate(CertificateError::NotValidForNameContext {
            expected: rustls::pki_types::ServerName::try_from("broker.lab").unwrap(),
            presented: vec!["DnsName(\"other.lab\")".into()],
        });
        let s = explain(&name);
        assert!(s.contains("broker.lab") && s.contains("other.lab"), "{s}");
        let plain = std::io::Error::other("nothing");
        assert!(find_rustls(&plain).is_none());
    }
}
