//! Passive health: consecutive gateway failures eject a server for a while.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;
use tokio::time::Instant;

/// The ejection rules, in the manner of Envoy's outlier detection.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EjectionRules {
    pub(crate) consecutive_failures: u32,
    pub(crate) base_ejection: Duration,
    pub(crate) max_ejection: Duration,
    pub(crate) max_ejection_percent: u32,
}

impl Default for EjectionRules {
    fn default() -> Self {
        EjectionRules {
            consecutive_failures: 5,
            base_ejection: Duration::from_secs(30),
            max_ejection: Duration::from_secs(300),
            max_ejection_percent: 50,
        }
    }
}

/// The health of one server, shared by every clone of the layer. Lock-free.
#[derive(Debug, Default)]
pub(crate) struct ServerHealth {
    consecutive: AtomicU32,
    /// Nanoseconds after the pool's epoch until which the server is ejected; 0 when healthy.
    ejected_until: AtomicU64,
    /// How many times it was ejected (the ejection time grows with it).
    ejections: AtomicU32,
    /// Whether a probe request is out to an ejected server whose time is up.
    probing: AtomicBool,
}

/// What a server may be used for now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
    /// Healthy.
    Yes,
    /// Ejection time over: this request is the one probe.
    Probe,
    /// Ejected, or its ejection is over and another request is probing it.
    No,
}

/// The servers' health and the rules, shared by clones.
#[derive(Debug)]
pub(crate) struct Pool {
    epoch: Instant,
    rules: EjectionRules,
    servers: Box<[ServerHealth]>,
}

impl Pool {
    pub(crate) fn new(servers: usize, rules: EjectionRules) -> Pool {
        Pool {
            epoch: Instant::now(),
            rules,
            servers: (0..servers).map(|_| ServerHealth::default()).collect(),
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos())
            .unwrap_or(u64::MAX)
            .max(1)
    }

    /// Whether server `i` may take a request now.
    pub(crate) fn admit(&self, i: usize) -> Admission {
        let s = &self.servers[i];
        let until = s.ejected_until.load(Ordering::Acquire);
        if until == 0 {
            return Admission::Yes;
        }
        if self.now() < until {
            return Admission::No;
        }
        match s
            .probing
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => Admission::Probe,
            Err(_) => Admission::No,
        }
    }

    /// A success from server `i`: the failure count resets and an ejected server returns.
    /// Returns `true` when this restored an ejected server.
    pub(crate) fn success(&self, i: usize) -> bool {
        let s = &self.servers[i];
        s.consecutive.store(0, Ordering::Release);
        s.probing.store(false, Ordering::Release);
        s.ejected_until.swap(0, Ordering::AcqRel) != 0
    }

    /// A gateway failure from server `i`. Returns the ejection time when this ejected it.
    pub(crate) fn failure(&self, i: usize, probe: bool) -> Option<Duration> {
        let s = &self.servers[i];
        let count = s
            .consecutive
            .fetch_add(1, Ordering::AcqRel)
            .saturating_add(1);
        if probe {
            // A failed probe goes straight back out, for longer.
            s.probing.store(false, Ordering::Release);
            return Some(self.eject(i));
        }
        if count < self.rules.consecutive_failures || s.ejected_until.load(Ordering::Acquire) != 0 {
            return None;
        }
        if self.ejected_count() >= self.max_ejected() {
            return None;
        }
        Some(self.eject(i))
    }

    /// Abandons a probe that ended without a verdict (cancelled, or a non-gateway outcome).
    pub(crate) fn release_probe(&self, i: usize) {
        self.servers[i].probing.store(false, Ordering::Release);
    }

    fn eject(&self, i: usize) -> Duration {
        let s = &self.servers[i];
        let times = s.ejections.fetch_add(1, Ordering::AcqRel).saturating_add(1);
        let time = self
            .rules
            .base_ejection
            .checked_mul(times)
            .unwrap_or(self.rules.max_ejection)
            .min(self.rules.max_ejection);
        let until = self
            .now()
            .saturating_add(u64::try_from(time.as_nanos()).unwrap_or(u64::MAX));
        s.ejected_until.store(until, Ordering::Release);
        time
    }

    fn ejected_count(&self) -> usize {
        self.servers
            .iter()
            .filter(|s| s.ejected_until.load(Ordering::Acquire) != 0)
            .count()
    }

    /// At most this many servers are out at once: the configured share, at least one, and
    /// never all of them.
    fn max_ejected(&self) -> usize {
        let n = self.servers.len();
        let share = n * self.rules.max_ejection_percent.min(100) as usize / 100;
        share.max(1).min(n.saturating_sub(1))
    }

    /// Whether server `i` is ejected now.
    pub(crate) fn is_ejected(&self, i: usize) -> bool {
        self.servers[i].ejected_until.load(Ordering::Acquire) != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> EjectionRules {
        EjectionRules {
            consecutive_failures: 2,
            ..EjectionRules::default()
        }
    }

    #[test]
    fn never_ejects_every_server() {
        let pool = Pool::new(2, rules());
        assert!(pool.failure(0, false).is_none());
        assert!(pool.failure(0, false).is_some());
        assert!(pool.failure(1, false).is_none());
        assert!(pool.failure(1, false).is_none());
        assert!(!pool.is_ejected(1));
    }

    #[test]
    fn a_success_resets_the_count() {
        let pool = Pool::new(3, rules());
        pool.failure(0, false);
        pool.success(0);
        assert!(pool.failure(0, false).is_none());
    }
}
