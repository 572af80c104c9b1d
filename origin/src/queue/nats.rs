//! The queue over NATS JetStream.
//!
//! All topics live in one work-queue stream, `ORIGIN`, as subjects `origin.<topic>`, so a
//! message leaves the stream once it is acked. Each topic has one durable pull consumer
//! filtering exactly its subject; every receiver of the topic, in any process, shares that
//! consumer, which is what spreads the messages over them. A receive pulls one message, and the
//! consumer's ack wait is the lease: acks, naks (with the nack delay) and progress pings
//! (extensions) go straight to the server.
//!
//! JetStream fixes a consumer's ack wait when the consumer is created, so a topic's lease is
//! the `lease` of the first `receive` on it, by whichever process gets there first; later
//! receives with another lease still get the consumer's. Receivers of one topic must therefore
//! agree on its lease.
//!
//! Unlike the local queue, a lost lease is not detected: JetStream settles by message, not by
//! delivery, so once a lease ran out and the message was redelivered, the stale holder's ack
//! still removes it and its extension extends the new holder's lease; acking twice succeeds
//! too. Work done under a lease must be idempotent anyway (delivery is at least once).
//!
//! The stream keeps `replicas` copies (`queue_replicas`), each on its own server of a cluster,
//! and every topic's consumer as many, so losing one server of three loses neither messages nor
//! acks. While the cluster elects a new leader for the stream or a consumer, calls fail with
//! `Error::Queue` (or a receive finds nothing) and the same call succeeds once it is elected;
//! the client reconnects by itself when the server it talks to is gone, to the other servers
//! of the URL and those the cluster advertises.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, PullConsumer, pull};
use async_nats::jetstream::context::{PublishError, PublishErrorKind};
use async_nats::jetstream::stream::{self, ConsumerErrorKind, RetentionPolicy, StorageType};
use async_nats::jetstream::{self, AckKind, ErrorCode};
use async_nats::{ConnectOptions, Event, Request, ServerAddr};
use async_trait::async_trait;
use futures_util::StreamExt;

use super::{Lease, Message, Queue};
use crate::error::{Cause, Error, Result, While};

/// The stream holding every topic.
const STREAM: &str = "ORIGIN";

/// Subjects of the stream; a topic is the rest of its subject.
const SUBJECT_PREFIX: &str = "origin.";

/// How long past its own expiry a pull may go unanswered before it is given up.
const PULL_GRACE: Duration = Duration::from_secs(2);

/// Below this a pull request does not wait at all: the server reads an expiry of zero as
/// "never", and a few milliseconds would only race the network.
const MIN_WAIT: Duration = Duration::from_millis(10);

/// How long a settlement waits for the server's confirmation (JetStream's own default for
/// acknowledgements).
const SETTLE_TIMEOUT: Duration = Duration::from_secs(5);

/// The queue on a NATS server with JetStream enabled.
pub struct NatsQueue {
    js: jetstream::Context,
    stream: stream::Stream,
    /// Consumers already looked up, by topic, to spare a round trip per receive.
    consumers: Mutex<HashMap<String, PullConsumer>>,
}

impl std::fmt::Debug for NatsQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsQueue").field("stream", &STREAM).finish_non_exhaustive()
    }
}

impl NatsQueue {
    /// One publish, acknowledged by the stream (what makes the message durable).
    async fn publish_once(&self, topic: &str, payload: &[u8]) -> std::result::Result<(), PublishError> {
        let ack = self.js.publish(subject(topic), payload.to_vec().into()).await?;
        ack.await.map(|_| ())
    }

    /// Connects to the servers of `url` (one `nats://` URL, or several separated by commas:
    /// the servers of a cluster) and creates the stream with `replicas` copies if it does not
    /// exist yet. A stream that exists with another replica count is changed to `replicas`, so
    /// changing `queue_replicas` and restarting is how a deployment scales its queue. Each
    /// topic's lease is the one of its first `receive` (see the module documentation).
    pub async fn connect(url: &str, replicas: usize) -> Result<Self> {
        let client = ConnectOptions::new()
            .name("origin")
            .event_callback(|event| async move { log_event(&event) })
            .connect(servers(url)?)
            .await
            .map_err(nats_error("connecting"))?;
        let js = jetstream::new(client);
        let stream = open_stream(&js, replicas).await?;
        Ok(Self { js, stream, consumers: Mutex::default() })
    }

    /// Removes a topic that will not be used again (a finished job's results): its consumer
    /// and any messages left in it. Receiving from it afterwards starts it afresh.
    pub async fn delete_topic(&self, topic: &str) -> Result<()> {
        check_topic(topic)?;
        self.forget(topic);
        // The consumer goes first so no receiver takes a message while the rest are purged.
        if let Err(e) = self.stream.delete_consumer(&consumer_name(topic)).await
            && !is_consumer_not_found(&e.kind())
        {
            return Err(nats_error("deleting a consumer")(e));
        }
        self.stream.purge().filter(subject(topic)).await.map_err(nats_error("purging a topic"))?;
        Ok(())
    }

