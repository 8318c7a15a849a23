//! Balancing across healthy servers: power of two choices over peak-EWMA load.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

/// How a [`FallbackLayer`](super::FallbackLayer) picks the server a request goes to first.
///
/// - [`PrimaryFirst`](Balance::PrimaryFirst) (the default): the first healthy server in the
///   order given; the others take traffic only when it fails. Choose it when the servers are
///   a primary and its standbys (a standby may be cold, or costly), or when one server should
///   see all traffic while it is up.
/// - [`P2cPeakEwma`](Balance::P2cPeakEwma): the less loaded of two servers picked at random
///   among those in, where a server's load is its requests in flight times a moving average
///   of its latency that jumps to every slower observation and decays over
///   [`balance_decay`](super::FallbackBuilder::balance_decay) (Finagle's and Linkerd's
///   "peak EWMA", Envoy's `LEAST_REQUEST` in spirit). Choose it for replicas that serve
///   alike: a slow replica gets little traffic within a few requests, and more again once its
///   latency has decayed and a request finds it fast. Failing over, ejection, circuits,
///   idempotency and credentials work as with primary-first: only the order differs (the
///   server picked, then the others from the least loaded); a hedge goes to another server
///   than its first copy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Balance {
    /// The first healthy server in the order given.
    #[default]
    PrimaryFirst,
    /// Power of two random choices, by in-flight requests × peak-EWMA latency.
    P2cPeakEwma,
}

/// What a server's load starts at before any latency was seen (a guess Finagle also makes).
const DEFAULT_RTT: Duration = Duration::from_millis(30);
/// A counted failure's latency, as the load sees it: a server that fails fast is not cheap.
const FAILURE_PENALTY: Duration = Duration::from_secs(1);

/// The servers' loads: lock-free, one entry per server, nothing per request.
#[derive(Debug)]
pub(super) struct Loads {
    servers: Vec<Load>,
    decay_ns: f64,
    epoch: tokio::time::Instant,
    seed: AtomicU64,
}

#[derive(Debug)]
struct Load {
    in_flight: AtomicU32,
    /// The peak-EWMA latency in nanoseconds, as `f64` bits, as of `stamp`.
    cost: AtomicU64,
    /// When `cost` was last set (nanoseconds since `epoch`).
    stamp: AtomicU64,
}

impl Loads {
    pub(super) fn new(servers: usize, decay: Duration) -> Loads {
        Loads {
            servers: (0..servers)
                .map(|_| Load {
                    in_flight: AtomicU32::new(0),
                    cost: AtomicU64::new((DEFAULT_RTT.as_nanos() as f64).to_bits()),
                    stamp: AtomicU64::new(0),
                })
                .collect(),
            decay_ns: decay.as_nanos().max(1) as f64,
            epoch: tokio::time::Instant::now(),
            // Per instance: clients started together do not all pick alike.
            seed: AtomicU64::new({
                use std::hash::{BuildHasher, Hasher};
                std::collections::hash_map::RandomState::new()
                    .build_hasher()
                    .finish()
            }),
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Server `i`'s latency estimate now: the last value decayed towards zero by the time
    /// since (so that a server left alone for long is tried again).
    fn cost(&self, i: usize, now: u64) -> f64 {
        let s = &self.servers[i];
        let cost = f64::from_bits(s.cost.load(Ordering::Relaxed));
        let elapsed = now.saturating_sub(s.stamp.load(Ordering::Relaxed)) as f64;
        cost * (-elapsed / self.decay_ns).exp()
    }

    /// Server `i`'s load: (in flight + 1) × latency estimate.
    fn load(&self, i: usize, now: u64) -> f64 {
        let in_flight = self.servers[i].in_flight.load(Ordering::Relaxed);
        (f64::from(in_flight) + 1.0) * self.cost(i, now)
    }

    /// A random number (splitmix64 over a shared counter: lock-free, good enough to pick).
    fn random(&self) -> u64 {
        let mut z = self
            .seed
            .fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed)
            .wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// The order to try the `n` servers in: the less loaded of two picked at random among those
    /// in (not `out`) first, never `avoid` when there is another; then the others in, from the
    /// least loaded; then `avoid` if it is in and another was picked; then those out (tried
    /// only when their admission lets them). With fewer than two to pick from, `avoid` goes
    /// last of all. Each server's load is worked out once; one allocation.
    pub(super) fn order(
        &self,
        n: usize,
        out: impl Fn(usize) -> bool,
        avoid: Option<usize>,
    ) -> Vec<usize> {
        let now = self.now();
        // (rank, load, index): rank 0 for servers that may be picked, 1 for `avoid` while in,
        // 2 for servers out.
        let mut servers: Vec<(u8, f64, usize)> = (0..n)
            .map(|i| {
                let rank = if out(i) {
                    2
                } else if Some(i) == avoid {
                    1
                } else {
                    0
                };
                (rank, self.load(i, now), i)
            })
            .collect();
        let pickable = servers.iter().filter(|s| s.0 == 0).count();
        if pickable >= 2 {
            // Two different random positions among the pickable ones (listed first once
            // sorted by rank; the sort below keeps it stable for ties).
            servers.sort_by_key(|s| s.0);
            let r = self.random();
            let a = (r % pickable as u64) as usize;
            let b = (a + 1 + ((r >> 32) % (pickable as u64 - 1)) as usize) % pickable;
            let first = if servers[b].1 < servers[a].1 { b } else { a };
            // The pick goes to the front (rank below every other).
            servers[first].0 = 0;
            for (k, s) in servers.iter_mut().enumerate() {
                if k != first && s.0 == 0 {
                    s.0 = 1;
                } else if s.0 == 1 && Some(s.2) == avoid {
                    // `avoid` after every other server in.
                    s.0 = 2;
                } else if s.0 == 2 && Some(s.2) == avoid {
                    s.0 = 4;
                } else if s.0 == 2 {
                    s.0 = 3;
                }
            }
        } else {
            for s in &mut servers {
                // The only one in (if any) first, then the rest as ranked; `avoid` last.
                if Some(s.2) == avoid {
                    s.0 = 4;
                }
            }
        }
        servers.sort_by(|x, y| x.0.cmp(&y.0).then(x.1.total_cmp(&y.1)));
        servers.into_iter().map(|s| s.2).collect()
    }

    /// A request goes to server `i`: counted in flight until the guard is dropped.
    pub(super) fn start(&self, i: usize) -> InFlight<'_> {
        self.servers[i].in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight {
            loads: self,
            index: i,
            started: tokio::time::Instant::now(),
            observed: false,
        }
    }

    /// Server `i` took `rtt`: the estimate jumps to a slower observation at once, and moves
    /// towards a faster one by how long it has been since the last.
    fn observe(&self, i: usize, rtt: Duration) {
        let s = &self.servers[i];
        let now = self.now();
        let rtt = rtt.as_nanos() as f64;
        // The stored estimate, blended once by the time since it was set (as tower's
        // `PeakEwma`): decaying it first as well would count that time twice.
        let stored = f64::from_bits(s.cost.load(Ordering::Relaxed));
        let next = if rtt > stored {
            rtt
        } else {
            let elapsed = now.saturating_sub(s.stamp.load(Ordering::Relaxed)) as f64;
            let w = (-elapsed / self.decay_ns).exp();
            stored * w + rtt * (1.0 - w)
        };
        // Two stores, not one transaction: a racing observation may win either; both are
        // estimates of the same server.
        s.cost.store(next.to_bits(), Ordering::Relaxed);
        s.stamp.store(now, Ordering::Relaxed);
    }
}

/// A request in flight to one server. Dropped without a verdict (the deadline cut it, it lost
/// a hedge race, the caller went away), its time so far is observed as its latency, as tower's
/// `PeakEwma` does: a server whose requests never finish is the slowest of all, not unknown.
pub(super) struct InFlight<'a> {
    loads: &'a Loads,
    index: usize,
    started: tokio::time::Instant,
    observed: bool,
}

