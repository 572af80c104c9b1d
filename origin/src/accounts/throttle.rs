//! Sign-in throttling, a pure core: failed attempts are counted per account and per client
//! address in a sliding window; past a budget the key is refused until its oldest failure
//! leaves the window. A success clears the account's count (not the address's: one address
//! guessing many accounts stays throttled). Bounded: the map forgets its stalest keys.
//! In memory per API node: an attacker spread over N nodes gets N budgets, still bounded.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use super::Millis;

/// How many failures each kind of key may have in the window.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    /// Failures per account.
    pub per_account: usize,
    /// Failures per client address.
    pub per_address: usize,
    /// The window.
    pub window: Duration,
}

impl Default for Budget {
    fn default() -> Self {
        Self { per_account: 5, per_address: 20, window: Duration::from_secs(15 * 60) }
    }
}

/// Keys kept at most (each holds at most its budget of timestamps).
const MAX_KEYS: usize = 100_000;

/// Failures by key.
#[derive(Debug, Default)]
pub struct Throttle {
    budget: Budget,
    failures: HashMap<String, VecDeque<Millis>>,
}

impl Throttle {
    /// Counting against `budget`.
    pub fn new(budget: Budget) -> Self {
        Self { budget, failures: HashMap::new() }
    }

    /// `None` when an attempt for `account` from `address` may go ahead, and then it is
    /// counted as a failure at once (so parallel attempts cannot all pass before any fails);
    /// else how long to wait.
    pub fn attempt(&mut self, account: &str, address: &str, now: Millis) -> Option<Duration> {
        let a = self.wait(&account_key(account), self.budget.per_account, now);
        let b = self.wait(&address_key(address), self.budget.per_address, now);
        if a.is_some() || b.is_some() {
            return a.max(b);
        }
        if self.failures.len() >= MAX_KEYS {
            self.forget_stalest();
        }
        for key in [account_key(account), address_key(address)] {
            self.failures.entry(key).or_default().push_back(now);
        }
        None
    }

    /// The attempt made at `at` succeeded: the account's failures are forgotten, and the
    /// address's count loses that attempt (not its other failures).
    pub fn succeeded(&mut self, account: &str, address: &str, at: Millis) {
        self.failures.remove(&account_key(account));
        if let Some(times) = self.failures.get_mut(&address_key(address))
            && let Some(i) = times.iter().rposition(|&t| t == at)
        {
            times.remove(i);
        }
    }

    fn wait(&mut self, key: &str, budget: usize, now: Millis) -> Option<Duration> {
        let window = self.budget.window.as_millis() as Millis;
        let times = self.failures.get_mut(key)?;
        while times.front().is_some_and(|t| now - t >= window) {
            times.pop_front();
        }
        if times.is_empty() {
            self.failures.remove(key);
            return None;
        }
        // The oldest failures beyond the budget must leave the window first.
        let over = times.len().checked_sub(budget)?;
        let until = times[over] + window;
        Some(Duration::from_millis(u64::try_from(until - now).unwrap_or(0).max(1000)))
    }

    fn forget_stalest(&mut self) {
        let mut newest: Vec<(Millis, String)> =
            self.failures.iter().map(|(k, t)| (t.back().copied().unwrap_or(0), k.clone())).collect();
        newest.sort_unstable();
        for (_, key) in newest.into_iter().take(MAX_KEYS / 10) {
            self.failures.remove(&key);
        }
    }
}

fn account_key(account: &str) -> String {
    format!("a:{}", account.to_lowercase())
}

fn address_key(address: &str) -> String {
    format!("ip:{address}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn throttle() -> Throttle {
        Throttle::new(Budget { per_account: 3, per_address: 5, window: Duration::from_secs(60) })
    }

    #[test]
    fn an_account_is_refused_past_its_budget_until_failures_age_out() {
        let mut t = throttle();
        for i in 0..3 {
            assert_eq!(t.attempt("Alice", "1.1.1.1", i), None);
        }
        // Any case, any address: the account's budget is spent.
        let wait = t.attempt("alice", "2.2.2.2", 10).expect("throttled");
        assert!(wait >= Duration::from_secs(59) && wait <= Duration::from_secs(60), "{wait:?}");
        assert_eq!(t.attempt("bob", "2.2.2.2", 10), None, "other accounts are not");
        assert_eq!(t.attempt("alice", "2.2.2.2", 60_001), None, "the first failure left the window");
    }

    #[test]
    fn parallel_attempts_are_counted_before_they_end() {
        let mut t = throttle();
        // Three attempts in flight at once, none finished: the fourth waits.
        let admitted = (0..10).filter(|_| t.attempt("dave", "3.3.3.3", 5).is_none()).count();
        assert_eq!(admitted, 3);
    }

    #[test]
    fn an_address_guessing_many_accounts_is_refused_and_success_does_not_clear_it() {
        let mut t = throttle();
        for i in 0..5 {
            t.attempt(&format!("user{i}"), "9.9.9.9", i);
        }
        t.succeeded("user0", "9.9.9.9", 0);
        t.attempt("user5", "9.9.9.9", 6);
        assert!(t.attempt("someone", "9.9.9.9", 10).is_some());
        assert_eq!(t.attempt("someone", "8.8.8.8", 10), None);
    }

    #[test]
    fn success_clears_the_account() {
        let mut t = throttle();
        for i in 0..3 {
            t.attempt("carol", &format!("10.0.0.{i}"), i);
        }
        assert!(t.attempt("carol", "10.0.0.9", 5).is_some());
        t.succeeded("carol", "10.0.0.2", 2);
        assert_eq!(t.attempt("carol", "10.0.0.9", 5), None);
    }
}
