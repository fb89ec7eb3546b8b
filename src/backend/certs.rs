//! The certificates service: opens and judges certificate files, fetches a server's chain,
//! writes a repaired chain and hands it to the relay service. Every job is spawned.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::relay::RelayCmd;
use super::shared::{Service, Shared};
use super::{Reply, Requested};
use crate::i18n::{L10n, l};
use crate::relay::tls::CertBrief;

/// What the Certificates and Relay panels ask about certificates.
pub enum CertCmd {
    /// Name and expiry of a certificate file.
    Brief {
        path: PathBuf,
        reply: Reply<CertBrief, L10n>,
    },
    /// Open certificate files (and keys) and judge them (Certificates panel).
    Inspect {
        job: CertJob,
        reply: Reply<Arc<crate::certs::Report>, L10n>,
    },
    /// Fetch and judge the chain a TLS server presents.
    Fetch {
        target: String,
        sni: Option<String>,
        reply: Reply<Arc<crate::certs::Report>, L10n>,
    },
    /// Build fullchain.pem + privkey.pem from the files into `<data>/certs/<name>/`, and with
    /// `use_for_relay` make them the relay's certificate (saved to relay.toml).
    Repair {
        job: CertJob,
        use_for_relay: bool,
        reply: Reply<RepairDone, L10n>,
    },
}

impl CertCmd {
    pub(super) fn refuse(self, why: &L10n) {
        let why = why.clone();
        match self {
            CertCmd::Brief { reply, .. } => reply.send(Err(why)),
            CertCmd::Inspect { reply, .. } | CertCmd::Fetch { reply, .. } => reply.send(Err(why)),
            CertCmd::Repair { reply, .. } => reply.send(Err(why)),
        }
    }
}

/// What the Certificates panel opened.
#[derive(Debug, Clone, Default)]
pub struct CertJob {
    pub files: Vec<PathBuf>,
    pub password: Option<crate::config::Secret>,
    pub domain: Option<String>,
}

#[derive(Debug, Clone)]
pub struct RepairDone {
    pub fullchain: PathBuf,
    pub key: Option<PathBuf>,
    pub changes: Vec<crate::verdict::L10n>,
    /// With `use_for_relay`: what the relay said.
    pub relay: Option<L10n>,
}

pub(super) struct CertsService {
    shared: Shared,
    /// The sandbox's dev CA, explained as a supplied CA.
    sandbox_ca: Option<PathBuf>,
    relay: mpsc::Sender<RelayCmd>,
}

impl CertsService {
    pub fn new(shared: Shared, sandbox_ca: Option<PathBuf>, relay: mpsc::Sender<RelayCmd>) -> Self {
        Self {
            shared,
            sandbox_ca,
            relay,
        }
    }

    /// Trust for the Certificates panel: public roots, the OS store, and the sandbox's dev CA
    /// as a supplied (never public) CA, so the sandbox relay's own certificate is explained.
    fn request(&self, domain: Option<&String>) -> crate::certs::Request {
        let mut trust = crate::certs::Trust::default();
        if let Some(ca) = &self.sandbox_ca {
            trust.extra.extend(read_roots(ca));
        }
        crate::certs::Request {
            domain: domain.filter(|d| !d.trim().is_empty()).cloned(),
            trust,
            at: None,
        }
    }
}

/// The certificates in a file, as DER (nothing when it cannot be read).
pub(super) fn read_roots(path: &Path) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    let mut o = crate::certs::Opened::default();
    crate::certs::open::open_path(path, None, &mut o);
    o.certs.into_iter().map(|c| c.der).collect()
}

impl Service for CertsService {
    type Cmd = CertCmd;

    async fn handle(&mut self, cmd: CertCmd) {
        match cmd {
            CertCmd::Brief { path, reply } => {
                self.shared
                    .handle
                    .spawn_blocking(move || reply.send(crate::relay::tls::cert_brief(&path)));
            }
            CertCmd::Inspect { job, reply } => {
                let req = self.request(job.domain.as_ref());
                self.shared.handle.spawn_blocking(move || {
                    let password = job.password.as_ref().map(|p| p.expose().to_owned());
                    let (_, report) =
                        crate::certs::inspect_paths(&job.files, &[], password.as_deref(), &req);
                    reply.send(Ok(Arc::new(report)));
                });
            }
            CertCmd::Fetch { target, sni, reply } => {
                let req = self.request(None);
                self.shared.handle.spawn(async move {
                    let r = crate::certs::fetch::fetch_report(
                        &target,
                        sni.as_deref(),
                        req,
                        Duration::from_secs(10),
                    )
                    .await;
                    reply.send(r.map(Arc::new));
                });
            }
            CertCmd::Repair {
                job,
                use_for_relay,
                reply,
            } => {
                // Building a fullchain needs names and signatures, not the OS verifier
                // (which may go to the network on some systems).
                let mut req = self.request(job.domain.as_ref());
                req.trust.os_store = false;
                let data = self.shared.paths.data_dir.join("certs");
                let relay = use_for_relay.then(|| self.relay.clone());
                self.shared.handle.spawn(async move {
                    let written =
                        tokio::task::spawn_blocking(move || repair_files(&job, &req, &data))
                            .await
                            .map_err(|e| crate::i18n::quoted(&e.to_string()))
                            .and_then(|r| r);
                    reply.send(match (written, relay) {
                        (Ok(done), Some(relay)) => hand_to_relay(done, &relay).await,
                        (other, _) => other,
                    });
                });
            }
        }
    }
}

