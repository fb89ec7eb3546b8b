//! Handing an established connection from the handshake pool to the data loop.
//!
//! `mpbridge relay` runs connection setup (TLS, the HTTP upgrade, the upstream connect and its
//! upgrade) on a small pool of threads, one per core, and every established connection on one
//! event-loop thread, whose single-threaded scheduling costs less CPU per message than a
//! work-stealing runtime. A tokio socket belongs to the reactor of the runtime that registered
//! it, so crossing over means deregistering it there ([`Sock::park`]) and registering it again
//! on the data loop ([`Sock::unpark`]); the TLS state travels with the stream (see
//! [`super::client_tls`]).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::upstream::UpstreamConn;

/// The client's socket: live on a runtime, or parked between two.
#[derive(Debug)]
pub struct Sock {
    conn: Conn,
}

#[derive(Debug)]
enum Conn {
    Live(TcpStream),
    Parked(Option<std::net::TcpStream>),
}

impl From<TcpStream> for Sock {
    fn from(s: TcpStream) -> Self {
        Sock {
            conn: Conn::Live(s),
        }
    }
}

fn in_transit() -> io::Error {
    io::Error::new(
        io::ErrorKind::NotConnected,
        "socket between two event loops",
    )
}

impl Sock {
    /// Takes the socket off the current runtime's reactor.
    pub fn park(&mut self) -> io::Result<()> {
        if let Conn::Live(_) = self.conn
            && let Conn::Live(s) = std::mem::replace(&mut self.conn, Conn::Parked(None))
        {
            self.conn = Conn::Parked(Some(s.into_std()?));
        }
        Ok(())
    }

    /// Registers a parked socket with the current runtime's reactor.
    pub fn unpark(&mut self) -> io::Result<()> {
        if let Conn::Parked(s) = &mut self.conn {
            let std = s.take().ok_or_else(in_transit)?;
            self.conn = Conn::Live(TcpStream::from_std(std)?);
        }
        Ok(())
    }

    fn live(self: Pin<&mut Self>) -> io::Result<Pin<&mut TcpStream>> {
        match &mut self.get_mut().conn {
            Conn::Live(s) => Ok(Pin::new(s)),
            Conn::Parked(_) => Err(in_transit()),
        }
    }
}

