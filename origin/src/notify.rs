//! Telling people what happened to their video: server-sent events for anyone watching the
//! video's `/events` stream (in this process), and HMAC-signed webhooks to the creator's URL,
//! delivered from a durable queue with retries so a restart loses none. Deliveries go only
//! where `outbound` allows, checked on the address actually connected to.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::error::Result;
use crate::logs::redact;
use crate::meta::{MetaStore, Millis, Video, VideoState};
use crate::outbound::{self, Outbound};
use crate::queue::Queue;
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

/// Fans events out to SSE subscribers of this process.
#[derive(Debug, Clone)]
pub struct EventHub {
    tx: broadcast::Sender<VideoEvent>,
}

impl Default for EventHub {
    fn default() -> Self {
        Self { tx: broadcast::channel(1024).0 }
    }
}

impl EventHub {
    /// Publishes to every subscriber (none listening is fine).
    pub fn publish(&self, e: VideoEvent) {
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

/// Sends queued webhooks until `shutdown`: POST with `X-Webhook-Timestamp` and
/// `X-Webhook-Signature: sha256=HMAC(secret, "timestamp.body")`; retried with backoff,
/// except to a target `outbound` refuses.
pub async fn deliver_webhooks(
    queue: Arc<dyn Queue>,
    meta: Arc<dyn MetaStore>,
    outbound: Arc<Outbound>,
    outcomes: Family<Vec<(&'static str, String)>, Counter>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let client = outbound.client(Duration::from_secs(10));
    loop {
        let msg = tokio::select! {
            m = queue.receive(WEBHOOKS, Duration::from_secs(30), Duration::from_secs(1)) => m,
            _ = shutdown.changed() => return,
        };
        let msg = match msg {
            Ok(Some(msg)) => msg,
            Ok(None) => continue,
            Err(e) => {
                // The queue is down: wait before asking again instead of spinning.
                tracing::warn!(error = %e, "webhook queue unavailable");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let attempt = match serde_json::from_slice::<Delivery>(&msg.payload) {
            Ok(d) => send(&client, &outbound, meta.as_ref(), &d).await,
            Err(e) => {
                tracing::error!(error = %e, "undecodable webhook delivery dropped");
                Attempt::Done
            }
        };
        outcomes.get_or_create(&vec![("outcome", attempt.label().to_owned())]).inc();
        let settled = if attempt != Attempt::Retry || msg.deliveries >= MAX_ATTEMPTS {
            if attempt == Attempt::Retry {
                tracing::warn!(attempts = msg.deliveries, "webhook delivery abandoned");
            }
            msg.lease.ack().await
        } else {
            let backoff = Duration::from_secs(1 << msg.deliveries.min(11));
            msg.lease.nack(backoff).await
        };
        if let Err(e) = settled {
            tracing::warn!(error = %e, "webhook delivery not settled");
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
