//! Following the PostgreSQL primary among several hosts.
//!
//! `database_url` may name its hosts libpq-style, `postgres://user@a:5432,b:5432/db`. sqlx
//! connects to one host, so the store keeps one pool pointed at whichever host is the primary
//! (`pg_is_in_recovery()` false). When a query fails the way queries fail while a primary dies
//! or steps down, the store looks again in the background and swaps the pool. The request that
//! saw the failure still fails (a 503 the client retries); the ones after the swap reach the
//! new primary. SQLite has one file and nothing to follow.

use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock, Weak};
use std::time::{Duration, Instant};

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyConnection, AnyPool, Connection};

use crate::error::{Error, Result};

/// How long a query waits for a connection. Short, so that requests fail fast (503, retried
/// by the client) while no primary answers, instead of piling up behind a dead host.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

/// How long asking one host whether it is the primary may take: a host that silently drops
/// packets must not hold up finding the one that answers.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// The pause between two searches for the primary while none is found (a standby takes a
/// moment to be promoted).
const SEARCH_PAUSE: Duration = Duration::from_secs(1);

/// How long the origin waits at start for a primary while the hosts cannot be reached or are
/// all standbys (the database may be starting, or failing over); as long as sqlx's default
/// connection wait, which the origin used to start with.
const STARTUP_WAIT: Duration = Duration::from_secs(30);

/// After a search, failures are not a reason to search again for this long: queries that
/// were already in flight on the old pool fail too, and one search answers them all.
const QUIET_AFTER_SEARCH: Duration = Duration::from_secs(1);

/// One host of a `database_url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Host {
    /// `host:port` as written, for logs and errors (never the credentials).
    pub(super) label: String,
    /// The URL naming this host alone, with everything else of the original.
    pub(super) url: String,
}

/// Splits a libpq-style URL with a comma-separated host list into one URL per host, in the
/// order written (the order they are tried in). A URL with one host comes back as it is.
pub(super) fn split_hosts(url: &str) -> Result<Vec<Host>> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(Error::Config("database_url needs a scheme, as in postgres://".into()));
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    // The last `@`: a password may hold one when not percent-encoded.
    let (userinfo, host_list) = match authority.rsplit_once('@') {
        Some((userinfo, hosts)) => (Some(userinfo), hosts),
        None => (None, authority),
    };
    if !host_list.contains(',') {
        let label = if host_list.is_empty() { "localhost".to_owned() } else { host_list.to_owned() };
        return Ok(vec![Host { label, url: url.to_owned() }]);
    }
    host_list
        .split(',')
        .map(|host| {
            if host.is_empty() {
                return Err(Error::Config("database_url has an empty host in its host list".into()));
            }
            let credentials = userinfo.map(|u| format!("{u}@")).unwrap_or_default();
            Ok(Host { label: host.to_owned(), url: format!("{scheme}://{credentials}{host}{tail}") })
        })
        .collect()
}

/// Whether a failed query is a sign that the primary may have moved: the connection broke, no
/// connection could be had in time, or the server is a standby or shutting down.
pub(super) fn signals_failover(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::Tls(_) => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| failover_code(&code)),
        _ => false,
    }
}

/// PostgreSQL SQLSTATEs that a failover produces.
fn failover_code(code: &str) -> bool {
    matches!(
        code,
        // read_only_sql_transaction: a write reached a standby (or a demoted primary).
        "25006"
        // admin_shutdown, crash_shutdown, cannot_connect_now: the server is going or not yet up.
        | "57P01" | "57P02" | "57P03"
    ) || code.starts_with("08") // connection_exception and its subclasses.
}

/// The pool of the current primary, swapped when the primary moves.
pub(super) struct PrimaryPool {
    pool: RwLock<AnyPool>,
    /// The hosts to choose from; fewer than two means there is nothing to follow.
    hosts: Vec<Host>,
    /// Index in `hosts` of the one `pool` points at.
    current: AtomicUsize,
    /// A search is running (at most one at a time).
    searching: AtomicBool,
    /// When the last search ended.
    searched_at: Mutex<Option<Instant>>,
    closed: AtomicBool,
}

