//! `mpbridge relay` and `mpbridge nginx-config` through the real binary.
#![allow(clippy::unwrap_used)] // tests may unwrap: a panic is the failure report

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{KillOnDrop, Mosquitto, TestPki, free_port, mpbridge};

fn write_config(pki: &TestPki, port: u16, upstream: &str, extra: &str) -> std::path::PathBuf {
    let path = pki.dir.path().join("relay.toml");
    std::fs::write(
        &path,
        format!(
            "[listen]\naddr = \"127.0.0.1:{port}\"\ncert = \"chain.pem\"\nkey = \"key.pem\"\n\n[[route]]\npath = \"/mqtt\"\nupstream = [\"{upstream}\"]\n{extra}"
        ),
    )
    .unwrap();
    path
}

fn run_to_end(cmd: &mut std::process::Command) -> (Option<i32>, String, String) {
    let out = cmd.output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_configs_exit_non_zero_with_one_sentence() {
    let root = tempfile::tempdir().unwrap();
    let pki = TestPki::new();
    // Unknown key: named with its line.
    let p = write_config(
        &pki,
        free_port(),
        "tcp://127.0.0.1:1883",
        "\n[limits]\nmax_conections = 5\n",
    );
    let (code, _, err) = run_to_end(mpbridge(root.path()).args(["relay", "--config"]).arg(&p));
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("line 11") && err.contains("max_conections"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "one sentence: {err}");

    // A certificate that is not there.
    let p = write_config(&pki, free_port(), "tcp://127.0.0.1:1883", "");
    std::fs::write(
        &p,
        std::fs::read_to_string(&p)
            .unwrap()
            .replace("chain.pem", "missing.pem"),
    )
    .unwrap();
    let (code, _, err) = run_to_end(mpbridge(root.path()).args(["relay", "--config"]).arg(&p));
    assert_eq!(code, Some(2));
    assert!(
        err.contains("cannot read the certificate") && err.contains("missing.pem"),
        "{err}"
    );

    // A key that belongs to another certificate.
    let other = TestPki::new();
    std::fs::copy(&other.key, pki.dir.path().join("key.pem")).unwrap();
    let p = write_config(&pki, free_port(), "tcp://127.0.0.1:1883", "");
    let (code, _, err) = run_to_end(mpbridge(root.path()).args(["relay", "--config"]).arg(&p));
    assert_eq!(code, Some(2));
    assert!(err.contains("does not belong to the certificate"), "{err}");

    // A port that is taken.
    let pki = TestPki::new();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let p = write_config(
        &pki,
        taken.local_addr().unwrap().port(),
        "tcp://127.0.0.1:1883",
        "",
    );
    let (code, _, err) = run_to_end(mpbridge(root.path()).args(["relay", "--config"]).arg(&p));
    assert_eq!(code, Some(2));
    assert!(err.contains("cannot listen on 127.0.0.1:"), "{err}");

    // A missing file.
    let (code, _, err) =
        run_to_end(mpbridge(root.path()).args(["relay", "--config", "/nonexistent/relay.toml"]));
    assert_eq!(code, Some(2));
    assert!(err.contains("cannot read /nonexistent/relay.toml"), "{err}");
}

fn wait_for_line(lines: &std::sync::mpsc::Receiver<String>, needle: &str, secs: u64) -> String {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        if let Ok(l) = lines.recv_timeout(Duration::from_millis(100)) {
            if l.contains(needle) {
                return l;
            }
            seen.push(l);
        }
    }
    panic!(
        "no line containing {needle:?} within {secs} s; saw:\n{}",
        seen.join("\n")
    );
}

