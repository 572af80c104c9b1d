//! Connection and stream policy, in one place: how long a client may take to send a request
//! head or the next piece of a body, how long a connection may sit idle, how many
//! connections and event streams there may be (overall and per client address), and the
//! HTTP/2 limits. `server` applies it to every connection, `api::events` to every stream.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto;
use ipnet::IpNet;
use prometheus_client::metrics::counter::Counter;
use tokio::sync::watch;
use tokio::time::{Instant, Sleep};

/// Every timeout and limit of the HTTP server and the event streams.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// A new connection must start its first request within this, and an HTTP/1.1 request
    /// head must arrive within it (hyper's timer also runs while a keep-alive connection
    /// waits for its next request). Also bounds the TLS handshake.
    pub header_timeout: Duration,
    /// A connection with no request in progress (HTTP/1.1 between requests, HTTP/2 with no
    /// open stream) is closed after this.
    pub idle_timeout: Duration,
    /// Longest wait for the next piece of a request body; a stalled body is cut there.
    pub body_timeout: Duration,
    /// Open connections, all clients together; the next one is closed at once.
    pub max_connections: usize,
    /// Open connections from one client address (IPv6: one /64).
    pub max_connections_per_address: usize,
    /// Networks not subject to the per-address limits (PoPs, load balancers); they still
    /// count against the overall caps.
    pub exempt: Vec<IpNet>,
    /// HTTP/2 streams a client may have open on one connection.
    pub h2_max_concurrent_streams: u32,
    /// Largest HTTP/2 header list a client may send (decoded bytes).
    pub h2_max_header_bytes: u32,
    /// HTTP/2 keep-alive: ping every this often and close a peer that does not answer
    /// within as long again (`None`: no pings).
    pub h2_keepalive: Option<Duration>,
    /// Server-sent event streams.
    pub sse: SseLimits,
}

/// Limits of `GET /v1/videos/{id}/events`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseLimits {
    /// Open streams, all clients together (`503 streams_exhausted` past it).
    pub max_streams: usize,
    /// Open streams from one client address (`429 too_many_streams` past it).
    pub per_address: usize,
    /// A stream ends after this, with a `reconnect` event; the client reconnects.
    pub max_lifetime: Duration,
    /// The reconnect delay announced to clients (`retry:`).
    pub retry: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            body_timeout: Duration::from_secs(30),
            max_connections: 4096,
            max_connections_per_address: 256,
            exempt: Vec::new(),
            h2_max_concurrent_streams: 100,
            h2_max_header_bytes: 16 * 1024,
            h2_keepalive: Some(Duration::from_secs(30)),
            sse: SseLimits {
                max_streams: 4096,
                per_address: 16,
                max_lifetime: Duration::from_secs(600),
                retry: Duration::from_secs(3),
            },
        }
    }
}

impl Limits {
    /// What is wrong with these limits, by key.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let mut positive = |key: &str, ok: bool| {
            if !ok {
                problems.push(format!("{key}: must be more than 0"));
            }
        };
        positive("header_timeout_secs", !self.header_timeout.is_zero());
        positive("idle_timeout_secs", !self.idle_timeout.is_zero());
        positive("body_timeout_secs", !self.body_timeout.is_zero());
        positive("max_connections", self.max_connections > 0);
        positive("max_connections_per_address", self.max_connections_per_address > 0);
        positive("h2_max_concurrent_streams", self.h2_max_concurrent_streams > 0);
        positive("h2_max_header_bytes", self.h2_max_header_bytes > 0);
        positive("sse_max_streams", self.sse.max_streams > 0);
        positive("sse_streams_per_address", self.sse.per_address > 0);
        positive("sse_max_lifetime_secs", !self.sse.max_lifetime.is_zero());
        problems
    }

    /// The hyper connection builder: HTTP/1.1 and HTTP/2 with a timer (without one hyper's
    /// header timeout never fires) and these limits.
    pub fn http_builder(&self) -> auto::Builder<TokioExecutor> {
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder.http1().timer(TokioTimer::new()).header_read_timeout(self.header_timeout);
        let mut h2 = builder.http2();
        h2.timer(TokioTimer::new())
            .max_concurrent_streams(self.h2_max_concurrent_streams)
            .max_header_list_size(self.h2_max_header_bytes)
            .keep_alive_interval(self.h2_keepalive);
        if let Some(every) = self.h2_keepalive {
            h2.keep_alive_timeout(every);
        }
        builder
    }

    /// A gate for connections under these limits.
    pub fn connection_gate(&self) -> Arc<Gate> {
        Gate::new(self.max_connections, self.max_connections_per_address, self.exempt.clone())
    }

    /// A gate for event streams under these limits.
    pub fn stream_gate(&self) -> Arc<Gate> {
        Gate::new(self.sse.max_streams, self.sse.per_address, self.exempt.clone())
    }
}

