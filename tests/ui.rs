//! The console with kittest: the real backend and the real sandbox, clicked by label.
#![allow(clippy::unwrap_used)] // tests may unwrap: a panic is the failure report

mod common;

use std::time::{Duration, Instant};

use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use mpbridge::app::{AppEnv, ConsoleApp};
use mpbridge::backend::{Backend, BackendOptions};
use mpbridge::config::{ConsoleConfig, Language, Paths, Problem};

fn console(
    rt: &tokio::runtime::Runtime,
    root: &std::path::Path,
    banner: Option<Problem>,
) -> Harness<'static, ConsoleApp> {
    console_with(rt, root, banner, None)
}

fn console_with(
    rt: &tokio::runtime::Runtime,
    root: &std::path::Path,
    banner: Option<Problem>,
    connect: Option<mpbridge::backend::ConnectTo>,
) -> Harness<'static, ConsoleApp> {
    let config = ConsoleConfig {
        language: Some(Language::En),
        ..Default::default()
    };
    console_cfg(rt, root, banner, connect, config)
}

fn console_cfg(
    rt: &tokio::runtime::Runtime,
    root: &std::path::Path,
    banner: Option<Problem>,
    connect: Option<mpbridge::backend::ConnectTo>,
    config: ConsoleConfig,
) -> Harness<'static, ConsoleApp> {
    let paths = Paths::under(root);
    let backend = Backend::spawn(
        rt.handle(),
        BackendOptions {
            paths: paths.clone(),
            sandbox: true,
            connect: connect.clone(),
        },
        std::sync::Arc::new(|| {}),
    );
    let env = AppEnv {
        paths,
        log: None,
        started: Instant::now(),
        secrets_in_file: true,
    };
    let mut app = ConsoleApp::new(backend, env, config, banner);
    if let Some(c) = &connect {
        app = app.with_subscriptions(c.filters());
    }
    let mut h = Harness::builder()
        .with_size([1200.0, 800.0])
        .build_ui_state(
            |ui, app: &mut ConsoleApp| {
                app.pump(ui.ctx());
                app.frame_ui(ui);
            },
            app,
        );
    settle(&mut h);
    h
}

/// Steps frames until the keeper (profiles, settings files) has answered everything asked.
fn settle(h: &mut Harness<'_, ConsoleApp>) {
    step_until(h, 20, "the keeper answered", |h| h.state().keeper_idle());
}

/// A console that has imported `mqttx` (an MQTTX connection export) in the Broker panel.
fn console_with_mqttx_import(
    rt: &tokio::runtime::Runtime,
    root: &std::path::Path,
    mqttx: &str,
) -> Harness<'static, ConsoleApp> {
    let export = root.join("mqttx.json");
    std::fs::write(&export, mqttx).unwrap();
    let mut h = console(rt, root, None);
    h.get_by_label("Broker").click();
    h.run_steps(2);
    h.state_mut().state.panels.broker.import_path = export.display().to_string();
    // The panel grows when the sandbox's addresses arrive; a click aimed at the button's
    // place in the frame before can land beside it, so wait for the sandbox first.
    step_until(&mut h, 30, "the sandbox's broker shown", |h| {
        h.query_by_label_contains("ws://127.0.0.1:").is_some()
    });
    h.get_by_label("Import").click();
    h.run_steps(2);
    settle(&mut h);
    assert!(
        !h.state().state.profiles.profiles.is_empty(),
        "nothing imported: {:?}",
        h.state().notices.toast
    );
    h
}

/// Steps frames until `done` holds, for at most `secs` seconds of wall time.
fn step_until(
    h: &mut Harness<'_, ConsoleApp>,
    secs: u64,
    what: &str,
    done: impl Fn(&Harness<'_, ConsoleApp>) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !done(h) {
        assert!(
            Instant::now() < deadline,
            "timed out after {secs} s: {what}"
        );
        h.step();
        std::thread::sleep(Duration::from_millis(30));
    }
    h.step();
}

