//! One relayed connection, from TCP accept to close: TLS under the handshake deadline, the
//! HTTP request head, the upgrade decision, the upstream, then both directions pumped with
//! the MQTT inspector watching, until either side closes, the idle timer fires, the
//! operator closes it or the relay drains.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::{FutureExt, SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::error::{CapacityError, Error as WsError};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};

use super::Active;
use super::client_tls::{self, ClientTls, Negotiated};
use super::frames::{self, FrameObserver, Seen};
use super::handoff::ParkedUpstream;
use super::handshake::{self, Refusal, Request};
use super::inspect::{Captured, PacketStream, connack_text, parse_connack, parse_connect};
use super::stats::{
    CloseInfo, ConnRecord, Counters, LiveConn, Registry, RejectKind, Rejection, Side, Slot,
};
use super::upstream::{self, Forwarded, UpstreamConn};

/// Shared by every session of a relay.
pub struct Ctx {
    pub registry: Arc<Registry>,
    /// Cancelled when the relay stops: sessions send 1001 and end.
    pub drain: tokio_util::sync::CancellationToken,
    /// The data loop, when connections are set up elsewhere (see [`super::handoff`]).
    pub data: Option<tokio::runtime::Handle>,
}

/// Boxed so that the futures holding it stay small (a TLS connection is over a kilobyte).
type ClientWs = WebSocketStream<Box<ClientTls>>;

fn ws_config(max: usize) -> WebSocketConfig {
    let mut c = WebSocketConfig::default();
    c.max_message_size = Some(max);
    c.max_frame_size = Some(max);
    // Small, bounded buffers: a slow reader makes `send` wait instead of growing memory,
    // and an idle connection costs little.
    c.read_buffer_size = 1024;
    c.write_buffer_size = 0;
    c.max_write_buffer_size = 4 * 1024 * 1024;
    c
}

/// Serves one accepted TCP connection. Never panics on bad input; every failure is recorded.
/// Setup runs where this is called; the established connection is relayed on the data loop
/// when the relay has one of its own.
pub async fn serve(
    tcp: TcpStream,
    peer: SocketAddr,
    active: Arc<Active>,
    ctx: Arc<Ctx>,
    slot: Slot,
) {
    // Each phase in its own allocation, sized to it: the setup's state is freed when the
    // connection is established, and an established connection holds only what relaying needs.
    let relaying = {
        let Some(est) = Box::pin(set_up(tcp, peer, active, ctx, slot)).await else {
            return;
        };
        match est.ctx.data.clone() {
            None => est.relay(),
            Some(data) => {
                if let Some(parked) = est.park() {
                    data.spawn(async move {
                        if let Some(est) = parked.unpark() {
                            est.relay().await;
                        }
                    });
                }
                return;
            }
        }
    };
    relaying.await
}

/// A connection after both upgrades (or after the client's, with the upstream's failure),
/// recorded as open.
struct Established<U> {
    tls: ClientTls,
    leftover: Vec<u8>,
    upstream: Result<U, String>,
    id: u64,
    live: Arc<LiveConn>,
    peer: SocketAddr,
    active: Arc<Active>,
    ctx: Arc<Ctx>,
    _slot: Slot,
}

type Live = Established<UpstreamConn>;
type Parked = Established<ParkedUpstream>;

impl<U> Established<U> {
    fn with_upstream<V>(self, upstream: Result<V, String>) -> Established<V> {
        Established {
            tls: self.tls,
            leftover: self.leftover,
            upstream,
            id: self.id,
            live: self.live,
            peer: self.peer,
            active: self.active,
            ctx: self.ctx,
            _slot: self._slot,
        }
    }

    /// Records the end of a connection that could not move to the data loop.
    fn lost(self, e: std::io::Error) {
        finish(
            &self.ctx,
            self.id,
            self.peer,
            &self.live,
            CloseInfo {
                code: None,
                reason: format!("lost moving to the data loop: {e}"),
                side: Side::Relay,
            },
        );
    }
}

impl Live {
    /// Off this runtime, ready for [`Parked::unpark`] on another; `None` (recorded) when the
    /// system refuses.
    fn park(mut self) -> Option<Parked> {
        if let Err(e) = self.tls.park() {
            self.lost(e);
            return None;
        }
        match std::mem::replace(&mut self.upstream, Err(String::new())) {
            Ok(conn) => match ParkedUpstream::park(conn) {
                Ok(p) => Some(self.with_upstream(Ok(p))),
                Err(e) => {
                    self.lost(e);
                    None
                }
            },
            Err(reason) => Some(self.with_upstream(Err(reason))),
        }
    }

    /// Relays until the connection ends, and records how: a small future around the route's
    /// own (see [`relaying`]).
    fn relay(self) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        let Established {
            tls,
            leftover,
            upstream,
            id,
            live,
            peer,
            active,
            ctx,
            _slot,
        } = self;
        let relaying = relaying(tls, leftover, upstream, live.clone(), &active, ctx.clone());
        Box::pin(async move {
            let close = relaying.await;
            finish(&ctx, id, peer, &live, close);
            drop(_slot);
        })
    }
}

impl Parked {
    /// Registered with the runtime this runs on; `None` (recorded) when the system refuses.
    fn unpark(mut self) -> Option<Live> {
        if let Err(e) = self.tls.unpark() {
            self.lost(e);
            return None;
        }
        match std::mem::replace(&mut self.upstream, Err(String::new())) {
            Ok(p) => match p.unpark() {
                Ok(conn) => Some(self.with_upstream(Ok(conn))),
                Err(e) => {
                    self.lost(e);
                    None
                }
            },
            Err(reason) => Some(self.with_upstream(Err(reason))),
        }
    }
}

/// Records how a connection ended, in its record and the log.
fn finish(ctx: &Ctx, id: u64, peer: SocketAddr, live: &LiveConn, close: CloseInfo) {
    live.update(|r| {
        r.close = Some(close.clone());
        r.closed = Some(chrono::Local::now());
    });
    if let Some(r) = ctx.registry.finish(id) {
        tracing::info!(
            id,
            peer = %peer,
            side = %close.side,
            code = close.code.map(|c| c.to_string()).unwrap_or_else(|| "-".into()),
            bytes_in = r.bytes_in,
            bytes_out = r.bytes_out,
            "close: {}",
            close.reason
        );
    }
}