    async fn consumer(&self, topic: &str, lease: Duration) -> Result<PullConsumer> {
        if let Some(consumer) = self.cached(topic) {
            return Ok(consumer);
        }
        let name = consumer_name(topic);
        let config = pull::Config {
            durable_name: Some(name.clone()),
            filter_subject: subject(topic),
            deliver_policy: DeliverPolicy::All,
            ack_policy: AckPolicy::Explicit,
            ack_wait: lease,
            // At least once, however many times a receiver dies holding the message.
            max_deliver: -1,
            // Left at 0, the consumer keeps as many copies as the stream, which is what a
            // work-queue stream requires and what keeps acks through the loss of a server.
            num_replicas: 0,
            ..Default::default()
        };
        let consumer =
            self.stream.get_or_create_consumer(&name, config).await.map_err(nats_error("creating a consumer"))?;
        self.consumers.lock().unwrap_or_else(PoisonError::into_inner).insert(topic.to_owned(), consumer.clone());
        Ok(consumer)
    }

    fn cached(&self, topic: &str) -> Option<PullConsumer> {
        self.consumers.lock().unwrap_or_else(PoisonError::into_inner).get(topic).cloned()
    }

    fn forget(&self, topic: &str) {
        self.consumers.lock().unwrap_or_else(PoisonError::into_inner).remove(topic);
    }
}

#[async_trait]
impl Queue for NatsQueue {
    async fn delete_topic(&self, topic: &str) -> Result<()> {
        Self::delete_topic(self, topic).await
    }

    async fn publish(&self, topic: &str, payload: &[u8]) -> Result<()> {
        check_topic(topic)?;
        let started = std::time::Instant::now();
        let mut pause = Duration::from_millis(200);
        loop {
            match self.publish_once(topic, payload).await {
                // No server took the subject: stored nowhere, so sending it again makes no copy.
                Err(e) if e.kind() == PublishErrorKind::StreamNotFound && started.elapsed() < ELECTION_PATIENCE => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(2));
                }
                done => return done.map_err(nats_error("publishing")),
            }
        }
    }

    async fn receive(&self, topic: &str, lease: Duration, wait: Duration) -> Result<Option<Message>> {
        check_topic(topic)?;
        let consumer = self.consumer(topic, lease).await?;
        // The server answers a pull at its expiry; if the server that took the request dies,
        // no answer ever comes, and without a bound of our own the receiver would wait for
        // ever (seen when a stream's leader was killed mid-transcode).
        let pulled = tokio::time::timeout(wait + PULL_GRACE, pull_one(&consumer, wait)).await;
        let pulled = pulled.unwrap_or_else(|_| Err(Error::Queue("nats: a pull went unanswered".into())));
        let message = match pulled {
            Ok(message) => message,
            Err(e) => {
                // The consumer may have been deleted by another process; look it up afresh next time.
                self.forget(topic);
                return Err(e);
            }
        };
        let Some(message) = message else { return Ok(None) };
        let delivered = message.info().map_err(nats_error("reading message info"))?.delivered;
        Ok(Some(Message {
            payload: message.payload.to_vec(),
            deliveries: u32::try_from(delivered).unwrap_or(u32::MAX),
            lease: Box::new(NatsLease { message }),
        }))
    }
}

/// The servers of a comma-separated list of URLs, in that order.
fn servers(url: &str) -> Result<Vec<ServerAddr>> {
    let servers = url
        .split(',')
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .enumerate()
        // The address itself stays out of the message: it may carry a password.
        .map(|(i, part)| {
            part.parse().map_err(|e| Error::Queue(While::cause(format!("nats, server {} of the URL", i + 1), e)))
        })
        .collect::<Result<Vec<ServerAddr>>>()?;
    if servers.is_empty() {
        return Err(Error::Queue("nats: the URL names no server".into()));
    }
    Ok(servers)
}

/// The stream, created with `replicas` copies or changed to them.
async fn open_stream(js: &jetstream::Context, replicas: usize) -> Result<stream::Stream> {
    let mut stream = js
        .get_or_create_stream(stream::Config {
            name: STREAM.into(),
            subjects: vec![format!("{SUBJECT_PREFIX}>")],
            retention: RetentionPolicy::WorkQueue,
            storage: StorageType::File,
            num_replicas: replicas,
            ..Default::default()
        })
        .await
        .map_err(nats_error("creating the stream"))?;
    // A lone server takes a request for more copies, says it has them, and keeps one; only a
    // server in a cluster tells where the copies are.
    if replicas > 1 && stream.cached_info().cluster.is_none() {
        return Err(Error::Queue(
            format!(
                "nats: {replicas} copies of the stream asked for, but the server is not in a cluster and keeps one"
            )
            .into(),
        ));
    }
    let current = copies(&stream);
    if current != replicas {
        // Everything else stays as the server has it; only the number of copies changes, and
        // the server moves the messages and consumers onto the new set of servers.
        tracing::info!(from = current, to = replicas, "changing the queue stream's replica count");
        let config = stream::Config { num_replicas: replicas, ..stream.cached_info().config.clone() };
        js.update_stream(&config).await.map_err(nats_error("changing the stream's replica count"))?;
        stream = js.get_stream(STREAM).await.map_err(nats_error("reading the stream"))?;
    }
    Ok(stream)
}

