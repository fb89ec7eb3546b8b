//! Opening whatever a user has: PEM (certificates, keys, encrypted keys), DER, PKCS#12, and the
//! zip bundles Chinese cloud providers hand out. Every failure is one sentence; nothing panics
//! and nothing is read past a size limit.

use std::io::Read as _;
use std::path::Path;

use rustls_pki_types::{
    CertificateDer, PrivateKeyDer, PrivatePkcs1KeyDer, PrivatePkcs8KeyDer, PrivateSec1KeyDer,
};

use super::pem::{self, LegacyError, PemBlock};
use crate::verdict::L10n;

/// Certificates and keys are a few KB; anything over this is refused unread.
pub const MAX_FILE_BYTES: u64 = 10 * 1024 * 1024;
/// Limits for zip bundles: entries looked at, and bytes per entry.
const MAX_ZIP_ENTRIES: usize = 256;
const MAX_ZIP_ENTRY_BYTES: u64 = 1024 * 1024;

#[derive(Debug, Clone)]
pub struct OpenedCert {
    pub der: CertificateDer<'static>,
    /// Where it came from: `file`, `file:line`, or `bundle.zip/Nginx/a_bundle.crt:12`.
    pub source: String,
}

#[derive(Debug)]
pub struct OpenedKey {
    pub der: PrivateKeyDer<'static>,
    pub source: String,
}

impl Clone for OpenedKey {
    fn clone(&self) -> Self {
        OpenedKey {
            der: self.der.clone_key(),
            source: self.source.clone(),
        }
    }
}

/// Everything opened so far, in the order given. Certificates are deduplicated (a provider zip
/// holds the same bundle as `.crt` and `.pem`).
#[derive(Debug, Clone, Default)]
pub struct Opened {
    pub certs: Vec<OpenedCert>,
    pub keys: Vec<OpenedKey>,
    /// What was chosen or skipped (zip folders, CSRs, public keys).
    pub notes: Vec<L10n>,
    pub errors: Vec<OpenError>,
    /// The files (or zip entries) that were read, in order.
    pub sources: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    #[error("cannot read {name}: {reason}")]
    Read { name: String, reason: String },
    #[error(
        "{name} is {size} bytes; certificates and keys are a few KB, so it is not one (the limit is 10 MB)"
    )]
    TooLarge { name: String, size: u64 },
    #[error("{name} is empty")]
    Empty { name: String },
    #[error("{name}: {reason}")]
    Pem { name: String, reason: String },
    #[error(
        "{name} is neither a PEM or DER certificate, a private key, a PKCS#12 file nor a zip of them"
    )]
    NotRecognized { name: String },
    #[error("{name}: the certificate {}is not a valid X.509 certificate ({reason})", on_line(.line))]
    BadCert {
        name: String,
        /// The PEM block's first line.
        line: Option<usize>,
        reason: String,
    },
    #[error("{name}: the private key {}cannot be read ({reason})", on_line(.line))]
    BadKey {
        name: String,
        line: Option<usize>,
        reason: String,
    },
    /// An encrypted private key (on `key_line` of a PEM file), or a PKCS#12 file (`None`).
    #[error("{name} {} is password-protected; give its password", match .key_line {
        Some(n) => format!("(the private key on line {n} is encrypted and)"),
        None => "(PKCS#12)".to_owned(),
    })]
    NeedPassword {
        name: String,
        key_line: Option<usize>,
    },
    #[error("{name}: the password is wrong")]
    WrongPassword { name: String },
    #[error("{name}: {reason}")]
    Unsupported { name: String, reason: String },
    #[error("{name} is not a readable zip ({reason})")]
    Zip { name: String, reason: String },
}

/// `on line 3 ` (or nothing), for the messages above.
fn on_line(line: &Option<usize>) -> String {
    line.map(|n| format!("on line {n} ")).unwrap_or_default()
}

fn on_line_zh(line: &Option<usize>) -> String {
    line.map(|n| format!("第 {n} 行的")).unwrap_or_default()
}

