//! The embedded broker against a real mosquitto, case by case, MQTT 3.1.1 and 5: the embedded
//! broker must pass every case mosquitto passes. Raw packets (rumqttc's codecs) here; Python's
//! paho-mqtt and mqtt.js drive the same brokers in `conformance_clients.rs`.
//!
//! `cargo test --test conformance -- --nocapture` prints the tables; they are also written to
//! `target/tmp/conformance-*.md`.
#![allow(clippy::unwrap_used)] // tests may unwrap: a panic is the failure report

mod common;
mod conformance {
    pub mod harness;
    pub mod misbehaving;
    pub mod raw;
    pub mod v311;
    pub mod v5;

    use std::time::Duration;

    use raw::{QoS, Raw, connect4};

    /// A password that must never appear in a log.
    pub const PASSWORD: &str = "pw-4f7c1e9a-never-logged";

    pub fn s(secs: f64) -> Duration {
        Duration::from_secs_f64(secs)
    }

    /// A unique name: client ids and topics of concurrent cases never meet.
    pub fn uid(prefix: &str) -> String {
        format!("{prefix}-{:08x}", rand::random::<u32>())
    }

    /// A new client connects, subscribes, publishes QoS 1 to itself and gets the message.
    pub async fn fresh_round_trip(t: &harness::Target) -> Result<(), String> {
        let topic = format!("fresh/{}", uid("t"));
        let mut c = Raw::tcp(t.tcp, false).await;
        let (_, code) = c.connect4(connect4(&uid("fresh"), true, 30)).await?;
        if code != 0 {
            return Err(format!("fresh client: CONNACK {code}"));
        }
        c.subscribe4(1, &[(&topic, QoS::AtLeastOnce)]).await?;
        c.publish4(&topic, QoS::AtLeastOnce, false, 2, "alive")
            .await?;
        let m = c
            .next_publish4(s(3.0))
            .await
            .map_err(|e| format!("fresh client: {e}"))?;
        (m.payload.as_ref() == b"alive")
            .then_some(())
            .ok_or("fresh client: wrong payload".into())
    }
}

use conformance::harness::{Brokers, assert_embedded_covers_reference, run};
use conformance::misbehaving::*;
use conformance::v5::*;
use conformance::v311::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_311_side_by_side() {
    let brokers = Brokers::start().await;
    let rows = run(
        "MQTT 3.1.1",
        cases![
            keepalive_zero_is_accepted,
            keepalive_is_enforced_at_one_and_a_half,
            zero_length_client_id,
            clean_session_starts_afresh,
            persistent_session_queues_while_offline,
            unacknowledged_message_is_redelivered,
            session_take_over,
            persistent_will_client_comes_and_goes,
            will_on_abrupt_close,
            no_will_after_disconnect,
            retained_will,
            retained_set_replace_clear,
            retained_under_a_wildcard,
            qos_both_directions,
            qos2_is_exactly_once,
            order_is_kept,
            wildcards_match,
            dollar_topics_are_apart,
            overlapping_subscriptions: "one copy, at the lower QoS",
            unsubscribe_stops_delivery,
            large_payload,
            fan_out,
            credentials_accepted,
        ],
        &brokers.targets(),
        8,
    )
    .await;
    assert_embedded_covers_reference(&rows);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_5_side_by_side() {
    let brokers = Brokers::start().await;
    let rows = run(
        "MQTT 5",
        cases![
            v5_keepalive_zero_is_accepted,
            v5_assigned_client_id,
            v5_session_expiry,
            v5_persistent_session_queues_while_offline,
            v5_will_delay,
            v5_will_delay_cancelled_by_reconnect,
            v5_disconnect_with_will,
            v5_properties_carried_through,
            v5_message_expiry,
            v5_subscription_identifiers,
            v5_client_topic_alias,
            v5_topic_alias_zero_gets_a_disconnect: "closes without a DISCONNECT",
            v5_maximum_packet_size,
            v5_no_local,
            v5_retain_options,
            v5_receive_maximum,
            v5_take_over_says_why: "closes without a DISCONNECT",
            v5_shared_subscription,
            v5_invalid_filter_refused_with_a_reason,
        ],
        &brokers.targets(),
        8,
    )
    .await;
    assert_embedded_covers_reference(&rows);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn misbehaving_clients_side_by_side() {
    let brokers = Brokers::start().await;
    let rows = run(
        "Misbehaving clients",
        cases![
            garbage_instead_of_connect,
            subscribe_before_connect,
            wrong_protocol_name,
            unknown_protocol_level,
            reserved_connect_flag,
            second_connect,
            remaining_length_over_four_bytes,
            subscribe_with_wrong_flags,
            publish_qos_3,
            publish_to_a_wildcard_topic,
            publish_topic_not_utf8,
            qos1_with_packet_id_zero,
            subscribe_without_filters,
            unsubscribe_without_filters,
            truncated_connect_then_gone,
            v5_unknown_property_gets_a_reason: "closes without a DISCONNECT",
            v5_wildcard_topic_gets_a_reason: "closes without a DISCONNECT",
            v5_protocol_error_publishes_the_will,
            slow_reader_hurts_nobody,
            silent_and_noisy_connections,
        ],
        &brokers.targets(),
        6,
    )
    .await;
    assert_embedded_covers_reference(&rows);
}
