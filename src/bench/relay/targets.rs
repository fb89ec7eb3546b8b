//! The processes `bench relay` measures and how to start each one fresh: mosquitto behind
//! everything, the relay per route and worker count, nginx (the seed's configuration) per
//! worker count. The crowd part starts a fresh proxy for every measurement, so memory is
//! counted in processes that carried no load before.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::super::procs::{Proc, free_port, program, spawn_mosquitto, wait_listening};

pub(super) struct Pki {
    pub ca: PathBuf,
    pub chain: PathBuf,
    pub key: PathBuf,
}

/// A throwaway CA and a `localhost` leaf (ECDSA P-256, as rcgen generates) signed by it.
pub(super) fn make_pki(dir: &Path) -> anyhow::Result<Pki> {
    use rcgen::{CertificateParams, KeyPair};
    let (ca, issuer) = super::super::procs::test_ca(dir, "mpbridge bench CA")?;
    let key = KeyPair::generate()?;
    let leaf = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])?
        .signed_by(&key, &issuer)?;
    let p = Pki {
        ca,
        chain: dir.join("chain.pem"),
        key: dir.join("key.pem"),
    };
    std::fs::write(&p.chain, leaf.pem())?;
    std::fs::write(&p.key, key.serialize_pem())?;
    Ok(p)
}

/// One measured endpoint.
pub(super) struct Target {
    pub name: String,
    /// Its name for `--targets`.
    pub key: String,
    pub addr: SocketAddr,
    /// The WebSocket path (the relay has one route per upstream kind).
    pub path: &'static str,
    /// The process whose memory and CPU time count for this target (children included).
    pub pid: u32,
}

/// mosquitto's listeners: TCP (the relay's tcp:// route), plain WebSockets (behind the
/// proxies), WSS (direct).
#[derive(Clone, Copy)]
pub(super) struct Ports {
    pub tcp: u16,
    pub ws: u16,
    pub wss: u16,
}

pub(super) fn start_mosquitto(dir: &Path, pki: &Pki) -> anyhow::Result<(Ports, Proc)> {
    // A port found free may be taken again before mosquitto binds it (a crowd's thousands of
    // client sockets draw from the same range): mosquitto then exits, and it gets fresh ports.
    let mut last = None;
    for _ in 0..3 {
        match start_mosquitto_once(dir, pki) {
            Ok(started) => return Ok(started),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| anyhow::anyhow!("mosquitto did not start")))
}

