//! Server-name (SNI) override. rumqttc takes the TLS server name from the address it dials,
//! so a profile that dials one host but must present another name (an IP address with a
//! certificate for `broker.example.com`, a name-based TLS router, a test box) goes through a
//! loopback forwarder: rumqttc speaks plain MQTT (or WebSocket) to `127.0.0.1:<port>`, and the
//! forwarder does TLS to the real broker with the override as SNI and as the name checked.
//!
//! The forwarder accepts only on loopback, only while its connection lives, and only ever dials
//! the profile's broker. Its TLS failures are kept for the connection's error message.

use std::sync::{Arc, Mutex};

use rustls::pki_types::ServerName;
use tokio_util::sync::CancellationToken;

use crate::verdict::L10n;

/// A bound loopback listener and where it forwards to.
pub struct Forward {
    listener: Mutex<Option<std::net::TcpListener>>,
    /// `host:port` of the broker.
    pub upstream: String,
    pub name: ServerName<'static>,
    tls: Arc<rustls::ClientConfig>,
    /// The last TLS failure, in words (taken by the worker for its error message).
    pub last_error: Arc<Mutex<Option<L10n>>>,
    /// The loopback port rumqttc dials.
    pub local_port: u16,
}

impl Forward {
    /// Binds `127.0.0.1:0` now (so the MQTT options can name the port); accepts once started.
    pub fn bind(
        upstream: String,
        name: &str,
        tls: rustls::ClientConfig,
    ) -> Result<Arc<Self>, String> {
        let name = ServerName::try_from(name.to_owned())
            .map_err(|_| format!("\"{name}\" is not a valid server name"))?;
        let listener = std::net::TcpListener::bind("127.0.0.1:0")
            .map_err(|e| format!("cannot open the loopback port for the server name: {e}"))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| format!("loopback port: {e}"))?;
        let local_port = listener.local_addr().map_err(|e| e.to_string())?.port();
        Ok(Arc::new(Forward {
            listener: Mutex::new(Some(listener)),
            upstream,
            name,
            tls: Arc::new(tls),
            last_error: Arc::default(),
            local_port,
        }))
    }

    /// Starts accepting (once; later calls do nothing). Runs until `cancel`.
    pub fn start(&self, handle: &tokio::runtime::Handle, cancel: &CancellationToken) {
        let Some(std_listener) = self.listener.lock().ok().and_then(|mut l| l.take()) else {
            return;
        };
        let _entered = handle.enter();
        let listener = match tokio::net::TcpListener::from_std(std_listener) {
            Ok(l) => l,
            Err(e) => {
                self.record(L10n::new(
                    format!("loopback port: {e}"),
                    format!("本地回环端口：{e}"),
                ));
                return;
            }
        };
        let upstream = self.upstream.clone();
        let name = self.name.clone();
        let connector = tokio_rustls::TlsConnector::from(self.tls.clone());
        let last_error = self.last_error.clone();
        let cancel = cancel.clone();
        handle.spawn(async move {
            loop {
                let accepted = tokio::select! {
                    _ = cancel.cancelled() => break,
                    a = listener.accept() => a,
                };
                let Ok((mut local, _)) = accepted else {
                    continue;
                };
                let shown = format!("{upstream} (SNI {})", name.to_str());
                let (upstream, name, connector, last_error, cancel) = (
                    upstream.clone(),
                    name.clone(),
                    connector.clone(),
                    last_error.clone(),
                    cancel.clone(),
                );
                tokio::spawn(async move {
                    let dial = async {
                        let tcp = tokio::net::TcpStream::connect(&upstream)
                            .await
                            .map_err(|e| forward_io_error(&upstream, &e))?;
                        tcp.set_nodelay(true).ok();
                        connector.connect(name, tcp).await.map_err(|e| {
                            match super::tls_words::find_rustls(&e) {
                                Some(t) => super::tls_failure(&shown, t),
                                None => super::words::other(&shown, e),
                            }
                        })
                    };
                    let dialled = tokio::time::timeout(std::time::Duration::from_secs(15), dial)
                        .await
                        .unwrap_or_else(|_| Err(super::words::timed_out(&upstream)));
                    let mut remote = match dialled {
                        Ok(r) => r,
                        Err(e) => {
                            if let Ok(mut slot) = last_error.lock() {
                                *slot = Some(e);
                            }
                            return;
                        }
                    };
                    tokio::select! {
                        _ = cancel.cancelled() => {}
                        _ = tokio::io::copy_bidirectional(&mut local, &mut remote) => {}
                    }
                });
            }
        });
    }

    fn record(&self, e: L10n) {
        if let Ok(mut slot) = self.last_error.lock() {
            *slot = Some(e);
        }
    }

    /// The last failure of the forwarder, taken (so it is reported once).
    pub fn take_error(&self) -> Option<L10n> {
        self.last_error.lock().ok().and_then(|mut s| s.take())
    }
}

fn forward_io_error(upstream: &str, e: &std::io::Error) -> L10n {
    if e.kind() == std::io::ErrorKind::ConnectionRefused {
        super::words::nothing_listens(upstream)
    } else if super::words::is_lookup(e) {
        super::words::unresolvable(upstream, e)
    } else {
        super::words::other(upstream, e)
    }
}
