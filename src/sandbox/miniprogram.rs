//! A simulated WeChat Mini Program for the sandbox: it connects like the seed's demo
//! (`wxs://…/mqtt` through the relay, WeChat's fixed Referer and a MicroMessenger
//! User-Agent), watches the devices' state and status, and toggles the demo device's LED
//! every so often — so the Relay panel shows a Mini Program connection with its appid.

use std::sync::Arc;
use std::time::Duration;

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS, Transport};
use tokio_util::sync::CancellationToken;

/// The sandbox Mini Program's appid (made up; WeChat appids are `wx` + 16 hex digits).
pub const SANDBOX_APPID: &str = "wx00000000sandbox";

pub struct MiniProgramOptions {
    /// `wss://localhost:PORT/mqtt`.
    pub url: String,
    pub port: u16,
    pub tls: Arc<rustls::ClientConfig>,
    /// The device whose LED it toggles.
    pub device: String,
    pub every: Duration,
}

pub fn spawn(handle: &tokio::runtime::Handle, opts: MiniProgramOptions, cancel: CancellationToken) {
    handle.spawn(async move {
        let mut mqtt = MqttOptions::new(
            format!("wx-sandbox-{:06x}", rand::random::<u32>() & 0xff_ffff),
            opts.url.clone(),
            opts.port,
        );
        mqtt.set_transport(Transport::wss_with_config((*opts.tls).clone().into()));
        // mqtt.js defaults: keepalive 60 s, clean session.
        mqtt.set_keep_alive(Duration::from_secs(60));
        mqtt.set_request_modifier(|mut req: http::Request<()>| async move {
            let h = req.headers_mut();
            let pairs = [
                ("Referer", format!("https://servicewechat.com/{SANDBOX_APPID}/0/page-frame.html")),
                (
                    "User-Agent",
                    "Mozilla/5.0 (Linux; Android 13) AppleWebKit/537.36 (KHTML, like Gecko) Mobile Safari/537.36 MicroMessenger/8.0.59 NetType/WIFI Language/zh_CN MiniProgramEnv/android (mpbridge sandbox)".to_owned(),
                ),
            ];
            for (k, v) in pairs {
                if let Ok(v) = http::HeaderValue::from_str(&v) {
                    h.insert(k, v);
                }
            }
            req
        });
        let (client, mut ev) = AsyncClient::new(mqtt, 16);
        let cmd = format!("devices/{}/cmd", opts.device);
        let mut tick = tokio::time::interval(opts.every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.reset();
        let mut attempt = 0u32;
        loop {
            tokio::select! {
                _ = cancel.cancelled() => {
                    client.try_disconnect().ok();
                    let _ = tokio::time::timeout(Duration::from_millis(300), async { while ev.poll().await.is_ok() {} }).await;
                    break;
                }
                _ = tick.tick() => {
                    client.try_publish(&cmd, QoS::AtLeastOnce, false, r#"{"led":"toggle"}"#).ok();
                }
                polled = ev.poll() => match polled {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        attempt = 0;
                        client.try_subscribe("devices/+/state", QoS::AtLeastOnce).ok();
                        client.try_subscribe("devices/+/status", QoS::AtLeastOnce).ok();
                    }
                    Ok(_) => {}
                    Err(e) => {
                        let wait = crate::mqtt::backoff(attempt);
                        attempt = attempt.saturating_add(1);
                        tracing::debug!("sandbox Mini Program: {e}; retry in {wait:?}");
                        tokio::select! {
                            _ = cancel.cancelled() => break,
                            _ = tokio::time::sleep(wait) => {}
                        }
                    }
                }
            }
        }
    });
}