/// TLS, the request head, the route, the upstream and the 101: everything before relaying.
async fn set_up(
    tcp: TcpStream,
    peer: SocketAddr,
    active: Arc<Active>,
    ctx: Arc<Ctx>,
    slot: Slot,
) -> Option<Live> {
    tcp.set_nodelay(true).ok();
    let limits = &active.config.limits;
    let deadline = tokio::time::Instant::now() + limits.handshake_timeout;
    let reject = |sni: Option<String>,
                  path: Option<String>,
                  status: Option<u16>,
                  kind: RejectKind,
                  reason: String| {
        ctx.registry.reject(Rejection {
            time: chrono::Local::now(),
            peer,
            sni,
            path,
            status,
            kind,
            reason,
        });
    };
    let (mut tls, facts) = accept_tls(tcp, &active, deadline, &reject).await?;
    let (req, leftover) = read_request(&mut tls, &active, deadline, &facts.sni, &reject).await?;
    if plain_endpoint(&mut tls, &active, &ctx, &req).await {
        return None;
    }
    let decision = route_for(&active, &req);
    let (route, up) = match decision {
        Ok(x) => x,
        Err(r) => {
            // The full reason goes to the log, the records and the console; an anonymous
            // client learns no more of the inside than it needs (verbose_errors: everything).
            let wire = if r.status == 404 && !active.config.verbose_errors {
                "no WebSocket endpoint at this path"
            } else {
                r.reason.as_str()
            };
            respond(&mut tls, r.status, wire).await;
            reject(
                facts.sni,
                Some(req.path.clone()),
                Some(r.status),
                r.kind,
                r.reason,
            );
            return None;
        }
    };

    let fwd = Forwarded {
        peer,
        prior_xff: req.header("X-Forwarded-For"),
        subprotocol: up.subprotocol.as_deref(),
        host: req.header("Host"),
    };
    let balancer = active
        .balancers
        .get(&route.path)
        .cloned()
        .unwrap_or_else(|| Arc::new(upstream::Balancer::new(route.upstreams.len())));
    let t_up = Instant::now();
    let upstream = upstream::connect_any(
        &route.upstreams,
        &balancer,
        &fwd,
        limits.upstream_connect_timeout,
    )
    .await;
    tracing::debug!("upstream connected in {:?}", t_up.elapsed());

    // Complete the upgrade in every case: a failed upstream is then reported as a close
    // frame with a reason, which a WebSocket client can show.
    let sent = async {
        tls.write_all(&handshake::switching_protocols(&up)).await?;
        tls.flush().await
    };
    if let Err(e) = sent.await {
        reject(
            facts.sni,
            Some(req.path.clone()),
            Some(101),
            RejectKind::ClientLeft,
            format!("client left during the upgrade: {e}"),
        );
        return None;
    }
    let (id, live) = open_record(&ctx, peer, facts, &req, &up, &upstream);
    Some(Established {
        tls,
        leftover,
        upstream: upstream.map(|c| c.conn),
        id,
        live,
        peer,
        active: active.clone(),
        ctx: ctx.clone(),
        _slot: slot,
    })
}

/// A connection refused at a limit: TLS and the request head are read (within at most 5 s)
/// so the client gets `503 Service Unavailable` with `Retry-After` and a one-line reason, as
/// nginx's `limit_conn` answers, instead of a bare end of the connection. The refusal itself
/// is recorded by the accept loop.
pub async fn refuse(tcp: TcpStream, active: Arc<Active>, kind: RejectKind) {
    tcp.set_nodelay(true).ok();
    let within = active
        .config
        .limits
        .handshake_timeout
        .min(Duration::from_secs(5));
    let deadline = tokio::time::Instant::now() + within;
    let quiet = |_: Option<String>, _: Option<String>, _: Option<u16>, _: RejectKind, _: String| {};
    let Some((mut tls, facts)) = accept_tls(tcp, &active, deadline, &quiet).await else {
        return;
    };
    if read_request(&mut tls, &active, deadline, &facts.sni, &quiet)
        .await
        .is_none()
    {
        return;
    }
    let body = if kind == RejectKind::PerIpLimit {
        "too many connections from your address; try again later"
    } else {
        "the relay is at its connection limit; try again later"
    };
    respond(&mut tls, 503, body).await;
}

/// Relays until either side closes: a failed upstream answered with 1013, a WebSocket upstream
/// frame by frame, a TCP upstream as MQTT over WebSocket. How it ended.
fn relaying(
    tls: ClientTls,
    leftover: Vec<u8>,
    upstream: Result<UpstreamConn, String>,
    live: Arc<LiveConn>,
    active: &Active,
    ctx: Arc<Ctx>,
) -> Pin<Box<dyn Future<Output = CloseInfo> + Send>> {
    let limits = &active.config.limits;
    match upstream {
        Err(reason) => Box::pin(no_upstream(tls, reason, active.config.verbose_errors)),
        Ok(UpstreamConn::Ws {
            tcp,
            leftover: up_left,
        }) => {
            let pass = Pass {
                idle: limits.idle_timeout,
                max_message: limits.max_message_bytes as u64,
            };
            let (c_rd, c_wr) = tokio::io::split(tls);
            let (u_rd, u_wr) = tcp.into_split();
            let pipes = Pipes {
                c_rd,
                c_wr,
                client_left: leftover,
                u_rd,
                u_wr,
                up_left,
            };
            Box::pin(passthrough(pipes, live, pass, ctx))
        }
        Ok(UpstreamConn::Tcp(tcp)) => Box::pin(pump_tcp(
            Box::new(tls),
            leftover,
            tcp,
            live,
            limits.idle_timeout,
            limits.max_message_bytes,
            ctx,
        )),
    }
}

