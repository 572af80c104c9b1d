//! The origin, seen from a PoP: objects by path with the PoP's own credential, the video API
//! passed through, uploads forwarded. Bounded connect and read timeouts. [`Upstream::failover`]
//! is the one owner of which origin URL a request tries next, for every route; each route says
//! which failures the next origin may fix and are safe to try again.
//!
//! Objects may come from parent PoPs (regional shields) instead: they are asked first, in
//! order, with this PoP's tier credential (`pop_config::tier`), and the origin only when no
//! parent answers, so a shield that dies costs its children a detour, not an outage.

mod objects;

use std::future::Future;
use std::time::Duration;

use http::{HeaderMap, HeaderValue, StatusCode};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

use crate::error::EdgeError;
use crate::metrics::Labels;

pub use objects::{Failure, ObjectClient, ObjectResponse, READ_SIZE};

/// How to reach the origin(s).
#[derive(Debug, Clone)]
pub struct Upstream {
    client: reqwest::Client,
    objects: ObjectClient,
    passthrough: reqwest::Client,
    origins: Vec<String>,
    credential: String,
    parents: Vec<String>,
    tier_credential: String,
    /// This PoP's id, added to `CDN-Loop` when it asks a parent.
    pop_id: String,
    /// The parents' ids, learned from their answers (`x-pop`): a child that is one of them
    /// closes a cycle (`is_parent`).
    parent_ids: std::sync::Arc<std::sync::RwLock<Vec<String>>>,
    /// Until when (Unix ms) the parents are passed over after none could be reached.
    parents_down_until: std::sync::Arc<std::sync::atomic::AtomicI64>,
    retries: u32,
    failovers: Family<Labels, Counter>,
}

/// What a request to the origin is for: the `route` label of `edge_origin_failovers_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// A cacheable object (or a chunk of one).
    Object,
    /// The video API or a tus upload, passed through uncached.
    Passthrough,
    /// The PoP's heartbeat (popularity, purges, prefetch).
    Heartbeat,
    /// A cacheable object asked of a parent PoP.
    Parent,
}

impl Route {
    fn label(self) -> &'static str {
        match self {
            Self::Object => "object",
            Self::Passthrough => "passthrough",
            Self::Heartbeat => "heartbeat",
            Self::Parent => "parent",
        }
    }
}

/// What one try at one origin came to.
#[derive(Debug)]
pub enum Attempt<T> {
    /// The end of it: an answer to hand on, or an error that asking elsewhere must not or
    /// cannot change.
    Done(Result<T, EdgeError>),
    /// This origin failed in a way the next may not, and asking again is safe.
    Next(EdgeError),
}

impl Upstream {
    /// A client for `origins` (tried in order), presenting this PoP's `credential`; every move
    /// to the next origin is counted in `failovers`.
    pub fn new(
        origins: Vec<String>,
        credential: String,
        connect: Duration,
        read: Duration,
        retries: u32,
        failovers: Family<Labels, Counter>,
    ) -> Self {
        let builder =
            || reqwest::Client::builder().connect_timeout(connect).pool_max_idle_per_host(64).tcp_nodelay(true);
        let client = builder().read_timeout(read).build().expect("http client");
        // A read timeout would also run while a request body is still being sent, cutting off
        // an upload that takes longer than `read` to arrive; the pass-through bounds the wait
        // for the origin's answer itself, from the end of the body (`proxy.rs`).
        let passthrough = builder().build().expect("http client");
        let objects = ObjectClient::new(connect, read);
        let tier_credential = pop_config::tier::credential(&credential);
        let trim = |urls: Vec<String>| urls.into_iter().map(|o| o.trim_end_matches('/').to_owned()).collect();
        Self {
            client,
            objects,
            passthrough,
            origins: trim(origins),
            credential,
            parents: Vec::new(),
            tier_credential,
            pop_id: String::new(),
            parent_ids: Default::default(),
            parents_down_until: Default::default(),
            retries,
            failovers,
        }
    }

