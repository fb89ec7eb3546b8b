//! The embedded broker's packet input: each input is one connection to a broker running in this
//! process (a valid CONNECT, then the input's bytes), so the codec and the session code our
//! rmqtt patches touch see every mutation. A panic anywhere in the broker, even inside one
//! connection's task, aborts the run; every 512 inputs a fresh client must still get a message.
#![no_main]
use std::net::SocketAddr;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use mpbridge::sandbox::broker::fuzz::{feed, in_process};

static BROKER: OnceLock<SocketAddr> = OnceLock::new();
static RUNS: AtomicU64 = AtomicU64::new(0);

fn broker() -> SocketAddr {
    *BROKER.get_or_init(|| {
        // A Rust program's main ignores SIGPIPE, and so does `mpbridge broker`; libFuzzer's C
        // main does not, so the broker writing to a client the input already closed would
        // kill the run (writev carries no MSG_NOSIGNAL). Be the program we test.
        // SAFETY: setting a signal disposition to SIG_IGN before any thread of ours starts.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_IGN);
        }
        // tokio catches a panic inside a task; the fuzzer must see it.
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            default(info);
            std::process::abort();
        }));
        in_process().expect("the broker starts")
    })
}

fuzz_target!(|data: &[u8]| {
    let addr = broker();
    feed(addr, data, Duration::from_millis(15));
    if RUNS.fetch_add(1, Ordering::Relaxed) % 512 == 511 {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(mpbridge::sandbox::broker::probe::round_trip(addr, Duration::from_secs(3)))
            .expect("the broker still routes messages");
    }
});