/// The client's connection when no upstream answered: 1013 "try again later", so the client
/// retries.
async fn no_upstream(mut tls: ClientTls, reason: String, verbose: bool) -> CloseInfo {
    let _sent = tokio::time::timeout(Duration::from_secs(2), async {
        let wire = if verbose {
            reason.as_str()
        } else {
            "the broker is unavailable; try again later"
        };
        tls.write_all(&frames::server_close(1013, wire)).await.ok();
        tls.flush().await.ok();
        // Wait briefly for the client's close reply, then close.
        let mut sink = [0u8; 256];
        let _ = tokio::time::timeout(Duration::from_millis(500), tls.read(&mut sink)).await;
        tls.shutdown().await.ok();
    })
    .await;
    CloseInfo {
        code: Some(1013),
        reason,
        side: Side::Upstream,
    }
}

/// The TLS handshake under the handshake deadline, and what it negotiated.
async fn accept_tls(
    tcp: TcpStream,
    active: &Active,
    deadline: tokio::time::Instant,
    reject: &impl Fn(Option<String>, Option<String>, Option<u16>, RejectKind, String),
) -> Option<(ClientTls, Negotiated)> {
    let limits = &active.config.limits;
    let accept = client_tls::accept(tcp, active.config.tls.clone());
    let (tls, facts) = match tokio::time::timeout_at(deadline, accept).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            reject(
                None,
                None,
                None,
                RejectKind::TlsFailed,
                format!("TLS handshake failed: {e}"),
            );
            return None;
        }
        Err(_) => {
            reject(
                None,
                None,
                None,
                RejectKind::TlsTimeout,
                format!(
                    "TLS handshake not finished within {} s",
                    limits.handshake_timeout.as_secs()
                ),
            );
            return None;
        }
    };
    Some((tls, facts))
}

/// The HTTP request head, under the same deadline, and the bytes after it.
async fn read_request(
    tls: &mut ClientTls,
    active: &Active,
    deadline: tokio::time::Instant,
    sni: &Option<String>,
    reject: &impl Fn(Option<String>, Option<String>, Option<u16>, RejectKind, String),
) -> Option<(Request, Vec<u8>)> {
    let limits = &active.config.limits;
    let mut buf = Vec::with_capacity(1024);
    let req: Request = loop {
        let mut chunk = [0u8; 2048];
        let n = match tokio::time::timeout_at(deadline, tls.read(&mut chunk)).await {
            Ok(Ok(0)) => {
                reject(
                    sni.clone(),
                    None,
                    None,
                    RejectKind::ClosedEarly,
                    "closed before sending an HTTP request".into(),
                );
                return None;
            }
            Ok(Ok(n)) => n,
            Ok(Err(e)) => {
                reject(
                    sni.clone(),
                    None,
                    None,
                    RejectKind::ClosedEarly,
                    format!("read error before the request: {e}"),
                );
                return None;
            }
            Err(_) => {
                reject(
                    sni.clone(),
                    None,
                    None,
                    RejectKind::RequestTimeout,
                    format!(
                        "no complete HTTP request within {} s",
                        limits.handshake_timeout.as_secs()
                    ),
                );
                return None;
            }
        };
        buf.extend_from_slice(&chunk[..n]);
        match handshake::parse_head(&buf) {
            Ok(Some(r)) => break r,
            Ok(None) => continue,
            Err(e) => {
                let status = if matches!(e, handshake::HeadError::TooLarge) {
                    431
                } else {
                    400
                };
                respond(tls, status, &e.to_string()).await;
                reject(
                    sni.clone(),
                    None,
                    Some(status),
                    RejectKind::BadRequest,
                    e.to_string(),
                );
                return None;
            }
        }
    };
    let leftover = buf
        .get(req.head_len..)
        .map(<[u8]>::to_vec)
        .unwrap_or_default();
    Some((req, leftover))
}

/// `/healthz` and `/metrics`, when enabled: answered here. Whether it was one of them.
async fn plain_endpoint(tls: &mut ClientTls, active: &Active, ctx: &Ctx, req: &Request) -> bool {
    if req.method == "GET" && active.config.healthz && req.path == "/healthz" {
        respond(tls, 200, "ok").await;
        return true;
    }
    if req.method == "GET" && active.config.metrics && req.path == "/metrics" {
        let body = ctx.registry.prometheus();
        write_all_close(
            tls,
            &handshake::plain_response(200, &body, "text/plain; version=0.0.4"),
        )
        .await;
        return true;
    }
    false
}

/// The route for the request and the upgrade it asks for, or why it is refused.
fn route_for<'a>(
    active: &'a Active,
    req: &Request,
) -> Result<(&'a super::config::Route, handshake::Upgrade), Refusal> {
    match active.config.route(&req.path) {
        None => {
            let known: Vec<_> = active
                .config
                .routes
                .iter()
                .map(|r| r.path.as_str())
                .collect();
            Err(Refusal::new(
                RejectKind::NoRoute,
                404,
                format!(
                    "no route for {}; this relay serves {}",
                    req.path,
                    known.join(", ")
                ),
            ))
        }
        Some(route) => handshake::check_upgrade(req, route.require_subprotocol)
            .and_then(|up| allowed(req, route).map(|()| (route, up))),
    }
}

/// The live connection's record, registered and logged as `open`.
fn open_record(
    ctx: &Ctx,
    peer: SocketAddr,
    facts: Negotiated,
    req: &Request,
    up: &handshake::Upgrade,
    upstream: &Result<upstream::Connected, String>,
) -> (u64, Arc<LiveConn>) {
    let id = ctx.registry.next_id();
    let live = Arc::new(LiveConn {
        record: std::sync::Mutex::new(ConnRecord {
            id,
            peer,
            opened: chrono::Local::now(),
            closed: None,
            sni: facts.sni,
            tls_version: facts.version,
            cipher: facts.cipher,
            path: req.path.clone(),
            subprotocol: up.subprotocol.clone(),
            mini_program: req
                .header("Referer")
                .and_then(handshake::mini_program)
                .map(Into::into),
            user_agent: req.header("User-Agent").map(str::to_owned),
            origin: req.header("Origin").map(str::to_owned),
            upstream: upstream.as_ref().ok().map(|c| c.label.clone()),
            upstream_failures: upstream
                .as_ref()
                .map(|c| c.failed.clone())
                .unwrap_or_default(),
            connect: None,
            connack: None,
            bytes_in: 0,
            bytes_out: 0,
            packets_in: 0,
            packets_out: 0,
            close: None,
        }),
        counters: Counters::default(),
        close: tokio_util::sync::CancellationToken::new(),
    });
    ctx.registry.register(live.clone());
    {
        let r = live.record.lock().map(|r| r.clone());
        if let Ok(r) = r {
            tracing::info!(
                id,
                peer = %peer,
                path = %r.path,
                upstream = r.upstream.as_deref().unwrap_or("-"),
                appid = r.mini_program.as_ref().map(|m| m.appid.as_str()).unwrap_or("-"),
                "open"
            );
        }
    }
    (id, live)
}

