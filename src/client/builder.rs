//! Configuring a [`Client`].

use super::{Client, Stack};
use crate::fallback::{FallbackBuilder, FallbackLayer, InvalidBaseUrl};
use crate::proxy::ProxyMap;
use crate::retry::{RetryLayer, RetryPolicy};
use crate::timeout::{AttemptTimeoutLayer, DeadlineLayer};
use crate::transport::Transport;
use std::time::Duration;
use tower::ServiceBuilder;
use tower::util::BoxCloneSyncService;

/// The default per-attempt timeout.
pub const DEFAULT_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// The default deadline of a logical request.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(30);

/// Builds a [`Client`]: the `reqwest` client underneath and the policies on top.
///
/// The stack, outermost first: deadline → retry → fallback → attempt timeout → transport.
///
/// - The deadline is outermost so that it bounds everything: attempts, pauses, failovers.
/// - Retry sits outside fallback so that a failing server is left for the next healthy one at
///   once, with no pause; the retry's pause comes only when every server failed.
/// - The attempt timeout is innermost so that each server try gets its own timer (cut to the
///   time the deadline leaves).
///
/// ```
/// use reqwest_resilience::{Client, retry::RetryPolicy};
/// use std::time::Duration;
///
/// let client = Client::builder()
///     .retry(RetryPolicy::default().max_attempts(4))
///     .attempt_timeout(Duration::from_secs(2))
///     .deadline(Duration::from_secs(8))
///     .build()
///     .unwrap();
/// ```
#[must_use]
pub struct ClientBuilder {
    reqwest: Option<ReqwestSource>,
    retry: RetryPolicy,
    attempt_timeout: Option<Duration>,
    include_body: bool,
    deadline: Option<Duration>,
    fallback: Option<FallbackBuilder>,
    proxy: Option<String>,
}

impl std::fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The proxy URL may carry credentials: only its scheme, host and port are shown.
        let proxy = self
            .proxy
            .as_deref()
            .map(|p| ProxyMap::all(p).map_or_else(|| "<invalid>".to_owned(), |m| m.to_string()));
        f.debug_struct("ClientBuilder")
            .field(
                "reqwest",
                &self.reqwest.as_ref().map(|r| match r {
                    ReqwestSource::Builder(_) => "a reqwest::ClientBuilder",
                    ReqwestSource::Client(_) => "a reqwest::Client",
                }),
            )
            .field("retry", &self.retry)
            .field("attempt_timeout", &self.attempt_timeout)
            .field("include_body", &self.include_body)
            .field("deadline", &self.deadline)
            .field("fallback", &self.fallback)
            .field("proxy", &proxy)
            .finish()
    }
}

impl Default for ClientBuilder {
    fn default() -> Self {
        ClientBuilder {
            reqwest: None,
            retry: RetryPolicy::default(),
            attempt_timeout: Some(DEFAULT_ATTEMPT_TIMEOUT),
            include_body: false,
            deadline: Some(DEFAULT_DEADLINE),
            fallback: None,
            proxy: None,
        }
    }
}

enum ReqwestSource {
    Builder(Box<reqwest::ClientBuilder>),
    Client(reqwest::Client),
}

