//! The client's side of the relay's TLS, on rustls's unbuffered API.
//!
//! rustls's buffered connection owns a 4 KiB read buffer that it grows back before every read
//! and keeps for the connection's life, and allocates a vector for every record it sends.
//! Here the relay lends the buffers instead: records are read into one buffer per thread,
//! decrypted there, and sealed into another, both lent only within one poll. What a connection
//! keeps between polls is what could not be finished in one (part of a record, plaintext the
//! reader did not take, ciphertext the socket did not take), and on an idle connection that
//! is nothing. rustls still does all of TLS (handshake, records, alerts, key updates); this
//! module only moves bytes between it and the socket.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use rustls::server::{ServerConfig, UnbufferedServerConnection};
use rustls::unbuffered::{
    ConnectionState, EncodeError, EncodeTlsData, EncryptError, InsufficientSizeError,
    UnbufferedStatus, WriteTraffic,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

use super::handoff::Sock;

/// Most plaintext one write seals at once.
const SEAL_AT_ONCE: usize = 32 * 1024;

/// Room for [`SEAL_AT_ONCE`] sealed (at most 30 bytes of header, nonce and tag per record of
/// 16 KiB) and a few queued handshake messages (a key update) ahead of it.
const SEALED_ROOM: usize = SEAL_AT_ONCE + 4 * 1024;

/// Most one socket read takes.
const READ_AT_ONCE: usize = 32 * 1024;

/// The longest TLS record (TLS 1.2's ciphertext limit, 2^14 + 2 048, plus its header). A
/// connection never holds more than one record's worth of unfinished bytes.
const MAX_RECORD: usize = 16 * 1024 + 2048 + 5;

/// Largest handshake flight the relay buffers from a client.
const MAX_HANDSHAKE_BYTES: usize = 64 * 1024;

thread_local! {
    /// Where reads land and records are decrypted: a held partial record, then a read.
    static LANDING: std::cell::RefCell<Box<[u8]>> =
        std::cell::RefCell::new(vec![0u8; MAX_RECORD + READ_AT_ONCE].into_boxed_slice());
    /// Where writes are sealed.
    static SEALING: std::cell::RefCell<Box<[u8]>> =
        std::cell::RefCell::new(vec![0u8; SEALED_ROOM].into_boxed_slice());
}

/// What a client's TLS handshake negotiated, for the connection record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    /// The server name the client asked for (SNI), if it sent a valid one.
    pub sni: Option<String>,
    /// "TLS 1.3" / "TLS 1.2".
    pub version: String,
    pub cipher: String,
}

/// A client's TLS connection after its handshake: plaintext in and out over its socket.
pub struct ClientTls {
    sock: Sock,
    conn: UnbufferedServerConnection,
    /// Received bytes short of a whole record; empty between records.
    partial: Vec<u8>,
    /// Decrypted bytes the reader has not taken yet, from `plain_at` on.
    plain: Vec<u8>,
    plain_at: usize,
    /// Sealed bytes the socket has not taken yet, from `out_at` on.
    out: Vec<u8>,
    out_at: usize,
    /// The client sent close_notify: reads end.
    read_closed: bool,
    /// The relay sent close_notify: writes end.
    write_closed: bool,
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls")
            .field("sock", &self.sock)
            .field("partial", &self.partial.len())
            .field("plain", &(self.plain.len() - self.plain_at))
            .field("out", &(self.out.len() - self.out_at))
            .finish_non_exhaustive()
    }
}

fn tls_error(e: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

fn closed_in_handshake() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "tls handshake eof: the client closed the connection during the handshake",
    )
}

/// Encodes a handshake record (or alert) at the end of `out`.
fn encode_into(e: &mut EncodeTlsData<'_, rustls::server::ServerConnectionData>, out: &mut Vec<u8>) {
    let start = out.len();
    let mut room = 1024;
    loop {
        out.resize(start + room, 0);
        match e.encode(&mut out[start..]) {
            Ok(n) => {
                out.truncate(start + n);
                return;
            }
            Err(EncodeError::InsufficientSize(InsufficientSizeError { required_size })) => {
                room = required_size;
            }
            Err(EncodeError::AlreadyEncoded) => {
                out.truncate(start);
                return;
            }
        }
    }
}