/// The route's Origin / appid allowlists.
fn allowed(req: &Request, route: &super::config::Route) -> Result<(), Refusal> {
    if !route.allowed_origins.is_empty()
        && let Some(origin) = req.header("Origin")
    {
        {
            if !route.allowed_origins.iter().any(|o| o == origin) {
                return Err(Refusal::new(
                    RejectKind::NotAllowed,
                    403,
                    format!("Origin {origin} is not allowed on {}", route.path),
                ));
            }
        }
    }
    if !route.allowed_appids.is_empty() {
        let mp = req.header("Referer").and_then(handshake::mini_program);
        match mp {
            Some(m) if route.allowed_appids.contains(&m.appid) => {}
            Some(m) => {
                return Err(Refusal::new(
                    RejectKind::NotAllowed,
                    403,
                    format!("Mini Program {} is not allowed on {}", m.appid, route.path),
                ));
            }
            None => {
                return Err(Refusal::new(
                    RejectKind::NotAllowed,
                    403,
                    format!(
                        "{} accepts only listed Mini Programs (Referer https://servicewechat.com/<appid>/…)",
                        route.path
                    ),
                ));
            }
        }
    }
    Ok(())
}

async fn respond(tls: &mut ClientTls, status: u16, body: &str) {
    write_all_close(
        tls,
        &handshake::plain_response(status, body, "text/plain; charset=utf-8"),
    )
    .await;
}

async fn write_all_close(tls: &mut ClientTls, bytes: &[u8]) {
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        // The peer may already be gone; nothing more to do then.
        tls.write_all(bytes).await.ok();
        tls.shutdown().await.ok();
    })
    .await;
}

fn close_frame(code: u16, reason: &str) -> CloseFrame {
    // A close reason is limited to 123 bytes (RFC 6455 §5.5).
    let mut r = reason.to_owned();
    while r.len() > 123 {
        r.pop();
    }
    CloseFrame {
        code: CloseCode::from(code),
        reason: r.into(),
    }
}

/// How a pumped connection ended.
enum End {
    Client(Option<CloseFrame>),
    ClientGone(String),
    Upstream(Option<CloseFrame>),
    UpstreamGone(String),
    TooBig,
    TextToTcp,
    Idle,
    Operator,
    Drain,
}

struct Watch<'a> {
    live: &'a LiveConn,
    activity: &'a AtomicU64,
    epoch: Instant,
}

impl Watch<'_> {
    fn touch(&self) {
        self.activity
            .store(self.epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
}

/// Both connections of a passthrough, split, with what each sent along with its upgrade.
struct Pipes {
    c_rd: tokio::io::ReadHalf<ClientTls>,
    c_wr: tokio::io::WriteHalf<ClientTls>,
    client_left: Vec<u8>,
    u_rd: tokio::net::tcp::OwnedReadHalf,
    u_wr: tokio::net::tcp::OwnedWriteHalf,
    up_left: Vec<u8>,
}

/// Limits of a passthrough connection.
struct Pass {
    idle: Duration,
    max_message: u64,
}

/// Which direction of a passthrough connection saw a close frame first.
#[derive(Default)]
struct FirstClose(std::sync::Mutex<Option<CloseInfo>>);

impl FirstClose {
    fn set(&self, side: Side, code: Option<u16>, reason: String) {
        if let Ok(mut f) = self.0.lock()
            && f.is_none()
        {
            *f = Some(CloseInfo { code, reason, side });
        }
    }

    fn get(&self) -> Option<CloseInfo> {
        self.0.lock().ok().and_then(|f| f.clone())
    }
}

/// What both directions of a passthrough share.
struct Both<'a> {
    w: &'a Watch<'a>,
    first_close: &'a FirstClose,
}

