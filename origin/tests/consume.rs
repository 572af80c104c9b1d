//! `queue::consume`, the one consumer loop, on both queues (a fresh SQLite file, and the NATS
//! server at `TEST_NATS_URL` under a namespace of its own): a message that always fails ends
//! in the dead-letter topic after the allowed deliveries while the rest keep flowing; one that
//! was delivered too often without being settled (its process died each time) is buried
//! without running; undecodable ones are buried with their text; shutdown gives in-flight
//! messages back at once instead of leaving them to their lease.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use common::services::{service_url, unique};
use origin::queue::consume::{
    Backoff, Consumer, DEAD_LETTERS, DeadLetter, Delivery, Handler, Outcomes, Verdict, consume,
};
use origin::queue::local::LocalQueue;
use origin::queue::nats::NatsQueue;
use origin::queue::{Namespaced, Queue};
use serde::Deserialize;
use tokio::sync::{Notify, watch};

const TOPIC: &str = "work";

#[derive(Debug, Deserialize)]
struct Item {
    name: String,
}

/// Fails `poison` every time, never finishes `slow`, does the rest; records what it saw.
#[derive(Default)]
struct Recorder {
    handled: Mutex<Vec<(String, u32)>>,
    buried: Mutex<Vec<(String, String)>>,
    slow_started: Notify,
}

#[async_trait]
impl Handler for Recorder {
    type Message = Item;

    async fn handle(&self, item: &Item, delivery: Delivery) -> Verdict {
        self.handled.lock().unwrap().push((item.name.clone(), delivery.deliveries));
        match item.name.as_str() {
            "poison" => Verdict::Retry("it always fails".into()),
            "slow" => {
                self.slow_started.notify_one();
                std::future::pending().await
            }
            _ => Verdict::Ack,
        }
    }

    async fn dead(&self, item: &Item, _: Delivery, code: &str, _: &str) -> origin::Result<()> {
        self.buried.lock().unwrap().push((item.name.clone(), code.to_owned()));
        Ok(())
    }
}

impl Recorder {
    fn deliveries_of(&self, name: &str) -> Vec<u32> {
        self.handled.lock().unwrap().iter().filter(|(n, _)| n == name).map(|(_, d)| *d).collect()
    }
}

fn consumer() -> Consumer {
    Consumer {
        name: "test",
        topics: vec![TOPIC.to_owned()],
        lease: Duration::from_secs(30),
        concurrency: 2,
        max_deliveries: 3,
        backoff: Backoff { first: Duration::from_millis(20), max: Duration::from_millis(40) },
    }
}

/// The queues to run on: local always, NATS when configured (or in CI).
async fn queues() -> Vec<(&'static str, Arc<dyn Queue>, Option<tempfile::TempDir>)> {
    let dir = tempfile::tempdir().unwrap();
    let local: Arc<dyn Queue> = Arc::new(LocalQueue::open(&dir.path().join("queue.db")).await.unwrap());
    let mut out = vec![("local", local, Some(dir))];
    if let Some(url) = service_url("TEST_NATS_URL", "consume on NATS") {
        let nats: Arc<dyn Queue> = Arc::new(NatsQueue::connect(&url, 1).await.unwrap());
        out.push(("nats", Arc::new(Namespaced::new(nats, &unique("consume"))), None));
    }
    out
}

struct Running {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    outcomes: Outcomes,
}

fn start(queue: &Arc<dyn Queue>, handler: &Arc<Recorder>) -> Running {
    let (stop, stopped) = watch::channel(false);
    let outcomes = Outcomes::default();
    let task = tokio::spawn(consume(queue.clone(), consumer(), handler.clone(), outcomes.clone(), stopped));
    Running { stop, task, outcomes }
}

impl Running {
    /// Stops the consumer; returns how long it took.
    async fn stop(self) -> Duration {
        let started = Instant::now();
        self.stop.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(10), self.task).await.expect("consume stops").unwrap();
        started.elapsed()
    }

    fn count(&self, verdict: &str) -> u64 {
        self.outcomes.get_or_create(&vec![("consumer", "test".to_owned()), ("verdict", verdict.to_owned())]).get()
    }
}

async fn dead_letters(queue: &Arc<dyn Queue>, n: usize) -> Vec<DeadLetter> {
    let mut letters = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while letters.len() < n && Instant::now() < deadline {
        if let Some(m) = queue.receive(DEAD_LETTERS, Duration::from_secs(30), Duration::from_millis(500)).await.unwrap()
        {
            letters.push(serde_json::from_slice(&m.payload).unwrap());
            m.lease.ack().await.unwrap();
        }
    }
    letters
}