#[test]
fn overview_shows_live_sandbox_and_device_obeys_a_click() {
    let rt = common::runtime();
    let dir = tempfile::tempdir().unwrap();
    let mut h = console(&rt, dir.path(), None);

    step_until(&mut h, 15, "sandbox data on the Overview", |h| {
        h.state().live.has_live_data()
    });
    h.get_by_label("esp8266-demo");
    h.get_by_label("● online");
    h.get_by_label("Temperature");
    h.get_by_label_contains("mqtt://127.0.0.1:");
    assert!(
        h.query_by_label_contains("devices/esp8266-demo/telemetry")
            .is_some(),
        "last messages list"
    );
    h.get_by_label("Devices online");

    // Clicking "Toggle LED" sends the LED command; the simulated device answers with its state.
    h.get_by_label("Toggle LED").click();
    step_until(&mut h, 30, "device answer shown", |h| {
        h.state()
            .live
            .roster
            .live
            .get("esp8266-demo")
            .and_then(|d| d.last_state.as_deref())
            .is_some_and(|s| s.contains(r#""led":"on""#))
    });
    h.get_by_label("Last answer");
    // The card sent it as the Devices panel does: the roster's LED template, its
    // acknowledgement awaited and shown.
    step_until(&mut h, 10, "the acknowledgement on the card", |h| {
        h.query_by_label_contains("acknowledged in").is_some()
    });
    // The state answer (only it has `interval_ms`) is drawn: on the card and in the list.
    assert!(
        h.query_all_by_label_contains(r#""interval_ms":1000,"led":"on""#)
            .count()
            >= 1
    );
}

#[test]
fn every_panel_opens_and_language_switches_live() {
    let rt = common::runtime();
    let dir = tempfile::tempdir().unwrap();
    let mut h = console(&rt, dir.path(), None);
    h.run_steps(2);

    for (nav, marker) in [
        ("Log", "Follow"),
        ("Certificates", "Fetch from a server"),
        ("Checks", "Keepalive test (75 s)"),
        ("Devices", "Start simulator"),
        ("Topics", "Topic tree"),
        ("Broker", "New profile"),
        ("Settings", "Theme"),
        ("Overview", "Message rate"),
    ] {
        h.get_by_label(nav).click();
        h.run_steps(2);
        h.get_by_label(marker);
    }

    // Settings → 简体中文: the whole console switches, and the choice is saved.
    h.get_by_label("Settings").click();
    h.run_steps(2);
    h.get_by_label("简体中文").click();
    h.run_steps(2);
    assert_eq!(h.state().state.lang(), Language::ZhCn);
    for zh in ["概览", "日志", "语言", "外观", "数据文件夹"] {
        assert!(h.query_all_by_label(zh).next().is_some(), "missing {zh}");
    }
    assert!(
        h.query_by_label("Theme").is_none(),
        "English left on screen"
    );
    settle(&mut h);
    let saved = std::fs::read_to_string(Paths::under(dir.path()).console_file()).unwrap();
    assert!(saved.contains("language = \"zh-CN\""), "{saved}");

    h.get_by_label("概览").click();
    h.run_steps(2);
    h.get_by_label("消息速率");

    // And back to English.
    h.get_by_label("设置").click();
    h.run_steps(2);
    h.get_by_label("English").click();
    h.run_steps(2);
    h.get_by_label("Theme");
    assert_eq!(h.state().state.lang(), Language::En);
}

#[test]
fn settings_theme_is_applied_and_folder_check_answers() {
    let rt = common::runtime();
    let dir = tempfile::tempdir().unwrap();
    let mut h = console(&rt, dir.path(), None);
    h.get_by_label("Settings").click();
    h.run_steps(2);
    h.get_by_label("Light").click();
    h.run_steps(2);
    assert_eq!(h.ctx.theme(), egui::Theme::Light, "light theme applied");
    h.get_by_label("Dark").click();
    h.run_steps(2);
    assert_eq!(h.ctx.theme(), egui::Theme::Dark, "dark theme applied");

    // The folder check runs on the backend (Requested) and its answer is drawn.
    h.get_by_label("Check folder").click();
    step_until(&mut h, 30, "folder report", |h| {
        h.query_by_label_contains("writable").is_some()
    });
}

#[test]
fn config_problem_banner_is_shown_and_dismissed() {
    let rt = common::runtime();
    let dir = tempfile::tempdir().unwrap();
    let problem = Problem {
        file: dir.path().join("console.toml"),
        line: Some(7),
        message: "unknown field `colour`".to_owned(),
        kept_as: Some(dir.path().join("console.toml.corrupt-20261126-000000")),
    };
    let mut h = console(&rt, dir.path(), Some(problem));
    h.run_steps(2);
    let banner = h.get_by_label_contains("line 7: unknown field `colour`");
    assert!(
        format!("{banner:?}").contains("corrupt-20261126"),
        "{banner:?}"
    );
    h.get_by_label("Dismiss").click();
    h.run_steps(2);
    assert!(h.query_by_label_contains("line 7").is_none());
}

#[test]
fn relay_panel_shows_live_connections_and_applies_config() {
    let rt = common::runtime();
    let dir = tempfile::tempdir().unwrap();
    let mut h = console(&rt, dir.path(), None);
    h.get_by_label("Relay").click();
    // The console itself and the sandbox's simulated Mini Program come in through the relay.
    step_until(
        &mut h,
        20,
        "two relayed connections with the Mini Program's appid",
        |h| {
            let snap = &h.state().live.relay.snapshot;
            snap.live.len() >= 2
                && snap
                    .live
                    .iter()
                    .any(|r| r.mini_program.is_some() && r.connect.is_some())
        },
    );
    h.get_by_label_contains("wx00000000sandbox");
    h.get_by_label_contains("expires in");
    // The address a Mini Program writes: wxs://.
    assert!(h.query_by_label_contains("wxs://localhost:").is_some());

    // Close one connection from the table: it moves to Closed, closed by the operator.
    let before = h.state().live.relay.snapshot.totals.closed;
    h.get_all_by_label("Close").next().unwrap().click();
    step_until(&mut h, 30, "operator close recorded", |h| {
        h.state().live.relay.snapshot.closed.iter().any(|r| {
            r.close
                .as_ref()
                .is_some_and(|c| c.side == mpbridge::relay::stats::Side::Operator)
        }) && h.state().live.relay.snapshot.totals.closed > before
    });

    // Edit the configuration and apply it: the relay reloads in place.
    h.get_by_label("Configuration").click();
    h.run_steps(2);
    h.get_by_label("Apply and reload").click();
    step_until(&mut h, 30, "apply answered", |h| {
        h.query_by_label_contains("Relay: reloaded").is_some()
    });
    let saved =
        std::fs::read_to_string(Paths::under(dir.path()).config_dir.join("relay.toml")).unwrap();
    assert!(
        saved.contains("[[route]]") && saved.contains("path = \"/mqtt\""),
        "{saved}"
    );

    // In Chinese too.
    h.get_by_label("Settings").click();
    h.run_steps(2);
    h.get_by_label("简体中文").click();
    h.run_steps(2);
    h.get_by_label("中继").click();
    h.run_steps(3);
    h.get_by_label_contains("小程序地址");
    // Export the nginx config.
    h.get_by_label("导出 nginx 配置").click();
    step_until(&mut h, 30, "nginx export", |h| {
        h.query_by_label_contains("ssl_protocols TLSv1.2 TLSv1.3;")
            .is_some()
    });
}

#[test]
fn certificates_panel_judges_dropped_files_repairs_and_speaks_chinese() {
    use common::corpus::{Corpus, LeafSpec};
    let rt = common::runtime();
    let dir = tempfile::tempdir().unwrap();
    let c = Corpus::new();
    let leaf = c.leaf(LeafSpec::default());
    let leaf_pem = c.write("a_public.crt", &leaf.pem);
    // The provider's chain file: the intermediate and its (here private) root.
    let chain_pem = c.write("a_chain.crt", &format!("{}{}", c.inter_pem, c.root_pem));
    let key_pem = c.write("a.key", &leaf.key_pem);

    let mut h = console(&rt, dir.path(), None);
    h.get_by_label("Certificates").click();
    // First, what the console's own relay serves (the sandbox's dev certificate).
    step_until(&mut h, 20, "the relay's chain fetched and judged", |h| {
        h.query_by_label_contains("Served by localhost:").is_some()
    });
    h.get_by_label("CERT-TRUST");
    h.get_by_label_contains("Chains only to the CA you supplied");

    // Drop the leaf alone: the chain is incomplete and repair says why, plainly.
    h.input_mut()
        .dropped_files
        .push(std::sync::Arc::new(Dropped(leaf_pem.clone())));
    step_until(&mut h, 30, "the leaf judged", |h| {
        h.query_by_label_contains("Android WeChat does not")
            .is_some()
    });
    h.get_by_label_contains("is missing and cannot be built from what was opened");

    // Add the chain file by path and the key: complete, and the repair can be used.
    h.state_mut().state.panels.certs.path_input = chain_pem.display().to_string();
    h.get_by_label("Add").click();
    step_until(&mut h, 30, "chain completed by the second file", |h| {
        h.query_by_label_contains("fullchain.pem can be built")
            .is_some()
    });
    h.get_by_label_contains("took #2");
    h.get_by_label_contains("left out the root #3");
    h.state_mut().state.panels.certs.path_input = key_pem.display().to_string();
    h.get_by_label("Add").click();
    step_until(&mut h, 30, "the key matched", |h| {
        h.query_by_label_contains("belongs to the leaf").is_some()
    });
    h.get_by_label("Use for relay").click();
    step_until(&mut h, 15, "the relay took the repaired certificate", |h| {
        h.query_by_label_contains("Relay: reloaded").is_some()
    });
    let saved =
        std::fs::read_to_string(Paths::under(dir.path()).config_dir.join("relay.toml")).unwrap();
    assert!(saved.contains("fullchain.pem"), "{saved}");
    let written = Paths::under(dir.path())
        .data_dir
        .join("certs")
        .join("a.example.com");
    let fullchain = std::fs::read_to_string(written.join("fullchain.pem")).unwrap();
    assert_eq!(fullchain.matches("BEGIN CERTIFICATE").count(), 2);
    assert!(written.join("privkey.pem").is_file());

    // The same verdicts in Chinese.
    h.get_by_label("Settings").click();
    h.run_steps(2);
    h.get_by_label("简体中文").click();
    h.run_steps(2);
    h.get_by_label("证书").click();
    h.run_steps(3);
    h.get_by_label_contains("无法验证到公共根证书");
    h.get_by_label("检查结果");
    assert!(
        h.query_by_label("Verdicts").is_none(),
        "English left on screen"
    );
}

/// A file dropped on the window, as the native integration hands it over.
#[derive(Debug)]
struct Dropped(std::path::PathBuf);

impl egui::DroppedFile for Dropped {
    fn path(&self) -> &std::path::Path {
        &self.0
    }

    fn bytes(&self) -> Result<Vec<u8>, String> {
        std::fs::read(&self.0).map_err(|e| e.to_string())
    }
}

#[test]
fn checks_panel_runs_against_the_sandbox_and_speaks_chinese() {
    let rt = common::runtime();
    let dir = tempfile::tempdir().unwrap();
    let mut h = console(&rt, dir.path(), None);
    h.get_by_label("Checks").click();
    // The sandbox relay is checked as soon as its address is known.
    step_until(&mut h, 30, "the first run finished", |h| {
        h.query_by_label("Copy Markdown").is_some()
    });
    h.get_by_label("MP-MQTT-CONNECT");
    h.get_by_label("MP-CERT-TRUST");
    h.get_by_label_contains("wss://localhost");
    assert!(
        h.state()
            .state
            .panels
            .checks
            .url
            .starts_with("wxs://localhost:")
    );
    // Failures open by themselves; a passing row opens on a click.
    h.get_by_label_contains("localhost exists only on this computer");
    assert!(h.query_by_label_contains("(DNS).").is_none());
    h.get_by_label("▸ The name resolves").click();
    h.run_steps(2);
    h.get_by_label_contains("localhost → 127.0.0.1");

    // A second run from the button; the history lists both.
    h.get_by_label("Run checks").click();
    h.run_steps(1);
    step_until(&mut h, 30, "the second run finished and listed", |h| {
        h.query_by_label("Copy Markdown").is_some()
            && h.state().state.panels.checks.history_len() == 2
    });
    let history = Paths::under(dir.path())
        .data_dir
        .join("checks/history.jsonl");
    let saved = std::fs::read_to_string(&history).unwrap();
    assert_eq!(saved.lines().count(), 2, "{saved}");

    // Save the report as Markdown.
    h.get_by_label("Save Markdown").click();
    step_until(&mut h, 30, "the report written", |h| {
        h.query_by_label_contains("Written:").is_some()
    });

    // In Chinese.
    h.get_by_label("Settings").click();
    h.run_steps(2);
    h.get_by_label("简体中文").click();
    h.run_steps(2);
    h.get_by_label("合规检查").click();
    h.run_steps(3);
    h.get_by_label("开始检查");
    h.get_by_label_contains("localhost 只存在于本机");
    h.get_by_label_contains("沙盒的开发 CA");
    assert!(
        h.query_by_label("Run checks").is_none(),
        "English left on screen"
    );
}

#[test]
fn devices_panel_commands_flow_simulator_and_discovery() {
    let rt = common::runtime();
    let dir = tempfile::tempdir().unwrap();
    let mut h = console(&rt, dir.path(), None);
    h.get_by_label("Devices").click();
    step_until(&mut h, 20, "the demo device online in the roster", |h| {
        h.state().live.roster.online_count() == 1
    });
    h.get_by_label("1 of 1 online");
    assert!(
        h.query_all_by_label("esp8266-demo").count() >= 2,
        "roster row and detail"
    );

    // LED toggle: sent through the relay, acknowledged by the device on its state topic.
    h.get_by_label("Send").click();
    step_until(&mut h, 30, "the command acknowledged", |h| {
        h.query_by_label_contains("acknowledged in").is_some()
    });

    // The Mini Program demo flow, on its own connection through the relay.
    h.get_by_label("Run the flow").click();
    step_until(&mut h, 40, "six steps passed", |h| {
        h.query_all_by_label("✓").count() == 6
    });
    assert!(h.query_by_label("✗").is_none());

    // Three simulated devices: discovery proposes them, one click adds them all.
    h.state_mut().state.panels.devices.sim_count = 3;
    h.get_by_label("Start simulator").click();
    step_until(&mut h, 20, "three proposals", |h| {
        h.state().live.roster.proposals.len() == 3
    });
    h.get_by_label("Discovered 3:");
    h.get_by_label("Add all").click();
    step_until(&mut h, 20, "four devices online", |h| {
        h.state().live.roster.online_count() == 4
    });
    settle(&mut h);
    let saved =
        std::fs::read_to_string(Paths::under(dir.path()).config_dir.join("devices.toml")).unwrap();
    assert!(saved.contains("id = \"sim-0003\""), "{saved}");
    // A device added by hand, then edited.
    h.state_mut().state.panels.devices.new_id = "bench-01".into();
    h.get_by_label("Add device").click();
    h.run_steps(3);
    h.get_by_label("Edit").click();
    h.run_steps(2);
    h.get_by_label("Name").click();
    h.run_steps(1);
    h.get_by_label("Name").type_text("Bench board");
    h.run_steps(2);
    h.get_by_label("Save").click();
    h.run_steps(2);
    settle(&mut h);
    let saved =
        std::fs::read_to_string(Paths::under(dir.path()).config_dir.join("devices.toml")).unwrap();
    assert!(
        saved.contains("id = \"bench-01\"") && saved.contains("name = \"Bench board\""),
        "{saved}"
    );
    h.get_by_label("Stop simulator").click();
    step_until(&mut h, 20, "the simulated devices go offline", |h| {
        h.state().live.roster.online_count() == 1
    });

    // In Chinese.
    h.get_by_label("Settings").click();
    h.run_steps(2);
    h.get_by_label("简体中文").click();
    h.run_steps(2);
    h.get_by_label("设备").click();
    h.run_steps(3);
    h.get_by_label("运行流程");
    h.get_by_label("1 / 5 在线");
    assert!(
        h.query_by_label("Run the flow").is_none(),
        "English left on screen"
    );
}

#[test]
fn topics_panel_subscribe_publish_views_clear_retained_and_export() {
    let rt = common::runtime();
    let dir = tempfile::tempdir().unwrap();
    let mut h = console(&rt, dir.path(), None);
    h.get_by_label("Topics").click_accesskit();
    step_until(&mut h, 20, "telemetry in the list", |h| {
        h.query_by_label_contains("devices/esp8266-demo/telemetry")
            .is_some()
    });

    // A subscription of our own.
    h.state_mut().state.panels.topics.new_filter = "lab/#".into();
    h.get_by_label("Subscribe").click_accesskit();
    h.run_steps(2);
    h.get_by_label_contains("lab/# · QoS 0");

    // Publish two retained JSON messages from the form.
    h.get_by_label("Publish and clear retained")
        .click_accesskit();
    h.run_steps(2);
    for (topic, payload) in [("lab/a/one", r#"{"x":1}"#), ("lab/a/two", r#"{"x":2}"#)] {
        {
            let p = &mut h.state_mut().state.panels.topics.publish;
            p.topic = topic.into();
            p.payload = payload.into();
            p.kind = mpbridge::ui::topics::PayloadKind::Json;
            p.retain = true;
        }
        h.run_steps(1);
        h.get_by_label("Publish").click_accesskit();
        h.run_steps(1);
    }
    // Save the form as a named payload: it lands in payloads.json.
    h.state_mut().state.panels.topics.publish.save_name = "second".into();
    h.get_by_label("Save payload").click();
    h.run_steps(2);
    settle(&mut h);
    let saved =
        std::fs::read_to_string(Paths::under(dir.path()).config_dir.join("payloads.json")).unwrap();
    assert!(
        saved.contains("\"name\": \"second\"") && saved.contains("lab/a/two"),
        "{saved}"
    );
    assert_eq!(h.state().state.saved_payloads.items.len(), 1);
    step_until(&mut h, 10, "both back from the broker", |h| {
        h.state().live.topics.tree.find("lab/a/two").is_some()
            && h.state().live.topics.tree.find("lab/a/one").is_some()
    });
    // The embedded broker delivers a copy per matching subscription (`#` and `lab/#`): at
    // least two.
    assert!(h.state().live.topics.subs[1].count >= 2);

    // Open one in hex (the publish section closed: it has its own "hex").
    h.get_by_label("Publish and clear retained")
        .click_accesskit();
    h.run_steps(2);
    h.query_all_by_label_contains("lab/a/one  q0")
        .next()
        .unwrap()
        .click_accesskit();
    h.run_steps(2);
    h.get_by_label("hex").click_accesskit();
    h.run_steps(2);
    h.get_by_label_contains("00000000  7b 22 78 22 3a 31 7d");
    h.get_by_label("Publish and clear retained")
        .click_accesskit();
    h.run_steps(2);

    // Clear the retained subtree: preview, confirm, count.
    h.state_mut().state.panels.topics.clear.prefix = "lab".into();
    h.get_by_label("Preview").click_accesskit();
    step_until(&mut h, 10, "the broker's retained messages counted", |h| {
        h.query_by_label("2 retained message(s) found").is_some()
    });
    h.get_by_label("Clear 2").click_accesskit();
    step_until(&mut h, 10, "cleared", |h| {
        h.query_by_label(
            "Cleared 2 retained message(s), each acknowledged by the broker; it now holds 0 under this prefix.",
        )
        .is_some()
    });
    // The broker really forgot them: a new subscriber gets nothing retained.
    let broker = match &h.state().live.status.sandbox {
        mpbridge::backend::SandboxState::Running(info) => info.broker_addr,
        other => panic!("{other:?}"),
    };
    let retained = rt.block_on(async move {
        let mut o =
            rumqttc::MqttOptions::new("retained-probe", broker.ip().to_string(), broker.port());
        o.set_keep_alive(std::time::Duration::from_secs(10));
        let (c, mut ev) = rumqttc::AsyncClient::new(o, 10);
        c.subscribe("lab/#", rumqttc::QoS::AtMostOnce)
            .await
            .unwrap();
        let mut n = 0;
        let _ = tokio::time::timeout(std::time::Duration::from_millis(1500), async {
            loop {
                if let Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p))) = ev.poll().await
                    && p.retain
                    && !p.payload.is_empty()
                {
                    n += 1;
                }
            }
        })
        .await;
        n
    });
    assert_eq!(retained, 0, "retained messages left on the broker");

    // A 1 MB payload: shown cut to the view limit with its size, exported whole.
    rt.block_on(async move {
        let mut o = rumqttc::MqttOptions::new("big-sender", broker.ip().to_string(), broker.port());
        o.set_max_packet_size(2 << 20, 2 << 20);
        let (c, mut ev) = rumqttc::AsyncClient::new(o, 10);
        c.publish(
            "lab/big",
            rumqttc::QoS::AtLeastOnce,
            false,
            vec![b'x'; 1_000_000],
        )
        .await
        .unwrap();
        let _ = tokio::time::timeout(std::time::Duration::from_secs(3), async {
            loop {
                if let Ok(rumqttc::Event::Incoming(rumqttc::Packet::PubAck(_))) = ev.poll().await {
                    break;
                }
            }
        })
        .await;
    });
    step_until(&mut h, 10, "the big message listed", |h| {
        h.state().live.topics.tree.find("lab/big").is_some()
    });
    h.query_all_by_label_contains("lab/big  q")
        .next()
        .unwrap()
        .click_accesskit();
    h.run_steps(2);
    h.get_by_label_contains("Showing the first 64.0 KiB of 976.6 KiB");
    h.state_mut().state.panels.topics.search_topic = "lab/big".into();
    h.run_steps(2);
    h.get_by_label("Export JSONL").click_accesskit();
    step_until(&mut h, 10, "exported", |h| {
        h.query_by_label_contains("Written:").is_some()
    });
    let exports = Paths::under(dir.path()).data_dir.join("exports");
    let file = std::fs::read_dir(&exports)
        .unwrap()
        .flatten()
        .find(|e| e.file_name().to_string_lossy().ends_with(".jsonl"))
        .unwrap()
        .path();
    let line = std::fs::read_to_string(file).unwrap();
    let v: serde_json::Value = serde_json::from_str(line.lines().next().unwrap()).unwrap();
    assert_eq!(v["topic"], "lab/big");
    assert_eq!(v["size"], 1_000_000);
    assert_eq!(v["payload"].as_str().unwrap().len(), 1_000_000);
    assert_eq!(v["truncated"], false);

    // In Chinese.
    h.get_by_label("Settings").click();
    h.run_steps(2);
    h.get_by_label("简体中文").click();
    h.run_steps(2);
    h.get_by_label("主题").click();
    h.run_steps(3);
    h.get_by_label("主题树");
    assert!(
        h.query_by_label("Topic tree").is_none(),
        "English left on screen"
    );
}

#[test]
fn connect_points_the_console_at_another_broker_over_tcp_and_websocket() {
    let rt = common::runtime();
    let m = common::Mosquitto::start();
    for url in [
        format!("mqtt://127.0.0.1:{}", m.tcp_port),
        format!("ws://127.0.0.1:{}/mqtt", m.ws_port),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut h = console_with(
            &rt,
            dir.path(),
            None,
            Some(mpbridge::backend::ConnectTo {
                url: url.clone(),
                subscribe: vec!["field/#".into()],
            }),
        );
        step_until(&mut h, 20, "connected to mosquitto", |h| {
            matches!(
                h.state().live.status.broker,
                mpbridge::mqtt::ConnState::Connected { .. }
            )
        });
        // Something published on mosquitto by another client reaches the Topics panel.
        let port = m.tcp_port;
        publish_once(&rt, port, "field-pub", "field/pump/1", "on");
        step_until(&mut h, 10, "the message in the Topics store", |h| {
            h.state().live.topics.tree.find("field/pump/1").is_some()
        });
        let t = &h.state().live.topics;
        assert_eq!(t.subs.len(), 1);
        assert_eq!(t.subs[0].filter, "field/#");
        assert!(
            t.tree.find("devices").is_none(),
            "{url}: the sandbox is not what the console watches"
        );
    }
}

/// A subscription mosquitto's access rules deny is marked refused on its chip in the Topics
/// panel, with the broker's answer in words on hover; the allowed one carries messages. Both
/// ways of connecting: `--connect`, and a profile connected from the Broker panel (whose
/// subscription list is set only once the connection is accepted, after the SUBACKs may
/// already have come back).
#[test]
fn a_refused_subscription_is_marked_on_its_chip() {
    let rt = common::runtime();
    let plugin_dir = tempfile::tempdir().unwrap();
    let m =
        common::Mosquitto::start_with(&common::only_subscribe_under(plugin_dir.path(), "open/#"));
    let refused_shown = |h: &mut Harness<'static, ConsoleApp>| {
        step_until(h, 20, "the refusal on the secret/# subscription", |h| {
            h.state().live.topics.refused.contains_key("secret/#")
        });
        let topics = &h.state().live.topics;
        assert!(!topics.refused.contains_key("open/#"));
        assert!(
            topics.refused["secret/#"].en.contains("SUBACK 0x80"),
            "{:?}",
            topics.refused
        );
        assert!(topics.subs.iter().any(|s| s.filter == "secret/#"));
        h.get_by_label("Topics").click_accesskit();
        h.run_steps(2);
        h.get_by_label("✗ refused");
    };

    let dir = tempfile::tempdir().unwrap();
    let mut h = console_with(
        &rt,
        dir.path(),
        None,
        Some(mpbridge::backend::ConnectTo {
            url: format!("mqtt://127.0.0.1:{}", m.tcp_port),
            subscribe: vec!["secret/#".into(), "open/#".into()],
        }),
    );
    refused_shown(&mut h);
    publish_once(&rt, m.tcp_port, "open-pub", "open/door", "1");
    step_until(&mut h, 10, "the allowed subscription's message", |h| {
        h.state().live.topics.tree.find("open/door").is_some()
    });

    // A profile from the Broker panel, refused filter first.
    let dir = tempfile::tempdir().unwrap();
    let mut h = console_with_mqttx_import(
        &rt,
        dir.path(),
        &format!(
            r#"[{{"name":"Locked mosquitto","host":"127.0.0.1","port":{},"protocol":"mqtt","clientId":"","subscriptions":[{{"topic":"secret/#","qos":0}},{{"topic":"open/#","qos":0}}]}}]"#,
            m.tcp_port
        ),
    );
    h.get_by_label_contains("Locked mosquitto").click();
    h.run_steps(2);
    h.get_by_label("Connect").click();
    refused_shown(&mut h);
}

