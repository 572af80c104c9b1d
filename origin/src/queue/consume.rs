//! The one way to consume a topic. A `Handler` says what a message means and answers with a
//! `Verdict`; `consume` owns the rest, the same for every consumer: receiving (several topics
//! by priority), decoding, renewing the lease while the handler runs, backoff between
//! deliveries, the bound on deliveries after which a message goes to the dead-letter topic
//! (so a message that always fails, or kills its process, stops coming back), logging,
//! metrics, and shutdown (in-flight messages are given back at once, not left to their lease).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use super::{Lease, Message, Queue};
use crate::error::Result;

/// Topic of messages no consumer could settle, with why (`DeadLetter`).
pub const DEAD_LETTERS: &str = "dead_letters";

/// What a handler decided about one delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Done: never deliver it again.
    Ack,
    /// Worth another try (an infrastructure failure, say), after the consumer's backoff; on
    /// the last allowed delivery it goes to the dead-letter topic instead.
    Retry(String),
    /// Not for this process (a worker asked to avoid it): back to the queue after this delay.
    Pass(Duration),
    /// Trying again cannot help: to the dead-letter topic with a machine-readable code.
    Dead {
        /// Machine-readable code.
        code: String,
        /// For people.
        message: String,
    },
}

/// One delivery as a handler sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    /// Index of the topic it came from in `Consumer::topics`.
    pub topic: usize,
    /// 1 on first delivery.
    pub deliveries: u32,
    /// Whether a `Retry` now sends it to the dead-letter topic.
    pub last: bool,
}

/// What a consumer does with its messages.
#[async_trait]
pub trait Handler: Send + Sync + 'static {
    /// The decoded message (JSON).
    type Message: DeserializeOwned + Send + Sync + 'static;

    /// Handles one delivery. Its lease is renewed while this runs.
    async fn handle(&self, message: &Self::Message, delivery: Delivery) -> Verdict;

    /// Called before a decoded message goes to the dead-letter topic, so the consumer can
    /// record the failure where people look (a job ends `failed` with the code). An error
    /// puts the message back for another try.
    async fn dead(&self, message: &Self::Message, delivery: Delivery, code: &str, reason: &str) -> Result<()> {
        let _ = (message, delivery, code, reason);
        Ok(())
    }
}

/// Delay before the n-th redelivery: `first`, doubling, at most `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// After the first delivery.
    pub first: Duration,
    /// The longest.
    pub max: Duration,
}

impl Backoff {
    /// The delay after delivery number `deliveries` (1-based) failed.
    pub fn after(self, deliveries: u32) -> Duration {
        let doublings = deliveries.saturating_sub(1).min(20);
        self.first.saturating_mul(1 << doublings).min(self.max)
    }
}

/// How a topic (or several, by priority) is consumed.
#[derive(Debug, Clone)]
pub struct Consumer {
    /// Name in logs and metrics.
    pub name: &'static str,
    /// Topics, highest priority first.
    pub topics: Vec<String>,
    /// Lease per delivery, renewed every third of it while the handler runs.
    pub lease: Duration,
    /// Messages handled at once.
    pub concurrency: usize,
    /// Deliveries before a message is dead-lettered.
    pub max_deliveries: u32,
    /// Delay between deliveries of a message that asked for a retry.
    pub backoff: Backoff,
}

/// A dead letter: the message as it was, where it came from and why it stopped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// The consumer that gave up.
    pub consumer: String,
    /// The topic it came from.
    pub topic: String,
    /// Deliveries made.
    pub deliveries: u32,
    /// Machine-readable reason.
    pub code: String,
    /// For people.
    pub message: String,
    /// The payload (JSON when it was JSON, else its text).
    pub payload: serde_json::Value,
    /// When (ms since the epoch).
    pub at: i64,
}

