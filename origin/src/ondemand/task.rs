//! What travels over the queue for just-in-time encoding: the task a worker takes, and the
//! replies (pieces of the segment as they are made, then the outcome) that stream back to
//! the API node a viewer waits on.

use encoder::layout::Tree;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Why a segment is encoded, highest priority first. Each reason has its own queue topic,
/// and a worker's encode slot always takes the highest one with work (see
/// [`crate::jobs::worker`]): a viewer waiting beats look-ahead, which beats new uploads'
/// floors, which beat promotions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// A viewer's request waits for it.
    Viewer,
    /// A viewer plays the rung; the next segments are made before they are asked for.
    Lookahead,
    /// The video became popular: its missing rungs are made in the background.
    Promotion,
    /// A new video's first segments of every rung, so a viewer starts on a stored segment
    /// whichever rung the player picks first (queued with look-ahead).
    Opening,
}

impl Reason {
    /// Metrics label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Viewer => "jit",
            Self::Lookahead => "lookahead",
            Self::Promotion => "promotion",
            Self::Opening => "opening",
        }
    }

    /// Whether the worker claims the task's segments when it starts (skipping those stored or
    /// claimed by others meanwhile) rather than whoever queued it claiming them up front: a
    /// viewer who asks for one of them first is not made to wait behind the queue.
    pub fn claims_when_started(self) -> bool {
        matches!(self, Self::Promotion | Self::Opening)
    }

    /// The queue topic of tasks with this reason.
    pub fn topic(self) -> &'static str {
        match self {
            Self::Viewer => "tasks.jit.viewer",
            Self::Lookahead | Self::Opening => "tasks.jit.ahead",
            Self::Promotion => "tasks.jit.promote",
        }
    }
}

/// One just-in-time encode: `count` segments from `first` of one rung.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentTask {
    /// Unique per dispatch attempt.
    pub id: String,
    /// Video.
    pub video: String,
    /// Rendition name.
    pub rung: String,
    /// First segment.
    pub first: u64,
    /// Segments.
    pub count: u64,
    /// Why.
    pub reason: Reason,
    /// Topic the pieces and the outcome go to, when someone waits.
    pub reply: Option<String>,
    /// 1 for the first dispatch.
    pub attempt: u32,
    /// A worker that failed this encode before; it leaves the task to another.
    pub avoid: Option<String>,
}

impl SegmentTask {
    /// A first dispatch of `count` segments from `first`, with nobody waiting for replies.
    pub fn new(video: &str, rung: &str, first: u64, count: u64, reason: Reason) -> Result<Self> {
        Ok(Self {
            id: crate::secrets::random_hex(8)?,
            video: video.to_owned(),
            rung: rung.to_owned(),
            first,
            count,
            reason,
            reply: None,
            attempt: 1,
            avoid: None,
        })
    }

    /// Queues it on its reason's topic.
    pub async fn publish(&self, queue: &dyn crate::queue::Queue) -> Result<()> {
        queue.publish(self.reason.topic(), &serde_json::to_vec(self)?).await
    }
}

/// What a worker sends back, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// The worker took the task.
    Taken {
        /// Its id.
        worker: String,
    },
    /// The next bytes of a segment in one tree.
    Piece {
        /// Segment number.
        segment: u64,
        /// The tree (protection) these bytes are for.
        tree: Tree,
        /// Position of this reply in the stream (0, 1, ...).
        seq: u32,
        /// The segment's last piece.
        last: bool,
        /// Bytes.
        bytes: Vec<u8>,
    },
    /// Every segment is stored.
    Done,
    /// The encode failed.
    Failed {
        /// Machine-readable code.
        code: String,
        /// Whether another attempt (elsewhere) may succeed.
        retryable: bool,
        /// Human message.
        message: String,
    },
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Head {
    Taken {
        worker: String,
    },
    Piece {
        segment: u64,
        seq: u32,
        last: bool,
        #[serde(default)]
        cbcs: bool,
    },
    Done,
    Failed {
        code: String,
        retryable: bool,
        message: String,
    },
}

impl Reply {
    /// A JSON head, then raw bytes for a piece (no base64: pieces are most of the traffic).
    pub fn encode(&self) -> Vec<u8> {
        let (head, bytes): (Head, &[u8]) = match self {
            Self::Taken { worker } => (Head::Taken { worker: worker.clone() }, &[]),
            Self::Piece { segment, tree, seq, last, bytes } => {
                let cbcs = *tree == Tree::Cbcs;
                (Head::Piece { segment: *segment, seq: *seq, last: *last, cbcs }, bytes.as_slice())
            }
            Self::Done => (Head::Done, &[]),
            Self::Failed { code, retryable, message } => {
                (Head::Failed { code: code.clone(), retryable: *retryable, message: message.clone() }, &[])
            }
        };
        let json = serde_json::to_vec(&head).expect("reply heads serialise");
        let mut out = Vec::with_capacity(4 + json.len() + bytes.len());
        out.extend_from_slice(&(json.len() as u32).to_be_bytes());
        out.extend_from_slice(&json);
        out.extend_from_slice(bytes);
        out
    }

    /// Parses what [`Reply::encode`] wrote.
    pub fn decode(payload: &[u8]) -> Result<Self> {
        let bad = || Error::Internal("malformed just-in-time reply".into());
        let len = u32::from_be_bytes(payload.get(..4).ok_or_else(bad)?.try_into().map_err(|_| bad())?) as usize;
        let json = payload.get(4..4 + len).ok_or_else(bad)?;
        let rest = &payload[4 + len..];
        Ok(match serde_json::from_slice::<Head>(json)? {
            Head::Taken { worker } => Self::Taken { worker },
            Head::Piece { segment, seq, last, cbcs } => {
                let tree = if cbcs { Tree::Cbcs } else { Tree::Top };
                Self::Piece { segment, tree, seq, last, bytes: rest.to_vec() }
            }
            Head::Done => Self::Done,
            Head::Failed { code, retryable, message } => Self::Failed { code, retryable, message },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_round_trip() {
        for r in [
            Reply::Taken { worker: "w1".into() },
            Reply::Piece { segment: 4, tree: Tree::Top, seq: 2, last: true, bytes: vec![0, 1, 2, 255] },
            Reply::Piece { segment: 4, tree: Tree::Cbcs, seq: 3, last: false, bytes: vec![7] },
            Reply::Done,
            Reply::Failed { code: "media".into(), retryable: true, message: "x".into() },
        ] {
            assert_eq!(Reply::decode(&r.encode()).unwrap(), r);
        }
        assert!(Reply::decode(b"\0\0\0\x09{}").is_err());
    }

    #[test]
    fn topics_by_priority() {
        assert_eq!(Reason::Viewer.topic(), "tasks.jit.viewer");
        assert_ne!(Reason::Lookahead.topic(), Reason::Promotion.topic());
    }
}