impl OpenError {
    /// The error in both languages; a lower layer's own words (`reason`) are quoted in Chinese.
    pub fn l10n(&self) -> L10n {
        let zh = match self {
            OpenError::Read { name, reason } => format!("无法读取 {name}（“{reason}”）"),
            OpenError::TooLarge { name, size } => {
                format!("{name} 有 {size} 字节；证书和私钥只有几 KB，所以它不是（上限 10 MB）")
            }
            OpenError::Empty { name } => format!("{name} 是空文件"),
            OpenError::Pem { name, reason } => format!("{name}：PEM 格式错误（“{reason}”）"),
            OpenError::NotRecognized { name } => {
                format!("{name} 既不是 PEM 或 DER 证书、私钥、PKCS#12 文件，也不是包含它们的 zip")
            }
            OpenError::BadCert { name, line, reason } => {
                format!(
                    "{name}：{}证书不是有效的 X.509 证书（“{reason}”）",
                    on_line_zh(line)
                )
            }
            OpenError::BadKey { name, line, reason } => {
                format!("{name}：{}私钥无法读取（“{reason}”）", on_line_zh(line))
            }
            OpenError::NeedPassword { name, key_line } => match key_line {
                Some(n) => format!("{name} 第 {n} 行的私钥已加密；请提供密码"),
                None => format!("{name}（PKCS#12）有密码保护；请提供密码"),
            },
            OpenError::WrongPassword { name } => format!("{name}：密码错误"),
            OpenError::Unsupported { name, reason } => format!("{name}：不支持（“{reason}”）"),
            OpenError::Zip { name, reason } => format!("{name} 不是可读的 zip（“{reason}”）"),
        };
        L10n::new(self.to_string(), zh)
    }
}

impl Opened {
    fn push_cert(&mut self, der: Vec<u8>, source: String) {
        if self.certs.iter().any(|c| c.der.as_ref() == der.as_slice()) {
            return;
        }
        self.certs.push(OpenedCert {
            der: CertificateDer::from(der),
            source,
        });
    }

    fn push_key(&mut self, der: PrivateKeyDer<'static>, source: String) {
        if self
            .keys
            .iter()
            .any(|k| k.der.secret_der() == der.secret_der())
        {
            return;
        }
        self.keys.push(OpenedKey { der, source });
    }

    /// Appends another set (e.g. the `--key` file's) to this one.
    pub fn extend(&mut self, other: Opened) {
        for c in other.certs {
            self.push_cert(c.der.to_vec(), c.source);
        }
        for k in other.keys {
            self.push_key(k.der, k.source);
        }
        self.notes.extend(other.notes);
        self.errors.extend(other.errors);
        self.sources.extend(other.sources);
    }
}

/// Opens a file from disk into `out`. Failures are recorded in `out.errors`.
pub fn open_path(path: &Path, password: Option<&str>, out: &mut Opened) {
    let name = path.display().to_string();
    let size = match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => {
            out.errors.push(OpenError::Read {
                name,
                reason: "it is a folder, not a file".into(),
            });
            return;
        }
        Ok(m) => m.len(),
        Err(e) => {
            out.errors.push(OpenError::Read {
                name,
                reason: e.to_string(),
            });
            return;
        }
    };
    if size > MAX_FILE_BYTES {
        out.errors.push(OpenError::TooLarge { name, size });
        return;
    }
    let mut bytes = Vec::new();
    let read =
        std::fs::File::open(path).and_then(|f| f.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes));
    if let Err(e) = read {
        out.errors.push(OpenError::Read {
            name,
            reason: e.to_string(),
        });
        return;
    }
    open_bytes(&name, &bytes, password, out);
}

/// Opens bytes (a file's content) named `name` into `out`.
pub fn open_bytes(name: &str, bytes: &[u8], password: Option<&str>, out: &mut Opened) {
    if bytes.len() as u64 > MAX_FILE_BYTES {
        out.errors.push(OpenError::TooLarge {
            name: name.to_owned(),
            size: bytes.len() as u64,
        });
        return;
    }
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        out.errors.push(OpenError::Empty {
            name: name.to_owned(),
        });
        return;
    }
    out.sources.push(name.to_owned());
    if bytes.starts_with(b"PK\x03\x04") {
        open_zip(name, bytes, password, out);
    } else if pem::looks_like_pem(bytes) {
        open_pem(name, bytes, password, out);
    } else if bytes.first() == Some(&0x30) {
        open_der(name, bytes, password, out);
    } else {
        out.errors.push(OpenError::NotRecognized {
            name: name.to_owned(),
        });
    }
}

