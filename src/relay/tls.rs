//! The relay's TLS: PEM chains and keys, a certificate per SNI name with a default for
//! clients without SNI, TLS 1.2 and 1.3 only, ALPN `http/1.1` only.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read the certificate {path}: {source}")]
    ReadCert {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read the private key {path}: {source}")]
    ReadKey {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} holds no PEM certificate (expected -----BEGIN CERTIFICATE-----, leaf first)")]
    NoCert { path: PathBuf },
    #[error("{path} holds no usable private key (PKCS#8, PKCS#1 RSA or SEC1 EC PEM, unencrypted)")]
    NoKey { path: PathBuf },
    #[error(
        "{path} holds an encrypted private key; the relay needs it unencrypted, as nginx does without ssl_password_file (openssl pkey -in key.pem -out plain.pem)"
    )]
    EncryptedKey { path: PathBuf },
    #[error("{path}: {reason}")]
    BadPem {
        path: PathBuf,
        reason: crate::certs::pem::PemError,
    },
    #[error("the key {key} does not belong to the certificate {cert}")]
    KeyMismatch { cert: PathBuf, key: PathBuf },
    #[error("TLS setup failed: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The certificates of a PEM file, in order, read as nginx reads them (see
/// [`crate::certs::pem::blocks`]).
pub fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = std::fs::read(path).map_err(|source| TlsError::ReadCert {
        path: path.to_path_buf(),
        source,
    })?;
    let ders = crate::certs::pem::certificates(&bytes).map_err(|reason| TlsError::BadPem {
        path: path.to_path_buf(),
        reason,
    })?;
    if ders.is_empty() {
        return Err(TlsError::NoCert {
            path: path.to_path_buf(),
        });
    }
    Ok(ders.into_iter().map(CertificateDer::from).collect())
}

/// The first private key of a PEM file (an `EC PARAMETERS` block before it is skipped).
fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = std::fs::read(path).map_err(|source| TlsError::ReadKey {
        path: path.to_path_buf(),
        source,
    })?;
    let blocks = crate::certs::pem::blocks(&bytes).map_err(|reason| TlsError::BadPem {
        path: path.to_path_buf(),
        reason,
    })?;
    for b in blocks {
        let encrypted = b
            .headers
            .iter()
            .any(|(k, v)| k.eq_ignore_ascii_case("Proc-Type") && v.contains("ENCRYPTED"));
        let key = match b.label.as_str() {
            "ENCRYPTED PRIVATE KEY" => None,
            "PRIVATE KEY" if !encrypted => Some(PrivateKeyDer::Pkcs8(b.der.into())),
            "RSA PRIVATE KEY" if !encrypted => Some(PrivateKeyDer::Pkcs1(b.der.into())),
            "EC PRIVATE KEY" if !encrypted => Some(PrivateKeyDer::Sec1(b.der.into())),
            "PRIVATE KEY" | "RSA PRIVATE KEY" | "EC PRIVATE KEY" => None,
            _ => continue,
        };
        return key.ok_or_else(|| TlsError::EncryptedKey {
            path: path.to_path_buf(),
        });
    }
    Err(TlsError::NoKey {
        path: path.to_path_buf(),
    })
}

/// Loads a PEM chain (leaf first) and its key, and checks they belong together.
pub fn load_certified_key(cert: &Path, key: &Path) -> Result<Arc<CertifiedKey>, TlsError> {
    let chain = read_chain(cert)?;
    let key_der = read_key(key)?;
    let signing = crate::crypto::provider()
        .key_provider
        .load_private_key(key_der)
        .map_err(|_| TlsError::NoKey {
            path: key.to_path_buf(),
        })?;
    let ck = CertifiedKey::new(chain, signing);
    match ck.keys_match() {
        Ok(()) => Ok(Arc::new(ck)),
        Err(rustls::Error::InconsistentKeys(_)) => Err(TlsError::KeyMismatch {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
        }),
        // Key types the check cannot compare: accept; the handshake would fail loudly.
        Err(_) => Ok(Arc::new(ck)),
    }
}

/// Picks the certificate by SNI name; the default for unknown names and no SNI.
#[derive(Debug)]
struct SniResolver {
    default: Arc<CertifiedKey>,
    by_name: HashMap<String, Arc<CertifiedKey>>,
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let named = hello
            .server_name()
            .and_then(|n| self.by_name.get(&n.to_ascii_lowercase()));
        Some(named.unwrap_or(&self.default).clone())
    }
}

/// The relay's server config.
pub fn server_config(
    default: Arc<CertifiedKey>,
    sni: Vec<(String, Arc<CertifiedKey>)>,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let mut cfg = rustls::ServerConfig::builder_with_provider(crate::crypto::provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(SniResolver {
            default,
            by_name: sni.into_iter().collect(),
        }));
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// A client config that trusts exactly the given CA PEM files (tests, the sandbox console).
pub fn client_config_with_roots(ca_pems: &[&Path]) -> Result<rustls::ClientConfig, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    for p in ca_pems {
        for c in read_chain(p)? {
            roots.add(c)?;
        }
    }
    Ok(
        rustls::ClientConfig::builder_with_provider(crate::crypto::provider())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

/// What the console shows next to a certificate path: whose it is and how long it lasts.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CertBrief {
    pub subject: String,
    /// DNS and IP subject alternative names.
    pub names: Vec<String>,
    pub not_after: String,
    pub days_left: i64,
    /// How many certificates the file holds (leaf + intermediates).
    pub chain_len: usize,
}

/// Reads the first certificate of a PEM file.
pub fn cert_brief(path: &Path) -> Result<CertBrief, crate::i18n::L10n> {
    use crate::i18n::L10n;
    use x509_parser::extensions::GeneralName;
    let chain = read_chain(path).map_err(|e| match &e {
        TlsError::ReadCert { source, .. } => {
            let why = crate::i18n::io_error(source);
            L10n::new(
                format!("cannot read {}: {}", path.display(), why.en),
                format!("无法读取 {}：{}", path.display(), why.zh),
            )
        }
        other => L10n::new(
            other.to_string(),
            format!("{} 无法使用（“{other}”）", path.display()),
        ),
    })?;
    let first = chain.first().ok_or_else(|| {
        L10n::new(
            format!("{} holds no PEM certificate", path.display()),
            format!("{} 中没有 PEM 证书", path.display()),
        )
    })?;
    let (_, cert) = x509_parser::parse_x509_certificate(first).map_err(|e| {
        L10n::new(
            format!("{}: not a valid certificate: {e}", path.display()),
            format!("{}：不是有效的证书（“{e}”）", path.display()),
        )
    })?;
    let subject = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_owned)
        .unwrap_or_else(|| cert.subject().to_string());
    let mut names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for n in &san.value.general_names {
            if matches!(n, GeneralName::DNSName(_) | GeneralName::IPAddress(_))
                && let Some(s) = crate::certs::info::general_name(n)
            {
                names.push(s);
            }
        }
    }
    let not_after = cert.validity().not_after;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    Ok(CertBrief {
        subject,
        names,
        not_after: not_after.to_string(),
        days_left: (not_after.timestamp() - now).div_euclid(86_400),
        chain_len: chain.len(),
    })
}
