//! The side-by-side runner: every case against the embedded broker and a real mosquitto, a
//! table of both columns, and the rule that the embedded broker passes every case mosquitto
//! passes.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::{Duration, Instant};

use mpbridge::sandbox::broker::{BrokerOptions, EmbeddedBroker};

use crate::common::Mosquitto;

/// One broker under test.
#[allow(dead_code)] // `name` and `ws` are for the client-library cases
pub struct Target {
    pub name: &'static str,
    pub tcp: SocketAddr,
    pub ws: SocketAddr,
}

pub type CaseFuture<'a> = Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>>;
pub type CaseFn = for<'a> fn(&'a Target) -> CaseFuture<'a>;

pub struct Case {
    pub id: &'static str,
    pub run: CaseFn,
    /// mosquitto 2.0.11 (Debian 12) does not do this; the case is still run and shown.
    pub reference_fails: Option<&'static str>,
}

/// `cases![a, b, c]`: cases from async functions `fn(&Target) -> Result<(), String>`.
#[macro_export]
macro_rules! cases {
    ($($f:ident $(: $why:literal)?),* $(,)?) => {
        vec![$($crate::conformance::harness::Case {
            id: stringify!($f),
            run: {
                fn wrap<'a>(
                    t: &'a $crate::conformance::harness::Target,
                ) -> $crate::conformance::harness::CaseFuture<'a> {
                    Box::pin($f(t))
                }
                wrap
            },
            reference_fails: None $(.or(Some($why)))?,
        }),*]
    };
}

/// Both brokers, started fresh for one test.
pub struct Brokers {
    pub embedded: EmbeddedBroker,
    pub mosquitto: Mosquitto,
    _store: tempfile::TempDir,
}

impl Brokers {
    pub async fn start() -> Brokers {
        assert!(
            Mosquitto::available(),
            "mosquitto is needed for the conformance suite (apt-get install mosquitto; .ci/install-deps)"
        );
        let store = tempfile::tempdir().expect("temp dir");
        let embedded = crate::common::within(
            30,
            "embedded broker start",
            EmbeddedBroker::start(BrokerOptions {
                store: Some(store.path().join("broker")),
                ws: true,
                program: Some(env!("CARGO_BIN_EXE_mpbridge").into()),
            }),
        )
        .await
        .expect("the embedded broker starts");
        let mosquitto = tokio::task::spawn_blocking(Mosquitto::start)
            .await
            .expect("mosquitto starts");
        Brokers {
            embedded,
            mosquitto,
            _store: store,
        }
    }

    pub fn targets(&self) -> [Target; 2] {
        [
            Target {
                name: "embedded",
                tcp: self.embedded.tcp_addr(),
                ws: self.embedded.ws_addr().expect("ws listener"),
            },
            Target {
                name: "mosquitto",
                tcp: SocketAddr::from(([127, 0, 0, 1], self.mosquitto.tcp_port)),
                ws: SocketAddr::from(([127, 0, 0, 1], self.mosquitto.ws_port)),
            },
        ]
    }
}

/// One row of the table.
#[derive(Debug, Clone)]
pub struct Row {
    pub id: String,
    pub embedded: Result<(), String>,
    pub mosquitto: Result<(), String>,
    pub reference_fails: Option<&'static str>,
    pub secs: f64,
}

/// Runs every case on both targets (at most `parallel` cases at once, each under `limit`),
/// prints the table, and fails when the embedded broker misses a case mosquitto passes, or
/// when mosquitto fails a case it is expected to pass (the case itself would be wrong).
pub async fn run(
    title: &str,
    cases: Vec<Case>,
    targets: &[Target; 2],
    parallel: usize,
) -> Vec<Row> {
    let limit = Duration::from_secs(45);
    let gate = tokio::sync::Semaphore::new(parallel);
    async fn one(run: CaseFn, target: &Target, limit: Duration) -> Result<(), String> {
        match tokio::time::timeout(limit, run(target)).await {
            Ok(r) => r,
            Err(_) => Err(format!("no result within {} s", limit.as_secs())),
        }
    }
    let rows = futures_util::future::join_all(cases.iter().map(|case| {
        let gate = &gate;
        async move {
            let _permit = gate.acquire().await.expect("semaphore");
            let started = Instant::now();
            let (e, m) = tokio::join!(
                one(case.run, &targets[0], limit),
                one(case.run, &targets[1], limit)
            );
            Row {
                id: case.id.to_owned(),
                embedded: e,
                mosquitto: m,
                reference_fails: case.reference_fails,
                secs: started.elapsed().as_secs_f64(),
            }
        }
    }))
    .await;
    report(title, &rows);
    rows
}