fn start_mosquitto_once(dir: &Path, pki: &Pki) -> anyhow::Result<(Ports, Proc)> {
    let ports = Ports {
        tcp: free_port()?,
        ws: free_port()?,
        wss: free_port()?,
    };
    let conf = dir.join(format!("mosquitto-{}.conf", ports.tcp));
    std::fs::write(
        &conf,
        format!(
            "per_listener_settings false\nallow_anonymous true\npersistence false\nmax_queued_messages 100000\nset_tcp_nodelay true\nlog_dest none\nlistener {} 127.0.0.1\nlistener {} 127.0.0.1\nprotocol websockets\nsocket_domain ipv4\nlistener {} 127.0.0.1\nprotocol websockets\nsocket_domain ipv4\ncertfile {}\nkeyfile {}\n",
            ports.tcp,
            ports.ws,
            ports.wss,
            pki.chain.display(),
            pki.key.display()
        ),
    )?;
    let mut proc = spawn_mosquitto(&conf)?;
    for p in [ports.tcp, ports.ws, ports.wss] {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
        while std::net::TcpStream::connect(("127.0.0.1", p)).is_err() {
            if let Ok(Some(status)) = proc.child.try_wait() {
                anyhow::bail!("mosquitto exited ({status}) before listening on 127.0.0.1:{p}");
            }
            if std::time::Instant::now() > deadline {
                anyhow::bail!("mosquitto did not listen on 127.0.0.1:{p} within 15 s");
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
    Ok((ports, proc))
}

/// Which upstream a relay route uses.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Route {
    /// mosquitto's WebSocket listener: frames copied as bytes, the seed's deployment.
    Ws,
    /// mosquitto's MQTT port: WebSocket frames become the MQTT byte stream, a translation
    /// nginx cannot do (its stream module has no WebSocket, its http module no raw upstream).
    Tcp,
}

/// A proxy to start.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Proxy {
    /// `mpbridge relay --workers N` on one route.
    Relay { route: Route, workers: u16 },
    /// nginx with the seed's config; `None`: the packaged `worker_processes auto`.
    Nginx { workers: Option<u16> },
}

impl Proxy {
    /// Its name for `--targets` and its column heading.
    pub fn key_and_name(&self, default_workers: u16) -> (String, String) {
        match *self {
            Proxy::Relay { route, workers } => {
                let r = if route == Route::Ws { "ws" } else { "tcp" };
                if workers == default_workers {
                    (format!("relay-{r}"), format!("mpbridge {r}"))
                } else {
                    (
                        format!("relay-{r}-{workers}"),
                        format!("mpbridge {r} ×{workers}"),
                    )
                }
            }
            Proxy::Nginx { workers: None } => ("nginx".into(), "nginx".into()),
            Proxy::Nginx { workers: Some(n) } => (format!("nginx-{n}"), format!("nginx ×{n}")),
        }
    }
}

/// Starts proxies in `dir` in front of mosquitto.
pub(super) struct Starter<'a> {
    pub dir: &'a Path,
    pub pki: &'a Pki,
    pub ports: Ports,
    /// The relay's worker count that counts as its default (`--workers` of the bench).
    pub default_workers: u16,
    /// The relay's `--setup-threads`, when not its default.
    pub setup_threads: Option<u16>,
    /// Another mpbridge build whose relay to measure (a before/after table); its limits
    /// then lift the per-IP cap that older builds had by default.
    pub relay_bin: Option<PathBuf>,
}

