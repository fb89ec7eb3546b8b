//! Certificate verdicts over a corpus generated at test time (rcgen + the openssl command line),
//! the `mpbridge cert` CLI, and `cert fetch` against real TLS servers (the relay and
//! `openssl s_server`).
#![allow(clippy::unwrap_used)] // tests may unwrap: a panic is the failure report
#![allow(clippy::cloned_ref_to_slice_refs)] // `&[path.clone()]` reads better here

mod common;

use std::path::PathBuf;
use std::process::Stdio;

use common::corpus::{AIA_URL, Corpus, DOMAIN, LeafSpec, PASSWORD, openssl, s, zip};
use common::{KillOnDrop, free_port, mpbridge, wait_listening};
use mpbridge::certs::{self, IssuerFound, RepairPlan, Report, Request, Role, Trust};
use mpbridge::verdict::Status;
use rcgen::ExtendedKeyUsagePurpose;

/// Trust: the corpus root supplied as a private CA (never public), no OS store (fast, and the
/// test root is in no OS store).
fn req(c: &Corpus, domain: Option<&str>) -> Request {
    let der = rustls_pki_types::CertificateDer::from(
        x509_parser::pem::parse_x509_pem(c.root_pem.as_bytes())
            .unwrap()
            .1
            .contents,
    );
    Request {
        domain: domain.map(str::to_owned),
        trust: Trust {
            extra: vec![der],
            os_store: false,
            ..Trust::default()
        },
        at: None,
    }
}

fn inspect(files: &[PathBuf], keys: &[PathBuf], pw: Option<&str>, r: &Request) -> Report {
    let r = certs::inspect_paths(files, keys, pw, r).1;
    chinese_is_chinese(&r);
    r
}

/// Every verdict on these broken files reads as Chinese in Chinese: no English sentence from a
/// lower layer (the PEM, X.509 or PKCS#12 parser) inside it.
fn chinese_is_chinese(r: &Report) {
    let texts = r
        .findings
        .iter()
        .flat_map(|f| [&f.detail.zh, &f.remedy.zh])
        .chain(r.notes.iter().map(|n| &n.zh));
    for text in texts {
        assert_eq!(mpbridge::i18n::english_in_chinese(text), None, "{text}");
    }
}

fn st(r: &Report, id: &str) -> Status {
    r.finding(id)
        .unwrap_or_else(|| panic!("no {id} in {:#?}", r.findings))
        .status
}

fn detail(r: &Report, id: &str) -> String {
    r.finding(id).unwrap().detail.en.clone()
}

fn fullchain(c: &Corpus, name: &str, leaf: &common::corpus::Leaf) -> (PathBuf, PathBuf) {
    (
        c.write(
            &format!("{name}.pem"),
            &format!("{}{}", leaf.pem, c.inter_pem),
        ),
        c.write(&format!("{name}.key"), &leaf.key_pem),
    )
}

#[test]
fn a_good_chain_passes_and_every_field_is_shown() {
    let c = Corpus::new();
    let leaf = c.leaf(LeafSpec::default());
    let (chain, key) = fullchain(&c, "good", &leaf);
    let r = inspect(
        &[chain.clone()],
        &[key.clone()],
        None,
        &req(&c, Some(DOMAIN)),
    );
    let ids: Vec<&str> = r.findings.iter().map(|f| f.id).collect();
    assert_eq!(ids, certs::CERT_IDS.to_vec());
    for id in certs::CERT_IDS {
        if id == "CERT-TRUST" {
            continue;
        }
        assert_eq!(st(&r, id), Status::Pass, "{id}: {:#?}", r.findings);
    }
    // The corpus root is a private CA: named, but WeChat refuses it.
    assert_eq!(st(&r, "CERT-TRUST"), Status::Fail);
    assert!(
        detail(&r, "CERT-TRUST").contains("CA you supplied"),
        "{}",
        detail(&r, "CERT-TRUST")
    );
    assert!(!r.finding("CERT-TRUST").unwrap().remedy.zh.is_empty());
    assert_eq!(r.exit_code(), 1);

    assert_eq!(r.chain.len(), 2);
    let l = &r.chain[0];
    assert_eq!(l.role, Role::Leaf);
    assert_eq!(l.signed_by, Some(1));
    assert_eq!(l.info.common_name, DOMAIN);
    assert_eq!(
        l.info.sans,
        vec![DOMAIN, "www.a.example.com", "127.0.0.1"],
        "DNS and IP names printed properly"
    );
    assert_eq!(l.info.key.to_string(), "EC P-256");
    assert_eq!(l.info.signature_algorithm, "ecdsa-with-SHA256");
    assert_eq!(l.info.sha256.len(), 32 * 3 - 1);
    assert_eq!(l.info.sha1.len(), 20 * 3 - 1);
    assert!(!l.info.is_ca);
    assert_eq!(l.info.extended_key_usage, vec!["serverAuth"]);
    assert_eq!(l.info.key_usage, vec!["digitalSignature"]);
    assert_eq!(l.info.ca_issuers, vec![AIA_URL]);
    assert!(
        (89..=90).contains(&l.info.days_left),
        "{}",
        l.info.days_left
    );
    let i = &r.chain[1];
    assert_eq!(i.role, Role::Intermediate);
    assert!(i.info.is_ca);
    assert_eq!(i.info.path_len, Some(0));
    assert_eq!(
        i.issuer_found,
        IssuerFound::SuppliedCa("mpbridge Test Root CA".into())
    );
    assert_eq!(r.key.as_ref().unwrap().to_string(), "EC P-256");

    // With the corpus root as a *public* root, the same chain passes everything.
    let mut public = req(&c, Some(DOMAIN));
    public.trust.public = vec![
        webpki::anchor_from_trusted_cert(&public.trust.extra[0])
            .unwrap()
            .to_owned(),
    ];
    public.trust.extra.clear();
    let r = inspect(&[chain], &[key], None, &public);
    assert!(
        r.findings.iter().all(|f| f.status == Status::Pass),
        "{:#?}",
        r.findings
    );
    assert!(detail(&r, "CERT-TRUST").contains("mpbridge Test Root CA"));
    assert_eq!(r.exit_code(), 0);

    // Against the real public roots (webpki-roots), it does not chain.
    let r = inspect(
        &[c.path("good.pem")],
        &[],
        None,
        &Request {
            domain: None,
            trust: Trust {
                os_store: false,
                ..Trust::default()
            },
            at: None,
        },
    );
    assert_eq!(st(&r, "CERT-TRUST"), Status::Fail);
    assert!(detail(&r, "CERT-TRUST").contains("unknown issuer"));
    assert_eq!(st(&r, "CERT-KEY-MATCH"), Status::Skip);
    assert_eq!(st(&r, "CERT-NAME"), Status::Skip);
}