/// The client's address, put in every request's extensions by the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub SocketAddr);

/// What per-address limits count under: an IPv4 address, or the /64 of an IPv6 one (one
/// subscriber usually holds a whole /64). IPv4-mapped IPv6 counts as its IPv4 address.
pub fn address_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(Ipv6Addr::from(prefix))
        }
        v4 => v4,
    }
}

/// Why a gate refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The overall cap is reached.
    Full,
    /// This client address holds its share.
    PerAddress,
}

impl Refusal {
    /// Metric label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Full => "full",
            Self::PerAddress => "per_address",
        }
    }
}

/// Counts holders overall and per client address, refusing past either cap. One for
/// connections per listener, one for event streams.
#[derive(Debug)]
pub struct Gate {
    total_cap: usize,
    per_address_cap: usize,
    exempt: Vec<IpNet>,
    held: Mutex<Held>,
}

#[derive(Debug, Default)]
struct Held {
    total: usize,
    by_address: HashMap<IpAddr, usize>,
}

/// One admitted holder; dropping it gives the place back.
#[derive(Debug)]
pub struct Pass {
    gate: Arc<Gate>,
    key: Option<IpAddr>,
}

impl Gate {
    /// A gate with these caps.
    pub fn new(total_cap: usize, per_address_cap: usize, exempt: Vec<IpNet>) -> Arc<Self> {
        Arc::new(Self { total_cap, per_address_cap, exempt, held: Mutex::new(Held::default()) })
    }

    /// Admits one more holder from `ip`, or says why not.
    pub fn enter(self: &Arc<Self>, ip: IpAddr) -> Result<Pass, Refusal> {
        let canonical = ip.to_canonical();
        let key = (!self.exempt.iter().any(|n| n.contains(&canonical))).then(|| address_key(canonical));
        let mut held = self.held.lock().expect("gate lock");
        if held.total >= self.total_cap {
            return Err(Refusal::Full);
        }
        if let Some(k) = key {
            let n = held.by_address.entry(k).or_default();
            if *n >= self.per_address_cap {
                return Err(Refusal::PerAddress);
            }
            *n += 1;
        }
        held.total += 1;
        Ok(Pass { gate: self.clone(), key })
    }

    /// Holders now.
    pub fn open(&self) -> usize {
        self.held.lock().expect("gate lock").total
    }
}

impl Drop for Pass {
    fn drop(&mut self) {
        let mut held = self.gate.held.lock().expect("gate lock");
        held.total -= 1;
        if let Some(k) = self.key
            && let Some(n) = held.by_address.get_mut(&k)
        {
            *n -= 1;
            if *n == 0 {
                held.by_address.remove(&k);
            }
        }
    }
}

/// Why reading a request body stopped early.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// No piece of the body arrived within the body timeout.
    #[error("no body bytes arrived for {0:?}")]
    Stalled(Duration),
    /// The connection failed or the client went away.
    #[error(transparent)]
    Transport(#[from] hyper::Error),
}

/// A request body that fails with [`BodyError::Stalled`] when the client sends nothing for
/// the body timeout while a handler waits for it. The clock runs only while the handler is
/// waiting, so a handler busy with what arrived (writing, hashing) is never the cause.
#[derive(Debug)]
pub struct RequestBody {
    inner: Incoming,
    timeout: Duration,
    waiting: Option<Pin<Box<Sleep>>>,
    stalled: bool,
    stalls: Counter,
}

