//! Video events across API nodes through PostgreSQL: `NOTIFY` on publish, one `LISTEN`ing
//! connection per node that hands what it hears to the node's local subscribers. The database
//! is already what every node shares, so this adds no moving part. A notification is sent
//! outside the state change's transaction: an event can be late but never precedes the state
//! it describes, and a client that connects reads the current state first anyway.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions};
use tokio::sync::broadcast;

use super::VideoEvent;
use crate::error::{Error, Result, While};
use crate::meta::sql::SqlStore;

/// The channel every node listens on.
const CHANNEL: &str = "origin_video_events";

/// A node's sender and listener.
pub(super) struct PgFanout {
    pool: PgPool,
    listener: tokio::task::JoinHandle<()>,
}

impl Drop for PgFanout {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

impl PgFanout {
    /// Whether the metadata database can carry events between nodes.
    pub(super) fn supports(database_url: &str) -> bool {
        database_url.starts_with("postgres://") || database_url.starts_with("postgresql://")
    }

    /// Starts listening (before returning, so no event published afterwards is missed) and
    /// forwarding to `local`. With several hosts in `database_url`, on the primary: a standby
    /// can neither `LISTEN` nor `NOTIFY`.
    pub(super) async fn start(database_url: &str, local: broadcast::Sender<VideoEvent>) -> Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(2)
            .acquire_timeout(Duration::from_secs(5))
            .connect_lazy(&SqlStore::primary_url(database_url).await?)
            .map_err(fanout_error("connecting"))?;
        let mut listener = PgListener::connect_with(&pool).await.map_err(fanout_error("connecting the listener"))?;
        listener.listen(CHANNEL).await.map_err(fanout_error("listening"))?;
        let listener = tokio::spawn(forward(listener, local, pool.clone(), database_url.to_owned()));
        Ok(Self { pool, listener })
    }

    /// Sends an event to every node, this one included.
    pub(super) async fn publish(&self, e: &VideoEvent) -> Result<()> {
        let payload = serde_json::to_string(e)?;
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANNEL)
            .bind(payload)
            .execute(&self.pool)
            .await
            .map_err(fanout_error("notifying"))?;
        Ok(())
    }
}

/// Hands every notification to the local subscribers. `try_recv` reconnects by itself after a
/// lost connection (say, a database failover), through `pool`, which a failed reconnection
/// points at the current primary; what was sent meanwhile is lost, and said so.
async fn forward(mut listener: PgListener, local: broadcast::Sender<VideoEvent>, pool: PgPool, database_url: String) {
    loop {
        match listener.try_recv().await {
            Ok(Some(n)) => match serde_json::from_str::<VideoEvent>(n.payload()) {
                Ok(e) => {
                    let _ = local.send(e);
                }
                Err(e) => tracing::warn!(error = %e, "undecodable video event ignored"),
            },
            Ok(None) => tracing::warn!("event listener reconnected; events sent meanwhile were missed"),
            Err(e) => {
                tracing::warn!(error = %e, "event listener failed; retrying");
                follow_primary(&pool, &database_url).await;
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// Points `pool` (and so the listener and `publish`) at the host that is the primary now, when
/// `database_url` lists several.
async fn follow_primary(pool: &PgPool, database_url: &str) {
    let primary = SqlStore::primary_url(database_url).await;
    match primary.and_then(|url| PgConnectOptions::from_str(&url).map_err(fanout_error("reading the primary's URL"))) {
        Ok(options) => pool.set_connect_options(options),
        Err(e) => tracing::debug!(error = %e, "no primary for the event listener yet"),
    }
}

fn fanout_error(doing: &'static str) -> impl FnOnce(sqlx::Error) -> Error {
    move |e| Error::Database(While::cause(format!("event fan-out, {doing}"), e))
}