/// How one direction of a passthrough ended.
enum DirEnd {
    /// The reading side closed its TCP stream (after a close frame, or abruptly).
    Eof,
    ReadError(String),
    WriteError(String),
    TooBig(u64),
    Invalid(&'static str),
}

/// A WebSocket upstream: after both upgrades the relay copies bytes both ways, as nginx does,
/// while observers parse the frames (MQTT identity, close codes, message sizes) without
/// re-encoding anything.
async fn passthrough(pipes: Pipes, live: Arc<LiveConn>, limits: Pass, ctx: Arc<Ctx>) -> CloseInfo {
    let live = &live;
    let activity = AtomicU64::new(0);
    let w = Watch {
        live,
        activity: &activity,
        epoch: Instant::now(),
    };
    let first_close = FirstClose::default();
    let Pipes {
        mut c_rd,
        mut c_wr,
        client_left,
        mut u_rd,
        mut u_wr,
        up_left,
    } = pipes;
    let mut obs_in = FrameObserver::new(limits.max_message, PacketStream::capturing_first());
    let mut obs_out = FrameObserver::new(limits.max_message, PacketStream::capturing_first());
    // Whether what has been written towards the broker / the client ends between two frames:
    // only then can the relay add a close frame of its own without corrupting the stream.
    let to_broker_clean = std::sync::atomic::AtomicBool::new(true);
    let to_client_clean = std::sync::atomic::AtomicBool::new(true);

    let end = {
        let both = Both {
            w: &w,
            first_close: &first_close,
        };
        let a = copy_dir(
            &mut c_rd,
            &mut u_wr,
            client_left,
            &mut obs_in,
            &both,
            Side::Client,
            &to_broker_clean,
        );
        let b = copy_dir(
            &mut u_rd,
            &mut c_wr,
            up_left,
            &mut obs_out,
            &both,
            Side::Upstream,
            &to_client_clean,
        );
        tokio::pin!(a, b);
        let idle_check = idle_watch(&w, limits.idle);
        tokio::select! {
            e = &mut a => {
                // The other direction may still carry the close reply: let it, briefly.
                if first_close.get().is_some() {
                    let _ = tokio::time::timeout(Duration::from_secs(1), &mut b).await;
                }
                Ended::Dir(Side::Client, e)
            }
            e = &mut b => {
                if first_close.get().is_some() {
                    let _ = tokio::time::timeout(Duration::from_secs(1), &mut a).await;
                }
                Ended::Dir(Side::Upstream, e)
            }
            _ = idle_check => Ended::By(1001, format!("idle for {} s", limits.idle.as_secs()), Side::Relay),
            _ = ctx.drain.cancelled() => Ended::By(1001, "relay shutting down".into(), Side::Relay),
            _ = live.close.cancelled() => Ended::By(1000, "closed by the operator".into(), Side::Operator),
        }
    };

    // A direction stopped half-way through a frame cannot take a close frame: the peer
    // then sees the TCP close alone.
    let clean = Clean {
        client: to_client_clean.load(Ordering::Relaxed),
        broker: to_broker_clean.load(Ordering::Relaxed),
    };
    let open = Open {
        c_rd: &mut c_rd,
        c_wr: &mut c_wr,
        u_wr: &mut u_wr,
    };
    // In its own allocation: only a connection that is ending holds this phase's state.
    Box::pin(end_passthrough(
        end,
        open,
        clean,
        &first_close,
        limits.max_message,
    ))
    .await
}

/// Whether what was written towards the client / the broker ends between two frames.
#[derive(Clone, Copy)]
struct Clean {
    client: bool,
    broker: bool,
}

/// What a passthrough still writes to (and reads the client's close reply from) as it ends.
struct Open<'a> {
    c_rd: &'a mut tokio::io::ReadHalf<ClientTls>,
    c_wr: &'a mut tokio::io::WriteHalf<ClientTls>,
    u_wr: &'a mut tokio::net::tcp::OwnedWriteHalf,
}

/// Ends a passthrough: close frames where a side can take one, then both shutdowns; how it
/// ended.
async fn end_passthrough(
    end: Ended,
    open: Open<'_>,
    clean: Clean,
    first_close: &FirstClose,
    max_message: u64,
) -> CloseInfo {
    let Open { c_rd, c_wr, u_wr } = open;
    let (client_clean, broker_clean) = (clean.client, clean.broker);
    let key: [u8; 4] = rand::random();
    let info = match end {
        Ended::By(code, reason, side) => {
            let _ = tokio::time::timeout(Duration::from_secs(2), async {
                if client_clean {
                    c_wr.write_all(&frames::server_close(code, &reason))
                        .await
                        .ok();
                    c_wr.flush().await.ok();
                }
                if broker_clean {
                    u_wr.write_all(&frames::client_close(
                        1001,
                        "client connection closed by the relay",
                        key,
                    ))
                    .await
                    .ok();
                }
                if client_clean {
                    // Give the client a moment to answer the close before the TCP close.
                    let mut sink = [0u8; 512];
                    let _ = tokio::time::timeout(Duration::from_millis(500), c_rd.read(&mut sink))
                        .await;
                }
            })
            .await;
            CloseInfo {
                code: Some(code),
                reason,
                side,
            }
        }
        Ended::Dir(side, DirEnd::TooBig(n)) => {
            let reason = format!("message of {n} bytes, larger than {} bytes", max_message);
            if client_clean {
                send_close(c_wr, 1009, &reason, Duration::from_secs(2)).await;
            }
            CloseInfo {
                code: Some(1009),
                reason: format!("{side} sent a {reason}"),
                side: Side::Relay,
            }
        }
        Ended::Dir(side, DirEnd::Invalid(what)) => {
            if client_clean {
                send_close(c_wr, 1002, what, Duration::from_secs(2)).await;
            }
            CloseInfo {
                code: Some(1002),
                reason: format!("{side} broke the WebSocket framing: {what}"),
                side,
            }
        }
        Ended::Dir(side, other) => match first_close.get() {
            Some(c) => c,
            None => {
                let why = match other {
                    DirEnd::ReadError(e) | DirEnd::WriteError(e) => e,
                    _ => "connection closed without a close frame".to_owned(),
                };
                if side == Side::Upstream {
                    // Tell the client why its broker went away.
                    let reason = format!("broker connection lost: {why}");
                    if client_clean {
                        send_close(c_wr, 1011, &reason, Duration::from_secs(1)).await;
                    }
                    CloseInfo {
                        code: Some(1011),
                        reason,
                        side,
                    }
                } else {
                    CloseInfo {
                        code: None,
                        reason: format!("client gone: {why}"),
                        side,
                    }
                }
            }
        },
    };
    u_wr.shutdown().await.ok();
    let _ = tokio::time::timeout(Duration::from_millis(500), c_wr.shutdown()).await;
    info
}

enum Ended {
    Dir(Side, DirEnd),
    By(u16, String, Side),
}

/// Sends a server close frame to the client, giving up after `within`.
async fn send_close<W: tokio::io::AsyncWrite + Unpin>(
    client: &mut W,
    code: u16,
    reason: &str,
    within: Duration,
) {
    let _ = tokio::time::timeout(within, async {
        // The client may be gone already; then there is nobody to tell.
        client
            .write_all(&frames::server_close(code, reason))
            .await
            .ok();
        client.flush().await.ok();
    })
    .await;
}

/// The least a TCP upstream's read takes at once (see [`pump_tcp`]).
const MIN_BUF: usize = 2 * 1024;

/// The most a copy reads at once.
const READ_AT_ONCE: usize = 32 * 1024;