#[test]
fn broker_panel_imports_a_profile_connects_and_returns_to_the_sandbox() {
    let rt = common::runtime();
    let m = common::Mosquitto::start();
    let dir = tempfile::tempdir().unwrap();
    // An MQTTX export pointing at this mosquitto.
    let mut h = console_with_mqttx_import(
        &rt,
        dir.path(),
        &format!(
            r#"[{{"name":"Test mosquitto","host":"127.0.0.1","port":{},"protocol":"mqtt","clientId":"","subscriptions":[{{"topic":"plant/#","qos":1}}]}}]"#,
            m.tcp_port
        ),
    );
    assert_eq!(h.state().state.profiles.profiles.len(), 1);
    let saved =
        std::fs::read_to_string(Paths::under(dir.path()).config_dir.join("profiles.json")).unwrap();
    assert!(saved.contains("Test mosquitto"), "{saved}");
    h.get_by_label_contains("Test mosquitto").click();
    h.run_steps(2);
    h.get_by_label("Connect").click();
    step_until(&mut h, 20, "connected to mosquitto", |h| {
        matches!(
            h.state().live.status.broker,
            mpbridge::mqtt::ConnState::Connected { .. }
        ) && h
            .query_by_label_contains("connected as mpbridge-")
            .is_some()
    });
    let port = m.tcp_port;
    publish_once(&rt, port, "plant-pub", "plant/valve", "open");
    step_until(&mut h, 10, "the plant message in Topics", |h| {
        h.state().live.topics.tree.find("plant/valve").is_some()
    });
    let topics = &h.state().live.topics;
    assert_eq!(
        (topics.subs[0].filter.as_str(), topics.subs[0].qos),
        ("plant/#", 1)
    );
    // Subscribed at QoS 1 as the MQTTX export asked: a QoS 1 publish arrives as QoS 1.
    let stored = topics
        .store
        .iter()
        .find(|m| &*m.topic == "plant/valve")
        .unwrap();
    assert_eq!(stored.qos, 1);

    // Back to the sandbox: its telemetry flows again.
    h.get_by_label("Back to the sandbox").click();
    let before = h.state().live.roster.live["esp8266-demo"].messages;
    step_until(&mut h, 20, "sandbox telemetry again", |h| {
        h.state().live.roster.live["esp8266-demo"].messages > before + 1
    });
}

