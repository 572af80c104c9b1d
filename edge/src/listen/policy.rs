//! Per-connection policy, one owner for the TCP and QUIC listeners (`[limits]`):
//!
//! - how many connections the PoP holds, in all and per client address ([`Connections`]);
//! - when a silent connection is closed: no byte either way for `idle_timeout`, or no
//!   request within `header_read_timeout` of accepting it ([`Activity`], [`Watched`]);
//! - how long a request body may go without bytes (`body_timeout`, [`Connections::request_body`]).
//!
//! Protocol-specific limits (hyper's header timeout, h2 and h3 settings, QUIC transport
//! parameters) are set by the listeners from the same [`Limits`].

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Frame, SizeHint};
use pop_config::Limits;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use crate::metrics::EdgeMetrics;
use crate::respond::Body;

type Labels = Vec<(&'static str, &'static str)>;

/// Why a connection was refused on arrival.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `max_connections` are open.
    Capacity,
    /// `max_connections_per_address` are open from this address.
    PerAddress,
}

impl Refusal {
    /// The metrics label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Capacity => "capacity",
            Self::PerAddress => "per_address",
        }
    }
}

#[derive(Debug, Default)]
struct Counts {
    total: u32,
    by_address: HashMap<IpAddr, u32>,
}

/// The viewer connections held, and the limits they are held to.
#[derive(Debug)]
pub struct Connections {
    limits: Limits,
    counts: Arc<Mutex<Counts>>,
    open: Gauge,
    refused: Family<Labels, Counter>,
    timeouts: Family<Labels, Counter>,
}

impl Connections {
    /// Connections under `limits`, counted in `metrics`.
    pub fn new(limits: Limits, metrics: &EdgeMetrics) -> Self {
        Self {
            limits,
            counts: Arc::default(),
            open: metrics.connections_open.clone(),
            refused: metrics.connections_refused.clone(),
            timeouts: metrics.timeouts.clone(),
        }
    }

    /// The limits.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Takes a place for a connection from `peer` (an address the transport has proven, as a
    /// TCP handshake does), held until the [`Admitted`] is dropped.
    pub fn admit(&self, peer: IpAddr) -> Result<Admitted, Refusal> {
        let mut place = self.arrive()?;
        place.settle(peer)?;
        Ok(place)
    }

    /// Takes a place among `max_connections` for a connection whose address is not proven yet
    /// (a QUIC Initial may carry any source address): its address share is claimed with
    /// [`Admitted::settle`] once the handshake has proven it, so forged packets cannot use up
    /// someone else's share.
    pub fn arrive(&self) -> Result<Admitted, Refusal> {
        let mut counts = self.counts.lock().expect("connections lock");
        if counts.total >= self.limits.max_connections {
            self.refused.get_or_create(&vec![("reason", Refusal::Capacity.label())]).inc();
            return Err(Refusal::Capacity);
        }
        counts.total += 1;
        self.open.inc();
        Ok(Admitted {
            counts: self.counts.clone(),
            open: self.open.clone(),
            refused: self.refused.clone(),
            per_address: self.limits.max_connections_per_address,
            peer: None,
        })
    }

    /// Counts a connection or request cut off by a limit.
    pub fn timed_out(&self, kind: &'static str) {
        self.timeouts.get_or_create(&vec![("kind", kind)]).inc();
    }

    /// `body` failing with a stall once it has waited `body_timeout` for its next bytes. The
    /// wait starts when the reader asks, so a slow reader (the origin) is not the client's fault.
    pub fn request_body(&self, body: Body) -> Body {
        let stalled = self.timeouts.get_or_create(&vec![("kind", "body")]).clone();
        TimedBody { inner: body, gap: self.limits.body_timeout, sleep: None, stalled }.boxed()
    }
}

/// A connection's place; dropping it frees the place (and its address's share).
#[derive(Debug)]
pub struct Admitted {
    counts: Arc<Mutex<Counts>>,
    open: Gauge,
    refused: Family<Labels, Counter>,
    per_address: u32,
    peer: Option<IpAddr>,
}

impl Admitted {
    /// Claims the connection's share of `peer`'s `max_connections_per_address`.
    pub fn settle(&mut self, peer: IpAddr) -> Result<(), Refusal> {
        if self.peer.is_some() {
            return Ok(());
        }
        let mut counts = self.counts.lock().expect("connections lock");
        let held = counts.by_address.entry(peer).or_default();
        if *held >= self.per_address {
            self.refused.get_or_create(&vec![("reason", Refusal::PerAddress.label())]).inc();
            return Err(Refusal::PerAddress);
        }
        *held += 1;
        self.peer = Some(peer);
        Ok(())
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().expect("connections lock");
        counts.total = counts.total.saturating_sub(1);
        if let Some(n) = self.peer.and_then(|peer| counts.by_address.get_mut(&peer)) {
            *n -= 1;
        }
        counts.by_address.retain(|_, n| *n > 0);
        self.open.dec();
    }
}

