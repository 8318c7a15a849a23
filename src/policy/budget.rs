//! A retry budget shared by every clone of a client: a bucket per host by default.

use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

/// A token quota that lets retries through while they help and dries them up in an outage.
///
/// Modelled on the AWS SDKs' retry quota: a bucket starts full with `capacity` tokens; a retry
/// costs `retry_cost` tokens (`timeout_retry_cost` after a timeout, which loads the upstream
/// longest); a retry that ends in success pays its cost back; a success at the first attempt
/// adds `success_reward`. With no tokens left a failure is returned at once.
///
/// **One bucket per host** (scheme, host and port), as reqwest's own budget: a dead host drains
/// its own bucket, never the retries of the healthy or merely flaky hosts the same client talks
/// to. A host's bucket is made at its first retry (a host that never needs one costs nothing
/// but a hash), at most [`max_hosts`](Self::max_hosts) of them (1,024): full buckets are
/// forgotten first, then the least recently used one. [`per_client`](Self::per_client)
/// makes it one bucket for every host.
///
/// What that gives, with the defaults (capacity 500, cost 5, timeout cost 10, reward 1):
/// - when a share of requests fails once and the retry succeeds, the cost is refunded every
///   time and the bucket stays full: every request succeeds;
/// - when a host is fully down nothing is refunded: over *n* requests at most
///   `capacity / retry_cost` = 100 retries are sent to it (plus `reward / cost` per success),
///   i.e. 5% extra over 2,000 requests where a plain 3-attempt loop sends 200%.
///
/// Clones share the same buckets.
#[derive(Debug, Clone)]
pub struct RetryBudget {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    capacity: u32,
    retry_cost: u32,
    timeout_retry_cost: u32,
    success_reward: u32,
    scope: Scope,
}

#[derive(Debug)]
enum Scope {
    Client(AtomicU32),
    PerHost {
        hosts: RwLock<crate::host::HostMap<Arc<Bucket>>>,
        /// How many hosts have a bucket: while none has, a success looks nothing up.
        tracked: AtomicUsize,
        max_hosts: usize,
        /// A counter that orders withdrawals, to forget the least recently used bucket.
        clock: std::sync::atomic::AtomicU64,
    },
}

impl Scope {
    /// No bucket yet, at most `max_hosts` of them.
    fn per_host(max_hosts: usize) -> Scope {
        Scope::PerHost {
            hosts: RwLock::new(crate::host::HostMap::default()),
            tracked: AtomicUsize::new(0),
            max_hosts,
            clock: std::sync::atomic::AtomicU64::new(0),
        }
    }
}

/// A budget's numbers, changed by name.
struct Params {
    capacity: u32,
    retry_cost: u32,
    timeout_retry_cost: u32,
    success_reward: u32,
}

/// One host's tokens, and when it last paid for a retry.
#[derive(Debug)]
struct Bucket {
    tokens: AtomicU32,
    used: std::sync::atomic::AtomicU64,
    /// The host as its metrics name it, once a gauge was set for it: a bucket forgotten to
    /// make room resets its gauge (the host's next bucket starts full).
    #[cfg(feature = "metrics")]
    shown: std::sync::OnceLock<reqwest::Url>,
}

impl Default for RetryBudget {
    fn default() -> Self {
        RetryBudget::new()
    }
}

impl RetryBudget {
    /// The defaults, one full bucket per host: capacity 500 tokens, a retry costs 5 (10 after
    /// a timeout), a first-attempt success adds 1. Change any of them by name:
    ///
    /// ```
    /// use reqwest_resilience::retry::RetryBudget;
    ///
    /// let budget = RetryBudget::new().capacity(100).retry_cost(10);
    /// assert_eq!(budget.available(), 100);
    /// ```
    pub fn new() -> Self {
        RetryBudget {
            inner: Arc::new(Inner {
                capacity: 500,
                retry_cost: 5,
                timeout_retry_cost: 10,
                success_reward: 1,
                scope: Scope::per_host(1024),
            }),
        }
    }

    /// The tokens a full bucket holds (500). A new, full budget.
    pub fn capacity(self, tokens: u32) -> Self {
        self.with(|i| i.capacity = tokens)
    }

    /// What a retry costs (5; at least 1). A new, full budget.
    pub fn retry_cost(self, tokens: u32) -> Self {
        self.with(|i| i.retry_cost = tokens.max(1))
    }