#[test]
fn qos1_and_qos2_published_while_the_broker_is_down_arrive_after_it_returns() {
    let rt = common::runtime();
    let pdir = tempfile::tempdir().unwrap();
    let mut m = common::Mosquitto::start_with(&format!(
        // `user root`: started as root, mosquitto would drop to its own user and could not
        // write the test's folder (ignored when not root).
        "user root\npersistence true\npersistence_location {}/\nautosave_interval 1\nautosave_on_changes true",
        pdir.path().display()
    ));
    let port = m.tcp_port;
    // A device with a persistent session subscribed to queue/#, then offline.
    let sub_opts = move || {
        let mut o = rumqttc::MqttOptions::new("queue-reader", "127.0.0.1", port);
        o.set_clean_session(false);
        o.set_keep_alive(std::time::Duration::from_secs(30));
        o
    };
    rt.block_on(async {
        let (c, mut ev) = rumqttc::AsyncClient::new(sub_opts(), 10);
        c.subscribe("queue/#", rumqttc::QoS::ExactlyOnce)
            .await
            .unwrap();
        common::within(10, "SUBACK", async {
            loop {
                if let Ok(rumqttc::Event::Incoming(rumqttc::Packet::SubAck(_))) = ev.poll().await {
                    break;
                }
            }
        })
        .await;
        c.disconnect().await.ok();
        let _ = tokio::time::timeout(std::time::Duration::from_millis(300), ev.poll()).await;
    });
    // Let mosquitto write the session down before it is killed.
    std::thread::sleep(std::time::Duration::from_millis(1500));

    let dir = tempfile::tempdir().unwrap();
    let mut h = console_with(
        &rt,
        dir.path(),
        None,
        Some(mpbridge::backend::ConnectTo {
            url: format!("mqtt://127.0.0.1:{port}"),
            subscribe: vec!["queue/#".into()],
        }),
    );
    step_until(&mut h, 20, "console connected", |h| {
        matches!(
            h.state().live.status.broker,
            mpbridge::mqtt::ConnState::Connected { .. }
        )
    });
    // The broker vanishes mid-stream: the console notices and keeps retrying, no hang.
    m.stop();
    step_until(&mut h, 20, "console sees the broker gone", |h| {
        !matches!(
            h.state().live.status.broker,
            mpbridge::mqtt::ConnState::Connected { .. }
        )
    });
    for (payload, qos) in [
        ("sent while the broker was down", rumqttc::QoS::AtLeastOnce),
        ("exactly once while down", rumqttc::QoS::ExactlyOnce),
    ] {
        h.state()
            .backend()
            .send(mpbridge::backend::ConnCmd::Publish {
                topic: "queue/job".into(),
                payload: payload.as_bytes().to_vec(),
                qos,
                retain: false,
                props: None,
            })
            .ok()
            .unwrap();
    }
    m.restart();
    // (The console's own copy may not come back: after a reconnect the queued PUBLISH can
    // reach the broker before the console's SUBSCRIBE does. The device is the proof.)
    step_until(&mut h, 40, "console reconnected", |h| {
        matches!(
            h.state().live.status.broker,
            mpbridge::mqtt::ConnState::Connected { .. }
        )
    });
    // The offline device gets both, from its persistent session, each with its QoS; the
    // QoS 2 one exactly once (a second more is given for a duplicate to show up).
    let got = rt.block_on(async move {
        let (_c, mut ev) = rumqttc::AsyncClient::new(sub_opts(), 10);
        let mut got: Vec<(String, u8)> = Vec::new();
        common::within(15, "both queued messages at the device", async {
            while got.len() < 2 {
                if let Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p))) = ev.poll().await {
                    got.push((
                        String::from_utf8_lossy(&p.payload).into_owned(),
                        p.qos as u8,
                    ));
                }
            }
        })
        .await;
        let _ = tokio::time::timeout(std::time::Duration::from_secs(1), async {
            loop {
                if let Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p))) = ev.poll().await {
                    got.push((
                        String::from_utf8_lossy(&p.payload).into_owned(),
                        p.qos as u8,
                    ));
                }
            }
        })
        .await;
        got
    });
    assert!(
        got.contains(&("sent while the broker was down".into(), 1)),
        "{got:?}"
    );
    assert_eq!(
        got.iter()
            .filter(|(p, q)| p == "exactly once while down" && *q == 2)
            .count(),
        1,
        "{got:?}"
    );
    // And the stream flows again: a new message reaches the console's Topics store.
    publish_once(&rt, port, "queue-writer", "queue/after", "back");
    step_until(&mut h, 20, "new messages after the outage", |h| {
        h.state().live.topics.tree.find("queue/after").is_some()
    });
}

