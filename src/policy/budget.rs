//! A retry budget shared by every clone of a client.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

/// A token quota that lets retries through while they help and dries them up in an outage.
///
/// Modelled on the AWS SDKs' retry quota: the bucket starts full with `capacity` tokens; a retry
/// costs `retry_cost` tokens (`timeout_retry_cost` after a timeout, which loads the upstream
/// longest); a retry that ends in success pays its cost back; a success at the first attempt
/// adds `success_reward`. With no tokens left a failure is returned at once.
///
/// What that gives, with the defaults (capacity 500, cost 5, timeout cost 10, reward 1):
/// - when a share of requests fails once and the retry succeeds, the cost is refunded every
///   time and the bucket stays full: every request succeeds;
/// - when the upstream is fully down nothing is refunded: over *n* requests at most
///   `capacity / retry_cost` = 100 retries are sent (plus `reward / cost` per success), i.e.
///   5% extra over 2,000 requests where a plain 3-attempt loop sends 200%.
///
/// Clones share the same bucket.
#[derive(Debug, Clone)]
pub struct RetryBudget {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    tokens: AtomicU32,
    capacity: u32,
    retry_cost: u32,
    timeout_retry_cost: u32,
    success_reward: u32,
}

impl Default for RetryBudget {
    fn default() -> Self {
        RetryBudget::new(500, 5, 10, 1)
    }
}

impl RetryBudget {
    /// A full bucket of `capacity` tokens; a retry costs `retry_cost` (`timeout_retry_cost`
    /// after a timeout) and a first-attempt success adds `success_reward`. Costs of zero are
    /// taken as 1.
    pub fn new(
        capacity: u32,
        retry_cost: u32,
        timeout_retry_cost: u32,
        success_reward: u32,
    ) -> Self {
        RetryBudget {
            inner: Arc::new(Inner {
                tokens: AtomicU32::new(capacity),
                capacity,
                retry_cost: retry_cost.max(1),
                timeout_retry_cost: timeout_retry_cost.max(1),
                success_reward,
            }),
        }
    }

    /// Tokens left now.
    pub fn available(&self) -> u32 {
        self.inner.tokens.load(Ordering::Relaxed)
    }

    /// The cost of a retry after a failure (timeouts cost more).
    pub(crate) fn cost(&self, after_timeout: bool) -> u32 {
        if after_timeout {
            self.inner.timeout_retry_cost
        } else {
            self.inner.retry_cost
        }
    }

    /// Takes `cost` tokens if there are that many.
    pub(crate) fn try_withdraw(&self, cost: u32) -> bool {
        self.inner
            .tokens
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |t| t.checked_sub(cost))
            .is_ok()
    }

    /// Gives back the tokens spent on a logical request whose retry succeeded.
    pub(crate) fn refund(&self, spent: u32) {
        self.deposit(spent);
    }

    /// Rewards a success at the first attempt.
    pub(crate) fn reward(&self) {
        if self.inner.success_reward > 0 {
            self.deposit(self.inner.success_reward);
        }
    }

    fn deposit(&self, amount: u32) {
        let capacity = self.inner.capacity;
        let _ = self
            .inner
            .tokens
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |t| {
                (t < capacity).then(|| t.saturating_add(amount).min(capacity))
            });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_outage_dries_the_bucket() {
        let budget = RetryBudget::default();
        let granted = (0..2_000)
            .filter(|_| budget.try_withdraw(budget.cost(false)))
            .count();
        assert_eq!(granted, 100);
    }

    #[test]
    fn refunds_never_overfill() {
        let budget = RetryBudget::new(10, 5, 10, 1);
        budget.refund(100);
        budget.reward();
        assert_eq!(budget.available(), 10);
        assert!(budget.try_withdraw(5));
        budget.refund(5);
        assert_eq!(budget.available(), 10);
    }
}