#[test]
fn chain_shape_leaf_only_wrong_order_root_included() {
    let c = Corpus::new();
    let leaf = c.leaf(LeafSpec::default());
    let r0 = req(&c, Some(DOMAIN));

    // Leaf only: the story-2 failure (works on iOS and in DevTools, fails on Android).
    let only = c.write("leaf.pem", &leaf.pem);
    let r = inspect(&[only], &[], None, &r0);
    assert_eq!(st(&r, "CERT-CHAIN-COMPLETE"), Status::Fail);
    let d = detail(&r, "CERT-CHAIN-COMPLETE");
    assert!(
        d.contains("mpbridge Test Intermediate CA") && d.contains("Android"),
        "{d}"
    );
    assert!(d.contains(AIA_URL), "{d}");
    assert_eq!(st(&r, "CERT-CHAIN-ORDER"), Status::Pass);
    assert_eq!(st(&r, "CERT-TRUST"), Status::Fail);
    match &r.repair {
        RepairPlan::Impossible { reason } => {
            assert!(reason.en.contains("missing"), "{}", reason.en);
            assert!(reason.zh.contains("缺少中间证书"));
        }
        other => panic!("{other:?}"),
    }

    // Wrong order: intermediate first.
    let wrong = c.write("wrong.pem", &format!("{}{}", c.inter_pem, leaf.pem));
    let r = inspect(&[wrong], &[], None, &r0);
    assert_eq!(st(&r, "CERT-CHAIN-ORDER"), Status::Fail);
    assert!(detail(&r, "CERT-CHAIN-ORDER").contains("not first"));
    assert_eq!(st(&r, "CERT-CHAIN-COMPLETE"), Status::Pass);
    assert_eq!(r.chain[1].role, Role::Leaf);
    match &r.repair {
        RepairPlan::Ready { order, changes, .. } => {
            assert_eq!(order, &vec![1, 0]);
            assert!(changes.iter().any(|c| c.en.contains("leaf first")));
        }
        other => panic!("{other:?}"),
    }

    // Root included: in order, complete, but a warning; repair leaves the root out.
    let with_root = c.write(
        "root-incl.pem",
        &format!("{}{}{}", leaf.pem, c.inter_pem, c.root_pem),
    );
    let r = inspect(&[with_root], &[], None, &r0);
    assert_eq!(st(&r, "CERT-CHAIN-ORDER"), Status::Warn);
    assert!(detail(&r, "CERT-CHAIN-ORDER").contains("root"));
    assert_eq!(st(&r, "CERT-CHAIN-COMPLETE"), Status::Pass);
    assert_eq!(r.chain[2].role, Role::Root);
    assert_eq!(r.chain[2].issuer_found, IssuerFound::Itself);
    match &r.repair {
        RepairPlan::Ready { order, changes, .. } => {
            assert_eq!(order, &vec![0, 1]);
            assert!(changes.iter().any(|c| c.en.contains("root")));
        }
        other => panic!("{other:?}"),
    }

    // An unrelated certificate in the file: warned about, left out by repair.
    let other = Corpus::new().leaf(LeafSpec {
        names: &["b.example.com"],
        ..LeafSpec::default()
    });
    let extra = c.write(
        "extra.pem",
        &format!("{}{}{}", leaf.pem, c.inter_pem, other.pem),
    );
    let r = inspect(&[extra], &[], None, &r0);
    assert_eq!(st(&r, "CERT-CHAIN-ORDER"), Status::Warn);
    assert_eq!(r.chain[2].role, Role::Unrelated);
}

