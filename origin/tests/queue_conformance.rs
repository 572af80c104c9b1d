//! One conformance suite for every `Queue`: each case runs against `LocalQueue` (a fresh SQLite
//! file) and `NatsQueue` (the server at `TEST_NATS_URL`, skipped loudly when unset outside CI).
//!
//! Each case gets two handles to the same queue (two opens of the file, two connections), so
//! sharing is exercised the way separate processes share it. Topics carry a per-run suffix, with
//! a dot in it as per-job topics have, so runs against a shared NATS server do not meet.

mod common;

use common::services::service_url;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use origin::queue::local::LocalQueue;
use origin::queue::nats::NatsQueue;
use origin::queue::{Message, Queue};

const MS: Duration = Duration::from_millis(1);
/// A lease long enough never to run out during a case that does not want it to.
const LONG: Duration = Duration::from_secs(30);

/// Two handles to one queue, and the topics a case used.
struct Harness {
    queue: Arc<dyn Queue>,
    second: Arc<dyn Queue>,
    backend: Backend,
    run: String,
    used: Mutex<Vec<String>>,
}

/// The first handle again, for what is not in the `Queue` trait.
enum Backend {
    Local {
        queue: Arc<LocalQueue>,
        /// Keeps the queue's folder alive until the case ends.
        _folder: tempfile::TempDir,
    },
    Nats(Arc<NatsQueue>),
}

impl Harness {
    async fn local() -> Self {
        let folder = tempfile::tempdir().expect("temp dir");
        let path = folder.path().join("queue.sqlite3");
        let queue = Arc::new(LocalQueue::open(&path).await.expect("open"));
        let second = LocalQueue::open(&path).await.expect("open again");
        Self::new(queue.clone(), Arc::new(second), Backend::Local { queue, _folder: folder })
    }

    /// `None` when the suite must be skipped.
    async fn nats() -> Option<Self> {
        let url = nats_url()?;
        let queue = Arc::new(NatsQueue::connect(&url, 1).await.expect("connect to NATS"));
        let second = NatsQueue::connect(&url, 1).await.expect("connect to NATS again");
        Some(Self::new(queue.clone(), Arc::new(second), Backend::Nats(queue)))
    }

    fn new(queue: Arc<dyn Queue>, second: Arc<dyn Queue>, backend: Backend) -> Self {
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_nanos();
        let run = format!("t{}_{nanos}", std::process::id());
        Self { queue, second, backend, run, used: Mutex::default() }
    }

    /// A topic unique to this case and run.
    fn topic(&self, name: &str) -> String {
        let topic = format!("{name}.{}", self.run);
        self.used.lock().expect("topics").push(topic.clone());
        topic
    }

    async fn delete_topic(&self, topic: &str) {
        match &self.backend {
            Backend::Local { queue, .. } => queue.delete_topic(topic).await,
            Backend::Nats(queue) => queue.delete_topic(topic).await,
        }
        .expect("delete topic");
    }

    /// The NATS server outlives the case; the SQLite file goes with its folder.
    async fn cleanup(&self) {
        if let Backend::Nats(_) = self.backend {
            let used = self.used.lock().expect("topics").clone();
            for topic in used {
                self.delete_topic(&topic).await;
            }
        }
    }
}

fn nats_url() -> Option<String> {
    service_url("TEST_NATS_URL", "NATS conformance")
}

async fn receive(queue: &dyn Queue, topic: &str, lease: Duration, wait: Duration) -> Option<Message> {
    queue.receive(topic, lease, wait).await.expect("receive")
}

async fn expect_message(queue: &dyn Queue, topic: &str, lease: Duration, wait: Duration) -> Message {
    receive(queue, topic, lease, wait).await.unwrap_or_else(|| panic!("no message on {topic} within {wait:?}"))
}

async fn expect_none(queue: &dyn Queue, topic: &str, lease: Duration, wait: Duration) {
    if let Some(message) = receive(queue, topic, lease, wait).await {
        panic!("unexpected message on {topic}: {:?}", String::from_utf8_lossy(&message.payload));
    }
}

