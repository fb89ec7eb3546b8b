//! A raw TLS 1.2 ClientHello with a chosen list of cipher suites, and the server's answer read
//! byte by byte: which version and suite it picked, and (TLS 1.2 sends it in the clear) the
//! certificate chain it served. rustls cannot do this — it only offers modern suites — and the
//! checks need to know what a server accepts from clients older and stricter than rustls.

use std::time::Duration;

use crate::i18n::L10n;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// ECDHE with AES-GCM: what iOS App Transport Security accepts.
pub const ATS_GCM: &[u16] = &[0xc02b, 0xc02f, 0xc02c, 0xc030];

/// Every suite a TLS 1.2 client of the last decade may offer.
pub const WIDE: &[u16] = &[
    0xc02b, 0xc02f, 0xc02c, 0xc030, 0xcca9, 0xcca8, 0xc009, 0xc013, 0xc00a, 0xc014, 0xc023, 0xc027,
    0xc024, 0xc028, 0x009c, 0x009d, 0x002f, 0x0035, 0x003c, 0x003d, 0x000a,
];

pub fn suite_name(id: u16) -> String {
    let name = match id {
        0xc02b => "ECDHE-ECDSA-AES128-GCM-SHA256",
        0xc02f => "ECDHE-RSA-AES128-GCM-SHA256",
        0xc02c => "ECDHE-ECDSA-AES256-GCM-SHA384",
        0xc030 => "ECDHE-RSA-AES256-GCM-SHA384",
        0xcca9 => "ECDHE-ECDSA-CHACHA20-POLY1305",
        0xcca8 => "ECDHE-RSA-CHACHA20-POLY1305",
        0xc009 => "ECDHE-ECDSA-AES128-SHA",
        0xc013 => "ECDHE-RSA-AES128-SHA",
        0xc00a => "ECDHE-ECDSA-AES256-SHA",
        0xc014 => "ECDHE-RSA-AES256-SHA",
        0xc023 => "ECDHE-ECDSA-AES128-SHA256",
        0xc027 => "ECDHE-RSA-AES128-SHA256",
        0xc024 => "ECDHE-ECDSA-AES256-SHA384",
        0xc028 => "ECDHE-RSA-AES256-SHA384",
        0x009c => "AES128-GCM-SHA256",
        0x009d => "AES256-GCM-SHA384",
        0x002f => "AES128-SHA",
        0x0035 => "AES256-SHA",
        0x003c => "AES128-SHA256",
        0x003d => "AES256-SHA256",
        0x000a => "DES-CBC3-SHA",
        _ => return format!("0x{id:04x}"),
    };
    name.to_owned()
}

/// What the server answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// A ServerHello for TLS 1.2 with this suite, and the Certificate message's chain (empty if
    /// the server sent none before ServerHelloDone).
    Hello { suite: u16, chain: Vec<Vec<u8>> },
    /// An alert (its description code), or the connection closed.
    Refused { alert: Option<u8> },
}

pub fn alert_name(code: u8) -> &'static str {
    match code {
        0 => "close_notify",
        10 => "unexpected_message",
        20 => "bad_record_mac",
        40 => "handshake_failure",
        42 => "bad_certificate",
        47 => "illegal_parameter",
        50 => "decode_error",
        51 => "decrypt_error",
        70 => "protocol_version",
        71 => "insufficient_security",
        80 => "internal_error",
        86 => "inappropriate_fallback",
        109 => "missing_extension",
        112 => "unrecognized_name",
        120 => "no_application_protocol",
        _ => "alert",
    }
}

fn u16be(v: u16) -> [u8; 2] {
    v.to_be_bytes()
}

fn with_len16(body: &[u8]) -> Vec<u8> {
    let mut v = u16be(body.len() as u16).to_vec();
    v.extend_from_slice(body);
    v
}

fn ext(kind: u16, body: &[u8]) -> Vec<u8> {
    let mut v = u16be(kind).to_vec();
    v.extend(with_len16(body));
    v
}

/// A TLS 1.2 ClientHello offering `suites`, with SNI when `sni` is a DNS name.
pub fn client_hello(sni: Option<&str>, suites: &[u16]) -> Vec<u8> {
    let mut exts = Vec::new();
    if let Some(name) = sni {
        let mut entry = vec![0u8];
        entry.extend(with_len16(name.as_bytes()));
        exts.extend(ext(0x0000, &with_len16(&entry)));
    }
    // supported_groups: x25519, secp256r1, secp384r1.
    exts.extend(ext(
        0x000a,
        &with_len16(&[0x00, 0x1d, 0x00, 0x17, 0x00, 0x18]),
    ));
    // ec_point_formats: uncompressed.
    exts.extend(ext(0x000b, &[1, 0]));
    // signature_algorithms.
    let sigs: [u16; 9] = [
        0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0601, 0x0201, 0x0203,
    ];
    let sig_bytes: Vec<u8> = sigs.iter().flat_map(|s| u16be(*s)).collect();
    exts.extend(ext(0x000d, &with_len16(&sig_bytes)));
    // extended_master_secret, renegotiation_info.
    exts.extend(ext(0x0017, &[]));
    exts.extend(ext(0xff01, &[0]));

    let mut hello = vec![0x03, 0x03];
    let random: [u8; 32] = rand::random();
    hello.extend_from_slice(&random);
    hello.push(0); // no session id
    let suite_bytes: Vec<u8> = suites.iter().flat_map(|s| u16be(*s)).collect();
    hello.extend(with_len16(&suite_bytes));
    hello.extend_from_slice(&[1, 0]); // null compression
    hello.extend(with_len16(&exts));

    let mut hs = vec![0x01];
    hs.extend_from_slice(&(hello.len() as u32).to_be_bytes()[1..]);
    hs.extend(hello);
    let mut rec = vec![0x16, 0x03, 0x01];
    rec.extend(with_len16(&hs));
    rec
}

