//! This crate's resilience inside a [reqwest-middleware](https://docs.rs/reqwest-middleware)
//! chain (feature `middleware`).
//!
//! Services that build their client with `reqwest_middleware::ClientBuilder` — with
//! reqwest-tracing, http-cache-reqwest or an auth middleware on it — add
//! [`ResilienceMiddleware`] to the chain and keep the rest:
//!
//! ```no_run
//! use reqwest_resilience::middleware::ResilienceMiddleware;
//! use reqwest_resilience::retry::RetryPolicy;
//! use std::time::Duration;
//!
//! # async fn run() -> Result<(), reqwest_middleware::Error> {
//! let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
//!     .with(
//!         ResilienceMiddleware::new()
//!             .retry(RetryPolicy::default().max_attempts(4))
//!             .attempt_timeout(Duration::from_secs(2))
//!             .deadline(Duration::from_secs(8)),
//!     )
//!     // Middlewares after it run once per attempt.
//!     .build();
//! match client.get("http://127.0.0.1:8080/").send().await {
//!     Ok(response) => println!("{}", response.status()),
//!     Err(err) => match reqwest_resilience::middleware::gateway_error(&err) {
//!         Some(gateway) => eprintln!("{gateway}\n{}", gateway.diagnosis()),
//!         None => eprintln!("{err}"),
//!     },
//! }
//! # Ok(()) }
//! ```
//!
//! What it does is the tower stack's, from the same code: the retry decision of each attempt
//! (causes, attempts, idempotency, replayable bodies, `Retry-After`,
//! backoff, the budget per host, the deadline; 429, 408 and your response rules) is the retry
//! layer's own step; a 5xx's start of body is read and classified, and transport errors are
//! classified, by the transport's own function; the deadline bounds everything, the body
//! included, with the deadline layer's error; each attempt is bounded by the attempt timeout.
//! It calls `next.clone().run(..)` once per attempt, so the middlewares after it (and the
//! client's own redirect policy) run for every attempt. Its errors are
//! `reqwest_middleware::Error::Middleware` wrapping the [`GatewayError`] (see
//! [`gateway_error`]); its responses are the same as the tower stack's (the attempts made are
//! on them: [`attempts`](crate::attempts)).
//!
//! **Backtraces.** reqwest-middleware's errors are `anyhow::Error`s, and anyhow captures a
//! backtrace for each one it makes when `RUST_BACKTRACE` or `RUST_LIB_BACKTRACE` is set: with
//! `RUST_BACKTRACE=1`, every failed request through the chain pays for one (the first took
//! 160–230 ms, to load the unwind tables). No error of this crate's asks for it, and the
//! chain's error type leaves no way to skip it; set `RUST_LIB_BACKTRACE=0` beside
//! `RUST_BACKTRACE=1` to keep panics' backtraces without it. The [`Client`](crate::Client)
//! never captures one.
//!
//! **Where it goes in the chain.** Middlewares before it run once per logical request (a
//! `reqwest-tracing` `TracingMiddleware` there makes one span per logical request); those
//! after it run once per attempt (a `TracingMiddleware` there makes a span per attempt). See
//! `examples/middleware.rs`.
//!
//! Not in the middleware (use [`Client`](crate::Client) or the tower layers for them):
//! fallback servers, the circuit per host and hedging. And one difference: the chain's client
//! is not known to tell this crate of redirects (see [`redirect`](crate::redirect)), so no
//! failure counts as proof that a request was never sent; a POST without an
//! `Idempotency-Key` or an opt-in is therefore never resent, even after a refused connection.
//! Where redirect knowledge is lost: a *transport* failure after a redirect the chain's client
//! followed names the URL as requested (reqwest names it so), not the redirect's target; such
//! errors say so ([`Details::redirects_unseen`](crate::Details::redirects_unseen)) and their
//! diagnosis tells the user to check where that server redirects. A 5xx *response* after a
//! redirect is named by its own URL, as through the crate's client.

use crate::clock::{DeadlineAt, instant_after};
use crate::error::{Details, ErrorKind, GatewayError, Origin};
use crate::request::{Request, Tracker};
use crate::retry::{Loop, RetryPolicy, Step};
use crate::timeout::attempt::{PEEK_GRACE, timed_out};
use http::Extensions;
use reqwest_middleware::{Middleware, Next};
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument;

/// Retries, an attempt timeout and a total deadline, with this crate's classification, as a
/// reqwest-middleware [`Middleware`]. See the [module docs](self).
#[derive(Debug, Clone)]
pub struct ResilienceMiddleware {
    policy: RetryPolicy,
    attempt_timeout: Option<Duration>,
    deadline: Option<Duration>,
}

impl Default for ResilienceMiddleware {
    fn default() -> Self {
        ResilienceMiddleware::new()
    }
}

