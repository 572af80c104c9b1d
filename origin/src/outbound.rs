//! Requests to addresses a user chose (creators' webhooks today): where they may go.
//!
//! Loopback, private, link-local, shared (CGNAT), unique-local, multicast, documentation and
//! other reserved addresses are refused, in every IPv6 form that embeds an IPv4 address,
//! unless the operator allowed the network. The check runs when the URL is registered
//! ([`Outbound::check_url`]) and again on every request: names are resolved by a resolver
//! that drops refused addresses, so the client can only connect where the check allowed
//! (a name that resolves elsewhere later, DNS rebinding, gets nowhere), literal addresses are
//! checked before sending, redirects are not followed and no proxy is used.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use reqwest::Url;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use crate::error::{Error, Kind, Result};

/// Longest wait for a name to resolve.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// The policy: refused address classes, minus the operator's allowed networks.
#[derive(Debug, Clone, Default)]
pub struct Outbound {
    allow: Vec<IpNet>,
}

impl Outbound {
    /// A policy that lets `allow` through whatever class its addresses are in.
    pub fn new(allow: Vec<IpNet>) -> Arc<Self> {
        Arc::new(Self { allow })
    }

    /// Why `ip` may not be reached, or `None` when it may.
    pub fn refusal(&self, ip: IpAddr) -> Option<&'static str> {
        let ip = ip.to_canonical();
        if self.allow.iter().any(|n| n.contains(&ip)) {
            return None;
        }
        reserved(ip)
    }

    /// Checks a URL a user gives: http(s) with a host whose every address may be reached.
    pub async fn check_url(&self, url: &str) -> Result<Url> {
        let parsed = self.parse(url)?;
        let host = parsed.host_str().unwrap_or_default().to_owned();
        let port = parsed.port_or_known_default().unwrap_or(80);
        let addresses: Vec<IpAddr> = match literal(&parsed) {
            Some(ip) => vec![ip],
            None => resolve(&host, port).await?.into_iter().map(|a| a.ip()).collect(),
        };
        if addresses.is_empty() {
            return Err(unresolvable(&host));
        }
        for ip in addresses {
            if let Some(class) = self.refusal(ip) {
                return Err(refused(ip, class));
            }
        }
        Ok(parsed)
    }

    /// A POST to `url` on `client` (from [`Outbound::client`]), refused here when the URL
    /// names a refused address literally (the resolver never sees literal addresses).
    pub fn post(&self, client: &reqwest::Client, url: &str) -> Result<reqwest::RequestBuilder> {
        let parsed = self.parse(url)?;
        if let Some(ip) = literal(&parsed)
            && let Some(class) = self.refusal(ip)
        {
            return Err(refused(ip, class));
        }
        Ok(client.post(parsed))
    }

    /// A client that connects only to addresses this policy allows, follows no redirect and
    /// uses no proxy.
    pub fn client(self: &Arc<Self>, timeout: Duration) -> reqwest::Client {
        crate::storage::init_tls();
        reqwest::Client::builder()
            .dns_resolver(Arc::new(Filtering(self.clone())))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .timeout(timeout)
            .build()
            .expect("the outbound client builds")
    }

    fn parse(&self, url: &str) -> Result<Url> {
        let parsed = Url::parse(url).map_err(|e| Error::bad_request("bad_url", format!("not a URL: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none_or(str::is_empty) {
            return Err(Error::bad_request("bad_url", "the URL must be http(s)://host/..."));
        }
        Ok(parsed)
    }
}

/// Whether an error is this module's refusal of a target (not worth retrying).
pub fn is_refusal(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(e);
    while let Some(e) = next {
        if e.downcast_ref::<Error>().is_some_and(|e| matches!(e.code(), "target_refused" | "target_unresolvable")) {
            return true;
        }
        next = e.source();
    }
    false
}

fn refused(ip: IpAddr, class: &'static str) -> Error {
    Error::refused(
        Kind::Invalid,
        "target_refused",
        format!("{ip} is a {class} address; requests may only go to public addresses"),
    )
}

fn unresolvable(host: &str) -> Error {
    Error::bad_request("target_unresolvable", format!("`{host}` does not resolve to any address"))
}

fn literal(url: &Url) -> Option<IpAddr> {
    match url.host()? {
        url::Host::Ipv4(v4) => Some(IpAddr::V4(v4)),
        url::Host::Ipv6(v6) => Some(IpAddr::V6(v6)),
        url::Host::Domain(_) => None,
    }
}

async fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>> {
    match tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((host, port))).await {
        Ok(Ok(found)) => Ok(found.collect()),
        Ok(Err(_)) | Err(_) => Err(unresolvable(host)),
    }
}

