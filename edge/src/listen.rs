//! Listeners: HTTPS (HTTP/1.1 and HTTP/2 by ALPN) and plain HTTP over TCP with hyper, and
//! HTTP/3 over QUIC with quinn and h3. All of them call the same `flow::handle`, under the one
//! connection policy (`policy`); the metrics listener calls `flow::admin`.

pub mod policy;
pub mod quic;
pub mod tcp;

use std::sync::Arc;

/// TLS for TCP listeners: ALPN h2 then http/1.1.
pub fn tls_config(cert_chain: &[Vec<u8>], key: &[u8], alpn: &[&[u8]]) -> anyhow::Result<rustls::ServerConfig> {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    let certs: Vec<CertificateDer<'static>> = cert_chain.iter().map(|c| CertificateDer::from(c.clone())).collect();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.to_vec()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let versions: &[&rustls::SupportedProtocolVersion] =
        if alpn == [b"h3".as_slice()] { &[&rustls::version::TLS13] } else { rustls::DEFAULT_VERSIONS };
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    // Resumed sessions skip the key exchange: viewers reconnect often.
    config.session_storage = rustls::server::ServerSessionMemoryCache::new(4096);
    Ok(config)
}