/// Copies of the stream the server was asked for (it may say 0 for 1).
fn copies(stream: &stream::Stream) -> usize {
    stream.cached_info().config.num_replicas.max(1)
}

/// The connection's own events: a lost server shows in the log, not only as failed calls.
fn log_event(event: &Event) {
    match event {
        Event::Connected => tracing::info!("queue server connected"),
        Event::Disconnected => tracing::warn!("queue server connection lost; reconnecting"),
        Event::LameDuckMode => tracing::warn!("queue server shutting down; reconnecting elsewhere"),
        Event::Draining | Event::Closed => tracing::debug!(event = %event, "queue connection"),
        other => tracing::warn!(event = %other, "queue connection"),
    }
}

async fn pull_one(consumer: &PullConsumer, wait: Duration) -> Result<Option<jetstream::Message>> {
    let batch = if wait < MIN_WAIT {
        consumer.fetch().max_messages(1).messages().await
    } else {
        consumer.batch().max_messages(1).expires(wait).messages().await
    };
    let mut batch = batch.map_err(nats_error("requesting a message"))?;
    batch.next().await.transpose().map_err(nats_error("receiving a message"))
}

/// A delivered JetStream message; settling it answers on its reply subject.
struct NatsLease {
    message: jetstream::Message,
}

impl NatsLease {
    /// Waits for the server to confirm, so a returned `Ok` means the settlement took effect.
    /// Not `double_ack_with`, which takes any answer for a confirmation: while a consumer has
    /// no leader (an election after a server was lost) the answer is the "no responders"
    /// status, and the settlement was dropped.
    async fn settle(&self, kind: AckKind) -> Result<()> {
        let reply =
            self.message.reply.clone().ok_or_else(|| Error::Queue("nats: a message without a reply subject".into()))?;
        let request = Request::new().payload(kind.into()).timeout(Some(SETTLE_TIMEOUT));
        let answer = self
            .message
            .context
            .client()
            .send_request(reply, request)
            .await
            .map_err(nats_error("settling a message"))?;
        match answer.status {
            Some(status) if !status.is_success() => Err(Error::Queue(
                format!("nats, settling a message: {status} {}", answer.description.as_deref().unwrap_or_default())
                    .into(),
            )),
            _ => Ok(()),
        }
    }
}

#[async_trait]
impl Lease for NatsLease {
    async fn ack(&self) -> Result<()> {
        self.settle(AckKind::Ack).await
    }

    async fn nack(&self, delay: Duration) -> Result<()> {
        self.settle(AckKind::Nak((!delay.is_zero()).then_some(delay))).await
    }

    async fn extend(&self) -> Result<()> {
        self.settle(AckKind::Progress).await
    }
}

/// Topics become subject tokens, so only characters that are safe there are allowed, and the
/// dots that separate tokens must not leave an empty one.
fn check_topic(topic: &str) -> Result<()> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if topic.split('.').all(|token| !token.is_empty()) && topic.chars().all(allowed) {
        Ok(())
    } else {
        Err(Error::Queue(format!("invalid topic {topic:?}: use [A-Za-z0-9_-] tokens separated by single dots").into()))
    }
}

fn subject(topic: &str) -> String {
    format!("{SUBJECT_PREFIX}{topic}")
}

/// Consumer names may not contain dots; escaping `_` as well keeps distinct topics distinct
/// ("a.b" and "a_b" would otherwise collide).
fn consumer_name(topic: &str) -> String {
    topic
        .chars()
        .map(|c| match c {
            '.' => "_2E".to_owned(),
            '_' => "_5F".to_owned(),
            c => c.to_string(),
        })
        .collect()
}

fn is_consumer_not_found(kind: &ConsumerErrorKind) -> bool {
    matches!(kind, ConsumerErrorKind::JetStream(e) if e.error_code() == ErrorCode::CONSUMER_NOT_FOUND)
}

/// How long a publish waits for a server to take the stream's subject again: a stream whose
/// leader died has none until its replicas elect another (seconds; without this wait,
/// `origin/tests/nats_cluster.rs`'s leader kill failed a transcode's three attempts).
const ELECTION_PATIENCE: Duration = Duration::from_secs(15);

fn nats_error<E: Into<Cause>>(doing: &'static str) -> impl FnOnce(E) -> Error {
    move |e| Error::Queue(While::cause(format!("nats, {doing}"), e))
}
