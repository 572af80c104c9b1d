//! The certificate the PoP presents: the development certificate (generated once, then kept),
//! and certificates an operator provides, in each key format.

use std::fs;
use std::path::Path;
use std::process::Command;

use pop_config::tls::load_or_generate;
use pop_config::token::SigningKey;
use pop_config::{PopConfig, parse};
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, RsaKeyPair};

fn config_in(dir: &Path) -> PopConfig {
    PopConfig::default_for(
        dir,
        "http://127.0.0.1:8080",
        "pop-local.pop-secret-0123456789",
        vec![SigningKey::from_seed("k1", &[1; 32]).unwrap().public()],
    )
}

/// A config whose `[tls]` names `cert.pem` and `key.pem` in `dir`.
fn config_with_tls(dir: &Path) -> PopConfig {
    let text = r#"
        [tls]
        cert = "cert.pem"
        key = "key.pem"
        [origin]
        credential = "pop-local.pop-secret-0123456789"
        [[tokens]]
        kid = "k1"
        public_key = "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8"
    "#;
    parse(text, dir).unwrap_or_else(|e| panic!("{e}"))
}

/// Whether `openssl` can be run; says loudly when the checks that need it are skipped.
fn openssl_available(test: &str) -> bool {
    let available = Command::new("openssl").arg("version").output().is_ok_and(|o| o.status.success());
    if !available {
        eprintln!("SKIPPED in {test}: `openssl` is not installed, so the cross-check against it did not run");
    }
    available
}

fn run(script: &str, dir: &Path) -> String {
    let out = Command::new("sh").arg("-c").arg(script).current_dir(dir).output().unwrap();
    assert!(out.status.success(), "{script}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// The SPKI pin as the Chromium documentation computes it.
fn openssl_spki(cert: &Path) -> String {
    let script = format!(
        "openssl x509 -in '{}' -pubkey -noout | openssl pkey -pubin -outform der | openssl dgst -sha256 -binary | base64",
        cert.display()
    );
    run(&script, Path::new(".")).trim().to_owned()
}

#[test]
fn development_certificate_is_generated_once_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_in(dir.path());
    let first = load_or_generate(&config).unwrap_or_else(|e| panic!("{e}"));
    assert!(first.development);
    assert_eq!(first.cert_chain.len(), 1);
    assert_eq!(first.spki_sha256.len(), 44, "base64 of 32 bytes: {}", first.spki_sha256);
    let tls_dir = dir.path().join("tls");
    assert!(tls_dir.join("cert.pem").is_file() && tls_dir.join("key.pem").is_file());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(tls_dir.join("key.pem")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the key is private");
    }

    let second = load_or_generate(&config).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(second.spki_sha256, first.spki_sha256, "a restart keeps the pinned key");
    assert_eq!(second.cert_chain, first.cert_chain);
    assert_eq!(second.key, first.key);
    assert!(
        EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, &second.key, &SystemRandom::new()).is_ok()
    );
}

#[test]
fn development_certificate_spki_matches_openssl_and_names_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let material = load_or_generate(&config_in(dir.path())).unwrap();
    let cert = dir.path().join("tls/cert.pem");
    if !openssl_available("development_certificate_spki_matches_openssl_and_names_loopback") {
        return;
    }
    assert_eq!(material.spki_sha256, openssl_spki(&cert));
    let text = run(&format!("openssl x509 -in '{}' -noout -ext subjectAltName", cert.display()), dir.path());
    for name in ["DNS:localhost", "IP Address:127.0.0.1", "IP Address:0:0:0:0:0:0:0:1"] {
        assert!(text.contains(name), "{name} missing from {text}");
    }
}

#[test]
fn development_certificate_that_cannot_be_stored_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let not_a_dir = dir.path().join("file");
    fs::write(&not_a_dir, "").unwrap();
    let errors = load_or_generate(&config_in(&not_a_dir)).unwrap_err();
    assert_eq!(errors.0[0].path, "tls", "{errors}");
    assert!(errors.0[0].message.contains("cannot store the development certificate"), "{errors}");
}

#[test]
fn provided_certificate_and_key_load() {
    let dir = tempfile::tempdir().unwrap();
    let generated = rcgen::generate_simple_self_signed(vec!["pop.example".to_owned()]).unwrap();
    fs::write(dir.path().join("cert.pem"), generated.cert.pem()).unwrap();
    fs::write(dir.path().join("key.pem"), generated.signing_key.serialize_pem()).unwrap();
    let material = load_or_generate(&config_with_tls(dir.path())).unwrap_or_else(|e| panic!("{e}"));
    assert!(!material.development);
    assert_eq!(material.cert_chain, [generated.cert.der().to_vec()]);
    assert_eq!(material.key, generated.signing_key.serialize_der());
    assert!(!dir.path().join("data").exists(), "no development certificate when one is given");
    if openssl_available("provided_certificate_and_key_load") {
        assert_eq!(material.spki_sha256, openssl_spki(&dir.path().join("cert.pem")));
    }
}

