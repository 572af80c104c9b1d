//! One encode per segment in this process, however many requests ask for it at once: the
//! first request starts the flight, every request (the first included) streams the pieces
//! from the start as they arrive. A flight carries one tree's copy (AES-128 or cbcs); the
//! encode it leads seals every tree, and stores what no flight streams.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::Stream;
use tokio::sync::watch;

use encoder::layout::Tree;

use crate::error::Kind;
use crate::meta::ondemand::SegmentKey;

/// How a flight ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// Every piece arrived.
    Complete,
    /// It stopped: `(kind, code, message)` for requests that have sent nothing yet.
    Failed(Kind, &'static str, String),
}

/// A segment being encoded for viewers.
#[derive(Debug)]
pub struct Flight {
    pieces: Mutex<Vec<Bytes>>,
    state: watch::Sender<(usize, Option<Ending>)>,
}

impl Flight {
    fn new() -> Self {
        Self { pieces: Mutex::new(Vec::new()), state: watch::channel((0, None)).0 }
    }

    /// Adds the next piece.
    pub fn push(&self, piece: Bytes) {
        let n = {
            let mut p = self.pieces.lock().expect("flight pieces");
            p.push(piece);
            p.len()
        };
        self.state.send_modify(|s| s.0 = n);
    }

    /// What of `piece`, found at `offset` of a new encode of the segment, has not been sent
    /// yet: all of it on a first encode; after a retry, the part past what the previous
    /// encode sent, once the overlap proved to be the same bytes (`None` when it is not).
    pub fn resume(&self, offset: usize, piece: &Bytes) -> Option<Bytes> {
        let pieces = self.pieces.lock().expect("flight pieces");
        let mut start = 0usize;
        for sent in pieces.iter() {
            let end = start + sent.len();
            let (lo, hi) = (offset.max(start), (offset + piece.len()).min(end));
            if lo < hi && sent[lo - start..hi - start] != piece[lo - offset..hi - offset] {
                return None;
            }
            start = end;
        }
        if offset > start {
            return None;
        }
        Some(piece.slice((start - offset).min(piece.len())..))
    }

    /// Ends the flight.
    pub fn finish(&self, ending: Ending) {
        self.state.send_modify(|s| {
            s.1.get_or_insert(ending);
        });
    }

    /// Pieces so far.
    pub fn pieces(&self) -> usize {
        self.state.borrow().0
    }

    /// Waits until the first piece or the end, whichever comes first.
    pub async fn first(&self) -> Option<Ending> {
        let mut rx = self.state.subscribe();
        let got = rx.wait_for(|(n, end)| *n > 0 || end.is_some()).await;
        got.ok().and_then(|s| if s.0 > 0 { None } else { s.1.clone() })
    }

    /// Waits for the end.
    pub async fn ended(&self) -> Ending {
        let mut rx = self.state.subscribe();
        let got = rx.wait_for(|(_, end)| end.is_some()).await;
        got.ok().and_then(|s| s.1.clone()).unwrap_or(Ending::Failed(
            Kind::Unavailable,
            "encode_failed",
            "the encode stopped".into(),
        ))
    }

    /// Every piece from the first, as they arrive; an error if the flight fails midway.
    pub fn stream(self: &Arc<Self>) -> impl Stream<Item = std::io::Result<Bytes>> + Send + 'static {
        let rx = self.state.subscribe();
        futures_util::stream::unfold((self.clone(), rx, 0usize), |(flight, mut rx, next)| async move {
            loop {
                if next == usize::MAX {
                    // The failure was reported.
                    return None;
                }
                let (count, ending) = rx.borrow_and_update().clone();
                if next < count {
                    let piece = flight.pieces.lock().expect("flight pieces")[next].clone();
                    return Some((Ok(piece), (flight, rx, next + 1)));
                }
                match ending {
                    Some(Ending::Complete) => return None,
                    Some(Ending::Failed(_, code, message)) => {
                        let e = std::io::Error::other(format!("{code}: {message}"));
                        return Some((Err(e), (flight, rx, usize::MAX)));
                    }
                    None => {}
                }
                if rx.changed().await.is_err() {
                    return None;
                }
            }
        })
    }
}