    /// What a retry after a timeout costs (10; at least 1): a timeout held a connection for
    /// its whole length. A new, full budget.
    pub fn timeout_retry_cost(self, tokens: u32) -> Self {
        self.with(|i| i.timeout_retry_cost = tokens.max(1))
    }

    /// What a first-attempt success adds back (1). A new, full budget.
    pub fn success_reward(self, tokens: u32) -> Self {
        self.with(|i| i.success_reward = tokens)
    }

    /// The same parameters with `change` applied, and full buckets in the same scope.
    fn with(&self, change: impl FnOnce(&mut Params)) -> Self {
        let i = &self.inner;
        let mut params = Params {
            capacity: i.capacity,
            retry_cost: i.retry_cost,
            timeout_retry_cost: i.timeout_retry_cost,
            success_reward: i.success_reward,
        };
        change(&mut params);
        let scope = match &i.scope {
            Scope::Client(_) => Scope::Client(AtomicU32::new(params.capacity)),
            Scope::PerHost { max_hosts, .. } => Scope::per_host(*max_hosts),
        };
        RetryBudget {
            inner: Arc::new(Inner {
                capacity: params.capacity,
                retry_cost: params.retry_cost,
                timeout_retry_cost: params.timeout_retry_cost,
                success_reward: params.success_reward,
                scope,
            }),
        }
    }

    fn with_scope(&self, scope: Scope) -> Self {
        let i = &self.inner;
        RetryBudget {
            inner: Arc::new(Inner {
                capacity: i.capacity,
                retry_cost: i.retry_cost,
                timeout_retry_cost: i.timeout_retry_cost,
                success_reward: i.success_reward,
                scope,
            }),
        }
    }

    /// One bucket for every host the client talks to (the budget of earlier versions): an
    /// outage of one host then stops the retries to all of them. A new, full budget.
    pub fn per_client(self) -> Self {
        let capacity = self.inner.capacity;
        self.with_scope(Scope::Client(AtomicU32::new(capacity)))
    }

    /// At most `n` hosts (at least 1) get a bucket of their own; see the type's docs. A new,
    /// full budget, per host.
    pub fn max_hosts(self, n: usize) -> Self {
        self.with_scope(Scope::per_host(n.max(1)))
    }

    /// Whether there is one bucket per host.
    pub fn is_per_host(&self) -> bool {
        matches!(self.inner.scope, Scope::PerHost { .. })
    }

    /// Tokens left now: the client's bucket, or with a bucket per host the fewest any host
    /// has (the capacity while no host has used any).
    pub fn available(&self) -> u32 {
        match &self.inner.scope {
            Scope::Client(tokens) => tokens.load(Ordering::Relaxed),
            Scope::PerHost { hosts, .. } => hosts
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .values()
                .map(|b| b.tokens.load(Ordering::Relaxed))
                .min()
                .unwrap_or(self.inner.capacity),
        }
    }

    /// Tokens left now for the host of `url`.
    pub fn available_for(&self, url: &reqwest::Url) -> u32 {
        match &self.inner.scope {
            Scope::Client(tokens) => tokens.load(Ordering::Relaxed),
            Scope::PerHost { .. } => self
                .existing(crate::host::key(url))
                .map_or(self.inner.capacity, |b| b.tokens.load(Ordering::Relaxed)),
        }
    }

    /// The cost of a retry after a failure (timeouts cost more).
    pub(crate) fn cost(&self, after_timeout: bool) -> u32 {
        if after_timeout {
            self.inner.timeout_retry_cost
        } else {
            self.inner.retry_cost
        }
    }

    /// The bucket of the host of `host` (a `host::key`), if it has one.
    fn existing(&self, host: u64) -> Option<Arc<Bucket>> {
        match &self.inner.scope {
            Scope::Client(_) => None,
            Scope::PerHost { hosts, tracked, .. } => {
                if tracked.load(Ordering::Acquire) == 0 {
                    return None;
                }
                hosts
                    .read()
                    .unwrap_or_else(PoisonError::into_inner)
                    .get(&host)
                    .cloned()
            }
        }
    }

