//! When to send a hedge: after a fixed delay, or at a percentile of the host's recent latencies.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// How long a first attempt may go without an answer before its hedge is sent.
#[derive(Debug, Clone)]
pub(crate) enum HedgeDelay {
    Fixed(Duration),
    /// The `percentile` (0–100) of the host's recent response-head latencies, within bounds;
    /// `max` until the host has enough samples.
    Percentile {
        percentile: f64,
        min: Duration,
        max: Duration,
        latencies: Arc<Latencies>,
    },
}

impl HedgeDelay {
    /// The delay for a request to the host of `key` (see `circuit`'s host key; any key for a
    /// fixed delay, which does not [learn](Self::learns)).
    pub(crate) fn for_host(&self, key: u64) -> Duration {
        match self {
            HedgeDelay::Fixed(delay) => *delay,
            HedgeDelay::Percentile {
                min,
                max,
                latencies,
                ..
            } => latencies
                .delay(key)
                .map_or(*max, |d| d.clamp(*min, (*max).max(*min))),
        }
    }

    /// Records how long a first attempt to the host of `key` took to its response head, when
    /// the delay follows the host's latencies.
    pub(crate) fn record(&self, key: u64, latency: Duration) {
        if let HedgeDelay::Percentile {
            percentile,
            latencies,
            ..
        } = self
        {
            latencies.record(key, latency, *percentile);
        }
    }

    /// The delay for a request to `url`: its host's key (a hash of its name) is worked out
    /// only for a delay learnt from the host's latencies.
    pub(crate) fn for_url(&self, url: &reqwest::Url) -> Duration {
        match self {
            HedgeDelay::Fixed(delay) => *delay,
            HedgeDelay::Percentile { .. } => self.for_host(crate::host::key(url)),
        }
    }

    /// Whether the delay needs the latencies recorded (and so the start of each attempt).
    pub(crate) fn learns(&self) -> bool {
        matches!(self, HedgeDelay::Percentile { .. })
    }
}

/// Samples kept per host, and hosts kept.
const SAMPLES: usize = 128;
const HOSTS: usize = 256;
/// A host's percentile is used once it has this many samples.
const WARM: usize = 16;

/// Recent latencies per host: a ring of samples each, the percentile recomputed every 8
/// samples. Bounded: at most `HOSTS` hosts, the least recently recorded one forgotten first.
#[derive(Debug, Default)]
pub(crate) struct Latencies {
    hosts: Mutex<crate::host::HostMap<Ring>>,
    clock: AtomicU64,
}

#[derive(Debug)]
struct Ring {
    samples: Vec<u32>,
    next: usize,
    /// The percentile in microseconds, once warm.
    delay_us: Option<u32>,
    /// When this host last recorded a sample (a counter), for eviction.
    touched: u64,
}

impl Latencies {
    fn delay(&self, key: u64) -> Option<Duration> {
        let hosts = self.hosts.lock().unwrap_or_else(PoisonError::into_inner);
        hosts
            .get(&key)
            .and_then(|r| r.delay_us)
            .map(|us| Duration::from_micros(u64::from(us)))
    }