#[test]
fn dates_names_and_self_signed() {
    let c = Corpus::new();
    let r0 = |d: &str| req(&c, Some(d));
    let check = |spec: LeafSpec<'_>, domain: &str| {
        let leaf = c.leaf(spec);
        let p = c.write("x.pem", &format!("{}{}", leaf.pem, c.inter_pem));
        inspect(&[p], &[], None, &r0(domain))
    };
    let r = check(
        LeafSpec {
            not_before_days: -100,
            not_after_days: -3,
            ..LeafSpec::default()
        },
        DOMAIN,
    );
    assert_eq!(st(&r, "CERT-DATES"), Status::Fail);
    assert!(detail(&r, "CERT-DATES").contains("expired"));
    // Trust is judged apart from dates.
    assert!(detail(&r, "CERT-TRUST").contains("CA you supplied"));

    let r = check(
        LeafSpec {
            not_before_days: 5,
            not_after_days: 90,
            ..LeafSpec::default()
        },
        DOMAIN,
    );
    assert_eq!(st(&r, "CERT-DATES"), Status::Fail);
    assert!(detail(&r, "CERT-DATES").contains("not valid before"));

    let r = check(
        LeafSpec {
            not_after_days: 10,
            ..LeafSpec::default()
        },
        DOMAIN,
    );
    assert_eq!(st(&r, "CERT-DATES"), Status::Warn);
    assert!(
        detail(&r, "CERT-DATES").contains("10 days left"),
        "{}",
        detail(&r, "CERT-DATES")
    );

    // Names: exact, IP, wrong.
    let r = check(LeafSpec::default(), "127.0.0.1");
    assert_eq!(st(&r, "CERT-NAME"), Status::Pass);
    let r = check(LeafSpec::default(), "other.example.com");
    assert_eq!(st(&r, "CERT-NAME"), Status::Fail);
    assert!(detail(&r, "CERT-NAME").contains("www.a.example.com"));
    // Wildcards cover one label: x.a.com yes; a.com and x.y.a.com no.
    for (domain, want) in [
        ("x.a.com", Status::Pass),
        ("a.com", Status::Fail),
        ("x.y.a.com", Status::Fail),
    ] {
        let r = check(
            LeafSpec {
                names: &["*.a.com"],
                ..LeafSpec::default()
            },
            domain,
        );
        assert_eq!(st(&r, "CERT-NAME"), want, "{domain}");
    }

    // Self-signed leaf.
    let leaf = c.leaf(LeafSpec {
        self_signed: true,
        ..LeafSpec::default()
    });
    let p = c.write("self.pem", &leaf.pem);
    let r = inspect(&[p], &[], None, &r0(DOMAIN));
    assert_eq!(st(&r, "CERT-SELF-SIGNED"), Status::Fail);
    assert_eq!(st(&r, "CERT-TRUST"), Status::Fail);
    assert!(r.chain[0].info.self_signed);

    // Client-auth-only EKU.
    let r = check(
        LeafSpec {
            eku: vec![ExtendedKeyUsagePurpose::ClientAuth],
            ..LeafSpec::default()
        },
        DOMAIN,
    );
    assert_eq!(st(&r, "CERT-USAGE"), Status::Fail);
    assert!(detail(&r, "CERT-USAGE").contains("clientAuth"));
}

