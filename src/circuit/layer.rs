use super::Circuit;
use super::registry::Registry;
use crate::error::GatewayError;
use crate::health::EjectionRules;
use std::sync::Arc;
use std::time::Duration;
use tower_layer::Layer;

/// Which failures count against a host's circuit.
pub(crate) type Counts = Arc<dyn Fn(&GatewayError) -> bool + Send + Sync>;

/// Wraps a service in [`Circuit`]: a circuit per host (scheme, host, port), shared by every
/// clone of the layer and of the services it makes.
///
/// ```
/// use reqwest_resilience::circuit::CircuitLayer;
/// use std::time::Duration;
///
/// let layer = CircuitLayer::new()
///     .consecutive_failures(5)
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
    /// The defaults: open after 5 consecutive gateway failures, for 30 s the first time, up to
    /// 300 s when probes keep failing (the fallback servers' ejection rules), at most 1,024
    /// hosts remembered.
    pub fn new() -> Self {
        let rules = EjectionRules::default();
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

    /// Opens a host's circuit after this many consecutive failures that count (at least 1).
    pub fn consecutive_failures(mut self, n: u32) -> Self {
        self.rules.consecutive_failures = n.max(1);
        self.rebuilt()
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

    /// At most this many hosts are remembered (at least 1). When the table is full, hosts with
    /// nothing to remember (closed, no failure counted) are forgotten first; if every one is
    /// failing, a new host is not tracked until room is made.
    pub fn max_hosts(mut self, n: usize) -> Self {
        self.max_hosts = n.max(1);
        self.rebuilt()
    }

    /// Which failures count against a host (default: the gateway causes, as for the fallback
    /// servers' ejection: every [`GatewayError`] but an invalid request, an exceeded deadline,
    /// `Other`, an open circuit, a failure after a followed redirect and a proxy's refusal).
    /// Responses (a 4xx, an application's 500) never count: they are answers.
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
