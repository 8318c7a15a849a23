//! Configuring a [`Client`].

use super::{Client, Stack};
use crate::fallback::{FallbackBuilder, FallbackLayer, InvalidBaseUrl};
use crate::proxy::ProxyMap;
use crate::retry::{RetryLayer, RetryPolicy};
use crate::timeout::{AttemptTimeoutLayer, DeadlineLayer};
use crate::transport::Transport;
use std::time::Duration;
use tower::ServiceBuilder;
use tower_layer::Layer as _;

/// The default per-attempt timeout.
pub const DEFAULT_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// The default deadline of a logical request.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(30);

/// Builds a [`Client`]: the `reqwest` client underneath and the policies on top.
///
/// The stack, outermost first: deadline → retry → fallback → circuit (when asked for) →
/// attempt timeout → transport; why in that order is in [the crate docs](crate#the-default-stack).
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
    circuit: Option<crate::circuit::CircuitLayer>,
    proxy: Option<String>,
    redirect: Option<std::sync::Arc<reqwest::redirect::Policy>>,
    deadline_header: Option<std::sync::Arc<crate::timeout::DeadlineHeader>>,
    #[cfg(feature = "websocket")]
    websocket_client: Option<reqwest::Client>,
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
                    ReqwestSource::Factory(_) => "a function making a reqwest::ClientBuilder",
                }),
            )
            .field("retry", &self.retry)
            .field("attempt_timeout", &self.attempt_timeout)
            .field("include_body", &self.include_body)
            .field("deadline", &self.deadline)
            .field("fallback", &self.fallback)
            .field("circuit", &self.circuit)
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
            circuit: None,
            proxy: None,
            redirect: None,
            deadline_header: None,
            #[cfg(feature = "websocket")]
            websocket_client: None,
        }
    }
}

type BuilderFn = std::sync::Arc<dyn Fn() -> reqwest::ClientBuilder + Send + Sync>;

enum ReqwestSource {
    Builder(Box<reqwest::ClientBuilder>),
    Client(reqwest::Client),
    Factory(BuilderFn),
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
    ///
    /// Its redirect policy is replaced by [`redirect`](Self::redirect)'s (reqwest's default
    /// unless set there), wrapped so that the crate knows when a failure came after a
    /// redirect: set the policy there, not on this builder.
    ///
    /// With the `websocket` feature, WebSocket handshakes need an HTTP/1-only client (an
    /// upgrade cannot work over HTTP/2, which a `wss://` server may negotiate): this builder
    /// cannot be used twice, so they go through the same client. Prefer
    /// [`reqwest_builder_fn`](Self::reqwest_builder_fn), or give one with
    /// [`websocket_reqwest_client`](Self::websocket_reqwest_client).
    pub fn reqwest_builder(mut self, builder: reqwest::ClientBuilder) -> ClientBuilder {
        self.reqwest = Some(ReqwestSource::Builder(Box::new(builder)));
        self
    }

    /// Builds the `reqwest` client underneath from the `reqwest::ClientBuilder` that `make`
    /// returns (proxies, TLS roots, pool settings…); its redirect policy is replaced as with
    /// [`reqwest_builder`](Self::reqwest_builder). It is called once for the client and, with
    /// the `websocket` feature, once more on the first WebSocket handshake, for an
    /// HTTP/1-only client with the same settings.
    ///
    /// ```
    /// let client = reqwest_resilience::Client::builder()
    ///     .reqwest_builder_fn(|| reqwest::Client::builder().user_agent("orders/1.0"))
    ///     .build()
    ///     .unwrap();
    /// ```
    pub fn reqwest_builder_fn<F>(mut self, make: F) -> ClientBuilder
    where
        F: Fn() -> reqwest::ClientBuilder + Send + Sync + 'static,
    {
        self.reqwest = Some(ReqwestSource::Factory(std::sync::Arc::new(make)));
        self
    }