impl std::fmt::Debug for PrimaryPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let current = self.hosts.get(self.current.load(Ordering::Relaxed)).map(|h| h.label.as_str());
        f.debug_struct("PrimaryPool").field("current", &current).finish_non_exhaustive()
    }
}

impl PrimaryPool {
    /// A pool that is never swapped (SQLite).
    pub(super) fn fixed(pool: AnyPool) -> Arc<Self> {
        Arc::new(Self::holding(pool, Vec::new(), 0))
    }

    /// Finds the primary among the URL's hosts and opens a pool to it; fails, naming what
    /// each host answered, when none is the primary.
    pub(super) async fn connect(url: &str) -> Result<Arc<Self>> {
        let hosts = split_hosts(url)?;
        let deadline = Instant::now() + STARTUP_WAIT;
        let index = loop {
            match find_primary(&hosts).await {
                Ok(index) => break index,
                Err(none) if none.transient && Instant::now() < deadline => {
                    tracing::warn!(hosts = %none.report, "waiting for a metadata database primary");
                    tokio::time::sleep(SEARCH_PAUSE).await;
                }
                Err(none) => return Err(no_primary(none)),
            }
        };
        let options = AnyConnectOptions::from_str(&hosts[index].url)?;
        Ok(Arc::new_cyclic(|me| {
            let pool = postgres_pool_options(me.clone()).connect_lazy_with(options);
            Self::holding(pool, hosts, index)
        }))
    }

    fn holding(pool: AnyPool, hosts: Vec<Host>, current: usize) -> Self {
        Self {
            pool: RwLock::new(pool),
            hosts,
            current: AtomicUsize::new(current),
            searching: AtomicBool::new(false),
            searched_at: Mutex::new(None),
            closed: AtomicBool::new(false),
        }
    }

    /// The current pool (a cheap handle).
    pub(super) fn pool(&self) -> AnyPool {
        self.pool.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Looks at a failed query: if it says the primary may have moved, starts a search.
    pub(super) fn observe(self: &Arc<Self>, e: &sqlx::Error) {
        if signals_failover(e) {
            self.follow();
        }
    }

    /// Closes the pool, waiting for queries in flight; no search starts afterwards.
    pub(super) async fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.pool().close().await;
    }

    /// Starts a background search for the primary, unless one is running, one ended moments
    /// ago, or there is only one host.
    fn follow(self: &Arc<Self>) {
        if self.hosts.len() < 2 || self.closed.load(Ordering::SeqCst) || self.searching.swap(true, Ordering::SeqCst) {
            return;
        }
        let recent = self
            .searched_at
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some_and(|at| at.elapsed() < QUIET_AFTER_SEARCH);
        if recent {
            self.searching.store(false, Ordering::SeqCst);
            return;
        }
        tokio::spawn(search(Arc::downgrade(self)));
    }

    /// Points the pool at `hosts[index]`, closing the old one in the background.
    fn switch_to(self: &Arc<Self>, index: usize) -> Result<()> {
        if index == self.current.load(Ordering::SeqCst) {
            // Same host: the pool replaces broken connections by itself.
            return Ok(());
        }
        let options = AnyConnectOptions::from_str(&self.hosts[index].url)?;
        let pool = postgres_pool_options(Arc::downgrade(self)).connect_lazy_with(options);
        let old = std::mem::replace(&mut *self.pool.write().unwrap_or_else(PoisonError::into_inner), pool);
        let from = self.current.swap(index, Ordering::SeqCst);
        tracing::warn!(from = %self.hosts[from].label, to = %self.hosts[index].label, "metadata database primary moved");
        tokio::spawn(async move { old.close().await });
        if self.closed.load(Ordering::SeqCst) {
            // `close` ran while switching and may have closed the old pool only.
            let pool = self.pool();
            tokio::spawn(async move { pool.close().await });
        }
        Ok(())
    }

    fn search_ended(&self) {
        *self.searched_at.lock().unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
        self.searching.store(false, Ordering::SeqCst);
    }
}

