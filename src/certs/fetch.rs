//! What a live server presents: its chain exactly as served (no AIA chasing, nothing added),
//! the TLS version, cipher and ALPN, then the same verdicts for the host name.

use std::sync::Arc;
use std::time::Duration;

use rustls::DigitallySignedStruct;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use super::open::{Opened, OpenedCert};
use super::{Report, Request, Served};
use crate::i18n::L10n;

/// Accepts any chain (we judge it afterwards) but still checks the handshake signatures.
#[derive(Debug)]
pub struct RecordOnly(Arc<rustls::crypto::CryptoProvider>);

impl RecordOnly {
    pub fn new(provider: Arc<rustls::crypto::CryptoProvider>) -> Self {
        RecordOnly(provider)
    }
}

impl ServerCertVerifier for RecordOnly {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `host:port`, `[v6]:port`, or a bare host (port 443).
pub fn split_target(target: &str) -> Result<(String, u16), L10n> {
    let t = target
        .trim()
        .trim_start_matches("wss://")
        .trim_start_matches("https://");
    let t = t.split('/').next().unwrap_or(t);
    let bad = || {
        L10n::new(
            format!("\"{target}\" is not host:port (for example example.com:443)"),
            format!("“{target}”不是 主机:端口 的形式（例如 example.com:443）"),
        )
    };
    if let Some(rest) = t.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or_else(bad)?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().map_err(|_| bad())?,
            None if after.is_empty() => 443,
            None => return Err(bad()),
        };
        return Ok((host.to_owned(), port));
    }
    match t.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => {
            let port = p.parse().map_err(|_| bad())?;
            if h.is_empty() {
                return Err(bad());
            }
            Ok((h.to_owned(), port))
        }
        Some(_) => Err(bad()),
        None if !t.is_empty() => Ok((t.to_owned(), 443)),
        None => Err(bad()),
    }
}

/// Connects, completes a TLS handshake offering `http/1.1` (as WeChat does), and returns the
/// chain as served and what was negotiated.
pub async fn fetch_chain(
    target: &str,
    sni: Option<&str>,
    timeout: Duration,
) -> Result<(Vec<CertificateDer<'static>>, Served), L10n> {
    let (host, port) = split_target(target)?;
    let name_str = sni.map(str::to_owned).unwrap_or_else(|| host.clone());
    let server_name = ServerName::try_from(name_str.clone()).map_err(|_| {
        L10n::new(
            format!("\"{name_str}\" is not a valid server name"),
            format!("“{name_str}”不是有效的服务器名称"),
        )
    })?;
    let sent_sni = match &server_name {
        ServerName::DnsName(d) => Some(d.as_ref().to_owned()),
        _ => None,
    };
    let provider = crate::crypto::provider();
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| crate::certs::tls_words::describe(&e))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(RecordOnly(provider)))
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(cfg));
    let work = async {
        let tcp = tokio::net::TcpStream::connect((host.as_str(), port))
            .await
            .map_err(|e| {
                let e = crate::i18n::io_error(&e);
                L10n::new(
                    format!("cannot connect to {host}:{port}: {}", e.en),
                    format!("无法连接 {host}:{port}：{}", e.zh),
                )
            })?;
        let tls = connector.connect(server_name, tcp).await.map_err(|e| {
            let e = crate::certs::tls_words::describe(&e);
            L10n::new(
                format!("the TLS handshake with {host}:{port} failed: {}", e.en),
                format!("与 {host}:{port} 的 TLS 握手失败：{}", e.zh),
            )
        })?;
        let (_, conn) = tls.get_ref();
        let certs: Vec<CertificateDer<'static>> = conn
            .peer_certificates()
            .map(|c| c.iter().map(|c| c.clone().into_owned()).collect())
            .unwrap_or_default();
        let served = Served {
            target: format!("{host}:{port}"),
            sni: sent_sni,
            tls_version: conn
                .protocol_version()
                .map(|v| match v {
                    rustls::ProtocolVersion::TLSv1_3 => "TLS 1.3".to_owned(),
                    rustls::ProtocolVersion::TLSv1_2 => "TLS 1.2".to_owned(),
                    other => format!("{other:?}"),
                })
                .unwrap_or_default(),
            cipher: conn
                .negotiated_cipher_suite()
                .map(|c| format!("{:?}", c.suite()))
                .unwrap_or_default(),
            alpn: conn
                .alpn_protocol()
                .map(|a| String::from_utf8_lossy(a).into_owned()),
        };
        Ok::<_, L10n>((certs, served))
    };
    match tokio::time::timeout(timeout, work).await {
        Ok(r) => r,
        Err(_) => {
            let secs = timeout.as_secs();
            Err(L10n::new(
                format!("{host}:{port} did not complete a TLS handshake within {secs} s"),
                format!("{host}:{port} 在 {secs} 秒内没有完成 TLS 握手"),
            ))
        }
    }
}

/// Fetches and judges: the host name (or `--sni`) is the domain unless `req.domain` is set.
pub async fn fetch_report(
    target: &str,
    sni: Option<&str>,
    mut req: Request,
    timeout: Duration,
) -> Result<Report, L10n> {
    let (certs, served) = fetch_chain(target, sni, timeout).await?;
    if certs.is_empty() {
        return Err(L10n::new(
            format!("{} presented no certificate", served.target),
            format!("{} 没有出示证书", served.target),
        ));
    }
    if req.domain.is_none() {
        req.domain = Some(match sni {
            Some(s) => s.to_owned(),
            None => split_target(target)?.0,
        });
    }
    let opened = Opened {
        certs: certs
            .into_iter()
            .enumerate()
            .map(|(i, der)| OpenedCert {
                der,
                source: format!("served #{}", i + 1),
            })
            .collect(),
        sources: vec![served.target.clone()],
        ..Opened::default()
    };
    // Judging reads the OS store and verifies signatures: keep it off the async workers.
    let mut report = tokio::task::spawn_blocking(move || super::analyze(&opened, &req))
        .await
        .map_err(|e| crate::i18n::quoted(&format!("judging the chain failed: {e}")))?;
    report.served = Some(served);
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::split_target;

    #[test]
    fn targets() {
        assert_eq!(split_target("a.com:8443"), Ok(("a.com".into(), 8443)));
        assert_eq!(split_target("a.com"), Ok(("a.com".into(), 443)));
        assert_eq!(split_target("wss://a.com/mqtt"), Ok(("a.com".into(), 443)));
        assert_eq!(split_target("[::1]:9"), Ok(("::1".into(), 9)));
        assert!(split_target("a.com:x").is_err());
        assert!(split_target(":1").is_err());
        assert!(split_target("::1:9").is_err());
    }
}
