use super::Circuit;
use super::registry::{Counts, Registry};
use crate::error::GatewayError;
use crate::health::{EjectionRules, Trip};
use std::sync::Arc;
use std::time::Duration;
use tower_layer::Layer;

/// Wraps a service in [`Circuit`]: a circuit per host (scheme, host, port), shared by every
/// clone of the layer and of the services it makes.
///
/// ```
/// use reqwest_resilience::circuit::CircuitLayer;
/// use std::time::Duration;
///
/// // The default rule with other numbers: open when at least 40% of the last minute's
/// // outcomes failed, once 50 were seen.
/// let layer = CircuitLayer::new()
///     .failure_ratio(0.4)
///     .minimum_throughput(50)
///     .sampling_window(Duration::from_secs(60))
///     .open_for(Duration::from_secs(10))
///     .max_open_for(Duration::from_secs(120));
/// ```
#[derive(Clone)]
pub struct CircuitLayer {
    pub(super) registry: Arc<Registry>,
    rules: EjectionRules,
    max_hosts: usize,
    counts: Option<Counts>,
}

impl Default for CircuitLayer {
    fn default() -> Self {
        CircuitLayer::new()
    }
}

impl CircuitLayer {
    /// The defaults: open when at least half of the host's outcomes in the last 30 s failed
    /// in a way that counts, once at least 10 were seen in that window; open for 30 s the
    /// first time, up to 300 s when probes keep failing; at most 1,024 hosts remembered.
    pub fn new() -> Self {
        let rules = EjectionRules {
            trip: Trip::RATIO,
            ..EjectionRules::default()
        };
        let max_hosts = 1024;
        CircuitLayer {
            registry: Arc::new(Registry::new(rules, max_hosts, None)),
            rules,
            max_hosts,
            counts: None,
        }
    }

    fn rebuilt(mut self) -> Self {
        self.registry = Arc::new(Registry::new(
            self.rules,
            self.max_hosts,
            self.counts.clone(),
        ));
        self
    }

    /// Opens a host's circuit after this many consecutive failures that count (at least 1),
    /// instead of the failure ratio.
    ///
    /// The trade-off: a run of failures says a host is down sooner, with less traffic (a
    /// quiet client never reaches the ratio's minimum volume), but it also happens by chance
    /// on a host that is serving. At a 30% attempt failure rate a run of 5 starts about every
    /// 600 attempts, and the circuit then refuses every request to a host that answers most
    /// of them. Use it for hosts that are either up or down, not for flaky ones.
    pub fn consecutive_failures(mut self, n: u32) -> Self {
        self.rules.trip = Trip::Consecutive(n.max(1));
        self.rebuilt()
    }

    /// The failure ratio rule's parameters, the defaults where the rule is not in force.
    fn ratio_parts(&self) -> (f64, u32, Duration) {
        match (self.rules.trip, Trip::RATIO) {
            (
                Trip::Ratio {
                    ratio,
                    minimum,
                    window,
                },
                _,
            )
            | (
                _,
                Trip::Ratio {
                    ratio,
                    minimum,
                    window,
                },
            ) => (ratio, minimum, window),
            _ => (0.5, 10, Duration::from_secs(30)),
        }
    }

    fn ratio_rule(mut self, ratio: f64, minimum: u32, window: Duration) -> Self {
        self.rules.trip = Trip::Ratio {
            ratio,
            minimum,
            window,
        };
        self.rebuilt()
    }

    /// Opens a host's circuit when at least this share of its outcomes in the
    /// [sampling window](Self::sampling_window) are failures that count (default 0.5; clamped
    /// to 0.01–1.0, and a NaN is the default). Selects the ratio rule if
    /// [`consecutive_failures`](Self::consecutive_failures) was set.
    pub fn failure_ratio(self, ratio: f64) -> Self {
        let ratio = if ratio.is_nan() {
            0.5
        } else {
            ratio.clamp(0.01, 1.0)
        };
        let (_, minimum, window) = self.ratio_parts();
        self.ratio_rule(ratio, minimum, window)
    }

    /// The fewest outcomes in the sampling window before the ratio is judged at all (default
    /// 10, at least 1): the first failures of a quiet client are not a 100% failure rate. An
    /// outcome is a logical request's (after its retries), so each failure counted already
    /// stands for every attempt the request made; that is why the default is lower than
    /// attempt-counting breakers use (resilience4j and Polly: 100).
    pub fn minimum_throughput(self, n: u32) -> Self {
        let (ratio, _, window) = self.ratio_parts();
        self.ratio_rule(ratio, n.max(1), window)
    }

    /// How far back the ratio looks (default 30 s, at least 10 ms); it slides by a tenth of
    /// its length.
    pub fn sampling_window(self, window: Duration) -> Self {
        let (ratio, minimum, _) = self.ratio_parts();
        self.ratio_rule(ratio, minimum, window.max(Duration::from_millis(10)))
    }

    /// How long a circuit stays open the first time; each reopening in a row adds as much,
    /// up to [`max_open_for`](Self::max_open_for), and each such span the host then stays
    /// healthy takes one step off again.
    pub fn open_for(mut self, cool_down: Duration) -> Self {
        self.rules.base_ejection = cool_down;
        self.rebuilt()
    }

    /// The longest a circuit stays open.
    pub fn max_open_for(mut self, max: Duration) -> Self {
        self.rules.max_ejection = max;
        self.rebuilt()
    }

    /// At most this many hosts are remembered (at least 1). When the table is full, a host
    /// with nothing to remember (closed, no failure counted, none held on a request waiting
    /// for its retry) is forgotten first, then one whose last counted failure is older than
    /// [`max_open_for`](Self::max_open_for), then the closed host with the fewest failures
    /// (counted or held). An open circuit is never forgotten for a new
    /// host: when every remembered host is open, the new one is not tracked until room is made.
    pub fn max_hosts(mut self, n: usize) -> Self {
        self.max_hosts = n.max(1);
        self.rebuilt()
    }

    /// Which failures count against a host (default: the gateway causes, as for the fallback
    /// servers' ejection: every [`GatewayError`] but an invalid request, an exceeded deadline,
    /// an attempt timer cut short by the deadline, `Other`, an open circuit, a failure after a
    /// followed redirect and a proxy's refusal). Responses (a 4xx, an application's 500) never
    /// count: they are answers.
    pub fn counts_if(
        mut self,
        predicate: impl Fn(&GatewayError) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.counts = Some(Arc::new(predicate));
        self.rebuilt()
    }

    /// Whether the circuit of `url`'s host is open now.
    pub fn is_open(&self, url: &reqwest::Url) -> bool {
        self.registry.is_open(url)
    }

    /// The check a [`Client`](crate::Client) makes before a request enters its stack.
    pub(crate) fn fast_refusal(&self) -> super::FastRefusal {
        super::FastRefusal {
            registry: self.registry.clone(),
        }
    }
}

impl std::fmt::Debug for CircuitLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CircuitLayer")
            .field("rules", &self.rules)
            .field("max_hosts", &self.max_hosts)
            .finish_non_exhaustive()
    }
}

impl<S> Layer<S> for CircuitLayer {
    type Service = Circuit<S>;

    fn layer(&self, inner: S) -> Circuit<S> {
        Circuit {
            inner,
            registry: self.registry.clone(),
        }
    }
}
