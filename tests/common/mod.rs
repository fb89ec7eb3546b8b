//! Shared test helpers: temp folders, timeouts, processes killed on drop.
#![allow(dead_code)]

pub mod corpus;

use std::future::Future;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Fails the test with `what` when `fut` takes longer than `secs`.
pub async fn within<T>(secs: u64, what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(Duration::from_secs(secs), fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {secs} s: {what}"),
    }
}

/// A child process that is killed when the test ends, however it ends.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        self.0.kill().ok();
        self.0.wait().ok();
    }
}

/// The mpbridge binary with its folders inside `root`.
pub fn mpbridge(root: &std::path::Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_mpbridge"));
    c.env("MPBRIDGE_CONFIG_DIR", root.join("config"))
        .env("MPBRIDGE_DATA_DIR", root.join("data"))
        .env_remove("MPBRIDGE_LOG")
        .stdin(Stdio::null());
    c
}

/// A multi-thread runtime like the one `main` owns.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// A free TCP port on 127.0.0.1 (bound and released; the caller binds it right away).
/// Picked below the kernel's ephemeral range (32768 and up here), from which every outgoing
/// connection takes its local port: a port picked there can be taken by some client of a test
/// running in parallel before the broker binds it. Never the same port twice in one test
/// process.
pub fn free_port() -> u16 {
    static TAKEN: std::sync::Mutex<std::collections::BTreeSet<u16>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    let mut taken = TAKEN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    for _ in 0..2000 {
        let p: u16 = rand::random_range(20_000..32_000);
        if !taken.contains(&p) && std::net::TcpListener::bind(("127.0.0.1", p)).is_ok() {
            taken.insert(p);
            return p;
        }
    }
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A real mosquitto (Debian package) on free loopback ports: MQTT TCP and WebSockets.
pub struct Mosquitto {
    pub tcp_port: u16,
    pub ws_port: u16,
    pub dir: tempfile::TempDir,
    child: Option<KillOnDrop>,
    extra: String,
}

impl Mosquitto {
    pub fn available() -> bool {
        std::process::Command::new(mpbridge::bench::program("mosquitto"))
            .arg("-h")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok()
    }

    /// Starts mosquitto; `extra` is appended to its config (e.g. password files).
    pub fn start_with(extra: &str) -> Self {
        let mut m = Mosquitto {
            tcp_port: free_port(),
            ws_port: free_port(),
            dir: tempfile::tempdir().unwrap(),
            child: None,
            extra: extra.to_owned(),
        };
        m.restart();
        m
    }

    pub fn start() -> Self {
        Self::start_with("")
    }

    /// (Re)starts the process on the same ports.
    pub fn restart(&mut self) {
        self.stop();
        let conf = self.dir.path().join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                "per_listener_settings false\nallow_anonymous true\npersistence false\nlog_dest stderr\nlog_type error\nlistener {} 127.0.0.1\nlistener {} 127.0.0.1\nprotocol websockets\nsocket_domain ipv4\n{}\n",
                self.tcp_port, self.ws_port, self.extra
            ),
        )
        .unwrap();
        let child = Command::new(mpbridge::bench::program("mosquitto"))
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto (apt-get install mosquitto)");
        self.child = Some(KillOnDrop(child));
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        for port in [self.tcp_port, self.ws_port] {
            while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
                assert!(
                    std::time::Instant::now() < deadline,
                    "mosquitto did not listen on {port}"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    pub fn stop(&mut self) {
        self.child = None;
    }

    /// Freezes the process (SIGSTOP): its sockets still take bytes, it answers nothing.
    pub fn freeze(&self) {
        self.signal("-STOP");
    }

    fn signal(&self, sig: &str) {
        if let Some(c) = &self.child {
            let ok = Command::new("kill")
                .arg(sig)
                .arg(c.0.id().to_string())
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            assert!(ok, "kill {sig} mosquitto");
        }
    }
}

/// A test CA and a `localhost` leaf (SAN localhost, 127.0.0.1) written as PEM files.
pub struct TestPki {
    pub dir: tempfile::TempDir,
    pub ca: std::path::PathBuf,
    pub chain: std::path::PathBuf,
    pub key: std::path::PathBuf,
}

impl TestPki {
    pub fn new() -> Self {
        Self::with_names(&["localhost", "127.0.0.1"])
    }

    pub fn with_names(names: &[&str]) -> Self {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
        let dir = tempfile::tempdir().unwrap();
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "mpbridge test CA");
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);
        let leaf_key = KeyPair::generate().unwrap();
        let mut leaf =
            CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        leaf.distinguished_name.push(DnType::CommonName, names[0]);
        let leaf_cert = leaf.signed_by(&leaf_key, &issuer).unwrap();
        let ca = dir.path().join("ca.pem");
        let chain = dir.path().join("chain.pem");
        let key = dir.path().join("key.pem");
        std::fs::write(&ca, ca_cert.pem()).unwrap();
        std::fs::write(&chain, leaf_cert.pem()).unwrap();
        std::fs::write(&key, leaf_key.serialize_pem()).unwrap();
        TestPki {
            dir,
            ca,
            chain,
            key,
        }
    }
}

