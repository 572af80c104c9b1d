//! `[tls]` and the certificate the PoP presents. Without `[tls]`, a self-signed development
//! certificate for `localhost`, `127.0.0.1` and `::1` is generated once and kept under
//! `<cache.path>/tls/`, so restarts keep the SPKI hash a browser was told to trust.

use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use ring::digest::{SHA256, digest};
use ring::rand::SystemRandom;
use ring::signature::{self, KeyPair};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::PopConfig;
use crate::der;
use crate::document::Section;
use crate::error::{ConfigError, ConfigErrors};

/// Names the development certificate is valid for: how a browser on the same machine reaches
/// the PoP.
const DEVELOPMENT_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// Certificate and key files given in `[tls]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key: PKCS#8, PKCS#1 (RSA) or SEC1 (EC).
    pub key: PathBuf,
}

/// What the TLS listeners are built from.
#[derive(Clone)]
pub struct TlsMaterial {
    /// DER certificates, leaf first.
    pub cert_chain: Vec<Vec<u8>>,
    /// DER PKCS#8 private key.
    pub key: Vec<u8>,
    /// Base64 of the SHA-256 of the leaf's SubjectPublicKeyInfo: what Chromium's
    /// `--ignore-certificate-errors-spki-list` takes.
    pub spki_sha256: String,
    /// Whether this is the self-signed development certificate.
    pub development: bool,
}

// The key is a secret: keep it out of logs.
impl fmt::Debug for TlsMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsMaterial")
            .field("cert_chain", &format_args!("{} certificate(s)", self.cert_chain.len()))
            .field("spki_sha256", &self.spki_sha256)
            .field("development", &self.development)
            .finish_non_exhaustive()
    }
}

/// The configured certificate and key; without `[tls]`, the development certificate,
/// generated on first use.
pub fn load_or_generate(config: &PopConfig) -> Result<TlsMaterial, ConfigErrors> {
    match &config.tls {
        Some(files) => load(files),
        None => development(&config.cache.path.join("tls")).map_err(|m| ConfigErrors::one("tls", m)),
    }
}

/// Reads `[tls]`, checking that both files load and belong together.
pub(crate) fn read(mut s: Section<'_>) -> Option<TlsFiles> {
    let cert = s.required_path("cert");
    let key = s.required_path("key");
    let chain = cert.as_deref().and_then(|path| read_cert_chain(path).map_err(|m| s.report("cert", m)).ok());
    let pkcs8 = key.as_deref().and_then(|path| read_key(path).map_err(|m| s.report("key", m)).ok());
    if let (Some(chain), Some(pkcs8)) = (chain, pkcs8)
        && let Err(message) = check_pair(&chain[0], &pkcs8)
    {
        s.report("key", message);
    }
    s.finish();
    Some(TlsFiles { cert: cert?, key: key? })
}

fn load(files: &TlsFiles) -> Result<TlsMaterial, ConfigErrors> {
    let chain = read_cert_chain(&files.cert).map_err(|m| ConfigError::new("tls.cert", m));
    let key = read_key(&files.key).map_err(|m| ConfigError::new("tls.key", m));
    match (chain, key) {
        (Ok(chain), Ok(key)) => Ok(material(chain, key, false)),
        (chain, key) => Err(ConfigErrors([chain.err(), key.err()].into_iter().flatten().collect())),
    }
}

/// The development certificate in `dir`, generated and stored there if absent.
fn development(dir: &Path) -> Result<TlsMaterial, String> {
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    if cert_path.exists() && key_path.exists() {
        let stored = read_cert_chain(&cert_path).and_then(|chain| Ok((chain, read_key(&key_path)?)));
        let (chain, key) = stored.map_err(|m| format!("{m} (delete {} to generate a new one)", dir.display()))?;
        return Ok(material(chain, key, true));
    }
    let generated = rcgen::generate_simple_self_signed(DEVELOPMENT_NAMES.map(str::to_owned).to_vec())
        .map_err(|e| format!("cannot generate a development certificate: {e}"))?;
    store(dir, &generated.cert.pem(), &generated.signing_key.serialize_pem())
        .map_err(|e| format!("cannot store the development certificate in {}: {e}", dir.display()))?;
    Ok(material(vec![generated.cert.der().to_vec()], generated.signing_key.serialize_der(), true))
}