impl InFlight<'_> {
    /// The server answered.
    pub(super) fn answered(mut self) {
        self.observed = true;
        self.loads.observe(self.index, self.started.elapsed());
    }

    /// The server failed in a way that counts against it (or shed load): seen as slow.
    pub(super) fn failed(mut self) {
        self.observed = true;
        let rtt = self.started.elapsed().max(FAILURE_PENALTY);
        self.loads.observe(self.index, rtt);
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if !self.observed {
            self.loads.observe(self.index, self.started.elapsed());
        }
        self.loads.servers[self.index]
            .in_flight
            .fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_slow_server_is_picked_last_and_forgiven_with_time() {
        let loads = Loads::new(3, Duration::from_secs(10));
        loads.start(0).answered();
        loads.start(1).answered();
        {
            let slow = loads.start(2);
            tokio::time::advance(Duration::from_millis(200)).await;
            slow.answered();
        }
        // Every pick avoids server 2 while a less loaded one is in the pair.
        let firsts: Vec<usize> = (0..300)
            .map(|_| loads.order(3, |_| false, None)[0])
            .collect();
        assert!(firsts.iter().all(|&f| f != 2), "{firsts:?}");
        assert!(firsts.contains(&0) && firsts.contains(&1));
        // The others are ordered by load: the slow one last.
        assert_eq!(*loads.order(3, |_| false, None).last().unwrap(), 2);
        // A long time later its estimate has decayed below the others': it is tried again.
        tokio::time::advance(Duration::from_secs(120)).await;
        for i in [0, 1] {
            let fast = loads.start(i);
            tokio::time::advance(Duration::from_millis(1)).await;
            fast.answered();
        }
        let firsts: Vec<usize> = (0..300)
            .map(|_| loads.order(3, |_| false, None)[0])
            .collect();
        assert!(firsts.contains(&2), "{firsts:?}");
    }

    #[test]
    fn in_flight_requests_weigh() {
        let loads = Loads::new(2, Duration::from_secs(10));
        let busy: Vec<_> = (0..5).map(|_| loads.start(0)).collect();
        for _ in 0..50 {
            assert_eq!(loads.order(2, |_| false, None), [1, 0]);
        }
        drop(busy);
        assert_eq!(loads.servers[0].in_flight.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn a_hedge_avoids_its_first_copys_server() {
        let loads = Loads::new(3, Duration::from_secs(10));
        for _ in 0..100 {
            let order = loads.order(3, |_| false, Some(1));
            assert_ne!(order[0], 1);
            assert_eq!(order.last(), Some(&1));
            assert_eq!(order.len(), 3);
        }
        // With no other server in, the avoided one is still tried, after those out (which
        // are tried only if their probe is due).
        assert_eq!(loads.order(3, |i| i != 1, Some(1)), [0, 2, 1]);
    }
}
