//! Passive health: gateway failures eject a server for a while.
//!
//! One mechanism for the fallback servers' ejection and for the circuit of every host
//! ([`circuit`](crate::circuit)): an open circuit is an ejected server. The fallback's pool caps
//! how many of its servers are out at once; a circuit's pool (one host) has no cap.
//!
//! What ejects a server is its [`Trip`] rule: a run of consecutive failures (the fallback
//! servers' rule, as Envoy's `consecutive_gateway_failure`) or a failure ratio over a sliding
//! time window with a minimum volume (the circuit's default, as resilience4j and Polly). A run
//! of failures says little about a host that fails a share of its attempts by chance: at a 30%
//! attempt failure rate a run of five appears about every 600 attempts; a ratio of 50% over
//! twenty or more attempts does not.
//!
//! The invariants, whatever the interleaving of concurrent requests:
//! - at most the configured share of servers is ejected at once, at least one may be, and never
//!   all of them: a slot is reserved in one atomic counter before a server is ejected;
//! - an ejection is ended only by its probe's success: a request admitted before the ejection
//!   (it carries the older *generation*) that succeeds later says nothing about the server now,
//!   and one that fails later does not count again;
//! - a failed probe sends the server back out, for longer, in the slot it already holds;
//! - the ejection multiplier decays: each `base_ejection` the server stays healthy after
//!   being restored takes one step off it (as Envoy's outlier detection does), so an old
//!   outage does not make every later blip cost the maximum ejection time.

use crate::error::{ErrorKind, GatewayError};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::time::Instant;

/// A failure that says something about the server's health. One that came after a redirect
/// is the redirect target's: the server answered. An attempt timer that the caller's deadline
/// cut short is the deadline's; a refusal by the crate itself (an open circuit) is nothing.
pub(crate) fn counts_against_health(err: &GatewayError) -> bool {
    !err.details().followed_redirect()
        && !err.details().cut_by_deadline()
        && !err.details().is_proxy_refusal()
        && !matches!(
            err.kind(),
            ErrorKind::InvalidRequest
                | ErrorKind::DeadlineExceeded
                | ErrorKind::Other
                | ErrorKind::CircuitOpen
        )
}

/// What takes a server out.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Trip {
    /// This many counted failures in a row (a success resets the run).
    Consecutive(u32),
    /// Counted failures are at least `ratio` of the outcomes seen in the last `window`, and at
    /// least `minimum` outcomes were seen in it.
    Ratio {
        ratio: f64,
        minimum: u32,
        window: Duration,
    },
}

impl Trip {
    /// The circuit's default: half of at least 10 outcomes (logical requests) in the last 30 s.
    pub(crate) const RATIO: Trip = Trip::Ratio {
        ratio: 0.5,
        minimum: 10,
        window: Duration::from_secs(30),
    };
}

/// The ejection rules, in the manner of Envoy's outlier detection.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EjectionRules {
    pub(crate) trip: Trip,
    pub(crate) base_ejection: Duration,
    pub(crate) max_ejection: Duration,
    pub(crate) max_ejection_percent: u32,
}

impl Default for EjectionRules {
    /// The fallback servers' defaults: 5 consecutive failures.
    fn default() -> Self {
        EjectionRules {
            trip: Trip::Consecutive(5),
            base_ejection: Duration::from_secs(30),
            max_ejection: Duration::from_secs(300),
            max_ejection_percent: 50,
        }
    }
}

/// How many buckets a failure-ratio window is cut into: it slides by a tenth of its length.
const BUCKETS: usize = 10;

/// A bucket's index while it is being zeroed for a new time (no time is this late).
const RECYCLING: u64 = u64::MAX;

/// Outcomes over a sliding time window, counted in buckets of a tenth of it. Lock-free: a
/// bucket is recycled for a new time by the first request to count in it, which marks it,
/// zeroes it and gives it its time, while a request counting in it meanwhile waits those few
/// stores.
#[derive(Debug)]
struct Window {
    buckets: [Bucket; BUCKETS],
    bucket_nanos: u64,
}

#[derive(Debug, Default)]
struct Bucket {
    /// Which bucket of time (1-based: 0 is "never used") the counts are for.
    index: AtomicU64,
    succeeded: AtomicU32,
    failed: AtomicU32,
}

impl Window {
    fn new(window: Duration) -> Window {
        let nanos = u64::try_from(window.as_nanos()).unwrap_or(u64::MAX);
        Window {
            buckets: Default::default(),
            bucket_nanos: (nanos / BUCKETS as u64).max(1),
        }
    }

