//! How a run ends: its duration passes, its request budget runs out, or the operator presses
//! Ctrl-C. Whatever comes first is remembered for the report.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

/// Why the run stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// `run.duration` passed.
    Duration,
    /// `run.max_requests` were sent.
    MaxRequests,
    /// Interrupted (Ctrl-C).
    Interrupted,
}

/// The run's stop signal and request budget.
#[derive(Debug)]
pub struct Stop {
    token: CancellationToken,
    reason: OnceLock<StopReason>,
    max_requests: Option<u64>,
    sent: AtomicU64,
}

impl Stop {
    /// A stop signal with an optional request budget.
    pub fn new(max_requests: Option<u64>) -> Self {
        Self { token: CancellationToken::new(), reason: OnceLock::new(), max_requests, sent: AtomicU64::new(0) }
    }

    /// Stops the run; the first reason given wins.
    pub fn stop(&self, reason: StopReason) {
        let _ = self.reason.set(reason);
        self.token.cancel();
    }

    /// Whether the run is stopping.
    pub fn is_stopped(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Resolves when the run stops.
    pub async fn stopped(&self) {
        self.token.cancelled().await;
    }

    /// Why it stopped (`None` while running).
    pub fn reason(&self) -> Option<StopReason> {
        self.reason.get().copied()
    }

    /// Takes one request from the budget; `false` (and the run stops) once it is spent, so
    /// exactly `max_requests` are ever sent.
    pub fn take_request(&self) -> bool {
        if self.is_stopped() {
            return false;
        }
        let n = self.sent.fetch_add(1, Ordering::Relaxed);
        match self.max_requests {
            Some(max) if n >= max => {
                self.stop(StopReason::MaxRequests);
                false
            }
            Some(max) if n + 1 == max => {
                // The last one may go; stop everyone else now rather than at their next try.
                self.stop(StopReason::MaxRequests);
                true
            }
            _ => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_allows_exactly_max_requests() {
        let stop = Stop::new(Some(3));
        assert_eq!((0..10).filter(|_| stop.take_request()).count(), 3);
        assert_eq!(stop.reason(), Some(StopReason::MaxRequests));
    }

    #[test]
    fn the_first_reason_wins() {
        let stop = Stop::new(None);
        assert!(stop.take_request());
        stop.stop(StopReason::Interrupted);
        stop.stop(StopReason::Duration);
        assert_eq!(stop.reason(), Some(StopReason::Interrupted));
        assert!(!stop.take_request());
    }
}