/// The flights of this process.
#[derive(Debug, Default)]
pub struct Flights {
    map: Mutex<HashMap<(SegmentKey, Tree), Arc<Flight>>>,
}

impl Flights {
    /// Joins the flight for `key` in `tree`, or starts it (then the caller leads it: `true`).
    pub fn join(&self, key: &SegmentKey, tree: Tree) -> (Arc<Flight>, bool) {
        let mut map = self.map.lock().expect("flights");
        if let Some(f) = map.get(&(key.clone(), tree)) {
            return (f.clone(), false);
        }
        let f = Arc::new(Flight::new());
        map.insert((key.clone(), tree), f.clone());
        (f, true)
    }

    /// The flight is over: later requests find the stored segment instead.
    pub fn land(&self, key: &SegmentKey, tree: Tree) {
        self.map.lock().expect("flights").remove(&(key.clone(), tree));
    }
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt;

    use super::*;

    fn key() -> SegmentKey {
        SegmentKey { video: "v".into(), rung: "720p".into(), segment: 4 }
    }

    #[tokio::test]
    async fn late_joiners_get_every_piece_from_the_start() {
        let flights = Flights::default();
        let (f, lead) = flights.join(&key(), Tree::Top);
        assert!(lead);
        f.push(Bytes::from_static(b"ab"));
        let (g, lead) = flights.join(&key(), Tree::Top);
        assert!(!lead);
        assert!(flights.join(&key(), Tree::Cbcs).1, "the other tree's copy is its own flight");
        let reader = tokio::spawn(g.stream().map(|p| p.unwrap()).collect::<Vec<_>>());
        f.push(Bytes::from_static(b"cd"));
        f.finish(Ending::Complete);
        let got: Vec<u8> = reader.await.unwrap().concat();
        assert_eq!(got, b"abcd");
        flights.land(&key(), Tree::Top);
        assert!(flights.join(&key(), Tree::Top).1);
    }

    #[test]
    fn a_retry_resumes_after_what_was_sent_when_the_bytes_agree() {
        let f = Flight::new();
        assert_eq!(f.resume(0, &Bytes::from_static(b"abc")).unwrap(), "abc");
        f.push(Bytes::from_static(b"abc"));
        f.push(Bytes::from_static(b"de"));
        // The new encode's pieces are cut elsewhere.
        assert_eq!(f.resume(0, &Bytes::from_static(b"ab")).unwrap(), "");
        assert_eq!(f.resume(2, &Bytes::from_static(b"cdefg")).unwrap(), "fg");
        assert_eq!(f.resume(5, &Bytes::from_static(b"hi")).unwrap(), "hi");
        assert_eq!(f.resume(1, &Bytes::from_static(b"bX")), None, "other bytes");
        assert_eq!(f.resume(4, &Bytes::from_static(b"eZZ")).unwrap(), "ZZ");
        assert_eq!(f.resume(4, &Bytes::from_static(b"XZZ")), None);
        assert_eq!(f.resume(7, &Bytes::from_static(b"x")), None, "a gap cannot be sent");
    }

    #[tokio::test]
    async fn a_failure_before_any_piece_is_reported_and_midway_breaks_the_stream() {
        let f = Arc::new(Flight::new());
        f.finish(Ending::Failed(Kind::Unavailable, "encode_failed", "x".into()));
        assert!(matches!(f.first().await, Some(Ending::Failed(Kind::Unavailable, ..))));
        let g = Arc::new(Flight::new());
        g.push(Bytes::from_static(b"a"));
        g.finish(Ending::Failed(Kind::Unavailable, "encode_failed", "x".into()));
        let items: Vec<_> = g.stream().collect().await;
        assert!(items[0].is_ok() && items[1].is_err() && items.len() == 2);
    }
}