/// Publishes one QoS 1 message to the broker on 127.0.0.1:`port` and waits for its PUBACK.
fn publish_once(rt: &tokio::runtime::Runtime, port: u16, id: &str, topic: &str, payload: &str) {
    publish_bytes(rt, port, id, topic, payload.as_bytes().to_vec());
}

fn publish_bytes(rt: &tokio::runtime::Runtime, port: u16, id: &str, topic: &str, payload: Vec<u8>) {
    let (id, topic) = (id.to_owned(), topic.to_owned());
    rt.block_on(async move {
        let mut o = rumqttc::MqttOptions::new(id, "127.0.0.1", port);
        o.set_max_packet_size(4 << 20, 4 << 20);
        let (c, mut ev) = rumqttc::AsyncClient::new(o, 10);
        c.publish(topic, rumqttc::QoS::AtLeastOnce, false, payload)
            .await
            .unwrap();
        common::within(5, "PUBACK", async {
            loop {
                if let Ok(rumqttc::Event::Incoming(rumqttc::Packet::PubAck(_))) = ev.poll().await {
                    break;
                }
            }
        })
        .await;
    });
}

#[test]
fn two_connections_at_once_each_with_its_own_topics_and_mqtt5_properties() {
    let rt = common::runtime();
    let m = common::Mosquitto::start();
    let dir = tempfile::tempdir().unwrap();
    // A saved MQTT 5 profile for this mosquitto, beside the sandbox the console opens with.
    let config_dir = Paths::under(dir.path()).config_dir;
    std::fs::create_dir_all(&config_dir).unwrap();
    std::fs::write(
        config_dir.join("profiles.json"),
        format!(
            r#"{{"profiles":[{{"name":"Lab v5","url":"mqtt://127.0.0.1:{}","version":"5","subscriptions":["lab/#"]}}]}}"#,
            m.tcp_port
        ),
    )
    .unwrap();
    let mut h = console(&rt, dir.path(), None);
    step_until(&mut h, 20, "the sandbox connection", |h| {
        h.state().live.status.broker.is_connected()
    });
    let sandbox_id = h.state().live.status.active.unwrap();
    h.get_by_label("Broker").click();
    h.run_steps(2);
    h.get_by_label_contains("Lab v5").click();
    h.run_steps(2);
    h.get_by_label("Connect").click();
    step_until(
        &mut h,
        20,
        "the MQTT 5 connection active beside the sandbox",
        |h| {
            let s = &h.state().live.status;
            s.connections.len() == 2
                && s.active != Some(sandbox_id)
                && s.broker.is_connected()
                && s.broker_protocol == 5
                && s.connections.iter().all(|c| c.state.is_connected())
        },
    );
    let lab_id = h.state().live.status.active.unwrap();
    assert_eq!(h.state().live.topics.subs[0].filter, "lab/#");

    // Publish with MQTT 5 properties from the Topics form; they come back and are shown.
    h.get_by_label("Topics").click();
    h.run_steps(2);
    h.get_by_label("Publish and clear retained")
        .click_accesskit();
    h.run_steps(2);
    h.get_by_label("MQTT 5 properties").click_accesskit();
    h.run_steps(2);
    {
        let p = &mut h.state_mut().state.panels.topics.publish;
        p.topic = "lab/v5".into();
        p.payload = r#"{"on":true}"#.into();
        p.qos = 1;
        p.props5.content_type = "application/json".into();
        p.props5.response_topic = "lab/replies".into();
        p.props5.user = "source=kittest\nsite=bench 3".into();
    }
    h.run_steps(1);
    h.get_by_label("Publish").click_accesskit();
    step_until(&mut h, 10, "the message back with its properties", |h| {
        h.state()
            .live
            .topics
            .store
            .iter()
            .any(|m| &*m.topic == "lab/v5" && m.props.is_some())
    });
    let seq = {
        let live = &h.state().live;
        let msg = live
            .topics
            .store
            .iter()
            .find(|m| &*m.topic == "lab/v5")
            .unwrap();
        let p = msg.props.as_deref().unwrap();
        assert_eq!(p.content_type.as_deref(), Some("application/json"));
        assert_eq!(p.response_topic.as_deref(), Some("lab/replies"));
        assert_eq!(
            p.user,
            vec![
                ("source".to_owned(), "kittest".to_owned()),
                ("site".to_owned(), "bench 3".to_owned())
            ]
        );
        assert!(
            live.topics.tree.find("devices").is_none(),
            "the sandbox's messages stay in the sandbox's store"
        );
        msg.seq
    };
    h.state_mut().state.panels.topics.selected = Some(seq);
    h.run_steps(2);
    h.get_by_label("User property site");
    h.get_by_label("bench 3");
    h.get_by_label("lab/replies");

    // Switch to the sandbox from the Topics panel: its own store, the lab one keeps filling.
    h.get_by_label("sandbox").click();
    step_until(&mut h, 10, "the sandbox shown again", |h| {
        h.state().live.active_conn == Some(sandbox_id)
            && h.state().live.topics.tree.find("devices").is_some()
    });
    assert!(h.state().live.topics.tree.find("lab/v5").is_none());
    publish_once(&rt, m.tcp_port, "lab-bg", "lab/background", "still here");
    step_until(
        &mut h,
        10,
        "the background connection keeps receiving",
        |h| {
            h.state()
                .live
                .background
                .get(&lab_id)
                .is_some_and(|t| t.tree.find("lab/background").is_some())
        },
    );

    // Close the lab connection from the Broker panel: one connection left, its store gone.
    h.get_by_label("Broker").click();
    h.run_steps(2);
    h.get_all_by_label("Close").nth(1).unwrap().click();
    step_until(&mut h, 10, "one connection left", |h| {
        h.state().live.status.connections.len() == 1 && h.state().live.background.is_empty()
    });
    assert_eq!(h.state().live.status.active, Some(sandbox_id));
}