thread_local! {
    /// The buffer every copy on this thread reads into. It is lent only within one poll (read,
    /// observe, write as far as the writer takes at once), so an idle connection holds no copy
    /// buffer at all; what a busy writer does not take is kept by its connection until sent.
    static SCRATCH: std::cell::RefCell<Box<[u8]>> =
        std::cell::RefCell::new(vec![0u8; READ_AT_ONCE].into_boxed_slice());
}

/// One read of a copy direction.
enum Step {
    Eof,
    End(DirEnd),
    /// `n` bytes read and observed (`packets` MQTT packets completed); `rest` is what the
    /// writer did not take at once.
    Read {
        n: usize,
        packets: u64,
        rest: Vec<u8>,
    },
}

/// Observes one chunk of a direction: frames, the first MQTT packet, a close frame; the
/// number of MQTT packets it completed, or how the direction must end.
fn observe(
    chunk: &[u8],
    obs: &mut FrameObserver,
    seen: &mut Vec<Seen>,
    both: &Both<'_>,
    from: Side,
) -> Result<u64, DirEnd> {
    let w = both.w;
    w.touch();
    let before = obs.mqtt.packets;
    seen.clear();
    let live = w.live;
    obs.feed(chunk, seen, &mut |cap| match from {
        Side::Client => record_connect(live, &cap),
        _ => record_connack(live, &cap),
    });
    for s in seen.iter() {
        match s {
            Seen::TooBig(n) => return Err(DirEnd::TooBig(*n)),
            Seen::Invalid(what) => return Err(DirEnd::Invalid(what)),
            Seen::Close(code, reason) => {
                let reason = if reason.is_empty() {
                    format!("{from} sent a close frame")
                } else {
                    reason.clone()
                };
                both.first_close.set(from, *code, reason)
            }
        }
    }
    Ok(obs.mqtt.packets - before)
}

/// Counts bytes and packets forwarded in one direction.
fn count(live: &LiveConn, from: Side, n: usize, packets: u64) {
    let c = &live.counters;
    let n = n as u64;
    match from {
        Side::Client => {
            c.bytes_in.fetch_add(n, Ordering::Relaxed);
            c.packets_in.fetch_add(packets, Ordering::Relaxed);
        }
        _ => {
            c.bytes_out.fetch_add(n, Ordering::Relaxed);
            c.packets_out.fetch_add(packets, Ordering::Relaxed);
        }
    }
}

/// Reads once into the thread's buffer, observes what came and writes it on as far as the
/// writer takes it without waiting.
fn read_observe_write<R, W>(
    cx: &mut std::task::Context<'_>,
    rd: &mut R,
    wr: &mut W,
    observe: &mut dyn FnMut(&[u8]) -> Result<u64, DirEnd>,
) -> std::task::Poll<Step>
where
    R: tokio::io::AsyncRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    use std::pin::Pin;
    use std::task::Poll;
    SCRATCH.with_borrow_mut(|buf| {
        let mut rb = tokio::io::ReadBuf::new(buf);
        match Pin::new(&mut *rd).poll_read(cx, &mut rb) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(e)) => Poll::Ready(Step::End(DirEnd::ReadError(e.to_string()))),
            Poll::Ready(Ok(())) => {
                let chunk = rb.filled();
                if chunk.is_empty() {
                    return Poll::Ready(Step::Eof);
                }
                let packets = match observe(chunk) {
                    Ok(p) => p,
                    Err(end) => return Poll::Ready(Step::End(end)),
                };
                let mut done = 0;
                while let Some(left) = chunk.get(done..).filter(|l| !l.is_empty()) {
                    match Pin::new(&mut *wr).poll_write(cx, left) {
                        Poll::Ready(Ok(0)) => {
                            let e = "the connection took no more bytes".to_owned();
                            return Poll::Ready(Step::End(DirEnd::WriteError(e)));
                        }
                        Poll::Ready(Ok(k)) => done += k,
                        Poll::Ready(Err(e)) => {
                            return Poll::Ready(Step::End(DirEnd::WriteError(e.to_string())));
                        }
                        Poll::Pending => break,
                    }
                }
                let rest = chunk.get(done..).unwrap_or_default().to_vec();
                Poll::Ready(Step::Read {
                    n: chunk.len(),
                    packets,
                    rest,
                })
            }
        }
    })
}

/// Copies one direction, observing frames; returns how it ended.
async fn copy_dir<R, W>(
    rd: &mut R,
    wr: &mut W,
    first: Vec<u8>,
    obs: &mut FrameObserver,
    both: &Both<'_>,
    from: Side,
    clean: &std::sync::atomic::AtomicBool,
) -> DirEnd
where
    R: tokio::io::AsyncRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    let mut seen = Vec::new();
    let mut step = if first.is_empty() {
        None
    } else {
        // What arrived with the upgrade goes first, as read.
        Some(match observe(&first, obs, &mut seen, both, from) {
            Ok(packets) => Step::Read {
                n: first.len(),
                packets,
                rest: first,
            },
            Err(end) => Step::End(end),
        })
    };
    loop {
        let next = match step.take() {
            Some(s) => s,
            None => {
                // Unknown while a write is under way (it may be cancelled half-way).
                std::future::poll_fn(|cx| {
                    read_observe_write(cx, rd, wr, &mut |chunk| {
                        clean.store(false, Ordering::Relaxed);
                        observe(chunk, obs, &mut seen, both, from)
                    })
                })
                .await
            }
        };
        match next {
            Step::Eof => {
                // A client that left: pass the half-close on to the broker at once, as a TCP
                // proxy does (mosquitto, for one, only then gets round to it). A broker that
                // left is reported to the client with a close frame first.
                if from == Side::Client {
                    let shutdown = tokio::time::timeout(Duration::from_millis(500), wr.shutdown());
                    let _ = Box::pin(shutdown).await;
                }
                return DirEnd::Eof;
            }
            Step::End(end) => return end,
            Step::Read { n, packets, rest } => {
                clean.store(false, Ordering::Relaxed);
                if let Err(e) = wr.write_all(&rest).await {
                    return DirEnd::WriteError(e.to_string());
                }
                drop(rest);
                if let Err(e) = wr.flush().await {
                    return DirEnd::WriteError(e.to_string());
                }
                clean.store(obs.at_boundary(), Ordering::Relaxed);
                count(both.w.live, from, n, packets);
            }
        }
    }
}