/// The resolver the client connects through: refused addresses never reach the connector.
struct Filtering(Arc<Outbound>);

impl Resolve for Filtering {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.0.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found = resolve(&host, 0).await?;
            let mut first_refusal = None;
            let allowed: Vec<SocketAddr> = found
                .into_iter()
                .filter(|a| match policy.refusal(a.ip()) {
                    None => true,
                    Some(class) => {
                        first_refusal.get_or_insert_with(|| refused(a.ip(), class));
                        false
                    }
                })
                .collect();
            match (allowed.is_empty(), first_refusal) {
                (true, Some(e)) => Err(e.into()),
                (true, None) => Err(unresolvable(&host).into()),
                (false, _) => Ok(Box::new(allowed.into_iter()) as Addrs),
            }
        })
    }
}

/// The reserved class of an address, or `None` for a public one. IPv6 forms that embed an
/// IPv4 address (mapped, compatible, NAT64, 6to4) take the class of that address.
pub fn reserved(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => reserved_v4(v4),
        IpAddr::V6(v6) => reserved_v6(v6),
    }
}

fn in_v4(ip: Ipv4Addr, net: [u8; 4], bits: u32) -> bool {
    let mask = if bits == 0 { 0 } else { u32::MAX << (32 - bits) };
    u32::from(ip) & mask == u32::from(Ipv4Addr::from(net)) & mask
}

fn reserved_v4(ip: Ipv4Addr) -> Option<&'static str> {
    const CLASSES: [([u8; 4], u32, &str); 15] = [
        ([0, 0, 0, 0], 8, "unspecified (this network)"),
        ([10, 0, 0, 0], 8, "private"),
        ([100, 64, 0, 0], 10, "shared (CGNAT)"),
        ([127, 0, 0, 0], 8, "loopback"),
        ([169, 254, 0, 0], 16, "link-local"),
        ([172, 16, 0, 0], 12, "private"),
        ([192, 0, 0, 0], 24, "IETF protocol assignment"),
        ([192, 0, 2, 0], 24, "documentation"),
        ([192, 88, 99, 0], 24, "6to4 relay"),
        ([192, 168, 0, 0], 16, "private"),
        ([198, 18, 0, 0], 15, "benchmarking"),
        ([198, 51, 100, 0], 24, "documentation"),
        ([203, 0, 113, 0], 24, "documentation"),
        ([255, 255, 255, 255], 32, "broadcast"),
        ([224, 0, 0, 0], 4, "multicast"),
    ];
    if let Some((_, _, class)) = CLASSES.iter().find(|(net, bits, _)| in_v4(ip, *net, *bits)) {
        return Some(class);
    }
    in_v4(ip, [240, 0, 0, 0], 4).then_some("reserved")
}

fn in_v6(ip: Ipv6Addr, net: Ipv6Addr, bits: u32) -> bool {
    let mask = if bits == 0 { 0 } else { u128::MAX << (128 - bits) };
    u128::from(ip) & mask == u128::from(net) & mask
}