/// Searches until the primary is found or the store is closed or dropped. Holds the store
/// only while probing, so dropping it ends the search.
async fn search(store: Weak<PrimaryPool>) {
    let mut rounds = 0u32;
    loop {
        let Some(primary) = store.upgrade() else { return };
        if primary.closed.load(Ordering::SeqCst) {
            return primary.search_ended();
        }
        match find_primary(&primary.hosts).await {
            Ok(index) => {
                if let Err(e) = primary.switch_to(index) {
                    tracing::error!(error = %e, "cannot point the metadata pool at the new primary");
                }
                return primary.search_ended();
            }
            // Loud once per outage; a promotion can take a while.
            Err(none) if rounds == 0 => tracing::warn!(hosts = %none.report, "no metadata database primary yet"),
            Err(none) => tracing::debug!(hosts = %none.report, "no metadata database primary yet"),
        }
        drop(primary);
        rounds += 1;
        tokio::time::sleep(SEARCH_PAUSE).await;
    }
}

/// The single-host URL of the primary among the URL's hosts. One host is taken as it is: its
/// connections find out soon enough, and a single name may be one that follows the primary.
pub(super) async fn primary_url(url: &str) -> Result<String> {
    let mut hosts = split_hosts(url)?;
    if hosts.len() == 1 {
        return Ok(url.to_owned());
    }
    let index = find_primary(&hosts).await.map_err(no_primary)?;
    Ok(hosts.swap_remove(index).url)
}

/// No host is the primary.
#[derive(Debug)]
struct NoPrimary {
    /// What each host answered.
    report: String,
    /// Every host is a standby or could not be reached: waiting may help, unlike with, say,
    /// a refused password.
    transient: bool,
}

fn no_primary(none: NoPrimary) -> Error {
    Error::Database(format!("no PostgreSQL primary among {}", none.report).into())
}

/// The index of the first host (in the order written) that is a primary, or what each host
/// answered.
async fn find_primary(hosts: &[Host]) -> Result<usize, NoPrimary> {
    let answers = futures_util::future::join_all(hosts.iter().map(|h| probe(&h.url))).await;
    let primaries: Vec<usize> =
        answers.iter().enumerate().filter(|(_, a)| matches!(a, Ok(false))).map(|(i, _)| i).collect();
    if primaries.len() > 1 {
        // Split brain is the failover manager's to prevent; the first host listed wins here.
        let labels: Vec<&str> = primaries.iter().map(|&i| hosts[i].label.as_str()).collect();
        tracing::error!(hosts = ?labels, "more than one metadata database host claims to be the primary");
    }
    primaries.first().copied().ok_or_else(|| {
        let lines: Vec<String> = hosts
            .iter()
            .zip(&answers)
            .map(|(h, a)| match a {
                Ok(_) => format!("{}: a standby (in recovery)", h.label),
                Err(e) => format!("{}: {e}", h.label),
            })
            .collect();
        NoPrimary {
            report: format!("{} host(s): {}", hosts.len(), lines.join("; ")),
            transient: answers.iter().all(|a| a.as_ref().err().is_none_or(signals_failover)),
        }
    })
}

/// Whether the host is in recovery (a standby), over a connection of its own.
async fn probe(url: &str) -> Result<bool, sqlx::Error> {
    let ask = async {
        let mut conn = AnyConnection::connect(url).await?;
        let standby = in_recovery(&mut conn).await;
        let _ = conn.close().await;
        standby
    };
    let silent = || std::io::Error::new(std::io::ErrorKind::TimedOut, format!("no answer within {PROBE_TIMEOUT:?}"));
    tokio::time::timeout(PROBE_TIMEOUT, ask).await.unwrap_or_else(|_| Err(sqlx::Error::Io(silent())))
}

async fn in_recovery(conn: &mut AnyConnection) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT pg_is_in_recovery()").fetch_one(&mut *conn).await
}