#[test]
fn keys_strength_and_encryption() {
    let c = Corpus::new();
    let r0 = req(&c, Some(DOMAIN));
    let leaf = c.leaf(LeafSpec::default());
    let (chain, key) = fullchain(&c, "good", &leaf);

    // Key mismatch: a key of another certificate.
    let other = c.leaf(LeafSpec::default());
    let wrong_key = c.write("other.key", &other.key_pem);
    let r = inspect(&[chain.clone()], &[wrong_key], None, &r0);
    assert_eq!(st(&r, "CERT-KEY-MATCH"), Status::Fail);

    // A key given as a certificate, a certificate given as a key.
    let r = inspect(&[key.clone()], &[], None, &r0);
    assert_eq!(st(&r, "CERT-PARSE"), Status::Fail);
    assert!(detail(&r, "CERT-PARSE").contains("private key but no certificate"));
    assert_eq!(r.exit_code(), 2);
    let r = inspect(&[chain.clone()], &[chain.clone()], None, &r0);
    assert_eq!(st(&r, "CERT-PARSE"), Status::Fail);
    assert!(detail(&r, "CERT-PARSE").contains("--key wants the key file"));

    // RSA 1024 (ring will not load it; the match is still judged) and SHA-1 signatures.
    let (weak, weak_key) = c.openssl_leaf("rsa1024", "rsa:1024", "-sha256");
    let r = inspect(&[weak], &[weak_key], None, &r0);
    assert_eq!(st(&r, "CERT-STRENGTH"), Status::Fail);
    assert!(detail(&r, "CERT-STRENGTH").contains("RSA 1024"));
    assert_eq!(st(&r, "CERT-KEY-MATCH"), Status::Pass);
    let (sha1, _) = c.openssl_leaf("sha1", "rsa:2048", "-sha1");
    let r = inspect(&[sha1], &[], None, &r0);
    assert_eq!(st(&r, "CERT-STRENGTH"), Status::Fail);
    assert!(
        detail(&r, "CERT-STRENGTH").contains("SHA1"),
        "{}",
        detail(&r, "CERT-STRENGTH")
    );

    // Encrypted keys: PKCS#8 (PBES2) and OpenSSL's traditional format.
    let p8 = c.path("enc-p8.key");
    openssl(&[
        "pkcs8",
        "-topk8",
        "-v2",
        "aes-256-cbc",
        "-in",
        s(&key),
        "-passout",
        &format!("pass:{PASSWORD}"),
        "-out",
        s(&p8),
    ]);
    let trad = c.path("enc-trad.key");
    openssl(&[
        "ec",
        "-in",
        s(&key),
        "-aes-128-cbc",
        "-passout",
        &format!("pass:{PASSWORD}"),
        "-out",
        s(&trad),
    ]);
    assert!(
        std::fs::read_to_string(&trad)
            .unwrap()
            .contains("Proc-Type: 4,ENCRYPTED")
    );
    for enc in [&p8, &trad] {
        let r = inspect(&[chain.clone()], &[enc.clone()], Some(PASSWORD), &r0);
        assert_eq!(st(&r, "CERT-KEY-MATCH"), Status::Pass, "{}", enc.display());
        let r = inspect(&[chain.clone()], &[enc.clone()], None, &r0);
        assert_eq!(st(&r, "CERT-PARSE"), Status::Fail);
        assert!(detail(&r, "CERT-PARSE").contains("password-protected"));
        let r = inspect(&[chain.clone()], &[enc.clone()], Some("wrong"), &r0);
        assert!(
            detail(&r, "CERT-PARSE").contains("password is wrong"),
            "{}: {}",
            enc.display(),
            detail(&r, "CERT-PARSE")
        );
    }
}

#[test]
fn pkcs12_with_modern_and_legacy_encryption() {
    let c = Corpus::new();
    let r0 = req(&c, Some(DOMAIN));
    let leaf = c.leaf(LeafSpec::default());
    let (chain, key) = fullchain(&c, "good", &leaf);
    let modern = c.path("modern.pfx");
    openssl(&[
        "pkcs12",
        "-export",
        "-in",
        s(&chain),
        "-inkey",
        s(&key),
        "-passout",
        &format!("pass:{PASSWORD}"),
        "-out",
        s(&modern),
    ]);
    let legacy = c.path("legacy.p12");
    openssl(&[
        "pkcs12",
        "-export",
        "-in",
        s(&chain),
        "-inkey",
        s(&key),
        "-keypbe",
        "PBE-SHA1-3DES",
        "-certpbe",
        "PBE-SHA1-3DES",
        "-macalg",
        "sha1",
        "-passout",
        &format!("pass:{PASSWORD}"),
        "-out",
        s(&legacy),
    ]);
    for pfx in [&modern, &legacy] {
        let r = inspect(&[pfx.clone()], &[], Some(PASSWORD), &r0);
        assert_eq!(r.chain.len(), 2, "{}: {:#?}", pfx.display(), r.findings);
        assert_eq!(st(&r, "CERT-KEY-MATCH"), Status::Pass);
        assert_eq!(st(&r, "CERT-CHAIN-COMPLETE"), Status::Pass);
        let r = inspect(&[pfx.clone()], &[], Some("nope"), &r0);
        assert!(detail(&r, "CERT-PARSE").contains("password is wrong"));
        assert_eq!(r.exit_code(), 2);
        let r = inspect(&[pfx.clone()], &[], None, &r0);
        assert!(detail(&r, "CERT-PARSE").contains("password-protected"));
    }
}