fn mark(r: &Result<(), String>) -> &'static str {
    if r.is_ok() { "pass" } else { "FAIL" }
}

pub fn report(title: &str, rows: &[Row]) {
    let mut out =
        format!("\n## {title}\n\n| case | embedded | mosquitto 2.0 | s |\n|---|---|---|---|\n");
    for r in rows {
        out.push_str(&format!(
            "| {} | {} | {}{} | {:.1} |\n",
            r.id,
            mark(&r.embedded),
            mark(&r.mosquitto),
            r.reference_fails
                .map(|w| format!(" ({w})"))
                .unwrap_or_default(),
            r.secs
        ));
    }
    let e = rows.iter().filter(|r| r.embedded.is_ok()).count();
    let m = rows.iter().filter(|r| r.mosquitto.is_ok()).count();
    out.push_str(&format!(
        "| **total** | **{e}/{n}** | **{m}/{n}** | |\n",
        n = rows.len()
    ));
    for r in rows {
        if let Err(why) = &r.embedded {
            out.push_str(&format!("\nembedded · {}: {why}", r.id));
        }
        if let Err(why) = &r.mosquitto {
            out.push_str(&format!("\nmosquitto · {}: {why}", r.id));
        }
    }
    println!("{out}");
    // Also kept beside the build, for the closing note and for a human reading CI output.
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
    let file = dir.join(format!(
        "conformance-{}.md",
        title
            .to_lowercase()
            .replace(|c: char| !c.is_alphanumeric(), "-")
    ));
    std::fs::write(file, &out).ok();
}

/// The suite's rule, asserted after the table is printed.
pub fn assert_embedded_covers_reference(rows: &[Row]) {
    let mut problems = Vec::new();
    for r in rows {
        match (&r.embedded, &r.mosquitto, r.reference_fails) {
            (Err(e), Ok(()), _) => problems.push(format!(
                "{}: mosquitto passes, the embedded broker fails: {e}",
                r.id
            )),
            (_, Err(m), None) => problems.push(format!(
                "{}: mosquitto fails a case it is expected to pass (is the case right?): {m}",
                r.id
            )),
            _ => {}
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Runs a case script written for another client library (`program args… HOST PORTS…`)
/// against both targets; each prints one JSON object `{case: null | "why"}`.
pub async fn run_script(
    title: &str,
    program: &str,
    script: &std::path::Path,
    ports: fn(&Target) -> Vec<String>,
    targets: &[Target; 2],
) -> Vec<Row> {
    async fn one(
        program: &str,
        script: &std::path::Path,
        args: Vec<String>,
    ) -> std::collections::BTreeMap<String, Option<String>> {
        let out = tokio::process::Command::new(program)
            .arg(script)
            .args(&args)
            .kill_on_drop(true)
            .output();
        let out = tokio::time::timeout(Duration::from_secs(240), out)
            .await
            .unwrap_or_else(|_| panic!("{program} {} gave no result in 240 s", script.display()))
            .unwrap_or_else(|e| panic!("cannot run {program} ({e}); .ci/install-deps installs it"));
        let text = String::from_utf8_lossy(&out.stdout);
        serde_json::from_str(text.trim()).unwrap_or_else(|e| {
            panic!(
                "{} printed no result ({e}):\n{text}\n{}",
                script.display(),
                String::from_utf8_lossy(&out.stderr)
            )
        })
    }
    let started = Instant::now();
    let (e, m) = tokio::join!(
        one(program, script, ports(&targets[0])),
        one(program, script, ports(&targets[1]))
    );
    let secs = started.elapsed().as_secs_f64();
    let mut rows: Vec<Row> = e
        .iter()
        .map(|(id, res)| Row {
            id: id.clone(),
            embedded: res.clone().map_or(Ok(()), Err),
            mosquitto: match m.get(id) {
                Some(r) => r.clone().map_or(Ok(()), Err),
                None => Err("not run".into()),
            },
            reference_fails: None,
            secs,
        })
        .collect();
    rows.sort_by(|a, b| a.id.cmp(&b.id));
    report(title, &rows);
    rows
}