/// Runs a TLS handshake with the client on `tcp`; the connection and what it negotiated, or
/// the reason it failed. Whatever alert rustls has for a failing client is sent first.
pub async fn accept(
    tcp: TcpStream,
    config: Arc<ServerConfig>,
) -> io::Result<(ClientTls, Negotiated)> {
    let mut sock = Sock::from(tcp);
    let mut conn = UnbufferedServerConnection::new(config).map_err(tls_error)?;
    let mut inb: Vec<u8> = Vec::new();
    let mut outb: Vec<u8> = Vec::new();
    let mut plain: Vec<u8> = Vec::new();
    let mut sni: Option<Option<String>> = None;
    loop {
        let UnbufferedStatus { discard, state } = conn.process_tls_records(&mut inb);
        let (mut need_read, mut writable) = (false, false);
        match state {
            Err(e) => {
                // The client learns why (an alert), best effort.
                outb.clear();
                take_alert(&mut conn, &mut outb);
                sock.write_all(&outb).await.ok();
                return Err(tls_error(e));
            }
            Ok(ConnectionState::EncodeTlsData(mut e)) => encode_into(&mut e, &mut outb),
            Ok(ConnectionState::TransmitTlsData(t)) => {
                sock.write_all(&outb).await?;
                outb.clear();
                t.done();
            }
            Ok(ConnectionState::BlockedHandshake) => need_read = true,
            Ok(ConnectionState::WriteTraffic(_)) => writable = true,
            Ok(ConnectionState::ReadTraffic(mut r)) => {
                while let Some(rec) = r.next_record() {
                    plain.extend_from_slice(rec.map_err(tls_error)?.payload);
                }
            }
            Ok(ConnectionState::PeerClosed | ConnectionState::Closed) => {
                return Err(closed_in_handshake());
            }
            Ok(other) => {
                return Err(io::Error::other(format!(
                    "unexpected TLS state in the handshake: {other:?}"
                )));
            }
        }
        inb.drain(..discard);
        if writable && !conn.is_handshaking() {
            break;
        }
        if need_read || writable {
            if inb.len() >= MAX_HANDSHAKE_BYTES {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "the client's handshake is larger than 64 KiB",
                ));
            }
            inb.reserve(8 * 1024);
            if sock.read_buf(&mut inb).await? == 0 {
                return Err(closed_in_handshake());
            }
            if sni.is_none() {
                sni = client_hello_sni(&inb);
            }
        }
    }
    let negotiated = Negotiated {
        sni: sni.flatten(),
        version: conn
            .protocol_version()
            .map(|v| format!("{v:?}").replace("TLSv1_", "TLS 1."))
            .unwrap_or_default(),
        cipher: conn
            .negotiated_cipher_suite()
            .map(|c| format!("{:?}", c.suite()))
            .unwrap_or_default(),
    };
    let tls = ClientTls {
        sock,
        conn,
        partial: if inb.is_empty() { Vec::new() } else { inb },
        plain,
        plain_at: 0,
        out: Vec::new(),
        out_at: 0,
        read_closed: false,
        write_closed: false,
    };
    Ok((tls, negotiated))
}

/// Encodes into `out` what rustls queued after an error (its fatal alert).
fn take_alert(conn: &mut UnbufferedServerConnection, out: &mut Vec<u8>) {
    for _ in 0..4 {
        match conn.process_tls_records(&mut []).state {
            Ok(ConnectionState::EncodeTlsData(mut e)) => encode_into(&mut e, out),
            Ok(ConnectionState::TransmitTlsData(t)) => t.done(),
            _ => break,
        }
    }
}

impl ClientTls {
    /// Takes the socket off the current runtime's reactor (see [`super::handoff`]).
    pub fn park(&mut self) -> io::Result<()> {
        self.sock.park()
    }

    /// Registers a parked socket with the current runtime's reactor.
    pub fn unpark(&mut self) -> io::Result<()> {
        self.sock.unpark()
    }

