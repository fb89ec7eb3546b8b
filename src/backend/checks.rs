//! The checks service: runs the Mini Program compliance checks (each decided check pushed to
//! the panel as it comes), keeps the history and writes reports. Every job is spawned.

use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::Reply;
use super::files::{stamp, write_into};
use super::shared::{Service, Shared};
use crate::i18n::{L10n, Language};
use crate::relay::RelayConfig;

/// What the Checks panel asks for.
pub enum ChecksCmd {
    /// Run the Mini Program compliance checks; each decided check is pushed to `progress`,
    /// the run is saved to the history and answered.
    Run {
        job: ChecksJob,
        progress: watch::Sender<Vec<crate::checks::Check>>,
        cancel: CancellationToken,
        reply: Reply<Arc<crate::checks::Report>, L10n>,
    },
    /// The saved runs, newest first.
    History {
        reply: Reply<Vec<Arc<crate::checks::Report>>, L10n>,
    },
    /// Write a report as Markdown or JSON into `<data>/checks/`.
    SaveReport {
        report: Arc<crate::checks::Report>,
        markdown: bool,
        lang: Language,
        reply: Reply<PathBuf, L10n>,
    },
}

impl ChecksCmd {
    pub(super) fn refuse(self, why: &L10n) {
        let why = why.clone();
        match self {
            ChecksCmd::Run { reply, .. } => reply.send(Err(why)),
            ChecksCmd::History { reply } => reply.send(Err(why)),
            ChecksCmd::SaveReport { reply, .. } => reply.send(Err(why)),
        }
    }
}

/// What the Checks panel asks for.
#[derive(Debug, Clone, Default)]
pub struct ChecksJob {
    pub url: String,
    pub username: Option<String>,
    pub password: Option<crate::config::Secret>,
    pub keepalive_test: bool,
    pub project: Option<PathBuf>,
}

pub(super) struct ChecksService {
    shared: Shared,
    /// The sandbox's dev CA: it verifies the sandbox relay's chain for the other checks.
    sandbox_ca: Option<PathBuf>,
    /// The relay configuration in force, for the project's keepalive rule.
    relay: watch::Receiver<Option<Arc<RelayConfig>>>,
}

impl ChecksService {
    pub fn new(
        shared: Shared,
        sandbox_ca: Option<PathBuf>,
        relay: watch::Receiver<Option<Arc<RelayConfig>>>,
    ) -> Self {
        Self {
            shared,
            sandbox_ca,
            relay,
        }
    }

    fn history_file(&self) -> PathBuf {
        self.shared
            .paths
            .data_dir
            .join("checks")
            .join("history.jsonl")
    }

    fn options(&self, job: &ChecksJob) -> crate::checks::Options {
        let idle = self.relay.borrow().as_ref().map(|c| c.limits.idle_timeout);
        let mut o = crate::checks::Options {
            username: job.username.clone().filter(|u| !u.is_empty()),
            // MQTT 3.1.1 allows a password only with a user name.
            password: job
                .password
                .clone()
                .filter(|p| !p.is_empty() && job.username.as_ref().is_some_and(|u| !u.is_empty())),
            keepalive_test: job.keepalive_test,
            project: job.project.clone(),
            relay_idle_secs: idle.map(|d| d.as_secs()),
            ..Default::default()
        };
        if let Some(ca) = &self.sandbox_ca {
            o.extra_roots = super::certs::read_roots(ca);
            o.extra_roots_origin =
                crate::verdict::L10n::new("the sandbox's dev CA", "沙盒的开发 CA");
        }
        o
    }
}

impl Service for ChecksService {
    type Cmd = ChecksCmd;