/// When a connection last moved a byte, and whether it has carried a request.
#[derive(Debug)]
pub struct Activity {
    since: Instant,
    /// Milliseconds after `since` of the last byte read or written.
    last: AtomicU64,
    requests: AtomicU64,
}

impl Default for Activity {
    fn default() -> Self {
        Self { since: Instant::now(), last: AtomicU64::new(0), requests: AtomicU64::new(0) }
    }
}

impl Activity {
    fn touch(&self) {
        self.last.store(self.since.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    /// A request arrived (its headers are in).
    pub fn request(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    /// Resolves once no byte has moved for `idle`.
    pub async fn silent_for(&self, idle: Duration) {
        loop {
            let last = self.last.load(Ordering::Relaxed);
            tokio::time::sleep_until(self.since + Duration::from_millis(last) + idle).await;
            if self.last.load(Ordering::Relaxed) == last {
                return;
            }
        }
    }

    /// Resolves if no request has arrived within `within` of the connection's start; never
    /// otherwise. It bounds the TLS handshake and an h2 client that sends no request.
    pub async fn no_request_within(&self, within: Duration) {
        tokio::time::sleep_until(self.since + within).await;
        if self.requests.load(Ordering::Relaxed) > 0 {
            std::future::pending::<()>().await;
        }
    }
}

/// An IO that records its activity: every read or write that moves bytes.
#[derive(Debug)]
pub struct Watched<T> {
    inner: T,
    activity: Arc<Activity>,
}

impl<T> Watched<T> {
    /// Watches `inner`.
    pub fn new(inner: T, activity: Arc<Activity>) -> Self {
        Self { inner, activity }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(poll, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.touch();
        }
        poll
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(poll, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        poll
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(poll, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        poll
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The error a stalled request body ends with.
#[derive(Debug, thiserror::Error)]
#[error("no request body bytes for {0:?}")]
struct Stalled(Duration);

/// How long a request body had been silent, if `e` is its stall.
pub fn stall_of(e: &io::Error) -> Option<Duration> {
    e.get_ref().and_then(|inner| inner.downcast_ref::<Stalled>()).map(|s| s.0)
}

struct TimedBody {
    inner: Body,
    gap: Duration,
    sleep: Option<Pin<Box<Sleep>>>,
    stalled: Counter,
}

impl hyper::body::Body for TimedBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.sleep = None;
                Poll::Ready(frame)
            }
            Poll::Pending => {
                let gap = this.gap;
                let sleep = this.sleep.get_or_insert_with(|| Box::pin(tokio::time::sleep(gap)));
                if sleep.as_mut().poll(cx).is_ready() {
                    this.stalled.inc();
                    return Poll::Ready(Some(Err(io::Error::new(io::ErrorKind::TimedOut, Stalled(gap)))));
                }
                Poll::Pending
            }
        }
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

    #[test]
    fn places_per_address_and_in_all() {
        let limits = Limits { max_connections: 3, max_connections_per_address: 2, ..Limits::default() };
        let c = Connections::new(limits, &EdgeMetrics::default());
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let a1 = c.admit(a).unwrap();
        let _a2 = c.admit(a).unwrap();
        assert_eq!(c.admit(a).unwrap_err(), Refusal::PerAddress);
        let _b1 = c.admit(b).unwrap();
        assert_eq!(c.admit(b).unwrap_err(), Refusal::Capacity);
        drop(a1);
        let mut unproven = c.arrive().expect("a place in all, before the address is known");
        assert_eq!(unproven.settle(a), Ok(()));
        drop(unproven);
        let _a3 = c.admit(a).unwrap();
        assert_eq!(c.arrive().unwrap_err(), Refusal::Capacity);
        drop(_a2);
        let mut late = c.arrive().unwrap();
        assert_eq!(late.settle(a), Ok(()), "a freed share is taken again");
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_body_stalls_and_a_flowing_one_does_not() {
        let c = Connections::new(
            Limits { body_timeout: Duration::from_secs(1), ..Limits::default() },
            &EdgeMetrics::default(),
        );
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, io::Error>>(1);
        let body = http_body_util::StreamBody::new(futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|f| (f, rx))
        }));
        let mut body = c.request_body(body.boxed());
        let feeder = tokio::spawn(async move {
            for _ in 0..3 {
                tokio::time::sleep(Duration::from_millis(900)).await;
                tx.send(Ok(Frame::data(Bytes::from_static(b"x")))).await.unwrap();
            }
            std::future::pending::<()>().await;
        });
        for _ in 0..3 {
            assert!(body.frame().await.unwrap().is_ok(), "900 ms gaps are within 1 s");
        }
        let err = body.frame().await.unwrap().unwrap_err();
        assert_eq!(stall_of(&err), Some(Duration::from_secs(1)));
        feeder.abort();
    }
}