async fn publish(queue: &dyn Queue, topic: &str, payload: &str) {
    queue.publish(topic, payload.as_bytes()).await.expect("publish");
}

fn text(message: &Message) -> &str {
    std::str::from_utf8(&message.payload).expect("utf-8 payload")
}

async fn fifo_within_topic(h: &Harness) {
    let topic = h.topic("fifo");
    for i in 0..5 {
        publish(&*h.queue, &topic, &i.to_string()).await;
    }
    for i in 0..5 {
        let message = expect_message(&*h.queue, &topic, LONG, 1000 * MS).await;
        assert_eq!(text(&message), i.to_string());
        assert_eq!(message.deliveries, 1);
        message.lease.ack().await.expect("ack");
    }
    expect_none(&*h.queue, &topic, LONG, 50 * MS).await;
}

async fn topics_are_independent(h: &Harness) {
    let (a, b, empty) = (h.topic("a"), h.topic("b"), h.topic("empty"));
    publish(&*h.queue, &a, "for a").await;
    publish(&*h.queue, &b, "for b").await;
    expect_none(&*h.queue, &empty, LONG, 100 * MS).await;
    let from_b = expect_message(&*h.queue, &b, LONG, 1000 * MS).await;
    assert_eq!(text(&from_b), "for b");
    from_b.lease.ack().await.expect("ack");
    expect_none(&*h.queue, &b, LONG, 100 * MS).await;
    let from_a = expect_message(&*h.second, &a, LONG, 1000 * MS).await;
    assert_eq!(text(&from_a), "for a");
    from_a.lease.ack().await.expect("ack");
}

async fn leased_message_is_invisible(h: &Harness) {
    let topic = h.topic("invisible");
    publish(&*h.queue, &topic, "only").await;
    let message = expect_message(&*h.queue, &topic, LONG, 1000 * MS).await;
    expect_none(&*h.second, &topic, LONG, 200 * MS).await;
    expect_none(&*h.queue, &topic, LONG, 50 * MS).await;
    message.lease.ack().await.expect("ack");
}

async fn ack_removes_message(h: &Harness) {
    let lease = 200 * MS;
    let topic = h.topic("ack");
    publish(&*h.queue, &topic, "once").await;
    let message = expect_message(&*h.queue, &topic, lease, 1000 * MS).await;
    message.lease.ack().await.expect("ack");
    // Past the lease, so an ack that did nothing would show as a redelivery.
    expect_none(&*h.second, &topic, lease, 2 * lease + 100 * MS).await;
}

async fn nack_redelivers_after_delay(h: &Harness) {
    let topic = h.topic("nack");
    publish(&*h.queue, &topic, "retry").await;
    let message = expect_message(&*h.queue, &topic, LONG, 1000 * MS).await;
    let delay = 300 * MS;
    let nacked = Instant::now();
    message.lease.nack(delay).await.expect("nack");
    expect_none(&*h.second, &topic, LONG, 100 * MS).await;
    let again = expect_message(&*h.second, &topic, LONG, 3000 * MS).await;
    assert!(nacked.elapsed() >= delay - 20 * MS, "redelivered {:?} after the nack", nacked.elapsed());
    assert_eq!(text(&again), "retry");
    assert_eq!(again.deliveries, 2);
    // Without a delay it is back at once.
    again.lease.nack(Duration::ZERO).await.expect("nack");
    let third = expect_message(&*h.queue, &topic, LONG, 1000 * MS).await;
    assert_eq!(third.deliveries, 3);
    third.lease.ack().await.expect("ack");
}

async fn expired_lease_redelivers(h: &Harness) {
    let lease = 300 * MS;
    let topic = h.topic("expire");
    publish(&*h.queue, &topic, "lost").await;
    let first = expect_message(&*h.queue, &topic, lease, 1000 * MS).await;
    let leased = Instant::now();
    assert_eq!(first.deliveries, 1);
    let again = expect_message(&*h.second, &topic, lease, 3000 * MS).await;
    assert!(leased.elapsed() >= lease - 20 * MS, "redelivered {:?} into a {lease:?} lease", leased.elapsed());
    assert_eq!(text(&again), "lost");
    assert_eq!(again.deliveries, 2);
    again.lease.ack().await.expect("ack");
    drop(first);
}