impl ResilienceMiddleware {
    /// The [`Client`](crate::Client)'s defaults: [`RetryPolicy::default`], 10 s per attempt,
    /// a 30 s deadline.
    pub fn new() -> Self {
        ResilienceMiddleware {
            policy: RetryPolicy::default(),
            attempt_timeout: Some(crate::DEFAULT_ATTEMPT_TIMEOUT),
            deadline: Some(crate::DEFAULT_DEADLINE),
        }
    }

    /// The retry policy (its budget is shared by clones of the middleware).
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Each attempt's timeout, to its response head and the start of a 5xx's body
    /// (`Duration::ZERO`: none).
    pub fn attempt_timeout(mut self, timeout: Duration) -> Self {
        self.attempt_timeout = (!timeout.is_zero()).then_some(timeout);
        self
    }

    /// The deadline of the whole request: attempts, pauses and the body (`Duration::ZERO`:
    /// none).
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.deadline = (!deadline.is_zero()).then_some(deadline);
        self
    }
}

/// The [`GatewayError`] behind a reqwest-middleware error made by [`ResilienceMiddleware`].
pub fn gateway_error(err: &reqwest_middleware::Error) -> Option<&GatewayError> {
    match err {
        reqwest_middleware::Error::Middleware(inner) => inner.downcast_ref::<GatewayError>(),
        reqwest_middleware::Error::Reqwest(_) => None,
    }
}

#[async_trait::async_trait]
impl Middleware for ResilienceMiddleware {
    async fn handle(
        &self,
        req: reqwest::Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        let mut request = Request::from(req);
        let deadline = self.deadline.map(|total| DeadlineAt {
            at: instant_after(total),
            total,
        });
        request.state_mut().deadline = deadline;
        let tracker = request.tracker();
        let method = request.method().clone();
        let may_resend = crate::idempotency::may_resend(
            request.method(),
            request.headers(),
            request.options().idempotent,
        );
        let mut decisions = Loop::new((), self.policy.clone(), &mut request);
        let span = decisions.span();
        let attempts = async {
            let mut attempt = 1;
            let mut spent = 0;
            let mut previous_delay = Duration::ZERO;
            let mut current = request;
            loop {
                decisions.start_attempt(attempt);
                let attempt_span = decisions.attempt_span(attempt, &current);
                let outcome = self
                    .attempt(current, extensions, next.clone(), &tracker, deadline)
                    .instrument(attempt_span.clone())
                    .await;
                match decisions.after(attempt, outcome, attempt_span, previous_delay, &mut spent) {
                    Step::Done(result) => return result,
                    Step::Retry(delay, copy) => {
                        previous_delay = delay;
                        crate::retry::pause(delay).await;
                        attempt += 1;
                        current = copy;
                    }
                }
            }
        }
        .instrument(span);
        let outcome = match deadline {
            Some(d) => {
                // Kept in an `Option` so that the deadline drops the attempts in place (they
                // then end as timed out), not when this function returns.
                let mut attempts = std::pin::pin!(Some(attempts));
                let run = std::future::poll_fn(|cx| match attempts.as_mut().as_pin_mut() {
                    Some(running) => running.poll(cx),
                    None => {
                        std::task::Poll::Ready(Err(crate::boxed_future::polled_after_end("the")))
                    }
                });
                match tokio::time::timeout_at(d.at, run).await {
                    Ok(outcome) => crate::timeout::deadline::settle(
                        outcome,
                        &tracker,
                        d,
                        method,
                        Some(may_resend),
                    ),
                    Err(_) => {
                        crate::timeout::drop_timed_out(attempts.as_mut());
                        Err(crate::timeout::deadline::exceeded(&tracker, d, method))
                    }
                }
            }
            None => attempts.await,
        };
        outcome.map_err(reqwest_middleware::Error::middleware)
    }
}

/// Polls the exchange in `slot` for at most `limit` (it stays in place when the time is up).
async fn run_for<F>(
    mut slot: std::pin::Pin<&mut Option<F>>,
    limit: Duration,
) -> Result<Result<reqwest::Response, GatewayError>, tokio::time::error::Elapsed>
where
    F: std::future::Future<Output = Result<reqwest::Response, GatewayError>>,
{
    let polled = std::future::poll_fn(|cx| match slot.as_mut().as_pin_mut() {
        Some(running) => running.poll(cx),
        None => std::task::Poll::Ready(Err(crate::boxed_future::polled_after_end("the"))),
    });
    tokio::time::timeout(limit, polled).await
}