#[test]
fn provided_files_that_disappear_are_reported_at_their_fields() {
    let dir = tempfile::tempdir().unwrap();
    let generated = rcgen::generate_simple_self_signed(vec!["pop.example".to_owned()]).unwrap();
    fs::write(dir.path().join("cert.pem"), generated.cert.pem()).unwrap();
    fs::write(dir.path().join("key.pem"), generated.signing_key.serialize_pem()).unwrap();
    let config = config_with_tls(dir.path());
    fs::remove_file(dir.path().join("cert.pem")).unwrap();
    fs::remove_file(dir.path().join("key.pem")).unwrap();
    let errors = load_or_generate(&config).unwrap_err();
    assert_eq!(errors.iter().map(|e| e.path.as_str()).collect::<Vec<_>>(), ["tls.cert", "tls.key"], "{errors}");
}

/// RSA keys in PKCS#1 and EC keys in SEC1 (what `openssl genrsa -traditional` and
/// `openssl ecparam -genkey` write) come out as PKCS#8 that ring accepts.
#[test]
fn pkcs1_and_sec1_keys_become_pkcs8() {
    if !openssl_available("pkcs1_and_sec1_keys_become_pkcs8") {
        return;
    }
    let rsa = tempfile::tempdir().unwrap();
    run(
        "openssl genrsa -traditional -out key.pem 2048 2>/dev/null && \
         openssl req -x509 -key key.pem -out cert.pem -subj /CN=pop.example -days 2",
        rsa.path(),
    );
    assert!(fs::read_to_string(rsa.path().join("key.pem")).unwrap().starts_with("-----BEGIN RSA PRIVATE KEY-----"));
    let material = load_or_generate(&config_with_tls(rsa.path())).unwrap_or_else(|e| panic!("{e}"));
    assert!(RsaKeyPair::from_pkcs8(&material.key).is_ok());
    let openssl_pkcs8 = Command::new("openssl")
        .args(["pkcs8", "-topk8", "-nocrypt", "-outform", "der", "-in", "key.pem"])
        .current_dir(rsa.path())
        .output()
        .unwrap();
    assert_eq!(material.key, openssl_pkcs8.stdout, "the same PKCS#8 bytes openssl writes");
    assert_eq!(material.spki_sha256, openssl_spki(&rsa.path().join("cert.pem")));

    let ec = tempfile::tempdir().unwrap();
    run(
        "openssl ecparam -name prime256v1 -genkey -noout -out key.pem && \
         openssl req -x509 -key key.pem -out cert.pem -subj /CN=pop.example -days 2",
        ec.path(),
    );
    assert!(fs::read_to_string(ec.path().join("key.pem")).unwrap().starts_with("-----BEGIN EC PRIVATE KEY-----"));
    let material = load_or_generate(&config_with_tls(ec.path())).unwrap_or_else(|e| panic!("{e}"));
    let rng = SystemRandom::new();
    assert!(EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, &material.key, &rng).is_ok());
    assert_eq!(material.spki_sha256, openssl_spki(&ec.path().join("cert.pem")));
}

#[test]
fn a_chain_keeps_its_order() {
    let dir = tempfile::tempdir().unwrap();
    let leaf = rcgen::generate_simple_self_signed(vec!["pop.example".to_owned()]).unwrap();
    let intermediate = rcgen::generate_simple_self_signed(vec!["ca.example".to_owned()]).unwrap();
    fs::write(dir.path().join("cert.pem"), format!("{}{}", leaf.cert.pem(), intermediate.cert.pem())).unwrap();
    fs::write(dir.path().join("key.pem"), leaf.signing_key.serialize_pem()).unwrap();
    let material = load_or_generate(&config_with_tls(dir.path())).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(material.cert_chain, [leaf.cert.der().to_vec(), intermediate.cert.der().to_vec()]);
}

#[test]
fn debug_output_leaves_out_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let material = load_or_generate(&config_in(dir.path())).unwrap();
    let shown = format!("{material:?}");
    assert!(shown.contains(&material.spki_sha256) && !shown.contains("key:"), "{shown}");
}
