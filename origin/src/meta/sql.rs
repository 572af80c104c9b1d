//! `MetaStore` over SQLite (embedded default) or PostgreSQL, with sqlx.
//!
//! Both backends go through `sqlx::AnyPool` with one query text per operation: the schemas in
//! `migrations/sqlite` and `migrations/postgres` have the same tables and columns, and `$N`
//! parameters mean the same thing to both. Values cross the `Any` driver only as `i64`, `f64`,
//! `bool`, text and bytes, so unsigned sizes are checked on the way in and out, and renditions
//! and upload parts travel as JSON text.

mod ondemand;
mod people;
mod pops;
mod primary;

use std::sync::Arc;

use async_trait::async_trait;
use sqlx::any::{AnyArguments, AnyPoolOptions, AnyRow};
use sqlx::migrate::Migrator;
use sqlx::query::Query;
use sqlx::{Any, AnyPool, AssertSqlSafe, Executor, Row, Transaction};

use self::primary::PrimaryPool;
use super::{
    Admission, Audit, Intake, Job, JobState, MetaStore, Millis, NewVideo, Piece, Privacy, StateChange, Upload,
    UploadKind, Video, VideoPatch, VideoQuery, VideoState, Webhook, WrappedKey,
};
use crate::error::{Error, Result};

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/postgres");

/// Several processes share an SQLite file: WAL lets readers run beside the one writer, and the
/// busy timeout (ms) makes a writer wait for another process's lock instead of failing at once.
const SQLITE_PRAGMAS: &str = "PRAGMA busy_timeout = 10000; PRAGMA journal_mode = WAL;";

type AnyQuery = Query<'static, Any, AnyArguments>;

/// Which database a URL names; the few statements that differ (pragmas, locks) depend on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    fn of(url: &str) -> Result<Self> {
        if url.starts_with("sqlite:") {
            Ok(Self::Sqlite)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Ok(Self::Postgres)
        } else {
            // Only the scheme: the rest of a URL may hold a password.
            let scheme = url.split_once(':').map_or("none", |(scheme, _)| scheme);
            Err(Error::Config(format!("metadata database URL must be sqlite:// or postgres://, not {scheme}:")))
        }
    }

    fn migrator(self) -> &'static Migrator {
        match self {
            Self::Sqlite => &SQLITE_MIGRATIONS,
            Self::Postgres => &POSTGRES_MIGRATIONS,
        }
    }
}

/// The metadata store on SQLite or PostgreSQL.
#[derive(Debug, Clone)]
pub struct SqlStore {
    /// The pool, swapped when a listed PostgreSQL host takes over as primary.
    primary: Arc<PrimaryPool>,
    backend: Backend,
}

impl SqlStore {
    /// Opens `sqlite://PATH?mode=rwc` or `postgres://…` and brings its schema up to date. A
    /// PostgreSQL URL may list several hosts (`postgres://user@a:5432,b:5432/db`): the store
    /// uses the one that is the primary and follows the primary when it moves.
    pub async fn connect(url: &str) -> Result<Self> {
        let backend = Backend::of(url)?;
        sqlx::any::install_default_drivers();
        let primary = match backend {
            Backend::Sqlite => PrimaryPool::fixed(sqlite_pool_options().connect(url).await?),
            // Only the primary takes the migrations' writes.
            Backend::Postgres => PrimaryPool::connect(url).await?,
        };
        backend.migrator().run(&primary.pool()).await?;
        Ok(Self { primary, backend })
    }

    /// Closes every connection, waiting for queries in flight.
    pub async fn close(&self) {
        self.primary.close().await;
    }

    /// The URL naming only the host that is the primary now, of those a PostgreSQL `url`
    /// lists (a URL naming one host comes back as it is). For connections the store does not
    /// make itself, such as a `LISTEN`ing one.
    pub async fn primary_url(url: &str) -> Result<String> {
        sqlx::any::install_default_drivers();
        primary::primary_url(url).await
    }

    /// The pool of the current primary. Taken afresh for each operation so that operations
    /// after a failover reach the new primary.
    fn pool(&self) -> AnyPool {
        self.primary.pool()
    }