/// The error of [`ClientBuilder::build`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The `reqwest` client could not be built (e.g. the TLS backend failed to initialise).
    #[error("the reqwest client could not be built")]
    Reqwest(#[source] reqwest::Error),
    /// A fallback server's base URL is invalid.
    #[error(transparent)]
    FallbackServer(#[from] InvalidBaseUrl),
}

impl ClientBuilder {
    /// A builder with the default configuration: 3 attempts with full-jitter backoff and a
    /// retry budget, a 10 s attempt timeout, a 30 s deadline.
    pub fn new() -> ClientBuilder {
        ClientBuilder::default()
    }

    /// Builds the `reqwest` client underneath from this `reqwest::ClientBuilder` (proxies, TLS,
    /// pool settings, default headers…).
    pub fn reqwest_builder(mut self, builder: reqwest::ClientBuilder) -> ClientBuilder {
        self.reqwest = Some(ReqwestSource::Builder(Box::new(builder)));
        self
    }

    /// Sends with this existing `reqwest::Client` (its connection pool is shared).
    pub fn reqwest_client(mut self, client: reqwest::Client) -> ClientBuilder {
        self.reqwest = Some(ReqwestSource::Client(client));
        self
    }

    /// The retry policy (default: [`RetryPolicy::default`]).
    pub fn retry(mut self, policy: RetryPolicy) -> ClientBuilder {
        self.retry = policy;
        self
    }

    /// No retries.
    pub fn no_retry(self) -> ClientBuilder {
        self.retry(RetryPolicy::never())
    }

    /// The timeout of each attempt (connect and response head); `Duration::ZERO` or
    /// [`no_attempt_timeout`](Self::no_attempt_timeout) turns it off.
    pub fn attempt_timeout(mut self, timeout: Duration) -> ClientBuilder {
        self.attempt_timeout = (!timeout.is_zero()).then_some(timeout);
        self
    }

    /// No per-attempt timeout.
    pub fn no_attempt_timeout(mut self) -> ClientBuilder {
        self.attempt_timeout = None;
        self
    }

    /// Whether the attempt timeout also bounds reading the body (default: no).
    pub fn attempt_timeout_includes_body(mut self, yes: bool) -> ClientBuilder {
        self.include_body = yes;
        self
    }

    /// The deadline of a logical request across every attempt and pause; `Duration::ZERO` or
    /// [`no_deadline`](Self::no_deadline) turns it off.
    pub fn deadline(mut self, deadline: Duration) -> ClientBuilder {
        self.deadline = (!deadline.is_zero()).then_some(deadline);
        self
    }

    /// No deadline.
    pub fn no_deadline(mut self) -> ClientBuilder {
        self.deadline = None;
        self
    }

    /// Fail over between these servers: the first is the primary, the rest are tried in order
    /// (see [`fallback`](crate::fallback)). Requests to any of them are re-targeted; others pass
    /// through. Invalid URLs make [`build`](Self::build) fail.
    pub fn fallback_servers<I, U>(self, servers: I) -> ClientBuilder
    where
        I: IntoIterator<Item = U>,
        U: AsRef<str>,
    {
        self.fallback(FallbackLayer::builder(servers))
    }

    /// Fail over with these servers and ejection rules.
    pub fn fallback(mut self, fallback: FallbackBuilder) -> ClientBuilder {
        self.fallback = Some(fallback);
        self
    }

    /// Sends every request through the forward proxy at `url` (`http://host:port`, credentials
    /// allowed), and tells the diagnosis about it so that the proxy's failures are told apart
    /// from failures behind it. With [`reqwest_client`](Self::reqwest_client), configure the
    /// proxy on that client; this then only informs the diagnosis.
    ///
    /// Without this call, reqwest uses the environment's proxies (`HTTP_PROXY`, `HTTPS_PROXY`,
    /// `ALL_PROXY`, `NO_PROXY`; the platform's settings too with the `system-proxy` feature),
    /// and the diagnosis assumes the same on every builder path, deciding which proxy applies
    /// to a URL with the same matcher reqwest uses. A `reqwest::ClientBuilder` or
    /// `reqwest::Client` given with its own proxy settings is not visible to the diagnosis:
    /// name the proxy here too.
    pub fn proxy(mut self, url: impl Into<String>) -> ClientBuilder {
        self.proxy = Some(url.into());
        self
    }

    /// Builds the client.
    pub fn build(self) -> Result<Client, BuildError> {
        // Which proxies the diagnosis assumes: the one given here, else the environment's and
        // the platform's, which reqwest reads by default on every client it builds (a
        // `reqwest::ClientBuilder` or `reqwest::Client` configured with its own `proxy` or
        // `no_proxy` is not visible from here: tell the diagnosis with `.proxy(..)`).
        let proxies = match &self.proxy {
            Some(url) => ProxyMap::all(url),
            None => ProxyMap::from_system(),
        };
        let with_proxy = |builder: reqwest::ClientBuilder| match &self.proxy {
            Some(url) => reqwest::Proxy::all(url.as_str())
                .map(|proxy| builder.proxy(proxy))
                .map_err(BuildError::Reqwest),
            None => Ok(builder),
        };
        let reqwest = match self.reqwest {
            Some(ReqwestSource::Client(client)) => client,
            Some(ReqwestSource::Builder(builder)) => {
                with_proxy(*builder)?.build().map_err(BuildError::Reqwest)?
            }
            None => with_proxy(reqwest::Client::builder())?
                .build()
                .map_err(BuildError::Reqwest)?,
        };
        let attempt = self
            .attempt_timeout
            .map(|t| AttemptTimeoutLayer::new(t).include_body(self.include_body));
        let primary = self
            .fallback
            .as_ref()
            .and_then(FallbackBuilder::primary)
            .map(std::sync::Arc::<str>::from);
        let fallback = self.fallback.map(FallbackBuilder::build).transpose()?;
        let service = ServiceBuilder::new()
            .option_layer(self.deadline.map(DeadlineLayer::new))
            .layer(RetryLayer::new(self.retry))
            .option_layer(fallback)
            .option_layer(attempt)
            .service(Transport::new(reqwest.clone()).with_proxies(proxies));
        let stack: Stack = BoxCloneSyncService::new(service);
        Ok(Client {
            reqwest,
            stack,
            primary,
        })
    }
}
