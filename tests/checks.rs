//! The Mini Program compliance checks against real servers started here: the relay in front of
//! mosquitto (passing), and failing ones — broken certificates, `openssl s_server` with TLS
//! 1.3 only or without ECDHE-GCM, nginx that drops the subprotocol, redirects, forgets the
//! Upgrade headers or times out idle connections, a broker that refuses the credentials.
#![allow(clippy::unwrap_used)] // tests may unwrap: a panic is the failure report

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use common::corpus::{Corpus, DOMAIN, LeafSpec, openssl};
use common::{KillOnDrop, Mosquitto, Nginx, free_port, mpbridge, wait_listening};
use mpbridge::checks::{self, CheckStatus, Options, Report};
use mpbridge::relay::{Relay, RelayConfig, Upstream};

fn root_der(c: &Corpus) -> rustls_pki_types::CertificateDer<'static> {
    rustls_pki_types::CertificateDer::from(
        x509_parser::pem::parse_x509_pem(c.root_pem.as_bytes())
            .unwrap()
            .1
            .contents,
    )
}

fn opts(c: &Corpus) -> Options {
    Options {
        extra_roots: vec![root_der(c)],
        resolve: vec![
            (DOMAIN.to_owned(), "127.0.0.1".parse().unwrap()),
            ("b.example.com".to_owned(), "127.0.0.1".parse().unwrap()),
        ],
        step_timeout: Duration::from_secs(3),
        ..Options::default()
    }
}

fn check(rt: &tokio::runtime::Runtime, url: &str, o: &Options) -> Report {
    let r = rt.block_on(common::within(
        120,
        "the checks",
        checks::run(url, o, |_| {}, tokio_util::sync::CancellationToken::new()),
    ));
    chinese_is_chinese(&r);
    r
}

/// Every failure these real servers cause reads as Chinese in Chinese: no English sentence
/// from a lower layer (an I/O, TLS or WebSocket error) inside it.
fn chinese_is_chinese(r: &Report) {
    for c in &r.checks {
        for text in [&c.title.zh, &c.detail.zh, &c.remedy.zh] {
            assert_eq!(
                mpbridge::i18n::english_in_chinese(text),
                None,
                "{}: {text}",
                c.id
            );
        }
    }
}

fn st(r: &Report, id: &str) -> CheckStatus {
    r.get(id)
        .unwrap_or_else(|| panic!("no {id} in {:#?}", r.checks))
        .status
}

fn detail(r: &Report, id: &str) -> String {
    r.get(id).unwrap().detail.en.clone()
}

/// The relay in front of `upstream`, serving `chain` and `key`.
fn relay(
    rt: &tokio::runtime::Runtime,
    chain: &Path,
    key: &Path,
    upstream: Upstream,
) -> (Relay, SocketAddr) {
    let cfg = RelayConfig::simple(
        "127.0.0.1:0".parse().unwrap(),
        chain,
        key,
        "/mqtt",
        upstream,
    )
    .unwrap();
    let r = rt.block_on(Relay::start(cfg, rt.handle())).unwrap();
    let addr = r.addr();
    (r, addr)
}

fn tcp(m: &Mosquitto) -> Upstream {
    Upstream::Tcp {
        host: "127.0.0.1".into(),
        port: m.tcp_port,
    }
}

/// Leaf + intermediate for a.example.com (and 127.0.0.1), key.
fn good_files(c: &Corpus, name: &str) -> (PathBuf, PathBuf) {
    let leaf = c.leaf(LeafSpec::default());
    (
        c.write(
            &format!("{name}.pem"),
            &format!("{}{}", leaf.pem, c.inter_pem),
        ),
        c.write(&format!("{name}.key"), &leaf.key_pem),
    )
}