    /// Hands over decrypted bytes waiting from an earlier read; whether there were any.
    fn hand_over(&mut self, buf: &mut ReadBuf<'_>) -> bool {
        let Some(left) = self.plain.get(self.plain_at..).filter(|l| !l.is_empty()) else {
            return false;
        };
        let n = left.len().min(buf.remaining());
        buf.put_slice(&left[..n]);
        self.plain_at += n;
        if self.plain_at == self.plain.len() {
            self.plain = Vec::new();
            self.plain_at = 0;
        }
        true
    }

    /// Opens every whole record in `data`: plaintext into `buf`, what does not fit into
    /// `plain`, handshake replies (key updates) into `out`. How many bytes it used; the rest
    /// is part of a record.
    fn open_records(&mut self, data: &mut [u8], buf: &mut ReadBuf<'_>) -> io::Result<usize> {
        let mut at = 0;
        loop {
            let UnbufferedStatus { discard, state } =
                self.conn.process_tls_records(&mut data[at..]);
            let mut more = true;
            match state.map_err(tls_error)? {
                ConnectionState::ReadTraffic(mut r) => {
                    while let Some(rec) = r.next_record() {
                        let payload = rec.map_err(tls_error)?.payload;
                        let n = payload.len().min(buf.remaining());
                        buf.put_slice(&payload[..n]);
                        if let Some(rest) = payload.get(n..).filter(|r| !r.is_empty()) {
                            self.plain.extend_from_slice(rest);
                        }
                    }
                }
                ConnectionState::EncodeTlsData(mut e) => encode_into(&mut e, &mut self.out),
                ConnectionState::TransmitTlsData(t) => t.done(),
                ConnectionState::PeerClosed | ConnectionState::Closed => {
                    self.read_closed = true;
                    more = false;
                }
                ConnectionState::WriteTraffic(_) | ConnectionState::BlockedHandshake => {
                    more = false
                }
                other => {
                    return Err(io::Error::other(format!(
                        "unexpected TLS state after the handshake: {other:?}"
                    )));
                }
            }
            at += discard;
            if !more {
                return Ok(at);
            }
        }
    }

    /// Reads from the socket once and opens the records it completes; `false` at the end
    /// of the TCP stream.
    fn poll_land(&mut self, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<bool>> {
        LANDING.with_borrow_mut(|land| {
            let held = self.partial.len();
            if held > MAX_RECORD {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "a TLS record longer than TLS allows",
                )));
            }
            land[..held].copy_from_slice(&self.partial);
            let mut into = ReadBuf::new(&mut land[held..]);
            ready!(Pin::new(&mut self.sock).poll_read(cx, &mut into))?;
            let got = into.filled().len();
            if got == 0 {
                return Poll::Ready(Ok(false));
            }
            let filled = held + got;
            let used = self.open_records(&mut land[..filled], buf)?;
            let rest = land.get(used..filled).unwrap_or_default();
            if self.read_closed || rest.is_empty() {
                self.partial = Vec::new();
            } else {
                self.partial = rest.to_vec();
            }
            Poll::Ready(Ok(true))
        })
    }

    /// Writes sealed bytes still waiting; ready once there are none.
    fn poll_send_out(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some(left) = self.out.get(self.out_at..).filter(|l| !l.is_empty()) {
            match ready!(Pin::new(&mut self.sock).poll_write(cx, left))? {
                0 => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                n => self.out_at += n,
            }
        }
        self.out = Vec::new();
        self.out_at = 0;
        Poll::Ready(Ok(()))
    }

    /// Drives rustls to the state where application data may be written (encoding any
    /// handshake message it has queued into `out` on the way) and runs `f` there.
    fn with_write_traffic<T>(
        &mut self,
        f: impl FnOnce(&mut WriteTraffic<'_, rustls::server::ServerConnectionData>) -> T,
    ) -> io::Result<T> {
        for _ in 0..16 {
            let UnbufferedStatus { state, .. } = self.conn.process_tls_records(&mut []);
            match state.map_err(tls_error)? {
                ConnectionState::WriteTraffic(mut w) => return Ok(f(&mut w)),
                ConnectionState::EncodeTlsData(mut e) => encode_into(&mut e, &mut self.out),
                ConnectionState::TransmitTlsData(t) => t.done(),
                ConnectionState::PeerClosed => {}
                other => {
                    return Err(io::Error::new(
                        io::ErrorKind::BrokenPipe,
                        format!("TLS connection cannot be written to: {other:?}"),
                    ));
                }
            }
        }
        Err(io::Error::other("TLS connection never became writable"))
    }

    /// Seals `data` (at most [`SEAL_AT_ONCE`]) into `room`; how many bytes it took there.
    fn seal(&mut self, data: &[u8], room: &mut [u8]) -> io::Result<usize> {
        let sealed = self.with_write_traffic(|w| w.encrypt(data, room))?;
        match sealed {
            Ok(n) => Ok(n),
            Err(EncryptError::InsufficientSize(InsufficientSizeError { required_size })) => {
                // More queued ahead of the data than usual: seal into a buffer of its own.
                let mut big = vec![0u8; required_size];
                let n = self
                    .with_write_traffic(|w| w.encrypt(data, &mut big))?
                    .map_err(io::Error::other)?;
                big.truncate(n);
                self.out.extend_from_slice(&big);
                Ok(0)
            }
            Err(e) => Err(io::Error::other(e)),
        }
    }
}