/// Another middleware's error, kept whole as the `source()` of the `GatewayError` it becomes:
/// reachable by downcast down the source chain (the error's own type is the source of this
/// one). Where it wraps a `reqwest` error (reqwest-retry wraps every error it passes on), that
/// error's cause is the cause; otherwise it is [`ErrorKind::Other`], never retried.
fn foreign(err: anyhow::Error, method: http::Method) -> GatewayError {
    // A `reqwest::Error` in the chain; else what the chain below a transparent wrapper
    // (reqwest-retry's, which hides the `reqwest::Error` itself) proves.
    let found = err
        .chain()
        .find_map(|e| e.downcast_ref::<reqwest::Error>())
        .map(crate::classify::classify_transport)
        .or_else(|| crate::classify::classify_chain(err.as_ref()));
    let message = format!("a middleware after this one failed: {err}");
    let mut details = match found {
        Some(found) => Details::new(found.kind, Origin::Transport, message.into())
            .with_evidence(Some(found.evidence)),
        None => Details::new(ErrorKind::Other, Origin::Local, message.into()),
    }
    .with_source(Arc::new(Foreign(err)));
    // Nothing proves another middleware's failure unsent.
    details.clear_unsent();
    details.set_method(method);
    GatewayError::from_details(details)
}

/// Another middleware's error, as an error whose `source()` is that middleware's own error.
struct Foreign(anyhow::Error);

impl std::fmt::Debug for Foreign {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&self.0, f)
    }
}

impl std::fmt::Display for Foreign {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("another middleware's error")
    }
}

impl std::error::Error for Foreign {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        let inner: &(dyn std::error::Error + Send + Sync + 'static) = self.0.as_ref();
        Some(inner)
    }
}

impl ResilienceMiddleware {
    /// One attempt through the rest of the chain, bounded by the attempt timeout (cut to the
    /// deadline), its outcome classified as the transport classifies its own.
    async fn attempt(
        &self,
        request: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
        tracker: &Arc<Tracker>,
        deadline: Option<DeadlineAt>,
    ) -> Result<reqwest::Response, GatewayError> {
        let timeout = match (self.attempt_timeout, deadline) {
            (Some(t), Some(d)) => Some(t.min(d.remaining())),
            (t, d) => t.or(d.map(|d| d.remaining())),
        };
        let mut req = request.into_inner();
        // Credentials written in the URL go to this URL's server, as a header.
        crate::credentials::apply(&mut req);
        let url = req.url().clone();
        let sent = crate::transport::Sent {
            #[cfg(feature = "metrics")]
            metrics: crate::metrics::OnWire::new(req.method(), &url),
            method: req.method().clone(),
            // The chain's client is not known to tell of redirects: a response for another
            // URL shows one, and no failure counts as proof that the request was unsent.
            sent_to: Some(crate::transport::fingerprint(&url)),
            redirects_before: tracker.redirects(),
            proxies: None,
            redirects_tracked: false,
        };
        let method = sent.method.clone();
        tracker.count_send();
        let exchange = async {
            match next.run(req, extensions).await {
                Ok(response) => judged(Ok(response), sent, tracker.clone()).await,
                Err(reqwest_middleware::Error::Reqwest(err)) => {
                    judged(Err(err), sent, tracker.clone()).await
                }
                Err(reqwest_middleware::Error::Middleware(err)) => {
                    #[cfg_attr(not(feature = "metrics"), allow(unused_mut))]
                    let mut sent = sent;
                    let err = match err.downcast::<GatewayError>() {
                        Ok(gateway) => gateway,
                        Err(other) => foreign(other, sent.method.clone()),
                    };
                    // A later middleware's failure ends this request on the wire too.
                    #[cfg(feature = "metrics")]
                    sent.metrics.finish_err(&err);
                    Err(err)
                }
            }
        };
        let Some(timeout) = timeout else {
            return exchange.await;
        };
        let heads = tracker.heads();
        // In an `Option`, so that a timer that fires drops the exchange in place: its request
        // then ends as timed out (its metrics say so) and its connection closes at once.
        let mut exchange = std::pin::pin!(Some(exchange));
        let outcome = match run_for(exchange.as_mut(), timeout).await {
            Ok(outcome) => Ok(outcome),
            // A response head arrived in time and the start of a 5xx's body is being read:
            // that read's outcome is this attempt's, as with the tower attempt timeout.
            Err(_) if tracker.heads() != heads => run_for(exchange.as_mut(), PEEK_GRACE).await,
            Err(elapsed) => Err(elapsed),
        };
        match outcome {
            Ok(outcome) => outcome,
            Err(_) => {
                crate::timeout::drop_timed_out(exchange.as_mut());
                Err(timed_out(timeout, method, Some(&url)))
            }
        }
    }
}

/// The transport's judgement of what the rest of the chain answered.
async fn judged(
    outcome: Result<reqwest::Response, reqwest::Error>,
    sent: crate::transport::Sent,
    tracker: std::sync::Arc<crate::request::Tracker>,
) -> Result<reqwest::Response, GatewayError> {
    match crate::transport::judge(outcome, sent, tracker) {
        crate::transport::Judgement::Decided(outcome) => outcome,
        crate::transport::Judgement::Classifying(future) => future.await,
    }
}