    /// Starts a transaction on the current primary.
    async fn begin(&self) -> Result<Transaction<'static, Any>> {
        let begun = self.pool().begin().await;
        self.watch(begun)
    }

    /// Converts a query's outcome, first letting a connection failure start the search for
    /// the primary (the failed request still fails; the ones after it find the new primary).
    fn watch<T>(&self, outcome: Result<T, sqlx::Error>) -> Result<T> {
        outcome.map_err(|e| {
            self.primary.observe(&e);
            e.into()
        })
    }

    async fn optional<T>(&self, query: AnyQuery, map: fn(&AnyRow) -> Result<T>) -> Result<Option<T>> {
        self.watch(query.fetch_optional(&self.pool()).await)?.as_ref().map(map).transpose()
    }

    async fn all<T>(&self, query: AnyQuery, map: fn(&AnyRow) -> Result<T>) -> Result<Vec<T>> {
        self.watch(query.fetch_all(&self.pool()).await)?.iter().map(map).collect()
    }

    async fn execute(&self, query: AnyQuery) -> Result<()> {
        self.watch(query.execute(&self.pool()).await)?;
        Ok(())
    }
}

/// Every SQLite connection gets the pragmas above.
fn sqlite_pool_options() -> AnyPoolOptions {
    AnyPoolOptions::new().after_connect(|conn, _| {
        Box::pin(async move {
            conn.execute(SQLITE_PRAGMAS).await?;
            Ok(())
        })
    })
}

#[async_trait]
impl MetaStore for SqlStore {
    async fn create_video(&self, v: &NewVideo) -> Result<Video> {
        let query = sqlx::query(
            "INSERT INTO videos (id, creator, title, title_folded, description, language, filename, size, \
             content_type, state, progress, renditions, created_at, updated_at, privacy, channel) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 0.0, '[]', $11, $11, $12, $13) RETURNING *",
        )
        .bind(v.id.clone())
        .bind(v.creator.clone())
        .bind(v.title.clone())
        .bind(v.title.to_lowercase())
        .bind(v.description.clone())
        .bind(v.language.clone())
        .bind(v.filename.clone())
        .bind(to_db(v.size)?)
        .bind(v.content_type.clone())
        .bind(VideoState::Uploading.as_str())
        .bind(v.now)
        .bind(v.privacy.as_str())
        .bind(v.channel.clone());
        let row = self.watch(query.fetch_one(&self.pool()).await)?;
        video_from(&row)
    }

    async fn discard_new_video(&self, id: &str) -> Result<bool> {
        let query = sqlx::query(
            "DELETE FROM videos WHERE id = $1 AND state = $2 \
             AND NOT EXISTS (SELECT 1 FROM uploads WHERE video_id = $1)",
        )
        .bind(id.to_owned())
        .bind(VideoState::Uploading.as_str());
        Ok(self.watch(query.execute(&self.pool()).await)?.rows_affected() == 1)
    }

    async fn video(&self, id: &str) -> Result<Option<Video>> {
        self.optional(sqlx::query("SELECT * FROM videos WHERE id = $1").bind(id.to_owned()), video_from).await
    }