fn reserved_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let v6 = |s: &str| s.parse::<Ipv6Addr>().expect("a valid prefix");
    let bits = u128::from(ip);
    if ip.is_unspecified() {
        return Some("unspecified");
    }
    if ip.is_loopback() {
        return Some("loopback");
    }
    // Forms that carry an IPv4 address: it decides.
    if let Some(v4) = ip.to_ipv4_mapped() {
        return reserved_v4(v4);
    }
    if in_v6(ip, Ipv6Addr::UNSPECIFIED, 96) {
        return reserved_v4(Ipv4Addr::from(bits as u32)).or(Some("IPv4-compatible (deprecated)"));
    }
    if in_v6(ip, v6("64:ff9b::"), 96) {
        return reserved_v4(Ipv4Addr::from(bits as u32));
    }
    if in_v6(ip, v6("2002::"), 16) {
        return reserved_v4(Ipv4Addr::from((bits >> 80) as u32));
    }
    const CLASSES: [(&str, u32, &str); 10] = [
        ("64:ff9b:1::", 48, "local-use NAT64"),
        ("100::", 64, "discard-only"),
        ("2001:db8::", 32, "documentation"),
        ("2001::", 23, "IETF protocol assignment"),
        ("3fff::", 20, "documentation"),
        ("5f00::", 16, "segment routing"),
        ("fc00::", 7, "unique-local"),
        ("fe80::", 10, "link-local"),
        ("fec0::", 10, "site-local (deprecated)"),
        ("ff00::", 8, "multicast"),
    ];
    CLASSES.iter().find(|(net, len, _)| in_v6(ip, v6(net), *len)).map(|(_, _, class)| *class)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(s: &str) -> Option<&'static str> {
        reserved(s.parse().unwrap())
    }

    #[test]
    fn every_reserved_class_is_refused() {
        for (ip, expected) in [
            ("127.0.0.1", "loopback"),
            ("127.255.0.9", "loopback"),
            ("::1", "loopback"),
            ("169.254.169.254", "link-local"),
            ("fe80::1", "link-local"),
            ("10.1.2.3", "private"),
            ("172.16.0.1", "private"),
            ("172.31.255.255", "private"),
            ("192.168.1.1", "private"),
            ("100.64.0.1", "shared (CGNAT)"),
            ("100.127.255.254", "shared (CGNAT)"),
            ("fd00::1", "unique-local"),
            ("fc00::1", "unique-local"),
            ("0.0.0.0", "unspecified (this network)"),
            ("::", "unspecified"),
            ("224.0.0.1", "multicast"),
            ("239.255.255.250", "multicast"),
            ("ff02::1", "multicast"),
            ("255.255.255.255", "broadcast"),
            ("192.0.2.1", "documentation"),
            ("198.51.100.1", "documentation"),
            ("203.0.113.1", "documentation"),
            ("2001:db8::1", "documentation"),
            ("240.0.0.1", "reserved"),
            ("198.18.0.1", "benchmarking"),
            // IPv4 inside IPv6: mapped, compatible, NAT64, 6to4.
            ("::ffff:127.0.0.1", "loopback"),
            ("::ffff:169.254.169.254", "link-local"),
            ("::ffff:10.0.0.1", "private"),
            ("::127.0.0.1", "loopback"),
            ("64:ff9b::a9fe:a9fe", "link-local"),
            ("2002:7f00:0001::", "loopback"),
            ("2002:c0a8:0101::1", "private"),
        ] {
            assert_eq!(class(ip), Some(expected), "{ip}");
        }
    }

    #[test]
    fn public_addresses_pass() {
        for ip in [
            "93.184.216.34",
            "1.1.1.1",
            "8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:0808:0808::1",
        ] {
            assert_eq!(class(ip), None, "{ip}");
        }
    }

    #[test]
    fn the_allow_list_opens_only_its_networks() {
        let policy = Outbound::new(vec!["127.0.0.1/32".parse().unwrap()]);
        assert_eq!(policy.refusal("127.0.0.1".parse().unwrap()), None);
        assert_eq!(policy.refusal("::ffff:127.0.0.1".parse().unwrap()), None, "mapped form of an allowed address");
        assert_eq!(policy.refusal("127.0.0.2".parse().unwrap()), Some("loopback"));
        assert_eq!(policy.refusal("10.0.0.1".parse().unwrap()), Some("private"));
    }

    #[tokio::test]
    async fn urls_are_checked_literally_and_by_resolution() {
        let policy = Outbound::new(Vec::new());
        let code = |r: Result<Url>| r.unwrap_err().code();
        assert_eq!(code(policy.check_url("http://169.254.169.254/latest/meta-data/").await), "target_refused");
        assert_eq!(code(policy.check_url("http://127.0.0.1:6379/").await), "target_refused");
        assert_eq!(code(policy.check_url("http://[::ffff:127.0.0.1]/").await), "target_refused");
        assert_eq!(code(policy.check_url("http://localhost:9/").await), "target_refused");
        assert_eq!(code(policy.check_url("http://2130706433/").await), "target_refused", "127.0.0.1 as one number");
        assert_eq!(code(policy.check_url("ftp://example.com/").await), "bad_url");
        assert_eq!(code(policy.check_url("not a url").await), "bad_url");
        assert_eq!(code(policy.check_url("http://name.invalid/").await), "target_unresolvable");
        assert!(policy.check_url("http://93.184.216.34/hook").await.is_ok(), "a public literal address passes");
    }
}
