//! PEM blocks, strictly: every `BEGIN` needs its `END`, bodies must be base64, and the
//! OpenSSL "traditional" encryption headers (`Proc-Type: 4,ENCRYPTED`, `DEK-Info`) are kept so
//! such keys can be decrypted.

use base64::Engine as _;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PemBlock {
    pub label: String,
    /// `Key: value` lines between BEGIN and the body (traditional encrypted keys).
    pub headers: Vec<(String, String)>,
    pub der: Vec<u8>,
    /// 1-based line of the BEGIN marker.
    pub line: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PemError {
    #[error(
        "the PEM block \"{label}\" that begins on line {line} has no END line: the file is truncated"
    )]
    Truncated { label: String, line: usize },
    #[error("the PEM block \"{label}\" that begins on line {line} is not valid base64")]
    BadBase64 { label: String, line: usize },
    #[error("line {line} ends a PEM block \"{found}\" but \"{label}\" was begun")]
    Mismatched {
        label: String,
        found: String,
        line: usize,
    },
}

/// True when the bytes look like PEM text.
pub fn looks_like_pem(bytes: &[u8]) -> bool {
    bytes.windows(11).any(|w| w == b"-----BEGIN ")
}

/// All PEM blocks of a file's bytes, read as OpenSSL and nginx read them: a byte-order mark
/// (Windows Notepad writes one, and `cat` of two such files puts one mid-file), CRLF line
/// ends, spaces around lines and text before and between blocks change nothing.
pub fn blocks(bytes: &[u8]) -> Result<Vec<PemBlock>, PemError> {
    parse(&String::from_utf8_lossy(bytes))
}

/// The DER of every `CERTIFICATE` block, in order (leaf first in a served chain).
pub fn certificates(bytes: &[u8]) -> Result<Vec<Vec<u8>>, PemError> {
    Ok(blocks(bytes)?
        .into_iter()
        .filter(|b| b.label == "CERTIFICATE" || b.label == "X509 CERTIFICATE")
        .map(|b| b.der)
        .collect())
}

/// All PEM blocks of a text, in order. Text outside blocks (comments, `Bag Attributes`) is
/// ignored, as OpenSSL does.
pub fn parse(text: &str) -> Result<Vec<PemBlock>, PemError> {
    let mut blocks = Vec::new();
    // The block being read: label, first line, headers, base64 body.
    type Open = (String, usize, Vec<(String, String)>, String);
    let mut open: Option<Open> = None;
    for (i, raw) in text.lines().enumerate() {
        // OpenSSL's reading: a byte-order mark and trailing blanks are ignored, but a marker
        // must begin its line (an indented BEGIN is text, for OpenSSL as here).
        let line = raw.trim_start_matches('\u{feff}').trim_end();
        let lineno = i + 1;
        if let Some(label) = marker(line, "-----BEGIN ") {
            if let Some((label, start, ..)) = open {
                // A new BEGIN inside an open block: the first one was cut short.
                return Err(PemError::Truncated { label, line: start });
            }
            open = Some((label.to_owned(), lineno, Vec::new(), String::new()));
            continue;
        }
        if let Some(found) = marker(line, "-----END ") {
            let Some((label, start, headers, body)) = open.take() else {
                continue;
            };
            if found != label {
                return Err(PemError::Mismatched {
                    label,
                    found: found.to_owned(),
                    line: lineno,
                });
            }
            let der = base64::engine::general_purpose::STANDARD
                .decode(body.as_bytes())
                .map_err(|_| PemError::BadBase64 {
                    label: label.clone(),
                    line: start,
                })?;
            if der.is_empty() {
                return Err(PemError::BadBase64 { label, line: start });
            }
            blocks.push(PemBlock {
                label,
                headers,
                der,
                line: start,
            });
            continue;
        }
        if let Some((_, _, headers, body)) = open.as_mut() {
            if body.is_empty()
                && let Some((k, v)) = line.split_once(':')
            {
                headers.push((k.trim().to_owned(), v.trim().to_owned()));
                continue;
            }
            body.push_str(line.trim_start());
        }
    }
    if let Some((label, line, ..)) = open {
        return Err(PemError::Truncated { label, line });
    }
    Ok(blocks)
}

fn marker<'a>(line: &'a str, prefix: &str) -> Option<&'a str> {
    line.strip_prefix(prefix)?.strip_suffix("-----")
}

/// Why a traditional (OpenSSL 1.x) encrypted PEM key could not be decrypted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LegacyError {
    #[error(
        "the key is encrypted with {0}, which mpbridge cannot decrypt (AES-CBC or DES-EDE3-CBC)"
    )]
    Cipher(String),
    #[error("the DEK-Info header is malformed")]
    BadHeader,
    #[error("the passphrase is wrong")]
    WrongPassword,
}