impl RequestBody {
    /// Wraps hyper's body; `stalls` counts bodies cut.
    pub fn new(inner: Incoming, timeout: Duration, stalls: Counter) -> Self {
        Self { inner, timeout, waiting: None, stalled: false, stalls }
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = &mut *self;
        if this.stalled {
            return Poll::Ready(None);
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.waiting = None;
                Poll::Ready(frame.map(|f| f.map_err(BodyError::from)))
            }
            Poll::Pending => {
                let timeout = this.timeout;
                let clock = this.waiting.get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                if clock.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                this.waiting = None;
                this.stalled = true;
                this.stalls.inc();
                Poll::Ready(Some(Err(BodyError::Stalled(timeout))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.stalled || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Why an idle connection was closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdleClose {
    /// It never started a request within the header timeout.
    FirstRequest,
    /// No request was in progress for the idle timeout.
    Idle,
}

impl IdleClose {
    /// Metric label.
    pub fn label(self) -> &'static str {
        match self {
            Self::FirstRequest => "first_request",
            Self::Idle => "idle",
        }
    }
}

/// Requests in progress on one connection, and since when it has had none.
#[derive(Debug)]
pub struct Activity {
    load: watch::Sender<Load>,
}

#[derive(Debug, Clone, Copy)]
struct Load {
    in_flight: usize,
    idle_since: Instant,
    served: bool,
}

/// One request in progress: from the handler's start until its response body is finished
/// or dropped.
#[derive(Debug)]
pub struct InFlight {
    activity: Arc<Activity>,
}

impl Activity {
    /// A connection accepted now.
    pub fn new() -> Arc<Self> {
        let load = Load { in_flight: 0, idle_since: Instant::now(), served: false };
        Arc::new(Self { load: watch::Sender::new(load) })
    }

    /// A request starts.
    pub fn begin(self: &Arc<Self>) -> InFlight {
        self.load.send_modify(|l| {
            l.in_flight += 1;
            l.served = true;
        });
        InFlight { activity: self.clone() }
    }

    /// Resolves when the connection has had no request in progress for too long: the
    /// header timeout before its first request, the idle timeout after.
    pub async fn expired(&self, limits: &Limits) -> IdleClose {
        let mut changes = self.load.subscribe();
        loop {
            let load = *changes.borrow_and_update();
            if load.in_flight > 0 {
                let _ = changes.changed().await;
                continue;
            }
            let (limit, reason) = if load.served {
                (limits.idle_timeout, IdleClose::Idle)
            } else {
                (limits.header_timeout, IdleClose::FirstRequest)
            };
            tokio::select! {
                () = tokio::time::sleep_until(load.idle_since + limit) => return reason,
                _ = changes.changed() => {}
            }
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.activity.load.send_modify(|l| {
            l.in_flight -= 1;
            if l.in_flight == 0 {
                l.idle_since = Instant::now();
            }
        });
    }
}

/// A response body that keeps its request counted as in progress until it is sent.
#[derive(Debug)]
pub struct Tracked<B> {
    inner: B,
    _in_flight: InFlight,
}

impl<B> Tracked<B> {
    /// `inner`, counted until finished or dropped.
    pub fn new(inner: B, in_flight: InFlight) -> Self {
        Self { inner, _in_flight: in_flight }
    }
}

impl<B: Body + Unpin> Body for Tracked<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn gates_cap_overall_and_per_address_and_give_places_back() {
        let gate = Gate::new(3, 2, vec!["10.0.0.0/8".parse().unwrap()]);
        let a1 = gate.enter(ip("192.0.2.1")).unwrap();
        let _a2 = gate.enter(ip("::ffff:192.0.2.1")).unwrap();
        assert_eq!(gate.enter(ip("192.0.2.1")).unwrap_err(), Refusal::PerAddress, "mapped counts as IPv4");
        let _exempt = gate.enter(ip("10.1.2.3")).unwrap();
        assert_eq!(gate.enter(ip("10.1.2.3")).unwrap_err(), Refusal::Full, "exempt still counts overall");
        drop(a1);
        assert_eq!(gate.open(), 2);
        let _again = gate.enter(ip("192.0.2.1")).unwrap();
    }

    #[test]
    fn ipv6_counts_per_64() {
        assert_eq!(address_key(ip("2001:db8:1:2:aaaa::1")), ip("2001:db8:1:2::"));
        assert_eq!(address_key(ip("2001:db8:1:2:bbbb::9")), ip("2001:db8:1:2::"));
        assert_ne!(address_key(ip("2001:db8:1:3::1")), ip("2001:db8:1:2::"));
        assert_eq!(address_key(ip("::ffff:198.51.100.7")), ip("198.51.100.7"));
    }

    #[test]
    fn zero_limits_are_named() {
        let limits = Limits { body_timeout: Duration::ZERO, max_connections: 0, ..Limits::default() };
        assert_eq!(
            limits.problems(),
            ["body_timeout_secs: must be more than 0", "max_connections: must be more than 0"]
        );
        assert!(Limits::default().problems().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn idle_connections_expire_first_request_then_idle() {
        let limits = Limits {
            header_timeout: Duration::from_secs(2),
            idle_timeout: Duration::from_secs(5),
            ..Limits::default()
        };
        let activity = Activity::new();
        let started = Instant::now();
        assert_eq!(activity.expired(&limits).await, IdleClose::FirstRequest);
        assert_eq!(started.elapsed(), Duration::from_secs(2));
        let request = activity.begin();
        let expiry = tokio::spawn({
            let activity = activity.clone();
            let limits = limits.clone();
            async move { activity.expired(&limits).await }
        });
        tokio::time::sleep(Duration::from_secs(30)).await;
        assert!(!expiry.is_finished(), "a request in progress keeps the connection");
        drop(request);
        let idle_from = Instant::now();
        assert_eq!(expiry.await.unwrap(), IdleClose::Idle);
        assert_eq!(idle_from.elapsed(), Duration::from_secs(5));
    }
}
