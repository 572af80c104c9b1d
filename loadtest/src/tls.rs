//! Whom the harness trusts: the system's roots, a CA file (a PoP with a private CA or its
//! development certificate), an SPKI pin (the edge prints the SHA-256 of its
//! SubjectPublicKeyInfo at start), or nobody (`--insecure`, local tests only). One rustls
//! configuration per protocol, on the ring provider.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use ring::digest::{SHA256, digest};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

use crate::error::{Error, Result};

/// Installs ring as the process-wide rustls provider (reqwest is built without one).
pub fn init() {
    // Already installed (by a test, or twice): fine, it is the same provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// What server certificates are accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trust {
    /// The operating system's roots and rules.
    System,
    /// Certificates that chain to the CAs in this PEM file.
    Ca(PathBuf),
    /// Any certificate whose SPKI SHA-256 is one of these (name and dates are not checked,
    /// as with Chromium's `--ignore-certificate-errors-spki-list`).
    Pins(Vec<[u8; 32]>),
    /// Anything: for local tests only.
    Insecure,
}

impl Trust {
    /// From the command-line options; at most one of them.
    pub fn from_options(ca: Option<PathBuf>, pins: &[String], insecure: bool) -> Result<Self> {
        let given = usize::from(ca.is_some()) + usize::from(!pins.is_empty()) + usize::from(insecure);
        if given > 1 {
            return Err(Error::Usage("choose one of --ca, --spki-pin and --insecure".into()));
        }
        if let Some(ca) = ca {
            return Ok(Self::Ca(ca));
        }
        if insecure {
            return Ok(Self::Insecure);
        }
        if pins.is_empty() {
            return Ok(Self::System);
        }
        pins.iter().map(|p| parse_pin(p)).collect::<Result<Vec<_>>>().map(Self::Pins)
    }

    /// A client configuration offering `alpn`; `tls13_only` for QUIC.
    pub fn client_config(&self, alpn: &[&[u8]], tls13_only: bool) -> Result<rustls::ClientConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone());
        let builder = if tls13_only {
            builder.with_protocol_versions(&[&rustls::version::TLS13])
        } else {
            builder.with_safe_default_protocol_versions()
        }
        .map_err(|e| Error::Tls(e.to_string()))?;
        let algorithms = provider.signature_verification_algorithms;
        let mut config = match self {
            Self::Ca(path) => builder.with_root_certificates(roots(path)?).with_no_client_auth(),
            Self::System => {
                let verifier =
                    rustls_platform_verifier::Verifier::new(provider).map_err(|e| Error::Tls(e.to_string()))?;
                builder.dangerous().with_custom_certificate_verifier(Arc::new(verifier)).with_no_client_auth()
            }
            Self::Pins(pins) => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(Pinned { pins: Some(pins.clone()), algorithms }))
                .with_no_client_auth(),
            Self::Insecure => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(Pinned { pins: None, algorithms }))
                .with_no_client_auth(),
        };
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(config)
    }
}

fn roots(path: &Path) -> Result<rustls::RootCertStore> {
    let pem = std::fs::read(path).map_err(Error::io(path))?;
    let mut store = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| Error::Tls(format!("{}: bad PEM: {e}", path.display())))?;
        store.add(cert).map_err(|e| Error::Tls(format!("{}: {e}", path.display())))?;
    }
    if store.is_empty() {
        return Err(Error::Tls(format!("{}: no CERTIFICATE in the file", path.display())));
    }
    Ok(store)
}

/// A pin: base64 of 32 bytes, optionally prefixed `sha256/` as in HPKP notation.
pub fn parse_pin(text: &str) -> Result<[u8; 32]> {
    let b64 = text.trim().strip_prefix("sha256/").unwrap_or(text.trim());
    let bytes = BASE64.decode(b64).map_err(|e| Error::Usage(format!("--spki-pin `{text}`: not base64: {e}")))?;
    bytes
        .try_into()
        .map_err(|b: Vec<u8>| Error::Usage(format!("--spki-pin `{text}`: {} bytes, a SHA-256 is 32", b.len())))
}

/// SHA-256 of a certificate's SubjectPublicKeyInfo.
pub fn spki_sha256(cert: &CertificateDer<'_>) -> Result<[u8; 32], String> {
    let parsed = webpki::EndEntityCert::try_from(cert).map_err(|e| format!("unreadable certificate: {e}"))?;
    let spki = parsed.subject_public_key_info();
    Ok(digest(&SHA256, spki.as_ref()).as_ref().try_into().expect("SHA-256 is 32 bytes"))
}

/// Base64 text of a pin, as the edge prints it.
pub fn pin_text(pin: &[u8; 32]) -> String {
    BASE64.encode(pin)
}

/// Checks the pin (or nothing), and always the handshake signature: whoever answers must
/// hold the private key of the certificate it shows.
#[derive(Debug)]
struct Pinned {
    pins: Option<Vec<[u8; 32]>>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(pins) = &self.pins else { return Ok(ServerCertVerified::assertion()) };
        let got = spki_sha256(end_entity).map_err(rustls::Error::General)?;
        if pins.contains(&got) {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(format!("SPKI pin mismatch: the server's key is {}", pin_text(&got))))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert() -> (CertificateDer<'static>, Vec<u8>) {
        use rcgen::PublicKeyData;
        let c = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        (c.cert.der().clone(), c.signing_key.subject_public_key_info())
    }

    #[test]
    fn the_pin_is_the_sha256_of_the_spki() {
        let (der, spki) = cert();
        let pin = spki_sha256(&der).unwrap();
        assert_eq!(pin.as_slice(), digest(&SHA256, &spki).as_ref());
        assert_eq!(parse_pin(&pin_text(&pin)).unwrap(), pin);
        assert_eq!(parse_pin(&format!("sha256/{}", pin_text(&pin))).unwrap(), pin);
    }

    #[test]
    fn the_verifier_accepts_only_pinned_keys() {
        let (der, _) = cert();
        let (other, _) = cert();
        let algorithms = rustls::crypto::ring::default_provider().signature_verification_algorithms;
        let v = Pinned { pins: Some(vec![spki_sha256(&der).unwrap()]), algorithms };
        let name = ServerName::try_from("anything.example").unwrap();
        assert!(v.verify_server_cert(&der, &[], &name, &[], UnixTime::now()).is_ok());
        let e = v.verify_server_cert(&other, &[], &name, &[], UnixTime::now()).unwrap_err();
        assert!(e.to_string().contains("pin mismatch"), "{e}");
    }

    #[test]
    fn bad_pins_and_option_clashes_are_refused() {
        assert!(parse_pin("not base64!").unwrap_err().to_string().contains("base64"));
        assert!(parse_pin(&BASE64.encode([0u8; 20])).unwrap_err().to_string().contains("20 bytes"));
        assert!(Trust::from_options(Some("ca.pem".into()), &[], true).is_err());
        assert_eq!(Trust::from_options(None, &[], false).unwrap(), Trust::System);
    }

    #[test]
    fn a_ca_file_without_certificates_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty.pem");
        std::fs::write(&path, "nothing here\n").unwrap();
        let e = Trust::Ca(path).client_config(&[b"h2"], false).unwrap_err();
        assert!(e.to_string().contains("no CERTIFICATE"), "{e}");
    }
}
