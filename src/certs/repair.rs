//! Writing a correct `fullchain.pem` (leaf, then each intermediate, no root) and its key.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use rustls_pki_types::PrivateKeyDer;

use super::{Opened, RepairPlan};
use crate::i18n::L10n;

/// A PEM block with 64-column lines.
pub fn pem_block(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

pub fn key_pem(key: &PrivateKeyDer<'_>) -> String {
    let label = match key {
        PrivateKeyDer::Pkcs1(_) => "RSA PRIVATE KEY",
        PrivateKeyDer::Sec1(_) => "EC PRIVATE KEY",
        _ => "PRIVATE KEY",
    };
    pem_block(label, key.secret_der())
}

/// The files written by [`write`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub fullchain: PathBuf,
    pub key: Option<PathBuf>,
}

/// The fullchain text for a ready plan.
pub fn fullchain_pem(opened: &Opened, order: &[usize]) -> String {
    order
        .iter()
        .filter_map(|&i| opened.certs.get(i))
        .map(|c| pem_block("CERTIFICATE", c.der.as_ref()))
        .collect()
}

/// Writes `fullchain.pem` and, when the plan has the leaf's key, `privkey.pem` (mode 0600)
/// into `dir` (created 0700 when it holds a key), each atomically.
pub fn write(opened: &Opened, plan: &RepairPlan, dir: &Path) -> Result<Written, L10n> {
    let (order, key) = match plan {
        RepairPlan::Ready { order, key, .. } => (order, key),
        RepairPlan::Impossible { reason } => return Err(reason.clone()),
    };
    // A folder this creates for a private key is the user's alone (0700); an existing one is
    // the user's choice and left as it is.
    let created = if dir.exists() {
        Ok(())
    } else if key.is_some() {
        crate::config::store::private_dir(dir)
    } else {
        std::fs::create_dir_all(dir)
    };
    created.map_err(|e| {
        let e = crate::i18n::io_error(&e);
        L10n::new(
            format!("cannot create {}: {}", dir.display(), e.en),
            format!("无法创建 {}：{}", dir.display(), e.zh),
        )
    })?;
    let fullchain = dir.join("fullchain.pem");
    write_atomic(&fullchain, fullchain_pem(opened, order).as_bytes(), false)?;
    let key_path = match key.and_then(|k| opened.keys.get(k)) {
        Some(k) => {
            let p = dir.join("privkey.pem");
            write_atomic(&p, key_pem(&k.der).as_bytes(), true)?;
            Some(p)
        }
        None => None,
    };
    Ok(Written {
        fullchain,
        key: key_path,
    })
}

fn write_atomic(path: &Path, bytes: &[u8], secret: bool) -> Result<(), L10n> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let err = |e: std::io::Error| {
        let e = crate::i18n::io_error(&e);
        L10n::new(
            format!("cannot write {}: {}", path.display(), e.en),
            format!("无法写入 {}：{}", path.display(), e.zh),
        )
    };
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(err)?;
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::PermissionsExt as _;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(err)?;
    }
    #[cfg(not(unix))]
    let _ = secret;
    tmp.write_all(bytes).map_err(err)?;
    tmp.as_file().sync_all().map_err(err)?;
    tmp.persist(path).map_err(|e| err(e.error))?;
    Ok(())
}
