//! `PopStore` over the same SQLite or PostgreSQL pool as the rest of the metadata.

use async_trait::async_trait;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{SqlStore, from_db, key_from, to_db};
use crate::error::Result;
use crate::meta::pops::{PopRecord, PopStatus, PopStore};
use crate::meta::{Millis, WrappedKey};

#[async_trait]
impl PopStore for SqlStore {
    async fn enrol_pop(&self, p: &PopRecord) -> Result<()> {
        let query = sqlx::query(
            "INSERT INTO pops (id, region, partner, enabled, credential_sha256, enrolled_at, changed_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO UPDATE SET region = excluded.region, \
             partner = excluded.partner, enabled = excluded.enabled, \
             credential_sha256 = excluded.credential_sha256, changed_at = excluded.changed_at",
        )
        .bind(p.id.clone())
        .bind(p.region.clone())
        .bind(i64::from(p.partner))
        .bind(i64::from(p.enabled))
        .bind(p.credential_sha256.clone())
        .bind(p.enrolled_at)
        .bind(p.changed_at);
        self.execute(query).await
    }

    async fn pop(&self, id: &str) -> Result<Option<PopRecord>> {
        self.optional(sqlx::query("SELECT * FROM pops WHERE id = $1").bind(id.to_owned()), pop_from).await
    }

    async fn pops(&self) -> Result<Vec<PopRecord>> {
        self.all(sqlx::query("SELECT * FROM pops ORDER BY id"), pop_from).await
    }

    async fn set_pop_enabled(&self, id: &str, enabled: bool, now: Millis) -> Result<bool> {
        let done = sqlx::query("UPDATE pops SET enabled = $1, changed_at = $2 WHERE id = $3")
            .bind(i64::from(enabled))
            .bind(now)
            .bind(id.to_owned())
            .execute(&self.pool())
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn keys_wrapped_before(&self, version: u32, limit: usize) -> Result<Vec<WrappedKey>> {
        let query = sqlx::query("SELECT * FROM wrapped_keys WHERE master_version < $1 ORDER BY video_id LIMIT $2")
            .bind(i64::from(version))
            .bind(i64::try_from(limit).unwrap_or(i64::MAX));
        self.all(query, key_from).await
    }

    async fn rewrap_key(&self, from_version: u32, k: &WrappedKey) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE wrapped_keys SET master_version = $1, nonce = $2, sealed = $3 \
             WHERE video_id = $4 AND master_version = $5",
        )
        .bind(i64::from(k.master_version))
        .bind(k.nonce.clone())
        .bind(k.sealed.clone())
        .bind(k.video_id.clone())
        .bind(i64::from(from_version))
        .execute(&self.pool())
        .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn add_popularity(&self, region: &str, minute: i64, counts: &[(String, u64)]) -> Result<()> {
        // One upsert per video (heartbeats report a bounded top list), so two nodes'
        // heartbeats of one region add up; one transaction, so one commit per heartbeat.
        let mut tx = self.begin().await?;
        for (video, requests) in counts {
            sqlx::query(
                "INSERT INTO popularity (region, video_id, minute, requests) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (region, minute, video_id) DO UPDATE SET requests = popularity.requests + excluded.requests",
            )
            .bind(region.to_owned())
            .bind(video.clone())
            .bind(minute)
            .bind(to_db(*requests)?)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn popularity(&self, region: &str, since: i64) -> Result<Vec<(String, i64, u64)>> {
        let query = sqlx::query(
            "SELECT video_id, minute, requests FROM popularity WHERE region = $1 AND minute >= $2 ORDER BY minute",
        )
        .bind(region.to_owned())
        .bind(since);
        self.all(query, |row| Ok((row.try_get("video_id")?, row.try_get("minute")?, from_db(row, "requests")?))).await
    }

    async fn forget_popularity(&self, region: &str, before: i64) -> Result<()> {
        let query = sqlx::query("DELETE FROM popularity WHERE region = $1 AND minute < $2")
            .bind(region.to_owned())
            .bind(before);
        self.execute(query).await
    }

    async fn record_status(&self, s: &PopStatus) -> Result<()> {
        let query = sqlx::query(
            "INSERT INTO pop_status (pop, url, every_ms, load, requests, failed, uploads, beat_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (pop) DO UPDATE SET url = excluded.url, \
             every_ms = excluded.every_ms, load = excluded.load, \
             requests = pop_status.requests / 2 + excluded.requests, \
             failed = pop_status.failed / 2 + excluded.failed, \
             uploads = excluded.uploads, beat_at = excluded.beat_at",
        )
        .bind(s.pop.clone())
        .bind(s.url.clone())
        .bind(to_db(s.every_ms)?)
        .bind(s.load)
        .bind(to_db(s.requests)?)
        .bind(to_db(s.failed)?)
        .bind(i64::from(s.uploads))
        .bind(s.beat_at);
        self.execute(query).await
    }

    async fn statuses(&self) -> Result<Vec<PopStatus>> {
        self.all(sqlx::query("SELECT * FROM pop_status ORDER BY pop"), status_from).await
    }
}

fn status_from(row: &AnyRow) -> Result<PopStatus> {
    Ok(PopStatus {
        pop: row.try_get("pop")?,
        url: row.try_get("url")?,
        every_ms: from_db(row, "every_ms")?,
        load: row.try_get("load")?,
        requests: from_db(row, "requests")?,
        failed: from_db(row, "failed")?,
        uploads: row.try_get::<i64, _>("uploads")? != 0,
        beat_at: row.try_get("beat_at")?,
    })
}

fn pop_from(row: &AnyRow) -> Result<PopRecord> {
    Ok(PopRecord {
        id: row.try_get("id")?,
        region: row.try_get("region")?,
        partner: row.try_get::<i64, _>("partner")? != 0,
        enabled: row.try_get::<i64, _>("enabled")? != 0,
        credential_sha256: row.try_get("credential_sha256")?,
        enrolled_at: row.try_get("enrolled_at")?,
        changed_at: row.try_get("changed_at")?,
    })
}