/// Writes the key before the certificate, each through a rename, so a crash never leaves a
/// certificate whose key is missing or torn.
fn store(dir: &Path, cert_pem: &str, key_pem: &str) -> std::io::Result<()> {
    fs::create_dir_all(dir)?;
    write_replacing(&dir.join("key.pem"), key_pem.as_bytes(), 0o600)?;
    write_replacing(&dir.join("cert.pem"), cert_pem.as_bytes(), 0o644)
}

fn write_replacing(path: &Path, contents: &[u8], mode: u32) -> std::io::Result<()> {
    let partial = path.with_extension("pem.partial");
    let mut options = OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options.open(&partial)?;
    file.write_all(contents)?;
    file.sync_all()?;
    fs::rename(&partial, path)
}

fn material(cert_chain: Vec<Vec<u8>>, key: Vec<u8>, development: bool) -> TlsMaterial {
    let spki_sha256 = der::subject_public_key_info(&cert_chain[0]).map(spki_hash).unwrap_or_default();
    TlsMaterial { cert_chain, key, spki_sha256, development }
}

/// Base64 of the SHA-256 of a DER SubjectPublicKeyInfo.
fn spki_hash(spki: &[u8]) -> String {
    BASE64.encode(digest(&SHA256, spki))
}

/// The DER certificates of a PEM file, leaf first; the leaf must be a readable X.509 certificate.
fn read_cert_chain(path: &Path) -> Result<Vec<Vec<u8>>, String> {
    let pem = fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let chain = CertificateDer::pem_slice_iter(&pem)
        .map(|cert| cert.map(|c| c.to_vec()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: bad PEM: {e}", path.display()))?;
    match chain.first() {
        None => Err(format!("{}: no CERTIFICATE in the file", path.display())),
        Some(leaf) if der::subject_public_key_info(leaf).is_none() => {
            Err(format!("{}: the first certificate is not valid X.509", path.display()))
        }
        Some(_) => Ok(chain),
    }
}

/// The private key of a PEM file, as DER PKCS#8.
fn read_key(path: &Path) -> Result<Vec<u8>, String> {
    let pem = fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let key = PrivateKeyDer::from_pem_slice(&pem).map_err(|e| format!("{}: no private key: {e}", path.display()))?;
    match key {
        PrivateKeyDer::Pkcs8(k) => Ok(k.secret_pkcs8_der().to_vec()),
        PrivateKeyDer::Pkcs1(k) => Ok(der::pkcs8_from_pkcs1(k.secret_pkcs1_der())),
        PrivateKeyDer::Sec1(k) => der::pkcs8_from_sec1(k.secret_sec1_der())
            .ok_or_else(|| format!("{}: the EC key does not name its curve", path.display())),
        _ => Err(format!("{}: unsupported private key format", path.display())),
    }
}

/// A key that does not match the certificate would only fail at the first handshake; say so
/// while checking the configuration instead.
fn check_pair(leaf: &[u8], pkcs8: &[u8]) -> Result<(), String> {
    let certified = der::subject_public_key_info(leaf).and_then(der::subject_public_key);
    match (certified, public_key(pkcs8)) {
        (_, None) => Err("unsupported key: expected ECDSA P-256/P-384, RSA or Ed25519".to_owned()),
        (Some(certified), Some(key)) if certified == key.as_slice() => Ok(()),
        _ => Err("this key does not belong to the certificate in tls.cert".to_owned()),
    }
}

/// The public key of a PKCS#8 private key, as a certificate carries it.
fn public_key(pkcs8: &[u8]) -> Option<Vec<u8>> {
    let rng = SystemRandom::new();
    let ecdsa = [&signature::ECDSA_P256_SHA256_ASN1_SIGNING, &signature::ECDSA_P384_SHA384_ASN1_SIGNING];
    let from_ecdsa = || {
        ecdsa
            .iter()
            .find_map(|alg| signature::EcdsaKeyPair::from_pkcs8(alg, pkcs8, &rng).ok())
            .map(|k| k.public_key().as_ref().to_vec())
    };
    let from_rsa = || signature::RsaKeyPair::from_pkcs8(pkcs8).ok().map(|k| k.public_key().as_ref().to_vec());
    let from_ed25519 =
        || signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(pkcs8).ok().map(|k| k.public_key().as_ref().to_vec());
    from_ecdsa().or_else(from_rsa).or_else(from_ed25519)
}