/// Asks the relay service to serve the repaired chain.
async fn hand_to_relay(
    mut done: RepairDone,
    relay: &mpsc::Sender<RelayCmd>,
) -> Result<RepairDone, L10n> {
    let Some(key) = done.key.clone() else {
        return Err(l(
            "open the private key too: the relay needs the certificate's key",
            "请同时打开私钥：中继需要证书对应的私钥",
        ));
    };
    let (answer, reply) = Requested::new(None);
    let cmd = RelayCmd::UseCert {
        cert: done.fullchain.clone(),
        key,
        reply,
    };
    relay
        .send(cmd)
        .await
        .map_err(|_| l("the relay service has stopped", "中继服务已停止"))?;
    done.relay = Some(answer.wait().await?);
    Ok(done)
}

/// Writes the repaired chain into `<data>/certs/<leaf name>/`.
fn repair_files(
    job: &CertJob,
    req: &crate::certs::Request,
    certs_dir: &Path,
) -> Result<RepairDone, L10n> {
    let password = job.password.as_ref().map(|p| p.expose().to_owned());
    let (opened, report) = crate::certs::inspect_paths(&job.files, &[], password.as_deref(), req);
    let leaf = report
        .chain
        .iter()
        .find(|e| e.role == crate::certs::Role::Leaf)
        .ok_or_else(|| l("no certificate was opened", "没有打开任何证书"))?;
    let name: String = leaf
        .info
        .common_name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let dir = certs_dir.join(if name.is_empty() {
        "certificate".into()
    } else {
        name
    });
    let w = crate::certs::repair::write(&opened, &report.repair, &dir)?;
    let changes = match &report.repair {
        crate::certs::RepairPlan::Ready { changes, .. } => changes.clone(),
        crate::certs::RepairPlan::Impossible { .. } => Vec::new(),
    };
    Ok(RepairDone {
        fullchain: w.fullchain,
        key: w.key,
        changes,
        relay: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn repair(certs: &mut CertsService, files: Vec<PathBuf>) -> Requested<RepairDone, L10n> {
        let (req, reply) = Requested::new(None);
        let job = CertJob {
            files,
            ..Default::default()
        };
        let cmd = CertCmd::Repair {
            job,
            use_for_relay: true,
            reply,
        };
        certs.handle(cmd).await;
        req
    }

    /// A repaired chain with its key is handed to the relay service, whose answer comes back
    /// with the files; without a key the relay is not asked and the panel is told why.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn repair_hands_the_chain_and_key_to_the_relay() {
        let dir = tempfile::tempdir().unwrap();
        let paths = crate::config::Paths {
            config_dir: dir.path().join("config"),
            data_dir: dir.path().join("data"),
        };
        let ca = crate::sandbox::devca::ensure(&dir.path().join("ca")).unwrap();
        let (shared, _, _) = Shared::for_test(paths);
        let (relay_tx, mut relay_rx) = mpsc::channel(4);
        let mut certs = CertsService::new(shared, Some(ca.ca_cert.clone()), relay_tx);

        let req = repair(&mut certs, vec![ca.leaf_chain.clone(), ca.leaf_key.clone()]).await;
        let relay = tokio::spawn(async move {
            match relay_rx.recv().await {
                Some(RelayCmd::UseCert { cert, key, reply }) => {
                    reply.send(Ok(L10n::same("reloaded")));
                    (cert, key)
                }
                _ => panic!("the relay was not asked to use the certificate"),
            }
        });
        let done = tokio::time::timeout(Duration::from_secs(20), req.wait())
            .await
            .unwrap()
            .unwrap();
        let (cert, key) = relay.await.unwrap();
        assert_eq!(done.relay.map(|r| r.en).as_deref(), Some("reloaded"));
        assert_eq!(cert, done.fullchain);
        assert_eq!(Some(key), done.key);
        assert!(
            done.fullchain
                .starts_with(dir.path().join("data/certs/localhost"))
        );

        let req = repair(&mut certs, vec![ca.leaf_chain.clone()]).await;
        let e = req.wait().await.unwrap_err();
        assert!(
            e.en.contains("private key") && e.zh.contains("私钥"),
            "{e:?}"
        );
    }
}