#[test]
fn headless_relay_serves_reloads_and_drains() {
    let root = tempfile::tempdir().unwrap();
    let m = Mosquitto::start();
    let pki = TestPki::new();
    let port = free_port();
    let up = format!("tcp://127.0.0.1:{}", m.tcp_port);
    let cfg = write_config(&pki, port, &up, "");
    let mut child = KillOnDrop(
        mpbridge(root.path())
            .args(["relay", "--config"])
            .arg(&cfg)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let stderr = child.0.stderr.take().unwrap();
    let (tx, lines) = std::sync::mpsc::sync_channel(1000);
    mpbridge::spawn_named("stderr-reader", move || {
        for l in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(l).is_err() {
                break;
            }
        }
    })
    .unwrap();
    wait_for_line(&lines, &format!("listening on 127.0.0.1:{port}"), 15);

    // A client through it: one log line on open and one on close.
    let out = std::process::Command::new(mpbridge::bench::program("mosquitto_pub"))
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &m.tcp_port.to_string(),
            "-t",
            "x",
            "-m",
            "y",
        ])
        .output();
    assert!(
        out.is_ok_and(|o| o.status.success()),
        "mosquitto_pub works directly"
    );
    let rt = common::runtime();
    rt.block_on(async {
        rustls::crypto::ring::default_provider()
            .install_default()
            .ok();
        let tls = mpbridge::relay::tls::client_config_with_roots(&[&pki.ca]).unwrap();
        let mut opts =
            rumqttc::MqttOptions::new("cli-relay", format!("wss://localhost:{port}/mqtt"), port);
        opts.set_transport(rumqttc::Transport::wss_with_config(tls.into()));
        let (client, mut ev) = rumqttc::AsyncClient::new(opts, 8);
        common::within(10, "CONNACK via headless relay", async {
            loop {
                if let rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(_)) =
                    ev.poll().await.unwrap()
                {
                    break;
                }
            }
        })
        .await;
        client.disconnect().await.ok();
        let _ = tokio::time::timeout(Duration::from_secs(1), ev.poll()).await;
    });
    wait_for_line(&lines, "open", 10);
    wait_for_line(&lines, "close", 10);

    // A broken edit is refused and the relay keeps running; a good edit is applied.
    std::fs::write(&cfg, "[listen]\naddr = oops\n").unwrap();
    wait_for_line(&lines, "reload refused", 15);
    write_config(
        &pki,
        port,
        &up,
        "\n[[route]]\npath = \"/mqtt2\"\nupstream = [\"tcp://127.0.0.1:1\"]\n",
    );
    wait_for_line(&lines, "routes: /mqtt, /mqtt2", 15);

    // SIGHUP reloads too.
    #[cfg(unix)]
    {
        std::process::Command::new("kill")
            .args(["-HUP", &child.0.id().to_string()])
            .status()
            .unwrap();
        wait_for_line(&lines, "reloaded (SIGHUP)", 10);
        // SIGTERM drains and exits 0.
        std::process::Command::new("kill")
            .args(["-TERM", &child.0.id().to_string()])
            .status()
            .unwrap();
        wait_for_line(&lines, "stopped (1 upgraded", 15);
        let deadline = Instant::now() + Duration::from_secs(15);
        let status = loop {
            if let Some(s) = child.0.try_wait().unwrap() {
                break s;
            }
            assert!(
                Instant::now() < deadline,
                "relay did not exit after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(status.success(), "{status:?}");
    }
}

#[test]
fn nginx_config_export() {
    let root = tempfile::tempdir().unwrap();
    let pki = TestPki::new();
    let p = write_config(
        &pki,
        443,
        "ws://10.0.0.11:8083/mqtt\", \"ws://10.0.0.12:8083/mqtt",
        "\n[limits]\nidle_timeout_secs = 600\n",
    );
    let (code, out, err) = run_to_end(
        mpbridge(root.path())
            .args(["nginx-config", "--config"])
            .arg(&p),
    );
    assert_eq!(code, Some(0), "{err}");
    for needle in [
        "server 10.0.0.11:8083",
        "server 10.0.0.12:8083",
        "listen 127.0.0.1:443 ssl;",
        "ssl_protocols TLSv1.2 TLSv1.3;",
        "location = /mqtt {",
        "proxy_pass http://mpbridge_route_0/mqtt;",
        "proxy_set_header Upgrade $http_upgrade;",
        "proxy_set_header Connection \"upgrade\";",
        "proxy_read_timeout 600s;",
    ] {
        assert!(out.contains(needle), "missing {needle:?} in:\n{out}");
    }
    // And nginx itself accepts it, when installed.
    if std::process::Command::new(mpbridge::bench::program("nginx"))
        .arg("-v")
        .output()
        .is_ok()
    {
        let conf = root.path().join("nginx.conf");
        let body = out.replace(
            "listen 127.0.0.1:443 ssl;",
            &format!("listen 127.0.0.1:{} ssl;", free_port()),
        );
        std::fs::write(
            &conf,
            format!(
                "pid {}/nginx.pid;\nerror_log stderr;\nevents {{}}\nhttp {{\naccess_log off;\n{body}\n}}\n",
                root.path().display()
            ),
        )
        .unwrap();
        let (code, _, err) = run_to_end(
            std::process::Command::new(mpbridge::bench::program("nginx"))
                .args(["-t", "-c"])
                .arg(&conf),
        );
        assert_eq!(code, Some(0), "nginx -t rejects the export:\n{err}\n{body}");
    }
}

/// Processes whose parent is `pid`.
fn children_of(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(p) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let ppid = std::fs::read_to_string(format!("/proc/{p}/stat"))
            .ok()
            .and_then(|s| s.rsplit(')').next().map(str::to_owned))
            .and_then(|s| s.split_whitespace().nth(1).and_then(|x| x.parse().ok()));
        if ppid == Some(pid) {
            out.push(p);
        }
    }
    out
}

