//! Queues for tasks and completion events (P10, P15). One trait, two implementations:
//! `local::LocalQueue`, durable in a SQLite file of the data folder and shared by every
//! process on the machine, and `nats::NatsQueue` over NATS JetStream. One conformance suite
//! (`origin/tests/queue_conformance.rs`) runs against both.
//!
//! Delivery is at least once: a received message is leased to its receiver, invisible to
//! others until it is acked, nacked, or its lease runs out, after which it is delivered again.

pub mod consume;
pub mod local;
pub mod nats;

use std::time::Duration;

use async_trait::async_trait;

use crate::error::Result;

/// A received message and the handle that settles it.
pub struct Message {
    /// The payload as published.
    pub payload: Vec<u8>,
    /// 1 on first delivery, 2 after one redelivery, ...
    pub deliveries: u32,
    /// Settles the message.
    pub lease: Box<dyn Lease>,
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Message").field("bytes", &self.payload.len()).field("deliveries", &self.deliveries).finish()
    }
}

/// How a receiver settles a message.
#[async_trait]
pub trait Lease: Send + Sync {
    /// Done: never deliver again.
    async fn ack(&self) -> Result<()>;
    /// Give it back for redelivery after `delay`.
    async fn nack(&self, delay: Duration) -> Result<()>;
    /// Still working: keep it invisible for another lease period.
    async fn extend(&self) -> Result<()>;
}

/// A durable, at-least-once queue of named topics.
#[async_trait]
pub trait Queue: Send + Sync {
    /// Appends a message to `topic`; durable when this returns.
    async fn publish(&self, topic: &str, payload: &[u8]) -> Result<()>;
    /// Takes the oldest visible message of `topic`, leasing it for `lease`; waits up to `wait`
    /// for one to arrive, then returns `None`. Receivers of one topic share its messages.
    async fn receive(&self, topic: &str, lease: Duration, wait: Duration) -> Result<Option<Message>>;
    /// Removes a topic that will not be used again (a finished job's results) with whatever
    /// is left in it.
    async fn delete_topic(&self, topic: &str) -> Result<()>;

    /// Takes a message from the first of `topics` (highest priority first) that has one,
    /// waiting up to `wait` for any; returns it with the index of its topic.
    async fn receive_first(
        &self,
        topics: &[&str],
        lease: Duration,
        wait: Duration,
    ) -> Result<Option<(usize, Message)>> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            for (i, topic) in topics.iter().enumerate() {
                if let Some(m) = self.receive(topic, lease, Duration::ZERO).await? {
                    return Ok(Some((i, m)));
                }
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            // Short naps: a viewer's task must not wait long behind an idle poll.
            tokio::time::sleep((deadline - now).min(PRIORITY_POLL)).await;
        }
    }
}

/// How often an idle receiver of several topics looks at all of them again.
const PRIORITY_POLL: Duration = Duration::from_millis(25);

/// Gives every topic a prefix, so several deployments (or test runs) can share one server
/// without taking each other's messages.
pub struct Namespaced {
    inner: std::sync::Arc<dyn Queue>,
    prefix: String,
}

impl Namespaced {
    /// Topics become `namespace.topic`.
    pub fn new(inner: std::sync::Arc<dyn Queue>, namespace: &str) -> Self {
        Self { inner, prefix: format!("{namespace}.") }
    }
}

#[async_trait]
impl Queue for Namespaced {
    async fn publish(&self, topic: &str, payload: &[u8]) -> Result<()> {
        self.inner.publish(&format!("{}{topic}", self.prefix), payload).await
    }

    async fn receive(&self, topic: &str, lease: Duration, wait: Duration) -> Result<Option<Message>> {
        self.inner.receive(&format!("{}{topic}", self.prefix), lease, wait).await
    }

    async fn delete_topic(&self, topic: &str) -> Result<()> {
        self.inner.delete_topic(&format!("{}{topic}", self.prefix)).await
    }
}

/// Topic of completion events (serialised `jobs::Completion`).
pub const COMPLETIONS: &str = "completions";