/// Parses the server's records until ServerHelloDone, a fatal alert, or the end. Each
/// handshake message is read once, however the server splits them into records.
pub fn parse_answer(bytes: &[u8]) -> Option<Answer> {
    let mut hs = Vec::new();
    let mut parsed = 0;
    let mut i = 0;
    let mut suite = None;
    let mut chain = Vec::new();
    while i + 5 <= bytes.len() {
        let kind = bytes[i];
        let len = usize::from(u16::from_be_bytes([bytes[i + 3], bytes[i + 4]]));
        let end = i + 5 + len;
        let frag = bytes.get(i + 5..end)?;
        i = end;
        match kind {
            // A fatal alert ends the handshake; a warning (e.g. unrecognized_name) does not.
            21 if frag.first() == Some(&2) => {
                return Some(Answer::Refused {
                    alert: frag.get(1).copied(),
                });
            }
            22 => hs.extend_from_slice(frag),
            _ => {}
        }
        // The handshake messages completed since the last record.
        while parsed + 4 <= hs.len() {
            let t = hs[parsed];
            let l = (usize::from(hs[parsed + 1]) << 16)
                | (usize::from(hs[parsed + 2]) << 8)
                | usize::from(hs[parsed + 3]);
            let Some(body) = hs.get(parsed + 4..parsed + 4 + l) else {
                break;
            };
            match t {
                2 => {
                    // version(2) random(32) sid(1+n) suite(2)
                    let sid = usize::from(*body.get(34)?);
                    let s = body.get(35 + sid..37 + sid)?;
                    suite = Some(u16::from_be_bytes([s[0], s[1]]));
                }
                11 => {
                    let mut k = 3;
                    while k + 3 <= body.len() {
                        let cl = (usize::from(body[k]) << 16)
                            | (usize::from(body[k + 1]) << 8)
                            | usize::from(body[k + 2]);
                        let Some(der) = body.get(k + 3..k + 3 + cl) else {
                            break;
                        };
                        chain.push(der.to_vec());
                        k += 3 + cl;
                    }
                }
                14 => {
                    return suite.map(|suite| Answer::Hello { suite, chain });
                }
                _ => {}
            }
            parsed += 4 + l;
        }
    }
    None
}

/// Connects to `addr`, sends the hello, and reads the answer within `timeout`.
pub async fn probe(
    addr: std::net::SocketAddr,
    sni: Option<&str>,
    suites: &[u16],
    timeout: Duration,
) -> Result<Answer, L10n> {
    let work = async {
        let mut tcp = TcpStream::connect(addr)
            .await
            .map_err(|e| crate::i18n::io_error(&e))?;
        tcp.write_all(&client_hello(sni, suites))
            .await
            .map_err(|e| crate::i18n::io_error(&e))?;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 16 * 1024];
        loop {
            let n = tcp.read(&mut chunk).await.unwrap_or(0);
            if n == 0 {
                return Ok(parse_answer(&buf).unwrap_or(Answer::Refused { alert: None }));
            }
            buf.extend_from_slice(&chunk[..n]);
            if let Some(a) = parse_answer(&buf) {
                return Ok(a);
            }
            if buf.len() > 512 * 1024 {
                return Err(L10n::new(
                    "the server's answer is too long",
                    "服务器的回应太长",
                ));
            }
        }
    };
    tokio::time::timeout(timeout, work).await.map_err(|_| {
        let secs = timeout.as_secs();
        L10n::new(
            format!("no TLS answer within {secs} s"),
            format!("{secs} 秒内没有 TLS 回应"),
        )
    })?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alerts_and_partial_answers() {
        assert_eq!(
            parse_answer(&[21, 3, 3, 0, 2, 2, 70]),
            Some(Answer::Refused { alert: Some(70) })
        );
        assert_eq!(parse_answer(&[22, 3, 3, 0, 10, 2, 0]), None);
        // A warning alert does not end the handshake.
        assert_eq!(parse_answer(&[21, 3, 3, 0, 2, 1, 112]), None);
        // Hello, Certificate and HelloDone in separate records: the chain is read once.
        let mut hello = vec![2, 0, 0, 37, 3, 3];
        hello.extend([0u8; 32]);
        hello.extend([0, 0xc0, 0x2b]);
        let cert = [2, 0, 0, 9, 0, 0, 6, 0, 0, 3, 1, 2, 3];
        let mut cert_msg = vec![11];
        cert_msg.extend([0, 0, cert.len() as u8 - 4]);
        cert_msg.extend(&cert[4..]);
        let mut bytes = Vec::new();
        for m in [hello, cert_msg, vec![14, 0, 0, 0]] {
            bytes.extend([22, 3, 3, 0, m.len() as u8]);
            bytes.extend(m);
        }
        assert_eq!(
            parse_answer(&bytes),
            Some(Answer::Hello {
                suite: 0xc02b,
                chain: vec![vec![1, 2, 3]]
            })
        );
        // A hello is a record with a handshake of the right shape.
        let h = client_hello(Some("a.example.com"), ATS_GCM);
        assert_eq!(h[0], 0x16);
        assert_eq!(usize::from(u16::from_be_bytes([h[3], h[4]])), h.len() - 5);
    }
}