    fn record(&self, key: u64, latency: Duration, percentile: f64) {
        let us = u32::try_from(latency.as_micros()).unwrap_or(u32::MAX);
        let now = self.clock.fetch_add(1, Ordering::Relaxed);
        let mut hosts = self.hosts.lock().unwrap_or_else(PoisonError::into_inner);
        if !hosts.contains_key(&key) && hosts.len() >= HOSTS {
            if let Some(oldest) = hosts.iter().min_by_key(|(_, r)| r.touched).map(|(k, _)| *k) {
                hosts.remove(&oldest);
            }
        }
        let ring = hosts.entry(key).or_insert_with(|| Ring {
            samples: Vec::with_capacity(SAMPLES),
            next: 0,
            delay_us: None,
            touched: now,
        });
        ring.touched = now;
        if ring.samples.len() < SAMPLES {
            ring.samples.push(us);
        } else {
            ring.samples[ring.next] = us;
        }
        ring.next = (ring.next + 1) % SAMPLES;
        if ring.samples.len() >= WARM && ring.next % 8 == 0 {
            let mut sorted = ring.samples.clone();
            sorted.sort_unstable();
            let rank = (percentile.clamp(0.0, 100.0) / 100.0 * (sorted.len() - 1) as f64).round();
            ring.delay_us = sorted.get(rank as usize).copied();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_delay_follows_the_hosts_latencies_within_bounds() {
        let delay = HedgeDelay::Percentile {
            percentile: 90.0,
            min: Duration::from_millis(5),
            max: Duration::from_millis(500),
            latencies: Arc::default(),
        };
        // Not warm yet: the upper bound.
        assert_eq!(delay.for_host(1), Duration::from_millis(500));
        for i in 0..128u64 {
            delay.record(1, Duration::from_millis(10 + i % 10));
        }
        let d = delay.for_host(1);
        assert!(
            d >= Duration::from_millis(17) && d <= Duration::from_millis(19),
            "{d:?}"
        );
        // Another host is its own.
        assert_eq!(delay.for_host(2), Duration::from_millis(500));
        // Very fast answers: the lower bound.
        for _ in 0..128 {
            delay.record(3, Duration::from_micros(100));
        }
        assert_eq!(delay.for_host(3), Duration::from_millis(5));
    }

    fn delay_us(latencies: &Latencies, host: u64) -> Option<u32> {
        latencies.delay(host).map(|d| d.as_micros() as u32)
    }

    #[test]
    fn only_a_percentile_learns() {
        assert!(!HedgeDelay::Fixed(Duration::from_millis(20)).learns());
        let learning = HedgeDelay::Percentile {
            percentile: 50.0,
            min: Duration::ZERO,
            max: Duration::from_secs(1),
            latencies: Arc::default(),
        };
        assert!(learning.learns());
    }

    #[test]
    fn warm_at_sixteen_samples_and_not_before() {
        let latencies = Latencies::default();
        for _ in 0..8 {
            latencies.record(1, Duration::from_millis(3), 50.0);
        }
        assert_eq!(delay_us(&latencies, 1), None, "8 samples: not warm");
        for _ in 8..16 {
            latencies.record(1, Duration::from_millis(3), 50.0);
        }
        assert_eq!(delay_us(&latencies, 1), Some(3_000), "16: warm");
    }

    #[test]
    fn the_ring_keeps_the_latest_samples() {
        let latencies = Latencies::default();
        for _ in 0..SAMPLES {
            latencies.record(1, Duration::from_millis(10), 50.0);
        }
        assert_eq!(delay_us(&latencies, 1), Some(10_000));
        // A full ring of newer samples replaces every older one.
        for _ in 0..SAMPLES {
            latencies.record(1, Duration::from_millis(50), 50.0);
        }
        assert_eq!(delay_us(&latencies, 1), Some(50_000));
        let hosts = latencies.hosts.lock().unwrap();
        assert_eq!(hosts[&1].samples.len(), SAMPLES, "bounded");
    }

    #[test]
    fn the_percentile_is_read_off_the_sorted_samples() {
        for (percentile, want) in [(0.0, 1_000), (50.0, 9_000), (100.0, 16_000)] {
            let latencies = Latencies::default();
            for ms in 1..=16u64 {
                latencies.record(1, Duration::from_millis(17 - ms), percentile);
            }
            assert_eq!(delay_us(&latencies, 1), Some(want), "p{percentile}");
        }
    }

    #[test]
    fn known_hosts_are_not_forgotten_while_there_is_room() {
        let latencies = Latencies::default();
        // Two hosts recording in turn: each keeps its ring and warms up.
        for _ in 0..WARM {
            latencies.record(1, Duration::from_millis(2), 50.0);
            latencies.record(2, Duration::from_millis(7), 50.0);
        }
        assert_eq!(delay_us(&latencies, 1), Some(2_000));
        assert_eq!(delay_us(&latencies, 2), Some(7_000));
    }

    #[test]
    fn hosts_are_bounded() {
        let latencies = Latencies::default();
        for host in 0..(HOSTS as u64 * 3) {
            latencies.record(host, Duration::from_millis(1), 50.0);
        }
        assert!(latencies.hosts.lock().unwrap().len() <= HOSTS);
    }
}
