//! Fast panel tests: the console against a fake backend (`BackendHandle::from_parts`), no
//! sandbox, no network. A click is asserted by the command the panel sends, and the panel is
//! asserted on the answer the test gives back. The end-to-end behaviour with the real sandbox
//! is in `tests/ui.rs`.
#![allow(clippy::unwrap_used)] // tests may unwrap: a panic is the failure report

use std::time::Instant;

use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use mpbridge::app::{AppEnv, ConsoleApp};
use mpbridge::backend::{
    BackendHandle, BackendStatus, Command, ConnCmd, DeviceCmd, Event, RelayCmd, RelayStatus,
};
use mpbridge::config::{ConsoleConfig, Language, Paths};
use mpbridge::relay::RelayPhase;
use mpbridge::ui::Tab;
use tokio::sync::{mpsc, watch};

/// The console on a fake backend: the commands it sends, and the status it reads.
struct Fake {
    h: Harness<'static, ConsoleApp>,
    commands: mpsc::Receiver<Command>,
    status: watch::Sender<BackendStatus>,
    _events: mpsc::Sender<Event>,
    _dir: tempfile::TempDir,
}

fn fake(tab: Tab, capacity: usize) -> Fake {
    let dir = tempfile::tempdir().unwrap();
    let (cmd_tx, commands) = mpsc::channel(capacity);
    let (events, ev_rx) = mpsc::channel(16);
    let (status, st_rx) = watch::channel(BackendStatus::default());
    let backend = BackendHandle::from_parts(cmd_tx, ev_rx, st_rx);
    let env = AppEnv {
        paths: Paths::under(dir.path()),
        log: None,
        started: Instant::now(),
        secrets_in_file: true,
    };
    let config = ConsoleConfig {
        language: Some(Language::En),
        ..Default::default()
    };
    let app = ConsoleApp::new(backend, env, config, None).with_tab(tab);
    let h = Harness::builder()
        .with_size([1200.0, 800.0])
        .build_ui_state(
            |ui, app: &mut ConsoleApp| {
                app.pump(ui.ctx());
                app.frame_ui(ui);
            },
            app,
        );
    Fake {
        h,
        commands,
        status,
        _events: events,
        _dir: dir,
    }
}

impl Fake {
    fn next(&mut self) -> Command {
        self.commands
            .try_recv()
            .unwrap_or_else(|e| panic!("the panel sent nothing: {e:?}"))
    }
}

/// Settings as the status carries them (the form reads them; nothing is loaded here).
fn settings() -> mpbridge::relay::RelaySettings {
    use mpbridge::relay::config::{CertFiles, Limits};
    mpbridge::relay::RelaySettings {
        listen: "127.0.0.1:8443".parse().unwrap(),
        certs: CertFiles {
            cert: "fullchain.pem".into(),
            key: "privkey.pem".into(),
            sni: Vec::new(),
        },
        routes: Vec::new(),
        limits: Limits::default(),
        healthz: true,
        metrics: false,
        verbose_errors: false,
    }
}

#[test]
fn relay_buttons_send_stop_and_start() {
    let mut f = fake(Tab::Relay, 8);
    f.status.send_modify(|s| {
        s.relay = RelayStatus {
            phase: RelayPhase::Running {
                addr: "127.0.0.1:8443".parse().unwrap(),
            },
            config: Some(settings()),
            ..Default::default()
        }
    });
    f.h.run_steps(2);
    f.h.get_by_label("Stop").click();
    f.h.run_steps(1);
    assert!(matches!(f.next(), Command::Relay(RelayCmd::Stop)));

    f.status
        .send_modify(|s| s.relay.phase = RelayPhase::Stopped);
    f.h.run_steps(2);
    f.h.get_by_label("Start").click();
    f.h.run_steps(1);
    assert!(matches!(f.next(), Command::Relay(RelayCmd::Start)));
}

/// The form edits the typed settings: Apply sends them, with what it does not show kept.
#[test]
fn apply_sends_the_edited_settings() {
    let mut f = fake(Tab::Relay, 8);
    let mut loaded = settings();
    loaded.routes.push(mpbridge::relay::config::Route {
        path: "/mqtt".into(),
        upstreams: vec![mpbridge::relay::Upstream::parse("tcp://127.0.0.1:1883").unwrap()],
        require_subprotocol: true,
        allowed_origins: Vec::new(),
        allowed_appids: vec!["wx1".into()],
    });
    f.status
        .send_modify(|s| s.relay.config = Some(loaded.clone()));
    f.h.run_steps(2);
    f.h.get_by_label("Configuration").click();
    f.h.run_steps(2);
    f.h.get_by_label("Apply and reload").click();
    f.h.run_steps(1);
    // The form also asks about its certificate file (CertCmd::Brief): look past it.
    loop {
        match f.next() {
            Command::Relay(RelayCmd::Apply { settings, .. }) => {
                assert_eq!(*settings, loaded);
                break;
            }
            Command::Certs(_) => {}
            _ => panic!("expected Apply"),
        }
    }
}

#[test]
fn the_simulator_button_sends_its_count_and_shows_the_answer() {
    let mut f = fake(Tab::Devices, 8);
    f.h.state_mut().state.panels.devices.sim_count = 3;
    f.h.run_steps(2);
    f.h.get_by_label("Start simulator").click();
    f.h.run_steps(1);
    match f.next() {
        Command::Devices(DeviceCmd::SimulateStart { count, reply }) => {
            assert_eq!(count, 3);
            reply.send(Ok(vec!["sim-1".into(), "sim-2".into(), "sim-3".into()]));
        }
        _ => panic!("expected SimulateStart"),
    }
    f.h.run_steps(3);
    f.h.get_by_label_contains("3 simulated devices running");
}

#[test]
fn a_new_subscription_is_sent_with_its_filter() {
    let mut f = fake(Tab::Topics, 8);
    f.h.state_mut().state.panels.topics.new_filter = "plant/+/temp".into();
    f.h.run_steps(2);
    f.h.get_by_label("Subscribe").click();
    f.h.run_steps(1);
    match f.next() {
        Command::Conn(ConnCmd::Subscribe { filter, .. }) => assert_eq!(filter, "plant/+/temp"),
        _ => panic!("expected Subscribe"),
    }
}

/// A full command queue: the click is refused at once and the console says busy.
#[test]
fn a_full_queue_says_busy() {
    let mut f = fake(Tab::Relay, 1);
    f.status.send_modify(|s| {
        s.relay.phase = RelayPhase::Running {
            addr: "127.0.0.1:8443".parse().unwrap(),
        };
    });
    f.h.run_steps(2);
    f.h.get_by_label("Stop").click();
    f.h.run_steps(1);
    f.h.get_by_label("Stop").click();
    f.h.run_steps(2);
    f.h.get_by_label_contains("Backend busy");
    assert!(matches!(f.next(), Command::Relay(RelayCmd::Stop)));
    assert!(
        f.commands.try_recv().is_err(),
        "the second click was not queued"
    );
}
