//! The endpoint probe, step by step in WeChat's order. Every step has its own timeout; a step
//! that cannot run says which earlier step stopped it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_util::sync::CancellationToken;

use super::tls_probe::{self, Answer};
use super::url::{self, Target};
use super::{CATALOGUE, Check, CheckStatus, Options, Report};
use crate::certs::tls_words::{describe, explain};
use crate::i18n::l;
use crate::mqtt::wire;
use crate::verdict::{L10n, Status};

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}
type Stream = Box<dyn Io>;

/// Collects checks in catalogue order and reports each as it is decided.
struct Run<'a> {
    checks: Vec<Check>,
    progress: Box<dyn FnMut(&Check) + Send + 'a>,
}

impl Run<'_> {
    fn push(&mut self, c: Check) {
        (self.progress)(&c);
        self.checks.push(c);
    }

    fn add(
        &mut self,
        id: &'static str,
        status: CheckStatus,
        detail: L10n,
        remedy: L10n,
        elapsed: Duration,
    ) {
        self.push(Check::new(id, status, detail, remedy).took(elapsed));
    }

    /// A check that does not apply here, and why.
    fn skip(&mut self, id: &'static str, why: L10n, elapsed: Duration) {
        self.add(id, CheckStatus::Skipped, why, L10n::default(), elapsed);
    }

    fn done(&self, id: &str) -> bool {
        self.checks.iter().any(|c| c.id == id)
    }

    fn status(&self, id: &str) -> Option<CheckStatus> {
        self.checks.iter().find(|c| c.id == id).map(|c| c.status)
    }

    /// Marks every network check not yet decided as skipped, with `why`.
    fn skip_rest(&mut self, why: &L10n) {
        for (id, ..) in CATALOGUE {
            if id.starts_with("MP-PROJECT") || ["MP-WHITELIST", "MP-ICP"].contains(id) {
                continue;
            }
            if !self.done(id) {
                self.skip(id, why.clone(), Duration::ZERO);
            }
        }
    }
}

/// What the steps learned, for later steps and the summary.
#[derive(Default)]
struct Facts {
    addr: Option<SocketAddr>,
    dns: Option<Duration>,
    tcp: Option<Duration>,
    tls: Option<Duration>,
    upgrade: Option<Duration>,
    connack: Option<Duration>,
    /// Seconds after which an idle connection was cut, from MP-KEEPALIVE.
    idle_cut: Option<f64>,
    /// Whether the served chain verifies for the host (public roots or the extra roots);
    /// `None` without TLS. Credentials go only where it is `Some(Ok)`.
    verified: Option<Result<(), L10n>>,
}

impl Facts {
    /// Why the user name and password stay home, if they do.
    fn withheld(&self, opts: &Options, t: &Target) -> Option<L10n> {
        if opts.username.is_none() && opts.password.is_none() || opts.send_credentials_anyway {
            return None;
        }
        match &self.verified {
            Some(Ok(())) => None,
            Some(Err(e)) => Some(l(
                format!(
                    "the certificate did not verify for {} ({e})",
                    t.host,
                    e = e.en
                ),
                format!("证书未能针对 {} 通过验证（{e}）", t.host, e = e.zh),
            )),
            None => Some(l(
                "there is no TLS: they would cross the network in clear text",
                "没有 TLS：它们会以明文经过网络",
            )),
        }
    }
}

pub async fn run(
    target_url: &str,
    opts: &Options,
    progress: impl FnMut(&Check) + Send,
    cancel: CancellationToken,
) -> Report {
    let started = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    // Credentials written into the URL never reach the report, the history or the screen.
    let target_url = &url::redact(target_url);
    let mut run = Run {
        checks: Vec::new(),
        progress: Box::new(progress),
    };
    let mut facts = Facts::default();
    let target = url::parse(target_url);
    let mut cancelled = false;
    match &target {
        Err(e) => {
            run.add(
                "MP-URL-SCHEME",
                CheckStatus::Fail,
                e.clone(),
                l(
                    "Write the address as wxs://your.domain/mqtt.",
                    "请把地址写成 wxs://你的域名/mqtt。",
                ),
                Duration::ZERO,
            );
            run.skip_rest(&l("the URL could not be read", "无法解析该 URL"));
        }
        Ok(t) => {
            let steps = steps(t, opts, &mut run, &mut facts);
            tokio::select! {
                _ = steps => {}
                _ = cancel.cancelled() => { cancelled = true; }
            }
            if cancelled {
                run.skip_rest(&l("the run was cancelled", "检查已取消"));
            }
        }
    }
    // Manual rules.
    let host = target.as_ref().map(|t| t.host.clone()).ok();
    let whitelist = host.as_ref().map(|h| format!("wss://{h}"));
    if let Some(line) = &whitelist {
        run.add(
            "MP-WHITELIST",
            CheckStatus::Manual,
            l(
                format!(
                    "Add exactly this line in the Mini Program admin: 开发管理 → 开发设置 → 服务器域名 → socket合法域名: {line} (no port, no path). Sub-domains are not covered by a parent domain."
                ),
                format!(
                    "在小程序后台 开发管理 → 开发设置 → 服务器域名 → socket合法域名 中填写：{line}（不带端口和路径）。父域名不覆盖子域名。"
                ),
            ),
            l(
                "After changing the list, remove the Mini Program from WeChat's recent list and reopen it; DevTools' \"do not verify domain names\" hides this error.",
                "修改后，在微信“最近使用”中删除该小程序再重新打开；开发者工具的“不校验合法域名”会掩盖此错误。",
            ),
            Duration::ZERO,
        );
    }
    run.add(
        "MP-ICP",
        CheckStatus::Manual,
        l(
            format!(
                "{} must have an ICP filing (备案): the admin console refuses unfiled domains.",
                host.as_deref().unwrap_or("The domain")
            ),
            format!(
                "{} 必须完成 ICP 备案：未备案的域名无法加入服务器域名。",
                host.as_deref().unwrap_or("该域名")
            ),
        ),
        l(
            "File the domain with your cloud provider's ICP service before adding it to the whitelist.",
            "在加入白名单前，通过云厂商的备案服务完成 ICP 备案。",
        ),
        Duration::ZERO,
    );
    if let Some(dir) = opts.project.clone() {
        // Reading a project is disk work: keep it off the async workers.
        let idle = opts.relay_idle_secs;
        let found = tokio::task::spawn_blocking(move || super::project::scan(&dir, idle))
            .await
            .unwrap_or_default();
        for c in found {
            run.push(c);
        }
    }
    let summary = Report::summarize(&run.checks);
    let snippet = match &target {
        // The endpoint speaks MQTT to a client that trusts it: here is that client.
        Ok(t) if run.status("MP-MQTT-CONNECT") == Some(CheckStatus::Pass) => {
            Some(snippet(t, opts, facts.idle_cut))
        }
        _ => None,
    };
    Report {
        target: target_url.trim().to_owned(),
        started,
        checks: run.checks,
        summary,
        whitelist,
        snippet,
        cancelled,
    }
}

/// The Mini Program side, ready to paste.
fn snippet(t: &Target, opts: &Options, idle_cut: Option<f64>) -> String {
    let port = match t.explicit_port {
        Some(p) if p != 443 => format!(":{p}"),
        _ => String::new(),
    };
    // Keep well below a proxy's idle timeout: nginx defaults to 60 s.
    let keepalive = match idle_cut {
        Some(cut) => ((cut / 2.0) as u64).clamp(5, 30),
        None => 30,
    };
    let creds = match &opts.username {
        Some(u) => format!("  username: '{u}',\n  password: '<password>',\n"),
        None => String::new(),
    };
    format!(
        "// mqtt.js 4.2.1: dist/mqtt.min.js copied into the project (e.g. utils/mqtt.min.js)\n\
         const mqtt = require('./utils/mqtt.min.js')\n\
         const client = mqtt.connect('wxs://{host}{port}{path}', {{\n  \
         clientId: 'mp_' + Math.random().toString(16).slice(2, 10),\n  \
         keepalive: {keepalive},\n  \
         reconnectPeriod: 3000,\n  \
         connectTimeout: 10000,\n{creds}}})\n",
        host = t.host,
        path = t.path,
    )
}