impl AsyncRead for ClientTls {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        // Replies rustls owes the client (a key update) go out as soon as the socket takes
        // them; reading does not wait for that.
        if let Poll::Ready(Err(e)) = this.poll_send_out(cx) {
            return Poll::Ready(Err(e));
        }
        if this.hand_over(buf) {
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        loop {
            if this.read_closed {
                return Poll::Ready(Ok(()));
            }
            let landed = match ready!(this.poll_land(cx, buf)) {
                Ok(landed) => landed,
                Err(e) => {
                    // Bad records: the client is told (an alert), best effort.
                    if e.kind() == io::ErrorKind::InvalidData {
                        take_alert(&mut this.conn, &mut this.out);
                        let _ = this.poll_send_out(cx);
                    }
                    return Poll::Ready(Err(e));
                }
            };
            if !landed {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "peer closed connection without sending TLS close_notify",
                )));
            }
            if !this.out.is_empty() {
                let _ = this.poll_send_out(cx)?;
            }
            if buf.filled().len() > before || buf.remaining() == 0 {
                return Poll::Ready(Ok(()));
            }
        }
    }
}

impl AsyncWrite for ClientTls {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        // Earlier sealed bytes first: nothing new is taken while the socket is full.
        ready!(this.poll_send_out(cx))?;
        if this.write_closed {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "TLS connection already closed for writing",
            )));
        }
        if data.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let take = data.len().min(SEAL_AT_ONCE);
        SEALING.with_borrow_mut(|room| {
            let n = this.seal(&data[..take], room)?;
            let mut sent = 0;
            // `out` holds what had to be sealed elsewhere; it goes first.
            if this.out.is_empty() {
                while sent < n {
                    match Pin::new(&mut this.sock).poll_write(cx, &room[sent..n]) {
                        Poll::Ready(Ok(0)) => {
                            return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                        }
                        Poll::Ready(Ok(k)) => sent += k,
                        Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                        Poll::Pending => break,
                    }
                }
            }
            if sent < n {
                // Taken: the socket gets it before anything else (see above).
                this.out.extend_from_slice(&room[sent..n]);
            }
            Poll::Ready(Ok(take))
        })
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_send_out(cx))?;
        Pin::new(&mut this.sock).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.write_closed {
            this.write_closed = true;
            let mut alert = [0u8; 64];
            // Nothing to say on a connection rustls has closed already.
            if let Ok(Ok(n)) = this.with_write_traffic(|w| w.queue_close_notify(&mut alert)) {
                this.out.extend_from_slice(&alert[..n]);
            }
        }
        ready!(this.poll_send_out(cx))?;
        Pin::new(&mut this.sock).poll_shutdown(cx)
    }
}

/// The server name in a ClientHello at the start of `data`: `None` until the whole first
/// record has arrived, `Some(None)` when it has and holds no valid name (or is no ClientHello).
pub fn client_hello_sni(data: &[u8]) -> Option<Option<String>> {
    let mut rec = Cursor(data);
    if rec.u8()? != 22 {
        return Some(None);
    }
    let (_version, len) = (rec.u16()?, rec.u16()?);
    match rec.take(len as usize) {
        Some(body) => Some(sni_in_handshake(body)),
        // Not the whole record yet, or a header lying about its length.
        None if (len as usize) <= MAX_RECORD => None,
        None => Some(None),
    }
}