    /// The same, asking `parents` (parent PoPs) for objects before the origins, as PoP `pop_id`.
    pub fn with_parents(mut self, parents: Vec<String>, pop_id: &str) -> Self {
        self.parents = parents.into_iter().map(|p| p.trim_end_matches('/').to_owned()).collect();
        self.pop_id = pop_id.to_owned();
        self
    }

    /// Whether PoP `id` has answered as one of this PoP's parents.
    pub fn is_parent(&self, id: &str) -> bool {
        self.parent_ids.read().unwrap_or_else(std::sync::PoisonError::into_inner).iter().any(|p| p == id)
    }

    /// Remembers the id a parent's answer names, once.
    fn heard_from_parent(&self, answer: &ObjectResponse) {
        let Some(id) = answer.headers().get("x-pop").and_then(|v| v.to_str().ok()) else { return };
        if !self.is_parent(id) {
            self.parent_ids.write().unwrap_or_else(std::sync::PoisonError::into_inner).push(id.to_owned());
        }
    }

    /// The credential this PoP presents as a bearer token.
    pub fn credential(&self) -> &str {
        &self.credential
    }

    /// The HTTP client (pooled connections to the origins), with a read timeout.
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// The HTTP client for requests passed through with their bodies: no read timeout.
    pub fn passthrough(&self) -> &reqwest::Client {
        &self.passthrough
    }

    /// The origin base URLs (for rewriting the origin's absolute URLs to this PoP's).
    pub fn origins(&self) -> &[String] {
        &self.origins
    }

    /// `GET /v1/objects/{key}` with `Range: bytes={first}-{last}`: a cacheable object, or the
    /// part of one a PoP keeps as one entry.
    /// Parents first, with the tier credential and `CDN-Loop` (`via`, the list a child's request
    /// came with, and this PoP); then the origins.
    pub async fn object(
        &self,
        key: &str,
        (first, last): (u64, u64),
        via: Option<&str>,
    ) -> Result<ObjectResponse, EdgeError> {
        let range = HeaderValue::from_str(&format!("bytes={first}-{last}")).expect("a range is a header value");
        // Only for parents. An id or a list that is no header value is left out: the loop is
        // then caught one hop later.
        let cdn_loop = (!self.parents.is_empty())
            .then(|| HeaderValue::from_str(&crate::cdn_loop::with(via, &self.pop_id)).ok())
            .flatten();
        let ask = |base: &str, bearer: &str, parent: bool| {
            let mut headers = HeaderMap::with_capacity(3);
            headers.insert(http::header::RANGE, range.clone());
            if let (true, Some(list)) = (parent, &cdn_loop) {
                headers.insert(crate::cdn_loop::HEADER, list.clone());
            }
            let auth = HeaderValue::from_str(&format!("Bearer {bearer}")).map(|mut auth| {
                auth.set_sensitive(true);
                auth
            });
            let url = format!("{base}/v1/objects/{key}");
            async move {
                // A credential that is no header value is this PoP's fault: failing over tells
                // the logs, where a request without it would earn a final 401.
                let auth = auth.map_err(|_| Failure::Broken("the PoP credential is not a header value".into()))?;
                headers.insert(http::header::AUTHORIZATION, auth);
                self.objects.get(&url, headers).await
            }
        };
        let down = self.parents_down_until.load(std::sync::atomic::Ordering::Relaxed) > crate::now_ms();
        if !self.parents.is_empty() && !down {
            let from_parent = self.failover_over(&self.parents, 0, Route::Parent, |base| {
                let request = ask(base, &self.tier_credential, true);
                let base = base.to_owned();
                async move {
                    let answer = request.await;
                    if let Ok(r) = &answer {
                        self.heard_from_parent(r);
                    }
                    parent_answered(&base, answer)
                }
            });
            match from_parent.await {
                // A parent that does not know this PoP yet (its heartbeat brings the verifiers):
                // the origin still answers.
                Ok(r) if matches!(r.status().as_u16(), 401 | 403) => {
                    tracing::warn!(status = %r.status(), "a parent refused this PoP's tier credential; asking the origin");
                    self.failovers.get_or_create(&vec![("route", Route::Parent.label())]).inc();
                }
                // The request came back to a PoP it had passed: the parents form a cycle. The
                // origin answers; the parents stay in use for objects that do not loop.
                Ok(r) if r.status() == StatusCode::LOOP_DETECTED => {
                    tracing::warn!(via = ?cdn_loop, "parents form a cycle (CDN-Loop); asking the origin");
                    self.failovers.get_or_create(&vec![("route", Route::Parent.label())]).inc();
                }
                // None could be reached (or one is behind on takedowns): the origin answers, and
                // the parents are passed over for a while rather than waited on at every miss.
                Err(e) if e.is_retryable() && !matches!(e, EdgeError::OriginBusy) => {
                    tracing::info!(error = %e, detail = ?e.detail(), "no parent answered; asking the origin");
                    self.failovers.get_or_create(&vec![("route", Route::Parent.label())]).inc();
                    let until = crate::now_ms() + PARENTS_DOWN.as_millis() as i64;
                    self.parents_down_until.store(until, std::sync::atomic::Ordering::Relaxed);
                }
                answered => return answered,
            }
        }
        self.failover(Route::Object, |base| {
            let request = ask(base, &self.credential, false);
            let base = base.to_owned();
            async move { answered(&base, request.await) }
        })
        .await
    }