#[test]
fn a_good_endpoint_passes_what_a_private_test_setup_can_pass() {
    let rt = common::runtime();
    let c = Corpus::new();
    let m = Mosquitto::start();
    let (chain, key) = good_files(&c, "good");
    let (_r, addr) = relay(&rt, &chain, &key, tcp(&m));
    let url = format!("wxs://{DOMAIN}:{}/mqtt", addr.port());
    let mut o = opts(&c);
    o.keepalive_test = true;
    o.keepalive_idle = Duration::from_secs(3);
    let mut seen = Vec::new();
    let r = rt.block_on(checks::run(
        &url,
        &o,
        |c| seen.push(c.id),
        tokio_util::sync::CancellationToken::new(),
    ));
    for id in [
        "MP-URL-SCHEME",
        "MP-URL-HOST",
        "MP-DNS",
        "MP-TCP",
        "MP-TLS12",
        "MP-TLS-CIPHER",
        "MP-CERT-CHAIN",
        "MP-CERT-NAME",
        "MP-CERT-DATES",
        "MP-CERT-STRENGTH",
        "MP-ALPN",
        "MP-WS-UPGRADE",
        "MP-WS-PATH",
        "MP-WS-SUBPROTOCOL",
        "MP-MQTT-CONNECT",
        "MP-MQTT-PIGGYBACK",
        "MP-KEEPALIVE",
        "MP-LATENCY",
    ] {
        assert_eq!(st(&r, id), CheckStatus::Pass, "{id}: {:#?}", r.get(id));
    }
    assert_eq!(st(&r, "MP-URL-PORT"), CheckStatus::Warn);
    assert_eq!(st(&r, "MP-CERT-TRUST"), CheckStatus::Fail);
    assert!(
        detail(&r, "MP-CERT-TRUST").contains("Trusted only by an extra root"),
        "{}",
        detail(&r, "MP-CERT-TRUST")
    );
    assert_eq!(st(&r, "MP-WHITELIST"), CheckStatus::Manual);
    assert_eq!(st(&r, "MP-ICP"), CheckStatus::Manual);
    assert_eq!(r.whitelist.as_deref(), Some("wss://a.example.com"));
    assert_eq!(r.summary.fail, 1);
    assert_eq!(r.exit_code(), 1);
    // Progress saw every check, in report order.
    assert_eq!(seen, r.checks.iter().map(|c| c.id).collect::<Vec<_>>());
    let snippet = r.snippet.as_deref().unwrap();
    assert!(
        snippet.contains(&format!(
            "mqtt.connect('wxs://{DOMAIN}:{}/mqtt'",
            addr.port()
        )),
        "{snippet}"
    );
    assert!(snippet.contains("keepalive: 30"));
    assert!(detail(&r, "MP-TLS12").contains("ECDHE-ECDSA-AES128-GCM-SHA256"));
    assert!(detail(&r, "MP-ALPN").contains("→ http/1.1"));
    for c in &r.checks {
        assert!(
            !c.title.zh.is_empty() && !c.detail.zh.is_empty(),
            "{}",
            c.id
        );
    }

    // Through the binary: JSON shape, Markdown, exit code, nothing leaked.
    let root = tempfile::tempdir().unwrap();
    let out = mpbridge(root.path())
        .args(["check", &url, "--json", "--extra-root"])
        .arg(c.path("root.pem"))
        .args(["--resolve", &format!("{DOMAIN}:127.0.0.1")])
        .args(["--username", "someone", "--password-env", "CHECK_PW"])
        .env("CHECK_PW", "hunter2-secret")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("hunter2-secret"));
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["target"], url.as_str());
    let checks = v["checks"].as_array().unwrap();
    for c in checks {
        for k in ["id", "status", "title", "detail", "remedy"] {
            assert!(c[k].is_string(), "{k} in {c}");
        }
        assert!(c["elapsed_ms"].is_u64());
    }
    for k in ["pass", "warn", "fail", "manual", "skipped"] {
        assert!(v["summary"][k].is_u64(), "{k}");
    }
    assert_eq!(v["summary"]["fail"], 1);
    let out = mpbridge(root.path())
        .args([
            "check",
            &url,
            "--markdown",
            "--lang",
            "zh-CN",
            "--extra-root",
        ])
        .arg(c.path("root.pem"))
        .args(["--resolve", &format!("{DOMAIN}:127.0.0.1")])
        .output()
        .unwrap();
    let md = String::from_utf8_lossy(&out.stdout);
    assert!(md.contains("| `MP-WS-SUBPROTOCOL` |"), "{md}");
    assert!(md.contains("socket合法域名：`wss://a.example.com`"), "{md}");
    assert!(md.contains("只被额外的根证书"), "{md}");
}