    async fn list_videos(&self, q: &VideoQuery) -> Result<Vec<Video>> {
        let query = sqlx::query(
            r"SELECT * FROM videos
              WHERE ($1 IS NULL OR creator = $1)
                AND ($2 IS NULL OR title_folded LIKE ('%' || $2 || '%') ESCAPE '\')
                AND ($3 OR state <> $4)
                AND ($7 IS NULL OR channel = $7)
                AND (NOT $8 OR privacy = $9)
              ORDER BY created_at DESC, id DESC
              LIMIT $5 OFFSET $6",
        )
        .bind(q.creator.clone())
        .bind(q.title.as_deref().map(like_fragment))
        .bind(q.include_deleted)
        .bind(VideoState::Deleted.as_str())
        .bind(i64::from(q.limit))
        .bind(i64::from(q.offset))
        .bind(q.channel.clone())
        .bind(q.public_only)
        .bind(Privacy::Public.as_str());
        self.all(query, video_from).await
    }

    async fn patch_video(&self, id: &str, patch: &VideoPatch, now: Millis) -> Result<Option<Video>> {
        let query = sqlx::query(
            "UPDATE videos SET title = COALESCE($1, title), title_folded = COALESCE($2, title_folded), \
             description = COALESCE($3, description), language = COALESCE($4, language), \
             privacy = COALESCE($7, privacy), gated = COALESCE($8, gated), poster = COALESCE($9, poster), \
             updated_at = $5 WHERE id = $6 RETURNING *",
        )
        .bind(patch.title.clone())
        .bind(patch.title.as_deref().map(str::to_lowercase))
        .bind(patch.description.clone())
        .bind(patch.language.clone())
        .bind(now)
        .bind(id.to_owned())
        .bind(patch.privacy.map(Privacy::as_str))
        .bind(patch.gated.map(i64::from))
        .bind(patch.poster.map(i64::from));
        self.optional(query, video_from).await
    }

    async fn change_state(&self, id: &str, from: &[VideoState], change: &StateChange) -> Result<Option<Video>> {
        let (error_code, error_message) = change.error.clone().unzip();
        // A flag rather than a NULL duration: sqlx 0.9's `Any` driver declares a NULL `f64` to
        // PostgreSQL as `float4`, and the statement it caches then rejects a real `f64`.
        let (duration, renditions) = match &change.result {
            Some((duration, renditions)) => (*duration, serde_json::to_string(renditions)?),
            None => (0.0, String::new()),
        };
        let sql = format!(
            "UPDATE videos SET state = $1, progress = CASE WHEN $10 THEN $2 ELSE progress END, \
             error_code = $3, error_message = $4, \
             duration = CASE WHEN $5 THEN $6 ELSE duration END, \
             renditions = CASE WHEN $5 THEN $7 ELSE renditions END, updated_at = $8 \
             WHERE id = $9 AND state IN ({}) RETURNING *",
            name_list(from.iter().map(|s| s.as_str()))
        );
        let query = sqlx::query(AssertSqlSafe(sql))
            .bind(change.state.as_str())
            .bind(change.progress.unwrap_or(0.0))
            .bind(error_code)
            .bind(error_message)
            .bind(change.result.is_some())
            .bind(duration)
            .bind(renditions)
            .bind(change.now)
            .bind(id.to_owned())
            .bind(change.progress.is_some());
        self.optional(query, video_from).await
    }

    async fn create_upload(&self, u: &Upload) -> Result<()> {
        self.execute(insert_upload(u)?).await
    }

    async fn admit_upload(&self, u: &Upload, max_open: usize) -> Result<Admission> {
        let mut tx = self.begin().await?;
        // A write to the video row first: it locks the row (PostgreSQL) or the database
        // (SQLite), so admissions and completions of one video happen one after another and
        // the count below cannot be overtaken.
        let open = sqlx::query(
            "UPDATE videos SET updated_at = updated_at WHERE id = $1 AND state = $2 AND completed_upload IS NULL",
        )
        .bind(u.video_id.clone())
        .bind(VideoState::Uploading.as_str())
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if !open {
            tx.rollback().await?;
            return Ok(Admission::Closed(self.intake(&u.video_id).await?));
        }
        if u.kind != UploadKind::Final {
            let held: i64 = sqlx::query("SELECT COUNT(*) AS n FROM uploads WHERE video_id = $1 AND kind <> $2")
                .bind(u.video_id.clone())
                .bind(kind_name(UploadKind::Final))
                .fetch_one(&mut *tx)
                .await?
                .try_get("n")?;
            let held = usize::try_from(held).unwrap_or(usize::MAX);
            if held >= max_open {
                tx.rollback().await?;
                return Ok(Admission::TooMany(held));
            }
        }
        insert_upload(u)?.execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(Admission::Admitted)
    }

    async fn intake(&self, video_id: &str) -> Result<Option<Intake>> {
        let query = sqlx::query("SELECT state, completed_upload FROM videos WHERE id = $1").bind(video_id.to_owned());
        self.optional(query, intake_from).await
    }

    async fn claim_completion(&self, video_id: &str, upload_id: &str) -> Result<bool> {
        let query = sqlx::query(
            "UPDATE videos SET completed_upload = $1 WHERE id = $2 AND state = $3 \
             AND (completed_upload IS NULL OR completed_upload = $1)",
        )
        .bind(upload_id.to_owned())
        .bind(video_id.to_owned())
        .bind(VideoState::Uploading.as_str());
        Ok(self.watch(query.execute(&self.pool()).await)?.rows_affected() == 1)
    }

    async fn release_completion(&self, video_id: &str, upload_id: &str) -> Result<()> {
        let query = sqlx::query(
            "UPDATE videos SET completed_upload = NULL WHERE id = $1 AND completed_upload = $2 AND state = $3",
        )
        .bind(video_id.to_owned())
        .bind(upload_id.to_owned())
        .bind(VideoState::Uploading.as_str());
        self.execute(query).await
    }

    async fn queue_completed(&self, video_id: &str, upload_id: &str, job: &Job, now: Millis) -> Result<Option<Video>> {
        let mut tx = self.begin().await?;
        let row = sqlx::query(
            "UPDATE videos SET state = $1, progress = 0.0, error_code = NULL, error_message = NULL, updated_at = $2 \
             WHERE id = $3 AND state = $4 AND completed_upload = $5 RETURNING *",
        )
        .bind(VideoState::Queued.as_str())
        .bind(now)
        .bind(video_id.to_owned())
        .bind(VideoState::Uploading.as_str())
        .bind(upload_id.to_owned())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            tx.rollback().await?;
            return Ok(None);
        };
        let video = video_from(&row)?;
        insert_job(job).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(Some(video))
    }