async fn resolve(t: &Target, opts: &Options) -> Result<Vec<SocketAddr>, L10n> {
    if let Some(ip) = t.ip() {
        return Ok(vec![SocketAddr::new(ip, t.port)]);
    }
    if let Some((_, ip)) = opts
        .resolve
        .iter()
        .find(|(h, _)| h.eq_ignore_ascii_case(&t.host))
    {
        return Ok(vec![SocketAddr::new(*ip, t.port)]);
    }
    let found = tokio::time::timeout(
        opts.step_timeout,
        tokio::net::lookup_host((t.host.as_str(), t.port)),
    )
    .await
    .map_err(|_| {
        let secs = opts.step_timeout.as_secs();
        l(
            format!("no DNS answer within {secs} s"),
            format!("{secs} 秒内没有 DNS 应答"),
        )
    })?
    .map_err(|e| dns_error(&e))?;
    let addrs: Vec<SocketAddr> = found.collect();
    if addrs.is_empty() {
        return Err(l("the name has no address", "该域名没有地址"));
    }
    Ok(addrs)
}

fn sni(t: &Target) -> Option<&str> {
    if t.ip().is_some() {
        None
    } else {
        Some(t.host.as_str())
    }
}

fn server_name(t: &Target) -> Result<ServerName<'static>, L10n> {
    ServerName::try_from(t.host.clone()).map_err(|_| {
        l(
            format!("{} is not a valid host name", t.host),
            format!("{} 不是有效的主机名", t.host),
        )
    })
}

/// A failed DNS lookup: the resolver's words are the system's, so say it plainly.
fn dns_error(e: &std::io::Error) -> L10n {
    match e.kind() {
        std::io::ErrorKind::TimedOut => crate::i18n::io_error(e),
        _ => l(
            format!("no DNS record for this name ({e})"),
            "找不到该域名的 DNS 记录",
        ),
    }
}

/// A rustls client that records instead of judging (the chain is judged by `certs`).
fn tls_config(
    versions: &[&'static rustls::SupportedProtocolVersion],
    alpn: &[&[u8]],
) -> Result<Arc<rustls::ClientConfig>, L10n> {
    let provider = crate::crypto::provider();
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .map_err(|e| describe(&e))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(crate::certs::fetch::RecordOnly::new(provider)))
        .with_no_client_auth();
    cfg.alpn_protocols = alpn.iter().map(|a| a.to_vec()).collect();
    Ok(Arc::new(cfg))
}

struct TlsInfo {
    version: String,
    cipher: String,
    alpn: Option<String>,
    chain: Vec<CertificateDer<'static>>,
    elapsed: Duration,
}

async fn rustls_handshake(
    addr: SocketAddr,
    t: &Target,
    cfg: Arc<rustls::ClientConfig>,
    timeout: Duration,
) -> Result<(TlsInfo, tokio_rustls::client::TlsStream<TcpStream>), L10n> {
    let t0 = Instant::now();
    let work = async {
        let tcp = TcpStream::connect(addr)
            .await
            .map_err(|e| crate::i18n::io_error(&e))?;
        tcp.set_nodelay(true).ok();
        let tls = tokio_rustls::TlsConnector::from(cfg)
            .connect(server_name(t)?, tcp)
            .await
            .map_err(|e| describe(&e))?;
        let (_, c) = tls.get_ref();
        let info = TlsInfo {
            version: match c.protocol_version() {
                Some(rustls::ProtocolVersion::TLSv1_3) => "TLS 1.3".into(),
                Some(rustls::ProtocolVersion::TLSv1_2) => "TLS 1.2".into(),
                other => format!("{other:?}"),
            },
            cipher: c
                .negotiated_cipher_suite()
                .map(|s| format!("{:?}", s.suite()))
                .unwrap_or_default(),
            alpn: c
                .alpn_protocol()
                .map(|a| String::from_utf8_lossy(a).into_owned()),
            chain: c
                .peer_certificates()
                .map(|c| c.iter().map(|c| c.clone().into_owned()).collect())
                .unwrap_or_default(),
            elapsed: Duration::ZERO,
        };
        Ok::<_, L10n>((info, tls))
    };
    let (mut info, tls) = tokio::time::timeout(timeout, work).await.map_err(|_| {
        let secs = timeout.as_secs();
        l(
            format!("no TLS handshake within {secs} s"),
            format!("{secs} 秒内没有完成 TLS 握手"),
        )
    })??;
    info.elapsed = t0.elapsed();
    Ok((info, tls))
}

/// Opens a stream ready for the upgrade: TLS with ALPN http/1.1 (as WeChat), or plain TCP.
async fn open_stream(addr: SocketAddr, t: &Target, timeout: Duration) -> Result<Stream, L10n> {
    if t.tls {
        let cfg = tls_config(
            &[&rustls::version::TLS13, &rustls::version::TLS12],
            &[b"http/1.1"],
        )?;
        let (_, s) = rustls_handshake(addr, t, cfg, timeout).await?;
        Ok(Box::new(s))
    } else {
        let tcp = tokio::time::timeout(timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| l("the TCP connection timed out", "TCP 连接超时"))?
            .map_err(|e| crate::i18n::io_error(&e))?;
        tcp.set_nodelay(true).ok();
        Ok(Box::new(tcp))
    }
}

/// The 101 (or not) to an upgrade request.
struct UpgradeAnswer {
    status: u16,
    reason: String,
    headers: Vec<(String, String)>,
    /// Bytes after the head (the first frames).
    leftover: Vec<u8>,
    key: String,
}

impl UpgradeAnswer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Sends the upgrade exactly as mqtt.js's `wx` transport does through `wx.connectSocket`.
async fn upgrade(
    stream: &mut Stream,
    t: &Target,
    path: &str,
    opts: &Options,
) -> Result<UpgradeAnswer, L10n> {
    use base64::Engine as _;
    let key = base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 16]>());
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Protocol: mqtt\r\n\
         Referer: https://servicewechat.com/{appid}/0/page-frame.html\r\n\
         User-Agent: Mozilla/5.0 (Linux; Android 13; mpbridge-check) AppleWebKit/537.36 (KHTML, like Gecko) \
         Version/4.0 Chrome/116.0.0.0 Mobile Safari/537.36 MicroMessenger/8.0.49 MiniProgramEnv/android\r\n\r\n",
        host = t.authority(),
        appid = opts.appid,
    );
    let work = async {
        stream.write_all(req.as_bytes()).await.map_err(|e| {
            let e = describe(&e);
            e.after("sending the upgrade failed: ", "发送升级请求失败：")
        })?;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            let n = stream.read(&mut chunk).await.map_err(|e| describe(&e))?;
            if n == 0 {
                return Err(if buf.is_empty() {
                    l(
                        "the server closed the connection without answering the upgrade",
                        "服务器没有回应升级请求就关闭了连接",
                    )
                } else {
                    l(
                        "the server closed the connection in the middle of its answer",
                        "服务器在回应途中关闭了连接",
                    )
                });
            }
            buf.extend_from_slice(&chunk[..n]);
            let mut headers = [httparse::EMPTY_HEADER; 64];
            let mut resp = httparse::Response::new(&mut headers);
            match resp.parse(&buf) {
                Ok(httparse::Status::Complete(len)) => {
                    return Ok(UpgradeAnswer {
                        status: resp.code.unwrap_or(0),
                        reason: resp.reason.unwrap_or("").to_owned(),
                        headers: resp
                            .headers
                            .iter()
                            .map(|h| {
                                (
                                    h.name.to_owned(),
                                    String::from_utf8_lossy(h.value).trim().to_owned(),
                                )
                            })
                            .collect(),
                        leftover: buf[len..].to_vec(),
                        key: key.clone(),
                    });
                }
                Ok(httparse::Status::Partial) if buf.len() < 16 * 1024 => {}
                Ok(httparse::Status::Partial) => {
                    return Err(l(
                        "the answer's head is longer than 16 KB",
                        "回应的头部超过 16 KB",
                    ));
                }
                Err(e) => {
                    return Err(l(
                        format!("the answer is not HTTP: {e}"),
                        format!("回应不是 HTTP（“{e}”）"),
                    ));
                }
            }
        }
    };
    tokio::time::timeout(opts.step_timeout, work)
        .await
        .map_err(|_| {
            let secs = opts.step_timeout.as_secs();
            l(
                format!("no answer to the upgrade within {secs} s"),
                format!("{secs} 秒内没有回应升级请求"),
            )
        })?
}

