//! Single flight: however many viewers ask for an object that is not cached, the PoP fetches
//! it from the origin once. The first request starts the fetch (detached from its own
//! connection, so the object still completes and gets cached if that viewer leaves); every
//! request, first or not, streams the bytes as they arrive instead of waiting for the end.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::watch;

use crate::error::EdgeError;
use crate::object::Head;

/// The origin's answer, once its headers are in.
#[derive(Debug, Clone)]
pub struct FlightHead {
    /// Status the origin answered with.
    pub status: u16,
    /// Caching-relevant headers.
    pub head: Head,
    /// Body length, if announced.
    pub length: Option<u64>,
    /// The upstream's `Cache-Status`, when it is a cache too (a parent PoP).
    pub chain: Option<String>,
}

#[derive(Debug, Default)]
struct State {
    head: Option<Result<FlightHead, EdgeError>>,
    chunks: Vec<Bytes>,
    finished: Option<Result<(), EdgeError>>,
}

/// One fetch in progress, readable by any number of viewers.
#[derive(Debug)]
pub struct Flight {
    state: Mutex<State>,
    version: watch::Sender<u64>,
}

impl Flight {
    fn new() -> Self {
        Self { state: Mutex::new(State::default()), version: watch::channel(0).0 }
    }

    fn changed(&self) {
        self.version.send_modify(|v| *v += 1);
    }

    /// The fetcher: headers are known (or the fetch failed before any).
    pub fn set_head(&self, head: Result<FlightHead, EdgeError>) {
        self.state.lock().expect("flight lock").head = Some(head);
        self.changed();
    }

    /// The fetcher: another piece of the body.
    pub fn push(&self, chunk: Bytes) {
        self.state.lock().expect("flight lock").chunks.push(chunk);
        self.changed();
    }

    /// The fetcher: the body ended (or broke).
    pub fn finish(&self, result: Result<(), EdgeError>) {
        self.state.lock().expect("flight lock").finished = Some(result);
        self.changed();
    }

    /// Runs `f` over the body's pieces received so far.
    pub fn with_received<R>(&self, f: impl FnOnce(&[Bytes]) -> R) -> R {
        f(&self.state.lock().expect("flight lock").chunks)
    }

    /// Waits for the origin's headers.
    pub async fn head(&self) -> Result<FlightHead, EdgeError> {
        let mut rx = self.version.subscribe();
        loop {
            if let Some(h) = self.state.lock().expect("flight lock").head.clone() {
                return h;
            }
            if rx.changed().await.is_err() {
                return Err(EdgeError::Internal("flight dropped".into()));
            }
        }
    }

    /// The body from its first byte, as it arrives.
    pub fn stream(
        self: &Arc<Self>,
    ) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
        let rx = self.version.subscribe();
        // `None` as the position means the stream already ended with an error.
        futures_util::stream::unfold((self.clone(), rx, Some(0usize)), |(flight, mut rx, at)| async move {
            let i = at?;
            loop {
                match flight.step(i) {
                    Step::Chunk(c) => return Some((Ok(c), (flight, rx, Some(i + 1)))),
                    Step::Failed(e) => return Some((Err(e), (flight, rx, None))),
                    Step::End => return None,
                    Step::Wait => {
                        if rx.changed().await.is_err() {
                            return None;
                        }
                    }
                }
            }
        })
    }

    fn step(&self, i: usize) -> Step {
        let s = self.state.lock().expect("flight lock");
        match (s.chunks.get(i), &s.finished) {
            (Some(c), _) => Step::Chunk(c.clone()),
            (None, Some(Ok(()))) => Step::End,
            (None, Some(Err(e))) => Step::Failed(std::io::Error::other(e.to_string())),
            (None, None) => Step::Wait,
        }
    }
}

enum Step {
    Chunk(Bytes),
    Failed(std::io::Error),
    End,
    Wait,
}

/// Fetches in progress, by cache key.
#[derive(Debug, Default)]
pub struct Flights {
    map: Mutex<HashMap<String, Arc<Flight>>>,
}

impl Flights {
    /// Joins the flight for `key`, or starts one; `true` when the caller must fetch.
    pub fn join(&self, key: &str) -> (Arc<Flight>, bool) {
        let mut map = self.map.lock().expect("flights lock");
        if let Some(f) = map.get(key) {
            return (f.clone(), false);
        }
        let f = Arc::new(Flight::new());
        map.insert(key.to_owned(), f.clone());
        (f, true)
    }

    /// The fetch for `key` is over: later requests look in the cache (or start anew).
    pub fn land(&self, key: &str) {
        self.map.lock().expect("flights lock").remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    #[tokio::test]
    async fn followers_stream_while_the_leader_fetches() {
        let flights = Flights::default();
        let (leader, fetch) = flights.join("k");
        assert!(fetch);
        let (follower, fetch) = flights.join("k");
        assert!(!fetch && Arc::ptr_eq(&leader, &follower));
        let reader = tokio::spawn({
            let f = follower.clone();
            async move { f.stream().map(|c| c.unwrap()).collect::<Vec<_>>().await.concat() }
        });
        leader.set_head(Ok(FlightHead {
            status: 200,
            head: Head::new(String::new(), None, String::new(), 0),
            length: Some(6),
            chain: None,
        }));
        leader.push(Bytes::from_static(b"abc"));
        tokio::task::yield_now().await;
        leader.push(Bytes::from_static(b"def"));
        leader.finish(Ok(()));
        assert_eq!(reader.await.unwrap(), b"abcdef");
        assert_eq!(leader.with_received(<[Bytes]>::concat), b"abcdef");
        assert_eq!(follower.head().await.unwrap().status, 200);
        flights.land("k");
        assert!(flights.join("k").1, "a new flight after landing");
    }

    #[tokio::test]
    async fn a_broken_fetch_ends_every_stream_with_an_error() {
        let f = Arc::new(Flight::new());
        f.push(Bytes::from_static(b"ab"));
        f.finish(Err(EdgeError::OriginUnavailable("gone".into())));
        let got: Vec<_> = f.stream().collect().await;
        assert!(got[0].is_ok() && got[1].is_err() && got.len() == 2);
    }
}
