//! The workers the resource manager knows about: each worker process announces the task
//! kinds it runs and its slots, and heartbeats how many are busy. The API node that waits for
//! a viewer's segment uses it to refuse at once when no worker is alive and to notice when
//! the worker holding the encode has died, so the task goes elsewhere within seconds instead
//! of after a lease.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tokio::sync::watch;

use crate::app::App;
use crate::meta::ondemand::WorkerInfo;
use crate::meta::{self, Millis};

/// How often a worker beats.
pub const HEARTBEAT: Duration = Duration::from_secs(1);
/// A worker silent for this long is dead.
pub const DEAD_AFTER: Duration = Duration::from_secs(4);

/// This process's worker identity.
#[derive(Debug)]
pub struct Worker {
    /// Unique per process run: `{host}-{pid}-{random}`.
    pub id: String,
    kinds: Vec<String>,
    slots: u32,
    busy: AtomicU32,
}

/// Holds a slot busy while alive.
#[derive(Debug)]
pub struct Busy(Arc<Worker>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.busy.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Worker {
    /// A worker of `slots` slots running `kinds`.
    pub fn new(kinds: Vec<String>, slots: u32) -> Arc<Self> {
        // The process id lets an operator (and a test) find the process behind a claim.
        let id = format!("{}-{}-{}", host(), std::process::id(), crate::secrets::random_hex(4).unwrap_or_default());
        Arc::new(Self { id, kinds, slots, busy: AtomicU32::new(0) })
    }

    /// Marks a slot busy until the guard drops.
    pub fn busy(self: &Arc<Self>) -> Busy {
        self.busy.fetch_add(1, Ordering::Relaxed);
        Busy(self.clone())
    }

    /// Tasks running now.
    pub fn running(&self) -> u32 {
        self.busy.load(Ordering::Relaxed)
    }

    fn info(&self, now: Millis) -> WorkerInfo {
        WorkerInfo {
            id: self.id.clone(),
            host: host(),
            kinds: self.kinds.clone(),
            slots: self.slots,
            busy: self.running(),
            heartbeat_at: now,
        }
    }
}

fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map_or_else(|_| "worker".into(), |h| h.trim().to_owned())
}

/// Beats until `shutdown`, then says goodbye.
pub async fn heartbeat(app: Arc<App>, worker: Arc<Worker>, mut shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(HEARTBEAT);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if let Err(e) = app.ondemand.worker_heartbeat(&worker.info(meta::now())).await {
                    tracing::debug!(error = %e, "worker heartbeat not recorded");
                }
            }
            _ = shutdown.changed() => break,
        }
    }
    let _ = app.ondemand.worker_gone(&worker.id).await;
}

/// Whether any live worker but `except` runs encodes.
pub async fn encoders_alive(app: &App, except: Option<&str>) -> crate::Result<bool> {
    let since = meta::now() - DEAD_AFTER.as_millis() as Millis;
    let live = app.ondemand.live_workers(since).await?;
    Ok(live.iter().any(|w| Some(w.id.as_str()) != except && w.kinds.iter().any(|k| k == "encode")))
}

/// Whether worker `id` is alive.
pub async fn alive(app: &App, id: &str) -> crate::Result<bool> {
    let since = meta::now() - DEAD_AFTER.as_millis() as Millis;
    Ok(app.ondemand.worker(id).await?.is_some_and(|w| w.heartbeat_at >= since))
}

/// CPU seconds this process has used (user + system), from `/proc/self/stat`.
pub fn process_cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else { return 0.0 };
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    // Linux reports these in USER_HZ, which is 100 on every architecture it supports.
    (ticks(11) + ticks(12)) / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_grows_with_work() {
        let before = process_cpu_seconds();
        let mut x = 0u64;
        let start = std::time::Instant::now();
        while start.elapsed() < Duration::from_millis(300) {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        assert!(x != 42);
        assert!(process_cpu_seconds() > before, "no CPU time counted");
    }
}