    async fn upload(&self, id: &str) -> Result<Option<Upload>> {
        self.optional(sqlx::query("SELECT * FROM uploads WHERE id = $1").bind(id.to_owned()), upload_from).await
    }

    async fn append_piece(&self, upload: &str, piece: &Piece) -> Result<bool> {
        let end = piece.offset.checked_add(piece.length).ok_or_else(|| Error::Internal("piece past u64".into()))?;
        let mut tx = self.begin().await?;
        let moved = sqlx::query("UPDATE uploads SET upload_offset = $1 WHERE id = $2 AND upload_offset = $3")
            .bind(to_db(end)?)
            .bind(upload.to_owned())
            .bind(to_db(piece.offset)?)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            == 1;
        if !moved {
            tx.rollback().await?;
            return Ok(false);
        }
        sqlx::query("INSERT INTO upload_pieces (upload_id, upload_offset, length, object) VALUES ($1, $2, $3, $4)")
            .bind(upload.to_owned())
            .bind(to_db(piece.offset)?)
            .bind(to_db(piece.length)?)
            .bind(piece.object.clone())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn pieces(&self, upload: &str) -> Result<Vec<Piece>> {
        let query = sqlx::query("SELECT * FROM upload_pieces WHERE upload_id = $1 ORDER BY upload_offset")
            .bind(upload.to_owned());
        self.all(query, piece_from).await
    }

    async fn delete_upload(&self, id: &str) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query("DELETE FROM upload_pieces WHERE upload_id = $1").bind(id.to_owned()).execute(&mut *tx).await?;
        sqlx::query("DELETE FROM uploads WHERE id = $1").bind(id.to_owned()).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn expired_uploads(&self, now: Millis) -> Result<Vec<Upload>> {
        let query = sqlx::query(
            "SELECT * FROM uploads WHERE (upload_offset < length OR kind = $2) AND expires_at < $1 \
             ORDER BY expires_at, id",
        )
        .bind(now)
        .bind(kind_name(UploadKind::Partial));
        self.all(query, upload_from).await
    }

    async fn uploads_of(&self, video_id: &str) -> Result<Vec<Upload>> {
        let query =
            sqlx::query("SELECT * FROM uploads WHERE video_id = $1 ORDER BY created_at, id").bind(video_id.to_owned());
        self.all(query, upload_from).await
    }

    async fn create_job(&self, j: &Job) -> Result<()> {
        self.execute(insert_job(j)).await
    }

    async fn job(&self, id: &str) -> Result<Option<Job>> {
        self.optional(sqlx::query("SELECT * FROM jobs WHERE id = $1").bind(id.to_owned()), job_from).await
    }

    async fn set_job_state(
        &self,
        id: &str,
        from: &[JobState],
        state: JobState,
        error_code: Option<&str>,
        now: Millis,
    ) -> Result<bool> {
        let sql = format!(
            "UPDATE jobs SET state = $1, error_code = $2, updated_at = $3 WHERE id = $4 AND state IN ({})",
            name_list(from.iter().map(|s| s.as_str()))
        );
        let query = sqlx::query(AssertSqlSafe(sql))
            .bind(state.as_str())
            .bind(error_code.map(str::to_owned))
            .bind(now)
            .bind(id.to_owned());
        Ok(self.watch(query.execute(&self.pool()).await)?.rows_affected() == 1)
    }

    async fn job_published(&self, id: &str) -> Result<()> {
        self.execute(sqlx::query("UPDATE jobs SET published = 1 WHERE id = $1").bind(id.to_owned())).await
    }

    async fn unpublished_jobs(&self, before: Millis) -> Result<Vec<Job>> {
        let query = sqlx::query(
            "SELECT * FROM jobs WHERE published = 0 AND state = $1 AND created_at < $2 ORDER BY created_at, id",
        )
        .bind(JobState::Queued.as_str())
        .bind(before);
        self.all(query, job_from).await
    }

    async fn unfinished_jobs(&self) -> Result<Vec<Job>> {
        let query = sqlx::query("SELECT * FROM jobs WHERE state IN ($1, $2) ORDER BY created_at, id")
            .bind(JobState::Queued.as_str())
            .bind(JobState::Running.as_str());
        self.all(query, job_from).await
    }

    async fn put_key(&self, k: &WrappedKey) -> Result<()> {
        let query = sqlx::query(
            "INSERT INTO wrapped_keys (video_id, master_version, nonce, sealed) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (video_id) DO UPDATE SET master_version = excluded.master_version, \
             nonce = excluded.nonce, sealed = excluded.sealed",
        )
        .bind(k.video_id.clone())
        .bind(i64::from(k.master_version))
        .bind(k.nonce.clone())
        .bind(k.sealed.clone());
        self.execute(query).await
    }

    async fn key(&self, video_id: &str) -> Result<Option<WrappedKey>> {
        let query = sqlx::query("SELECT * FROM wrapped_keys WHERE video_id = $1").bind(video_id.to_owned());
        self.optional(query, key_from).await
    }

    async fn delete_key(&self, video_id: &str) -> Result<()> {
        self.execute(sqlx::query("DELETE FROM wrapped_keys WHERE video_id = $1").bind(video_id.to_owned())).await
    }

    async fn suspend_video(&self, id: &str, until: Millis, now: Millis) -> Result<Option<Video>> {
        let query = sqlx::query(
            "UPDATE videos SET state = $1, retained_until = $2, updated_at = $3 WHERE id = $4 AND state = $5 RETURNING *",
        )
        .bind(VideoState::Deleted.as_str())
        .bind(until)
        .bind(now)
        .bind(id.to_owned())
        .bind(VideoState::Ready.as_str());
        self.optional(query, video_from).await
    }

    async fn restore_video(&self, id: &str, now: Millis) -> Result<Option<Video>> {
        let query = sqlx::query(
            "UPDATE videos SET state = $1, retained_until = NULL, updated_at = $2 \
             WHERE id = $3 AND state = $4 AND retained_until > $2 RETURNING *",
        )
        .bind(VideoState::Ready.as_str())
        .bind(now)
        .bind(id.to_owned())
        .bind(VideoState::Deleted.as_str());
        self.optional(query, video_from).await
    }

    async fn expired_retentions(&self, now: Millis, limit: u32) -> Result<Vec<String>> {
        let query = sqlx::query(
            "SELECT id FROM videos WHERE retained_until <= $1 AND state = $2 ORDER BY retained_until, id LIMIT $3",
        )
        .bind(now)
        .bind(VideoState::Deleted.as_str())
        .bind(i64::from(limit));
        self.all(query, |row| Ok(row.try_get("id")?)).await
    }

    async fn end_retention(&self, id: &str, now: Millis) -> Result<bool> {
        let query = sqlx::query(
            "UPDATE videos SET retained_until = NULL WHERE id = $1 AND state = $2 AND retained_until <= $3",
        )
        .bind(id.to_owned())
        .bind(VideoState::Deleted.as_str())
        .bind(now);
        Ok(self.watch(query.execute(&self.pool()).await)?.rows_affected() == 1)
    }

    async fn add_audit(&self, a: &Audit) -> Result<()> {
        let query = sqlx::query(
            "INSERT INTO audits (happened_at, actor, action, video_id, reason) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(a.at)
        .bind(a.actor.clone())
        .bind(a.action.clone())
        .bind(a.video_id.clone())
        .bind(a.reason.clone());
        self.execute(query).await
    }

    async fn audits(&self, video_id: &str) -> Result<Vec<Audit>> {
        let query =
            sqlx::query("SELECT * FROM audits WHERE video_id = $1 ORDER BY happened_at, seq").bind(video_id.to_owned());
        self.all(query, audit_from).await
    }

    async fn set_webhook(&self, w: &Webhook) -> Result<()> {
        let query = sqlx::query(
            "INSERT INTO webhooks (creator, url, secret) VALUES ($1, $2, $3) \
             ON CONFLICT (creator) DO UPDATE SET url = excluded.url, secret = excluded.secret",
        )
        .bind(w.creator.clone())
        .bind(w.url.clone())
        .bind(w.secret.clone());
        self.execute(query).await
    }

    async fn webhook(&self, creator: &str) -> Result<Option<Webhook>> {
        let query = sqlx::query("SELECT * FROM webhooks WHERE creator = $1").bind(creator.to_owned());
        self.optional(query, webhook_from).await
    }

    async fn add_purge(&self, video_id: &str, now: Millis) -> Result<i64> {
        let mut tx = self.begin().await?;
        if self.backend == Backend::Postgres {
            // A BIGSERIAL value is drawn at insert but becomes visible at commit, so concurrent
            // inserts could commit out of order and an edge that already read seq N+1 would never
            // see N. Serialising the inserts makes sequence order commit order; readers are not
            // blocked. SQLite already serialises writers.
            sqlx::query("LOCK TABLE purges IN EXCLUSIVE MODE").execute(&mut *tx).await?;
        }
        let seq = sqlx::query("INSERT INTO purges (video_id, created_at) VALUES ($1, $2) RETURNING seq")
            .bind(video_id.to_owned())
            .bind(now)
            .fetch_one(&mut *tx)
            .await?
            .try_get("seq")?;
        tx.commit().await?;
        Ok(seq)
    }

    async fn purges_after(&self, seq: i64) -> Result<Vec<(i64, String)>> {
        let query = sqlx::query("SELECT seq, video_id FROM purges WHERE seq > $1 ORDER BY seq").bind(seq);
        self.all(query, |row| Ok((row.try_get("seq")?, row.try_get("video_id")?))).await
    }
}

fn insert_upload(u: &Upload) -> Result<AnyQuery> {
    Ok(sqlx::query(
        "INSERT INTO uploads (id, video_id, length, upload_offset, kind, parts, metadata, expires_at, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(u.id.clone())
    .bind(u.video_id.clone())
    .bind(to_db(u.length)?)
    .bind(to_db(u.offset)?)
    .bind(kind_name(u.kind))
    .bind(serde_json::to_string(&u.parts)?)
    .bind(u.metadata.clone())
    .bind(u.expires_at)
    .bind(u.created_at))
}

fn insert_job(j: &Job) -> AnyQuery {
    sqlx::query(
        "INSERT INTO jobs (id, video_id, state, error_code, created_at, updated_at, published) \
         VALUES ($1, $2, $3, $4, $5, $6, 0)",
    )
    .bind(j.id.clone())
    .bind(j.video_id.clone())
    .bind(j.state.as_str())
    .bind(j.error_code.clone())
    .bind(j.created_at)
    .bind(j.updated_at)
}

/// `'a', 'b'` for an `IN (...)` of state names: they come from enums, never from a request.
/// An empty list matches nothing.
pub(super) fn name_list<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let quoted: Vec<String> = names.map(|n| format!("'{n}'")).collect();
    if quoted.is_empty() { "''".to_owned() } else { quoted.join(", ") }
}

/// The `LIKE` operand matching `title` anywhere in a folded title, with the user's `%`, `_` and
/// `\` taken literally (the queries declare `\` as the escape character).
fn like_fragment(title: &str) -> String {
    let mut out = String::with_capacity(title.len());
    for c in title.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn to_db(n: u64) -> Result<i64> {
    i64::try_from(n).map_err(|_| Error::bad_request("too_large", format!("{n} does not fit the database")))
}

fn from_db(row: &AnyRow, column: &str) -> Result<u64> {
    let n: i64 = row.try_get(column)?;
    u64::try_from(n).map_err(|_| Error::Internal(format!("negative {column} {n} in the database")))
}

fn kind_name(kind: UploadKind) -> &'static str {
    match kind {
        UploadKind::Single => "single",
        UploadKind::Partial => "partial",
        UploadKind::Final => "final",
    }
}

fn parse_kind(name: &str) -> Result<UploadKind> {
    [UploadKind::Single, UploadKind::Partial, UploadKind::Final]
        .into_iter()
        .find(|k| kind_name(*k) == name)
        .ok_or_else(|| Error::Internal(format!("unknown upload kind {name:?} in the database")))
}

fn video_from(row: &AnyRow) -> Result<Video> {
    let state: String = row.try_get("state")?;
    let renditions: String = row.try_get("renditions")?;
    let privacy: String = row.try_get("privacy")?;
    Ok(Video {
        id: row.try_get("id")?,
        creator: row.try_get("creator")?,
        title: row.try_get("title")?,
        description: row.try_get("description")?,
        language: row.try_get("language")?,
        filename: row.try_get("filename")?,
        size: from_db(row, "size")?,
        content_type: row.try_get("content_type")?,
        state: VideoState::parse(&state)
            .ok_or_else(|| Error::Internal(format!("unknown video state {state:?} in the database")))?,
        error_code: row.try_get("error_code")?,
        error_message: row.try_get("error_message")?,
        progress: row.try_get("progress")?,
        duration: row.try_get("duration")?,
        renditions: serde_json::from_str(&renditions)?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        privacy: Privacy::parse(&privacy)
            .ok_or_else(|| Error::Internal(format!("unknown privacy {privacy:?} in the database")))?,
        channel: row.try_get("channel")?,
        views: from_db(row, "views")?,
        gated: row.try_get::<i64, _>("gated")? != 0,
        retained_until: row.try_get("retained_until")?,
        poster: u8::try_from(row.try_get::<i64, _>("poster")?).unwrap_or(0),
    })
}

fn intake_from(row: &AnyRow) -> Result<Intake> {
    let state: String = row.try_get("state")?;
    Ok(Intake {
        state: VideoState::parse(&state)
            .ok_or_else(|| Error::Internal(format!("unknown video state {state:?} in the database")))?,
        completed_by: row.try_get("completed_upload")?,
    })
}

fn upload_from(row: &AnyRow) -> Result<Upload> {
    let kind: String = row.try_get("kind")?;
    let parts: String = row.try_get("parts")?;
    Ok(Upload {
        id: row.try_get("id")?,
        video_id: row.try_get("video_id")?,
        length: from_db(row, "length")?,
        offset: from_db(row, "upload_offset")?,
        kind: parse_kind(&kind)?,
        parts: serde_json::from_str(&parts)?,
        metadata: row.try_get("metadata")?,
        expires_at: row.try_get("expires_at")?,
        created_at: row.try_get("created_at")?,
    })
}

fn piece_from(row: &AnyRow) -> Result<Piece> {
    Ok(Piece {
        offset: from_db(row, "upload_offset")?,
        length: from_db(row, "length")?,
        object: row.try_get("object")?,
    })
}

fn job_from(row: &AnyRow) -> Result<Job> {
    let state: String = row.try_get("state")?;
    Ok(Job {
        id: row.try_get("id")?,
        video_id: row.try_get("video_id")?,
        state: JobState::parse(&state)
            .ok_or_else(|| Error::Internal(format!("unknown job state {state:?} in the database")))?,
        error_code: row.try_get("error_code")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn key_from(row: &AnyRow) -> Result<WrappedKey> {
    let version: i64 = row.try_get("master_version")?;
    Ok(WrappedKey {
        video_id: row.try_get("video_id")?,
        master_version: u32::try_from(version)
            .map_err(|_| Error::Internal(format!("master key version {version} out of range in the database")))?,
        nonce: row.try_get("nonce")?,
        sealed: row.try_get("sealed")?,
    })
}

fn audit_from(row: &AnyRow) -> Result<Audit> {
    Ok(Audit {
        at: row.try_get("happened_at")?,
        actor: row.try_get("actor")?,
        action: row.try_get("action")?,
        video_id: row.try_get("video_id")?,
        reason: row.try_get("reason")?,
    })
}

fn webhook_from(row: &AnyRow) -> Result<Webhook> {
    Ok(Webhook { creator: row.try_get("creator")?, url: row.try_get("url")?, secret: row.try_get("secret")? })
}
