//! The embedded durable queue: one SQLite file in the data folder, shared by every process on
//! the machine (the origin server and any `origin worker` processes).
//!
//! Each message is a row whose `visible_at` (Unix milliseconds) hides it while it is leased or
//! delayed. Receiving claims the oldest visible row of the topic in one `UPDATE ... RETURNING`
//! statement, so two receivers, in this process or another, can never claim the same row at
//! the same time. The claim writes a fresh random lease token; acks, nacks and extensions only
//! touch the row while it still carries that token.
//!
//! Settling a message whose lease was lost returns [`Error::Queue`] instead of silently doing
//! nothing: once the lease ran out and another receiver claimed the message (or it was already
//! settled), the caller's work is a duplicate and it should know. An extension that fails this
//! way means "stop working on it, someone else has it". A lease that ran out but whose message
//! nobody claimed yet is still honoured.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use ring::rand::{SecureRandom, SystemRandom};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use tokio::sync::Notify;

use super::{Lease, Message, Queue};
use crate::error::{Error, Result, While};

/// How often a waiting receiver looks for messages published by other processes; publishes
/// from this process wake it at once.
const POLL: Duration = Duration::from_millis(50);

/// How long a statement waits for another process's write lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    visible_at INTEGER NOT NULL,
    deliveries INTEGER NOT NULL DEFAULT 0,
    lease_token TEXT
)";

const CREATE_INDEX: &str = "CREATE INDEX IF NOT EXISTS messages_topic_id ON messages (topic, id)";

/// The queue in a SQLite file. Clones share the connection pool and wake each other's
/// receivers immediately; other processes opening the same file see messages within [`POLL`].
#[derive(Clone, Debug)]
pub struct LocalQueue {
    pool: SqlitePool,
    published: Arc<Notify>,
    random: SystemRandom,
}

impl LocalQueue {
    /// Opens the queue file at `path`, creating it (and its folder) if needed.
    pub async fn open(path: &Path) -> Result<Self> {
        if let Some(folder) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            tokio::fs::create_dir_all(folder).await.map_err(Error::io(format!("creating {}", folder.display())))?;
        }
        // FULL makes every commit reach the disk, so a publish survives a power cut, not just
        // a crash; the queue carries few, valuable messages.
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(BUSY_TIMEOUT);
        let pool = SqlitePoolOptions::new().max_connections(4).connect_with(options).await.map_err(queue_error)?;
        sqlx::query(CREATE_TABLE).execute(&pool).await.map_err(queue_error)?;
        sqlx::query(CREATE_INDEX).execute(&pool).await.map_err(queue_error)?;
        Ok(Self { pool, published: Arc::new(Notify::new()), random: SystemRandom::new() })
    }

    /// Removes a topic that will not be used again (a finished job's results) with any
    /// messages left in it; their lease holders then find their leases lost.
    pub async fn delete_topic(&self, topic: &str) -> Result<()> {
        sqlx::query("DELETE FROM messages WHERE topic = ?")
            .bind(topic)
            .execute(&self.pool)
            .await
            .map_err(queue_error)?;
        Ok(())
    }

    /// Closes the connections, checkpointing the write-ahead log.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    async fn claim(&self, topic: &str, lease: Duration) -> Result<Option<Message>> {
        let token = lease_token(&self.random)?;
        let now = now_ms();
        let row: Option<(i64, Vec<u8>, i64)> = sqlx::query_as(
            "UPDATE messages SET visible_at = ?, deliveries = deliveries + 1, lease_token = ?
             WHERE id = (SELECT id FROM messages WHERE topic = ? AND visible_at <= ? ORDER BY id LIMIT 1)
             RETURNING id, payload, deliveries",
        )
        .bind(now.saturating_add(millis(lease)))
        .bind(&token)
        .bind(topic)
        .bind(now)
        .fetch_optional(&self.pool)
        .await
        .map_err(queue_error)?;
        Ok(row.map(|(id, payload, deliveries)| Message {
            payload,
            deliveries: u32::try_from(deliveries).unwrap_or(u32::MAX),
            lease: Box::new(LocalLease {
                pool: self.pool.clone(),
                published: self.published.clone(),
                id,
                token,
                lease,
            }),
        }))
    }
}

