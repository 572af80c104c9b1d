//! `PeopleStore` over the same SQLite or PostgreSQL pool as the rest of the metadata.
//!
//! Handles are unique ignoring case through the `UNIQUE` `handle_folded` columns (the handle
//! lower-cased in Rust, as titles are for search): a taken handle is the database's unique
//! violation on one of them, whichever node inserted the other row.

use async_trait::async_trait;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{AnyQuery, SqlStore, from_db};
use crate::error::{Error, Result};
use crate::meta::people::{
    ApiToken, Channel, Claimed, PeopleStore, Report, ReportReason, Resolution, Role, Scope, Session, User,
};
use crate::meta::{Millis, VideoState};

#[async_trait]
impl PeopleStore for SqlStore {
    async fn create_user(&self, user: &User, channel: &Channel) -> Result<Claimed> {
        let mut tx = self.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO users (id, handle, handle_folded, display_name, email, role, password_phc, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(user.id.clone())
        .bind(user.handle.clone())
        .bind(user.handle.to_lowercase())
        .bind(user.display_name.clone())
        .bind(user.email.clone())
        .bind(user.role.as_str())
        .bind(user.password_phc.clone())
        .bind(user.created_at)
        .execute(&mut *tx)
        .await;
        let inserted = match inserted {
            Ok(_) => insert_channel(channel).execute(&mut *tx).await,
            Err(e) => Err(e),
        };
        match inserted {
            Ok(_) => {
                tx.commit().await?;
                Ok(Claimed::Created)
            }
            // PostgreSQL refuses every statement of a transaction after a failed one: back out
            // of all of it, so a taken channel handle leaves no account behind either.
            Err(e) if is_handle_taken(&e) => {
                tx.rollback().await?;
                Ok(Claimed::HandleTaken)
            }
            Err(e) => self.watch(Err(e)),
        }
    }

    async fn user(&self, id: &str) -> Result<Option<User>> {
        self.optional(sqlx::query("SELECT * FROM users WHERE id = $1").bind(id.to_owned()), user_from).await
    }

    async fn user_by_handle(&self, handle: &str) -> Result<Option<User>> {
        let query = sqlx::query("SELECT * FROM users WHERE handle_folded = $1").bind(handle.to_lowercase());
        self.optional(query, user_from).await
    }

    async fn has_admin(&self) -> Result<bool> {
        let query = sqlx::query("SELECT id FROM users WHERE role = $1 LIMIT 1").bind(Role::Admin.as_str());
        Ok(self.optional(query, |_| Ok(())).await?.is_some())
    }

    async fn set_role(&self, user_id: &str, role: Role) -> Result<bool> {
        let query =
            sqlx::query("UPDATE users SET role = $1 WHERE id = $2").bind(role.as_str()).bind(user_id.to_owned());
        Ok(self.watch(query.execute(&self.pool()).await)?.rows_affected() == 1)
    }

    async fn set_password(&self, user_id: &str, phc: &str, now: Millis) -> Result<bool> {
        let mut tx = self.begin().await?;
        let changed = sqlx::query("UPDATE users SET password_phc = $1 WHERE id = $2")
            .bind(phc.to_owned())
            .bind(user_id.to_owned())
            .execute(&mut *tx)
            .await?
            .rows_affected()
            == 1;
        if !changed {
            tx.rollback().await?;
            return Ok(false);
        }
        revoke_sessions(user_id, now).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn create_session(&self, s: &Session) -> Result<()> {
        let query = sqlx::query(
            "INSERT INTO sessions (secret_sha256, user_id, csrf, created_at, expires_at, revoked_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(s.secret_sha256.clone())
        .bind(s.user_id.clone())
        .bind(s.csrf.clone())
        .bind(s.created_at)
        .bind(s.expires_at)
        .bind(s.revoked_at);
        self.execute(query).await
    }

    async fn session(&self, secret_sha256: &str) -> Result<Option<Session>> {
        let query = sqlx::query("SELECT * FROM sessions WHERE secret_sha256 = $1").bind(secret_sha256.to_owned());
        self.optional(query, session_from).await
    }

    async fn revoke_session(&self, secret_sha256: &str, now: Millis) -> Result<bool> {
        let query = sqlx::query("UPDATE sessions SET revoked_at = $1 WHERE secret_sha256 = $2 AND revoked_at IS NULL")
            .bind(now)
            .bind(secret_sha256.to_owned());
        Ok(self.watch(query.execute(&self.pool()).await)?.rows_affected() == 1)
    }

    async fn revoke_sessions_of(&self, user_id: &str, now: Millis) -> Result<u64> {
        Ok(self.watch(revoke_sessions(user_id, now).execute(&self.pool()).await)?.rows_affected())
    }

    async fn create_token(&self, t: &ApiToken) -> Result<()> {
        let scopes: Vec<&str> = t.scopes.iter().map(|s| s.as_str()).collect();
        let query = sqlx::query(
            "INSERT INTO api_tokens (id, user_id, name, scopes, secret_sha256, created_at, revoked_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(t.id.clone())
        .bind(t.user_id.clone())
        .bind(t.name.clone())
        .bind(scopes.join(","))
        .bind(t.secret_sha256.clone())
        .bind(t.created_at)
        .bind(t.revoked_at);
        self.execute(query).await
    }

    async fn token(&self, id: &str) -> Result<Option<ApiToken>> {
        self.optional(sqlx::query("SELECT * FROM api_tokens WHERE id = $1").bind(id.to_owned()), token_from).await
    }

    async fn tokens_of(&self, user_id: &str) -> Result<Vec<ApiToken>> {
        let query = sqlx::query("SELECT * FROM api_tokens WHERE user_id = $1 ORDER BY created_at DESC, id DESC")
            .bind(user_id.to_owned());
        self.all(query, token_from).await
    }

    async fn revoke_token(&self, user_id: &str, id: &str, now: Millis) -> Result<bool> {
        let query =
            sqlx::query("UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND user_id = $3 AND revoked_at IS NULL")
                .bind(now)
                .bind(id.to_owned())
                .bind(user_id.to_owned());
        Ok(self.watch(query.execute(&self.pool()).await)?.rows_affected() == 1)
    }

    async fn create_channel(&self, c: &Channel) -> Result<Claimed> {
        match insert_channel(c).execute(&self.pool()).await {
            Ok(_) => Ok(Claimed::Created),
            Err(e) if is_handle_taken(&e) => Ok(Claimed::HandleTaken),
            Err(e) => self.watch(Err(e)),
        }
    }

    async fn channel(&self, id: &str) -> Result<Option<Channel>> {
        self.optional(sqlx::query("SELECT * FROM channels WHERE id = $1").bind(id.to_owned()), channel_from).await
    }

    async fn channel_by_handle(&self, handle: &str) -> Result<Option<Channel>> {
        let query = sqlx::query("SELECT * FROM channels WHERE handle_folded = $1").bind(handle.to_lowercase());
        self.optional(query, channel_from).await
    }

    async fn channels_of(&self, owner: &str) -> Result<Vec<Channel>> {
        let query =
            sqlx::query("SELECT * FROM channels WHERE owner = $1 ORDER BY created_at, id").bind(owner.to_owned());
        self.all(query, channel_from).await
    }

    async fn share(&self, video_id: &str, user_id: &str, now: Millis) -> Result<()> {
        let query = sqlx::query(
            "INSERT INTO video_shares (video_id, user_id, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (video_id, user_id) DO NOTHING",
        )
        .bind(video_id.to_owned())
        .bind(user_id.to_owned())
        .bind(now);
        self.execute(query).await
    }

    async fn unshare(&self, video_id: &str, user_id: &str) -> Result<bool> {
        let query = sqlx::query("DELETE FROM video_shares WHERE video_id = $1 AND user_id = $2")
            .bind(video_id.to_owned())
            .bind(user_id.to_owned());
        Ok(self.watch(query.execute(&self.pool()).await)?.rows_affected() == 1)
    }

    async fn is_shared(&self, video_id: &str, user_id: &str) -> Result<bool> {
        let query = sqlx::query("SELECT video_id FROM video_shares WHERE video_id = $1 AND user_id = $2")
            .bind(video_id.to_owned())
            .bind(user_id.to_owned());
        Ok(self.optional(query, |_| Ok(())).await?.is_some())
    }

    async fn shares_of(&self, video_id: &str) -> Result<Vec<String>> {
        let query = sqlx::query("SELECT user_id FROM video_shares WHERE video_id = $1 ORDER BY user_id")
            .bind(video_id.to_owned());
        self.all(query, |row| Ok(row.try_get("user_id")?)).await
    }

    async fn count_view(&self, video_id: &str, viewer: &str, now: Millis) -> Result<bool> {
        // The row first: a second view by the same viewer, on any node, waits for the first's
        // transaction and then inserts nothing. No video, no row.
        let mut tx = self.begin().await?;
        let new = sqlx::query(
            "INSERT INTO views (video_id, viewer, viewed_at) VALUES ($1, $2, $3) \
             ON CONFLICT (video_id, viewer) DO NOTHING",
        )
        .bind(video_id.to_owned())
        .bind(viewer.to_owned())
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        let counted = new
            && sqlx::query("UPDATE videos SET views = views + 1 WHERE id = $1")
                .bind(video_id.to_owned())
                .execute(&mut *tx)
                .await?
                .rows_affected()
                == 1;
        if counted {
            tx.commit().await?;
        } else {
            tx.rollback().await?;
        }
        Ok(counted)
    }

    async fn upload_usage(&self, creator: &str, since: Millis) -> Result<(u64, u64)> {
        // PostgreSQL sums `BIGINT` into `NUMERIC`, which the `Any` driver cannot read: cast back.
        let query = sqlx::query(
            "SELECT CAST(COALESCE(SUM(CASE WHEN created_at >= $2 THEN size ELSE 0 END), 0) AS BIGINT) AS recent, \
             CAST(COALESCE(SUM(CASE WHEN state <> $3 THEN size ELSE 0 END), 0) AS BIGINT) AS kept \
             FROM videos WHERE creator = $1",
        )
        .bind(creator.to_owned())
        .bind(since)
        .bind(VideoState::Deleted.as_str());
        let row = self.watch(query.fetch_one(&self.pool()).await)?;
        Ok((from_db(&row, "recent")?, from_db(&row, "kept")?))
    }

    async fn uploads_since(&self, creator: &str, since: Millis) -> Result<Vec<(Millis, u64)>> {
        let query = sqlx::query(
            "SELECT created_at, size FROM videos WHERE creator = $1 AND created_at >= $2 ORDER BY created_at, id",
        )
        .bind(creator.to_owned())
        .bind(since);
        self.all(query, |row| Ok((row.try_get("created_at")?, from_db(row, "size")?))).await
    }

    async fn create_report(&self, r: &Report) -> Result<()> {
        let query = sqlx::query(
            "INSERT INTO reports (id, video_id, reporter, reason, text, created_at, resolution, resolved_by, \
             resolved_at, note) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(r.id.clone())
        .bind(r.video_id.clone())
        .bind(r.reporter.clone())
        .bind(r.reason.as_str())
        .bind(r.text.clone())
        .bind(r.created_at)
        .bind(r.resolution.map(Resolution::as_str))
        .bind(r.resolved_by.clone())
        .bind(r.resolved_at)
        .bind(r.note.clone());
        self.execute(query).await
    }

    async fn report(&self, id: &str) -> Result<Option<Report>> {
        self.optional(sqlx::query("SELECT * FROM reports WHERE id = $1").bind(id.to_owned()), report_from).await
    }

    async fn open_reports(&self, limit: u32) -> Result<Vec<Report>> {
        let query = sqlx::query("SELECT * FROM reports WHERE resolution IS NULL ORDER BY created_at, id LIMIT $1")
            .bind(i64::from(limit));
        self.all(query, report_from).await
    }

    async fn reports_of(&self, video_id: &str) -> Result<Vec<Report>> {
        let query =
            sqlx::query("SELECT * FROM reports WHERE video_id = $1 ORDER BY created_at, id").bind(video_id.to_owned());
        self.all(query, report_from).await
    }

    async fn decided_reports_for_creator(&self, creator: &str) -> Result<Vec<Report>> {
        let query = sqlx::query(
            "SELECT r.* FROM reports r JOIN videos v ON v.id = r.video_id \
             WHERE v.creator = $1 AND r.resolution IS NOT NULL ORDER BY r.created_at, r.id",
        )
        .bind(creator.to_owned());
        self.all(query, report_from).await
    }

    async fn resolve_report(
        &self,
        id: &str,
        resolution: Resolution,
        moderator: &str,
        note: &str,
        now: Millis,
    ) -> Result<bool> {
        let query = sqlx::query(
            "UPDATE reports SET resolution = $1, resolved_by = $2, resolved_at = $3, note = $4 \
             WHERE id = $5 AND resolution IS NULL",
        )
        .bind(resolution.as_str())
        .bind(moderator.to_owned())
        .bind(now)
        .bind(note.to_owned())
        .bind(id.to_owned());
        Ok(self.watch(query.execute(&self.pool()).await)?.rows_affected() == 1)
    }
}

fn insert_channel(c: &Channel) -> AnyQuery {
    sqlx::query(
        "INSERT INTO channels (id, owner, handle, handle_folded, name, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(c.id.clone())
    .bind(c.owner.clone())
    .bind(c.handle.clone())
    .bind(c.handle.to_lowercase())
    .bind(c.name.clone())
    .bind(c.created_at)
}

/// Revokes the sessions of an account that still work: neither revoked nor expired.
fn revoke_sessions(user_id: &str, now: Millis) -> AnyQuery {
    sqlx::query("UPDATE sessions SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL AND expires_at > $1")
        .bind(now)
        .bind(user_id.to_owned())
}

/// Whether an insert failed because a folded handle is taken. Only that unique column: a
/// clashing id (SQLite reports primary keys as unique violations too) is an error.
fn is_handle_taken(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => {
            // PostgreSQL names the constraint (`users_handle_folded_key`); SQLite only says
            // "UNIQUE constraint failed: users.handle_folded".
            db.is_unique_violation()
                && (db.constraint().is_some_and(|c| c.contains("handle_folded"))
                    || db.message().contains("handle_folded"))
        }
        _ => false,
    }
}

fn parse<T>(row: &AnyRow, column: &str, parse: fn(&str) -> Option<T>) -> Result<T> {
    let name: String = row.try_get(column)?;
    parse(&name).ok_or_else(|| Error::Internal(format!("unknown {column} {name:?} in the database")))
}

fn parse_optional<T>(row: &AnyRow, column: &str, parse: fn(&str) -> Option<T>) -> Result<Option<T>> {
    let name: Option<String> = row.try_get(column)?;
    name.map(|name| parse(&name).ok_or_else(|| Error::Internal(format!("unknown {column} {name:?} in the database"))))
        .transpose()
}

fn user_from(row: &AnyRow) -> Result<User> {
    Ok(User {
        id: row.try_get("id")?,
        handle: row.try_get("handle")?,
        display_name: row.try_get("display_name")?,
        email: row.try_get("email")?,
        role: parse(row, "role", Role::parse)?,
        password_phc: row.try_get("password_phc")?,
        created_at: row.try_get("created_at")?,
    })
}

fn session_from(row: &AnyRow) -> Result<Session> {
    Ok(Session {
        secret_sha256: row.try_get("secret_sha256")?,
        user_id: row.try_get("user_id")?,
        csrf: row.try_get("csrf")?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        revoked_at: row.try_get("revoked_at")?,
    })
}

fn token_from(row: &AnyRow) -> Result<ApiToken> {
    let scopes: String = row.try_get("scopes")?;
    let scopes = scopes
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|s| Scope::parse(s).ok_or_else(|| Error::Internal(format!("unknown scope {s:?} in the database"))))
        .collect::<Result<_>>()?;
    Ok(ApiToken {
        id: row.try_get("id")?,
        user_id: row.try_get("user_id")?,
        name: row.try_get("name")?,
        scopes,
        secret_sha256: row.try_get("secret_sha256")?,
        created_at: row.try_get("created_at")?,
        revoked_at: row.try_get("revoked_at")?,
    })
}

fn channel_from(row: &AnyRow) -> Result<Channel> {
    Ok(Channel {
        id: row.try_get("id")?,
        owner: row.try_get("owner")?,
        handle: row.try_get("handle")?,
        name: row.try_get("name")?,
        created_at: row.try_get("created_at")?,
    })
}

fn report_from(row: &AnyRow) -> Result<Report> {
    Ok(Report {
        id: row.try_get("id")?,
        video_id: row.try_get("video_id")?,
        reporter: row.try_get("reporter")?,
        reason: parse(row, "reason", ReportReason::parse)?,
        text: row.try_get("text")?,
        created_at: row.try_get("created_at")?,
        resolution: parse_optional(row, "resolution", Resolution::parse)?,
        resolved_by: row.try_get("resolved_by")?,
        resolved_at: row.try_get("resolved_at")?,
        note: row.try_get("note")?,
    })
}