/// Pool settings for PostgreSQL. Every new connection checks that its host is still the
/// primary: a pool pointed at a host that was demoted (and came back as a standby) would
/// otherwise read fine and fail every write. Refusing it makes the query fail and starts a
/// search.
fn postgres_pool_options(store: Weak<PrimaryPool>) -> AnyPoolOptions {
    AnyPoolOptions::new().acquire_timeout(ACQUIRE_TIMEOUT).after_connect(move |conn, _| {
        let store = store.clone();
        Box::pin(async move {
            if !in_recovery(conn).await? {
                return Ok(());
            }
            if let Some(primary) = store.upgrade() {
                primary.follow();
            }
            Err(sqlx::Error::Configuration("the metadata database host is a standby (in recovery)".into()))
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn urls(url: &str) -> Vec<(String, String)> {
        split_hosts(url).unwrap().into_iter().map(|h| (h.label, h.url)).collect()
    }

    #[test]
    fn one_host_comes_back_unchanged() {
        let url = "postgres://u:p@db.example:5432/meta?sslmode=require";
        assert_eq!(urls(url), [("db.example:5432".to_owned(), url.to_owned())]);
        assert_eq!(urls("postgres:///meta"), [("localhost".to_owned(), "postgres:///meta".to_owned())]);
    }

    #[test]
    fn a_host_list_gives_one_url_per_host_in_order() {
        assert_eq!(
            urls("postgresql://u:p%40ss@a:5432,b,[::1]:5433/meta?sslmode=require&application_name=origin"),
            [
                (
                    "a:5432".to_owned(),
                    "postgresql://u:p%40ss@a:5432/meta?sslmode=require&application_name=origin".to_owned()
                ),
                ("b".to_owned(), "postgresql://u:p%40ss@b/meta?sslmode=require&application_name=origin".to_owned()),
                (
                    "[::1]:5433".to_owned(),
                    "postgresql://u:p%40ss@[::1]:5433/meta?sslmode=require&application_name=origin".to_owned()
                ),
            ]
        );
    }

    #[test]
    fn a_host_list_without_credentials_or_path() {
        assert_eq!(
            urls("postgres://a:1,b:2"),
            [("a:1".to_owned(), "postgres://a:1".to_owned()), ("b:2".to_owned(), "postgres://b:2".to_owned())]
        );
        assert_eq!(urls("postgres://a:1,b:2?x=1")[1].1, "postgres://b:2?x=1");
    }

    #[test]
    fn labels_never_hold_credentials() {
        for host in split_hosts("postgres://user:secret@a:1,b:2/db").unwrap() {
            assert!(!host.label.contains("secret"), "{host:?}");
        }
    }

    #[test]
    fn malformed_host_lists_are_configuration_errors() {
        assert!(matches!(split_hosts("postgres://u@a:1,,b:2/db"), Err(Error::Config(_))));
        assert!(matches!(split_hosts("postgres://u@a:1,/db"), Err(Error::Config(_))));
        assert!(matches!(split_hosts("a:1,b:2/db"), Err(Error::Config(_))));
    }

    #[tokio::test]
    async fn unreachable_hosts_are_each_reported_and_worth_waiting_for() {
        sqlx::any::install_default_drivers();
        // Nothing listens on ports 1 and 2: both connections are refused at once.
        let hosts = split_hosts("postgres://u:secret@127.0.0.1:1,127.0.0.1:2/db").unwrap();
        let none = find_primary(&hosts).await.unwrap_err();
        assert!(none.transient, "{none:?}");
        assert!(none.report.starts_with("2 host(s): 127.0.0.1:1: "), "{}", none.report);
        assert!(none.report.contains("; 127.0.0.1:2: "), "{}", none.report);
        assert!(!none.report.contains("secret"), "{}", none.report);
    }

    #[test]
    fn connection_failures_signal_a_failover() {
        let io = sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert!(signals_failover(&io));
        assert!(signals_failover(&sqlx::Error::PoolTimedOut));
        assert!(signals_failover(&sqlx::Error::Tls("handshake".into())));
    }

    #[test]
    fn query_mistakes_do_not() {
        assert!(!signals_failover(&sqlx::Error::RowNotFound));
        assert!(!signals_failover(&sqlx::Error::ColumnNotFound("x".into())));
        // Closed by this store itself, on shutdown or after a swap.
        assert!(!signals_failover(&sqlx::Error::PoolClosed));
        assert!(!signals_failover(&sqlx::Error::Protocol("unexpected message".into())));
    }

    #[test]
    fn failover_sqlstates() {
        for code in ["25006", "57P01", "57P02", "57P03", "08006", "08001"] {
            assert!(failover_code(code), "{code}");
        }
        // unique_violation, serialization_failure, undefined_table, query_canceled.
        for code in ["23505", "40001", "42P01", "57014"] {
            assert!(!failover_code(code), "{code}");
        }
    }
}