/// Resolves when nothing crossed the connection for `idle`.
async fn idle_watch(w: &Watch<'_>, idle: Duration) {
    let tick = (idle / 4).clamp(Duration::from_millis(50), Duration::from_secs(1));
    loop {
        tokio::time::sleep(tick).await;
        let last = Duration::from_millis(w.activity.load(Ordering::Relaxed));
        if w.epoch.elapsed().saturating_sub(last) >= idle {
            return;
        }
    }
}

/// Client messages gathered into one write to a TCP upstream, at most.
const COALESCE_BYTES: usize = 64 * 1024;

/// A TCP upstream: WebSocket binary frames from the client become the byte stream, and bytes
/// from the broker become binary frames.
async fn pump_tcp(
    tls: Box<ClientTls>,
    leftover: Vec<u8>,
    upstream: TcpStream,
    live: Arc<LiveConn>,
    idle: Duration,
    max_message: usize,
    ctx: Arc<Ctx>,
) -> CloseInfo {
    let (live, ctx) = (&live, &*ctx);
    let cfg = ws_config(max_message);
    let client: ClientWs =
        WebSocketStream::from_partially_read(tls, leftover, Role::Server, Some(cfg)).await;
    let activity = AtomicU64::new(0);
    let w = Watch {
        live,
        activity: &activity,
        epoch: Instant::now(),
    };
    let (mut c_tx, mut c_rx) = client.split();
    let mut up_in = PacketStream::capturing_first();
    let mut up_out = PacketStream::capturing_first();
    let end = {
        let (u_rd, mut u_wr) = upstream.into_split();
        let a = client_to_broker(&mut c_rx, &mut u_wr, &w, &mut up_in);
        let b = broker_to_client(&u_rd, &mut c_tx, &w, &mut up_out, max_message);
        let end = race(a, b, &w, idle, live, ctx).await;
        u_wr.shutdown().await.ok();
        end
    };
    let (code, reason, side) = close_words(&end, up_in.last_type, idle, max_message);
    // Tell the client, briefly, unless it is gone or already said goodbye.
    if !matches!(end, End::ClientGone(_)) {
        let frame = match (&end, code) {
            (End::Client(f), _) => f.clone(),
            (_, Some(c)) => Some(close_frame(c, &reason)),
            (_, None) => None,
        };
        let _ = Box::pin(tokio::time::timeout(Duration::from_secs(2), async {
            c_tx.send(Message::Close(frame)).await.ok();
            // Wait briefly for the client's close reply so the TCP close is clean.
            let _ = tokio::time::timeout(Duration::from_millis(500), async {
                while let Some(Ok(_)) = c_rx.next().await {}
            })
            .await;
        }))
        .await;
    }
    CloseInfo { code, reason, side }
}

type ClientRx = futures_util::stream::SplitStream<ClientWs>;
type ClientTx = futures_util::stream::SplitSink<ClientWs, Message>;

/// The client's messages to a TCP upstream: the binary frames' bytes, written as they come;
/// how this direction ended.
async fn client_to_broker(
    c_rx: &mut ClientRx,
    u_wr: &mut tokio::net::tcp::OwnedWriteHalf,
    w: &Watch<'_>,
    up_in: &mut PacketStream,
) -> End {
    // Messages already decoded are written to the broker in one go: one syscall for a burst
    // of small publishes, not one each.
    let mut pending: Vec<u8> = Vec::new();
    while let Some(first) = c_rx.next().await {
        let mut next = Some(first);
        let mut end = None;
        while let Some(m) = next.take() {
            match m {
                Ok(Message::Binary(b)) => {
                    client_bytes(w, up_in, &b);
                    pending.extend_from_slice(&b);
                }
                Ok(Message::Text(_)) => end = Some(End::TextToTcp),
                Ok(Message::Close(f)) => end = Some(End::Client(f)),
                Ok(_) => w.touch(),
                Err(e) => end = Some(client_error(e)),
            }
            if end.is_some() || pending.len() >= COALESCE_BYTES {
                break;
            }
            next = c_rx.next().now_or_never().flatten();
        }
        if !pending.is_empty() {
            if let Err(e) = u_wr.write_all(&pending).await {
                return End::UpstreamGone(e.to_string());
            }
            // Nothing kept while the connection idles.
            pending = Vec::new();
        }
        if let Some(end) = end {
            return end;
        }
    }
    End::ClientGone("connection closed without a close frame".into())
}