/// Waits until something accepts TCP connections on 127.0.0.1:`port`.
pub fn wait_listening(port: u16, secs: u64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "nothing listened on 127.0.0.1:{port} within {secs} s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A real nginx (Debian package) with one TLS server on a free loopback port; `location` is the
/// body of `location /mqtt { … }`.
pub struct Nginx {
    pub port: u16,
    pub dir: tempfile::TempDir,
    _child: KillOnDrop,
}

impl Nginx {
    pub fn available() -> bool {
        Command::new(mpbridge::bench::program("nginx"))
            .arg("-v")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok()
    }

    pub fn start(cert: &std::path::Path, key: &std::path::Path, location: &str) -> Self {
        Self::start_http(|port, _| {
            format!(
                "  access_log off;\n  server {{\n    listen 127.0.0.1:{port} ssl;\n    ssl_certificate {c};\n    \
                 ssl_certificate_key {k};\n    ssl_protocols TLSv1.2 TLSv1.3;\n    location /mqtt {{\n{location}\n    }}\n  }}\n",
                c = cert.display(),
                k = key.display(),
            )
        })
    }

    /// nginx with `body(port, dir)` as the inside of its `http {}` block: servers, log formats
    /// (write logs under `dir`); it must listen on 127.0.0.1:`port`.
    pub fn start_http(body: impl FnOnce(u16, &std::path::Path) -> String) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let d = dir.path().display();
        std::fs::create_dir_all(dir.path().join("logs")).unwrap();
        // Workers run as nobody unless told otherwise; the test files are private to us.
        let root = Command::new("id")
            .arg("-u")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
            .unwrap_or(false);
        let conf = format!(
            "daemon off;\n{user}worker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/logs/error.log;\n\
             events {{ worker_connections 256; }}\nhttp {{\n  client_body_temp_path {d}/body;\n  \
             proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  \
             scgi_temp_path {d}/scgi;\n{body}}}\n",
            user = if root { "user root;\n" } else { "" },
            body = body(port, dir.path()),
        );
        let path = dir.path().join("nginx.conf");
        std::fs::write(&path, conf).unwrap();
        let child = Command::new(mpbridge::bench::program("nginx"))
            .arg("-c")
            .arg(&path)
            .arg("-p")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nginx (apt-get install nginx)");
        let child = KillOnDrop(child);
        wait_listening(port, 10);
        Nginx {
            port,
            dir,
            _child: child,
        }
    }
}

impl Drop for Nginx {
    /// `nginx -s stop` first: the master stops its workers. Killing the master alone would
    /// leave a worker holding the port.
    fn drop(&mut self) {
        let conf = self.dir.path().join("nginx.conf");
        Command::new(mpbridge::bench::program("nginx"))
            .arg("-c")
            .arg(&conf)
            .arg("-p")
            .arg(self.dir.path())
            .args(["-s", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .ok();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self._child.0.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// mosquitto configuration lines (for `Mosquitto::start_with`) that let anonymous clients
/// subscribe only under `allowed` (mosquitto's dynamic security plugin, which judges a
/// SUBSCRIBE when it arrives: SUBACK 0x80 in 3.1.1, 0x87 in MQTT 5 for anything else).
/// `dir` holds the plugin's file.
#[allow(dead_code)] // not every test binary uses it
pub fn only_subscribe_under(dir: &std::path::Path, allowed: &str) -> String {
    let file = dir.join("dynamic-security.json");
    std::fs::write(
        &file,
        serde_json::json!({
            "defaultACLAccess": {
                "publishClientSend": true,
                "publishClientReceive": true,
                "subscribe": false,
                "unsubscribe": true
            },
            "clients": [],
            "groups": [{"groupname": "anonymous", "roles": [{"rolename": "reader"}]}],
            "roles": [{
                "rolename": "reader",
                "acls": [{"acltype": "subscribePattern", "topic": allowed, "priority": 0, "allow": true}]
            }],
            "anonymousGroup": "anonymous"
        })
        .to_string(),
    )
    .unwrap();
    let plugin = [
        "/usr/lib/x86_64-linux-gnu",
        "/usr/lib/aarch64-linux-gnu",
        "/usr/lib",
    ]
    .iter()
    .map(|d| std::path::Path::new(d).join("mosquitto_dynamic_security.so"))
    .find(|p| p.exists())
    .expect("mosquitto_dynamic_security.so (Debian package mosquitto)");
    format!(
        "plugin {}\nplugin_opt_config_file {}",
        plugin.display(),
        file.display()
    )
}

/// A test that cannot run here: a failure under CI (`CI` set, as `.ci/run` does), else a line
/// saying why it was skipped. Call and return.
pub fn missing(what: &str) {
    assert!(
        std::env::var_os("CI").is_none(),
        "{what} (.ci/install-deps installs it)"
    );
    println!("SKIPPED: {what}");
}

/// The Python that has the test clients (paho-mqtt 2, amqtt): the virtual environment
/// `.ci/install-deps` makes in `tests/.venv` (Debian 12 forbids pip into its own Python),
/// else `python3` from PATH.
pub fn python() -> String {
    let venv = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/.venv/bin/python3");
    if venv.is_file() {
        venv.display().to_string()
    } else {
        "python3".to_owned()
    }
}
