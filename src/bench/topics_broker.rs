//! `bench topics --broker`: a load publisher and a subscriber through a real broker; the
//! subscriber is the console's MQTT worker feeding a bounded queue as the backend does.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, MqttOptions, QoS};
use tokio::sync::mpsc;

pub(super) async fn start(
    url: &str,
    rate: u64,
    topics: usize,
    tx: mpsc::Sender<super::topics::Msg>,
    dropped: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<()> {
    let (host, port) = crate::mqtt::broker_target(url).map_err(|e| anyhow::anyhow!(e))?;
    // The subscriber is the console's own MQTT worker, with a sink like the backend's: every
    // message goes to the bounded queue or is counted as dropped, never waited for.
    let (state, mut connected) = tokio::sync::watch::channel(crate::mqtt::ConnState::Idle);
    let cancel = tokio_util::sync::CancellationToken::new();
    let worker = crate::mqtt::worker::Worker::spawn(
        &tokio::runtime::Handle::current(),
        crate::mqtt::worker::WorkerOptions {
            host: host.clone(),
            port,
            client_id: format!("bench-sub-{:08x}", rand::random::<u32>()),
            keep_alive: Duration::from_secs(30),
            subscriptions: vec![("bench/#".to_owned(), QoS::AtMostOnce)],
            max_packet_bytes: crate::mqtt::MAX_PACKET_BYTES,
            transport: None,
        },
        crate::mqtt::worker::WorkerSinks::new(
            state,
            Box::new(move |m| {
                let m = super::topics::Msg {
                    topic: m.topic,
                    payload: m.payload,
                };
                if tx.try_send(m).is_err() {
                    dropped.fetch_add(1, Ordering::Relaxed);
                }
            }),
        ),
        &cancel,
    );
    tokio::time::timeout(Duration::from_secs(10), async {
        while !connected.borrow_and_update().is_connected() {
            if connected.changed().await.is_err() {
                break;
            }
        }
    })
    .await
    .map_err(|_| anyhow::anyhow!("could not connect to {url} within 10 s"))?;
    // Its SUBSCRIBE follows the CONNACK; give it a moment before the load starts.
    tokio::time::sleep(Duration::from_millis(300)).await;
    {
        let stop = stop.clone();
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            worker.stop();
            cancel.cancel();
        });
    }
    // The load publisher: QoS 0, 64-byte payloads, round robin over the topics.
    let mut o = MqttOptions::new(format!("bench-pub-{}", rand::random::<u32>()), &host, port);
    o.set_keep_alive(Duration::from_secs(30));
    let (publ, mut pev) = AsyncClient::new(o, 10_000);
    let stop3 = stop.clone();
    tokio::spawn(async move {
        while !stop3.load(Ordering::Relaxed) {
            if pev.poll().await.is_err() {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    });
    tokio::spawn(async move {
        let names: Vec<String> = (0..topics.max(1)).map(super::topics::bench_topic).collect();
        let payload = vec![b'x'; 64];
        let start = Instant::now();
        let mut sent = 0u64;
        while !stop.load(Ordering::Relaxed) {
            let due = (start.elapsed().as_secs_f64() * rate as f64) as u64;
            while sent < due {
                let t = &names[(sent as usize) % names.len()];
                if publ
                    .publish(t.clone(), QoS::AtMostOnce, false, payload.clone())
                    .await
                    .is_err()
                {
                    return;
                }
                sent += 1;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    });
    Ok(())
}