/// Counts settled messages by consumer and verdict (`origin_queue_messages_total`).
pub type Outcomes = Family<Vec<(&'static str, String)>, Counter>;

/// Consumes `consumer.topics` with `handler` until `shutdown`; returns once every in-flight
/// message is settled or given back.
pub async fn consume<H: Handler>(
    queue: Arc<dyn Queue>,
    consumer: Consumer,
    handler: Arc<H>,
    outcomes: Outcomes,
    mut shutdown: watch::Receiver<bool>,
) {
    let consumer = Arc::new(consumer);
    let slots = Arc::new(Semaphore::new(consumer.concurrency.max(1)));
    let mut running = JoinSet::new();
    let topics: Vec<&str> = consumer.topics.iter().map(String::as_str).collect();
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => p.expect("the semaphore is never closed"),
            _ = shutdown.changed() => break,
        };
        let received = tokio::select! {
            m = queue.receive_first(&topics, consumer.lease, Duration::from_secs(1)) => m,
            _ = shutdown.changed() => break,
        };
        match received {
            Ok(Some((topic, msg))) => {
                let run = Run { queue: queue.clone(), consumer: consumer.clone(), outcomes: outcomes.clone() };
                let (handler, shutdown) = (handler.clone(), shutdown.clone());
                running.spawn(async move {
                    run.one(handler.as_ref(), topic, msg, shutdown).await;
                    drop(permit);
                });
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(error = %e, consumer = consumer.name, "queue unavailable");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = shutdown.changed() => break,
                }
            }
        }
        while running.try_join_next().is_some() {}
    }
    while running.join_next().await.is_some() {}
}

/// What one delivery needs besides its handler.
struct Run {
    queue: Arc<dyn Queue>,
    consumer: Arc<Consumer>,
    outcomes: Outcomes,
}

impl Run {
    async fn one<H: Handler>(&self, handler: &H, topic: usize, msg: Message, mut shutdown: watch::Receiver<bool>) {
        let delivery =
            Delivery { topic, deliveries: msg.deliveries, last: msg.deliveries >= self.consumer.max_deliveries };
        let decoded = match serde_json::from_slice::<H::Message>(&msg.payload) {
            Ok(decoded) => decoded,
            Err(e) => {
                let verdict = Verdict::Dead { code: "undecodable".into(), message: e.to_string() };
                return self.settle(None::<(&H, &H::Message)>, &msg, delivery, verdict).await;
            }
        };
        let verdict = if msg.deliveries > self.consumer.max_deliveries {
            // Its handler never settled it: each delivery ended with its process or lease.
            let message = format!("delivered {} times without being settled", msg.deliveries);
            Verdict::Dead { code: "too_many_deliveries".into(), message }
        } else {
            let work = renewing(msg.lease.as_ref(), self.consumer.lease, handler.handle(&decoded, delivery));
            let outcome = tokio::select! {
                outcome = work => outcome,
                _ = shutdown.changed() => {
                    self.count("given_back");
                    if let Err(e) = msg.lease.nack(Duration::ZERO).await {
                        tracing::warn!(error = %e, consumer = self.consumer.name, "message not given back; its lease will run out");
                    }
                    return;
                }
            };
            let Some(verdict) = outcome else {
                // Not renewed for a whole lease: another receiver may hold it by now, so this
                // one stops rather than run the same work twice, and settles nothing.
                self.count("lease_lost");
                tracing::warn!(consumer = self.consumer.name, "lease lost; work abandoned to its next holder");
                return;
            };
            verdict
        };
        self.settle(Some((handler, &decoded)), &msg, delivery, verdict).await;
    }

    async fn settle<H: Handler>(
        &self,
        decoded: Option<(&H, &H::Message)>,
        msg: &Message,
        delivery: Delivery,
        verdict: Verdict,
    ) {
        let name = self.consumer.name;
        let verdict = match verdict {
            Verdict::Retry(why) if delivery.last => {
                Verdict::Dead { code: "retries_exhausted".into(), message: format!("last try failed: {why}") }
            }
            v => v,
        };
        let settled = match &verdict {
            Verdict::Ack => msg.lease.ack().await,
            Verdict::Pass(after) => msg.lease.nack(*after).await,
            Verdict::Retry(why) => {
                let after = self.consumer.backoff.after(delivery.deliveries);
                tracing::warn!(consumer = name, deliveries = delivery.deliveries, ?after, reason = %why, "will retry");
                msg.lease.nack(after).await
            }
            Verdict::Dead { code, message } => match self.bury(decoded, msg, delivery, code, message).await {
                Ok(()) => msg.lease.ack().await,
                Err(e) => {
                    tracing::warn!(error = %e, consumer = name, "dead letter not recorded; will try again");
                    msg.lease.nack(self.consumer.backoff.after(delivery.deliveries)).await
                }
            },
        };
        self.count(match verdict {
            Verdict::Ack => "ack",
            Verdict::Retry(_) => "retry",
            Verdict::Pass(_) => "pass",
            Verdict::Dead { .. } => "dead",
        });
        if let Err(e) = settled {
            tracing::warn!(error = %e, consumer = name, "message not settled; its lease will run out");
        }
    }