impl AsyncRead for Sock {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.live() {
            Ok(s) => s.poll_read(cx, buf),
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

impl AsyncWrite for Sock {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.live() {
            Ok(s) => s.poll_write(cx, buf),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.live() {
            Ok(s) => s.poll_write_vectored(cx, bufs),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn is_write_vectored(&self) -> bool {
        matches!(&self.conn, Conn::Live(s) if s.is_write_vectored())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.live() {
            Ok(s) => s.poll_flush(cx),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.live() {
            Ok(s) => s.poll_shutdown(cx),
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

/// An upstream connection off any reactor.
pub enum ParkedUpstream {
    Ws {
        tcp: std::net::TcpStream,
        leftover: Vec<u8>,
    },
    Tcp(std::net::TcpStream),
}

impl ParkedUpstream {
    pub fn park(conn: UpstreamConn) -> io::Result<Self> {
        Ok(match conn {
            UpstreamConn::Ws { tcp, leftover } => ParkedUpstream::Ws {
                tcp: tcp.into_std()?,
                leftover,
            },
            UpstreamConn::Tcp(tcp) => ParkedUpstream::Tcp(tcp.into_std()?),
        })
    }

    pub fn unpark(self) -> io::Result<UpstreamConn> {
        Ok(match self {
            ParkedUpstream::Ws { tcp, leftover } => UpstreamConn::Ws {
                tcp: TcpStream::from_std(tcp)?,
                leftover,
            },
            ParkedUpstream::Tcp(tcp) => UpstreamConn::Tcp(TcpStream::from_std(tcp)?),
        })
    }
}

/// A sleep of the event loop shorter than this means events are arriving back to back.
const BUSY_SLEEP: std::time::Duration = std::time::Duration::from_millis(1);

thread_local! {
    /// When this thread's event loop last went to sleep, and how long its last sleep was.
    static SLEEP: std::cell::Cell<(Option<std::time::Instant>, std::time::Duration)> =
        const { std::cell::Cell::new((None, std::time::Duration::MAX)) };
}

/// Makes a single-threaded event loop under load give its core away once before it sleeps.
///
/// On a busy machine the relay's loop runs out of work many times a millisecond: the broker
/// and the clients have not answered yet. Sleeping in `epoll_wait` and being woken again then
/// costs a context switch and a wakeup each time (perf: a fifth of the relay's CPU). Yielding
/// first lets those processes run on this core; when the loop asks the kernel for events
/// again they are usually there, so it does not sleep at all, and it takes them in bigger
/// batches. Measured with `bench relay` (ws:// route, 8 cells): 15 % less CPU per message,
/// 10 % more messages and a lower p99 (docs/DECISIONS.md). Only while the loop is busy (its
/// last sleep was under a millisecond): an idle relay sleeps at once. The price: on a core
/// shared with unrelated CPU-bound work, an event that arrives during the yield may wait for
/// that work's time slice (a few milliseconds at most) instead of preempting it.
pub fn yield_before_sleep(b: &mut tokio::runtime::Builder) {
    b.on_thread_park(|| {
        let (_, last) = SLEEP.get();
        if last < BUSY_SLEEP {
            std::thread::yield_now();
        }
        SLEEP.set((Some(std::time::Instant::now()), last));
    })
    .on_thread_unpark(|| {
        if let (Some(at), _) = SLEEP.get() {
            SLEEP.set((None, at.elapsed()));
        }
    });
}

/// The runtimes a relay runs on: `setup` (when given) accepts and sets up connections, `data`
/// relays them. Without `setup`, everything runs on `data`.
#[derive(Clone)]
pub struct Runtimes {
    pub data: tokio::runtime::Handle,
    pub setup: Option<tokio::runtime::Handle>,
}

impl Runtimes {
    /// One runtime for everything (the console's, the tests').
    pub fn one(handle: &tokio::runtime::Handle) -> Self {
        Runtimes {
            data: handle.clone(),
            setup: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// The loop's sleeps are measured: a long one leaves it sleeping at once next time, short
    /// ones make it yield first.
    #[test]
    fn the_event_loop_knows_how_long_it_slept() {
        let mut b = tokio::runtime::Builder::new_current_thread();
        yield_before_sleep(&mut b);
        let rt = b.enable_all().build().unwrap();
        rt.block_on(async { tokio::time::sleep(std::time::Duration::from_millis(30)).await });
        let (asleep, last) = SLEEP.get();
        assert!(asleep.is_none(), "awake again");
        assert!(last >= std::time::Duration::from_millis(20), "{last:?}");
        assert!(last >= BUSY_SLEEP);
        // Woken at once by a task on another thread: a short sleep.
        rt.block_on(async {
            let (tx, rx) = tokio::sync::oneshot::channel();
            std::thread::Builder::new()
                .name("waker".into())
                .spawn(move || tx.send(()))
                .unwrap();
            rx.await.unwrap();
        });
        let (_, last) = SLEEP.get();
        assert!(last < std::time::Duration::from_millis(20), "{last:?}");
    }

    /// A socket set up on one runtime carries on after moving to another, in both
    /// directions, with nothing lost.
    #[test]
    fn a_socket_moves_between_runtimes_intact() {
        let setup = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let data = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (mut sock, mut peer) = setup.block_on(async {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let peer = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
            let (s, _) = l.accept().await.unwrap();
            let mut sock = Sock::from(s);
            sock.write_all(b"before ").await.unwrap();
            (sock, peer)
        });
        sock.park().unwrap();
        let peer_std = setup.block_on(async {
            let mut got = [0u8; 7];
            peer.read_exact(&mut got).await.unwrap();
            assert_eq!(&got, b"before ");
            peer.write_all(b"ping").await.unwrap();
            peer.into_std().unwrap()
        });
        drop(setup);
        data.block_on(async {
            let mut peer = TcpStream::from_std(peer_std).unwrap();
            sock.unpark().unwrap();
            let mut got = [0u8; 4];
            sock.read_exact(&mut got).await.unwrap();
            assert_eq!(&got, b"ping");
            sock.write_all(b"after").await.unwrap();
            let mut back = [0u8; 5];
            peer.read_exact(&mut back).await.unwrap();
            assert_eq!(&back, b"after");
            // Parked, it refuses I/O instead of touching a reactor it left.
            sock.park().unwrap();
            assert!(sock.read(&mut got).await.is_err());
        });
    }
}