fn open_pem(name: &str, bytes: &[u8], password: Option<&str>, out: &mut Opened) {
    let text = String::from_utf8_lossy(bytes);
    let blocks = match pem::parse(&text) {
        Ok(b) => b,
        Err(e) => {
            out.errors.push(OpenError::Pem {
                name: name.to_owned(),
                reason: e.to_string(),
            });
            return;
        }
    };
    for block in blocks {
        let at = Some(block.line);
        let source = format!("{name}:{}", block.line);
        match block.label.as_str() {
            "CERTIFICATE" | "X509 CERTIFICATE" | "TRUSTED CERTIFICATE" => {
                match x509_parser::parse_x509_certificate(&block.der) {
                    Ok((rest, _)) => {
                        // A TRUSTED CERTIFICATE carries OpenSSL trust settings after the DER.
                        let len = block.der.len() - rest.len();
                        out.push_cert(block.der[..len].to_vec(), source);
                    }
                    Err(e) => out.errors.push(OpenError::BadCert {
                        name: name.to_owned(),
                        line: at,
                        reason: short_x509_error(&e),
                    }),
                }
            }
            "PRIVATE KEY" => key_or_error(name, at, pkcs8(block.der), source, out),
            "RSA PRIVATE KEY" | "EC PRIVATE KEY" => {
                let der = if is_legacy_encrypted(&block) {
                    let Some(pw) = password else {
                        out.errors.push(OpenError::NeedPassword {
                            name: name.to_owned(),
                            key_line: at,
                        });
                        continue;
                    };
                    match pem::decrypt_legacy(&block, pw) {
                        Ok(d) => d,
                        Err(LegacyError::WrongPassword) => {
                            out.errors.push(OpenError::WrongPassword {
                                name: name.to_owned(),
                            });
                            continue;
                        }
                        Err(e) => {
                            out.errors.push(OpenError::Unsupported {
                                name: name.to_owned(),
                                reason: e.to_string(),
                            });
                            continue;
                        }
                    }
                } else {
                    block.der
                };
                let key = if block.label == "RSA PRIVATE KEY" {
                    PrivateKeyDer::Pkcs1(PrivatePkcs1KeyDer::from(der))
                } else {
                    PrivateKeyDer::Sec1(PrivateSec1KeyDer::from(der))
                };
                if is_legacy_encrypted_label(&block.headers) && !is_der_sequence(key.secret_der()) {
                    out.errors.push(OpenError::WrongPassword {
                        name: name.to_owned(),
                    });
                    continue;
                }
                key_or_error(name, at, key, source, out);
            }
            "ENCRYPTED PRIVATE KEY" => match decrypt_pkcs8(name, &block.der, password, at) {
                Ok(der) => key_or_error(name, at, pkcs8(der), source, out),
                Err(e) => out.errors.push(e),
            },
            "CERTIFICATE REQUEST" | "NEW CERTIFICATE REQUEST" => out.notes.push(L10n::new(
                format!(
                    "{source}: a certificate signing request (CSR) is not a certificate; skipped"
                ),
                format!("{source}：证书签名请求（CSR）不是证书，已跳过"),
            )),
            "EC PARAMETERS" => {}
            other => out.notes.push(L10n::new(
                format!(
                    "{source}: a \"{other}\" block is not a certificate or a private key; skipped"
                ),
                format!("{source}：“{other}”块既不是证书也不是私钥，已跳过"),
            )),
        }
    }
}

fn is_legacy_encrypted(block: &PemBlock) -> bool {
    is_legacy_encrypted_label(&block.headers)
}

fn is_legacy_encrypted_label(headers: &[(String, String)]) -> bool {
    headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("Proc-Type") && v.contains("ENCRYPTED"))
}

fn pkcs8(der: Vec<u8>) -> PrivateKeyDer<'static> {
    PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(der))
}

fn key_or_error(
    name: &str,
    line: Option<usize>,
    key: PrivateKeyDer<'static>,
    source: String,
    out: &mut Opened,
) {
    match super::keys::public_of_key(&key) {
        Ok(_) => out.push_key(key, source),
        Err(reason) => out.errors.push(OpenError::BadKey {
            name: name.to_owned(),
            line,
            reason,
        }),
    }
}

fn decrypt_pkcs8(
    name: &str,
    der: &[u8],
    password: Option<&str>,
    line: Option<usize>,
) -> Result<Vec<u8>, OpenError> {
    let info = pkcs8::EncryptedPrivateKeyInfoRef::try_from(der).map_err(|e| OpenError::BadKey {
        name: name.to_owned(),
        line,
        reason: e.to_string(),
    })?;
    let Some(pw) = password else {
        return Err(OpenError::NeedPassword {
            name: name.to_owned(),
            key_line: line,
        });
    };
    match info.decrypt(pw) {
        Ok(doc) => Ok(doc.as_bytes().to_vec()),
        Err(pkcs8::Error::EncryptedPrivateKey(pkcs8::pkcs5::Error::UnsupportedAlgorithm {
            oid,
        })) => Err(OpenError::Unsupported {
            name: name.to_owned(),
            reason: format!("the private key is encrypted with an unsupported scheme ({oid})"),
        }),
        Err(_) => Err(OpenError::WrongPassword {
            name: name.to_owned(),
        }),
    }
}