/// Sockets a process holds open.
fn sockets_of(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| {
            d.flatten()
                .filter(|e| {
                    std::fs::read_link(e.path())
                        .is_ok_and(|l| l.to_string_lossy().starts_with("socket:"))
                })
                .count()
        })
        .unwrap_or(0)
}

/// Whether a process still runs (a zombie waiting for its reaper does not).
fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit(')').next().map(str::to_owned))
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .is_some_and(|state| state != "Z" && state != "X")
}

#[test]
fn workers_share_the_port_reload_together_and_never_outlive_the_parent() {
    let root = tempfile::tempdir().unwrap();
    let m = Mosquitto::start();
    let pki = TestPki::new();
    let port = free_port();
    let cfg = write_config(&pki, port, &format!("tcp://127.0.0.1:{}", m.tcp_port), "");
    let mut parent = KillOnDrop(
        mpbridge(root.path())
            .args(["relay", "--workers", "2", "--config"])
            .arg(&cfg)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let stderr = parent.0.stderr.take().unwrap();
    let (tx, lines) = std::sync::mpsc::sync_channel(10_000);
    mpbridge::spawn_named("stderr-reader", move || {
        for l in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(l).is_err() {
                break;
            }
        }
    })
    .unwrap();
    wait_for_line(&lines, "2 worker processes", 15);
    wait_for_line(&lines, "relay worker", 15);
    let pid = parent.0.id();
    let workers = children_of(pid);
    assert_eq!(
        workers.len(),
        1,
        "one worker besides the parent: {workers:?}"
    );
    let worker = workers[0];
    let (base_parent, base_worker) = (sockets_of(pid), sockets_of(worker));

    // 40 clients at once: the kernel spreads them over both processes, and all get through.
    let rt = common::runtime();
    let held = rt.block_on(async {
        rustls::crypto::ring::default_provider()
            .install_default()
            .ok();
        let tls = mpbridge::relay::tls::client_config_with_roots(&[&pki.ca]).unwrap();
        let mut tasks = Vec::new();
        for i in 0..40 {
            let tls = tls.clone();
            tasks.push(tokio::spawn(async move {
                let mut opts = rumqttc::MqttOptions::new(
                    format!("worker-{i}"),
                    format!("wss://localhost:{port}/mqtt"),
                    port,
                );
                opts.set_transport(rumqttc::Transport::wss_with_config(tls.into()));
                let (client, mut ev) = rumqttc::AsyncClient::new(opts, 8);
                common::within(15, "CONNACK through a worker", async {
                    loop {
                        if let rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(_)) =
                            ev.poll().await.unwrap()
                        {
                            break;
                        }
                    }
                })
                .await;
                // Keep the event loop running (the connection stays up) until dropped.
                let keep = tokio::spawn(async move { while ev.poll().await.is_ok() {} });
                (client, keep)
            }));
        }
        let mut held = Vec::new();
        for t in tasks {
            held.push(t.await.unwrap());
        }
        held
    });
    assert_eq!(held.len(), 40);
    // Each relayed connection holds a client and an upstream socket in its process.
    let (p, w) = (
        sockets_of(pid) - base_parent,
        sockets_of(worker) - base_worker,
    );
    assert!(
        p >= 2 && w >= 2,
        "both processes serve: parent +{p}, worker +{w} sockets"
    );
    assert!(
        p + w >= 80,
        "40 relayed connections: parent +{p}, worker +{w}"
    );
    drop(held);

    // SIGHUP reloads the parent, which tells the worker.
    std::process::Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .unwrap();
    wait_for_line(&lines, "reloaded (SIGHUP)", 10);
    wait_for_line(&lines, &format!("relay worker {worker} reloaded"), 10);

    // The parent killed outright: the worker's order pipe closes and it stops too.
    parent.0.kill().unwrap();
    parent.0.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while running(worker) {
        assert!(
            Instant::now() < deadline,
            "worker {worker} outlived its parent"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
