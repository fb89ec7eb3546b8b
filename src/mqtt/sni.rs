//! Server-name (SNI) override. rumqttc takes the TLS server name from the address it dials,
//! so a profile that dials one host but must present another name (an IP address with a
//! certificate for `broker.example.com`, a name-based TLS router, a test box) goes through a
//! loopback forwarder: rumqttc speaks plain MQTT (or WebSocket) to `127.0.0.1:<port>`, and the
//! forwarder does TLS to the real broker with the override as SNI and as the name checked.
//!
//! The forwarder accepts only on loopback, only while its connection lives, only from this
//! process (another local program must not borrow the profile's client certificate), and only
//! ever dials the profile's broker. Its TLS failures are kept for the connection's error
//! message.

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
    ) -> Result<Arc<Self>, L10n> {
        let name = ServerName::try_from(name.to_owned()).map_err(|_| {
            L10n::new(
                format!("\"{name}\" is not a valid server name"),
                format!("“{name}”不是有效的服务器名称"),
            )
        })?;
        let loopback = |e: std::io::Error| {
            let e = crate::i18n::io_error(&e);
            L10n::new(
                format!(
                    "cannot open the loopback port for the server name: {}",
                    e.en
                ),
                format!("无法为服务器名称打开本地回环端口：{}", e.zh),
            )
        };
        let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(loopback)?;
        listener.set_nonblocking(true).map_err(loopback)?;
        let local_port = listener.local_addr().map_err(loopback)?.port();
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
                let e = crate::i18n::io_error(&e);
                self.record(e.after("loopback port: ", "本地回环端口："));
                return;
            }
        };
        let upstream = self.upstream.clone();
        let local_port = self.local_port;
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
                let Ok((mut local, peer)) = accepted else {
                    continue;
                };
                // The profile's client certificate is presented to the broker for whoever
                // connects here: only this process may.
                if !from_this_process(peer, local_port) {
                    tracing::warn!(
                        "refused a connection to the server-name forwarder from another process ({peer})"
                    );
                    drop(local);
                    continue;
                }
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
                            match crate::certs::tls_words::find_rustls(&e) {
                                Some(t) => super::tls_failure(&shown, t),
                                None => super::words::other(&shown, &e),
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

/// Whether the loopback connection from `peer` to our `listen_port` was made by this process:
/// its socket (local `peer`, remote our port) is in the kernel's TCP table, and its inode is
/// among this process's descriptors. Linux only; elsewhere every loopback peer is accepted
/// (see docs/DECISIONS.md).
fn from_this_process(peer: std::net::SocketAddr, listen_port: u16) -> bool {
    #[cfg(target_os = "linux")]
    {
        let std::net::SocketAddr::V4(peer) = peer else {
            return false;
        };
        let Some(inode) = tcp_inode(&peer, listen_port) else {
            return false;
        };
        let wanted = format!("socket:[{inode}]");
        std::fs::read_dir("/proc/self/fd").is_ok_and(|fds| {
            fds.flatten().any(|fd| {
                std::fs::read_link(fd.path()).is_ok_and(|t| t.as_os_str() == wanted.as_str())
            })
        })
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (peer, listen_port);
        true
    }
}

/// The inode of the TCP socket whose local address is `local` and remote port `remote_port`
/// on 127.0.0.1, from /proc/net/tcp (addresses in host-order hex).
#[cfg(target_os = "linux")]
fn tcp_inode(local: &std::net::SocketAddrV4, remote_port: u16) -> Option<u64> {
    let hex = |a: &std::net::Ipv4Addr, port: u16| {
        format!("{:08X}:{port:04X}", u32::from_le_bytes(a.octets()))
    };
    let want_local = hex(local.ip(), local.port());
    let want_remote = hex(&std::net::Ipv4Addr::LOCALHOST, remote_port);
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    table.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        (f.get(1) == Some(&want_local.as_str()) && f.get(2) == Some(&want_remote.as_str()))
            .then(|| f.get(9)?.parse().ok())
            .flatten()
    })
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

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use std::io::Read;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A connection from this process is forwarded (the broker sees a dial); one from another
    /// process is closed at once and never reaches the broker.
    #[test]
    fn only_this_process_may_use_the_forwarder() {
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        // The "broker": counts the connections the forwarder makes.
        let broker = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let broker_port = broker.local_addr().expect("addr").port();
        let dials = std::sync::Arc::new(AtomicUsize::new(0));
        let counted = dials.clone();
        std::thread::Builder::new()
            .name("test-broker".into())
            .spawn(move || {
                for c in broker.incoming().flatten() {
                    counted.fetch_add(1, Ordering::SeqCst);
                    drop(c);
                }
            })
            .expect("thread");
        let tls = rustls::ClientConfig::builder_with_provider(crate::crypto::provider())
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        let fwd = super::Forward::bind(format!("127.0.0.1:{broker_port}"), "broker.example", tls)
            .expect("bind forwarder");
        let cancel = tokio_util::sync::CancellationToken::new();
        fwd.start(rt.handle(), &cancel);
        let wait_dials = |n: usize| {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
            while dials.load(Ordering::SeqCst) < n && std::time::Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            dials.load(Ordering::SeqCst)
        };

        // Another process: python connects and waits for the forwarder to close on it.
        let out = std::process::Command::new("python3")
            .args([
                "-c",
                "import socket,sys\ns=socket.create_connection(('127.0.0.1',int(sys.argv[1])))\ns.settimeout(5)\nprint(len(s.recv(16)))",
            ])
            .arg(fwd.local_port.to_string())
            .output()
            .expect("python3");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "0",
            "closed at once"
        );
        std::thread::sleep(std::time::Duration::from_millis(300));
        assert_eq!(dials.load(Ordering::SeqCst), 0, "the broker never saw it");

        // This process: forwarded.
        let mut own = std::net::TcpStream::connect(("127.0.0.1", fwd.local_port)).expect("connect");
        assert_eq!(wait_dials(1), 1, "forwarded to the broker");
        own.set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .ok();
        let _ = own.read(&mut [0u8; 16]);
        cancel.cancel();
    }
}