/// A TCP upstream's bytes to the client as binary frames; how this direction ended.
async fn broker_to_client(
    u_rd: &tokio::net::tcp::OwnedReadHalf,
    c_tx: &mut ClientTx,
    w: &Watch<'_>,
    up_out: &mut PacketStream,
    max_message: usize,
) -> End {
    // Read into the thread's buffer once the broker has sent something, so an idle connection
    // holds no read buffer; what it sent goes out as one frame (MQTT packets may share a frame
    // or span frames), at most a message long.
    let most = READ_AT_ONCE.min(max_message).max(MIN_BUF);
    loop {
        if let Err(e) = u_rd.readable().await {
            return End::UpstreamGone(e.to_string());
        }
        let read = SCRATCH.with_borrow_mut(|buf| {
            let buf = buf.get_mut(..most).unwrap_or_default();
            u_rd.try_read(buf).map(|n| {
                let chunk = buf.get(..n).unwrap_or_default();
                upstream_bytes(w, up_out, chunk);
                chunk.to_vec()
            })
        });
        match read {
            Ok(chunk) if chunk.is_empty() => return End::Upstream(None),
            Ok(chunk) => {
                if let Err(e) = c_tx.send(Message::Binary(chunk.into())).await {
                    return End::ClientGone(e.to_string());
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return End::UpstreamGone(e.to_string()),
        }
    }
}

/// The close code, reason and side recorded for how a TCP-upstream connection ended
/// (`last_type`: the type of the client's last MQTT packet).
fn close_words(
    end: &End,
    last_type: u8,
    idle: Duration,
    max_message: usize,
) -> (Option<u16>, String, Side) {
    match end {
        End::Client(f) => (
            f.as_ref().map(|f| u16::from(f.code)),
            f.as_ref()
                .map(|f| f.reason.to_string())
                .filter(|r| !r.is_empty())
                .unwrap_or_else(|| "client closed".into()),
            Side::Client,
        ),
        End::ClientGone(e) => (None, format!("client gone: {e}"), Side::Client),
        End::Upstream(Some(f)) => (
            Some(u16::from(f.code)),
            format!("broker closed: {}", f.reason),
            Side::Upstream,
        ),
        // After the client's DISCONNECT a closing broker is the normal end; otherwise the
        // broker went away under the client, as in the WebSocket passthrough: 1011.
        End::Upstream(None) if last_type == 14 => (
            Some(1000),
            "broker closed the connection after the client's DISCONNECT".into(),
            Side::Upstream,
        ),
        End::Upstream(None) => (
            Some(1011),
            "broker closed the connection".into(),
            Side::Upstream,
        ),
        End::UpstreamGone(e) => (
            Some(1011),
            format!("broker connection failed: {e}"),
            Side::Upstream,
        ),
        End::TooBig => (
            Some(1009),
            format!("message larger than {max_message} bytes"),
            Side::Relay,
        ),
        End::TextToTcp => (
            Some(1003),
            "text frame: MQTT over WebSocket uses binary frames".into(),
            Side::Relay,
        ),
        End::Idle => (
            Some(1001),
            format!("idle for {} s", idle.as_secs()),
            Side::Relay,
        ),
        End::Operator => (Some(1000), "closed by the operator".into(), Side::Operator),
        End::Drain => (Some(1001), "relay shutting down".into(), Side::Relay),
    }
}

fn client_error(e: WsError) -> End {
    match e {
        WsError::Capacity(CapacityError::MessageTooLong { .. }) => End::TooBig,
        WsError::Capacity(_) => End::TooBig,
        WsError::ConnectionClosed | WsError::AlreadyClosed => {
            End::ClientGone("connection closed".into())
        }
        WsError::Io(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            End::ClientGone("connection closed without a close frame".into())
        }
        other => End::ClientGone(other.to_string()),
    }
}

fn client_bytes(w: &Watch<'_>, insp: &mut PacketStream, b: &[u8]) {
    w.touch();
    let c = &w.live.counters;
    c.bytes_in.fetch_add(b.len() as u64, Ordering::Relaxed);
    let before = insp.packets;
    if let Some(cap) = insp.feed(b) {
        record_connect(w.live, &cap);
    }
    c.packets_in
        .fetch_add(insp.packets - before, Ordering::Relaxed);
}

fn upstream_bytes(w: &Watch<'_>, insp: &mut PacketStream, b: &[u8]) {
    w.touch();
    let c = &w.live.counters;
    c.bytes_out.fetch_add(b.len() as u64, Ordering::Relaxed);
    let before = insp.packets;
    if let Some(cap) = insp.feed(b) {
        record_connack(w.live, &cap);
    }
    c.packets_out
        .fetch_add(insp.packets - before, Ordering::Relaxed);
}

/// The client's first packet: its MQTT identity goes into the record (never the password).
fn record_connect(live: &LiveConn, cap: &Captured) {
    match parse_connect(cap) {
        Ok(info) => {
            tracing::info!(
                client_id = %info.client_id,
                username = info.username.as_deref().unwrap_or("-"),
                level = info.protocol_level,
                keepalive = info.keep_alive_secs,
                "MQTT CONNECT"
            );
            live.update(|r| r.connect = Some(info.into()));
        }
        Err(e) => tracing::info!("first client packet: {e}"),
    }
}

/// The broker's first packet: the CONNACK code goes into the record.
fn record_connack(live: &LiveConn, cap: &Captured) {
    if let Some(code) = parse_connack(cap) {
        tracing::info!("MQTT CONNACK {code} ({})", connack_text(code));
        live.update(|r| r.connack = Some(code));
    }
}

/// Runs both directions until one ends, the idle timer fires, the operator closes the
/// connection or the relay drains.
async fn race(
    a: impl std::future::Future<Output = End>,
    b: impl std::future::Future<Output = End>,
    w: &Watch<'_>,
    idle: Duration,
    live: &LiveConn,
    ctx: &Ctx,
) -> End {
    let idle_check = idle_watch(w, idle);
    tokio::select! {
        e = a => e,
        e = b => e,
        _ = idle_check => End::Idle,
        _ = ctx.drain.cancelled() => End::Drain,
        _ = live.close.cancelled() => End::Operator,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The size of the future a function returns, without calling it.
    fn future_size<F>(_: &dyn Fn() -> F) -> usize {
        std::mem::size_of::<F>()
    }

    /// An argument for a call that is only type-checked: `future_size` never calls its closure.
    fn typed_only<T>() -> T {
        unreachable!("future_size reads a type and never calls the function")
    }

    /// What an idle connection holds in futures: the task's own (`serve`, which awaits the
    /// rest through boxes), and the route's. Setup's state is larger and freed once it is done.
    #[test]
    fn an_established_connection_holds_small_futures() {
        let serve = future_size(&|| {
            serve(
                typed_only(),
                typed_only(),
                typed_only(),
                typed_only(),
                typed_only(),
            )
        });
        let pass =
            future_size(&|| passthrough(typed_only(), typed_only(), typed_only(), typed_only()));
        let pump = future_size(&|| {
            pump_tcp(
                typed_only(),
                typed_only(),
                typed_only(),
                typed_only(),
                typed_only(),
                typed_only(),
                typed_only(),
            )
        });
        let set_up = future_size(&|| {
            set_up(
                typed_only(),
                typed_only(),
                typed_only(),
                typed_only(),
                typed_only(),
            )
        });
        assert!(serve <= 256, "serve's future is {serve} bytes");
        assert!(pass <= 3 * 1024, "the passthrough's future is {pass} bytes");
        assert!(pump <= 3 * 1024, "the TCP pump's future is {pump} bytes");
        assert!(set_up > pass, "setup ({set_up}) is the larger phase");
    }
}