fn open_der(name: &str, bytes: &[u8], password: Option<&str>, out: &mut Opened) {
    if let Ok((rest, _)) = x509_parser::parse_x509_certificate(bytes)
        && rest.is_empty()
    {
        out.push_cert(bytes.to_vec(), name.to_owned());
        return;
    }
    // PKCS#12: try the given password, or the empty one many exports use.
    match p12_keystore::Pkcs12Archive::from_pkcs12(bytes, password.unwrap_or("")) {
        Ok(archive) => {
            for (i, c) in archive.certs.iter().enumerate() {
                out.push_cert(c.cert.as_der().to_vec(), format!("{name}#cert{}", i + 1));
            }
            for (i, k) in archive.keys.iter().enumerate() {
                let source = format!("{name}#key{}", i + 1);
                key_or_error(name, None, pkcs8(k.key.as_der().to_vec()), source, out);
            }
            if archive.certs.is_empty() && archive.keys.is_empty() {
                out.errors.push(OpenError::Unsupported {
                    name: name.to_owned(),
                    reason: "the PKCS#12 file holds no certificate and no private key".into(),
                });
            }
            return;
        }
        Err(p12_keystore::error::Error::MacError(_)) => {
            out.errors.push(match password {
                None => OpenError::NeedPassword {
                    name: name.to_owned(),
                    key_line: None,
                },
                Some(_) => OpenError::WrongPassword {
                    name: name.to_owned(),
                },
            });
            return;
        }
        Err(
            p12_keystore::error::Error::UnsupportedEncryptionScheme
            | p12_keystore::error::Error::UnsupportedMacAlgorithm,
        ) => {
            out.errors.push(OpenError::Unsupported {
                name: name.to_owned(),
                reason: "the PKCS#12 file uses an encryption mpbridge cannot read; export it again with AES (openssl pkcs12 -export)".into(),
            });
            return;
        }
        Err(_) => {}
    }
    if pkcs8::EncryptedPrivateKeyInfoRef::try_from(bytes).is_ok() {
        match decrypt_pkcs8(name, bytes, password, None) {
            Ok(der) => key_or_error(name, None, pkcs8(der), name.to_owned(), out),
            Err(e) => out.errors.push(e),
        }
        return;
    }
    for key in [
        pkcs8(bytes.to_vec()),
        PrivateKeyDer::Pkcs1(PrivatePkcs1KeyDer::from(bytes.to_vec())),
        PrivateKeyDer::Sec1(PrivateSec1KeyDer::from(bytes.to_vec())),
    ] {
        if super::keys::public_of_key(&key).is_ok() {
            out.push_key(key, name.to_owned());
            return;
        }
    }
    match x509_parser::parse_x509_certificate(bytes) {
        Err(e) if bytes.len() > 64 && bytes.get(1).is_some_and(|b| *b >= 0x80) => {
            out.errors.push(OpenError::BadCert {
                name: name.to_owned(),
                line: None,
                reason: short_x509_error(&e),
            })
        }
        _ => out.errors.push(OpenError::NotRecognized {
            name: name.to_owned(),
        }),
    }
}

fn is_der_sequence(b: &[u8]) -> bool {
    x509_parser::der_parser::parse_der(b)
        .map(|(rest, o)| rest.is_empty() && o.as_sequence().is_ok())
        .unwrap_or(false)
}

fn short_x509_error(e: &x509_parser::nom::Err<x509_parser::error::X509Error>) -> String {
    match e {
        x509_parser::nom::Err::Incomplete(_) => "it is cut short".into(),
        x509_parser::nom::Err::Error(e) | x509_parser::nom::Err::Failure(e) => e.to_string(),
    }
}

/// The server flavours of a provider bundle, in the order mpbridge prefers them.
const FLAVOURS: [&str; 4] = ["nginx", "apache", "iis", "tomcat"];