/// The SNI host name in a ClientHello handshake message (which may be cut short: then none).
fn sni_in_handshake(body: &[u8]) -> Option<String> {
    let mut m = Cursor(body);
    if m.u8()? != 1 {
        return None;
    }
    let _len = m.u24()?;
    m.take(2 + 32)?; // legacy_version, random
    let sid = m.u8()?;
    m.take(sid as usize)?;
    let suites = m.u16()?;
    m.take(suites as usize)?;
    let comp = m.u8()?;
    m.take(comp as usize)?;
    let ext_len = m.u16()?;
    let mut exts = Cursor(m.take(ext_len as usize)?);
    while !exts.0.is_empty() {
        let (kind, len) = (exts.u16()?, exts.u16()?);
        let ext = exts.take(len as usize)?;
        if kind != 0 {
            continue;
        }
        let mut list = Cursor(ext);
        let list_len = list.u16()?;
        let mut names = Cursor(list.take(list_len as usize)?);
        while !names.0.is_empty() {
            let (name_type, len) = (names.u8()?, names.u16()?);
            let name = names.take(len as usize)?;
            if name_type == 0 {
                let name = std::str::from_utf8(name).ok()?;
                // As rustls does: a DNS name (not an IP address), lower-cased, no final dot.
                let dns = rustls::pki_types::DnsName::try_from(name).ok()?;
                if name.parse::<std::net::IpAddr>().is_ok() {
                    return None;
                }
                let s = dns.as_ref().trim_end_matches('.').to_ascii_lowercase();
                return Some(s);
            }
        }
        return None;
    }
    None
}

