//! The sandbox's local development CA and its `localhost` leaf certificate.
//!
//! Created once in `<data>/dev-ca/` and reused; the leaf is renewed when fewer than 30 days
//! remain. Files: `ca.pem` (trust this in a test client), `ca.key.pem`, `localhost.pem`
//! (the leaf alone: its issuer is the root itself, so the full chain is the leaf — a server does
//! not send the root) and `localhost.key.pem`.
//! Private keys are written with mode 0600.

use std::fs;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use time::{Duration, OffsetDateTime};

#[derive(Debug, thiserror::Error)]
pub enum DevCaError {
    #[error("cannot write the dev CA in {dir}: {source}")]
    Io {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot generate the dev certificate: {0}")]
    Generate(#[from] rcgen::Error),
}

/// Paths of the dev CA files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevCa {
    pub ca_cert: PathBuf,
    pub ca_key: PathBuf,
    pub leaf_chain: PathBuf,
    pub leaf_key: PathBuf,
}

impl DevCa {
    fn in_dir(dir: &Path) -> Self {
        Self {
            ca_cert: dir.join("ca.pem"),
            ca_key: dir.join("ca.key.pem"),
            leaf_chain: dir.join("localhost.pem"),
            leaf_key: dir.join("localhost.key.pem"),
        }
    }
}

const CA_NAME: &str = "mpbridge local development CA";
const LEAF_DAYS: i64 = 397;
const CA_DAYS: i64 = 3650;
const RENEW_BEFORE_DAYS: i64 = 30;

/// Makes sure the dev CA and leaf exist in `dir` and are usable; creates or renews them.
pub fn ensure(dir: &Path) -> Result<DevCa, DevCaError> {
    let io = |source| DevCaError::Io {
        dir: dir.to_path_buf(),
        source,
    };
    // The CA key lives here: the folder is the user's alone.
    crate::config::store::private_dir(dir).map_err(io)?;
    let files = DevCa::in_dir(dir);
    let now = OffsetDateTime::now_utc();

    let ca_ok = days_left(&files.ca_cert).is_some_and(|d| d > LEAF_DAYS)
        && fs::read_to_string(&files.ca_key)
            .ok()
            .and_then(|k| KeyPair::from_pem(&k).ok())
            .is_some();
    if !ca_ok {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, CA_NAME);
        dn.push(DnType::OrganizationName, "mpbridge");
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.not_before = now - Duration::days(1);
        params.not_after = now + Duration::days(CA_DAYS);
        let cert = params.self_signed(&key)?;
        write_secret(&files.ca_key, &key.serialize_pem()).map_err(io)?;
        fs::write(&files.ca_cert, cert.pem()).map_err(io)?;
        tracing::info!("created the dev CA in {}", dir.display());
        // A new CA invalidates the old leaf.
        fs::remove_file(&files.leaf_chain).ok();
    }

    // Earlier versions appended the CA to the leaf; those files are reissued.
    let leaf_ok = days_left(&files.leaf_chain).is_some_and(|d| d > RENEW_BEFORE_DAYS)
        && files.leaf_key.exists()
        && fs::read_to_string(&files.leaf_chain)
            .is_ok_and(|t| t.matches("BEGIN CERTIFICATE").count() == 1);
    if !leaf_ok {
        let ca_pem = fs::read_to_string(&files.ca_cert).map_err(io)?;
        let ca_key = KeyPair::from_pem(&fs::read_to_string(&files.ca_key).map_err(io)?)?;
        let issuer = Issuer::from_ca_cert_pem(&ca_pem, ca_key)?;
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(vec![
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
            "::1".to_owned(),
        ])?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "localhost");
        params.distinguished_name = dn;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.not_before = now - Duration::days(1);
        params.not_after = now + Duration::days(LEAF_DAYS);
        let cert = params.signed_by(&key, &issuer)?;
        write_secret(&files.leaf_key, &key.serialize_pem()).map_err(io)?;
        fs::write(&files.leaf_chain, cert.pem()).map_err(io)?;
        tracing::info!(
            "issued the dev certificate for localhost in {}",
            dir.display()
        );
    }
    Ok(files)
}

/// Days until the first certificate in a PEM file expires; `None` when unreadable.
pub fn days_left(path: &Path) -> Option<i64> {
    let pem = fs::read(path).ok()?;
    let (_, pem) = x509_parser::pem::parse_x509_pem(&pem).ok()?;
    let cert = pem.parse_x509().ok()?;
    let not_after = cert.validity().not_after.timestamp();
    Some((not_after - OffsetDateTime::now_utc().unix_timestamp()) / 86_400)
}

fn write_secret(path: &Path, contents: &str) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(path)?;
        f.write_all(contents.as_bytes())
    }
    #[cfg(not(unix))]
    {
        fs::write(path, contents)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_once_and_reused() {
        let root = tempfile::tempdir().unwrap();
        // A data folder made earlier, as umask 022 leaves it: open to others.
        let dir = root.path().join("dev-ca");
        fs::create_dir_all(&dir).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        }
        let a = ensure(&dir).unwrap();
        let first = fs::read_to_string(&a.leaf_chain).unwrap();
        assert_eq!(
            first.matches("BEGIN CERTIFICATE").count(),
            1,
            "the leaf alone"
        );
        assert!(days_left(&a.leaf_chain).unwrap() > 390);
        let b = ensure(&dir).unwrap();
        assert_eq!(a, b);
        assert_eq!(
            first,
            fs::read_to_string(&b.leaf_chain).unwrap(),
            "reused, not regenerated"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&a.leaf_key).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "private key readable by others: {mode:o}");
            let folder = a.leaf_key.parent().unwrap();
            let mode = fs::metadata(folder).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "key folder open to others: {mode:o}");
        }
    }

    #[test]
    fn leaf_with_the_ca_appended_is_reissued_alone() {
        let dir = tempfile::tempdir().unwrap();
        let a = ensure(dir.path()).unwrap();
        let leaf = fs::read_to_string(&a.leaf_chain).unwrap();
        let ca = fs::read_to_string(&a.ca_cert).unwrap();
        fs::write(&a.leaf_chain, format!("{leaf}{ca}")).unwrap();
        ensure(dir.path()).unwrap();
        let again = fs::read_to_string(&a.leaf_chain).unwrap();
        assert_eq!(again.matches("BEGIN CERTIFICATE").count(), 1);
        assert_ne!(again, leaf, "reissued");
    }

    #[test]
    fn broken_leaf_is_reissued() {
        let dir = tempfile::tempdir().unwrap();
        let a = ensure(dir.path()).unwrap();
        let ca = fs::read_to_string(&a.ca_cert).unwrap();
        fs::write(&a.leaf_chain, "garbage").unwrap();
        ensure(dir.path()).unwrap();
        assert!(days_left(&a.leaf_chain).is_some());
        assert_eq!(ca, fs::read_to_string(&a.ca_cert).unwrap(), "CA kept");
    }
}