/// Replays bytes the server sent right after its 101, then reads the stream.
struct Prefixed {
    prefix: std::io::Cursor<Vec<u8>>,
    inner: Stream,
}

impl AsyncRead for Prefixed {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let pos = self.prefix.position() as usize;
        let data = self.prefix.get_ref();
        if pos < data.len() {
            let n = (data.len() - pos).min(buf.remaining());
            buf.put_slice(&data[pos..pos + n]);
            self.prefix.set_position((pos + n) as u64);
            return std::task::Poll::Ready(Ok(()));
        }
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Prefixed {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

type Ws = WebSocketStream<Prefixed>;

async fn websocket(stream: Stream, leftover: Vec<u8>) -> Ws {
    WebSocketStream::from_raw_socket(
        Prefixed {
            prefix: std::io::Cursor::new(leftover),
            inner: stream,
        },
        Role::Client,
        None,
    )
    .await
}

/// Reads MQTT packets until `want` returns true for one, or the time is up.
async fn read_until(
    ws: &mut Ws,
    rd: &mut wire::Reader,
    timeout: Duration,
    mut want: impl FnMut(u8, &[u8]) -> bool,
) -> Result<(u8, Vec<u8>), L10n> {
    let work = async {
        loop {
            while let Some((first, body)) = rd.next_packet() {
                if want(first, &body) {
                    return Ok((first, body));
                }
            }
            match ws.next().await {
                Some(Ok(Message::Binary(b))) => rd.push(&b),
                Some(Ok(Message::Close(f))) => {
                    return Err(match f {
                        Some(f) => {
                            let code = u16::from(f.code);
                            l(
                                format!("the server closed the WebSocket: {code} {}", f.reason),
                                format!("服务器关闭了 WebSocket：{code}“{}”", f.reason),
                            )
                        }
                        None => l("the server closed the WebSocket", "服务器关闭了 WebSocket"),
                    });
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(ws_error(&e)),
                None => return Err(l("the connection closed", "连接已关闭")),
            }
        }
    };
    tokio::time::timeout(timeout, work).await.map_err(|_| {
        let secs = timeout.as_secs();
        l(
            format!("nothing within {secs} s"),
            format!("{secs} 秒内没有收到任何内容"),
        )
    })?
}

/// A WebSocket failure in plain words.
fn ws_error(e: &tokio_tungstenite::tungstenite::Error) -> L10n {
    use tokio_tungstenite::tungstenite::Error as E;
    match e {
        E::ConnectionClosed | E::AlreadyClosed => l("the WebSocket was closed", "WebSocket 已关闭"),
        E::Io(io) => describe(io),
        E::Capacity(c) => l(
            format!("a message exceeded the size limit ({c})"),
            "消息超过了大小限制",
        ),
        E::Protocol(p) => l(
            format!("the WebSocket protocol was broken: {p}"),
            format!("WebSocket 协议错误（“{p}”）"),
        ),
        other => crate::i18n::quoted(&other.to_string()),
    }
}

/// CONNECT with the user name and password, or without them when `anonymous`.
fn connect_packet(opts: &Options, keepalive: u16, anonymous: bool) -> (String, Vec<u8>) {
    let id = format!("mpbridge-check-{:08x}", rand::random::<u32>());
    if anonymous {
        return (id.clone(), wire::connect_with(&id, keepalive, None, None));
    }
    let pw = opts.password.as_ref().map(|p| p.expose().to_owned());
    let p = wire::connect_with(&id, keepalive, opts.username.as_deref(), pw.as_deref());
    (id, p)
}

/// Whether the chain verifies for the host as a client would check it: the public roots
/// (Mozilla's, as WeChat's) plus the extra roots given, the host name, the dates.
fn verify_for_host(
    t: &Target,
    opts: &Options,
    chain: &[CertificateDer<'static>],
) -> Result<(), L10n> {
    use rustls::client::danger::ServerCertVerifier as _;
    let (leaf, intermediates) = chain
        .split_first()
        .ok_or_else(|| l("no certificate was served", "服务器没有发送证书"))?;
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    for r in &opts.extra_roots {
        roots.add(r.clone()).map_err(|e| describe(&e))?;
    }
    let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
        Arc::new(roots),
        crate::crypto::provider(),
    )
    .build()
    .map_err(|e| crate::i18n::quoted(&e.to_string()))?;
    let name = server_name(t)?;
    verifier
        .verify_server_cert(
            leaf,
            intermediates,
            &name,
            &[],
            rustls_pki_types::UnixTime::now(),
        )
        .map(|_| ())
        .map_err(|e| explain(&e))
}

async fn steps(t: &Target, opts: &Options, run: &mut Run<'_>, facts: &mut Facts) {
    run.push(url::scheme_check(t));
    run.push(url::host_check(t));
    run.push(url::port_check(t));

    let Some(addrs) = dns_step(t, opts, run, facts).await else {
        return;
    };
    let Some(addr) = tcp_step(&addrs, opts, run, facts).await else {
        return;
    };

    if t.tls {
        if !tls_steps(t, opts, addr, run, facts).await {
            return;
        }
    } else {
        let why = l(
            format!("{}:// has no TLS", t.scheme),
            format!("{}:// 没有 TLS", t.scheme),
        );
        for id in [
            "MP-TLS12",
            "MP-TLS-CIPHER",
            "MP-CERT-TRUST",
            "MP-CERT-CHAIN",
            "MP-CERT-NAME",
            "MP-CERT-DATES",
            "MP-CERT-STRENGTH",
            "MP-ALPN",
        ] {
            run.skip(id, why.clone(), Duration::ZERO);
        }
    }

    ws_steps(t, opts, addr, run, facts).await;

    latency_step(facts, run);
}

/// MP-DNS: the host's addresses (or the override); none when it does not resolve.
async fn dns_step(
    t: &Target,
    opts: &Options,
    run: &mut Run<'_>,
    facts: &mut Facts,
) -> Option<Vec<SocketAddr>> {
    let t0 = Instant::now();
    let addrs = match resolve(t, opts).await {
        Ok(a) => {
            facts.dns = Some(t0.elapsed());
            let list: Vec<String> = a.iter().map(|a| a.ip().to_string()).collect();
            let how = if t.ip().is_some() {
                l("an IP address: nothing to resolve", "IP 地址：无需解析")
            } else if opts
                .resolve
                .iter()
                .any(|(h, _)| h.eq_ignore_ascii_case(&t.host))
            {
                l("mapped by --resolve", "由 --resolve 指定")
            } else {
                l("DNS", "DNS")
            };
            run.add(
                "MP-DNS",
                CheckStatus::Pass,
                l(
                    format!("{} → {} ({}).", t.host, list.join(", "), how.en),
                    format!("{} → {}（{}）。", t.host, list.join("，"), how.zh),
                ),
                L10n::default(),
                t0.elapsed(),
            );
            a
        }
        Err(e) => {
            run.add(
                "MP-DNS",
                CheckStatus::Fail,
                l(
                    format!("{} does not resolve: {e}.", t.host, e = e.en),
                    format!("{} 无法解析：{e}。", t.host, e = e.zh),
                ),
                l(
                    "Add an A/AAAA record for the name at your DNS provider.",
                    "在 DNS 服务商处为该域名添加 A/AAAA 记录。",
                ),
                t0.elapsed(),
            );
            run.skip_rest(&l("the name does not resolve", "域名无法解析"));
            return None;
        }
    };
    Some(addrs)
}

/// MP-TCP: the first address that accepts a connection.
async fn tcp_step(
    addrs: &[SocketAddr],
    opts: &Options,
    run: &mut Run<'_>,
    facts: &mut Facts,
) -> Option<SocketAddr> {
    let t0 = Instant::now();
    let mut last_err = L10n::default();
    for a in addrs {
        match tokio::time::timeout(opts.step_timeout, TcpStream::connect(a)).await {
            Ok(Ok(_)) => {
                facts.addr = Some(*a);
                break;
            }
            Ok(Err(e)) => {
                let e = crate::i18n::io_error(&e);
                last_err = l(format!("{a}: {}", e.en), format!("{a}：{}", e.zh));
            }
            Err(_) => {
                let secs = opts.step_timeout.as_secs();
                last_err = l(
                    format!("{a}: no answer within {secs} s"),
                    format!("{a}：{secs} 秒内没有应答"),
                );
            }
        }
    }
    let Some(addr) = facts.addr else {
        run.add(
            "MP-TCP",
            CheckStatus::Fail,
            l(
                format!("Cannot connect: {}.", last_err.en),
                format!("无法连接：{}。", last_err.zh),
            ),
            l(
                "Check that the server listens on this port and that firewalls / security groups let it through.",
                "确认服务器在该端口监听，且防火墙 / 安全组已放行。",
            ),
            t0.elapsed(),
        );
        run.skip_rest(&l("the TCP connection failed", "TCP 连接失败"));
        return None;
    };
    facts.tcp = Some(t0.elapsed());
    run.add(
        "MP-TCP",
        CheckStatus::Pass,
        l(
            format!("Connected to {addr} in {} ms.", t0.elapsed().as_millis()),
            format!("{} 毫秒内连上 {addr}。", t0.elapsed().as_millis()),
        ),
        L10n::default(),
        t0.elapsed(),
    );
    Some(addr)
}

/// MP-LATENCY: where the time to a working connection went.
fn latency_step(facts: &Facts, run: &mut Run<'_>) {
    match (facts.dns, facts.tcp, facts.upgrade, facts.connack) {
        (Some(d), Some(c), Some(u), Some(a)) => {
            let tls = facts.tls.unwrap_or_default();
            let total = d + c + tls + u + a;
            let parts = format!(
                "DNS {} + TCP {} + TLS {} + upgrade {} + CONNACK {} = {} ms",
                d.as_millis(),
                c.as_millis(),
                tls.as_millis(),
                u.as_millis(),
                a.as_millis(),
                total.as_millis()
            );
            let status = if total > Duration::from_secs(30) {
                CheckStatus::Fail
            } else if total > Duration::from_secs(10) {
                CheckStatus::Warn
            } else {
                CheckStatus::Pass
            };
            let remedy = if status == CheckStatus::Pass {
                L10n::default()
            } else {
                l(
                    "Cut the handshake time (no redirects, a broker close to users, TLS session resumption); mqtt.js gives up after connectTimeout (30 s).",
                    "缩短握手时间（不要重定向、代理尽量靠近用户、启用 TLS 会话复用）；mqtt.js 超过 connectTimeout（30 秒）即放弃。",
                )
            };
            run.add("MP-LATENCY", status, L10n::same(parts), remedy, total);
        }
        _ => run.skip(
            "MP-LATENCY",
            l("the connection did not reach CONNACK", "连接未到达 CONNACK"),
            Duration::ZERO,
        ),
    }
}

/// TLS versions and suites, the served chain, ALPN. False when nothing after it can run.
async fn tls_steps(
    t: &Target,
    opts: &Options,
    addr: SocketAddr,
    run: &mut Run<'_>,
    facts: &mut Facts,
) -> bool {
    let (wide, raw_chain) = tls12_check(t, opts, addr, run).await;
    cipher_check(t, opts, addr, &wide, run).await;

    // The handshake a modern client does, offering h2 first (MP-ALPN) — also the chain.
    let cfg = match tls_config(
        &[&rustls::version::TLS13, &rustls::version::TLS12],
        &[b"h2", b"http/1.1"],
    ) {
        Ok(c) => c,
        Err(e) => {
            run.skip_rest(&e);
            return false;
        }
    };
    let modern = rustls_handshake(addr, t, cfg, opts.step_timeout).await;
    let chain = match &modern {
        Ok((info, _)) => {
            facts.tls = Some(info.elapsed);
            info.chain.clone()
        }
        Err(_) => raw_chain,
    };
    cert_steps(t, opts, &chain, modern.as_ref().err(), run);
    facts.verified = Some(verify_for_host(t, opts, &chain));

    match &modern {
        Ok((info, _)) => {
            let detail = format!(
                "{} {}, ALPN offered [h2, http/1.1] → {}.",
                info.version,
                info.cipher,
                info.alpn.as_deref().unwrap_or("none")
            );
            let detail_zh = format!(
                "{} {}，ALPN 提供 [h2, http/1.1] → {}。",
                info.version,
                info.cipher,
                info.alpn.as_deref().unwrap_or("未协商")
            );
            if info.alpn.as_deref() == Some("h2") {
                run.add(
                    "MP-ALPN",
                    CheckStatus::Warn,
                    l(
                        format!("{detail} A client that offers h2 gets HTTP/2, where a WebSocket upgrade does not exist (RFC 8441 aside)."),
                        format!("{detail_zh}提供 h2 的客户端会得到 HTTP/2，而 HTTP/2 上没有 WebSocket 升级（RFC 8441 除外）。"),
                    ),
                    l(
                        "Serve the MQTT WebSocket over HTTP/1.1 only: a server block or port without http2 (the mpbridge relay offers only http/1.1).",
                        "仅通过 HTTP/1.1 提供 MQTT WebSocket：使用不启用 http2 的 server 块或端口（mpbridge 中继只提供 http/1.1）。",
                    ),
                    info.elapsed,
                );
            } else {
                run.add(
                    "MP-ALPN",
                    CheckStatus::Pass,
                    l(detail, detail_zh),
                    L10n::default(),
                    info.elapsed,
                );
            }
            true
        }
        Err(e) => {
            run.skip(
                "MP-ALPN",
                e.after("a modern TLS handshake failed: ", "常规 TLS 握手失败："),
                Duration::ZERO,
            );
            run.skip_rest(&e.after("the TLS handshake failed: ", "TLS 握手失败："));
            false
        }
    }
}

/// MP-TLS12: a TLS 1.2 ClientHello with every common suite. The answer (the wide offer is
/// reused by MP-TLS-CIPHER) and the chain it carried.
async fn tls12_check(
    t: &Target,
    opts: &Options,
    addr: SocketAddr,
    run: &mut Run<'_>,
) -> (Result<Answer, L10n>, Vec<CertificateDer<'static>>) {
    let t0 = Instant::now();
    let wide = tls_probe::probe(addr, sni(t), tls_probe::WIDE, opts.step_timeout).await;
    let wide_elapsed = t0.elapsed();
    let mut raw_chain: Vec<CertificateDer<'static>> = Vec::new();
    let tls13_only = async {
        let cfg = tls_config(&[&rustls::version::TLS13], &[b"http/1.1"]).ok()?;
        rustls_handshake(addr, t, cfg, opts.step_timeout)
            .await
            .ok()
            .map(|(i, _)| i)
    };
    match &wide {
        Ok(Answer::Hello { suite, chain }) => {
            raw_chain = chain
                .iter()
                .map(|c| CertificateDer::from(c.clone()))
                .collect();
            run.add(
                "MP-TLS12",
                CheckStatus::Pass,
                l(
                    format!(
                        "TLS 1.2 accepted; offered every common suite, the server chose {}.",
                        tls_probe::suite_name(*suite)
                    ),
                    format!(
                        "接受 TLS 1.2；提供所有常见加密套件时，服务器选择了 {}。",
                        tls_probe::suite_name(*suite)
                    ),
                ),
                L10n::default(),
                wide_elapsed,
            );
        }
        other => {
            let why = match other {
                Ok(Answer::Refused { alert: Some(a) }) => {
                    L10n::same(format!("alert {}", tls_probe::alert_name(*a)))
                }
                Ok(_) => l("the connection closed", "连接被关闭"),
                Err(e) => e.clone(),
            };
            let (en, zh) = match tls13_only.await {
                Some(i) => (
                    format!(
                        "The server refuses TLS 1.2 ({why}) and accepts only {}: Android before 10 and older WeChat cannot connect.",
                        i.version,
                        why = why.en
                    ),
                    format!(
                        "服务器拒绝 TLS 1.2（{why}），只接受 {}：安卓 10 以下和旧版微信无法连接。",
                        i.version,
                        why = why.zh
                    ),
                ),
                None => (
                    format!("The server refuses a TLS 1.2 handshake ({}).", why.en),
                    format!("服务器拒绝 TLS 1.2 握手（{}）。", why.zh),
                ),
            };
            run.add(
                "MP-TLS12",
                CheckStatus::Fail,
                l(en, zh),
                l(
                    "Enable TLS 1.2 next to 1.3 (nginx: ssl_protocols TLSv1.2 TLSv1.3; the mpbridge relay does by default).",
                    "在 TLS 1.3 之外同时启用 TLS 1.2（nginx：ssl_protocols TLSv1.2 TLSv1.3;；mpbridge 中继默认如此）。",
                ),
                wide_elapsed,
            );
        }
    }
    (wide, raw_chain)
}

/// MP-TLS-CIPHER: only the ECDHE + AES-GCM suites iOS ATS wants.
async fn cipher_check(
    t: &Target,
    opts: &Options,
    addr: SocketAddr,
    wide: &Result<Answer, L10n>,
    run: &mut Run<'_>,
) {
    let t0 = Instant::now();
    match tls_probe::probe(addr, sni(t), tls_probe::ATS_GCM, opts.step_timeout).await {
        Ok(Answer::Hello { suite, .. }) => run.add(
            "MP-TLS-CIPHER",
            CheckStatus::Pass,
            l(
                format!(
                    "Offered only ECDHE + AES-GCM: the server chose {}.",
                    tls_probe::suite_name(suite)
                ),
                format!(
                    "只提供 ECDHE + AES-GCM 时，服务器选择了 {}。",
                    tls_probe::suite_name(suite)
                ),
            ),
            L10n::default(),
            t0.elapsed(),
        ),
        other => {
            let why = match &other {
                Ok(Answer::Refused { alert: Some(a) }) => {
                    L10n::same(format!("alert {}", tls_probe::alert_name(*a)))
                }
                Ok(_) => l("the connection closed", "连接被关闭"),
                Err(e) => e.clone(),
            };
            let chose = match &wide {
                Ok(Answer::Hello { suite, .. }) => format!(
                    "; from a wider offer it chose {}",
                    tls_probe::suite_name(*suite)
                ),
                _ => String::new(),
            };
            let chose_zh = match &wide {
                Ok(Answer::Hello { suite, .. }) => {
                    format!("；提供更多套件时它选择了 {}", tls_probe::suite_name(*suite))
                }
                _ => String::new(),
            };
            run.add(
                "MP-TLS-CIPHER",
                CheckStatus::Fail,
                l(
                    format!("TLS 1.2 with only ECDHE + AES-GCM suites was refused ({why}){chose}: iPhones (App Transport Security) cannot connect.", why = why.en),
                    format!("只提供 ECDHE + AES-GCM 套件的 TLS 1.2 握手被拒绝（{why}）{chose_zh}：iPhone（ATS）无法连接。", why = why.zh),
                ),
                l(
                    "Enable ECDHE-ECDSA/RSA-AES128/256-GCM suites (nginx: ssl_ciphers from Mozilla's \"intermediate\" profile).",
                    "启用 ECDHE-ECDSA/RSA-AES128/256-GCM 套件（nginx：使用 Mozilla “intermediate” 配置中的 ssl_ciphers）。",
                ),
                t0.elapsed(),
            );
        }
    }
}

/// MP-CERT-* from the certificate verdicts of the served chain.
fn cert_steps(
    t: &Target,
    opts: &Options,
    chain: &[CertificateDer<'static>],
    tls_error: Option<&L10n>,
    run: &mut Run<'_>,
) {
    let ids = [
        "MP-CERT-TRUST",
        "MP-CERT-CHAIN",
        "MP-CERT-NAME",
        "MP-CERT-DATES",
        "MP-CERT-STRENGTH",
    ];
    if chain.is_empty() {
        let why = match tls_error {
            Some(e) => e.after("no certificate was served: ", "服务器没有发送证书："),
            None => l("no certificate was served", "服务器没有发送证书"),
        };
        for id in ids {
            run.skip(id, why.clone(), Duration::ZERO);
        }
        return;
    }
    let t0 = Instant::now();
    let opened = crate::certs::Opened {
        certs: chain
            .iter()
            .enumerate()
            .map(|(i, der)| crate::certs::open::OpenedCert {
                der: der.clone(),
                source: format!("served #{}", i + 1),
            })
            .collect(),
        ..Default::default()
    };
    let req = crate::certs::Request {
        domain: Some(t.host.clone()),
        trust: crate::certs::Trust {
            extra: opts.extra_roots.clone(),
            os_store: false,
            ..Default::default()
        },
        at: None,
    };
    let report = crate::certs::analyze(&opened, &req);
    let elapsed = t0.elapsed();
    let from = |cert_id: &str| report.finding(cert_id).cloned();

    // Trust: an extra root never makes it pass.
    if let Some(f) = from("CERT-TRUST") {
        let supplied = report.chain.iter().find_map(|e| match &e.issuer_found {
            crate::certs::IssuerFound::SuppliedCa(n) => Some(n.clone()),
            _ => None,
        });
        let detail = match supplied {
            Some(ca) if f.status == Status::Fail => l(
                format!(
                    "Trusted only by an extra root ({}: “{ca}”), not by a public CA: phones refuse it.",
                    opts.extra_roots_origin.en
                ),
                format!(
                    "只被额外的根证书（{}：“{ca}”）信任，而不是公共 CA：手机会拒绝。",
                    opts.extra_roots_origin.zh
                ),
            ),
            _ => f.detail.clone(),
        };
        run.add(
            "MP-CERT-TRUST",
            f.status.into(),
            detail,
            f.remedy.clone(),
            elapsed,
        );
    }
    // Chain: complete and in order, the worse of the two.
    if let (Some(c), Some(o)) = (from("CERT-CHAIN-COMPLETE"), from("CERT-CHAIN-ORDER")) {
        let worst = c.status.max(o.status);
        let detail = l(
            format!("{} served. {} {}", chain.len(), c.detail.en, o.detail.en),
            format!(
                "服务器发送了 {} 张证书。{}{}",
                chain.len(),
                c.detail.zh,
                o.detail.zh
            ),
        );
        let remedy = if c.status == worst && !c.remedy.is_empty() {
            c.remedy.clone()
        } else {
            o.remedy.clone()
        };
        run.add("MP-CERT-CHAIN", worst.into(), detail, remedy, elapsed);
    }
    for (mp, cert) in [
        ("MP-CERT-NAME", "CERT-NAME"),
        ("MP-CERT-DATES", "CERT-DATES"),
        ("MP-CERT-STRENGTH", "CERT-STRENGTH"),
    ] {
        if let Some(f) = from(cert) {
            run.add(
                mp,
                f.status.into(),
                f.detail.clone(),
                f.remedy.clone(),
                elapsed,
            );
        }
    }
}

async fn ws_steps(
    t: &Target,
    opts: &Options,
    addr: SocketAddr,
    run: &mut Run<'_>,
    facts: &mut Facts,
) {
    let mut stream = match open_stream(addr, t, opts.step_timeout).await {
        Ok(s) => s,
        Err(e) => {
            run.skip_rest(&e.after("could not open the connection: ", "无法建立连接："));
            return;
        }
    };
    let t0 = Instant::now();
    let answer = match upgrade(&mut stream, t, &t.path, opts).await {
        Ok(a) => a,
        Err(e) => {
            run.add(
                "MP-WS-UPGRADE",
                CheckStatus::Fail,
                l(format!("GET {} with Upgrade: websocket: {e}.", t.path, e = e.en), format!("GET {}（Upgrade: websocket）：{e}。", t.path, e = e.zh)),
                l(
                    "Make this URL answer a WebSocket upgrade (is it the broker's WebSocket port, or a proxy in front of it?).",
                    "让该地址响应 WebSocket 升级（是否为代理的 WebSocket 端口，或其前面的代理？）。",
                ),
                t0.elapsed(),
            );
            run.skip_rest(&l("the upgrade got no answer", "升级请求没有响应"));
            return;
        }
    };
    let elapsed = t0.elapsed();
    let upgraded = upgrade_check(t, &answer, elapsed, run, facts);
    path_check(t, opts, addr, &answer, upgraded, run).await;
    subprotocol_check(&answer, run);
    if answer.status != 101 {
        run.skip_rest(&l(
            format!("the upgrade was answered HTTP {}", answer.status),
            format!("升级请求返回 HTTP {}", answer.status),
        ));
        return;
    }
    let mut ws = websocket(stream, answer.leftover).await;
    let mut rd = wire::Reader::default();
    let connected = mqtt_connect_check(t, opts, &mut ws, &mut rd, run, facts).await;
    match &connected {
        Some(client_id) => piggyback_check(opts, &mut ws, &mut rd, client_id, run).await,
        None => run.skip(
            "MP-MQTT-PIGGYBACK",
            l("the MQTT connection was refused", "MQTT 连接被拒绝"),
            Duration::ZERO,
        ),
    }
    keepalive_step(t, opts, addr, connected.is_some(), run, facts).await;
}

/// MP-WS-UPGRADE: 101 with the right accept key. Whether the upgrade worked.
fn upgrade_check(
    t: &Target,
    answer: &UpgradeAnswer,
    elapsed: Duration,
    run: &mut Run<'_>,
    facts: &mut Facts,
) -> bool {
    let server = answer
        .header("Server")
        .map(|s| format!(" (Server: {s})"))
        .unwrap_or_default();
    let status_line = format!("HTTP {} {}{server}", answer.status, answer.reason);
    let accept_ok = answer
        .header("Sec-WebSocket-Accept")
        .is_some_and(|a| a == crate::relay::handshake::accept_key(&answer.key));
    let upgraded = answer.status == 101 && accept_ok;
    if upgraded {
        facts.upgrade = Some(elapsed);
        run.add(
            "MP-WS-UPGRADE",
            CheckStatus::Pass,
            l(
                format!(
                    "{status_line} with a correct Sec-WebSocket-Accept, in {} ms.",
                    elapsed.as_millis()
                ),
                format!(
                    "{status_line}，Sec-WebSocket-Accept 正确，耗时 {} 毫秒。",
                    elapsed.as_millis()
                ),
            ),
            L10n::default(),
            elapsed,
        );
    } else if (300..400).contains(&answer.status) {
        let loc = answer.header("Location").unwrap_or("?");
        run.add(
            "MP-WS-UPGRADE",
            CheckStatus::Fail,
            l(
                format!("{status_line}: a redirect to {loc}. A WebSocket upgrade does not follow redirects."),
                format!("{status_line}：重定向到 {loc}。WebSocket 升级不会跟随重定向。"),
            ),
            l(
                "Point the client at the final address, and do not redirect the WebSocket location (no http→https or path rewrites on it).",
                "让客户端直接连接最终地址，不要对 WebSocket 路径做重定向（http→https 或路径改写）。",
            ),
            elapsed,
        );
    } else if answer.status == 101 {
        run.add(
            "MP-WS-UPGRADE",
            CheckStatus::Fail,
            l(
                format!("{status_line}, but Sec-WebSocket-Accept is {} instead of {}.", answer.header("Sec-WebSocket-Accept").unwrap_or("missing"), crate::relay::handshake::accept_key(&answer.key)),
                format!("{status_line}，但 Sec-WebSocket-Accept 为 {}，应为 {}。", answer.header("Sec-WebSocket-Accept").unwrap_or("缺失"), crate::relay::handshake::accept_key(&answer.key)),
            ),
            l(
                "Something between the client and the broker rewrites the handshake; let the upgrade through untouched.",
                "客户端和代理之间有组件改写了握手；请原样转发升级请求。",
            ),
            elapsed,
        );
    } else {
        let (en, zh) = if answer.status == 400 {
            (
                " A 400 from a proxy usually means it did not forward the upgrade: nginx needs proxy_http_version 1.1; proxy_set_header Upgrade $http_upgrade; proxy_set_header Connection \"upgrade\"; — or the broker refused the missing subprotocol.",
                "代理返回 400 通常表示它没有转发升级：nginx 需要 proxy_http_version 1.1; proxy_set_header Upgrade $http_upgrade; proxy_set_header Connection \"upgrade\";——或者代理拒绝了缺失的子协议。",
            )
        } else if answer.status == 502 || answer.status == 504 {
            (
                " The proxy could not reach the broker.",
                "代理无法连接到 MQTT 服务。",
            )
        } else {
            ("", "")
        };
        run.add(
            "MP-WS-UPGRADE",
            CheckStatus::Fail,
            l(format!("GET {} → {status_line}.{en}", t.path), format!("GET {} → {status_line}。{zh}", t.path)),
            l(
                "Make the URL answer 101: for nginx add proxy_http_version 1.1 and the Upgrade / Connection headers in the location; check the location path and that the broker's WebSocket listener is up.",
                "让该地址返回 101：nginx 的 location 中加入 proxy_http_version 1.1 以及 Upgrade / Connection 头；检查 location 路径，并确认代理的 WebSocket 监听已启动。",
            ),
            elapsed,
        );
    }

    upgraded
}

/// MP-WS-PATH: on a 404, which of the usual paths would have answered.
async fn path_check(
    t: &Target,
    opts: &Options,
    addr: SocketAddr,
    answer: &UpgradeAnswer,
    upgraded: bool,
    run: &mut Run<'_>,
) {
    if upgraded {
        run.add(
            "MP-WS-PATH",
            CheckStatus::Pass,
            l(
                format!("{} is served.", t.path),
                format!("{} 可用。", t.path),
            ),
            L10n::default(),
            Duration::ZERO,
        );
    } else if answer.status == 404 {
        let t1 = Instant::now();
        let mut works = Vec::new();
        for p in ["/mqtt", "/", "/ws"] {
            if p == t.path {
                continue;
            }
            if let Ok(mut s) = open_stream(addr, t, opts.step_timeout).await
                && let Ok(a) = upgrade(&mut s, t, p, opts).await
                && a.status == 101
            {
                works.push(p);
            }
        }
        let (en, zh, remedy) = match works.first() {
            Some(p) => (
                format!(
                    "{} is not found (404); {} answers 101.",
                    t.path,
                    works.join(" and ")
                ),
                format!(
                    "{} 不存在（404）；{} 返回 101。",
                    t.path,
                    works.join(" 和 ")
                ),
                l(
                    format!(
                        "Connect to wxs://{}{p} (mqtt.js's wx transport uses \"/\" when the URL has no path).",
                        t.authority()
                    ),
                    format!(
                        "连接 wxs://{}{p}（URL 不写路径时，mqtt.js 的 wx 传输层使用“/”）。",
                        t.authority()
                    ),
                ),
            ),
            None => (
                format!(
                    "{} is not found (404), and neither /mqtt nor / answers 101.",
                    t.path
                ),
                format!("{} 不存在（404），/mqtt 和 / 也都不返回 101。", t.path),
                l(
                    "Find the broker's WebSocket path (EMQX: /mqtt; mosquitto: any) and the proxy's location for it.",
                    "确认代理的 WebSocket 路径（EMQX：/mqtt；mosquitto：任意）以及代理中对应的 location。",
                ),
            ),
        };
        run.add(
            "MP-WS-PATH",
            CheckStatus::Fail,
            l(en, zh),
            remedy,
            t1.elapsed(),
        );
    } else {
        run.skip(
            "MP-WS-PATH",
            l(
                format!(
                    "the upgrade failed for another reason (HTTP {})",
                    answer.status
                ),
                format!("升级因其他原因失败（HTTP {}）", answer.status),
            ),
            Duration::ZERO,
        );
    }
}

/// MP-WS-SUBPROTOCOL: the `mqtt` subprotocol echoed.
fn subprotocol_check(answer: &UpgradeAnswer, run: &mut Run<'_>) {
    if answer.status == 101 {
        match answer.header("Sec-WebSocket-Protocol") {
            Some("mqtt") => run.add(
                "MP-WS-SUBPROTOCOL",
                CheckStatus::Pass,
                l("Offered mqtt; the server answered Sec-WebSocket-Protocol: mqtt.", "提供 mqtt；服务器回应 Sec-WebSocket-Protocol: mqtt。"),
                L10n::default(),
                Duration::ZERO,
            ),
            other => run.add(
                "MP-WS-SUBPROTOCOL",
                CheckStatus::Fail,
                l(
                    format!(
                        "Offered mqtt; the server answered {}. Strict clients close such a connection (\"Sent non-empty 'Sec-WebSocket-Protocol' header but no response was received\").",
                        other.map(|v| format!("Sec-WebSocket-Protocol: {v}")).unwrap_or_else(|| "without Sec-WebSocket-Protocol".into())
                    ),
                    format!(
                        "提供 mqtt；服务器回应{}。严格的客户端会关闭这样的连接。",
                        other.map(|v| format!(" Sec-WebSocket-Protocol: {v}")).unwrap_or_else(|| "中没有 Sec-WebSocket-Protocol".into())
                    ),
                ),
                l(
                    "Echo Sec-WebSocket-Protocol: mqtt: remove proxy_hide_header / more_clear_headers Sec-WebSocket-Protocol or a hard-coded proxy_set_header for it; EMQX: keep mqtt in supported_subprotocols.",
                    "回显 Sec-WebSocket-Protocol: mqtt：去掉 proxy_hide_header / more_clear_headers Sec-WebSocket-Protocol 或写死的 proxy_set_header；EMQX：supported_subprotocols 中保留 mqtt。",
                ),
                Duration::ZERO,
            ),
        }
    } else {
        run.skip(
            "MP-WS-SUBPROTOCOL",
            l("no 101 to look at", "没有 101 响应可供检查"),
            Duration::ZERO,
        );
    }
}

/// MP-MQTT-CONNECT: CONNECT as a Mini Program sends it. The client id when accepted.
async fn mqtt_connect_check(
    t: &Target,
    opts: &Options,
    ws: &mut Ws,
    rd: &mut wire::Reader,
    run: &mut Run<'_>,
    facts: &mut Facts,
) -> Option<String> {
    let withheld = facts.withheld(opts, t);
    let (client_id, connect) = connect_packet(opts, 60, withheld.is_some());
    let t0 = Instant::now();
    let sent = ws.send(Message::Binary(connect.into())).await;
    let ack = match sent {
        Ok(()) => read_until(ws, rd, opts.step_timeout, |f, _| f >> 4 == 2).await,
        Err(e) => Err(ws_error(&e)),
    };
    let connected = match ack {
        Ok((_, body)) => {
            let code = body.get(1).copied().unwrap_or(0xff);
            // Credentials withheld: say so first, whatever the answer.
            let (note_en, note_zh) = match &withheld {
                Some(why) => (
                    format!(
                        "Credentials withheld: {}; CONNECT was sent without them (--send-credentials-anyway sends them). ",
                        why.en
                    ),
                    format!(
                        "未发送用户名和密码：{}；CONNECT 未携带它们（--send-credentials-anyway 可强制发送）。",
                        why.zh
                    ),
                ),
                None => (String::new(), String::new()),
            };
            let with_creds = opts.username.is_some() && withheld.is_none();
            if code == 0 {
                facts.connack = Some(t0.elapsed());
                run.add(
                    "MP-MQTT-CONNECT",
                    CheckStatus::Pass,
                    l(
                        format!("{note_en}CONNECT (MQTT 3.1.1, keepalive 60, client id {client_id}{}) → CONNACK accepted in {} ms.", if with_creds { ", with credentials" } else { "" }, t0.elapsed().as_millis()),
                        format!("{note_zh}CONNECT（MQTT 3.1.1，心跳 60，客户端 ID {client_id}{}）→ {} 毫秒内 CONNACK 接受。", if with_creds { "，带用户名密码" } else { "" }, t0.elapsed().as_millis()),
                    ),
                    L10n::default(),
                    t0.elapsed(),
                );
                true
            } else if withheld.is_some() && (code == 4 || code == 5) {
                // Refused for want of the credentials we kept back: not the server's fault.
                run.add(
                    "MP-MQTT-CONNECT",
                    CheckStatus::Skipped,
                    l(
                        format!("{note_en}The broker wants credentials (CONNACK {code})."),
                        format!("{note_zh}代理要求用户名和密码（CONNACK {code}）。"),
                    ),
                    l(
                        "Fix the certificate first (see MP-CERT-*), or pass the CA with --extra-root; in a lab, --send-credentials-anyway.",
                        "先修复证书（见 MP-CERT-*），或用 --extra-root 提供 CA；仅在实验环境中使用 --send-credentials-anyway。",
                    ),
                    t0.elapsed(),
                );
                false
            } else {
                let text = crate::relay::inspect::connack_text(code);
                let creds = code == 4 || code == 5;
                run.add(
                    "MP-MQTT-CONNECT",
                    CheckStatus::Fail,
                    l(
                        format!("CONNACK return code {code}: {text}."),
                        format!("CONNACK 返回码 {code}：{text}。"),
                    ),
                    if creds {
                        l(
                            "Check the user name and password (--username, --password-env) and the broker's ACL; mqtt.js does not retry CONNACK errors by default.",
                            "检查用户名和密码（--username、--password-env）以及代理的 ACL；mqtt.js 默认不会在 CONNACK 错误后重试。",
                        )
                    } else {
                        l(
                            "Make the broker accept MQTT 3.1.1 (protocol level 4) from this client.",
                            "让代理接受该客户端的 MQTT 3.1.1（协议级别 4）连接。",
                        )
                    },
                    t0.elapsed(),
                );
                false
            }
        }
        Err(e) => {
            run.add(
                "MP-MQTT-CONNECT",
                CheckStatus::Fail,
                l(format!("No CONNACK: {e}.", e = e.en), format!("没有收到 CONNACK：{e}。", e = e.zh)),
                l(
                    "Check that the WebSocket reaches an MQTT broker (not another WebSocket service) and that it speaks MQTT 3.1.1.",
                    "确认 WebSocket 连到的是 MQTT 代理（而不是其他 WebSocket 服务），且支持 MQTT 3.1.1。",
                ),
                t0.elapsed(),
            );
            false
        }
    };
    connected.then_some(client_id)
}

/// MP-MQTT-PIGGYBACK: SUBSCRIBE and PUBLISH in one WebSocket message, as mqtt.js sends them.
async fn piggyback_check(
    opts: &Options,
    ws: &mut Ws,
    rd: &mut wire::Reader,
    client_id: &str,
    run: &mut Run<'_>,
) {
    let topic = format!("mpbridge/check/{client_id}");
    let mut frame = wire::subscribe(7, &topic, 0);
    frame.extend(wire::publish(&topic, 0, 0, b"piggyback"));
    let t0 = Instant::now();
    let mut got_suback = false;
    let res = match ws.send(Message::Binary(frame.into())).await {
        Ok(()) => {
            read_until(ws, rd, opts.step_timeout, |f, body| {
                if f >> 4 == 9 {
                    got_suback = true;
                }
                f >> 4 == 3 && body.ends_with(b"piggyback")
            })
            .await
        }
        Err(e) => Err(ws_error(&e)),
    };
    match res {
        Ok(_) => run.add(
            "MP-MQTT-PIGGYBACK",
            CheckStatus::Pass,
            l(
                "SUBSCRIBE and PUBLISH sent in one WebSocket message: both took effect (SUBACK, then the message came back).",
                "在一条 WebSocket 消息中发送 SUBSCRIBE 和 PUBLISH：两者都生效（收到 SUBACK，消息也回来了）。",
            ),
            L10n::default(),
            t0.elapsed(),
        ),
        Err(e) => run.add(
            "MP-MQTT-PIGGYBACK",
            CheckStatus::Fail,
            l(
                format!("SUBSCRIBE + PUBLISH in one message: {} ({e}).", if got_suback { "SUBACK came, the message did not" } else { "no SUBACK" }, e = e.en),
                format!("一条消息内 SUBSCRIBE + PUBLISH：{}（{e}）。", if got_suback { "收到 SUBACK，但消息没有回来" } else { "没有 SUBACK" }, e = e.zh),
            ),
            l(
                "The broker or a proxy must accept several MQTT packets per WebSocket message (mqtt.js sends them so); EMQX: mqtt_piggyback = multiple.",
                "代理或中间件必须接受一条 WebSocket 消息内的多个 MQTT 报文（mqtt.js 会这样发送）；EMQX：mqtt_piggyback = multiple。",
            ),
            t0.elapsed(),
        ),
    }
    ws.send(Message::Binary(vec![0xe0, 0].into())).await.ok();
    ws.close(None).await.ok();
}

/// MP-KEEPALIVE (opt-in): whether an idle connection survives the proxy's timers.
async fn keepalive_step(
    t: &Target,
    opts: &Options,
    addr: SocketAddr,
    connected: bool,
    run: &mut Run<'_>,
    facts: &mut Facts,
) {
    if !opts.keepalive_test {
        run.skip(
            "MP-KEEPALIVE",
            l(
                format!(
                    "opt-in: --keepalive-test (stays idle {} s)",
                    opts.keepalive_idle.as_secs()
                ),
                format!(
                    "需手动开启：--keepalive-test（空闲 {} 秒）",
                    opts.keepalive_idle.as_secs()
                ),
            ),
            Duration::ZERO,
        );
    } else if !connected {
        run.skip(
            "MP-KEEPALIVE",
            l("the MQTT connection was refused", "MQTT 连接被拒绝"),
            Duration::ZERO,
        );
    } else {
        keepalive(t, opts, addr, run, facts).await;
    }
}

/// Connects with keepalive 60, stays silent, then pings: a proxy's idle timer shows.
async fn keepalive(
    t: &Target,
    opts: &Options,
    addr: SocketAddr,
    run: &mut Run<'_>,
    facts: &mut Facts,
) {
    let idle = opts.keepalive_idle;
    let anonymous = facts.withheld(opts, t).is_some();
    let t0 = Instant::now();
    let setup = async {
        let mut s = open_stream(addr, t, opts.step_timeout).await?;
        let a = upgrade(&mut s, t, &t.path, opts).await?;
        if a.status != 101 {
            return Err(L10n::same(format!("HTTP {}", a.status)));
        }
        let mut ws = websocket(s, a.leftover).await;
        let mut rd = wire::Reader::default();
        let (_, c) = connect_packet(opts, 60, anonymous);
        ws.send(Message::Binary(c.into()))
            .await
            .map_err(|e| ws_error(&e))?;
        read_until(&mut ws, &mut rd, opts.step_timeout, |f, _| f >> 4 == 2).await?;
        Ok::<_, L10n>((ws, rd))
    };
    let (mut ws, mut rd) = match setup.await {
        Ok(x) => x,
        Err(e) => {
            run.skip(
                "MP-KEEPALIVE",
                e.after("could not connect again: ", "无法再次连接："),
                t0.elapsed(),
            );
            return;
        }
    };
    let silent_from = Instant::now();
    // Silent: only read, to see the server close.
    let cut = tokio::time::timeout(idle, async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Binary(b))) => rd.push(&b),
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return silent_from.elapsed(),
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    let status_detail = match cut {
        Ok(after) => {
            let secs = after.as_secs_f64();
            facts.idle_cut = Some(secs);
            Err((
                format!(
                    "The idle connection was closed after {secs:.1} s without traffic (keepalive 60): a proxy idle timeout — nginx's proxy_read_timeout defaults to 60 s."
                ),
                format!(
                    "空闲连接在无流量 {secs:.1} 秒后被关闭（心跳 60）：代理的空闲超时——nginx 的 proxy_read_timeout 默认 60 秒。"
                ),
            ))
        }
        Err(_) => {
            let pong = async {
                ws.send(Message::Binary(wire::pingreq().into()))
                    .await
                    .map_err(|e| ws_error(&e))?;
                read_until(&mut ws, &mut rd, opts.step_timeout, |f, _| f >> 4 == 13).await
            };
            match pong.await {
                Ok(_) => Ok((
                    format!(
                        "Idle {} s, then PINGREQ → PINGRESP: the connection survived.",
                        idle.as_secs()
                    ),
                    format!(
                        "空闲 {} 秒后发送 PINGREQ → 收到 PINGRESP：连接保持正常。",
                        idle.as_secs()
                    ),
                )),
                Err(e) => Err((
                    format!(
                        "After {} s idle the connection no longer answers PINGREQ: {}.",
                        idle.as_secs(),
                        e.en
                    ),
                    format!(
                        "空闲 {} 秒后连接不再响应 PINGREQ：{}。",
                        idle.as_secs(),
                        e.zh
                    ),
                )),
            }
        }
    };
    match status_detail {
        Ok((en, zh)) => run.add("MP-KEEPALIVE", CheckStatus::Pass, l(en, zh), L10n::default(), t0.elapsed()),
        Err((en, zh)) => run.add(
            "MP-KEEPALIVE",
            CheckStatus::Fail,
            l(en, zh),
            l(
                "Raise the proxy's idle timeout well above 1.5 × keepalive (nginx: proxy_read_timeout 300s; proxy_send_timeout 300s;) or set keepalive to 30 in mqtt.connect.",
                "把代理的空闲超时调到远高于 1.5 倍心跳（nginx：proxy_read_timeout 300s; proxy_send_timeout 300s;），或在 mqtt.connect 中把 keepalive 设为 30。",
            ),
            t0.elapsed(),
        ),
    }
    ws.close(None).await.ok();
}