    fn index(&self, now: u64) -> u64 {
        now / self.bucket_nanos + 1
    }

    fn record(&self, now: u64, failed: bool) {
        let index = self.index(now);
        let bucket = &self.buckets[(index % BUCKETS as u64) as usize];
        let mut spins = 0u32;
        loop {
            let seen = bucket.index.load(Ordering::Acquire);
            if seen == index {
                break;
            }
            if seen == RECYCLING {
                // Another request is zeroing the bucket for its new time: a few stores.
                spins += 1;
                if spins < 64 {
                    std::hint::spin_loop();
                } else {
                    std::thread::yield_now();
                }
                continue;
            }
            if seen != 0 && seen > index {
                // The bucket holds a later time already: this outcome (whose clock was read
                // before a pause longer than a bucket) is too old to count; recycling the
                // bucket for it would erase the newer counts.
                return;
            }
            // Recycled in two steps, so that no count lands between the zeroing and the new
            // time: marked, zeroed, then given its time.
            if bucket
                .index
                .compare_exchange(seen, RECYCLING, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                bucket.succeeded.store(0, Ordering::Release);
                bucket.failed.store(0, Ordering::Release);
                bucket.index.store(index, Ordering::Release);
                break;
            }
        }
        let counter = if failed {
            &bucket.failed
        } else {
            &bucket.succeeded
        };
        counter.fetch_add(1, Ordering::AcqRel);
    }

    /// Failed and all outcomes in the window ending now.
    fn totals(&self, now: u64) -> (u64, u64) {
        let current = self.index(now);
        let (mut failed, mut all) = (0u64, 0u64);
        for bucket in &self.buckets {
            let index = bucket.index.load(Ordering::Acquire);
            if index != 0 && index <= current && current - index < BUCKETS as u64 {
                let f = u64::from(bucket.failed.load(Ordering::Acquire));
                failed += f;
                all += f + u64::from(bucket.succeeded.load(Ordering::Acquire));
            }
        }
        (failed, all)
    }

    fn clear(&self) {
        for bucket in &self.buckets {
            bucket.index.store(0, Ordering::Release);
        }
    }
}

/// The health of one server, shared by every clone of the layer. Lock-free.
#[derive(Debug, Default)]
struct ServerHealth {
    consecutive: AtomicU32,
    /// Nanoseconds after the pool's epoch until which the server is ejected; 0 when healthy.
    ejected_until: AtomicU64,
    /// The ejection multiplier: the n-th ejection in a row lasts n × `base_ejection`.
    ejections: AtomicU32,
    /// Bumped by every ejection: tells requests admitted before it from those after.
    generation: AtomicU32,
    /// When the server was last restored (nanoseconds after the epoch), for the decay.
    restored_at: AtomicU64,
    /// Whether a probe request is out to an ejected server whose time is up.
    probing: AtomicBool,
    /// When the server was last ejected (nanoseconds after the epoch).
    ejected_at: AtomicU64,
    /// The outcomes of the last while, under a [`Trip::Ratio`] rule.
    window: Option<Box<Window>>,
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

/// A request's admission to one server, with the server's generation at that moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ticket {
    pub(crate) admission: Admission,
    generation: u32,
}

impl Ticket {
    pub(crate) fn is_probe(self) -> bool {
        self.admission == Admission::Probe
    }
}

/// The servers' health and the rules, shared by clones.
#[derive(Debug)]
pub(crate) struct Pool {
    epoch: Instant,
    rules: EjectionRules,
    servers: Box<[ServerHealth]>,
    /// Servers ejected now (slots reserved before ejecting, released on restoring).
    ejected: AtomicUsize,
    /// Whether every server may be out at once (a circuit), instead of the configured share.
    uncapped: bool,
}

impl Pool {
    pub(crate) fn new(servers: usize, rules: EjectionRules) -> Pool {
        Pool {
            epoch: Instant::now(),
            rules,
            servers: (0..servers)
                .map(|_| ServerHealth {
                    window: match rules.trip {
                        Trip::Ratio { window, .. } => Some(Box::new(Window::new(window))),
                        Trip::Consecutive(_) => None,
                    },
                    ..ServerHealth::default()
                })
                .collect(),
            ejected: AtomicUsize::new(0),
            uncapped: false,
        }
    }

