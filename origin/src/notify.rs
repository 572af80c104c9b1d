//! Telling people what happened to their video: server-sent events for anyone watching the
//! video's `/events` stream (on any API node: `fanout`), and HMAC-signed webhooks to the creator's URL,
//! delivered from a durable queue with retries so a restart loses none. Deliveries go only
//! where `outbound` allows, checked on the address actually connected to.

use std::sync::Arc;

use async_trait::async_trait;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::error::Result;

mod fanout;
use crate::logs::redact;
use crate::meta::{MetaStore, Millis, Video, VideoState};
use crate::outbound::{self, Outbound};
use crate::queue::Queue;
use crate::queue::consume::{self, Backoff, Consumer, Handler, Verdict};
use crate::sign::Signer;

/// A state change of one video.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VideoEvent {
    /// Video id.
    pub video: String,
    /// New state.
    pub state: VideoState,
    /// Progress, 0.0 to 1.0.
    pub progress: f64,
    /// Failure code.
    pub error_code: Option<String>,
    /// When.
    pub at: Millis,
}

impl VideoEvent {
    /// The event describing a video's current record.
    pub fn of(v: &Video) -> Self {
        Self {
            video: v.id.clone(),
            state: v.state,
            progress: v.progress,
            error_code: v.error_code.clone(),
            at: v.updated_at,
        }
    }

    /// Whether nothing more will happen to the video.
    pub fn is_final(&self) -> bool {
        matches!(self.state, VideoState::Ready | VideoState::Failed | VideoState::Deleted)
    }
}

/// Fans events out to the SSE subscribers of every API node. With PostgreSQL as the metadata
/// database, events travel as `NOTIFY` on one channel that every node `LISTEN`s to, so a
/// client on node A sees a change made on node B (or by a driver there); otherwise (SQLite:
/// one machine) they stay in this process.
#[derive(Clone)]
pub struct EventHub {
    tx: broadcast::Sender<VideoEvent>,
    fanout: Option<Arc<fanout::PgFanout>>,
}

impl std::fmt::Debug for EventHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventHub").field("across_nodes", &self.fanout.is_some()).finish()
    }
}

impl Default for EventHub {
    fn default() -> Self {
        Self { tx: broadcast::channel(1024).0, fanout: None }
    }
}

impl EventHub {
    /// A hub for the metadata database at `database_url`: across nodes on PostgreSQL.
    pub async fn open(database_url: &str) -> Result<Self> {
        let local = Self::default();
        if !fanout::PgFanout::supports(database_url) {
            return Ok(local);
        }
        let fanout = fanout::PgFanout::start(database_url, local.tx.clone()).await?;
        Ok(Self { fanout: Some(Arc::new(fanout)), ..local })
    }

    /// Publishes to every subscriber on every node (none listening is fine). If the other
    /// nodes cannot be told, this node's subscribers still are.
    pub async fn publish(&self, e: VideoEvent) {
        if let Some(fanout) = &self.fanout {
            match fanout.publish(&e).await {
                // Comes back through this node's own listener.
                Ok(()) => return,
                Err(err) => tracing::warn!(error = %err, video = %e.video, "event not sent to other nodes"),
            }
        }
        let _ = self.tx.send(e);
    }

    /// Subscribes to all events; callers filter by video.
    pub fn subscribe(&self) -> broadcast::Receiver<VideoEvent> {
        self.tx.subscribe()
    }
}

/// Topic of pending webhook deliveries.
pub const WEBHOOKS: &str = "webhooks";

/// A webhook delivery waiting in the queue.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Delivery {
    /// Creator whose webhook receives it.
    pub creator: String,
    /// The JSON body.
    pub body: serde_json::Value,
}

/// Queues a webhook delivery for the video's creator, if they have a webhook.
pub async fn queue_webhook(queue: &dyn Queue, meta: &dyn MetaStore, v: &Video, event: &str) -> Result<()> {
    if meta.webhook(&v.creator).await?.is_none() {
        return Ok(());
    }
    let body = serde_json::json!({ "event": event, "video": v });
    let delivery = Delivery { creator: v.creator.clone(), body };
    queue.publish(WEBHOOKS, &serde_json::to_vec(&delivery)?).await
}

/// Deliveries give up after this many attempts (about an hour of backoff).
const MAX_ATTEMPTS: u32 = 12;

