//! Private keys: which public key they hold, so "does this key belong to that certificate" can
//! be answered for every key a user may have — including RSA 1024 keys that ring refuses to
//! sign with.

use rustls_pki_types::PrivateKeyDer;
use x509_parser::der_parser;
use x509_parser::public_key::PublicKey;

/// The public half of a key, in a form comparable between a key and a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicId {
    /// RSA: the modulus without leading zero bytes.
    Rsa(Vec<u8>),
    /// Anything else: the DER SubjectPublicKeyInfo.
    Spki(Vec<u8>),
}

/// Human description of a key: `RSA 2048`, `EC P-256`, `Ed25519`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct KeyDesc {
    /// `RSA`, `EC`, `Ed25519`, or the algorithm's OID.
    pub kind: String,
    pub bits: usize,
    /// The named curve for EC keys.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub curve: Option<String>,
}

impl std::fmt::Display for KeyDesc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.curve {
            Some(c) => write!(f, "{} {c}", self.kind),
            None if self.bits > 0 => write!(f, "{} {}", self.kind, self.bits),
            None => write!(f, "{}", self.kind),
        }
    }
}

const OID_RSA: &str = "1.2.840.113549.1.1.1";

/// The public key a private key holds, or why it cannot be read.
pub fn public_of_key(key: &PrivateKeyDer<'_>) -> Result<PublicId, String> {
    match key {
        PrivateKeyDer::Pkcs1(k) => rsa_modulus(k.secret_pkcs1_der()).map(PublicId::Rsa),
        PrivateKeyDer::Pkcs8(k) => {
            let info = pkcs8::PrivateKeyInfoRef::try_from(k.secret_pkcs8_der())
                .map_err(|e| format!("not a PKCS#8 key: {e}"))?;
            if info.algorithm.oid.to_string() == OID_RSA {
                return rsa_modulus(info.private_key.as_bytes()).map(PublicId::Rsa);
            }
            spki_via_ring(key)
        }
        PrivateKeyDer::Sec1(_) => spki_via_ring(key),
        _ => Err("an unknown key format".into()),
    }
}

fn spki_via_ring(key: &PrivateKeyDer<'_>) -> Result<PublicId, String> {
    let signing = crate::crypto::provider()
        .key_provider
        .load_private_key(key.clone_key())
        .map_err(|_| {
            "not a key mpbridge can use (RSA, EC P-256/P-384 or Ed25519 expected)".to_owned()
        })?;
    signing
        .public_key()
        .map(|spki| PublicId::Spki(spki.as_ref().to_vec()))
        .ok_or_else(|| "its public half cannot be derived".to_owned())
}

/// RSAPrivateKey ::= SEQUENCE { version, modulus, publicExponent, ... }.
fn rsa_modulus(der: &[u8]) -> Result<Vec<u8>, String> {
    let bad = || "not a PKCS#1 RSA key".to_owned();
    let (_, obj) = der_parser::parse_der(der).map_err(|_| bad())?;
    let seq = obj.as_sequence().map_err(|_| bad())?;
    if seq.len() < 9 {
        return Err(bad());
    }
    let n = seq[1].as_slice().map_err(|_| bad())?;
    Ok(trim_zeros(n).to_vec())
}

fn trim_zeros(b: &[u8]) -> &[u8] {
    let first = b.iter().position(|x| *x != 0).unwrap_or(b.len());
    &b[first..]
}

/// The public key of a certificate, comparable with [`public_of_key`].
pub fn public_of_cert(cert: &x509_parser::certificate::X509Certificate<'_>) -> PublicId {
    match cert.public_key().parsed() {
        Ok(PublicKey::RSA(rsa)) => PublicId::Rsa(trim_zeros(rsa.modulus).to_vec()),
        _ => PublicId::Spki(cert.public_key().raw.to_vec()),
    }
}

/// Kind and size of a certificate's public key.
pub fn describe_cert_key(cert: &x509_parser::certificate::X509Certificate<'_>) -> KeyDesc {
    let spki = cert.public_key();
    let oid = spki.algorithm.algorithm.to_id_string();
    match spki.parsed() {
        Ok(PublicKey::RSA(rsa)) => KeyDesc {
            kind: "RSA".into(),
            bits: trim_zeros(rsa.modulus).len() * 8,
            curve: None,
        },
        Ok(PublicKey::EC(point)) => {
            let curve_oid = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .map(|o| o.to_id_string());
            let (curve, bits) = match curve_oid.as_deref() {
                Some("1.2.840.10045.3.1.7") => ("P-256".to_owned(), 256),
                Some("1.3.132.0.34") => ("P-384".to_owned(), 384),
                Some("1.3.132.0.35") => ("P-521".to_owned(), 521),
                Some("1.3.132.0.10") => ("secp256k1".to_owned(), 256),
                Some("1.2.156.10197.1.301") => ("SM2".to_owned(), 256),
                Some(o) => (o.to_owned(), point.key_size()),
                None => ("unnamed".to_owned(), point.key_size()),
            };
            KeyDesc {
                kind: "EC".into(),
                bits,
                curve: Some(curve),
            }
        }
        _ if oid == "1.3.101.112" => KeyDesc {
            kind: "Ed25519".into(),
            bits: 256,
            curve: None,
        },
        Ok(k) => KeyDesc {
            kind: oid,
            bits: k.key_size(),
            curve: None,
        },
        Err(_) => KeyDesc {
            kind: oid,
            bits: 0,
            curve: None,
        },
    }
}