#[test]
fn provider_zips_are_opened_the_nginx_way() {
    let c = Corpus::new();
    let r0 = req(&c, Some(DOMAIN));
    let leaf = c.leaf(LeafSpec::default());
    let (chain, key) = fullchain(&c, "good", &leaf);
    let pfx = c.path("good.pfx");
    openssl(&[
        "pkcs12",
        "-export",
        "-in",
        s(&chain),
        "-inkey",
        s(&key),
        "-passout",
        &format!("pass:{PASSWORD}"),
        "-out",
        s(&pfx),
    ]);
    let bundle = format!("{}{}", leaf.pem, c.inter_pem).into_bytes();
    let d = DOMAIN;
    let all = c.path("all.zip");
    zip(
        &all,
        &[
            (&format!("{d}_nginx/{d}_bundle.crt"), bundle.clone()),
            (&format!("{d}_nginx/{d}_bundle.pem"), bundle.clone()),
            (
                &format!("{d}_nginx/{d}.key"),
                leaf.key_pem.clone().into_bytes(),
            ),
            (
                &format!("{d}_nginx/{d}.csr"),
                b"-----BEGIN CERTIFICATE REQUEST-----\n".to_vec(),
            ),
            (
                &format!("{d}_apache/2_{d}.crt"),
                leaf.pem.clone().into_bytes(),
            ),
            (
                &format!("{d}_apache/1_root_bundle.crt"),
                c.inter_pem.clone().into_bytes(),
            ),
            (
                &format!("{d}_apache/3_{d}.key"),
                leaf.key_pem.clone().into_bytes(),
            ),
            (&format!("{d}_iis/{d}.pfx"), std::fs::read(&pfx).unwrap()),
            (
                &format!("{d}_iis/keystorePass.txt"),
                PASSWORD.as_bytes().to_vec(),
            ),
        ],
    );
    let (opened, r) = certs::inspect_paths(&[all], &[], None, &r0);
    assert_eq!(opened.certs.len(), 2, "the .crt and .pem bundles are one");
    assert!(
        opened.certs[0].source.contains("_nginx/"),
        "{}",
        opened.certs[0].source
    );
    assert!(
        r.notes
            .iter()
            .any(|n| n.en.contains("opened the nginx files")),
        "{:?}",
        r.notes
    );
    for id in [
        "CERT-PARSE",
        "CERT-KEY-MATCH",
        "CERT-CHAIN-ORDER",
        "CERT-CHAIN-COMPLETE",
    ] {
        assert_eq!(st(&r, id), Status::Pass, "{id}: {:#?}", r.findings);
    }

    // Apache only: the leaf and its chain in two files; repair says where the intermediate came from.
    let apache = c.path("apache.zip");
    zip(
        &apache,
        &[
            ("Apache/a_public.crt", leaf.pem.clone().into_bytes()),
            ("Apache/a_chain.crt", c.inter_pem.clone().into_bytes()),
            ("Apache/a.key", leaf.key_pem.clone().into_bytes()),
        ],
    );
    let r = inspect(&[apache], &[], None, &r0);
    assert_eq!(st(&r, "CERT-CHAIN-COMPLETE"), Status::Pass);
    assert_eq!(st(&r, "CERT-KEY-MATCH"), Status::Pass);
    match &r.repair {
        RepairPlan::Ready { order, changes, .. } => {
            assert_eq!(order, &vec![0, 1]);
            assert!(
                changes.iter().any(|c| c.en.contains("a_chain.crt")),
                "{changes:?}"
            );
        }
        other => panic!("{other:?}"),
    }

    // IIS only: the .pfx with its password file.
    let iis = c.path("iis.zip");
    zip(
        &iis,
        &[
            ("IIS/a.pfx", std::fs::read(&pfx).unwrap()),
            ("IIS/keystorePass.txt", format!("{PASSWORD}\n").into_bytes()),
        ],
    );
    let r = inspect(&[iis], &[], None, &r0);
    assert_eq!(r.chain.len(), 2, "{:#?}", r.findings);
    assert_eq!(st(&r, "CERT-KEY-MATCH"), Status::Pass);
}

#[test]
fn bad_input_gets_one_clear_sentence() {
    let c = Corpus::new();
    let r0 = req(&c, None);
    let leaf = c.leaf(LeafSpec::default());
    let cases: Vec<(PathBuf, &str)> = vec![
        (
            c.write("garbage.pem", "hello, this is not a certificate\n"),
            "neither",
        ),
        (
            c.write("truncated.pem", &leaf.pem[..leaf.pem.len() / 2]),
            "truncated",
        ),
        (
            c.write(
                "badb64.pem",
                "-----BEGIN CERTIFICATE-----\n@@@@\n-----END CERTIFICATE-----\n",
            ),
            "base64",
        ),
        (
            c.write(
                "notx509.pem",
                "-----BEGIN CERTIFICATE-----\nMAMCAQE=\n-----END CERTIFICATE-----\n",
            ),
            "not a valid X.509",
        ),
        (c.write("empty.pem", "\n\n"), "empty"),
        (c.path("missing.pem"), "cannot read"),
        (c.dir.path().to_path_buf(), "folder"),
    ];
    let big = c.path("big.crt");
    std::fs::File::create(&big)
        .unwrap()
        .set_len(50 * 1024 * 1024)
        .unwrap();
    let mut cases = cases;
    cases.push((big, "limit is 10 MB"));
    let broken_zip = c.write("broken.zip", "PK\u{3}\u{4}garbage");
    cases.push((broken_zip, "not a readable zip"));
    for (path, phrase) in cases {
        let r = inspect(&[path.clone()], &[], None, &r0);
        assert_eq!(r.exit_code(), 2, "{}", path.display());
        let d = detail(&r, "CERT-PARSE");
        assert!(d.contains(phrase), "{}: {d}", path.display());
        assert!(!d.contains('\n'), "one sentence: {d}");
    }
    // Random bytes never panic.
    let mut rng_state = 0x2545F4914F6CDD1Du64;
    for n in 0..200 {
        let len = (n * 7) % 3000;
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                rng_state ^= rng_state << 13;
                rng_state ^= rng_state >> 7;
                rng_state ^= rng_state << 17;
                rng_state as u8
            })
            .collect();
        let mut bytes = bytes;
        if n % 3 == 0 && !bytes.is_empty() {
            bytes[0] = 0x30;
        }
        let mut o = certs::Opened::default();
        certs::open::open_bytes("random", &bytes, Some("x"), &mut o);
        let _ = certs::analyze(&o, &r0);
    }
}