/// Decrypts a block with `Proc-Type: 4,ENCRYPTED` and `DEK-Info: <cipher>,<iv hex>`: the key is
/// OpenSSL's EVP_BytesToKey with MD5, one round, salted with the IV's first 8 bytes.
pub fn decrypt_legacy(block: &PemBlock, password: &str) -> Result<Vec<u8>, LegacyError> {
    use cbc::cipher::{BlockModeDecrypt, KeyIvInit, block_padding::Pkcs7};
    let dek = block
        .headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("DEK-Info"))
        .map(|(_, v)| v.as_str())
        .ok_or(LegacyError::BadHeader)?;
    let (cipher, iv_hex) = dek.split_once(',').ok_or(LegacyError::BadHeader)?;
    let iv = hex_decode(iv_hex.trim()).ok_or(LegacyError::BadHeader)?;
    let cipher = cipher.trim().to_ascii_uppercase();
    let key_len = match cipher.as_str() {
        "AES-128-CBC" => 16,
        "AES-192-CBC" => 24,
        "AES-256-CBC" => 32,
        "DES-EDE3-CBC" => 24,
        other => return Err(LegacyError::Cipher(other.to_owned())),
    };
    if iv.len() < 8 {
        return Err(LegacyError::BadHeader);
    }
    let key = bytes_to_key(password.as_bytes(), &iv[..8], key_len);
    let mut buf = block.der.clone();
    let plain = match cipher.as_str() {
        "AES-128-CBC" => cbc::Decryptor::<aes::Aes128>::new_from_slices(&key, &iv)
            .map_err(|_| LegacyError::BadHeader)?
            .decrypt_padded::<Pkcs7>(&mut buf)
            .map(<[u8]>::to_vec),
        "AES-192-CBC" => cbc::Decryptor::<aes::Aes192>::new_from_slices(&key, &iv)
            .map_err(|_| LegacyError::BadHeader)?
            .decrypt_padded::<Pkcs7>(&mut buf)
            .map(<[u8]>::to_vec),
        "AES-256-CBC" => cbc::Decryptor::<aes::Aes256>::new_from_slices(&key, &iv)
            .map_err(|_| LegacyError::BadHeader)?
            .decrypt_padded::<Pkcs7>(&mut buf)
            .map(<[u8]>::to_vec),
        _ => cbc::Decryptor::<des::TdesEde3>::new_from_slices(&key, &iv)
            .map_err(|_| LegacyError::BadHeader)?
            .decrypt_padded::<Pkcs7>(&mut buf)
            .map(<[u8]>::to_vec),
    };
    // A wrong passphrase almost always breaks the padding; when it does not, the DER check
    // by the caller catches it.
    plain.map_err(|_| LegacyError::WrongPassword)
}

fn bytes_to_key(password: &[u8], salt: &[u8], len: usize) -> Vec<u8> {
    use md5::Digest as _;
    let mut out = Vec::with_capacity(len + 16);
    let mut prev: Vec<u8> = Vec::new();
    while out.len() < len {
        let mut h = md5::Md5::new();
        h.update(&prev);
        h.update(password);
        h.update(salt);
        prev = h.finalize().to_vec();
        out.extend_from_slice(&prev);
    }
    out.truncate(len);
    out
}

fn hex_decode(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_headers_and_errors() {
        let text = "junk\n-----BEGIN CERTIFICATE-----\nAAEC\n-----END CERTIFICATE-----\n\
                    -----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n\nAAEC\n-----END RSA PRIVATE KEY-----\n";
        let b = parse(text).unwrap();
        assert_eq!(b.len(), 2);
        assert_eq!(b[0].label, "CERTIFICATE");
        assert_eq!(b[0].der, vec![0, 1, 2]);
        assert_eq!(b[0].line, 2);
        assert_eq!(b[1].headers.len(), 2);
        assert_eq!(
            parse("-----BEGIN CERTIFICATE-----\nAAEC\n"),
            Err(PemError::Truncated {
                label: "CERTIFICATE".into(),
                line: 1
            })
        );
        assert!(matches!(
            parse("-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----"),
            Err(PemError::BadBase64 { .. })
        ));
        assert!(matches!(
            parse("-----BEGIN CERTIFICATE-----\nAAEC\n-----END PRIVATE KEY-----"),
            Err(PemError::Mismatched { .. })
        ));
    }

    #[test]
    fn evp_bytes_to_key_matches_openssl() {
        // `openssl enc -aes-128-cbc -k secret -S 0102030405060708 -P -md md5`: key then IV.
        let key = bytes_to_key(b"secret", &[1, 2, 3, 4, 5, 6, 7, 8], 32);
        assert_eq!(
            hex_decode("C9E5A1BD216DBE1317E230CEF48F38EE7F0E17AD64022144BCCEC4A1AA2879AB"),
            Some(key)
        );
    }
}