    /// The `reqwest::Client` WebSocket handshakes use: it should be HTTP/1-only
    /// (`reqwest::ClientBuilder::http1_only`), since an upgrade cannot work over HTTP/2.
    /// Without it, the crate makes one from the default configuration or from
    /// [`reqwest_builder_fn`](Self::reqwest_builder_fn), and uses the main client with
    /// [`reqwest_builder`](Self::reqwest_builder) or [`reqwest_client`](Self::reqwest_client).
    #[cfg(feature = "websocket")]
    #[cfg_attr(docsrs, doc(cfg(feature = "websocket")))]
    pub fn websocket_reqwest_client(mut self, client: reqwest::Client) -> ClientBuilder {
        self.websocket_client = Some(client);
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

    /// Tells each server how long the caller will still wait: `header` on every attempt, with
    /// the time the deadline leaves when it is sent; an attempt that would carry less than
    /// the header's minimum is not sent, and — on a reqwest client the crate builds — a
    /// redirect to another host is not followed (with [`reqwest_client`](Self::reqwest_client),
    /// that client's redirect policy decides, and may carry the header along). See
    /// [`DeadlineHeader`](crate::timeout::DeadlineHeader). Off by default.
    pub fn propagate_deadline(mut self, header: crate::timeout::DeadlineHeader) -> ClientBuilder {
        self.deadline_header = Some(std::sync::Arc::new(header));
        self
    }

    /// A circuit per host (see [`circuit`](crate::circuit)): once a host fails most of its
    /// logical requests, requests to it fail at once with
    /// [`GatewayError::CircuitOpen`](crate::GatewayError::CircuitOpen) until a probe after the
    /// cool-down succeeds. It sits below the retry and fallback layers, so each attempt is
    /// admitted, and a failed attempt is charged only if its request ends without the host's
    /// answer. Off by default: it changes which error a caller sees for a host that keeps
    /// failing.
    pub fn circuit_breaker(mut self, circuit: crate::circuit::CircuitLayer) -> ClientBuilder {
        self.circuit = Some(circuit);
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

    /// The redirect policy (default: reqwest's, up to 10 redirects). It replaces any policy
    /// set on a `reqwest::ClientBuilder` given to this builder: the crate wraps it with
    /// [`redirect::tracking`](crate::redirect::tracking) to know when a failure came after a
    /// redirect (the original request was then delivered, and is never resent as if it had
    /// not been). A `reqwest::Client` given with [`reqwest_client`](Self::reqwest_client)
    /// keeps its own policy, and its connection failures then never prove a request unsent.
    pub fn redirect(mut self, policy: reqwest::redirect::Policy) -> ClientBuilder {
        self.redirect = Some(std::sync::Arc::new(policy));
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
            None => Some(ProxyMap::from_system()),
        };
        // What the WebSocket stack can build its HTTP/1-only client from.
        #[cfg(feature = "websocket")]
        let websocket_source = match &self.reqwest {
            None => Some(None),
            Some(ReqwestSource::Factory(make)) => Some(Some(make.clone())),
            Some(_) => None,
        };
        let tracked = !matches!(self.reqwest, Some(ReqwestSource::Client(_)));
        let redirect = self
            .redirect
            .unwrap_or_else(|| std::sync::Arc::new(reqwest::redirect::Policy::default()));
        let reqwest = make_reqwest(self.reqwest, self.proxy.as_deref(), &redirect, false)?;
        let attempt = self
            .attempt_timeout
            .map(|t| AttemptTimeoutLayer::new(t).include_body(self.include_body));
        let primary = self
            .fallback
            .as_ref()
            .and_then(FallbackBuilder::primary)
            .map(std::sync::Arc::<str>::from);
        let layers = Layers {
            deadline: self.deadline.map(DeadlineLayer::new),
            retry: RetryLayer::new(self.retry),
            fallback: self.fallback.map(FallbackBuilder::build).transpose()?,
            circuit: self.circuit,
            attempt,
            proxies: proxies.map(std::sync::Arc::new),
            redirects_tracked: tracked,
            deadline_header: self.deadline_header,
        };
        let stack = layers.stack(reqwest.clone());
        #[cfg(feature = "websocket")]
        let websocket = std::sync::Arc::new(WebSocketStack {
            built: std::sync::OnceLock::new(),
            explicit: self.websocket_client,
            source: websocket_source,
            proxy: self.proxy.clone(),
            redirect,
            main: reqwest.clone(),
            layers: layers.clone(),
        });
        Ok(Client {
            reqwest,
            stack,
            primary,
            #[cfg(feature = "websocket")]
            websocket,
        })
    }
}

/// The layers of a client's stack, to build it over a `reqwest::Client` (twice with the
/// `websocket` feature: clones share the retry budget and the fallback health).
#[derive(Clone)]
struct Layers {
    deadline: Option<DeadlineLayer>,
    retry: RetryLayer,
    fallback: Option<FallbackLayer>,
    circuit: Option<crate::circuit::CircuitLayer>,
    attempt: Option<AttemptTimeoutLayer>,
    proxies: Option<std::sync::Arc<ProxyMap>>,
    redirects_tracked: bool,
    deadline_header: Option<std::sync::Arc<crate::timeout::DeadlineHeader>>,
}

impl Layers {
    fn stack(&self, reqwest: reqwest::Client) -> Stack {
        // Below the retry loop, the layers present in the order of the crate's stacks.
        let attempts = ServiceBuilder::new()
            .option_layer(self.fallback.clone())
            .option_layer(self.circuit.clone())
            .option_layer(self.attempt)
            .service(
                Transport::new(reqwest)
                    .with_proxy_map(self.proxies.clone())
                    .redirects_tracked(self.redirects_tracked)
                    .with_deadline_header(self.deadline_header.clone()),
            );
        // With the attempt timeout right below the loop, the loop names a timed-out attempt's
        // server from its copy of the request (the attempt keeps no copy of the URL).
        let retry = self.retry.layer(attempts).naming_servers(
            self.attempt.is_some() && self.fallback.is_none() && self.circuit.is_none(),
        );
        // Behind fallback servers the fallback layer decides what an open circuit means (the
        // next server), so the client refuses early only without one.
        let refusal = match (&self.circuit, &self.fallback) {
            (Some(circuit), None) => Some(circuit.fast_refusal()),
            _ => None,
        };
        // The client's deadline is raced by its request future, around this stack (see
        // `ServiceSender::deadline`).
        std::sync::Arc::new(super::stack::ServiceSender {
            service: retry,
            refusal,
            deadline: self.deadline.map(|d| d.limit()),
        })
    }
}

/// The `reqwest::Client` as configured: from the builder given (used once), the client given,
/// the factory, or the defaults; with the proxy given, and HTTP/1-only when asked (for
/// WebSocket handshakes).
fn make_reqwest(
    source: Option<ReqwestSource>,
    proxy: Option<&str>,
    redirect: &std::sync::Arc<reqwest::redirect::Policy>,
    http1_only: bool,
) -> Result<reqwest::Client, BuildError> {
    let configure = |mut builder: reqwest::ClientBuilder| {
        let policy = redirect.clone();
        builder = builder.redirect(crate::redirect::tracking(
            reqwest::redirect::Policy::custom(move |attempt| policy.redirect(attempt)),
        ));
        if let Some(url) = proxy {
            builder = builder.proxy(reqwest::Proxy::all(url).map_err(BuildError::Reqwest)?);
        }
        if http1_only {
            builder = builder.http1_only();
        }
        builder.build().map_err(BuildError::Reqwest)
    };
    match source {
        Some(ReqwestSource::Client(client)) => Ok(client),
        Some(ReqwestSource::Builder(builder)) => configure(*builder),
        Some(ReqwestSource::Factory(make)) => configure(make()),
        None => configure(reqwest::Client::builder()),
    }
}

/// The stack WebSocket handshakes go through, built on first use.
#[cfg(feature = "websocket")]
pub(crate) struct WebSocketStack {
    built: std::sync::OnceLock<Stack>,
    explicit: Option<reqwest::Client>,
    /// `Some(None)`: the defaults; `Some(Some(f))`: the factory; `None`: the main client only.
    source: Option<Option<BuilderFn>>,
    proxy: Option<String>,
    redirect: std::sync::Arc<reqwest::redirect::Policy>,
    main: reqwest::Client,
    layers: Layers,
}

#[cfg(feature = "websocket")]
impl WebSocketStack {
    pub(crate) fn get(&self) -> Result<Stack, crate::GatewayError> {
        if let Some(stack) = self.built.get() {
            return Ok(stack.clone());
        }
        let reqwest = match (&self.explicit, &self.source) {
            (Some(client), _) => client.clone(),
            // A builder given once, or a client given: the same client.
            (None, None) => self.main.clone(),
            (None, Some(make)) => make_reqwest(
                make.clone().map(ReqwestSource::Factory),
                self.proxy.as_deref(),
                &self.redirect,
                true,
            )
            .map_err(|err| {
                crate::GatewayError::new(
                    crate::ErrorKind::InvalidRequest,
                    format!("the HTTP/1 client for WebSocket handshakes could not be built: {err}"),
                )
            })?,
        };
        let mut layers = self.layers.clone();
        // A client given for WebSockets keeps its own redirect policy.
        layers.redirects_tracked &= self.explicit.is_none();
        Ok(self.built.get_or_init(|| layers.stack(reqwest)).clone())
    }
}