impl Starter<'_> {
    /// Starts `proxy`; with `min_workers`, a relay gets at least that many processes (one
    /// process cannot hold every descriptor of a large crowd under a low limit).
    pub fn start(&self, proxy: Proxy, min_workers: u16) -> anyhow::Result<(Target, Proc)> {
        self.start_before(proxy, min_workers, self.ports)
    }

    /// The same in front of the mosquitto listening on `ports`.
    pub fn start_before(
        &self,
        proxy: Proxy,
        min_workers: u16,
        ports: Ports,
    ) -> anyhow::Result<(Target, Proc)> {
        let port = free_port()?;
        let (key, name) = proxy.key_and_name(self.default_workers);
        let (child, path, stop) = match proxy {
            Proxy::Relay { route, workers } => {
                let (path, child) = self.relay(route, workers.max(min_workers), port, ports)?;
                (child, path, None)
            }
            Proxy::Nginx { workers } => {
                let (child, stop) = self.nginx(workers, port, ports)?;
                (child, "/mqtt", Some(stop))
            }
        };
        let target = Target {
            name,
            key,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            path,
            pid: child.id(),
        };
        let proc = Proc {
            name: if matches!(proxy, Proxy::Nginx { .. }) {
                "nginx"
            } else {
                "relay"
            },
            child,
            stop,
        };
        wait_listening(port, &target.name)?;
        Ok((target, proc))
    }

    /// The relay with the configuration a user writes for one route; the per-IP cap is off
    /// because every bench client shares 127.0.0.1 (as the relay's defaults leave it).
    fn relay(
        &self,
        route: Route,
        workers: u16,
        port: u16,
        ports: Ports,
    ) -> anyhow::Result<(&'static str, std::process::Child)> {
        let (path, upstream) = match route {
            Route::Ws => ("/mqtt", format!("ws://127.0.0.1:{}/mqtt", ports.ws)),
            Route::Tcp => ("/mqtt-tcp", format!("tcp://127.0.0.1:{}", ports.tcp)),
        };
        let conf = self.dir.join(format!("relay-{port}.toml"));
        let limits = if self.relay_bin.is_some() {
            "[limits]\nmax_connections_per_ip = 100000\n"
        } else {
            ""
        };
        std::fs::write(
            &conf,
            format!(
                "[listen]\naddr = \"127.0.0.1:{port}\"\ncert = \"{}\"\nkey = \"{}\"\n[[route]]\npath = \"{path}\"\nupstream = [\"{upstream}\"]\n{limits}",
                self.pki.chain.display(),
                self.pki.key.display(),
            ),
        )?;
        let bin = match &self.relay_bin {
            Some(b) => b.clone(),
            None => std::env::current_exe()?,
        };
        let mut cmd = Command::new(bin);
        cmd.args(["relay", "--workers", &workers.to_string()]);
        if let Some(n) = self.setup_threads {
            cmd.args(["--setup-threads", &n.to_string()]);
        }
        let child = cmd
            .arg("--config")
            .arg(&conf)
            .env("MPBRIDGE_LOG", "warn")
            .env("MPBRIDGE_DATA_DIR", self.dir.join("data"))
            .env("MPBRIDGE_CONFIG_DIR", self.dir.join("config"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        Ok((path, child))
    }

    /// nginx with the seed's reverse-proxy block; its own prefix folder per instance.
    fn nginx(
        &self,
        workers: Option<u16>,
        port: u16,
        ports: Ports,
    ) -> anyhow::Result<(std::process::Child, Command)> {
        let d = self.dir.join(format!("nginx-{port}"));
        std::fs::create_dir_all(d.join("logs"))?;
        let conf = d.join("nginx.conf");
        let workers = workers.map_or("auto".to_owned(), |n| n.to_string());
        std::fs::write(
            &conf,
            format!(
                "daemon off;\nuser root;\nworker_processes {workers};\nworker_rlimit_nofile 20000;\npid {d}/nginx.pid;\nerror_log {d}/logs/error.log;\nevents {{ worker_connections 20000; }}\nhttp {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n  server {{\n    listen 127.0.0.1:{port} ssl;\n    ssl_certificate {c};\n    ssl_certificate_key {k};\n    ssl_protocols TLSv1.2 TLSv1.3;\n    location /mqtt {{\n      proxy_pass http://127.0.0.1:{ws}/mqtt;\n      proxy_http_version 1.1;\n      proxy_set_header Upgrade $http_upgrade;\n      proxy_set_header Connection \"upgrade\";\n      proxy_set_header Host $host;\n      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n      proxy_read_timeout 300s;\n      proxy_send_timeout 300s;\n    }}\n  }}\n}}\n",
                d = d.display(),
                c = self.pki.chain.display(),
                k = self.pki.key.display(),
                ws = ports.ws,
            ),
        )?;
        let child = Command::new(program("nginx"))
            .arg("-c")
            .arg(&conf)
            .arg("-p")
            .arg(&d)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let mut stop = Command::new(program("nginx"));
        stop.arg("-c")
            .arg(&conf)
            .arg("-p")
            .arg(&d)
            .args(["-s", "stop"]);
        Ok((child, stop))
    }
}

/// Whether nginx is installed.
pub(super) fn nginx_installed() -> bool {
    Command::new(program("nginx"))
        .arg("-v")
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// This process's hard limit on open descriptors (children inherit it).
pub(super) fn descriptor_limit() -> u64 {
    std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(4))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(1024)
}

/// Worker processes a relay needs to hold `n` connections: two descriptors each (client and
/// broker) plus some headroom, under the per-process limit.
pub(super) fn workers_for(n: usize, limit: u64) -> u16 {
    let per_process = limit.saturating_sub(256).max(256);
    let need = (2 * n as u64).div_ceil(per_process);
    u16::try_from(need.max(1)).unwrap_or(u16::MAX)
}