    /// Tells the handler, then keeps the message in the dead-letter topic.
    async fn bury<H: Handler>(
        &self,
        decoded: Option<(&H, &H::Message)>,
        msg: &Message,
        delivery: Delivery,
        code: &str,
        message: &str,
    ) -> Result<()> {
        tracing::error!(
            consumer = self.consumer.name,
            deliveries = delivery.deliveries,
            code,
            message,
            "message dead-lettered"
        );
        if let Some((handler, decoded)) = decoded {
            handler.dead(decoded, delivery, code, message).await?;
        }
        let letter = DeadLetter {
            consumer: self.consumer.name.to_owned(),
            topic: self.consumer.topics.get(delivery.topic).cloned().unwrap_or_default(),
            deliveries: delivery.deliveries,
            code: code.to_owned(),
            message: message.to_owned(),
            payload: serde_json::from_slice(&msg.payload)
                .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(&msg.payload).into_owned())),
            at: crate::meta::now(),
        };
        self.queue.publish(DEAD_LETTERS, &serde_json::to_vec(&letter)?).await
    }

    fn count(&self, verdict: &str) {
        self.outcomes
            .get_or_create(&vec![("consumer", self.consumer.name.to_owned()), ("verdict", verdict.to_owned())])
            .inc();
    }
}

/// Runs `work` while renewing `lease` every third of its `period`, so the lease only runs out
/// when this process stops; `None` (and `work` dropped) once no renewal succeeded for a whole
/// period, since the message may be another receiver's by then.
pub async fn renewing<F: Future>(lease: &dyn Lease, period: Duration, work: F) -> Option<F::Output> {
    tokio::pin!(work);
    let mut tick = tokio::time::interval(period / 3);
    tick.tick().await;
    let mut renewed = tokio::time::Instant::now();
    loop {
        tokio::select! {
            out = &mut work => return Some(out),
            _ = tick.tick() => match lease.extend().await {
                Ok(()) => renewed = tokio::time::Instant::now(),
                Err(e) if renewed.elapsed() >= period => {
                    tracing::warn!(error = %e, "lease not renewed for a whole lease period");
                    return None;
                }
                Err(e) => tracing::warn!(error = %e, "lease not renewed"),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A lease whose renewals fail, or succeed.
    struct Renewals(bool);

    #[async_trait]
    impl Lease for Renewals {
        async fn ack(&self) -> Result<()> {
            Ok(())
        }
        async fn nack(&self, _: Duration) -> Result<()> {
            Ok(())
        }
        async fn extend(&self) -> Result<()> {
            if self.0 { Ok(()) } else { Err(crate::Error::Queue("no leader".into())) }
        }
    }

    #[tokio::test]
    async fn work_stops_once_its_lease_could_not_be_renewed_for_a_whole_period() {
        let period = Duration::from_millis(60);
        let forever = std::future::pending::<()>();
        let lost = tokio::time::timeout(Duration::from_secs(5), renewing(&Renewals(false), period, forever)).await;
        assert_eq!(lost.expect("renewing gives up"), None);
        let slow = async {
            tokio::time::sleep(period * 4).await;
            7
        };
        assert_eq!(renewing(&Renewals(true), period, slow).await, Some(7), "renewed work runs to its end");
    }

    #[test]
    fn backoff_doubles_up_to_its_ceiling() {
        let b = Backoff { first: Duration::from_secs(2), max: Duration::from_secs(60) };
        let delays: Vec<u64> = (1..=7).map(|n| b.after(n).as_secs()).collect();
        assert_eq!(delays, [2, 4, 8, 16, 32, 60, 60]);
        assert_eq!(b.after(u32::MAX), Duration::from_secs(60), "no overflow");
    }
}
