//! The circuits of the hosts a client talks to: bounded, and free on the healthy path.

use crate::error::GatewayError;

/// Which failures count against a host's circuit.
pub(crate) type Counts = Arc<dyn Fn(&GatewayError) -> bool + Send + Sync>;
use crate::health::{EjectionRules, Pool, Ticket, counts_against_health};
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

pub(crate) use crate::host::key;

/// One host's circuit: an uncapped health pool of one server (the fallback servers' mechanism).
pub(crate) struct Entry {
    pub(crate) pool: Pool,
    /// The host as shown (scheme, host, port; never credentials), when its first counted
    /// failure named it.
    pub(crate) name: Option<Box<str>>,
    /// The failure that counted last, for the open circuit's error.
    /// Kept as a shared one-element list: every refusal quotes it without copying it.
    last_cause: Mutex<Option<Arc<[GatewayError]>>>,
    /// When a failure last counted (the registry's clock), to forget stale hosts first.
    touched: std::sync::atomic::AtomicU64,
    /// Logical requests holding a failed attempt here (forgiven: no longer; charged early,
    /// while the host answered nothing: still, until the request ends).
    pub(crate) failing: AtomicU32,
    /// Requests a client holds back from this host until its standing changes.
    pub(crate) held: AtomicU32,
    /// Woken when the host's standing changes for the requests held back: it answered, its
    /// circuit opened, or a failing request ended.
    pub(crate) changed: tokio::sync::Notify,
}

impl Entry {
    pub(crate) fn last_cause(&self) -> Option<Arc<[GatewayError]>> {
        self.last_cause
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Wakes the requests held back from this host, if any: its standing changed.
    pub(crate) fn changed(&self) {
        // Ordered with the held request's count and look (see `Held::wait`): either this sees
        // it counted, or it sees this change.
        std::sync::atomic::fence(Ordering::SeqCst);
        if self.held.load(Ordering::Relaxed) != 0 {
            self.changed.notify_waiters();
        }
    }

    pub(crate) fn set_last_cause(&self, err: &GatewayError, now: u64) {
        *self
            .last_cause
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(Arc::from([err.clone()]));
        self.touched.store(now, Ordering::Relaxed);
    }
}

/// What a request may do.
pub(crate) enum Verdict {
    /// No circuit is kept for the host (it never failed): go.
    Untracked,
    /// The host's circuit: closed (go), half-open (this request is the probe) or open.
    Tracked(Arc<Entry>, Ticket),
}

pub(crate) struct Registry {
    rules: EjectionRules,
    max_hosts: usize,
    counts: Option<Counts>,
    hosts: RwLock<crate::host::HostMap<Arc<Entry>>>,
    /// How many hosts are tracked: while none is, a request looks nothing up.
    tracked: AtomicUsize,
    /// When the registry was made: its clock's zero.
    epoch: tokio::time::Instant,
}

impl Registry {
    pub(crate) fn new(rules: EjectionRules, max_hosts: usize, counts: Option<Counts>) -> Self {
        Registry {
            rules,
            max_hosts,
            counts,
            hosts: RwLock::new(crate::host::HostMap::default()),
            tracked: AtomicUsize::new(0),
            epoch: tokio::time::Instant::now(),
        }
    }

    /// The registry's clock, in nanoseconds.
    pub(crate) fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    fn get(&self, key: u64) -> Option<Arc<Entry>> {
        if self.tracked.load(Ordering::Acquire) == 0 {
            return None;
        }
        self.hosts
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
            .cloned()
    }

    /// The fewest failing requests with no answer from their host for a client to hold new
    /// requests back from it (the ratio rule's minimum volume); none under a run-of-failures
    /// rule.
    pub(crate) fn hold_at(&self) -> Option<u32> {
        match self.rules.trip {
            crate::health::Trip::Ratio { minimum, .. } => Some(minimum),
            crate::health::Trip::Consecutive(_) => None,
        }
    }

    /// Whether any host is tracked now.
    pub(crate) fn any_tracked(&self) -> bool {
        self.tracked.load(Ordering::Acquire) != 0
    }

    /// The host's entry if it is tracked (no entry is made).
    pub(crate) fn tracked(&self, key: u64) -> Option<Arc<Entry>> {
        self.get(key)
    }