async fn until(what: &str, check: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn item(name: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({ "name": name })).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_that_always_fails_is_dead_lettered_and_the_rest_keep_flowing() {
    for (backend, queue, _dir) in queues().await {
        let handler = Arc::new(Recorder::default());
        queue.publish(TOPIC, &item("poison")).await.unwrap();
        queue.publish(TOPIC, b"not json").await.unwrap();
        for i in 0..5 {
            queue.publish(TOPIC, &item(&format!("good-{i}"))).await.unwrap();
        }
        let running = start(&queue, &handler);
        let mut letters = dead_letters(&queue, 2).await;
        letters.sort_by(|a, b| a.code.cmp(&b.code));
        assert_eq!(letters.len(), 2, "{backend}: both bad messages buried");
        let (exhausted, undecodable) = (&letters[0], &letters[1]);
        assert_eq!((exhausted.code.as_str(), exhausted.deliveries), ("retries_exhausted", 3), "{backend}");
        assert_eq!(exhausted.payload, serde_json::json!({ "name": "poison" }), "{backend}: kept as it was");
        assert_eq!((exhausted.topic.as_str(), exhausted.consumer.as_str()), (TOPIC, "test"));
        assert_eq!(undecodable.code, "undecodable", "{backend}");
        assert_eq!(undecodable.payload, serde_json::json!("not json"), "{backend}: kept as text");

        until("the good messages", || (0..5).all(|i| handler.deliveries_of(&format!("good-{i}")) == [1])).await;
        assert_eq!(handler.deliveries_of("poison"), [1, 2, 3], "{backend}: tried exactly the allowed times");
        assert_eq!(*handler.buried.lock().unwrap(), [("poison".to_owned(), "retries_exhausted".to_owned())]);
        // Counted once settled, just after the dead letter is out.
        until("the counts", || (running.count("ack"), running.count("retry"), running.count("dead")) == (5, 2, 2))
            .await;
        running.stop().await;
        // Nothing is left to come back.
        let left = queue.receive(TOPIC, Duration::from_secs(30), Duration::from_millis(300)).await.unwrap();
        assert!(left.is_none(), "{backend}: {left:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_never_settled_is_buried_without_running_again() {
    for (backend, queue, _dir) in queues().await {
        let handler = Arc::new(Recorder::default());
        queue.publish(TOPIC, &item("crasher")).await.unwrap();
        // Three deliveries that ended without a verdict, as when the process died each time.
        for n in 1..=3 {
            let m = queue.receive(TOPIC, Duration::from_secs(30), Duration::from_secs(5)).await.unwrap().unwrap();
            assert_eq!(m.deliveries, n, "{backend}");
            m.lease.nack(Duration::ZERO).await.unwrap();
        }
        let running = start(&queue, &handler);
        let letters = dead_letters(&queue, 1).await;
        assert_eq!(letters.len(), 1, "{backend}");
        assert_eq!((letters[0].code.as_str(), letters[0].deliveries), ("too_many_deliveries", 4), "{backend}");
        assert!(handler.deliveries_of("crasher").is_empty(), "{backend}: not run a fourth time");
        assert_eq!(*handler.buried.lock().unwrap(), [("crasher".to_owned(), "too_many_deliveries".to_owned())]);
        running.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_gives_in_flight_messages_back_at_once() {
    for (backend, queue, _dir) in queues().await {
        let handler = Arc::new(Recorder::default());
        queue.publish(TOPIC, &item("slow")).await.unwrap();
        let running = start(&queue, &handler);
        tokio::time::timeout(Duration::from_secs(20), handler.slow_started.notified()).await.expect("slow started");
        let took = running.stop().await;
        assert!(took < Duration::from_secs(5), "{backend}: stopped in {took:?}, not after its 30 s lease");
        // Back at once, not after the lease: the next receiver gets it as its second delivery.
        let m = queue.receive(TOPIC, Duration::from_secs(30), Duration::from_secs(5)).await.unwrap();
        let m = m.unwrap_or_else(|| panic!("{backend}: the message was not given back"));
        assert_eq!(m.deliveries, 2, "{backend}");
        m.lease.ack().await.unwrap();
    }
}
