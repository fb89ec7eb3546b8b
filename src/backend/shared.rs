//! What every backend service shares: the runtime, the status the UI reads, the event queue
//! to the UI, the stop token and the folders. And the loop a service runs.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::{BackendStatus, Counters, Event, Waker};
use crate::config::Paths;

/// Pushes events to the UI without ever blocking the network task.
#[derive(Clone)]
pub(super) struct EventSink {
    tx: mpsc::Sender<Event>,
    counters: Arc<Counters>,
    waker: Waker,
    last_wake_ms: Arc<AtomicU64>,
    epoch: Instant,
}

impl EventSink {
    pub fn new(tx: mpsc::Sender<Event>, counters: Arc<Counters>, waker: Waker) -> Self {
        Self {
            tx,
            counters,
            waker,
            last_wake_ms: Arc::default(),
            epoch: Instant::now(),
        }
    }

    pub fn emit(&self, ev: Event) {
        if self.tx.try_send(ev).is_err() {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
        }
        // At most one wake per 8 ms: the UI drains everything queued in one frame anyway.
        let now = self.epoch.elapsed().as_millis() as u64;
        let last = self.last_wake_ms.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= 8 || last == 0 {
            self.last_wake_ms.store(now.max(1), Ordering::Relaxed);
            (self.waker)();
        }
    }

    pub fn waker(&self) -> Waker {
        self.waker.clone()
    }
}

/// Handed to every service when the backend starts.
#[derive(Clone)]
pub(super) struct Shared {
    pub handle: tokio::runtime::Handle,
    pub sink: EventSink,
    pub status: watch::Sender<BackendStatus>,
    /// Cancelled when the backend stops; every task a service spawns ends with it.
    pub cancel: CancellationToken,
    pub paths: Paths,
}

impl Shared {
    /// Changes the status the UI reads and asks it to repaint.
    pub fn set_status(&self, f: impl FnOnce(&mut BackendStatus)) {
        self.status.send_modify(f);
        self.wake();
    }

    pub fn wake(&self) {
        (self.sink.waker)();
    }

    /// A context on the current runtime for a service's unit tests: the events it emits and
    /// the status it sets can be read back.
    #[cfg(test)]
    pub fn for_test(paths: Paths) -> (Self, mpsc::Receiver<Event>, watch::Receiver<BackendStatus>) {
        let (tx, rx) = mpsc::channel(64);
        let (status, status_rx) = watch::channel(BackendStatus::default());
        let shared = Self {
            handle: tokio::runtime::Handle::current(),
            sink: EventSink::new(tx, Arc::default(), Arc::new(|| {})),
            status,
            cancel: CancellationToken::new(),
            paths,
        };
        (shared, rx, status_rx)
    }
}

/// A part of the backend that owns its state and handles its own commands, one at a time.
/// Slow work (disk, network, dialogs) is spawned with the command's reply handle, so a
/// service stays free for the next command; only the relay waits for its own stop.
pub(super) trait Service: Send + Sized + 'static {
    type Cmd: Send + 'static;

    fn handle(&mut self, cmd: Self::Cmd) -> impl Future<Output = ()> + Send;

    /// Called once when the backend stops.
    fn stop(self) -> impl Future<Output = ()> + Send {
        async {}
    }
}

/// Runs a service until the backend stops or its queue closes.
pub(super) async fn serve<S: Service>(
    mut service: S,
    mut commands: mpsc::Receiver<S::Cmd>,
    cancel: CancellationToken,
) {
    loop {
        let cmd = tokio::select! {
            () = cancel.cancelled() => break,
            c = commands.recv() => match c { Some(c) => c, None => break },
        };
        service.handle(cmd).await;
    }
    service.stop().await;
}