    /// Runs `f` on the tokens for `host`, making its bucket when `make` (a withdrawal) and
    /// none exists. `None` when the host has no bucket and none is made (it is full).
    fn with_bucket<T>(&self, host: u64, make: bool, f: impl FnOnce(&AtomicU32) -> T) -> Option<T> {
        let (hosts, tracked, max_hosts, clock) = match &self.inner.scope {
            Scope::Client(tokens) => return Some(f(tokens)),
            Scope::PerHost {
                hosts,
                tracked,
                max_hosts,
                clock,
            } => (hosts, tracked, max_hosts, clock),
        };
        let now = clock.fetch_add(1, Ordering::Relaxed);
        if let Some(bucket) = self.existing(host) {
            if make {
                bucket.used.store(now, Ordering::Relaxed);
            }
            return Some(f(&bucket.tokens));
        }
        if !make {
            return None;
        }
        let mut map = hosts.write().unwrap_or_else(PoisonError::into_inner);
        let bucket = match map.get(&host) {
            Some(bucket) => bucket.clone(),
            None => {
                if map.len() >= *max_hosts {
                    // Full buckets carry nothing: forgotten first; then the least recently
                    // used one, so that a new host always gets a bucket of its own.
                    let capacity = self.inner.capacity;
                    map.retain(|_, b| b.tokens.load(Ordering::Relaxed) < capacity);
                    if map.len() >= *max_hosts {
                        let oldest = map
                            .iter()
                            .min_by_key(|(_, b)| b.used.load(Ordering::Relaxed))
                            .map(|(k, _)| *k);
                        if let Some(oldest) = oldest {
                            let _forgotten = map.remove(&oldest);
                            #[cfg(feature = "metrics")]
                            if let Some(url) = _forgotten.as_ref().and_then(|b| b.shown.get()) {
                                crate::metrics::budget(url, true, capacity);
                            }
                        }
                    }
                }
                let bucket = Arc::new(Bucket {
                    tokens: AtomicU32::new(self.inner.capacity),
                    used: std::sync::atomic::AtomicU64::new(now),
                    #[cfg(feature = "metrics")]
                    shown: std::sync::OnceLock::new(),
                });
                map.insert(host, bucket.clone());
                tracked.store(map.len(), Ordering::Release);
                bucket
            }
        };
        drop(map);
        Some(f(&bucket.tokens))
    }

    /// Names the bucket of `url`'s host for its gauge (see [`Bucket::shown`]).
    #[cfg(feature = "metrics")]
    pub(crate) fn note_url(&self, url: &reqwest::Url) {
        if let Some(bucket) = self.existing(crate::host::key(url)) {
            bucket.shown.get_or_init(|| url.clone());
        }
    }

