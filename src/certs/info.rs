//! Everything a person looks for in one certificate, as plain data (shown by the panel and
//! printed as JSON by `mpbridge cert`).

use std::net::{Ipv4Addr, Ipv6Addr};

use serde::Serialize;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::{DistributionPointName, GeneralName, ParsedExtension};

use super::keys::{KeyDesc, describe_cert_key};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertInfo {
    /// Where it came from (`file:line`, `bundle.zip/Nginx/a.crt:1`, `served #2`).
    pub source: String,
    pub subject: String,
    pub issuer: String,
    /// The subject's common name, or the whole subject when it has none.
    pub common_name: String,
    /// DNS names and IP addresses.
    pub sans: Vec<String>,
    /// Colon-separated hex.
    pub serial: String,
    /// RFC 3339, UTC.
    pub not_before: String,
    pub not_after: String,
    pub not_before_unix: i64,
    pub not_after_unix: i64,
    /// Whole days from now to `not_after`; negative once expired.
    pub days_left: i64,
    pub key: KeyDesc,
    /// `sha256WithRSAEncryption`, `ecdsa-with-SHA256`, …
    pub signature_algorithm: String,
    pub sha256: String,
    pub sha1: String,
    pub is_ca: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path_len: Option<u32>,
    pub key_usage: Vec<String>,
    pub extended_key_usage: Vec<String>,
    /// Authority Information Access: where the issuer's certificate can be downloaded.
    pub ca_issuers: Vec<String>,
    pub ocsp: Vec<String>,
    pub crl: Vec<String>,
    /// Subject equals issuer and the certificate's own key verifies its signature.
    pub self_signed: bool,
}

pub fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn hex(bytes: &[u8], sep: &str) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(sep)
}

/// A general name as people write it, or `None` for kinds not worth showing.
pub fn general_name(n: &GeneralName<'_>) -> Option<String> {
    match n {
        GeneralName::DNSName(d) => Some((*d).to_owned()),
        GeneralName::URI(u) => Some((*u).to_owned()),
        GeneralName::RFC822Name(e) => Some(format!("email:{e}")),
        GeneralName::IPAddress(b) => match b.len() {
            4 => Some(Ipv4Addr::new(b[0], b[1], b[2], b[3]).to_string()),
            16 => {
                let mut a = [0u8; 16];
                a.copy_from_slice(b);
                Some(Ipv6Addr::from(a).to_string())
            }
            _ => None,
        },
        _ => None,
    }
}

fn rfc3339(ts: i64) -> String {
    chrono::DateTime::from_timestamp(ts, 0)
        .map(|d| d.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|| ts.to_string())
}

fn sig_name(cert: &X509Certificate<'_>) -> String {
    let oid = &cert.signature_algorithm.algorithm;
    match oid.to_id_string().as_str() {
        "1.2.840.113549.1.1.5" => "sha1WithRSAEncryption".into(),
        "1.2.840.113549.1.1.4" => "md5WithRSAEncryption".into(),
        "1.2.840.113549.1.1.11" => "sha256WithRSAEncryption".into(),
        "1.2.840.113549.1.1.12" => "sha384WithRSAEncryption".into(),
        "1.2.840.113549.1.1.13" => "sha512WithRSAEncryption".into(),
        "1.2.840.113549.1.1.10" => "rsassaPss".into(),
        "1.2.840.10045.4.1" => "ecdsa-with-SHA1".into(),
        "1.2.840.10045.4.3.2" => "ecdsa-with-SHA256".into(),
        "1.2.840.10045.4.3.3" => "ecdsa-with-SHA384".into(),
        "1.2.840.10045.4.3.4" => "ecdsa-with-SHA512".into(),
        "1.3.101.112" => "Ed25519".into(),
        "1.2.156.10197.1.501" => "SM2-with-SM3".into(),
        other => other.to_owned(),
    }
}

/// True when the signature uses SHA-1 or MD5.
pub fn weak_signature(signature_algorithm: &str) -> bool {
    let s = signature_algorithm.to_ascii_lowercase();
    s.contains("sha1") || s.contains("md5")
}

