//! `bench topics --broker`: a load publisher and a subscriber through a real broker, the
//! subscriber feeding the same bounded queue the console's backend uses.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio::sync::mpsc;

pub(super) async fn start(
    url: &str,
    rate: u64,
    topics: usize,
    tx: mpsc::Sender<super::topics::Msg>,
    dropped: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<()> {
    let (host, port) = crate::simulate_cli::broker_target(url).map_err(|e| anyhow::anyhow!(e))?;
    // The subscriber, as the console's worker: every publish goes to the queue or is counted.
    let mut o = MqttOptions::new(format!("bench-sub-{}", rand::random::<u32>()), &host, port);
    o.set_keep_alive(Duration::from_secs(30));
    o.set_max_packet_size(1 << 20, 1 << 20);
    let (sub, mut ev) = AsyncClient::new(o, 64);
    sub.subscribe("bench/#", QoS::AtMostOnce).await?;
    let ready = Arc::new(tokio::sync::Notify::new());
    let ready2 = ready.clone();
    let stop2 = stop.clone();
    tokio::spawn(async move {
        while !stop2.load(Ordering::Relaxed) {
            match ev.poll().await {
                Ok(Event::Incoming(Packet::SubAck(_))) => ready2.notify_one(),
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let m = super::topics::Msg {
                        topic: p.topic,
                        payload: p.payload,
                    };
                    if tx.try_send(m).is_err() {
                        dropped.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!("bench subscriber: {e}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(10), ready.notified())
        .await
        .map_err(|_| anyhow::anyhow!("no SUBACK from {url} within 10 s"))?;
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