    /// Takes `cost` tokens from `host`'s bucket if it has that many.
    pub(crate) fn try_withdraw(&self, host: u64, cost: u32) -> bool {
        self.with_bucket(host, true, |tokens| {
            tokens
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |t| t.checked_sub(cost))
                .is_ok()
        })
        .unwrap_or(true)
    }

    /// Gives back the tokens spent on a logical request whose retry succeeded. Whether a
    /// bucket changed.
    pub(crate) fn refund(&self, host: impl FnOnce() -> Option<u64>, spent: u32) -> bool {
        self.deposit(host, spent)
    }

    /// Rewards a success at the first attempt. Whether a bucket changed (a full one, or a host
    /// with none, does not).
    pub(crate) fn reward(&self, host: impl FnOnce() -> Option<u64>) -> bool {
        self.inner.success_reward > 0 && self.deposit(host, self.inner.success_reward)
    }

    /// `host` is asked only when a host may have a bucket: while none has (no host ever
    /// needed a retry), a success costs one atomic load.
    fn deposit(&self, host: impl FnOnce() -> Option<u64>, amount: u32) -> bool {
        let capacity = self.inner.capacity;
        let host = match &self.inner.scope {
            Scope::PerHost { tracked, .. } if tracked.load(Ordering::Acquire) == 0 => return false,
            Scope::PerHost { .. } => match host() {
                Some(host) => host,
                None => return false,
            },
            Scope::Client(_) => 0,
        };
        // A host with no bucket is full: nothing to give back.
        self.with_bucket(host, false, |tokens| {
            tokens
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |t| {
                    (t < capacity).then(|| t.saturating_add(amount).min(capacity))
                })
                .is_ok()
        })
        .unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(budget: &RetryBudget, host: u64) -> Option<u32> {
        budget
            .existing(host)
            .map(|b| b.tokens.load(Ordering::Relaxed))
    }

    #[test]
    fn a_reward_deposits_and_says_whether_it_did() {
        let budget = RetryBudget::new()
            .capacity(100)
            .retry_cost(5)
            .success_reward(1);
        assert!(!budget.reward(|| Some(1)), "no bucket yet: nothing to add");
        assert!(budget.try_withdraw(1, 5));
        assert_eq!(tokens(&budget, 1), Some(95));
        assert!(budget.reward(|| Some(1)));
        assert_eq!(tokens(&budget, 1), Some(96));
        for _ in 0..10 {
            budget.reward(|| Some(1));
        }
        assert_eq!(tokens(&budget, 1), Some(100), "never past the capacity");
        assert!(!budget.reward(|| Some(1)), "a full bucket does not move");
        let none = RetryBudget::new().capacity(100).success_reward(0);
        assert!(none.try_withdraw(1, 5));
        assert!(!none.reward(|| Some(1)), "a reward of zero moves nothing");
        assert_eq!(tokens(&none, 1), Some(95));
    }

    #[test]
    fn full_buckets_are_forgotten_first() {
        let budget = RetryBudget::new()
            .capacity(10)
            .retry_cost(5)
            .success_reward(0)
            .max_hosts(2);
        assert!(budget.try_withdraw(1, 5)); // host 1: 5 left
        assert!(budget.try_withdraw(2, 5)); // host 2: 5 left, then full again
        assert!(budget.refund(|| Some(2), 5));
        assert_eq!(tokens(&budget, 2), Some(10));
        // A third host: the full bucket (host 2) makes room, not host 1's.
        assert!(budget.try_withdraw(3, 5));
        assert_eq!(tokens(&budget, 1), Some(5), "a bucket with a debt is kept");
        assert_eq!(tokens(&budget, 2), None, "the full one was forgotten");
    }

    #[test]
    fn a_full_outage_dries_the_bucket() {
        let budget = RetryBudget::default();
        let granted = (0..2_000)
            .filter(|_| budget.try_withdraw(1, budget.cost(false)))
            .count();
        assert_eq!(granted, 100);
    }

    #[test]
    fn refunds_never_overfill() {
        let budget = RetryBudget::new()
            .capacity(10)
            .retry_cost(5)
            .timeout_retry_cost(10)
            .success_reward(1);
        budget.refund(|| Some(1), 100);
        budget.reward(|| Some(1));
        assert_eq!(budget.available(), 10);
        assert!(budget.try_withdraw(1, 5));
        budget.refund(|| Some(1), 5);
        assert_eq!(budget.available(), 10);
    }

    #[test]
    fn hosts_have_buckets_of_their_own_unless_per_client() {
        let budget = RetryBudget::new()
            .capacity(10)
            .retry_cost(5)
            .timeout_retry_cost(10)
            .success_reward(0);
        assert!(budget.try_withdraw(1, 5) && budget.try_withdraw(1, 5));
        assert!(!budget.try_withdraw(1, 5), "host 1 is dry");
        assert!(budget.try_withdraw(2, 5), "host 2 is not");
        let client = RetryBudget::new()
            .capacity(10)
            .retry_cost(5)
            .timeout_retry_cost(10)
            .success_reward(0)
            .per_client();
        assert!(client.try_withdraw(1, 5) && client.try_withdraw(1, 5));
        assert!(!client.try_withdraw(2, 5), "one bucket for all");
    }

    #[test]
    fn buckets_are_bounded() {
        let budget = RetryBudget::new()
            .capacity(10)
            .retry_cost(5)
            .timeout_retry_cost(10)
            .success_reward(0)
            .max_hosts(4);
        for host in 0..100 {
            budget.try_withdraw(host, 5);
        }
        let Scope::PerHost { hosts, .. } = &budget.inner.scope else {
            panic!("per host");
        };
        assert!(hosts.read().unwrap().len() <= 4);
        // The newest host has a bucket of its own, drained by its own retries only.
        assert!(budget.try_withdraw(1000, 5) && budget.try_withdraw(1000, 5));
        assert!(!budget.try_withdraw(1000, 5));
        assert!(
            budget.try_withdraw(1001, 5),
            "another new host is not charged for it"
        );
    }
}