    /// Sends a request built for each origin in turn; 5xx and connection errors move on, but a
    /// `503` with `Retry-After` is handed to the viewer as `503 origin_busy`. For requests an
    /// origin may see twice (objects, heartbeats); the pass-through decides for itself.
    pub async fn send(
        &self,
        route: Route,
        build: impl Fn(&str) -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, EdgeError> {
        self.failover(route, |base| {
            let request = build(base);
            let base = base.to_owned();
            async move { answered(&base, request.send().await.map_err(Failure::from)) }
        })
        .await
    }

    /// Runs `attempt` with each origin base URL in turn until one is [`Attempt::Done`]: the
    /// configured order, around again while `retries` asks for more attempts than there are
    /// URLs, with a short growing pause before each next one. The last failure is the error.
    pub async fn failover<T, F, A>(&self, route: Route, attempt: F) -> Result<T, EdgeError>
    where
        F: FnMut(&str) -> A,
        A: Future<Output = Attempt<T>>,
    {
        self.failover_over(&self.origins, self.retries, route, attempt).await
    }

    async fn failover_over<T, F, A>(
        &self,
        bases: &[String],
        retries: u32,
        route: Route,
        mut attempt: F,
    ) -> Result<T, EdgeError>
    where
        F: FnMut(&str) -> A,
        A: Future<Output = Attempt<T>>,
    {
        let mut last = EdgeError::OriginUnavailable("no origin configured".into());
        let mut order = order(bases, retries).peekable();
        while let Some((n, base)) = order.next() {
            match attempt(base).await {
                Attempt::Done(result) => return result,
                Attempt::Next(e) => last = e,
            }
            if order.peek().is_some() {
                tracing::debug!(route = route.label(), %base, error = ?last, "trying the next origin");
                self.failovers.get_or_create(&vec![("route", route.label())]).inc();
                tokio::time::sleep(Duration::from_millis(50 << n.min(4))).await;
            }
        }
        Err(last)
    }
}

/// The base URLs one request tries, numbered: each once, around again while `retries` asks for
/// more attempts than there are URLs.
fn order(bases: &[String], retries: u32) -> impl Iterator<Item = (usize, &str)> {
    let attempts = if bases.is_empty() { 0 } else { (retries as usize + 1).max(bases.len()) };
    bases.iter().cycle().take(attempts).map(String::as_str).enumerate()
}

/// How long the parents are passed over after none could be reached.
const PARENTS_DOWN: Duration = Duration::from_secs(10);

/// A parent's answer: its `502` or `504` says the origin failed it, and is final: asking the
/// origin directly from every child would multiply the origin's load just when it is failing.
/// A `508` (the request came back to a PoP it had passed) ends the parents' turn too: parents
/// that form a cycle are a configuration to fix, and meanwhile the origin answers.
fn parent_answered<R: Answer>(base: &str, sent: Result<R, Failure>) -> Attempt<R> {
    match sent {
        Ok(r) if matches!(r.status().as_u16(), 502 | 504 | 508) => Attempt::Done(Ok(r)),
        other => answered(base, other),
    }
}

/// An upstream answer's head, whichever client brought it.
trait Answer {
    fn status(&self) -> StatusCode;
    fn headers(&self) -> &HeaderMap;
}

impl Answer for reqwest::Response {
    fn status(&self) -> StatusCode {
        self.status()
    }
    fn headers(&self) -> &HeaderMap {
        self.headers()
    }
}

impl Answer for ObjectResponse {
    fn status(&self) -> StatusCode {
        self.status()
    }
    fn headers(&self) -> &HeaderMap {
        self.headers()
    }
}

impl From<reqwest::Error> for Failure {
    fn from(e: reqwest::Error) -> Self {
        if e.is_timeout() { Self::Timeout } else { Self::Broken(e.without_url().to_string()) }
    }
}

/// What an origin's answer to a request that is safe to repeat comes to.
fn answered<R: Answer>(base: &str, sent: Result<R, Failure>) -> Attempt<R> {
    match sent {
        // Busy making the object (a segment encoded on demand): asking again at once, here or
        // at another origin node sharing the work, would only wait again.
        Ok(r) if r.status() == 503 && r.headers().contains_key("retry-after") => {
            Attempt::Done(Err(EdgeError::OriginBusy))
        }
        Ok(r) if r.status().is_server_error() => {
            Attempt::Next(EdgeError::OriginUnavailable(format!("{base} answered {}", r.status())))
        }
        Ok(r) => Attempt::Done(Ok(r)),
        Err(Failure::Timeout) => Attempt::Next(EdgeError::OriginTimeout),
        Err(Failure::Broken(why)) => Attempt::Next(EdgeError::OriginUnavailable(format!("{base}: {why}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upstream(origins: &[&str], retries: u32) -> Upstream {
        crate::init_tls();
        let origins = origins.iter().map(|o| (*o).to_owned()).collect();
        let timeout = Duration::from_millis(100);
        Upstream::new(origins, "pop.credential".into(), timeout, timeout, retries, Family::default())
    }

    #[test]
    fn every_origin_is_tried_and_retries_go_around_again() {
        let order = |u: &Upstream| order(&u.origins, u.retries).map(|(_, base)| base.to_owned()).collect::<Vec<_>>();
        assert_eq!(order(&upstream(&["http://a", "http://b/"], 0)), ["http://a", "http://b"]);
        assert_eq!(order(&upstream(&["http://a", "http://b"], 2)), ["http://a", "http://b", "http://a"]);
        assert!(order(&upstream(&[], 3)).is_empty());
    }

    #[tokio::test]
    async fn moves_on_until_done_and_counts_each_move() {
        let up = upstream(&["http://a", "http://b", "http://c"], 0);
        let mut tried = Vec::new();
        let result = up
            .failover(Route::Passthrough, |base| {
                tried.push(base.to_owned());
                let next = base != "http://b";
                async move { if next { Attempt::Next(EdgeError::OriginTimeout) } else { Attempt::Done(Ok(7)) } }
            })
            .await;
        assert_eq!(result.unwrap(), 7);
        assert_eq!(tried, ["http://a", "http://b"]);
        assert_eq!(up.failovers.get_or_create(&vec![("route", "passthrough")]).get(), 1);

        let none: Result<(), _> = upstream(&[], 1).failover(Route::Object, |_| async { Attempt::Done(Ok(())) }).await;
        assert!(matches!(none, Err(EdgeError::OriginUnavailable(_))), "no origin, no attempt");
    }
}