#[test]
fn broken_certificates_fail_their_own_check() {
    let rt = common::runtime();
    let c = Corpus::new();
    let m = Mosquitto::start();
    let o = opts(&c);
    let leaf = c.leaf(LeafSpec::default());
    let key = c.write("leaf.key", &leaf.key_pem);

    // Leaf only.
    let only = c.write("leaf-only.pem", &leaf.pem);
    let (r1, addr) = relay(&rt, &only, &key, tcp(&m));
    let r = check(&rt, &format!("wxs://{DOMAIN}:{}/mqtt", addr.port()), &o);
    assert_eq!(st(&r, "MP-CERT-CHAIN"), CheckStatus::Fail);
    assert!(detail(&r, "MP-CERT-CHAIN").contains("Android WeChat does not"));
    // The rest still runs: the chain does not stop the upgrade.
    assert_eq!(st(&r, "MP-MQTT-CONNECT"), CheckStatus::Pass);
    drop(r1);

    // Wrong name: the certificate is for a.example.com, the URL says b.example.com.
    let (chain, key2) = good_files(&c, "good");
    let (_r2, addr) = relay(&rt, &chain, &key2, tcp(&m));
    let r = check(
        &rt,
        &format!("wxs://b.example.com:{}/mqtt", addr.port()),
        &o,
    );
    assert_eq!(st(&r, "MP-CERT-NAME"), CheckStatus::Fail);
    assert_eq!(st(&r, "MP-CERT-CHAIN"), CheckStatus::Pass);

    // Expired.
    let old = c.leaf(LeafSpec {
        not_before_days: -100,
        not_after_days: -2,
        ..LeafSpec::default()
    });
    let p = c.write("old.pem", &format!("{}{}", old.pem, c.inter_pem));
    let k = c.write("old.key", &old.key_pem);
    let (_r3, addr) = relay(&rt, &p, &k, tcp(&m));
    let r = check(&rt, &format!("wxs://{DOMAIN}:{}/mqtt", addr.port()), &o);
    assert_eq!(st(&r, "MP-CERT-DATES"), CheckStatus::Fail);
    assert!(detail(&r, "MP-CERT-DATES").contains("expired"));

    // Self-signed.
    let own = c.leaf(LeafSpec {
        self_signed: true,
        ..LeafSpec::default()
    });
    let p = c.write("self.pem", &own.pem);
    let k = c.write("self.key", &own.key_pem);
    let (_r4, addr) = relay(&rt, &p, &k, tcp(&m));
    let r = check(&rt, &format!("wxs://{DOMAIN}:{}/mqtt", addr.port()), &o);
    assert_eq!(st(&r, "MP-CERT-TRUST"), CheckStatus::Fail);
    assert!(
        !detail(&r, "MP-CERT-TRUST").contains("extra root"),
        "{}",
        detail(&r, "MP-CERT-TRUST")
    );
}