fn run(cmd: &mut std::process::Command) -> (i32, String, String) {
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn cli_inspect_json_exit_codes_language_and_repair() {
    let c = Corpus::new();
    let root = tempfile::tempdir().unwrap();
    let leaf = c.leaf(LeafSpec::default());
    let (chain, key) = fullchain(&c, "good", &leaf);
    let enc = c.path("enc.key");
    openssl(&[
        "pkcs8",
        "-topk8",
        "-v2",
        "aes-256-cbc",
        "-in",
        s(&key),
        "-passout",
        &format!("pass:{PASSWORD}"),
        "-out",
        s(&enc),
    ]);
    let (code, out, err) = run(mpbridge(root.path())
        .args([
            "cert",
            "inspect",
            "--json",
            "--domain",
            DOMAIN,
            "--password-env",
            "CERT_PW",
        ])
        .arg(&chain)
        .arg("--key")
        .arg(&enc)
        .arg("--ca")
        .arg(c.path("root.pem"))
        .env("CERT_PW", PASSWORD));
    assert_eq!(code, 1, "private CA: CERT-TRUST fails\n{out}\n{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["chain"].as_array().unwrap().len(), 2);
    assert_eq!(v["chain"][0]["common_name"], DOMAIN);
    assert_eq!(v["chain"][0]["role"], "leaf");
    assert_eq!(v["chain"][0]["signed_by"], 1);
    assert_eq!(v["chain"][0]["key"]["kind"], "EC");
    for field in [
        "subject",
        "issuer",
        "sans",
        "serial",
        "not_before",
        "not_after",
        "days_left",
        "signature_algorithm",
        "sha256",
        "sha1",
        "is_ca",
        "key_usage",
        "extended_key_usage",
        "ca_issuers",
        "ocsp",
        "crl",
    ] {
        assert!(!v["chain"][0][field].is_null(), "{field} missing");
    }
    let findings = v["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 10);
    for f in findings {
        for k in ["id", "status", "detail", "remedy", "detail_zh", "remedy_zh"] {
            assert!(f[k].is_string(), "{k} in {f}");
        }
    }
    let find = |id: &str| findings.iter().find(|f| f["id"] == id).unwrap().clone();
    assert_eq!(find("CERT-KEY-MATCH")["status"], "pass");
    assert_eq!(find("CERT-TRUST")["status"], "fail");
    assert!(!err.contains(PASSWORD));

    // Exit 2: unreadable input, an unset password variable, a usage error. (Exit 0 needs a
    // public root: `a_good_chain_passes_and_every_field_is_shown` proves it in the library.)
    let (code, _, err) = run(mpbridge(root.path())
        .args(["cert", "inspect"])
        .arg(c.write("garbage.pem", "garbage")));
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = run(mpbridge(root.path())
        .args(["cert", "inspect", "--password-env", "NOPE_UNSET"])
        .arg(&chain));
    assert_eq!(code, 2);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    let (code, _, _) = run(mpbridge(root.path()).args(["cert", "inspect"]));
    assert_eq!(code, 2, "usage error");

    // Human output, in Chinese.
    let (_, out, _) = run(mpbridge(root.path())
        .args([
            "cert",
            "inspect",
            "--lang",
            "zh-CN",
            "--domain",
            "other.example.com",
        ])
        .arg(c.write("leaf.pem", &leaf.pem)));
    assert!(out.contains("叶子证书不覆盖 other.example.com"), "{out}");
    assert!(out.contains("缺少签发"), "{out}");
    assert!(out.contains("FAIL CERT-CHAIN-COMPLETE"), "{out}");

    // Repair: a wrong-order file with the root and the key → fullchain.pem + privkey.pem.
    let messy = c.write(
        "messy.pem",
        &format!("{}{}{}", c.root_pem, c.inter_pem, leaf.pem),
    );
    let out_dir = root.path().join("fixed");
    let (code, out, err) = run(mpbridge(root.path())
        .args(["cert", "repair", "--out"])
        .arg(&out_dir)
        .arg(&messy)
        .arg("--key")
        .arg(&key));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("left out the root"), "{out}");
    let fixed = std::fs::read_to_string(out_dir.join("fullchain.pem")).unwrap();
    assert_eq!(fixed.matches("BEGIN CERTIFICATE").count(), 2);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(out_dir.join("privkey.pem"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        // The folder it made for the key is private too.
        let mode = std::fs::metadata(&out_dir).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
    }
    let r = inspect(
        &[out_dir.join("fullchain.pem")],
        &[out_dir.join("privkey.pem")],
        None,
        &req(&c, Some(DOMAIN)),
    );
    for id in ["CERT-CHAIN-ORDER", "CERT-CHAIN-COMPLETE", "CERT-KEY-MATCH"] {
        assert_eq!(st(&r, id), Status::Pass, "{id}");
    }
    // Leaf only: repair refuses, plainly.
    let (code, _, err) = run(mpbridge(root.path())
        .args(["cert", "repair", "--out"])
        .arg(root.path().join("nope"))
        .arg(c.path("leaf.pem")));
    assert_eq!(code, 1);
    assert!(err.contains("missing and cannot be built"), "{err}");
}

#[test]
fn fetch_judges_the_chain_as_served_by_the_relay_and_by_openssl() {
    let c = Corpus::new();
    let root = tempfile::tempdir().unwrap();
    let leaf = c.leaf(LeafSpec::default());
    let (chain, key) = fullchain(&c, "good", &leaf);

    // The relay serving the full chain.
    let port = free_port();
    let cfg = c.write(
        "relay.toml",
        &format!(
            "[listen]\naddr = \"127.0.0.1:{port}\"\ncert = \"{}\"\nkey = \"{}\"\n\n[[route]]\npath = \"/mqtt\"\nupstream = [\"tcp://127.0.0.1:{}\"]\n",
            s(&chain),
            s(&key),
            free_port()
        ),
    );
    let _relay = KillOnDrop(
        mpbridge(root.path())
            .args(["relay", "--config"])
            .arg(&cfg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_listening(port, 15);
    let (code, out, err) = run(mpbridge(root.path())
        .args(["cert", "fetch", "--json", "--sni", DOMAIN, "--ca"])
        .arg(c.path("root.pem"))
        .arg(format!("127.0.0.1:{port}")));
    assert_eq!(code, 1, "private CA → CERT-TRUST fails\n{out}{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["served"]["tls_version"], "TLS 1.3");
    assert_eq!(v["served"]["alpn"], "http/1.1");
    assert_eq!(v["served"]["sni"], DOMAIN);
    assert!(
        v["served"]["cipher"]
            .as_str()
            .unwrap()
            .starts_with("TLS13_")
    );
    assert_eq!(v["chain"].as_array().unwrap().len(), 2);
    let status = |id: &str| {
        v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["id"] == id)
            .unwrap()["status"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(status("CERT-CHAIN-COMPLETE"), "pass");
    assert_eq!(status("CERT-CHAIN-ORDER"), "pass");
    assert_eq!(status("CERT-NAME"), "pass");
    assert_eq!(status("CERT-KEY-MATCH"), "skip");

    // openssl s_server serving the leaf alone.
    let port2 = free_port();
    let leaf_pem = c.write("leaf-only.pem", &leaf.pem);
    let _s_server = KillOnDrop(
        std::process::Command::new("openssl")
            .args(["s_server", "-quiet", "-accept"])
            .arg(format!("127.0.0.1:{port2}"))
            .arg("-cert")
            .arg(&leaf_pem)
            .arg("-key")
            .arg(&key)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_listening(port2, 15);
    let (code, out, err) = run(mpbridge(root.path())
        .args(["cert", "fetch", "--sni", DOMAIN, "--ca"])
        .arg(c.path("root.pem"))
        .arg(format!("127.0.0.1:{port2}")));
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("FAIL CERT-CHAIN-COMPLETE"), "{out}");
    assert!(out.contains("Android WeChat does not"), "{out}");
    assert!(out.contains("served #1"), "{out}");

    // Nothing listening: exit 2, one sentence.
    let (code, _, err) = run(mpbridge(root.path())
        .args(["cert", "fetch", "--timeout", "3"])
        .arg(format!("127.0.0.1:{}", free_port())));
    assert_eq!(code, 2);
    assert!(err.contains("cannot connect"), "{err}");
}

/// Every way a real PEM file differs from the textbook one (a byte-order mark from Windows
/// Notepad, one in the middle from `cat`ting two such files, CRLF, trailing blanks, text before
/// and between blocks, an `EC PARAMETERS` block before the key, an indented BEGIN that OpenSSL
/// does not read) is read exactly as `openssl storeutl` reads it: the same certificates, in
/// the same order, by the certificate inspector and by the relay; and keys as `openssl pkey`.
#[test]
fn pem_files_are_read_as_openssl_reads_them() {
    let c = Corpus::new();
    let leaf = c.leaf(LeafSpec::default());
    let chain = format!("{}{}", leaf.pem, c.inter_pem);
    let bom = "\u{feff}";
    let crlf = |t: &str| t.replace('\n', "\r\n");
    let trailing = |t: &str| t.lines().map(|l| format!("{l}  \t\n")).collect::<String>();
    let cert_variants: Vec<(&str, String)> = vec![
        ("plain", chain.clone()),
        ("bom", format!("{bom}{chain}")),
        (
            "bom-twice",
            format!("{bom}{}{bom}{}", leaf.pem, c.inter_pem),
        ),
        ("crlf", crlf(&chain)),
        ("bom-crlf", format!("{bom}{}", crlf(&chain))),
        ("trailing-blanks", trailing(&chain)),
        (
            "text-around",
            format!(
                "Bag Attributes\n    friendlyName: leaf\nsubject=CN = leaf\n{}\nissuer: the intermediate\n\n{}",
                leaf.pem, c.inter_pem
            ),
        ),
        ("indented-leaf", format!("  {}{}", leaf.pem, c.inter_pem)),
    ];
    let key_variants: Vec<(&str, String)> = vec![
        ("plain", leaf.key_pem.clone()),
        ("bom", format!("{bom}{}", leaf.key_pem)),
        ("crlf", crlf(&leaf.key_pem)),
        (
            "bom-crlf-trailing",
            format!("{bom}{}", crlf(&trailing(&leaf.key_pem))),
        ),
        (
            "ec-parameters-first",
            format!(
                "-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n{}",
                leaf.key_pem
            ),
        ),
    ];
    let plain_key = c.write("plain.key", &leaf.key_pem);
    let mut checked = 0;
    for (name, text) in &cert_variants {
        let path = c.write(&format!("{name}.pem"), text);
        // What OpenSSL reads: each certificate, re-emitted as clean PEM.
        let out = std::process::Command::new("openssl")
            .args(["storeutl", "-certs", s(&path)])
            .output()
            .unwrap();
        let theirs = certs::pem::certificates(&out.stdout).unwrap();
        let ours = certs::pem::certificates(text.as_bytes()).unwrap();
        assert_eq!(
            ours.len(),
            theirs.len(),
            "{name}: openssl reads {} certificates, mpbridge {}",
            theirs.len(),
            ours.len()
        );
        assert!(
            ours == theirs,
            "{name}: the same certificates in the same order"
        );
        // The relay serves what nginx would, or refuses what nginx would refuse.
        match mpbridge::relay::tls::load_certified_key(&path, &plain_key) {
            Ok(ck) => {
                assert_eq!(ck.cert.len(), theirs.len(), "{name}: the served chain");
                assert_eq!(
                    ck.cert[0].as_ref(),
                    theirs[0].as_slice(),
                    "{name}: the leaf"
                );
            }
            Err(e) => {
                // Only where nginx would refuse too: OpenSSL's first certificate is not the
                // leaf the key belongs to (the indented leaf is text to OpenSSL).
                let leaf_der = certs::pem::certificates(leaf.pem.as_bytes()).unwrap();
                assert_ne!(
                    theirs.first(),
                    leaf_der.first(),
                    "{name}: refused although OpenSSL reads the leaf first: {e}"
                );
            }
        }
        // The inspector judges the chain OpenSSL sees: with a BOM, the leaf stays the leaf.
        if theirs.len() == 2 {
            let r = inspect(
                &[path.clone()],
                &[plain_key.clone()],
                None,
                &req(&c, Some(DOMAIN)),
            );
            assert_eq!(
                st(&r, "CERT-KEY-MATCH"),
                Status::Pass,
                "{name}: {:#?}",
                r.findings
            );
            assert_eq!(st(&r, "CERT-NAME"), Status::Pass, "{name}");
        }
        checked += 1;
    }
    let fullchain = c.write("fullchain.pem", &chain);
    for (name, text) in &key_variants {
        let path = c.write(&format!("key-{name}.key"), text);
        let openssl_reads = std::process::Command::new("openssl")
            .args(["pkey", "-noout", "-in", s(&path)])
            .status()
            .unwrap()
            .success();
        let relay_reads = mpbridge::relay::tls::load_certified_key(&fullchain, &path);
        assert_eq!(
            relay_reads.is_ok(),
            openssl_reads,
            "{name}: openssl {openssl_reads}, relay {relay_reads:?}"
        );
        let r = inspect(
            &[fullchain.clone()],
            &[path.clone()],
            None,
            &req(&c, Some(DOMAIN)),
        );
        assert_eq!(
            st(&r, "CERT-KEY-MATCH"),
            Status::Pass,
            "{name}: {:#?}",
            r.findings
        );
        checked += 1;
    }
    assert_eq!(checked, cert_variants.len() + key_variants.len());
}