/// Reads big-endian fields off the front of a slice.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = (self.0.get(..n)?, self.0.get(n..)?);
        self.0 = rest;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }
    fn u24(&mut self) -> Option<u32> {
        self.take(3)
            .map(|b| u32::from_be_bytes([0, b[0], b[1], b[2]]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
    use std::time::Duration;

    const LIMIT: Duration = Duration::from_secs(20);

    type Client = tokio_rustls::client::TlsStream<TcpStream>;

    /// A relay server config for `localhost` and a client config that trusts it.
    fn configs(
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> (Arc<ServerConfig>, Arc<rustls::ClientConfig>) {
        let ck = rcgen::generate_simple_self_signed(vec![
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
        ])
        .unwrap();
        let der = CertificateDer::from(ck.cert.der().to_vec());
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ck.signing_key.serialize_der()));
        let provider = crate::crypto::provider();
        let signing = provider.key_provider.load_private_key(key).unwrap();
        let certified = Arc::new(rustls::sign::CertifiedKey::new(vec![der.clone()], signing));
        let server = crate::relay::tls::server_config(certified, Vec::new()).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(der).unwrap();
        let client = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        (server, Arc::new(client))
    }

    /// A relay-side connection and a rustls client connected to it over loopback.
    async fn pair(
        versions: &[&'static rustls::SupportedProtocolVersion],
        name: &str,
    ) -> (ClientTls, Negotiated, Client) {
        let (server, client) = configs(versions);
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let name = ServerName::try_from(name.to_owned()).unwrap();
        let connect = async {
            let tcp = TcpStream::connect(addr).await.unwrap();
            tokio_rustls::TlsConnector::from(client)
                .connect(name, tcp)
                .await
                .unwrap()
        };
        let accept = async {
            let (tcp, _) = l.accept().await.unwrap();
            accept(tcp, server).await.unwrap()
        };
        let ((tls, negotiated), client) =
            tokio::time::timeout(LIMIT, async { tokio::join!(accept, connect) })
                .await
                .unwrap();
        (tls, negotiated, client)
    }

    fn pattern(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect()
    }

    /// Reads exactly `len` bytes with reads of at most `step`.
    async fn read_in_steps(r: &mut (impl AsyncRead + Unpin), len: usize, step: usize) -> Vec<u8> {
        let mut got = Vec::with_capacity(len);
        let mut chunk = vec![0u8; step];
        while got.len() < len {
            let n = r.read(&mut chunk).await.unwrap();
            assert!(n > 0, "EOF after {} of {len} bytes", got.len());
            got.extend_from_slice(&chunk[..n]);
        }
        got
    }

    #[tokio::test]
    async fn records_cross_both_ways_whole_whatever_the_sizes() {
        for versions in [
            &[&rustls::version::TLS13][..],
            &[&rustls::version::TLS12][..],
        ] {
            let (mut tls, negotiated, mut client) = pair(versions, "localhost").await;
            assert_eq!(negotiated.sni.as_deref(), Some("localhost"));
            let want_version = if versions[0] == &rustls::version::TLS13 {
                "TLS 1.3"
            } else {
                "TLS 1.2"
            };
            assert_eq!(negotiated.version, want_version);
            assert!(!negotiated.cipher.is_empty());
            // Client to relay: writes of odd sizes, read through a buffer smaller than a
            // record, so decrypted bytes wait for the next read.
            let up = pattern(300_000, 7);
            let down = pattern(250_000, 99);
            let send_up = async {
                for part in up.chunks(7_777) {
                    client.write_all(part).await.unwrap();
                }
                client.flush().await.unwrap();
                read_in_steps(&mut client, down.len(), 65_536).await
            };
            let relay = async {
                let got = read_in_steps(&mut tls, up.len(), 1_000).await;
                for part in down.chunks(40_000) {
                    tls.write_all(part).await.unwrap();
                }
                tls.flush().await.unwrap();
                got
            };
            let (back, got) = tokio::time::timeout(LIMIT, async { tokio::join!(send_up, relay) })
                .await
                .unwrap();
            assert!(got == up, "relay received different bytes ({want_version})");
            assert!(
                back == down,
                "client received different bytes ({want_version})"
            );
            // Between records, an idle connection keeps no buffer.
            assert_eq!(
                (
                    tls.partial.capacity(),
                    tls.plain.capacity(),
                    tls.out.capacity()
                ),
                (0, 0, 0)
            );
        }
    }

    #[tokio::test]
    async fn a_client_without_sni_has_none_recorded() {
        let (_tls, negotiated, _client) = pair(&[&rustls::version::TLS13], "127.0.0.1").await;
        assert_eq!(negotiated.sni, None);
    }

    #[tokio::test]
    async fn close_notify_ends_reads_and_a_bare_tcp_close_is_an_error() {
        // The client says goodbye: the relay reads EOF.
        let (mut tls, _, mut client) = pair(&[&rustls::version::TLS13], "localhost").await;
        client.write_all(b"last words").await.unwrap();
        client.shutdown().await.unwrap();
        let mut all = Vec::new();
        tokio::time::timeout(LIMIT, tls.read_to_end(&mut all))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(all, b"last words");
        // The relay says goodbye: the client reads EOF, not an error.
        tls.shutdown().await.unwrap();
        let mut rest = Vec::new();
        tokio::time::timeout(LIMIT, client.read_to_end(&mut rest))
            .await
            .unwrap()
            .unwrap();
        assert!(rest.is_empty());

        // The client's TCP closes without close_notify: an error naming it.
        let (mut tls, _, client) = pair(&[&rustls::version::TLS12], "localhost").await;
        drop(client);
        let mut buf = [0u8; 16];
        let e = tokio::time::timeout(LIMIT, tls.read(&mut buf))
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
        assert!(e.to_string().contains("close_notify"), "{e}");
    }

    #[tokio::test]
    async fn a_key_update_from_the_client_is_followed() {
        let (mut tls, _, mut client) = pair(&[&rustls::version::TLS13], "localhost").await;
        for round in 0..3u8 {
            client.get_mut().1.refresh_traffic_keys().unwrap();
            let msg = pattern(20_000, round);
            client.write_all(&msg).await.unwrap();
            client.flush().await.unwrap();
            let got = tokio::time::timeout(LIMIT, read_in_steps(&mut tls, msg.len(), 4096))
                .await
                .unwrap();
            assert!(got == msg);
            tls.write_all(&msg).await.unwrap();
            tls.flush().await.unwrap();
            let back = tokio::time::timeout(LIMIT, read_in_steps(&mut client, msg.len(), 4096))
                .await
                .unwrap();
            assert!(back == msg);
        }
    }

    #[tokio::test]
    async fn bad_bytes_are_errors_not_panics() {
        let (server, _) = configs(&[&rustls::version::TLS13]);
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        // Not TLS at all: the handshake fails with rustls's reason, and the client gets an
        // alert rather than silence.
        for garbage in [
            &b"GET /mqtt HTTP/1.1\r\nHost: x\r\n\r\n"[..],
            &[22, 3, 1, 0xff, 0xff, 1, 2, 3][..],
            &[22, 3, 1, 0, 4, 1, 0, 0, 0][..],
        ] {
            let mut raw = TcpStream::connect(addr).await.unwrap();
            let (tcp, _) = l.accept().await.unwrap();
            raw.write_all(garbage).await.unwrap();
            let e = tokio::time::timeout(LIMIT, accept(tcp, server.clone()))
                .await
                .unwrap()
                .unwrap_err();
            assert!(!e.to_string().is_empty());
            let mut alert = Vec::new();
            let _ = tokio::time::timeout(LIMIT, raw.read_to_end(&mut alert)).await;
            assert_eq!(alert.first(), Some(&21), "an alert record for {garbage:?}");
        }
        // A client that closes half-way through its hello.
        let mut raw = TcpStream::connect(addr).await.unwrap();
        let (tcp, _) = l.accept().await.unwrap();
        raw.write_all(&[22, 3, 1, 0, 200, 1, 0]).await.unwrap();
        drop(raw);
        let e = tokio::time::timeout(LIMIT, accept(tcp, server.clone()))
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);

        // After the handshake: a forged record, and a header longer than TLS allows.
        for forged in [
            &[23, 3, 3, 0, 5, 1, 2, 3, 4, 5][..],
            &[23, 3, 3, 0xff, 0xff][..],
        ] {
            // TLS 1.2, whose alerts show as such on the wire.
            let (mut tls, _, client) = pair(&[&rustls::version::TLS12], "localhost").await;
            let (mut tcp, _) = client.into_inner();
            tcp.write_all(forged).await.unwrap();
            let mut buf = [0u8; 64];
            let e = tokio::time::timeout(LIMIT, tls.read(&mut buf))
                .await
                .unwrap()
                .unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{e}");
            drop(tls);
            // The client was told: an alert record before the close.
            let mut told = Vec::new();
            let _ = tokio::time::timeout(LIMIT, tcp.read_to_end(&mut told)).await;
            assert_eq!(told.first(), Some(&21), "{told:?}");
        }
    }

    /// A ClientHello as rustls writes it for `name`.
    fn hello_for(name: &str) -> Vec<u8> {
        let (_, client) = configs(&[&rustls::version::TLS13, &rustls::version::TLS12]);
        let name = ServerName::try_from(name.to_owned()).unwrap();
        let mut conn = rustls::ClientConnection::new(client, name).unwrap();
        let mut out = Vec::new();
        conn.write_tls(&mut out).unwrap();
        out
    }

    #[test]
    fn the_server_name_is_read_from_the_client_hello() {
        let hello = hello_for("Relay.Example.COM");
        assert_eq!(
            client_hello_sni(&hello),
            Some(Some("relay.example.com".to_owned()))
        );
        // No name for an IP address (rustls sends no SNI then), nor for what is not a hello.
        assert_eq!(client_hello_sni(&hello_for("10.0.0.1")), Some(None));
        assert_eq!(client_hello_sni(b"GET / HTTP/1.1\r\n\r\n"), Some(None));
        // Every cut of the hello: wait for more, never a panic, never a wrong name.
        for cut in 0..hello.len() {
            assert_eq!(client_hello_sni(&hello[..cut]), None, "cut at {cut}");
        }
        // Every byte flipped: some answer, never a panic.
        for i in 0..hello.len() {
            let mut bad = hello.clone();
            bad[i] ^= 0xa5;
            let _ = client_hello_sni(&bad);
        }
    }
}