fn s_server(args: &[&str], cert: &Path, key: &Path) -> (KillOnDrop, u16) {
    let port = free_port();
    let child = std::process::Command::new("openssl")
        .args(["s_server", "-quiet", "-www", "-accept"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("-cert")
        .arg(cert)
        .arg("-key")
        .arg(key)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let child = KillOnDrop(child);
    wait_listening(port, 10);
    (child, port)
}

#[test]
fn tls_versions_and_suites_seen_as_old_and_strict_clients_see_them() {
    let rt = common::runtime();
    let c = Corpus::new();
    let o = opts(&c);
    let (chain, key) = good_files(&c, "good");

    let (_s, port) = s_server(&["-tls1_3"], &chain, &key);
    let r = check(&rt, &format!("wxs://{DOMAIN}:{port}/mqtt"), &o);
    assert_eq!(st(&r, "MP-TLS12"), CheckStatus::Fail);
    assert!(
        detail(&r, "MP-TLS12").contains("accepts only TLS 1.3"),
        "{}",
        detail(&r, "MP-TLS12")
    );
    // TLS 1.3 still gives the certificate (s_server sends the leaf alone).
    assert_eq!(st(&r, "MP-CERT-NAME"), CheckStatus::Pass);
    assert_eq!(st(&r, "MP-CERT-CHAIN"), CheckStatus::Fail);

    // TLS 1.2 with CBC suites only: fine for old Android, refused by iOS ATS.
    let (_s2, port) = s_server(
        &["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-SHA"],
        &chain,
        &key,
    );
    let r = check(&rt, &format!("wxs://{DOMAIN}:{port}/mqtt"), &o);
    assert_eq!(
        st(&r, "MP-TLS12"),
        CheckStatus::Pass,
        "{:#?}",
        r.get("MP-TLS12")
    );
    assert!(detail(&r, "MP-TLS12").contains("ECDHE-ECDSA-AES128-SHA"));
    assert_eq!(st(&r, "MP-TLS-CIPHER"), CheckStatus::Fail);
    // rustls cannot speak CBC, but the chain came in the clear with TLS 1.2.
    assert_eq!(
        st(&r, "MP-CERT-NAME"),
        CheckStatus::Pass,
        "{:#?}",
        r.get("MP-CERT-NAME")
    );
    assert_eq!(st(&r, "MP-WS-UPGRADE"), CheckStatus::Skipped);
    // Read once from the TLS 1.2 records (s_server sends the leaf alone).
    assert!(
        detail(&r, "MP-CERT-CHAIN").starts_with("1 served."),
        "{}",
        detail(&r, "MP-CERT-CHAIN")
    );
}

fn nginx_proxy(m: &Mosquitto, extra: &str) -> String {
    format!(
        "      proxy_pass http://127.0.0.1:{}/mqtt;\n      proxy_http_version 1.1;\n      \
         proxy_set_header Upgrade $http_upgrade;\n      proxy_set_header Connection \"upgrade\";\n{extra}",
        m.ws_port
    )
}

#[test]
fn proxies_that_break_the_upgrade_are_named() {
    if !Nginx::available() {
        common::missing("nginx is not installed (apt-get install nginx)");
        return;
    }
    let rt = common::runtime();
    let c = Corpus::new();
    let m = Mosquitto::start();
    let mut o = opts(&c);
    let (chain, key) = good_files(&c, "good");

    // The subprotocol is hidden from the client.
    let n = Nginx::start(
        &chain,
        &key,
        &nginx_proxy(&m, "      proxy_hide_header Sec-WebSocket-Protocol;"),
    );
    let r = check(&rt, &format!("wxs://{DOMAIN}:{}/mqtt", n.port), &o);
    assert_eq!(
        st(&r, "MP-WS-UPGRADE"),
        CheckStatus::Pass,
        "{:#?}",
        r.get("MP-WS-UPGRADE")
    );
    assert_eq!(st(&r, "MP-WS-SUBPROTOCOL"), CheckStatus::Fail);
    assert!(detail(&r, "MP-WS-SUBPROTOCOL").contains("without Sec-WebSocket-Protocol"));
    assert!(
        r.get("MP-WS-SUBPROTOCOL")
            .unwrap()
            .remedy
            .en
            .contains("proxy_hide_header")
    );
    drop(n);

    // A redirect.
    let n = Nginx::start(&chain, &key, "      return 301 https://$host/elsewhere;");
    let r = check(&rt, &format!("wxs://{DOMAIN}:{}/mqtt", n.port), &o);
    assert_eq!(st(&r, "MP-WS-UPGRADE"), CheckStatus::Fail);
    assert!(
        detail(&r, "MP-WS-UPGRADE").contains("redirect to https://"),
        "{}",
        detail(&r, "MP-WS-UPGRADE")
    );
    drop(n);

    // The seed's nginx block without the Upgrade headers.
    let n = Nginx::start(
        &chain,
        &key,
        &format!("      proxy_pass http://127.0.0.1:{}/mqtt;", m.ws_port),
    );
    let r = check(&rt, &format!("wxs://{DOMAIN}:{}/mqtt", n.port), &o);
    assert_eq!(st(&r, "MP-WS-UPGRADE"), CheckStatus::Fail);
    let d = detail(&r, "MP-WS-UPGRADE");
    assert!(!d.contains("HTTP 101"), "{d}");
    assert!(
        r.get("MP-WS-UPGRADE")
            .unwrap()
            .remedy
            .en
            .contains("proxy_http_version 1.1")
    );
    drop(n);

    // nginx cutting idle connections (proxy_read_timeout, shortened to 2 s here).
    let n = Nginx::start(
        &chain,
        &key,
        &nginx_proxy(&m, "      proxy_read_timeout 2s;"),
    );
    o.keepalive_test = true;
    o.keepalive_idle = Duration::from_secs(6);
    let r = check(&rt, &format!("wxs://{DOMAIN}:{}/mqtt", n.port), &o);
    assert_eq!(st(&r, "MP-MQTT-CONNECT"), CheckStatus::Pass);
    assert_eq!(
        st(&r, "MP-KEEPALIVE"),
        CheckStatus::Fail,
        "{:#?}",
        r.get("MP-KEEPALIVE")
    );
    // nginx counts from the last upstream byte (the CONNACK), so a little under 2 s of silence.
    let d = detail(&r, "MP-KEEPALIVE");
    let secs: f64 = d
        .split("closed after ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{d}"));
    assert!((1.0..3.5).contains(&secs), "{d}");
    assert!(
        r.get("MP-KEEPALIVE")
            .unwrap()
            .remedy
            .en
            .contains("proxy_read_timeout 300s")
    );
    // The snippet keeps keepalive below what was found.
    assert!(
        r.snippet.as_deref().unwrap().contains("keepalive: 5"),
        "{:?}",
        r.snippet
    );
}

#[test]
fn wrong_path_and_refused_credentials() {
    let rt = common::runtime();
    let c = Corpus::new();
    let pw_file = c.path("passwd");
    let out = std::process::Command::new(mpbridge::bench::program("mosquitto_passwd"))
        .args(["-b", "-c"])
        .arg(&pw_file)
        .args(["device", "right-password"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let m = Mosquitto::start_with(&format!(
        "allow_anonymous false\npassword_file {}",
        pw_file.display()
    ));
    let (chain, key) = good_files(&c, "good");
    let (_r, addr) = relay(&rt, &chain, &key, tcp(&m));

    let mut o = opts(&c);
    let r = check(&rt, &format!("wxs://{DOMAIN}:{}/wrong", addr.port()), &o);
    assert_eq!(st(&r, "MP-WS-PATH"), CheckStatus::Fail);
    assert!(
        detail(&r, "MP-WS-PATH").contains("/mqtt answers 101"),
        "{}",
        detail(&r, "MP-WS-PATH")
    );
    assert!(
        r.get("MP-WS-PATH")
            .unwrap()
            .remedy
            .en
            .contains(&format!("wxs://{DOMAIN}:{}/mqtt", addr.port()))
    );
    assert_eq!(st(&r, "MP-MQTT-CONNECT"), CheckStatus::Skipped);

    let url = format!("wxs://{DOMAIN}:{}/mqtt", addr.port());
    o.username = Some("device".into());
    o.password = Some(mpbridge::config::Secret::new("wrong-password"));
    let r = check(&rt, &url, &o);
    assert_eq!(st(&r, "MP-MQTT-CONNECT"), CheckStatus::Fail);
    let d = detail(&r, "MP-MQTT-CONNECT");
    assert!(
        d.contains("CONNACK return code 5: refused: not authorized")
            || d.contains("CONNACK return code 4: refused: bad user name or password"),
        "{d}"
    );
    assert!(!d.contains("wrong-password"));
    assert_eq!(st(&r, "MP-MQTT-PIGGYBACK"), CheckStatus::Skipped);

    o.password = Some(mpbridge::config::Secret::new("right-password"));
    let r = check(&rt, &url, &o);
    assert_eq!(st(&r, "MP-MQTT-CONNECT"), CheckStatus::Pass);
}

#[test]
fn plain_ws_urls_and_bad_urls_say_why() {
    let rt = common::runtime();
    let o = Options {
        step_timeout: Duration::from_secs(2),
        ..Options::default()
    };
    let m = Mosquitto::start();
    let r = check(&rt, &format!("ws://127.0.0.1:{}/mqtt", m.ws_port), &o);
    assert_eq!(st(&r, "MP-URL-SCHEME"), CheckStatus::Fail);
    assert_eq!(st(&r, "MP-URL-HOST"), CheckStatus::Fail);
    assert_eq!(st(&r, "MP-TLS12"), CheckStatus::Skipped);
    assert!(detail(&r, "MP-TLS12").contains("no TLS"));
    // The WebSocket and MQTT parts still run over plain TCP.
    assert_eq!(st(&r, "MP-MQTT-CONNECT"), CheckStatus::Pass);

    let r = check(&rt, "https://example.com/mqtt", &o);
    assert_eq!(st(&r, "MP-URL-SCHEME"), CheckStatus::Fail);
    assert!(detail(&r, "MP-URL-SCHEME").contains("not a WebSocket URL"));
    assert_eq!(st(&r, "MP-TCP"), CheckStatus::Skipped);

    // Nothing listening: TCP fails, the rest is skipped with the reason.
    let r = check(&rt, &format!("wss://localhost:{}/mqtt", free_port()), &o);
    assert_eq!(st(&r, "MP-TCP"), CheckStatus::Fail);
    assert!(detail(&r, "MP-WS-UPGRADE").contains("TCP connection failed"));

    let root = tempfile::tempdir().unwrap();
    let out = mpbridge(root.path())
        .args(["check", "wss://a.com/mqtt", "--password-env", "X"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// A Mini Program folder with `files`, plus mqtt.js copied from the test harness's npm
/// packages when `dist` is given.
fn project(files: &[(&str, &str)], dist: Option<&str>) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        let p = dir.path().join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    if let Some(pkg) = dist {
        let src = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/miniprogram/node_modules")
            .join(pkg)
            .join("dist/mqtt.min.js");
        std::fs::create_dir_all(dir.path().join("utils")).unwrap();
        std::fs::copy(&src, dir.path().join("utils/mqtt.min.js"))
            .unwrap_or_else(|e| panic!("{}: {e} (run npm ci in tests/miniprogram)", src.display()));
    }
    dir
}

#[test]
fn project_scan_tells_mqttjs_versions_and_connect_mistakes() {
    use mpbridge::checks::project::scan;
    let by = |checks: &[mpbridge::checks::Check], id: &str| {
        checks
            .iter()
            .filter(|c| c.id == id)
            .map(|c| (c.status, c.detail.en.clone(), c.source.clone()))
            .collect::<Vec<_>>()
    };

    // mqtt.js 4.2.1's real dist, one good client.
    let p = project(
        &[(
            "app.js",
            "const mqtt = require('./utils/mqtt.min.js')\nApp({\n  onLaunch() {\n    this.client = mqtt.connect('wxs://mqtt.example.com/mqtt', { keepalive: 30 })\n  }\n})\n",
        )],
        Some("mqtt4"),
    );
    let checks = scan(p.path(), None);
    let v = by(&checks, "MP-PROJECT-MQTTJS");
    assert_eq!(v.len(), 1, "{checks:#?}");
    assert_eq!(v[0].0, CheckStatus::Pass, "{v:?}");
    assert_eq!(v[0].2.as_deref(), Some("utils/mqtt.min.js"));
    assert_eq!(by(&checks, "MP-PROJECT-URL")[0].0, CheckStatus::Pass);
    assert_eq!(
        by(&checks, "MP-PROJECT-URL")[0].2.as_deref(),
        Some("app.js:4")
    );
    assert_eq!(by(&checks, "MP-PROJECT-CLIENTS")[0].0, CheckStatus::Pass);
    assert_eq!(by(&checks, "MP-PROJECT-KEEPALIVE")[0].0, CheckStatus::Pass);

    // mqtt.js 5.16's real dist without the polyfills; wss:// URL; two clients; keepalive 60.
    let p = project(
        &[
            (
                "pages/a/a.js",
                "const mqtt = require('../../utils/mqtt.min.js')\nconst c = mqtt.connect('wss://mqtt.example.com:8084/mqtt')\n",
            ),
            (
                "pages/b/b.js",
                "const mqtt = require('../../utils/mqtt.min.js')\n\nconst d = mqtt.connect('wxs://mqtt.example.com', {\n  keepalive: 60,\n})\n",
            ),
        ],
        Some("mqtt5"),
    );
    let checks = scan(p.path(), Some(60));
    let v = by(&checks, "MP-PROJECT-MQTTJS");
    assert_eq!(v[0].0, CheckStatus::Fail);
    assert!(
        v[0].1.contains("mqtt.js 5.16.0") && v[0].1.contains("forceNativeWebSocket"),
        "{v:?}"
    );
    let urls = by(&checks, "MP-PROJECT-URL");
    assert_eq!(urls.len(), 2);
    assert_eq!(urls[0].0, CheckStatus::Fail, "wss:// in mqtt.js");
    assert_eq!(urls[0].2.as_deref(), Some("pages/a/a.js:2"));
    assert_eq!(urls[1].0, CheckStatus::Warn, "no path");
    assert_eq!(urls[1].2.as_deref(), Some("pages/b/b.js:3"));
    assert_eq!(by(&checks, "MP-PROJECT-CLIENTS")[0].0, CheckStatus::Warn);
    let ka = by(&checks, "MP-PROJECT-KEEPALIVE");
    assert!(
        ka.iter().all(|k| k.0 == CheckStatus::Fail),
        "1.5 × 60 > relay idle 60: {ka:?}"
    );

    // The same 5.x with the polyfill and forceNativeWebSocket.
    let p = project(
        &[(
            "app.js",
            "import 'abortcontroller-polyfill/dist/abortcontroller-polyfill-only'\nconst c = mqtt.connect('wxs://mqtt.example.com/mqtt', { forceNativeWebSocket: true, keepalive: 30 })\n",
        )],
        Some("mqtt5"),
    );
    assert_eq!(
        by(&scan(p.path(), None), "MP-PROJECT-MQTTJS")[0].0,
        CheckStatus::Pass
    );

    // Version classes from package.json (miniprogram_npm) and from bundle fingerprints.
    for (version, want) in [
        ("3.0.0", CheckStatus::Fail),
        ("4.0.1", CheckStatus::Fail),
        ("4.2.1", CheckStatus::Pass),
        ("4.3.7", CheckStatus::Fail),
        ("4.3.8", CheckStatus::Warn),
    ] {
        let p = project(
            &[(
                "miniprogram_npm/mqtt/package.json",
                &format!("{{\"name\":\"mqtt\",\"version\":\"{version}\"}}"),
            )],
            None,
        );
        let v = by(&scan(p.path(), None), "MP-PROJECT-MQTTJS");
        assert_eq!(v[0].0, want, "{version}: {v:?}");
    }
    let string_protocols =
        "function x(t,e){var n=wx.connectSocket({url:u,protocols:c});}var p=\"MQIsdp\";";
    let p = project(&[("utils/mqtt.js", string_protocols)], None);
    let v = by(&scan(p.path(), None), "MP-PROJECT-MQTTJS");
    assert_eq!(v[0].0, CheckStatus::Fail);
    assert!(v[0].1.contains("3.0.0–4.0.x"), "{v:?}");
    let flipped = "\"function\"!=typeof __webpack_require__?(c.wx=e(\"./wx\")):(c.mqtt=e(\"./tcp\"));wx.connectSocket({url:u,protocols:[c]});\"MQIsdp\"";
    let p = project(&[("utils/mqtt.js", flipped)], None);
    let v = by(&scan(p.path(), None), "MP-PROJECT-MQTTJS");
    assert!(v[0].1.contains("4.2.2–4.3.7"), "{v:?}");

    // None at all.
    let p = project(&[("app.js", "App({})\n")], None);
    let v = by(&scan(p.path(), None), "MP-PROJECT-MQTTJS");
    assert_eq!(v[0].0, CheckStatus::Warn);
    assert!(v[0].1.contains("No mqtt.js found"));

    // Through the CLI with an endpoint: project findings come after the probe's.
    let m = Mosquitto::start();
    let root = tempfile::tempdir().unwrap();
    let p = project(
        &[("app.js", "mqtt.connect('ws://x.example.com/mqtt')\n")],
        None,
    );
    let out = mpbridge(root.path())
        .args([
            "check",
            &format!("ws://127.0.0.1:{}/mqtt", m.ws_port),
            "--json",
            "--project",
        ])
        .arg(p.path())
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let ids: Vec<&str> = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&"MP-PROJECT-URL"), "{ids:?}");
    let url = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "MP-PROJECT-URL")
        .unwrap();
    assert_eq!(url["source"], "app.js:1");
    assert_eq!(url["status"], "fail");
}

#[test]
fn cancelling_skips_what_is_left() {
    let rt = common::runtime();
    // A server that accepts TCP and never answers TLS: the run waits in MP-TLS12.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let o = Options {
        step_timeout: Duration::from_secs(30),
        ..Options::default()
    };
    let cancel = tokio_util::sync::CancellationToken::new();
    let c2 = cancel.clone();
    rt.spawn(async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        c2.cancel();
    });
    let started = std::time::Instant::now();
    let r = rt.block_on(common::within(
        10,
        "a cancelled run",
        checks::run(&format!("wss://localhost:{port}/mqtt"), &o, |_| {}, cancel),
    ));
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(r.cancelled);
    assert_eq!(st(&r, "MP-TCP"), CheckStatus::Pass);
    assert_eq!(st(&r, "MP-MQTT-CONNECT"), CheckStatus::Skipped);
    assert!(detail(&r, "MP-MQTT-CONNECT").contains("cancelled"));
    drop(listener);
    let _ = openssl;
}