fn open_zip(name: &str, bytes: &[u8], password: Option<&str>, out: &mut Opened) {
    let mut zip = match zip::ZipArchive::new(std::io::Cursor::new(bytes)) {
        Ok(z) => z,
        Err(e) => {
            out.errors.push(OpenError::Zip {
                name: name.to_owned(),
                reason: e.to_string(),
            });
            return;
        }
    };
    // (path, bytes) of every file worth looking at.
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    for i in 0..zip.len().min(MAX_ZIP_ENTRIES) {
        let mut entry = match zip.by_index(i) {
            Ok(e) => e,
            Err(e) => {
                out.errors.push(OpenError::Zip {
                    name: name.to_owned(),
                    reason: e.to_string(),
                });
                return;
            }
        };
        let Ok(path) = entry.name().map(|n| n.replace('\\', "/")) else {
            continue;
        };
        if entry.is_dir() || path.starts_with("__MACOSX/") || path.contains("/.") {
            continue;
        }
        let lower = path.to_ascii_lowercase();
        let wanted = [
            ".crt", ".pem", ".cer", ".der", ".key", ".pfx", ".p12", ".txt",
        ]
        .iter()
        .any(|ext| lower.ends_with(ext));
        if !wanted {
            continue;
        }
        if entry.size() > MAX_ZIP_ENTRY_BYTES {
            out.notes.push(L10n::new(
                format!("{name}/{path} is larger than 1 MB; skipped"),
                format!("{name}/{path} 大于 1 MB，已跳过"),
            ));
            continue;
        }
        let mut data = Vec::new();
        if let Err(e) = (&mut entry)
            .take(MAX_ZIP_ENTRY_BYTES + 1)
            .read_to_end(&mut data)
        {
            out.errors.push(OpenError::Zip {
                name: name.to_owned(),
                reason: format!("{path}: {e}"),
            });
            continue;
        }
        files.push((path, data));
    }
    let flavour_of = |path: &str| {
        let dir = path.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
        let dir = dir.to_ascii_lowercase();
        FLAVOURS.iter().position(|f| dir.contains(f))
    };
    let is_material = |path: &str| {
        let l = path.to_ascii_lowercase();
        !l.ends_with(".txt")
    };
    // Prefer the nginx folder, then files outside any flavour folder, then apache, iis.
    let mut order: Vec<Option<usize>> = vec![Some(0), None, Some(1), Some(2)];
    order.retain(|f| {
        files
            .iter()
            .any(|(p, _)| flavour_of(p) == *f && is_material(p))
    });
    let Some(chosen) = order.first().copied() else {
        out.errors.push(OpenError::Unsupported {
            name: name.to_owned(),
            reason: "the zip holds no certificate, key or PKCS#12 file".into(),
        });
        return;
    };
    let skipped: Vec<&str> = FLAVOURS
        .iter()
        .enumerate()
        .filter(|(i, _)| Some(*i) != chosen && files.iter().any(|(p, _)| flavour_of(p) == Some(*i)))
        .map(|(_, f)| *f)
        .collect();
    let picked: Vec<&(String, Vec<u8>)> = files
        .iter()
        .filter(|(p, _)| flavour_of(p) == chosen)
        .collect();
    // A password file next to a .pfx (IIS, Tomcat folders) when none was given.
    let file_password = picked
        .iter()
        .find(|(p, _)| p.to_ascii_lowercase().ends_with(".txt"))
        .map(|(_, d)| String::from_utf8_lossy(d).trim().to_owned());
    let password = password.or(file_password.as_deref());
    let list: Vec<&str> = picked
        .iter()
        .filter(|(p, _)| is_material(p))
        .map(|(p, _)| p.as_str())
        .collect();
    let folder = match chosen {
        Some(i) => FLAVOURS[i],
        None => "top-level",
    };
    out.notes.push(L10n::new(
        format!(
            "{name}: opened the {folder} files ({}){}",
            list.join(", "),
            if skipped.is_empty() {
                String::new()
            } else {
                format!(
                    "; the {} folders hold the same certificate",
                    skipped.join(", ")
                )
            }
        ),
        format!(
            "{name}：已打开 {folder} 文件（{}）{}",
            list.join("，"),
            if skipped.is_empty() {
                String::new()
            } else {
                format!("；{} 文件夹中是同一张证书", skipped.join("、"))
            }
        ),
    ));
    for (path, data) in picked {
        if !is_material(path) {
            continue;
        }
        let entry_name = format!("{name}/{path}");
        if data.starts_with(b"PK\x03\x04") {
            out.notes.push(L10n::new(
                format!("{entry_name}: a zip inside the zip; open it on its own"),
                format!("{entry_name}：压缩包内还有压缩包，请单独打开它"),
            ));
            continue;
        }
        open_bytes(&entry_name, data, password, out);
    }
}