    /// A pool whose servers may all be out at once: the circuit of one host.
    pub(crate) fn uncapped(servers: usize, rules: EjectionRules) -> Pool {
        Pool {
            uncapped: true,
            ..Pool::new(servers, rules)
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos())
            .unwrap_or(u64::MAX)
            .max(1)
    }

    /// Whether server `i` may take a request now.
    pub(crate) fn admit(&self, i: usize) -> Ticket {
        let s = &self.servers[i];
        let generation = s.generation.load(Ordering::Acquire);
        let ticket = |admission| Ticket {
            admission,
            generation,
        };
        let until = s.ejected_until.load(Ordering::Acquire);
        if until == 0 {
            return ticket(Admission::Yes);
        }
        if self.now() < until {
            return ticket(Admission::No);
        }
        match s
            .probing
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => ticket(Admission::Probe),
            Err(_) => ticket(Admission::No),
        }
    }

    /// A success from server `i`. Returns `true` when it restored an ejected server (only the
    /// probe's success does).
    pub(crate) fn success(&self, i: usize, ticket: Ticket) -> bool {
        let s = &self.servers[i];
        if ticket.is_probe() {
            s.consecutive.store(0, Ordering::Release);
            if let Some(window) = &s.window {
                // A restored server starts a new window: the outage's failures are over, and
                // its probe's answer is the first outcome in it (the host answered: it is not
                // "answering nothing" while the next requests fail).
                window.clear();
                window.record(self.now(), false);
            }
            let restored = self.restore(i);
            s.probing.store(false, Ordering::Release);
            return restored;
        }
        // A request admitted before the current ejection: its answer is from before the
        // server went out and is no verdict on it now.
        if s.ejected_until.load(Ordering::Acquire) == 0 {
            s.consecutive.store(0, Ordering::Release);
            if let Some(window) = &s.window {
                window.record(self.now(), false);
            }
        }
        false
    }

    /// A gateway failure from server `i`. Returns the ejection time when this ejected it.
    pub(crate) fn failure(&self, i: usize, ticket: Ticket) -> Option<Duration> {
        let s = &self.servers[i];
        if ticket.is_probe() {
            // A failed probe goes straight back out, for longer, in the slot it holds.
            let time = self.re_eject(i);
            s.probing.store(false, Ordering::Release);
            return time;
        }
        let stale = s.generation.load(Ordering::Acquire) != ticket.generation;
        if stale || s.ejected_until.load(Ordering::Acquire) != 0 {
            // Ejected since this request was admitted, or still out: already counted.
            return None;
        }
        let trips = match (self.rules.trip, &s.window) {
            (Trip::Ratio { ratio, minimum, .. }, Some(window)) => {
                let now = self.now();
                window.record(now, true);
                let (failed, all) = window.totals(now);
                all >= u64::from(minimum) && failed as f64 >= ratio * all as f64
            }
            (Trip::Consecutive(n), _) => {
                let count = s
                    .consecutive
                    .fetch_add(1, Ordering::AcqRel)
                    .saturating_add(1);
                count >= n
            }
            (Trip::Ratio { .. }, None) => false,
        };
        if !trips {
            return None;
        }
        self.try_eject(i)
    }

    /// Abandons a probe that ended without a verdict (cancelled, or a non-gateway outcome).
    pub(crate) fn release_probe(&self, i: usize) {
        self.servers[i].probing.store(false, Ordering::Release);
    }

    /// Ejects server `i` if a slot is free and it is not already out.
    fn try_eject(&self, i: usize) -> Option<Duration> {
        let max = self.max_ejected();
        self.ejected
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |out| {
                (out < max).then_some(out + 1)
            })
            .ok()?;
        let s = &self.servers[i];
        let (until, time) = self.next_ejection(s);
        if s.ejected_until
            .compare_exchange(0, until, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            // Another request ejected it first: give the slot back.
            self.ejected.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        s.ejected_at.store(self.now(), Ordering::Release);
        s.generation.fetch_add(1, Ordering::AcqRel);
        s.consecutive.store(0, Ordering::Release);
        if let Some(window) = &s.window {
            window.clear();
        }
        Some(time)
    }

    /// Sends an ejected server (whose probe failed) back out, keeping its slot.
    fn re_eject(&self, i: usize) -> Option<Duration> {
        let s = &self.servers[i];
        if s.ejected_until.load(Ordering::Acquire) == 0 {
            // Not ejected any more (cannot happen while the probe is out): the normal rules.
            return self.try_eject(i);
        }
        let (until, time) = self.next_ejection(s);
        s.ejected_until.store(until, Ordering::Release);
        s.ejected_at.store(self.now(), Ordering::Release);
        s.generation.fetch_add(1, Ordering::AcqRel);
        Some(time)
    }

    /// Ends server `i`'s ejection; `true` if it was ejected.
    fn restore(&self, i: usize) -> bool {
        let s = &self.servers[i];
        if s.ejected_until.swap(0, Ordering::AcqRel) == 0 {
            return false;
        }
        s.restored_at.store(self.now(), Ordering::Release);
        self.ejected.fetch_sub(1, Ordering::AcqRel);
        true
    }

    /// When the next ejection of `s` ends and how long it is: the multiplier, decayed by the
    /// healthy time since the last restoration, plus one.
    fn next_ejection(&self, s: &ServerHealth) -> (u64, Duration) {
        let now = self.now();
        let base = u64::try_from(self.rules.base_ejection.as_nanos())
            .unwrap_or(u64::MAX)
            .max(1);
        // Healthy time counts from a restoration to the next ejection only: the time spent
        // ejected (a failed probe re-ejects) is not healthy.
        let restored = s.restored_at.swap(0, Ordering::AcqRel);
        let healthy_steps = if restored == 0 {
            0
        } else {
            u32::try_from(now.saturating_sub(restored) / base).unwrap_or(u32::MAX)
        };
        let previous = s.ejections.load(Ordering::Acquire);
        let times = previous.saturating_sub(healthy_steps).saturating_add(1);
        s.ejections.store(times, Ordering::Release);
        let time = self
            .rules
            .base_ejection
            .checked_mul(times)
            .unwrap_or(self.rules.max_ejection)
            .min(self.rules.max_ejection);
        let until = now.saturating_add(u64::try_from(time.as_nanos()).unwrap_or(u64::MAX));
        (until, time)
    }

    /// At most this many servers are out at once: the configured share, at least one, and
    /// never all of them.
    fn max_ejected(&self) -> usize {
        let n = self.servers.len();
        if self.uncapped {
            return n;
        }
        let share = n * self.rules.max_ejection_percent.min(100) as usize / 100;
        share.max(1).min(n.saturating_sub(1))
    }

    /// Whether the server at `i` holds no information (in, with no failure counted): a
    /// circuit in that state may be forgotten.
    pub(crate) fn is_idle(&self, i: usize) -> bool {
        let s = &self.servers[i];
        let no_failures = match &s.window {
            Some(window) => window.totals(self.now()).0 == 0,
            None => s.consecutive.load(Ordering::Acquire) == 0,
        };
        s.ejected_until.load(Ordering::Acquire) == 0
            && no_failures
            && !s.probing.load(Ordering::Acquire)
    }

    /// Whether server `i`, judged by a failure ratio, has no success at all in its window
    /// (only failures, or nothing yet since it was first seen failing): it answers nothing. A
    /// host that is down looks like this; a flaky one answers some. Always `false` under a
    /// run-of-failures rule.
    pub(crate) fn answers_nothing(&self, i: usize) -> bool {
        match &self.servers[i].window {
            Some(window) => {
                let (failed, all) = window.totals(self.now());
                failed == all
            }
            None => false,
        }
    }

    /// A success from server `i` by a request admitted before the server was tracked (it has
    /// no ticket): counted like any other success while the server is in.
    pub(crate) fn note_success(&self, i: usize) {
        let s = &self.servers[i];
        if s.ejected_until.load(Ordering::Acquire) == 0 {
            s.consecutive.store(0, Ordering::Release);
            if let Some(window) = &s.window {
                window.record(self.now(), false);
            }
        }
    }

    /// How many counted failures server `i` has against it now (in its run, or in its
    /// window): the evidence an eviction weighs.
    pub(crate) fn failures(&self, i: usize) -> u64 {
        let s = &self.servers[i];
        match &s.window {
            Some(window) => window.totals(self.now()).0,
            None => u64::from(s.consecutive.load(Ordering::Acquire)),
        }
    }

    /// How much longer server `i` stays out before it may be probed; `None` when it is in or
    /// its time is up.
    pub(crate) fn ejected_for(&self, i: usize) -> Option<Duration> {
        let until = self.servers[i].ejected_until.load(Ordering::Acquire);
        let now = self.now();
        (until != 0 && now < until).then(|| Duration::from_nanos(until - now))
    }

    /// Whether server `i` is ejected now.
    pub(crate) fn is_ejected(&self, i: usize) -> bool {
        self.servers[i].ejected_until.load(Ordering::Acquire) != 0
    }

    /// How many servers are ejected now.
    #[cfg(test)]
    fn ejected_now(&self) -> usize {
        (0..self.servers.len())
            .filter(|&i| self.is_ejected(i))
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> EjectionRules {
        EjectionRules {
            trip: Trip::Consecutive(2),
            base_ejection: Duration::from_secs(30),
            max_ejection: Duration::from_secs(300),
            ..EjectionRules::default()
        }
    }

    #[test]
    fn what_counts_against_a_servers_health() {
        for kind in [
            ErrorKind::ConnectFailed,
            ErrorKind::TimedOut,
            ErrorKind::BadGateway,
            ErrorKind::ServiceUnavailable,
        ] {
            assert!(
                counts_against_health(&GatewayError::new(kind, "x")),
                "{kind:?}"
            );
        }
        for kind in [
            ErrorKind::InvalidRequest,
            ErrorKind::DeadlineExceeded,
            ErrorKind::Other,
            ErrorKind::CircuitOpen,
        ] {
            assert!(
                !counts_against_health(&GatewayError::new(kind, "x")),
                "{kind:?}"
            );
        }
        // Each of these marks makes a failure that would count say nothing of the server.
        let mut redirected = GatewayError::new(ErrorKind::ConnectFailed, "x");
        redirected.details_mut().set_redirected(None);
        assert!(
            !counts_against_health(&redirected),
            "the redirect's target failed"
        );
        let mut cut = GatewayError::new(ErrorKind::TimedOut, "x");
        cut.details_mut().set_cut_by_deadline();
        assert!(!counts_against_health(&cut), "the caller's deadline");
        let mut refused = GatewayError::new(ErrorKind::ConnectFailed, "x");
        let marked = refused.details().clone().with_proxy_refused(true);
        *refused.details_mut() = marked;
        assert!(!counts_against_health(&refused), "the proxy refused it");
    }

    #[test]
    fn a_window_counts_recent_outcomes_and_forgets_old_ones() {
        const S: u64 = 1_000_000_000;
        // Ten buckets of one second.
        let window = Window::new(Duration::from_secs(10));
        assert_eq!(window.totals(0), (0, 0), "nothing yet");
        window.record(0, true);
        window.record(S / 2, false);
        window.record(3 * S, true);
        assert_eq!(window.totals(3 * S), (2, 3));
        // At 10.4 s the first second has slid out; the fourth is still in.
        assert_eq!(window.totals(10 * S + 4 * S / 10), (1, 1));
        // At 13.5 s everything has.
        assert_eq!(window.totals(13 * S + S / 2), (0, 0));
        // A bucket reused for a later second starts from zero.
        window.record(10 * S + S / 5, false);
        assert_eq!(window.totals(10 * S + S / 5), (1, 2));
        window.clear();
        assert_eq!(window.totals(10 * S + S / 5), (0, 0));
    }

    /// An outcome whose clock was read before a long pause (a preempted thread) arrives after
    /// its bucket was recycled for a later time: it is dropped, and the newer counts stay.
    #[test]
    fn a_late_outcome_never_erases_newer_counts() {
        const S: u64 = 1_000_000_000;
        let window = Window::new(Duration::from_secs(10));
        window.record(10 * S + S / 5, false);
        window.record(11 * S, true);
        // Read at 0.5 s, counted now: the same bucket as the 10.2 s outcome.
        window.record(S / 2, true);
        assert_eq!(window.totals(11 * S), (1, 2));
    }

    /// Requests counting at once while buckets are recycled lose no count: four threads count
    /// one outcome each in every new bucket, and the window holds all of the last ten.
    #[test]
    fn concurrent_counts_across_recycled_buckets_are_all_kept() {
        const THREADS: u64 = 4;
        let window = std::sync::Arc::new(Window::new(Duration::from_secs(10)));
        let step = std::sync::Arc::new(std::sync::Barrier::new(THREADS as usize));
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let (window, step) = (window.clone(), step.clone());
                std::thread::spawn(move || {
                    for second in 0..2_000u64 {
                        step.wait();
                        window.record(second * 1_000_000_000, t % 2 == 0);
                        step.wait();
                        if t == 0 {
                            let (failed, all) = window.totals(second * 1_000_000_000);
                            let expected = THREADS * (second + 1).min(BUCKETS as u64);
                            assert_eq!(all, expected, "second {second}");
                            assert_eq!(failed, expected / 2, "second {second}");
                        }
                    }
                })
            })
            .collect();
        for handle in handles {
            handle.join().unwrap();
        }
    }

    fn fail(pool: &Pool, i: usize) -> Option<Duration> {
        let ticket = pool.admit(i);
        assert_ne!(ticket.admission, Admission::No, "server {i} not admitted");
        pool.failure(i, ticket)
    }

    #[tokio::test(start_paused = true)]
    async fn never_ejects_every_server() {
        let pool = Pool::new(2, rules());
        assert!(fail(&pool, 0).is_none());
        assert!(fail(&pool, 0).is_some());
        assert!(fail(&pool, 1).is_none());
        assert!(fail(&pool, 1).is_none());
        assert!(!pool.is_ejected(1));
    }

    #[tokio::test(start_paused = true)]
    async fn a_success_resets_the_count() {
        let pool = Pool::new(3, rules());
        fail(&pool, 0);
        let t = pool.admit(0);
        pool.success(0, t);
        assert!(fail(&pool, 0).is_none());
    }

    /// The interleaving of the defects issue: a request admitted before an ejection succeeds
    /// during the probe, another request ejects the other server, then the probe fails.
    #[tokio::test(start_paused = true)]
    async fn a_success_from_before_the_ejection_is_no_verdict_and_the_cap_holds() {
        let pool = Pool::new(2, rules());
        let q = pool.admit(0); // Q held in flight on a
        fail(&pool, 0);
        assert!(fail(&pool, 0).is_some(), "a ejected");
        tokio::time::advance(Duration::from_secs(31)).await;
        let p = pool.admit(0);
        assert_eq!(p.admission, Admission::Probe, "P probes a");
        assert!(!pool.success(0, q), "Q's late success does not restore a");
        assert!(pool.is_ejected(0));
        // R fails on b twice: b may not be ejected while a is out.
        assert!(fail(&pool, 1).is_none());
        assert!(fail(&pool, 1).is_none());
        assert!(!pool.is_ejected(1));
        // P fails: a goes back out, still alone.
        assert!(pool.failure(0, p).is_some());
        assert_eq!(pool.ejected_now(), 1);
        assert!(!pool.is_ejected(1));
    }

    /// The cap on servers out at once: the configured share of the pool, at least one, never
    /// all of them; a circuit's pool (one host) has no cap.
    #[test]
    fn at_most_the_configured_share_of_servers_is_out() {
        for (servers, percent, max) in [
            (10, 50, 5),
            (10, 30, 3),
            (4, 100, 3),
            (10, 0, 1),
            (2, 50, 1),
            (1, 50, 0),
        ] {
            let pool = Pool::new(
                servers,
                EjectionRules {
                    max_ejection_percent: percent,
                    ..rules()
                },
            );
            assert_eq!(pool.max_ejected(), max, "{percent}% of {servers}");
        }
        assert_eq!(Pool::uncapped(1, rules()).max_ejected(), 1);
    }

    /// A server holds nothing worth remembering (it may be forgotten) only while it is in,
    /// with no failure counted and no probe out; successes alone leave it idle.
    #[tokio::test(start_paused = true)]
    async fn a_server_is_idle_only_with_nothing_to_remember() {
        for trip in [Trip::RATIO, Trip::Consecutive(2)] {
            let pool = Pool::uncapped(1, EjectionRules { trip, ..rules() });
            assert!(pool.is_idle(0), "{trip:?}: a new server");
            let t = pool.admit(0);
            pool.success(0, t);
            assert!(pool.is_idle(0), "{trip:?}: successes only");
            fail(&pool, 0);
            assert!(!pool.is_idle(0), "{trip:?}: a failure counted");
        }
        // Ejected, then probing: not idle either.
        let pool = Pool::uncapped(
            1,
            EjectionRules {
                trip: Trip::Consecutive(1),
                ..rules()
            },
        );
        fail(&pool, 0);
        assert!(pool.is_ejected(0));
        assert!(!pool.is_idle(0), "ejected");
        tokio::time::advance(Duration::from_secs(31)).await;
        let probe = pool.admit(0);
        assert!(probe.is_probe());
        // The ejection is not over until the probe's verdict.
        assert!(!pool.is_idle(0), "probing");
        pool.release_probe(0);
        // The moment between a probe's restoration of the server and the release of its slot:
        // in, no failure, but its probe still out.
        let pool = Pool::uncapped(1, rules());
        pool.servers[0].probing.store(true, Ordering::Release);
        assert!(!pool.is_idle(0), "a probe is out");
    }

    /// A probe's answer restores the server and is the first outcome of its new window: the
    /// host has answered, so its next failures are not taken for a host that answers nothing.
    #[tokio::test(start_paused = true)]
    async fn a_probes_answer_starts_the_new_window() {
        let pool = Pool::uncapped(
            1,
            EjectionRules {
                trip: Trip::Ratio {
                    ratio: 0.5,
                    minimum: 1,
                    window: Duration::from_secs(30),
                },
                ..rules()
            },
        );
        assert!(fail(&pool, 0).is_some(), "ejected");
        assert!(pool.answers_nothing(0));
        tokio::time::advance(Duration::from_secs(31)).await;
        let probe = pool.admit(0);
        assert!(probe.is_probe());
        assert!(pool.success(0, probe));
        assert!(!pool.answers_nothing(0), "the probe answered");
        assert_eq!(pool.failures(0), 0, "the outage's failures are forgotten");
    }

    /// The failures counted against a server (what an eviction weighs), under either rule.
    #[tokio::test(start_paused = true)]
    async fn the_failures_counted_against_a_server() {
        for trip in [Trip::RATIO, Trip::Consecutive(5)] {
            let pool = Pool::uncapped(1, EjectionRules { trip, ..rules() });
            assert_eq!(pool.failures(0), 0, "{trip:?}");
            fail(&pool, 0);
            fail(&pool, 0);
            assert_eq!(pool.failures(0), 2, "{trip:?}");
        }
    }

    /// How much longer an ejected server stays out: its ejection's time, less the time passed.
    #[tokio::test(start_paused = true)]
    async fn an_ejection_counts_down() {
        let pool = Pool::uncapped(
            1,
            EjectionRules {
                trip: Trip::Consecutive(1),
                ..rules()
            },
        );
        assert_eq!(pool.ejected_for(0), None, "in");
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(fail(&pool, 0), Some(Duration::from_secs(30)));
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(pool.ejected_for(0), Some(Duration::from_secs(20)));
        tokio::time::advance(Duration::from_secs(20)).await;
        assert_eq!(pool.ejected_for(0), None, "its time is up");
        assert!(pool.is_ejected(0), "until its probe's verdict");
    }

    /// A request admitted before an ejection fails after the server was restored: its failure
    /// is from before the outage ended and does not send the server out again.
    #[tokio::test(start_paused = true)]
    async fn a_failure_from_before_an_ejection_is_no_verdict_after_the_restoration() {
        let pool = Pool::uncapped(
            1,
            EjectionRules {
                trip: Trip::Consecutive(1),
                ..rules()
            },
        );
        let old = pool.admit(0);
        assert!(fail(&pool, 0).is_some(), "ejected");
        tokio::time::advance(Duration::from_secs(31)).await;
        let probe = pool.admit(0);
        assert!(probe.is_probe());
        assert!(pool.success(0, probe), "restored by its probe");
        assert!(pool.failure(0, old).is_none());
        assert!(!pool.is_ejected(0), "a stale failure ejected it again");
    }

    /// Every interleaving of admissions, verdicts and time steps over two and three servers
    /// (a deterministic pseudo-random walk of 20,000 steps per size), checking after each step
    /// that the cap holds and never every server is out.
    #[tokio::test(start_paused = true)]
    async fn the_cap_holds_under_any_interleaving() {
        for servers in [2usize, 3] {
            let pool = Pool::new(servers, rules());
            let mut in_flight: Vec<(usize, Ticket)> = Vec::new();
            let mut seed: u64 = 0x9e37_79b9_7f4a_7c15 ^ servers as u64;
            let mut next = || {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed
            };
            for _ in 0..20_000 {
                match next() % 6 {
                    0 | 1 => {
                        let i = (next() % servers as u64) as usize;
                        let t = pool.admit(i);
                        if t.admission != Admission::No {
                            in_flight.push((i, t));
                        }
                    }
                    2 | 3 if !in_flight.is_empty() => {
                        let (i, t) = in_flight.swap_remove((next() as usize) % in_flight.len());
                        pool.failure(i, t);
                    }
                    4 if !in_flight.is_empty() => {
                        let (i, t) = in_flight.swap_remove((next() as usize) % in_flight.len());
                        pool.success(i, t);
                    }
                    _ => tokio::time::advance(Duration::from_secs(next() % 40)).await,
                }
                let out = pool.ejected_now();
                assert!(out <= pool.max_ejected(), "{out} ejected of {servers}");
                assert!(out < servers, "every server ejected");
                assert_eq!(out, pool.ejected.load(Ordering::Acquire));
            }
        }
    }

    /// How many servers are out at one instant, while other threads change them: two scans of
    /// every server's ejection end that agree (a double collect) are a consistent snapshot —
    /// each server kept its value from its first read to its second, and those intervals all
    /// overlap. (One scan alone can see a server before its restoration and another after its
    /// ejection, two ejections that never coexisted.)
    fn ejected_at_one_instant(pool: &Pool) -> usize {
        let scan = || -> Vec<u64> {
            pool.servers
                .iter()
                .map(|s| s.ejected_until.load(Ordering::Acquire))
                .collect()
        };
        loop {
            let first = scan();
            if scan() == first {
                return first.iter().filter(|&&until| until != 0).count();
            }
        }
    }

    /// The same invariants under real concurrency: four threads admit, fail and succeed on
    /// three servers at once (ejections a few microseconds long, so that probes, restorations
    /// and re-ejections race too), each checking the cap after every step.
    #[test]
    fn the_cap_holds_with_threads_racing() {
        let rules = EjectionRules {
            trip: Trip::Consecutive(2),
            base_ejection: Duration::from_micros(20),
            max_ejection: Duration::from_micros(100),
            ..EjectionRules::default()
        };
        let pool = std::sync::Arc::new(Pool::new(3, rules));
        let start = std::sync::Arc::new(std::sync::Barrier::new(4));
        let threads: Vec<_> = (0..4u64)
            .map(|t| {
                let (pool, start) = (pool.clone(), start.clone());
                std::thread::spawn(move || {
                    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15 ^ (t + 1);
                    let mut next = || {
                        seed ^= seed << 13;
                        seed ^= seed >> 7;
                        seed ^= seed << 17;
                        seed
                    };
                    start.wait();
                    let mut ejections = 0u32;
                    for _ in 0..50_000 {
                        let i = (next() % 3) as usize;
                        let ticket = pool.admit(i);
                        if ticket.admission != Admission::No {
                            if next() % 3 == 0 {
                                pool.success(i, ticket);
                            } else if pool.failure(i, ticket).is_some() {
                                ejections += 1;
                            }
                        }
                        let out = ejected_at_one_instant(&pool);
                        assert!(out <= pool.max_ejected(), "{out} ejected of 3");
                        assert!(out < 3, "every server ejected");
                    }
                    ejections
                })
            })
            .collect();
        let ejections: u32 = threads.into_iter().map(|t| t.join().unwrap()).sum();
        assert!(ejections > 0, "the walk ejected servers");
        // Quiet again: the reservation counter agrees with the servers that are out.
        assert_eq!(pool.ejected_now(), pool.ejected.load(Ordering::Acquire));
    }

    #[tokio::test(start_paused = true)]
    async fn the_ejection_time_grows_and_decays_after_a_healthy_period() {
        let pool = Pool::new(3, rules());
        let eject = |pool: &Pool| {
            fail(pool, 0);
            fail(pool, 0).expect("ejected")
        };
        let restore = |pool: &Pool| {
            let t = pool.admit(0);
            assert!(t.is_probe());
            assert!(pool.success(0, t));
        };
        assert_eq!(eject(&pool), Duration::from_secs(30));
        tokio::time::advance(Duration::from_secs(31)).await;
        restore(&pool);
        assert_eq!(eject(&pool), Duration::from_secs(60), "grows");
        tokio::time::advance(Duration::from_secs(61)).await;
        restore(&pool);
        assert_eq!(eject(&pool), Duration::from_secs(90), "grows");
        tokio::time::advance(Duration::from_secs(91)).await;
        restore(&pool);
        // Healthy for 65 s: two base periods off the multiplier of 3, then this ejection.
        tokio::time::advance(Duration::from_secs(65)).await;
        assert_eq!(eject(&pool), Duration::from_secs(60), "decayed");
        // Time spent ejected is not healthy time: a probe failing after a long ejection sends
        // the server out for longer still.
        tokio::time::advance(Duration::from_secs(61)).await;
        let probe = pool.admit(0);
        assert!(probe.is_probe());
        assert_eq!(
            pool.failure(0, probe),
            Some(Duration::from_secs(90)),
            "grows"
        );
    }
}
