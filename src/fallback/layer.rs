use super::balance::{Balance, Loads};
use super::target::{BaseUrl, CredentialRule, InvalidBaseUrl};
use super::{Fallback, Shared};
use crate::health::{EjectionRules, Pool};
use std::sync::Arc;
use std::time::Duration;
use tower_layer::Layer;

/// Wraps a service in [`Fallback`]: requests to any of the servers fail over to the others.
///
/// Clones share the servers' health.
///
/// ```
/// use reqwest_resilience::fallback::FallbackLayer;
/// use std::time::Duration;
///
/// let layer = FallbackLayer::builder(["http://10.0.0.1:8080", "http://10.0.0.2:8080/api"])
///     .consecutive_failures(3)
///     .base_ejection(Duration::from_secs(10))
///     .build()
///     .unwrap();
/// assert!(FallbackLayer::builder(["not a url"]).build().is_err());
/// ```
#[derive(Debug, Clone)]
pub struct FallbackLayer {
    shared: Arc<Shared>,
}

impl FallbackLayer {
    /// A layer with the default ejection rules; the first server is the primary.
    pub fn new<I, U>(servers: I) -> Result<FallbackLayer, InvalidBaseUrl>
    where
        I: IntoIterator<Item = U>,
        U: AsRef<str>,
    {
        FallbackLayer::builder(servers).build()
    }

    /// A builder for the ejection rules.
    pub fn builder<I, U>(servers: I) -> FallbackBuilder
    where
        I: IntoIterator<Item = U>,
        U: AsRef<str>,
    {
        FallbackBuilder {
            servers: servers.into_iter().map(|u| u.as_ref().to_owned()).collect(),
            rules: EjectionRules::default(),
            credentials: CredentialRule::default(),
            balance: Balance::default(),
            decay: Duration::from_secs(10),
        }
    }
}

/// Configures a [`FallbackLayer`].
#[derive(Clone)]
#[must_use]
pub struct FallbackBuilder {
    servers: Vec<String>,
    rules: EjectionRules,
    credentials: CredentialRule,
    balance: Balance,
    decay: Duration,
}

impl std::fmt::Debug for FallbackBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URLs as given may carry credentials: show only what can be shown.
        let shown: Vec<String> = self
            .servers
            .iter()
            .map(|s| {
                BaseUrl::parse(s)
                    .map_or_else(|_| "<invalid>".to_owned(), |b| b.display().to_owned())
            })
            .collect();
        f.debug_struct("FallbackBuilder")
            .field("servers", &shown)
            .field("rules", &self.rules)
            .field("credentials", &self.credentials)
            .field("balance", &self.balance)
            .finish()
    }
}

impl FallbackBuilder {
    /// Consecutive gateway failures that eject a server (default 5, as Envoy's
    /// `consecutive_gateway_failure`; at least 1).
    pub fn consecutive_failures(mut self, n: u32) -> Self {
        self.rules.trip = crate::health::Trip::Consecutive(n.max(1));
        self
    }

    /// The first ejection's length (default 30 s); the n-th lasts n times as long.
    pub fn base_ejection(mut self, time: Duration) -> Self {
        self.rules.base_ejection = time;
        self
    }

    /// The longest ejection (default 300 s).
    pub fn max_ejection(mut self, time: Duration) -> Self {
        self.rules.max_ejection = time;
        self
    }

    /// The largest share of servers ejected at once, in percent (default 50). At least one
    /// server may be ejected, and never all of them.
    pub fn max_ejection_percent(mut self, percent: u32) -> Self {
        self.rules.max_ejection_percent = percent.min(100);
        self
    }

    /// Whether a request moved to another server keeps its `Authorization` and `Cookie`
    /// headers (default: no). As reqwest does for a redirect to another host, they are removed
    /// by default, whatever set them (a URL's user name and password, `basic_auth`,
    /// `bearer_auth`, a header of your own, a layer of your own) and whichever way the request
    /// came in: credentials meant for one server never reach another unless you say so. Turn
    /// this on when every server takes the same token. A server whose base URL carries a user
    /// name and password gets those as its `Authorization` either way.
    pub fn forward_credentials(mut self, forward: bool) -> Self {
        self.credentials.forward = forward;
        self
    }

    /// With [`forward_credentials`](Self::forward_credentials), whether they are forwarded
    /// from an `https` server to a plain `http` one too, in cleartext (default: no).
    pub fn cleartext_credentials(mut self, allow: bool) -> Self {
        self.credentials.cleartext = allow;
        self
    }

    /// How the server a request goes to first is picked (default
    /// [`Balance::PrimaryFirst`]; see [`Balance`] for when to choose which).
    ///
    /// ```
    /// use reqwest_resilience::fallback::{Balance, FallbackLayer};
    ///
    /// let replicas = FallbackLayer::builder(["http://10.0.0.1:8080", "http://10.0.0.2:8080"])
    ///     .balance(Balance::P2cPeakEwma)
    ///     .build()
    ///     .unwrap();
    /// ```
    pub fn balance(mut self, balance: Balance) -> Self {
        self.balance = balance;
        self
    }

    /// With [`Balance::P2cPeakEwma`], how fast a server's latency estimate forgets (default
    /// 10 s, as tower's and Finagle's): a server that was slow is tried again after about
    /// this long without traffic. At least 1 ms.
    pub fn balance_decay(mut self, decay: Duration) -> Self {
        self.decay = decay.max(Duration::from_millis(1));
        self
    }

    /// The primary server's URL as given (credentials included: it is only used to build
    /// requests to that same server).
    pub(crate) fn primary(&self) -> Option<&str> {
        self.servers.first().map(|s| s.trim())
    }

    /// Checks the base URLs and builds the layer.
    pub fn build(self) -> Result<FallbackLayer, InvalidBaseUrl> {
        let servers = self
            .servers
            .iter()
            .map(|s| BaseUrl::parse(s))
            .collect::<Result<Vec<_>, _>>()?;
        if servers.is_empty() {
            return Err(InvalidBaseUrl::empty());
        }
        let pool = Pool::new(servers.len(), self.rules);
        let loads = match self.balance {
            Balance::PrimaryFirst => None,
            Balance::P2cPeakEwma => Some(Loads::new(servers.len(), self.decay)),
        };
        Ok(FallbackLayer {
            shared: Arc::new(Shared {
                servers,
                pool,
                credentials: self.credentials,
                loads,
            }),
        })
    }
}

impl<S> Layer<S> for FallbackLayer {
    type Service = Fallback<S>;

    fn layer(&self, inner: S) -> Fallback<S> {
        Fallback {
            inner,
            shared: self.shared.clone(),
        }
    }
}