/// The MQTT password goes only to a server whose chain verifies for the host. Here the relay's
/// chain ends at a private root the check is not told about: the CONNECT goes without the
/// credentials (the relay's records show no user name), MP-MQTT-CONNECT says they were
/// withheld and why; --send-credentials-anyway sends them; --extra-root makes the chain verify.
#[test]
fn credentials_go_only_where_the_chain_verifies() {
    let rt = common::runtime();
    let c = Corpus::new();
    let pw_file = c.path("passwd");
    let out = std::process::Command::new(mpbridge::bench::program("mosquitto_passwd"))
        .args(["-b", "-c"])
        .arg(&pw_file)
        .args(["device", "right-password"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let m = Mosquitto::start_with(&format!(
        "allow_anonymous false\npassword_file {}",
        pw_file.display()
    ));
    let (chain, key) = good_files(&c, "good");
    let (r, addr) = relay(&rt, &chain, &key, tcp(&m));
    let url = format!("wxs://{DOMAIN}:{}/mqtt", addr.port());
    let users_seen = |r: &Relay| -> Vec<Option<String>> {
        let s = r.snapshot(100);
        s.live
            .iter()
            .chain(s.closed.iter())
            .filter_map(|x| x.connect.as_ref().map(|c| c.username.clone()))
            .collect()
    };

    let mut o = Options {
        extra_roots: Vec::new(),
        username: Some("device".into()),
        password: Some(mpbridge::config::Secret::new("right-password")),
        ..opts(&c)
    };
    let rep = check(&rt, &url, &o);
    assert_eq!(st(&rep, "MP-CERT-TRUST"), CheckStatus::Fail);
    assert_eq!(st(&rep, "MP-MQTT-CONNECT"), CheckStatus::Skipped);
    let d = detail(&rep, "MP-MQTT-CONNECT");
    assert!(
        d.starts_with("Credentials withheld: the certificate did not verify for"),
        "{d}"
    );
    assert!(d.contains("CONNACK 5") || d.contains("CONNACK 4"), "{d}");
    let seen = users_seen(&r);
    assert!(!seen.is_empty(), "the CONNECT reached the relay");
    assert!(
        seen.iter().all(Option::is_none),
        "no user name (and so no password) sent: {seen:?}"
    );

    o.send_credentials_anyway = true;
    let rep = check(&rt, &url, &o);
    assert_eq!(st(&rep, "MP-MQTT-CONNECT"), CheckStatus::Pass);
    assert!(
        users_seen(&r).contains(&Some("device".to_owned())),
        "sent when asked"
    );

    o.send_credentials_anyway = false;
    o.extra_roots = vec![root_der(&c)];
    let rep = check(&rt, &url, &o);
    assert_eq!(st(&rep, "MP-MQTT-CONNECT"), CheckStatus::Pass);
    assert!(
        !detail(&rep, "MP-MQTT-CONNECT").contains("withheld"),
        "a chain that verifies gets the credentials"
    );
}