    /// The verdict for a request to the host of `key`.
    pub(crate) fn admit(&self, key: u64) -> Verdict {
        match self.get(key) {
            None => Verdict::Untracked,
            Some(entry) => {
                let ticket = entry.pool.admit(0);
                Verdict::Tracked(entry, ticket)
            }
        }
    }

    pub(crate) fn is_open(&self, url: &reqwest::Url) -> bool {
        self.get(key(url)).is_some_and(|e| e.pool.is_ejected(0))
    }

    /// Whether `err` counts against its host.
    pub(crate) fn counts(&self, err: &GatewayError) -> bool {
        match &self.counts {
            Some(predicate) => predicate(err),
            None => counts_against_health(err),
        }
    }

    /// The host's entry, made now if there is room (a failure is the first thing to remember).
    pub(crate) fn entry(
        &self,
        key: u64,
        name: impl FnOnce() -> Option<Box<str>>,
    ) -> Option<Arc<Entry>> {
        if let Some(entry) = self.get(key) {
            return Some(entry);
        }
        let mut hosts = self.hosts.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(entry) = hosts.get(&key) {
            return Some(entry.clone());
        }
        if hosts.len() >= self.max_hosts {
            // Hosts with nothing to remember go first, then hosts whose last counted failure
            // is older than the longest cool-down (a host that failed once and was never
            // called again, or whose cool-down ended with no probe).
            let now = self.now();
            let stale = u64::try_from(self.rules.max_ejection.as_nanos()).unwrap_or(u64::MAX);
            // A host whose failures are all still held on their requests is not idle: its
            // verdict is coming (and requests may be held back from it).
            hosts.retain(|_, e| {
                e.failing.load(Ordering::Relaxed) != 0
                    || (!e.pool.is_idle(0)
                        && now.saturating_sub(e.touched.load(Ordering::Relaxed)) < stale)
            });
            if hosts.len() >= self.max_hosts {
                // Then the closed circuit with the least evidence against its host (fewest
                // failures, counted or still held on requests, then least recently failing).
                // An open circuit is never forgotten for a host that has failed once: when
                // every host is open, the new one waits.
                let weakest = hosts
                    .iter()
                    .filter(|(_, e)| !e.pool.is_ejected(0))
                    .min_by_key(|(_, e)| {
                        let held = u64::from(e.failing.load(Ordering::Relaxed));
                        let failures = e.pool.failures(0).saturating_add(held);
                        (failures, e.touched.load(Ordering::Relaxed))
                    })
                    .map(|(k, _)| *k);
                match weakest {
                    Some(k) => {
                        hosts.remove(&k);
                    }
                    None => {
                        self.tracked.store(hosts.len(), Ordering::Release);
                        return None;
                    }
                }
            }
        }
        let entry = Arc::new(Entry {
            pool: Pool::uncapped(1, self.rules),
            name: name(),
            last_cause: Mutex::new(None),
            touched: std::sync::atomic::AtomicU64::new(self.now()),
            failing: AtomicU32::new(0),
            held: AtomicU32::new(0),
            changed: tokio::sync::Notify::new(),
        });
        hosts.insert(key, entry.clone());
        self.tracked.store(hosts.len(), Ordering::Release);
        Some(entry)
    }

    /// How many hosts are tracked now.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.tracked.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    #[test]
    fn only_failing_hosts_are_remembered_and_the_table_is_bounded() {
        let registry = Registry::new(EjectionRules::default(), 3, None);
        for i in 0..100 {
            let url: reqwest::Url = format!("http://h{i}.test/").parse().unwrap();
            assert!(matches!(registry.admit(key(&url)), Verdict::Untracked));
        }
        assert_eq!(registry.len(), 0);
        for i in 0..10 {
            let url: reqwest::Url = format!("http://f{i}.test/").parse().unwrap();
            if let Some(entry) = registry.entry(key(&url), || None) {
                let ticket = entry.pool.admit(0);
                entry.pool.failure(0, ticket);
            }
        }
        assert!(registry.len() <= 3);
        let err = GatewayError::new(ErrorKind::InvalidRequest, "x");
        assert!(!registry.counts(&err));
    }
}