async fn extend_keeps_message_invisible(h: &Harness) {
    let lease = 600 * MS;
    let topic = h.topic("extend");
    publish(&*h.queue, &topic, "slow").await;
    let message = expect_message(&*h.queue, &topic, lease, 1000 * MS).await;
    tokio::time::sleep(350 * MS).await;
    message.lease.extend().await.expect("extend");
    tokio::time::sleep(350 * MS).await;
    // Past the original lease, inside the extended one.
    expect_none(&*h.second, &topic, lease, 100 * MS).await;
    // The extension is one lease period, after which it comes back.
    let again = expect_message(&*h.second, &topic, lease, 3000 * MS).await;
    assert_eq!(again.deliveries, 2);
    again.lease.ack().await.expect("ack");
}

async fn concurrent_receivers_share_work(h: &Harness) {
    const COUNT: usize = 20;
    let topic = h.topic("share");
    for i in 0..COUNT {
        publish(&*h.queue, &topic, &i.to_string()).await;
    }
    let (one, two) = tokio::join!(drain(&*h.queue, &topic), drain(&*h.second, &topic));
    assert!(!one.is_empty() && !two.is_empty(), "one receiver got everything: {one:?} / {two:?}");
    let mut all: Vec<usize> = one.iter().chain(&two).copied().collect();
    all.sort_unstable();
    assert_eq!(all, (0..COUNT).collect::<Vec<_>>(), "each message exactly once");
}

/// Takes messages until the topic stays empty, working on each for a moment so the other
/// receiver gets a turn.
async fn drain(queue: &dyn Queue, topic: &str) -> Vec<usize> {
    let mut got = Vec::new();
    while let Some(message) = receive(queue, topic, LONG, 500 * MS).await {
        assert_eq!(message.deliveries, 1, "redelivered while leased");
        got.push(text(&message).parse().expect("number"));
        tokio::time::sleep(20 * MS).await;
        message.lease.ack().await.expect("ack");
    }
    got
}

async fn receive_times_out(h: &Harness) {
    let topic = h.topic("idle");
    let wait = 300 * MS;
    let started = Instant::now();
    expect_none(&*h.queue, &topic, LONG, wait).await;
    let waited = started.elapsed();
    assert!(waited >= wait - 20 * MS && waited < wait + 700 * MS, "waited {waited:?} for a {wait:?} receive");
    let started = Instant::now();
    expect_none(&*h.queue, &topic, LONG, Duration::ZERO).await;
    assert!(started.elapsed() < 500 * MS, "waited {:?} for a receive that should not wait", started.elapsed());
}

async fn waiting_receiver_gets_later_publish(h: &Harness) {
    let topic = h.topic("later");
    let publisher = async {
        tokio::time::sleep(200 * MS).await;
        publish(&*h.second, &topic, "late").await;
    };
    let (message, ()) = tokio::join!(expect_message(&*h.queue, &topic, LONG, 3000 * MS), publisher);
    assert_eq!(text(&message), "late");
    message.lease.ack().await.expect("ack");
}

async fn delete_topic_drops_its_messages(h: &Harness) {
    let (topic, kept) = (h.topic("deleted"), h.topic("kept"));
    publish(&*h.queue, &topic, "received").await;
    publish(&*h.queue, &topic, "left over").await;
    publish(&*h.queue, &kept, "kept").await;
    let message = expect_message(&*h.queue, &topic, LONG, 1000 * MS).await;
    message.lease.ack().await.expect("ack");
    h.delete_topic(&topic).await;
    expect_none(&*h.second, &topic, LONG, 200 * MS).await;
    let other = expect_message(&*h.second, &kept, LONG, 1000 * MS).await;
    assert_eq!(text(&other), "kept");
    other.lease.ack().await.expect("ack");
    // Deleting a topic nobody received from is fine too.
    h.delete_topic(&h.topic("never.used")).await;
}

macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod local_queue {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let h = super::Harness::local().await;
                    super::$case(&h).await;
                    h.cleanup().await;
                }
            )*
        }

        mod nats_queue {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let Some(h) = super::Harness::nats().await else { return };
                    super::$case(&h).await;
                    h.cleanup().await;
                }
            )*
        }
    };
}

conformance!(
    fifo_within_topic,
    topics_are_independent,
    leased_message_is_invisible,
    ack_removes_message,
    nack_redelivers_after_delay,
    expired_lease_redelivers,
    extend_keeps_message_invisible,
    concurrent_receivers_share_work,
    receive_times_out,
    waiting_receiver_gets_later_publish,
    delete_topic_drops_its_messages,
);

#[tokio::test]
async fn local_messages_survive_reopening() {
    let folder = tempfile::tempdir().expect("temp dir");
    let path = folder.path().join("queue.sqlite3");
    let lease = 500 * MS;
    let queue = LocalQueue::open(&path).await.expect("open");
    for payload in ["done", "interrupted", "waiting"] {
        publish(&queue, "tasks", payload).await;
    }
    let done = expect_message(&queue, "tasks", lease, 1000 * MS).await;
    done.lease.ack().await.expect("ack");
    let interrupted = expect_message(&queue, "tasks", lease, 1000 * MS).await;
    assert_eq!(text(&interrupted), "interrupted");
    drop(interrupted);
    queue.close().await;
    drop(queue);

    let reopened = LocalQueue::open(&path).await.expect("reopen");
    let first = expect_message(&reopened, "tasks", lease, 1000 * MS).await;
    assert_eq!(text(&first), "waiting", "the interrupted message is still leased");
    first.lease.ack().await.expect("ack");
    let second = expect_message(&reopened, "tasks", lease, 3000 * MS).await;
    assert_eq!((text(&second), second.deliveries), ("interrupted", 2));
    second.lease.ack().await.expect("ack");
    expect_none(&reopened, "tasks", lease, 300 * MS).await;
}

#[tokio::test]
async fn local_stale_lease_cannot_settle() {
    let h = Harness::local().await;
    let topic = h.topic("stale");
    let lease = 200 * MS;
    publish(&*h.queue, &topic, "contested").await;
    let stale = expect_message(&*h.queue, &topic, lease, 1000 * MS).await;
    let current = expect_message(&*h.second, &topic, lease, 3000 * MS).await;
    assert_eq!(current.deliveries, 2);
    assert!(stale.lease.ack().await.is_err(), "a stale lease acked a re-leased message");
    assert!(stale.lease.extend().await.is_err(), "a stale lease extended a re-leased message");
    assert!(stale.lease.nack(Duration::ZERO).await.is_err(), "a stale lease nacked a re-leased message");
    expect_none(&*h.queue, &topic, lease, 50 * MS).await;
    current.lease.ack().await.expect("the current holder acks");
    assert!(current.lease.ack().await.is_err(), "a settled message acked twice");
    expect_none(&*h.queue, &topic, lease, 300 * MS).await;
}

#[tokio::test]
async fn local_lease_that_ran_out_unclaimed_still_settles() {
    let h = Harness::local().await;
    let topic = h.topic("late");
    let lease = 100 * MS;
    publish(&*h.queue, &topic, "slow").await;
    let message = expect_message(&*h.queue, &topic, lease, 1000 * MS).await;
    tokio::time::sleep(2 * lease).await;
    message.lease.ack().await.expect("nobody took it, so the ack stands");
    expect_none(&*h.queue, &topic, lease, 200 * MS).await;
}

#[tokio::test]
async fn nats_rejects_bad_topics() {
    let Some(h) = Harness::nats().await else { return };
    for topic in ["", "a..b", ".a", "a.", "a b", "a*", "a>"] {
        assert!(h.queue.publish(topic, b"x").await.is_err(), "published to {topic:?}");
    }
}