/// What became of one delivery attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Attempt {
    /// The receiver answered 2xx (or there is nothing to deliver any more).
    Done,
    /// Worth trying again later.
    Retry,
    /// The target is not allowed: trying again cannot help.
    Refused,
}

impl Attempt {
    fn label(self) -> &'static str {
        match self {
            Self::Done => "done",
            Self::Retry => "retry",
            Self::Refused => "refused",
        }
    }
}

/// How webhook deliveries are consumed: retried with backoff (2 s doubling to about half an
/// hour) for `MAX_ATTEMPTS` deliveries, about an hour and a half in all, then dead-lettered.
pub fn consumer() -> Consumer {
    Consumer {
        name: "webhooks",
        topics: vec![WEBHOOKS.to_owned()],
        lease: Duration::from_secs(30),
        concurrency: 4,
        max_deliveries: MAX_ATTEMPTS,
        backoff: Backoff { first: Duration::from_secs(2), max: Duration::from_secs(2048) },
    }
}

/// Sends webhooks: POST with `X-Webhook-Timestamp` and
/// `X-Webhook-Signature: sha256=HMAC(secret, "timestamp.body")`; retried with backoff,
/// except to a target `outbound` refuses.
pub struct Webhooks {
    /// Where hooks are registered.
    pub meta: Arc<dyn MetaStore>,
    /// Where deliveries may go.
    pub outbound: Arc<Outbound>,
    /// Attempts by outcome.
    pub outcomes: Family<Vec<(&'static str, String)>, Counter>,
    client: reqwest::Client,
}

impl Webhooks {
    /// A sender with its own client (10 s per delivery).
    pub fn new(
        meta: Arc<dyn MetaStore>,
        outbound: Arc<Outbound>,
        outcomes: Family<Vec<(&'static str, String)>, Counter>,
    ) -> Self {
        let client = outbound.client(Duration::from_secs(10));
        Self { meta, outbound, outcomes, client }
    }
}

#[async_trait]
impl Handler for Webhooks {
    type Message = Delivery;

    async fn handle(&self, d: &Delivery, _: consume::Delivery) -> Verdict {
        let attempt = send(&self.client, &self.outbound, self.meta.as_ref(), d).await;
        self.outcomes.get_or_create(&vec![("outcome", attempt.label().to_owned())]).inc();
        match attempt {
            Attempt::Done | Attempt::Refused => Verdict::Ack,
            Attempt::Retry => Verdict::Retry("the receiver did not accept it".into()),
        }
    }
}

async fn send(client: &reqwest::Client, outbound: &Outbound, meta: &dyn MetaStore, d: &Delivery) -> Attempt {
    let hook = match meta.webhook(&d.creator).await {
        Ok(Some(hook)) => hook,
        // The creator removed the hook: nothing to deliver.
        Ok(None) => return Attempt::Done,
        // The database is down: retry later rather than lose the event.
        Err(e) => {
            tracing::warn!(error = %e, "webhook lookup failed");
            return Attempt::Retry;
        }
    };
    let url = redact(&hook.url);
    let request = match outbound.post(client, &hook.url) {
        Ok(request) => request,
        Err(e) => {
            tracing::warn!(error = %e, %url, "webhook target refused, delivery dropped");
            return Attempt::Refused;
        }
    };
    let body = serde_json::to_vec(&d.body).unwrap_or_default();
    let ts = crate::meta::now() / 1000;
    let sig = Signer::webhook_signature(&hook.secret, ts, &body);
    let sent = request
        .header("content-type", "application/json")
        .header("x-webhook-timestamp", ts.to_string())
        .header("x-webhook-signature", format!("sha256={sig}"))
        .body(body)
        .send()
        .await;
    match sent {
        Ok(r) if r.status().is_success() => Attempt::Done,
        // A redirect is not followed: it counts as a refusal by the receiver.
        Ok(r) => {
            tracing::info!(status = %r.status(), %url, "webhook not accepted, will retry");
            Attempt::Retry
        }
        Err(e) if outbound::is_refusal(&e) => {
            tracing::warn!(error = %e, %url, "webhook target refused at connection, delivery dropped");
            Attempt::Refused
        }
        Err(e) => {
            tracing::info!(error = %e, %url, "webhook unreachable, will retry");
            Attempt::Retry
        }
    }
}