#[async_trait]
impl Queue for LocalQueue {
    async fn delete_topic(&self, topic: &str) -> Result<()> {
        Self::delete_topic(self, topic).await
    }

    async fn publish(&self, topic: &str, payload: &[u8]) -> Result<()> {
        sqlx::query("INSERT INTO messages (topic, payload, visible_at) VALUES (?, ?, ?)")
            .bind(topic)
            .bind(payload)
            .bind(now_ms())
            .execute(&self.pool)
            .await
            .map_err(queue_error)?;
        self.published.notify_waiters();
        Ok(())
    }

    async fn receive(&self, topic: &str, lease: Duration, wait: Duration) -> Result<Option<Message>> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            // Registered before the claim so a publish between the claim and the nap still wakes us.
            let published = self.published.notified();
            tokio::pin!(published);
            published.as_mut().enable();
            if let Some(message) = self.claim(topic, lease).await? {
                return Ok(Some(message));
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            tokio::select! {
                () = published => {}
                () = tokio::time::sleep((deadline - now).min(POLL)) => {}
            }
        }
    }
}

/// A claim on one row, valid while the row still carries `token`.
struct LocalLease {
    pool: SqlitePool,
    published: Arc<Notify>,
    id: i64,
    token: String,
    lease: Duration,
}

impl LocalLease {
    fn lost(&self) -> Error {
        Error::Queue(
            format!("lease on message {} was lost: it was settled or leased to another receiver", self.id).into(),
        )
    }

    /// Hides the row until `visible_at`. A nack drops the token so the former holder cannot
    /// settle a message it gave back.
    async fn hide_until(&self, visible_at: i64, keep_lease: bool) -> Result<()> {
        let result = sqlx::query(
            "UPDATE messages SET visible_at = ?, lease_token = CASE WHEN ? THEN lease_token END
             WHERE id = ? AND lease_token = ?",
        )
        .bind(visible_at)
        .bind(keep_lease)
        .bind(self.id)
        .bind(&self.token)
        .execute(&self.pool)
        .await
        .map_err(queue_error)?;
        if result.rows_affected() == 0 { Err(self.lost()) } else { Ok(()) }
    }
}

#[async_trait]
impl Lease for LocalLease {
    async fn ack(&self) -> Result<()> {
        let result = sqlx::query("DELETE FROM messages WHERE id = ? AND lease_token = ?")
            .bind(self.id)
            .bind(&self.token)
            .execute(&self.pool)
            .await
            .map_err(queue_error)?;
        if result.rows_affected() == 0 { Err(self.lost()) } else { Ok(()) }
    }

    async fn nack(&self, delay: Duration) -> Result<()> {
        self.hide_until(now_ms().saturating_add(millis(delay)), false).await?;
        if delay.is_zero() {
            self.published.notify_waiters();
        }
        Ok(())
    }

    async fn extend(&self) -> Result<()> {
        self.hide_until(now_ms().saturating_add(millis(self.lease)), true).await
    }
}

fn queue_error(e: sqlx::Error) -> Error {
    Error::Queue(While::cause("local queue", e))
}

/// Wall-clock milliseconds, the one clock every process on the machine shares.
fn now_ms() -> i64 {
    let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    millis(since_epoch)
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// 128 random bits, so a stale lease holder cannot guess the token of a newer claim.
fn lease_token(random: &SystemRandom) -> Result<String> {
    let mut bytes = [0u8; 16];
    random.fill(&mut bytes).map_err(|_| Error::Internal("the system random generator failed".into()))?;
    Ok(pop_config::token::hex(&bytes))
}
