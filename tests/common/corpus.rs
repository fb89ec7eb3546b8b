//! A certificate corpus generated at test time with rcgen and the `openssl` command line: a
//! private root → intermediate → leaves, and every broken variant users bring.

use std::path::{Path, PathBuf};
use std::process::Command;

use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use time::{Duration, OffsetDateTime};

pub const DOMAIN: &str = "a.example.com";
pub const AIA_URL: &str = "http://ca.example.test/intermediate.crt";
pub const PASSWORD: &str = "s3cret-pass";

pub struct Corpus {
    pub dir: tempfile::TempDir,
    root_key: KeyPair,
    root_params: CertificateParams,
    inter_key: KeyPair,
    inter_params: CertificateParams,
    pub root_pem: String,
    pub inter_pem: String,
}

/// AuthorityInfoAccess with one caIssuers URL (rcgen has no builder for it).
fn aia_extension(url: &str) -> CustomExtension {
    let mut uri = vec![0x86, url.len() as u8];
    uri.extend_from_slice(url.as_bytes());
    // accessMethod id-ad-caIssuers 1.3.6.1.5.5.7.48.2
    let oid = [0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x02];
    let mut desc = vec![0x30, (oid.len() + uri.len()) as u8];
    desc.extend_from_slice(&oid);
    desc.extend_from_slice(&uri);
    let mut seq = vec![0x30, desc.len() as u8];
    seq.extend_from_slice(&desc);
    CustomExtension::from_oid_content(&[1, 3, 6, 1, 5, 5, 7, 1, 1], seq)
}

pub struct Leaf {
    pub pem: String,
    pub key_pem: String,
}

pub struct LeafSpec<'a> {
    pub names: &'a [&'a str],
    pub not_before_days: i64,
    pub not_after_days: i64,
    pub eku: Vec<ExtendedKeyUsagePurpose>,
    pub self_signed: bool,
}

impl Default for LeafSpec<'_> {
    fn default() -> Self {
        LeafSpec {
            names: &[DOMAIN, "www.a.example.com", "127.0.0.1"],
            not_before_days: -1,
            not_after_days: 90,
            eku: vec![ExtendedKeyUsagePurpose::ServerAuth],
            self_signed: false,
        }
    }
}

impl Corpus {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let now = OffsetDateTime::now_utc();
        let root_key = KeyPair::generate().unwrap();
        let mut root_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        root_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        root_params
            .distinguished_name
            .push(DnType::CommonName, "mpbridge Test Root CA");
        root_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        root_params.not_before = now - Duration::days(365);
        root_params.not_after = now + Duration::days(3650);
        let root = root_params.self_signed(&root_key).unwrap();

        let inter_key = KeyPair::generate().unwrap();
        let mut inter_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        inter_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        inter_params
            .distinguished_name
            .push(DnType::CommonName, "mpbridge Test Intermediate CA");
        inter_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        inter_params.not_before = now - Duration::days(300);
        inter_params.not_after = now + Duration::days(1800);
        let inter = inter_params
            .signed_by(&inter_key, &Issuer::from_params(&root_params, &root_key))
            .unwrap();
        let c = Corpus {
            dir,
            root_pem: root.pem(),
            inter_pem: inter.pem(),
            root_key,
            root_params,
            inter_key,
            inter_params,
        };
        c.write("root.pem", &c.root_pem);
        c.write("inter.pem", &c.inter_pem);
        c.write("inter.key", &c.inter_key.serialize_pem());
        c
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    pub fn leaf(&self, spec: LeafSpec<'_>) -> Leaf {
        let now = OffsetDateTime::now_utc();
        let key = KeyPair::generate().unwrap();
        let mut p =
            CertificateParams::new(spec.names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        p.distinguished_name.push(DnType::CommonName, spec.names[0]);
        p.not_before = now + Duration::days(spec.not_before_days);
        p.not_after = now + Duration::days(spec.not_after_days) + Duration::hours(1);
        p.extended_key_usages = spec.eku;
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.custom_extensions = vec![aia_extension(AIA_URL)];
        let cert = if spec.self_signed {
            p.self_signed(&key).unwrap()
        } else {
            p.signed_by(
                &key,
                &Issuer::from_params(&self.inter_params, &self.inter_key),
            )
            .unwrap()
        };
        Leaf {
            pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }

    /// Issues a leaf from an openssl-made key and request, signed by the intermediate:
    /// `newkey` like `rsa:1024`, `digest` like `-sha1`.
    pub fn openssl_leaf(&self, stem: &str, newkey: &str, digest: &str) -> (PathBuf, PathBuf) {
        let key = self.path(&format!("{stem}.key"));
        let csr = self.path(&format!("{stem}.csr"));
        let pem = self.path(&format!("{stem}.pem"));
        let ext = self.write(
            &format!("{stem}.ext"),
            &format!(
                "subjectAltName=DNS:{DOMAIN}\nextendedKeyUsage=serverAuth\nkeyUsage=digitalSignature,keyEncipherment\n"
            ),
        );
        openssl(&[
            "req",
            "-new",
            "-newkey",
            newkey,
            "-nodes",
            "-keyout",
            s(&key),
            "-subj",
            &format!("/CN={DOMAIN}"),
            "-out",
            s(&csr),
        ]);
        openssl(&[
            "x509",
            "-req",
            "-in",
            s(&csr),
            "-CA",
            s(&self.path("inter.pem")),
            "-CAkey",
            s(&self.path("inter.key")),
            "-set_serial",
            "4660",
            "-days",
            "60",
            digest,
            "-extfile",
            s(&ext),
            "-out",
            s(&pem),
        ]);
        (pem, key)
    }

    /// The root's key is needed by nobody but keeps rcgen's issuer alive for the corpus' life.
    pub fn root_key_pem(&self) -> String {
        self.root_key.serialize_pem()
    }
}

pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

pub fn openssl(args: &[&str]) -> String {
    let out = Command::new("openssl").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Writes a zip with these (path, bytes) entries.
pub fn zip(path: &Path, entries: &[(&str, Vec<u8>)]) {
    use std::io::Write as _;
    let f = std::fs::File::create(path).unwrap();
    let mut z = zip::ZipWriter::new(f);
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, data) in entries {
        z.start_file(*name, opts).unwrap();
        z.write_all(data).unwrap();
    }
    z.finish().unwrap();
}
