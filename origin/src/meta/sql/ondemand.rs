//! `OnDemandStore` over the same SQLite or PostgreSQL pool as the rest of the metadata.

use async_trait::async_trait;
use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};

use super::{SqlStore, from_db, to_db};
use crate::error::{Error, Result};
use crate::meta::Millis;
use crate::meta::ondemand::{Claim, OnDemandStore, Pin, RungState, RungStatus, SegmentKey, WorkerInfo};

fn state_list(states: &[RungState]) -> String {
    super::name_list(states.iter().map(|s| s.as_str()))
}

/// Demand is counted per minute. (PostgreSQL sums `BIGINT` into `NUMERIC`, which the `Any` driver
/// cannot read: sums are cast back.)
const MINUTE: Millis = 60_000;

#[async_trait]
impl OnDemandStore for SqlStore {
    async fn set_rungs(&self, video: &str, rungs: &[RungStatus]) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query("DELETE FROM rungs WHERE video_id = $1").bind(video.to_owned()).execute(&mut *tx).await?;
        for r in rungs {
            sqlx::query(
                "INSERT INTO rungs (video_id, name, state, stored, segments, updated_at) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(video.to_owned())
            .bind(r.name.clone())
            .bind(r.state.as_str())
            .bind(to_db(r.stored)?)
            .bind(to_db(r.segments)?)
            .bind(r.updated_at)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn rungs(&self, video: &str) -> Result<Vec<RungStatus>> {
        self.all(sqlx::query("SELECT * FROM rungs WHERE video_id = $1 ORDER BY name").bind(video.to_owned()), rung_from)
            .await
    }

    async fn move_rung(&self, video: &str, rung: &str, from: &[RungState], to: RungState, now: Millis) -> Result<bool> {
        let sql = format!(
            "UPDATE rungs SET state = $1, updated_at = $2 WHERE video_id = $3 AND name = $4 AND state IN ({})",
            state_list(from)
        );
        let done = sqlx::query(AssertSqlSafe(sql))
            .bind(to.as_str())
            .bind(now)
            .bind(video.to_owned())
            .bind(rung.to_owned())
            .execute(&self.pool())
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn add_stored(&self, video: &str, rung: &str, n: u64, now: Millis) -> Result<()> {
        self.execute(
            sqlx::query(
                "UPDATE rungs SET stored = CASE WHEN stored + $1 > segments THEN segments ELSE stored + $1 END, \
                 updated_at = $2 WHERE video_id = $3 AND name = $4",
            )
            .bind(to_db(n)?)
            .bind(now)
            .bind(video.to_owned())
            .bind(rung.to_owned()),
        )
        .await
    }

    async fn clear_stored(&self, video: &str, rung: &str, now: Millis) -> Result<()> {
        self.execute(
            sqlx::query("UPDATE rungs SET stored = 0, updated_at = $1 WHERE video_id = $2 AND name = $3")
                .bind(now)
                .bind(video.to_owned())
                .bind(rung.to_owned()),
        )
        .await
    }

    async fn rungs_in(&self, states: &[RungState], before: Millis, limit: u32) -> Result<Vec<(String, RungStatus)>> {
        let sql = format!(
            "SELECT * FROM rungs WHERE state IN ({}) AND updated_at < $1 ORDER BY updated_at, video_id, name LIMIT $2",
            state_list(states)
        );
        self.all(sqlx::query(AssertSqlSafe(sql)).bind(before).bind(i64::from(limit)), |row| {
            Ok((row.try_get("video_id")?, rung_from(row)?))
        })
        .await
    }

    async fn forget_video(&self, video: &str) -> Result<()> {
        let mut tx = self.begin().await?;
        for statement in [
            "DELETE FROM rungs WHERE video_id = $1",
            "DELETE FROM pins WHERE video_id = $1",
            "DELETE FROM demand WHERE video_id = $1",
            "DELETE FROM segment_claims WHERE video_id = $1",
        ] {
            sqlx::query(statement).bind(video.to_owned()).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn set_pin(&self, video: &str, pin: Option<Pin>) -> Result<()> {
        match pin {
            Some(p) => {
                self.execute(
                    sqlx::query(
                        "INSERT INTO pins (video_id, pin) VALUES ($1, $2) ON CONFLICT (video_id) DO UPDATE SET pin = excluded.pin",
                    )
                    .bind(video.to_owned())
                    .bind(p.as_str()),
                )
                .await
            }
            None => self.execute(sqlx::query("DELETE FROM pins WHERE video_id = $1").bind(video.to_owned())).await,
        }
    }

    async fn pin(&self, video: &str) -> Result<Option<Pin>> {
        let pin = self
            .optional(sqlx::query("SELECT pin FROM pins WHERE video_id = $1").bind(video.to_owned()), |row| {
                Ok(row.try_get::<String, _>("pin")?)
            })
            .await?;
        pin.map(|p| Pin::parse(&p).ok_or_else(|| Error::Internal(format!("unknown pin {p:?} in the database"))))
            .transpose()
    }

    async fn add_demand(&self, video: &str, requests: u64, now: Millis) -> Result<()> {
        if requests == 0 {
            return Ok(());
        }
        self.execute(
            sqlx::query(
                "INSERT INTO demand (video_id, minute, requests) VALUES ($1, $2, $3) \
                 ON CONFLICT (video_id, minute) DO UPDATE SET requests = demand.requests + excluded.requests",
            )
            .bind(video.to_owned())
            .bind(now - now.rem_euclid(MINUTE))
            .bind(to_db(requests)?),
        )
        .await
    }

    async fn demand_since(&self, video: &str, since: Millis) -> Result<u64> {
        let row = sqlx::query(
            "SELECT CAST(COALESCE(SUM(requests), 0) AS BIGINT) AS n FROM demand WHERE video_id = $1 AND minute >= $2",
        )
        .bind(video.to_owned())
        .bind(since - since.rem_euclid(MINUTE))
        .fetch_one(&self.pool())
        .await?;
        from_db(&row, "n")
    }

    async fn in_demand(&self, since: Millis, min: u64, limit: u32) -> Result<Vec<(String, u64)>> {
        let query = sqlx::query(
            "SELECT video_id, CAST(SUM(requests) AS BIGINT) AS n FROM demand WHERE minute >= $1 GROUP BY video_id \
             HAVING SUM(requests) >= $2 ORDER BY n DESC, video_id LIMIT $3",
        )
        .bind(since - since.rem_euclid(MINUTE))
        .bind(to_db(min)?)
        .bind(i64::from(limit));
        self.all(query, |row| Ok((row.try_get("video_id")?, from_db(row, "n")?))).await
    }

    async fn last_demand(&self, video: &str) -> Result<Option<Millis>> {
        let row = sqlx::query("SELECT MAX(minute) AS m FROM demand WHERE video_id = $1")
            .bind(video.to_owned())
            .fetch_one(&self.pool())
            .await?;
        Ok(row.try_get::<Option<i64>, _>("m")?)
    }

    async fn prune_demand(&self, before: Millis) -> Result<()> {
        self.execute(sqlx::query("DELETE FROM demand WHERE minute < $1").bind(before)).await
    }

    async fn claim_segment(&self, key: &SegmentKey, owner: &str, now: Millis, stale_before: Millis) -> Result<bool> {
        let done = sqlx::query(
            "INSERT INTO segment_claims (video_id, rung, segment, owner, worker, attempt, claimed_at) \
             VALUES ($1, $2, $3, $4, NULL, 1, $5) \
             ON CONFLICT (video_id, rung, segment) DO UPDATE SET owner = excluded.owner, worker = NULL, \
             attempt = 1, claimed_at = excluded.claimed_at WHERE segment_claims.claimed_at < $6",
        )
        .bind(key.video.clone())
        .bind(key.rung.clone())
        .bind(to_db(key.segment)?)
        .bind(owner.to_owned())
        .bind(now)
        .bind(stale_before)
        .execute(&self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn segment_claim(&self, key: &SegmentKey) -> Result<Option<Claim>> {
        let query = sqlx::query("SELECT * FROM segment_claims WHERE video_id = $1 AND rung = $2 AND segment = $3")
            .bind(key.video.clone())
            .bind(key.rung.clone())
            .bind(to_db(key.segment)?);
        self.optional(query, |row| {
            let attempt: i64 = row.try_get("attempt")?;
            Ok(Claim {
                owner: row.try_get("owner")?,
                worker: row.try_get("worker")?,
                attempt: u32::try_from(attempt).unwrap_or(u32::MAX),
                claimed_at: row.try_get("claimed_at")?,
            })
        })
        .await
    }

    async fn claim_taken(&self, key: &SegmentKey, worker: &str) -> Result<()> {
        self.execute(
            sqlx::query("UPDATE segment_claims SET worker = $1 WHERE video_id = $2 AND rung = $3 AND segment = $4")
                .bind(worker.to_owned())
                .bind(key.video.clone())
                .bind(key.rung.clone())
                .bind(to_db(key.segment)?),
        )
        .await
    }

    async fn claim_redispatched(&self, key: &SegmentKey, now: Millis) -> Result<()> {
        self.execute(
            sqlx::query(
                "UPDATE segment_claims SET worker = NULL, attempt = attempt + 1, claimed_at = $1 \
                 WHERE video_id = $2 AND rung = $3 AND segment = $4",
            )
            .bind(now)
            .bind(key.video.clone())
            .bind(key.rung.clone())
            .bind(to_db(key.segment)?),
        )
        .await
    }

    async fn release_segment(&self, key: &SegmentKey) -> Result<()> {
        self.execute(
            sqlx::query("DELETE FROM segment_claims WHERE video_id = $1 AND rung = $2 AND segment = $3")
                .bind(key.video.clone())
                .bind(key.rung.clone())
                .bind(to_db(key.segment)?),
        )
        .await
    }

    async fn claims_of(&self, video: &str, since: Millis) -> Result<u64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM segment_claims WHERE video_id = $1 AND claimed_at >= $2")
            .bind(video.to_owned())
            .bind(since)
            .fetch_one(&self.pool())
            .await?;
        from_db(&row, "n")
    }

    async fn worker_heartbeat(&self, w: &WorkerInfo) -> Result<()> {
        self.execute(
            sqlx::query(
                "INSERT INTO workers (id, host, kinds, slots, busy, heartbeat_at) VALUES ($1, $2, $3, $4, $5, $6) \
                 ON CONFLICT (id) DO UPDATE SET host = excluded.host, kinds = excluded.kinds, slots = excluded.slots, \
                 busy = excluded.busy, heartbeat_at = excluded.heartbeat_at",
            )
            .bind(w.id.clone())
            .bind(w.host.clone())
            .bind(w.kinds.join(","))
            .bind(i64::from(w.slots))
            .bind(i64::from(w.busy))
            .bind(w.heartbeat_at),
        )
        .await
    }

    async fn live_workers(&self, since: Millis) -> Result<Vec<WorkerInfo>> {
        self.all(sqlx::query("SELECT * FROM workers WHERE heartbeat_at >= $1 ORDER BY id").bind(since), worker_from)
            .await
    }

    async fn worker(&self, id: &str) -> Result<Option<WorkerInfo>> {
        self.optional(sqlx::query("SELECT * FROM workers WHERE id = $1").bind(id.to_owned()), worker_from).await
    }

    async fn worker_gone(&self, id: &str) -> Result<()> {
        self.execute(sqlx::query("DELETE FROM workers WHERE id = $1").bind(id.to_owned())).await
    }
}

fn rung_from(row: &AnyRow) -> Result<RungStatus> {
    let state: String = row.try_get("state")?;
    Ok(RungStatus {
        name: row.try_get("name")?,
        state: RungState::parse(&state)
            .ok_or_else(|| Error::Internal(format!("unknown rung state {state:?} in the database")))?,
        stored: from_db(row, "stored")?,
        segments: from_db(row, "segments")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn worker_from(row: &AnyRow) -> Result<WorkerInfo> {
    let kinds: String = row.try_get("kinds")?;
    let slots: i64 = row.try_get("slots")?;
    let busy: i64 = row.try_get("busy")?;
    Ok(WorkerInfo {
        id: row.try_get("id")?,
        host: row.try_get("host")?,
        kinds: kinds.split(',').filter(|k| !k.is_empty()).map(str::to_owned).collect(),
        slots: u32::try_from(slots).unwrap_or(0),
        busy: u32::try_from(busy).unwrap_or(0),
        heartbeat_at: row.try_get("heartbeat_at")?,
    })
}