#[test]
fn topics_panel_on_mosquitto_tree_dollar_topics_pause_regex_csv_encodings_history_and_cut_payloads()
{
    let rt = common::runtime();
    let m = common::Mosquitto::start();
    let port = m.tcp_port;
    let dir = tempfile::tempdir().unwrap();
    let mut config = ConsoleConfig {
        language: Some(Language::En),
        ..Default::default()
    };
    config.store.keep_payload_kb = 256;
    let mut h = console_cfg(
        &rt,
        dir.path(),
        None,
        Some(mpbridge::backend::ConnectTo {
            url: format!("mqtt://127.0.0.1:{port}"),
            subscribe: vec!["#".into()],
        }),
        config,
    );
    step_until(&mut h, 20, "connected to mosquitto", |h| {
        h.state().live.status.broker.is_connected()
    });
    h.get_by_label("Topics").click_accesskit();
    h.run_steps(2);
    publish_once(&rt, port, "t-1", "plant/a/x", "1");
    publish_once(&rt, port, "t-2", "plant/b/y", r#"{"t":2}"#);
    publish_once(&rt, port, "t-3", "zoo/z", "hello");
    step_until(&mut h, 10, "three topics in the tree", |h| {
        let t = &h.state().live.topics.tree;
        ["plant/a/x", "plant/b/y", "zoo/z"]
            .iter()
            .all(|x| t.find(x).is_some())
    });
    // `#` never matches `$`-topics: mosquitto sends none, and when `$SYS/#` is subscribed
    // too, its messages count for it alone.
    assert!(h.state().live.topics.tree.find("$SYS").is_none());
    let hash_count = h.state().live.topics.subs[0].count;
    h.state_mut().state.panels.topics.new_filter = "$SYS/#".into();
    h.get_by_label("Subscribe").click_accesskit();
    step_until(&mut h, 10, "$SYS topics arrive", |h| {
        h.state().live.topics.tree.find("$SYS").is_some()
    });
    let subs = &h.state().live.topics.subs;
    assert_eq!(subs[0].count, hash_count, "`#` counted a $-topic");
    assert!(subs[1].count > 0);
    h.query_all_by_label_contains("$SYS/# · QoS 0")
        .next()
        .expect("the $SYS/# chip");
    // Unsubscribe it again: the tree keeps what arrived, the stream stops.
    let chips: Vec<_> = h.query_all_by_label("unsubscribe").collect();
    chips[1].click_accesskit();
    h.run_steps(2);
    assert_eq!(h.state().live.topics.subs.len(), 1);

    // The tree: open "plant" by its arrow, see its children, close it again.
    let top: Vec<String> = {
        let t = &h.state().live.topics.tree;
        t.rows(&Default::default(), "")
            .into_iter()
            .map(|i| t.topic(i))
            .collect()
    };
    let at = top.iter().position(|x| x == "plant").unwrap();
    assert!(h.query_by_label("b").is_none());
    h.query_all_by_label("▸").nth(at).unwrap().click_accesskit();
    h.run_steps(2);
    h.get_by_label("a");
    h.get_by_label("b");
    h.get_by_label("▾").click_accesskit();
    h.run_steps(2);
    assert!(h.query_by_label("b").is_none(), "closed again");
    // A click on a topic filters the list to it.
    h.get_by_label("zoo").click_accesskit();
    h.run_steps(2);
    assert_eq!(h.state().state.panels.topics.search_topic, "zoo/#");
    h.get_by_label_contains("zoo/z  q0");
    assert!(h.query_by_label_contains("plant/a/x  q0").is_none());

    // A regex over the payloads, then CSV of what is shown.
    {
        let p = &mut h.state_mut().state.panels.topics;
        p.search_topic.clear();
        p.search_text = r#"^\{"t":\d\}$"#.into();
        p.regex = true;
    }
    h.run_steps(3);
    h.get_by_label_contains("plant/b/y  q0");
    assert!(h.query_by_label_contains("zoo/z  q0").is_none());
    h.get_by_label("Export CSV").click_accesskit();
    step_until(&mut h, 10, "CSV written", |h| {
        h.query_by_label_contains("Written:").is_some()
    });
    let exports = Paths::under(dir.path()).data_dir.join("exports");
    let csv = std::fs::read_dir(&exports)
        .unwrap()
        .flatten()
        .find(|e| e.file_name().to_string_lossy().ends_with(".csv"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 2, "{csv}");
    assert!(lines[0].starts_with("time,topic,qos,retain,size,encoding,payload"));
    assert!(
        lines[1].contains(r#",plant/b/y,0,false,7,utf8,"{""t"":2}",false,"#),
        "{csv}"
    );
    h.state_mut().state.panels.topics.search_text.clear();
    h.state_mut().state.panels.topics.regex = false;
    h.run_steps(2);

    // Pause holds the view; the store keeps filling; resume shows what came.
    h.get_by_label("Pause view").click_accesskit();
    h.run_steps(1);
    publish_once(&rt, port, "t-4", "zoo/z", "after the pause");
    step_until(&mut h, 10, "stored while paused", |h| {
        h.state()
            .live
            .topics
            .store
            .iter()
            .any(|m| &m.payload[..] == b"after the pause")
    });
    assert!(h.query_by_label_contains("after the pause").is_none());
    h.get_by_label("Resume view").click_accesskit();
    h.run_steps(3);
    h.get_by_label_contains("after the pause");

    // Publish as hex and as base64; the history brings a publish back into the form.
    h.get_by_label("Publish and clear retained")
        .click_accesskit();
    h.run_steps(2);
    for (topic, kind, text) in [
        (
            "enc/hex",
            mpbridge::ui::topics::PayloadKind::Hex,
            "de ad be ef",
        ),
        ("enc/b64", mpbridge::ui::topics::PayloadKind::Base64, "aGk="),
    ] {
        {
            let p = &mut h.state_mut().state.panels.topics.publish;
            p.topic = topic.into();
            p.payload = text.into();
            p.kind = kind;
            p.qos = 1;
        }
        h.run_steps(1);
        h.get_by_label("Publish").click_accesskit();
        h.run_steps(1);
    }
    step_until(&mut h, 10, "both back from mosquitto", |h| {
        let st = &h.state().live.topics.store;
        st.iter()
            .any(|m| &*m.topic == "enc/hex" && m.payload[..] == [0xde, 0xad, 0xbe, 0xef])
            && st
                .iter()
                .any(|m| &*m.topic == "enc/b64" && &m.payload[..] == b"hi")
    });
    h.get_by_label("enc/hex de ad be ef").click_accesskit();
    h.run_steps(2);
    {
        let p = &h.state().state.panels.topics.publish;
        assert_eq!(p.topic, "enc/hex");
        assert_eq!(p.kind, mpbridge::ui::topics::PayloadKind::Hex);
        assert_eq!(p.qos, 1);
    }
    h.get_by_label("Publish and clear retained")
        .click_accesskit();
    h.run_steps(2);

    // A payload over the store's keep limit (256 KiB here): kept cut, said with its size;
    // the export says it is cut.
    publish_bytes(&rt, port, "t-5", "big/blob", vec![b'y'; 1_000_000]);
    step_until(&mut h, 10, "the big message stored", |h| {
        h.state().live.topics.tree.find("big/blob").is_some()
    });
    let stored = h
        .state()
        .live
        .topics
        .store
        .iter()
        .find(|m| &*m.topic == "big/blob")
        .cloned()
        .unwrap();
    assert_eq!((stored.payload.len(), stored.size), (256 * 1024, 1_000_000));
    h.query_all_by_label_contains("big/blob  q0")
        .next()
        .unwrap()
        .click_accesskit();
    h.run_steps(2);
    h.get_by_label_contains("Kept 256.0 KiB of 976.6 KiB");
    // Its export says it is cut, with the real size, and carries what was kept.
    h.state_mut().state.panels.topics.search_topic = "big/blob".into();
    h.run_steps(2);
    h.get_by_label("Export JSONL").click_accesskit();
    let exports = Paths::under(dir.path()).data_dir.join("exports");
    let jsonl = || {
        std::fs::read_dir(&exports)
            .ok()?
            .flatten()
            .find(|e| e.file_name().to_string_lossy().ends_with(".jsonl"))
            .map(|e| e.path())
    };
    step_until(&mut h, 10, "the JSONL export", |_| {
        jsonl().is_some_and(|f| std::fs::read_to_string(f).is_ok_and(|t| t.ends_with('\n')))
    });
    let text = std::fs::read_to_string(jsonl().unwrap()).unwrap();
    let v: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(v["topic"], "big/blob");
    assert_eq!(v["size"], 1_000_000);
    assert_eq!(v["truncated"], true);
    assert_eq!(v["payload"].as_str().unwrap().len(), 256 * 1024);
}

#[test]
fn relay_panel_sorts_filters_lists_rejections_exports_nginx_and_stops_and_starts() {
    let rt = common::runtime();
    let dir = tempfile::tempdir().unwrap();
    let mut h = console(&rt, dir.path(), None);
    h.get_by_label("Relay").click();
    step_until(
        &mut h,
        20,
        "the console and the Mini Program relayed",
        |h| {
            let live = &h.state().live.relay.snapshot.live;
            live.len() >= 2 && live.iter().all(|r| r.connect.is_some())
        },
    );
    // Sort by client id, both ways: the rows swap places.
    let ids: Vec<String> = {
        let mut v: Vec<String> = h
            .state()
            .live
            .relay
            .snapshot
            .live
            .iter()
            .filter_map(|r| r.connect.as_ref().map(|c| c.client_id.clone()))
            .collect();
        v.sort();
        v
    };
    let (first, last) = (ids[0].clone(), ids[ids.len() - 1].clone());
    let top = |h: &Harness<'_, ConsoleApp>, id: &str| h.get_by_label(id).rect().top();
    h.get_by_label("Client ID").click();
    h.run_steps(2);
    assert!(top(&h, &first) < top(&h, &last), "ascending");
    h.get_by_label_contains("Client ID ▲").click();
    h.run_steps(2);
    assert!(top(&h, &first) > top(&h, &last), "descending");
    // Filter by the Mini Program's appid: only its row is left.
    h.get_by_label("Filter").click();
    h.run_steps(1);
    h.get_by_label("Filter").type_text("wx00000000sandbox");
    h.run_steps(2);
    let mp = h
        .state()
        .live
        .relay
        .snapshot
        .live
        .iter()
        .find(|r| r.mini_program.is_some())
        .and_then(|r| r.connect.as_ref().map(|c| c.client_id.clone()))
        .unwrap();
    h.get_by_label(&mp);
    let console_id = ids.iter().find(|i| **i != mp).unwrap().clone();
    assert!(h.query_by_label(&console_id).is_none(), "filtered out");
    h.state_mut().state.panels.relay.filter.clear();

    // Garbage on the relay's port: a rejected handshake, listed with its reason.
    let url = h.state().live.status.relay.url.clone().unwrap();
    let port: u16 = url
        .trim_start_matches("wss://localhost:")
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let _ = s.read(&mut [0u8; 64]);
    }
    step_until(&mut h, 10, "the rejection counted", |h| {
        h.state().live.relay.snapshot.totals.rejected >= 1
    });
    h.get_by_label_contains("Rejected (").click();
    h.run_steps(2);
    h.get_by_label_contains("TLS handshake failed");

    // The nginx equivalent of what runs.
    h.get_by_label("Export nginx config").click();
    step_until(&mut h, 10, "the nginx block", |h| {
        h.query_by(|n| {
            n.value().is_some_and(|v| {
                v.contains("server {") && v.contains("nginx cannot bridge WebSocket frames")
            })
        })
        .is_some()
    });
    h.get_by_label("Equivalent nginx configuration");

    // Stop, then start again: new connections come back through it.
    h.get_by_label("Stop").click_accesskit();
    step_until(&mut h, 20, "stopped", |h| {
        h.query_all_by_label_contains("stopped").next().is_some()
            && h.state().live.status.relay.phase == mpbridge::relay::RelayPhase::Stopped
    });
    h.get_by_label("Start").click_accesskit();
    step_until(&mut h, 30, "running with relayed connections again", |h| {
        matches!(
            h.state().live.status.relay.phase,
            mpbridge::relay::RelayPhase::Running { .. }
        ) && !h.state().live.relay.snapshot.live.is_empty()
    });
}

#[test]
fn broker_panel_creates_edits_duplicates_removes_and_offers_the_sandbox_as_a_profile() {
    let rt = common::runtime();
    let m = common::Mosquitto::start();
    let pki = common::TestPki::new();
    // mosquitto over TLS with a certificate the console does not trust, for "skip verification".
    let tls_port = common::free_port();
    let _tls = common::Mosquitto::start_with(&format!(
        "listener {tls_port} 127.0.0.1\ncertfile {}\nkeyfile {}\n",
        pki.chain.display(),
        pki.key.display()
    ));
    common::wait_listening(tls_port, 10);
    let dir = tempfile::tempdir().unwrap();
    let mut h = console(&rt, dir.path(), None);
    h.get_by_label("Broker").click();
    step_until(&mut h, 20, "the sandbox running", |h| {
        matches!(
            h.state().live.status.sandbox,
            mpbridge::backend::SandboxState::Running(_)
        )
    });
    let profiles_file = Paths::under(dir.path()).config_dir.join("profiles.json");
    let saved = || std::fs::read_to_string(&profiles_file).unwrap_or_default();

    // New: name, address, a last will with QoS and retain; saved to profiles.json.
    h.get_by_label("New profile").click();
    h.run_steps(2);
    h.get_by_label("Name").click();
    h.run_steps(1);
    h.get_by_label("Name").type_text(" (lab)");
    h.get_by_label("Address")
        .set_text_value_accesskit(&format!("mqtt://127.0.0.1:{}", m.tcp_port));
    h.run_steps(1);
    h.get_by_label("Last will topic").click();
    h.run_steps(1);
    h.get_by_label("Last will topic")
        .type_text("lab/console/status");
    h.run_steps(1);
    h.get_all_by_label("QoS 1").next().unwrap().click();
    h.get_by_label("retain the last will").click();
    h.run_steps(2);
    h.get_by_label("Save").click();
    h.run_steps(2);
    settle(&mut h);
    let text = saved();
    assert!(text.contains("\"name\": \"new broker (lab)\""), "{text}");
    assert!(
        text.contains("\"topic\": \"lab/console/status\"")
            && text.contains("\"qos\": 1")
            && text.contains("\"retain\": true"),
        "{text}"
    );
    // Edit: pick it, change the name, save in place.
    h.get_by_label_contains("new broker (lab)").click();
    h.run_steps(2);
    h.get_by_label("Name").click();
    h.run_steps(1);
    h.get_by_label("Name").type_text(" v2");
    h.run_steps(1);
    h.get_by_label("Save").click();
    h.run_steps(2);
    settle(&mut h);
    assert_eq!(h.state().state.profiles.profiles.len(), 1);
    assert_eq!(
        h.state().state.profiles.profiles[0].name,
        "new broker (lab) v2"
    );
    // Duplicate, then remove the copy.
    h.get_by_label_contains("new broker (lab) v2").click();
    h.run_steps(2);
    h.get_by_label("Duplicate").click();
    h.run_steps(2);
    settle(&mut h);
    assert_eq!(h.state().state.profiles.profiles.len(), 2);
    assert_eq!(
        h.state().state.profiles.profiles[1].name,
        "new broker (lab) v2 (2)"
    );
    h.get_by_label_contains("new broker (lab) v2 (2)").click();
    h.run_steps(2);
    h.get_by_label("Remove").click();
    h.run_steps(2);
    settle(&mut h);
    assert_eq!(h.state().state.profiles.profiles.len(), 1);
    assert!(!saved().contains("v2 (2)"));

    // Verification off towards an untrusted certificate: it connects, and the connection row
    // says it is not verified.
    h.get_by_label("New profile").click();
    h.run_steps(2);
    h.get_by_label("Address")
        .set_text_value_accesskit(&format!("mqtts://localhost:{tls_port}"));
    h.run_steps(1);
    h.get_by_label("skip certificate verification").click();
    h.run_steps(2);
    h.get_by_label_contains("Verification is off");
    h.get_by_label("Connect").click();
    step_until(&mut h, 20, "connected without verification", |h| {
        h.state().live.status.broker.is_connected()
            && h.state().live.status.connections.iter().any(|c| c.insecure)
    });
    h.get_by_label_contains("not verified");

    // The sandbox is a built-in entry: what it is, and a copy as a new profile.
    h.get_by_label_contains("Sandbox (built-in)").click();
    h.run_steps(2);
    h.get_by_label_contains("The embedded broker on this computer");
    h.get_by_label("Copy as a new profile").click();
    h.run_steps(2);
    h.get_by_label("Save").click();
    h.run_steps(2);
    settle(&mut h);
    let copy = h
        .state()
        .state
        .profiles
        .profiles
        .iter()
        .find(|p| p.name == "sandbox (copy)")
        .cloned()
        .unwrap();
    assert!(copy.url.starts_with("wss://localhost:"), "{}", copy.url);
    assert_eq!(copy.trust, mpbridge::mqtt::profile::TrustChoice::File);
    // …which connects through the relay with the dev CA.
    h.get_by_label_contains("sandbox (copy)").click();
    h.run_steps(2);
    h.get_by_label("Connect").click();
    step_until(&mut h, 20, "the copy connected", |h| {
        h.state()
            .live
            .status
            .connections
            .iter()
            .any(|c| c.label == "sandbox (copy)" && c.state.is_connected())
    });
}

/// The sandbox entry offers MQTT 5 as well as 3.1.1; the Overview shows the broker's
/// WebSocket address and store; a broker that dies is replaced and the console says so in one
/// sentence until dismissed.
#[cfg(unix)]
#[test]
fn sandbox_connects_with_mqtt5_and_a_dead_broker_is_announced_and_replaced() {
    let rt = common::runtime();
    let dir = tempfile::tempdir().unwrap();
    let mut h = console(&rt, dir.path(), None);
    step_until(&mut h, 20, "the sandbox running", |h| {
        matches!(
            h.state().live.status.sandbox,
            mpbridge::backend::SandboxState::Running(_)
        ) && h.state().live.status.broker_health.is_some()
    });
    // Overview: the WebSocket listener and the store in the data folder.
    h.run_steps(2);
    h.get_by_label_contains("ws://127.0.0.1:");
    let store = Paths::under(dir.path()).broker_dir();
    h.get_by_label(&store.display().to_string());

    // The built-in sandbox entry, MQTT 5.
    // With no saved profile the Broker panel shows the sandbox entry.
    h.get_by_label("Broker").click();
    h.run_steps(2);
    h.get_by_label("5").click();
    h.run_steps(2);
    h.get_by_label_contains("MQTT 5 opens a second connection");
    h.get_by_label("Connect").click();
    step_until(&mut h, 20, "the MQTT 5 sandbox connection", |h| {
        h.state()
            .live
            .status
            .connections
            .iter()
            .any(|c| c.label == "sandbox · MQTT 5" && c.protocol == 5 && c.state.is_connected())
            && h.state().live.status.broker_protocol == 5
    });
    // It receives the demo device's telemetry.
    step_until(&mut h, 10, "telemetry on the MQTT 5 connection", |h| {
        h.state()
            .live
            .topics
            .tree
            .find("devices/esp8266-demo/telemetry")
            .is_some()
    });

    // The broker process dies: it is replaced and the banner says so.
    let pid = h
        .state()
        .live
        .status
        .broker_health
        .as_ref()
        .unwrap()
        .pid
        .unwrap();
    assert!(
        std::process::Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status()
            .unwrap()
            .success()
    );
    step_until(&mut h, 20, "the broker replaced", |h| {
        h.state()
            .live
            .status
            .broker_health
            .as_ref()
            .is_some_and(|b| {
                b.restarts == 1 && b.state == mpbridge::sandbox::broker::BrokerState::Running
            })
    });
    h.run_steps(2);
    h.get_by_label_contains("it was restarted at");
    // The connections come back on their own (same ports).
    step_until(&mut h, 30, "the MQTT 5 connection back", |h| {
        h.state()
            .live
            .status
            .connections
            .iter()
            .any(|c| c.label == "sandbox · MQTT 5" && c.state.is_connected())
    });
    h.get_by_label("Overview").click();
    h.run_steps(2);
    h.get_by_label("Broker restarts");
    h.get_all_by_label("Dismiss").next().unwrap().click();
    h.run_steps(2);
    assert!(
        h.query_by_label_contains("it was restarted at").is_none(),
        "the banner stays after Dismiss"
    );
}

/// Settings → About: the version, the licence, and every crate built in with its licence,
/// unfolded on a click, in both languages.
#[test]
fn settings_about_lists_version_licence_and_components() {
    let rt = common::runtime();
    let dir = tempfile::tempdir().unwrap();
    let mut h = console(&rt, dir.path(), None);
    h.get_by_label("Settings").click();
    h.run_steps(2);
    h.get_by_label(concat!("mpbridge ", env!("CARGO_PKG_VERSION")));
    h.get_by_label_contains("MIT OR Apache-2.0. Bundled fonts");
    assert!(
        h.query_by_label_contains("rustls 0.23").is_none(),
        "the list starts folded"
    );
    let crates = include_str!("../assets/licenses/crates-linux.txt");
    let header = format!("Open-source components ({})", crates.lines().count());
    h.get_by_label(&header).click();
    h.run_steps(3);
    let first = crates.lines().next().unwrap();
    h.get_by_label(first);
    assert!(first.contains(" — "), "name, version — licence: {first}");

    h.get_by_label("简体中文").click();
    h.run_steps(3);
    h.get_by_label("关于");
    h.get_by_label(&format!("开源组件（{}）", crates.lines().count()));
}

/// A password typed in the Broker panel never reaches profiles.json: it goes to the vault
/// (here the private secrets.json; tests/secrets.rs covers the Secret Service), the panel says
/// which in English and Chinese, and a console started again on the same folder has it back.
#[test]
fn broker_panel_keeps_passwords_out_of_profiles_json_and_says_where() {
    let rt = common::runtime();
    let dir = tempfile::tempdir().unwrap();
    let profiles_file = Paths::under(dir.path()).config_dir.join("profiles.json");
    {
        let mut h = console(&rt, dir.path(), None);
        h.get_by_label("Broker").click();
        // The panel shows the sandbox entry once it runs; the new profile comes after.
        step_until(&mut h, 20, "the sandbox running", |h| {
            matches!(
                h.state().live.status.sandbox,
                mpbridge::backend::SandboxState::Running(_)
            )
        });
        h.run_steps(2);
        // Tests keep passwords in the file (never in a developer's keyring); the panel says so.
        h.get_by_label_contains("secrets.json, readable by you alone");
        h.get_by_label("New profile").click();
        h.run_steps(2);
        h.get_by_label("User name").click();
        h.run_steps(1);
        h.get_by_label("User name").type_text("field-tech");
        h.run_steps(1);
        h.get_by_label("Password").click();
        h.run_steps(1);
        h.get_by_label("Password").type_text("s3cret-Pa55");
        h.run_steps(1);
        h.get_by_label("Save").click();
        h.run_steps(2);
        settle(&mut h);
        let text = std::fs::read_to_string(&profiles_file).unwrap();
        assert!(
            text.contains("\"password_ref\""),
            "{text} {:?}",
            h.state().notices.toast
        );
        assert!(text.contains("field-tech"), "{text}");
        // In secrets.json (0600), in no other file.
        let secrets = profiles_file.with_file_name("secrets.json");
        assert!(
            std::fs::read_to_string(&secrets)
                .unwrap()
                .contains("s3cret-Pa55")
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&secrets).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        for f in std::fs::read_dir(profiles_file.parent().unwrap()).unwrap() {
            let f = f.unwrap().path();
            if f == secrets {
                continue;
            }
            let text = std::fs::read_to_string(&f).unwrap_or_default();
            assert!(!text.contains("s3cret-Pa55"), "{}: {text}", f.display());
        }
        h.state_mut().state.lang_override = Some(Language::ZhCn);
        h.run_steps(2);
        h.get_by_label_contains("密码保存在");
    }
    // Started again: the password is back in the profile, from wherever it was kept.
    let h = console(&rt, dir.path(), None);
    let p = &h.state().state.profiles.profiles[0];
    assert_eq!(p.username.as_deref(), Some("field-tech"));
    assert_eq!(
        p.password
            .as_ref()
            .map(|s| s.expose().to_owned())
            .as_deref(),
        Some("s3cret-Pa55")
    );
}
