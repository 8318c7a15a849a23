//! HTTP calls that survive bad gateways.
//!
//! `reqwest-resilience` wraps [`reqwest`]: requests end in `Result<Response, GatewayError>`
//! (a [`Response`] dereferences to `reqwest::Response` and reads its body within the deadline,
//! failing with a `GatewayError` too), where [`GatewayError`] has one variant per cause
//! of a gateway failure, named after the IIS / ARR substatus codes of `502 Bad Gateway`. On the
//! way, a stack of [`tower`] layers retries what is worth retrying, bounds time, and fails over
//! to other servers.
//!
//! # Quick start
//!
//! ```no_run
//! use reqwest_resilience::{Client, GatewayError};
//!
//! /// One error type from `send()` to the last byte: reading the body fails with the
//! /// `GatewayError` of what happened (the deadline, a reset mid-body, a decode failure).
//! async fn order(client: &Client, id: u32) -> Result<String, GatewayError> {
//!     let response = client
//!         .get(format!("http://127.0.0.1:8080/orders/{id}"))
//!         .send()
//!         .await?;
//!     Ok(response.text().await?)
//! }
//!
//! # async fn run() {
//! let client = Client::new(); // deadline 30 s, 3 attempts with backoff and a budget, 10 s each
//! match order(&client, 17).await {
//!     Ok(body) => println!("{body}"),
//!     Err(GatewayError::ConnectFailed(_)) => eprintln!("could not connect"),
//!     Err(GatewayError::CircuitOpen(_)) => eprintln!("the host is down; failed at once"),
//!     Err(other) => eprintln!("{other}\n{}", other.diagnosis()),
//! }
//! # }
//! ```
//!
//! What each feature does, with its module:
//!
//! - [`Client`] / [`ClientBuilder`]: reqwest's API over the default stack below.
//! - [`error`]: the [`GatewayError`] taxonomy, and what every error tells.
//! - [`classify`]: the classifiers of gateway pages and transport errors, usable on their own.
//! - [`retry`]: backoff with jitter, `Retry-After`, idempotency rules, a retry budget per
//!   host, response rules, hedging.
//! - [`timeout`]: the attempt timeout and the deadline (the body included).
//! - [`fallback`]: fallback servers with ejection and fail-back.
//! - [`circuit`]: a circuit per host that fails fast while a host is down.
//! - [`diagnosis`]: which hop failed, the likely cause, what to check.
//! - [`redirect`]: the redirect tracking that keeps "never sent" true after a redirect.
//! - `websocket` (feature `websocket`): WebSocket handshakes through the same policies.
//! - `middleware` (feature `middleware`): `ResilienceMiddleware` in a reqwest-middleware
//!   chain (before `TracingMiddleware`: a span per logical request; after it: per attempt).
//! - `metrics` (feature `metrics`): request durations, resends, retries, give-ups, budgets,
//!   hedges, ejections and circuit transitions through the `metrics` facade 0.24, with
//!   OpenTelemetry's names.
//!
//! # The taxonomy
//!
//! | variant | substatus | meaning |
//! |---|---|---|
//! | [`GatewayError::TimedOut`] | 502.1 | no answer in time (a gateway's 504, or this crate's attempt timeout) |
//! | [`GatewayError::ConnectionClosed`] | 502.2 | the connection closed before a complete response |
//! | [`GatewayError::ConnectFailed`] | 502.3 | could not connect (refused, connect timeout, TLS handshake) |
//! | [`GatewayError::NameNotResolved`] | 502.4 | the server's name did not resolve |
//! | [`GatewayError::NoHealthyServer`] | 502.4 | no server left: every fallback server failed, or a gateway has no healthy upstream |
//! | [`GatewayError::WebSocket`] | 502.5 | a WebSocket upgrade failed |
//! | [`GatewayError::SendFailed`] | 502.6 | sending the request (or its body) failed |
//! | [`GatewayError::InvalidResponse`] | 502.7 | a malformed or protocol-violating response |
//! | [`GatewayError::BadGateway`] | — | a 502 whose cause nothing tells |
//! | [`GatewayError::ServiceUnavailable`] | — | a 503 whose cause nothing tells |
//! | [`GatewayError::DeadlineExceeded`] | — | the total deadline ran out |
//! | [`GatewayError::InvalidRequest`] | — | the request was invalid; never sent |
//! | [`GatewayError::Decode`] | — | a whole body that is not what the caller decodes (`json()`) |
//! | [`GatewayError::Other`] | — | a failure with no gateway meaning |
//! | [`GatewayError::CircuitOpen`] | — | the host's [`circuit`] is open: failed at once, never sent |
//!
//! The [`error`] module documents the full mapping from what gateways send and what our own
//! transport sees; the [`classify`] module holds the classifiers, usable on their own.
//!
//! # The default stack
//!
//! [`Client::new`] and [`Client::builder`] assemble, outermost first:
//!
//! ```text
//!   Client::get(url)...send()
//!        │
//!   ┌────▼─────────────────────────┐  bounds everything below: attempts, pauses, failovers
//!   │ DeadlineLayer        (30 s)  │  → DeadlineExceeded, carrying the last cause
//!   ├──────────────────────────────┤
//!   │ RetryLayer  (3 attempts,     │  backoff with full jitter, Retry-After, idempotency,
//!   │  budget on)                  │  a retry budget shared by clones
//!   ├──────────────────────────────┤
//!   │ FallbackLayer (if servers    │  next healthy server at once; ejection and fail-back
//!   │  are configured)             │
//!   ├──────────────────────────────┤
//!   │ CircuitLayer (if asked for)  │  a circuit per host: fails fast while a host is down
//!   ├──────────────────────────────┤
//!   │ AttemptTimeoutLayer  (10 s)  │  one timer per server try, cut to the deadline's time left
//!   ├──────────────────────────────┤
//!   │ Transport                    │  reqwest; failures and gateway pages → GatewayError
//!   └──────────────────────────────┘
//! ```
//!
//! Why this order: the deadline must see everything; retry sits outside fallback so that a
//! failing server is left for the next one without a pause (the pause comes only when every
//! server failed); the circuit sits below both so that every attempt to a host is admitted (a
//! fallback server's included: one whose circuit is open is skipped) and its outcome held for
//! the logical request's verdict; the attempt timeout is innermost so that each server try gets
//! its own timer. (A client applies its deadline in the request's own future, around the rest
//! of the stack, with the deadline layer's code: the same behaviour, one future fewer.)
//!
//! ```
//! use reqwest_resilience::{Client, retry::RetryPolicy};
//! use std::time::Duration;
//!
//! let client = Client::builder()
//!     .retry(RetryPolicy::default().max_attempts(4))
//!     .attempt_timeout(Duration::from_secs(2))
//!     .deadline(Duration::from_secs(8))
//!     .fallback_servers(["http://10.0.0.1:8080", "http://10.0.0.2:8080"])
//!     .build()
//!     .unwrap();
//! ```
//!
//! # Choosing timeouts
//!
//! - The **deadline** is what your caller can wait: a user-facing request a few seconds, a batch
//!   job longer. Set it first; everything else fits inside it.
//! - The **attempt timeout** is a little above the upstream's slow-but-healthy latency (its p99),
//!   so that a stuck attempt is abandoned while a retry still fits in the deadline. Roughly:
//!   `deadline ≥ attempts × attempt_timeout + pauses` if every attempt may use its full time.
//! - A long download: keep the attempt timeout for the response head
//!   (`attempt_timeout_includes_body(false)`, the default). The deadline bounds the body too
//!   (see [what the deadline bounds](timeout#what-the-deadline-bounds)): give a download that
//!   may outlast it its own `.deadline(..)` (or `Duration::ZERO`: none), and bound its idle
//!   time between chunks with reqwest's `read_timeout`.
//! - Per request: `.timeout(d)` (this request's attempt timeout) and `.deadline(d)`.
//!
//! # What is retried, and why
//!
//! Timeouts, premature exits, connection failures, missing servers, plain 502/503 and gateway
//! 504s are transient: retried. A malformed answer (502.7) tends to repeat: not retried by
//! default. An invalid request or an exceeded deadline: never. GET, HEAD, OPTIONS, TRACE, PUT and
//! DELETE may be sent again; a POST or PATCH only with an `Idempotency-Key`, an opt-in
//! ([`RequestBuilder::idempotent`]), or when the failure proves it never reached a server (a
//! refused connection, a DNS failure). A streamed body is sent once. `Retry-After` is honoured up
//! to a maximum; past it, or past the deadline, the error comes back at once. The budget stops
//! retries from multiplying the load in an outage. See [`retry`] for the rules in order.
//!
//! # Seeing it all in tracing
//!
//! Each logical request is an `INFO` span `request`, each attempt a child span `attempt` with
//! OpenTelemetry's field names (`http.request.method`, `server.address`, `url.full` without
//! query or credentials, `http.request.resend_count`, `http.response.status_code`,
//! `error.type`), each fallback try a span `server`. Retries and give-ups are `WARN` events with
//! their reason; ejections and restorations of fallback servers are `INFO` events:
//!
//! ```no_run
//! tracing_subscriber::fmt().with_env_filter("reqwest_resilience=info").init();
//! ```
//!
//! # Diagnosis
//!
//! [`GatewayError::diagnosis`] says which hop failed (this client, its forward proxy, a named
//! gateway, the origin), the likely cause and what to check, with the evidence. See
//! [`diagnosis`].
//!
//! # Building your own stack
//!
//! Every layer is a `tower::Layer` over any `Service<`[`Request`]`, Error = GatewayError>`, so
//! tower's own layers fit in between; [`Client::into_service`] gives the client's whole stack as
//! one service. A [`Request`] is a `reqwest::Request` with the state of its logical request
//! (`Request::from(reqwest_request)`).
//!
//! ```no_run
//! use reqwest_resilience::Transport;
//! use reqwest_resilience::retry::{RetryLayer, RetryPolicy};
//! use reqwest_resilience::timeout::{AttemptTimeoutLayer, DeadlineLayer};
//! use std::time::Duration;
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! # async fn run() -> Result<(), reqwest_resilience::GatewayError> {
//! let service = ServiceBuilder::new()
//!     .layer(DeadlineLayer::new(Duration::from_secs(10)))
//!     .layer(RetryLayer::new(RetryPolicy::default()))
//!     .layer(AttemptTimeoutLayer::new(Duration::from_secs(2)))
//!     .service(Transport::new(reqwest::Client::new()));
//! let request = reqwest::Request::new(reqwest::Method::GET, "http://127.0.0.1:8080/".parse().unwrap());
//! let response = service.oneshot(request.into()).await?;
//! # Ok(()) }
//! ```
//!
//! Per-request values (the options set on the request builder, the deadline a deadline layer
//! set, what happened so far) travel in the [`Request`] itself, so they survive
//! `tower::buffer`, spawns and layers of your own; see `ARCHITECTURE.md` for the path of one
//! request through the layers.
//!
//! # Cargo features
//!
//! `default-tls` (default), `native-tls`, `http2`, `charset`, `system-proxy` pass through to
//! reqwest (`charset` also has the response's `text()` decode by the charset, as reqwest's
//! does); `json`, `form`, `query` enable the request builder's methods of those names (and
//! `json` the response's `json()`); `websocket` enables `Client::websocket`; `middleware`
//! the reqwest-middleware adapter; `metrics` the metrics; `backoff` lets the `backoff` crate
//! drive the retry schedule; `full` is every feature but `native-tls`.

#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod boxed_future;
pub mod circuit;
pub mod classify;
mod client;
mod clock;
mod credentials;
pub mod diagnosis;
pub mod error;
pub mod fallback;
mod gateway;
mod health;
mod host;
mod idempotency;
#[cfg(feature = "metrics")]
pub mod metrics;
#[cfg(feature = "middleware")]
pub mod middleware;
mod policy;
mod proxy;
mod redact;
pub mod redirect;
mod request;
mod response;
mod response_body;
pub mod retry;
pub mod timeout;
mod transport;
#[cfg(feature = "websocket")]
#[cfg_attr(docsrs, doc(cfg(feature = "websocket")))]
pub mod websocket;

pub use client::{
    BuildError, Client, ClientBuilder, DEFAULT_ATTEMPT_TIMEOUT, DEFAULT_DEADLINE, Pending,
    RequestBuilder,
};
pub use error::{Details, ErrorKind, GatewayError, Origin, ResponseSnapshot, Substatus};
pub use request::{Request, RequestOptions, attempts};
pub use response::{BytesStream, Response};
pub use transport::{BODY_PEEK_WAIT, Transport};

/// The README's examples are compiled as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