    async fn handle(&mut self, cmd: ChecksCmd) {
        match cmd {
            ChecksCmd::Run {
                job,
                progress,
                cancel,
                reply,
            } => {
                let opts = self.options(&job);
                let history = self.history_file();
                let waker = self.shared.sink.waker();
                self.shared.handle.spawn(async move {
                    let report = crate::checks::run(
                        &job.url,
                        &opts,
                        |c| {
                            progress.send_modify(|v| v.push(c.clone()));
                            waker();
                        },
                        cancel,
                    )
                    .await;
                    let saved = report.clone();
                    let written = tokio::task::spawn_blocking(move || {
                        crate::checks::save_history(&history, &saved)
                    })
                    .await;
                    if let Ok(Err(e)) = written {
                        tracing::warn!("check history not saved: {e}");
                    }
                    reply.send(Ok(Arc::new(report)));
                });
            }
            ChecksCmd::History { reply } => {
                let history = self.history_file();
                self.shared.handle.spawn_blocking(move || {
                    let mut runs: Vec<_> = crate::checks::load_history(&history)
                        .into_iter()
                        .map(Arc::new)
                        .collect();
                    runs.reverse();
                    reply.send(Ok(runs));
                });
            }
            ChecksCmd::SaveReport {
                report,
                markdown,
                lang,
                reply,
            } => {
                let dir = self.shared.paths.data_dir.join("checks");
                self.shared.handle.spawn_blocking(move || {
                    let (name, text) = if markdown {
                        (
                            format!("report-{}.md", stamp()),
                            crate::checks::report::markdown(&report, lang),
                        )
                    } else {
                        (
                            format!("report-{}.json", stamp()),
                            serde_json::to_string_pretty(&*report).unwrap_or_default(),
                        )
                    };
                    reply.send(write_into(&dir, &name, &text));
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Requested;

    /// The options a run gets: no password without a user name (MQTT 3.1.1), the relay's idle
    /// timeout in force; the history starts empty and a saved report lands in `<data>/checks`.
    #[tokio::test]
    async fn options_history_and_saved_reports() {
        let dir = tempfile::tempdir().unwrap();
        let paths = crate::config::Paths {
            config_dir: dir.path().join("config"),
            data_dir: dir.path().join("data"),
        };
        let (shared, _, _) = Shared::for_test(paths);
        let (relay_tx, relay) = watch::channel(None);
        let mut checks = ChecksService::new(shared, None, relay);

        let job = ChecksJob {
            url: "wss://example.com/mqtt".into(),
            username: Some(String::new()),
            password: Some(crate::config::Secret::new("pw")),
            ..Default::default()
        };
        let o = checks.options(&job);
        assert!(o.username.is_none() && o.password.is_none());
        assert_eq!(o.relay_idle_secs, None);

        let ca = crate::sandbox::devca::ensure(&dir.path().join("ca")).unwrap();
        let mut cfg = crate::relay::RelayConfig::simple(
            "127.0.0.1:0".parse().unwrap(),
            &ca.leaf_chain,
            &ca.leaf_key,
            "/mqtt",
            crate::relay::Upstream::parse("tcp://127.0.0.1:9").unwrap(),
        )
        .unwrap();
        cfg.limits.idle_timeout = std::time::Duration::from_secs(42);
        relay_tx.send_replace(Some(Arc::new(cfg)));
        assert_eq!(checks.options(&job).relay_idle_secs, Some(42));

        let (req, reply) = Requested::new(None);
        checks.handle(ChecksCmd::History { reply }).await;
        assert!(req.wait().await.unwrap().is_empty());

        let report = Arc::new(crate::checks::Report {
            target: "wss://example.com/mqtt".into(),
            started: "2026-12-07T14:00:00Z".into(),
            checks: Vec::new(),
            summary: Default::default(),
            whitelist: None,
            snippet: None,
            cancelled: false,
        });
        let (req, reply) = Requested::new(None);
        checks
            .handle(ChecksCmd::SaveReport {
                report,
                markdown: false,
                lang: Language::En,
                reply,
            })
            .await;
        let path = req.wait().await.unwrap();
        assert!(path.starts_with(dir.path().join("data/checks")));
        let back: crate::checks::Report =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        assert_eq!(back.target, "wss://example.com/mqtt");
    }
}