impl CertInfo {
    pub fn from_cert(cert: &X509Certificate<'_>, der: &[u8], source: &str) -> CertInfo {
        use sha1::Digest as _;
        let subject = cert.subject().to_string();
        let common_name = cert
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .map(str::to_owned)
            .unwrap_or_else(|| subject.clone());
        let mut sans = Vec::new();
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for n in &san.value.general_names {
                if matches!(n, GeneralName::DNSName(_) | GeneralName::IPAddress(_))
                    && let Some(s) = general_name(n)
                {
                    sans.push(s);
                }
            }
        }
        let (is_ca, path_len) = match cert.basic_constraints() {
            Ok(Some(bc)) => (bc.value.ca, bc.value.path_len_constraint),
            _ => (false, None),
        };
        let mut key_usage = Vec::new();
        if let Ok(Some(ku)) = cert.key_usage() {
            let k = ku.value;
            for (on, name) in [
                (k.digital_signature(), "digitalSignature"),
                (k.non_repudiation(), "nonRepudiation"),
                (k.key_encipherment(), "keyEncipherment"),
                (k.data_encipherment(), "dataEncipherment"),
                (k.key_agreement(), "keyAgreement"),
                (k.key_cert_sign(), "keyCertSign"),
                (k.crl_sign(), "cRLSign"),
                (k.encipher_only(), "encipherOnly"),
                (k.decipher_only(), "decipherOnly"),
            ] {
                if on {
                    key_usage.push(name.to_owned());
                }
            }
        }
        let mut extended_key_usage = Vec::new();
        if let Ok(Some(eku)) = cert.extended_key_usage() {
            let e = eku.value;
            for (on, name) in [
                (e.any, "any"),
                (e.server_auth, "serverAuth"),
                (e.client_auth, "clientAuth"),
                (e.code_signing, "codeSigning"),
                (e.email_protection, "emailProtection"),
                (e.time_stamping, "timeStamping"),
                (e.ocsp_signing, "OCSPSigning"),
            ] {
                if on {
                    extended_key_usage.push(name.to_owned());
                }
            }
            for o in &e.other {
                extended_key_usage.push(o.to_id_string());
            }
        }
        let (mut ca_issuers, mut ocsp, mut crl) = (Vec::new(), Vec::new(), Vec::new());
        for ext in cert.extensions() {
            match ext.parsed_extension() {
                ParsedExtension::AuthorityInfoAccess(aia) => {
                    for d in aia.iter() {
                        let Some(loc) = general_name(&d.access_location) else {
                            continue;
                        };
                        match d.access_method.to_id_string().as_str() {
                            "1.3.6.1.5.5.7.48.2" => ca_issuers.push(loc),
                            "1.3.6.1.5.5.7.48.1" => ocsp.push(loc),
                            _ => {}
                        }
                    }
                }
                ParsedExtension::CRLDistributionPoints(points) => {
                    for p in &points.points {
                        if let Some(DistributionPointName::FullName(names)) = &p.distribution_point
                        {
                            crl.extend(names.iter().filter_map(general_name));
                        }
                    }
                }
                _ => {}
            }
        }
        let nb = cert.validity().not_before.timestamp();
        let na = cert.validity().not_after.timestamp();
        let self_signed = cert.subject().as_raw() == cert.issuer().as_raw()
            && cert.verify_signature(None).is_ok();
        CertInfo {
            source: source.to_owned(),
            issuer: cert.issuer().to_string(),
            subject,
            common_name,
            sans,
            serial: hex(cert.raw_serial(), ":"),
            not_before: rfc3339(nb),
            not_after: rfc3339(na),
            not_before_unix: nb,
            not_after_unix: na,
            days_left: (na - now_unix()).div_euclid(86_400),
            key: describe_cert_key(cert),
            signature_algorithm: sig_name(cert),
            sha256: hex(
                ring::digest::digest(&ring::digest::SHA256, der).as_ref(),
                ":",
            ),
            sha1: hex(&sha1::Sha1::digest(der), ":"),
            is_ca,
            path_len,
            key_usage,
            extended_key_usage,
            ca_issuers,
            ocsp,
            crl,
            self_signed,
        }
    }
}
