//! Retrying failed attempts: backoff with jitter, `Retry-After`, idempotency rules, a budget.
//!
//! [`RetryLayer`] wraps any `Service<`[`Request`]`, Error = GatewayError>` — the
//! [`Transport`](crate::Transport), a timeout, a fallback, or your own service:
//!
//! ```
//! use reqwest_resilience::retry::{RetryLayer, RetryPolicy};
//! use reqwest_resilience::{ErrorKind, GatewayError};
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! let flaky = service_fn(|_req: reqwest_resilience::Request| async {
//!     Err::<reqwest::Response, _>(GatewayError::new(ErrorKind::BadGateway, "upstream down"))
//! });
//! let service = ServiceBuilder::new()
//!     .layer(RetryLayer::new(RetryPolicy::default().max_attempts(2)))
//!     .service(flaky);
//! let request = reqwest::Request::new(reqwest::Method::GET, "http://example.test/".parse().unwrap());
//! let err = service.oneshot(request.into()).await.unwrap_err();
//! assert_eq!(err.attempts(), 2);
//! # }
//! ```
//!
//! # What is retried
//!
//! A failure is retried when all of these hold, checked in this order; the first that fails
//! ends the request and its reason is given by [`GatewayError::not_retried_because`]:
//!
//! 1. the cause is retried ([`GatewayError::is_transient`], or your
//!    [`retry_if`](RetryPolicy::retry_if)); 502.7 (a malformed answer) is not by default, nor
//!    is an invalid request, an exceeded deadline or an open circuit;
//! 2. attempts are left;
//! 3. the request may be sent again: GET, HEAD, OPTIONS, TRACE, PUT and DELETE always; POST and
//!    PATCH only with an `Idempotency-Key` header, an opt-in, or when the failure proves the
//!    request never reached a server (refused connection, DNS failure, no server);
//! 4. the body can be replayed (a buffered body can, a stream cannot);
//! 5. a `Retry-After` or rate-limit hint (on a 503 or 429) is within
//!    [`max_retry_after`](RetryPolicy::max_retry_after);
//! 6. the pause ends before the deadline, if one is set;
//! 7. the [`RetryBudget`] has tokens (the request's host's bucket: one per host by default).
//!
//! # Which responses are retried
//!
//! A response is a failure only when the classifier makes it one: a gateway status (502, 503,
//! 504, the CDN codes) or an application status whose headers name the gateway product that
//! wrote it (see [`classify_response`](crate::classify::classify_response)). Every other
//! response — a 4xx, an application's own 500 whatever its page quotes — is the origin's
//! answer: returned as it is, and retried only by a rule you wrote
//! ([`retry_on_status`](RetryPolicy::retry_on_status),
//! [`retry_on_response`](RetryPolicy::retry_on_response)); 429 and 408 are retried by default
//! and handed back as they are when not.
//!
//! The retry layer ends every logical request and reads its outcome from the request's record
//! of all its copies: an error's [`attempts`](GatewayError::attempts) are the requests that
//! went on the wire (a retry or hedge refused by an open circuit is not one, and its cost goes
//! back to the budget), and the error it ends with is the request's own last failure.
//!
//! # Hedging
//!
//! With [`hedge_after`](RetryPolicy::hedge_after), an attempt that has had no response head for
//! the delay gets one backup copy (to the next fallback server when there are several); the
//! first good answer wins and the other call is dropped, closing its connection. Only requests
//! the rules above may send twice (3.) with a body that can be copied (4.) are hedged; a hedge
//! is an attempt (it counts against the attempts allowed and in the response's attempt count)
//! and pays the retry's cost from the budget (7.) with no refund. The delay is fixed
//! ([`hedge_after`](RetryPolicy::hedge_after)) or a percentile of the host's recent latencies
//! ([`hedge_at_percentile`](RetryPolicy::hedge_at_percentile)).
//!
//! # Tracing
//!
//! Each logical request is an `INFO` span `request`, each attempt a child span `attempt` with
//! OpenTelemetry's field names (`http.request.method`, `server.address`, `url.full` without
//! query or credentials, `http.request.resend_count`, `http.response.status_code`,
//! `error.type`). A retry is logged at `WARN` with its pause and reason; a give-up says why.

mod future;
mod layer;

#[cfg(feature = "backoff")]
pub use crate::policy::backoff::BackoffCrate;
pub use crate::policy::backoff::{Backoff, ExponentialBackoff, Jitter};
pub use crate::policy::budget::RetryBudget;
pub use crate::policy::retry::RetryPolicy;
pub use crate::policy::retry_after::retry_after;
pub use future::ResponseFuture;
pub(crate) use future::refused_before_loop;
#[cfg(feature = "middleware")]
pub(crate) use future::{Loop, Step, pause};
pub use layer::RetryLayer;

use crate::error::GatewayError;
use crate::request::Request;
use std::task::{Context, Poll};
use tower_service::Service;

/// Retries the failed attempts of an inner service by a [`RetryPolicy`].
#[derive(Clone)]
pub struct Retry<S> {
    inner: S,
    policy: RetryPolicy,
    /// Whether the attempt timeout sits right below, with nothing between that re-targets a
    /// request or reads an error's server (a client's stack without fallback servers or a
    /// circuit): the loop then names the server of a timed-out attempt from its own copy.
    names_servers: bool,
}

impl<S: std::fmt::Debug> std::fmt::Debug for Retry<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Retry")
            .field("inner", &self.inner)
            .field("policy", &self.policy)
            .finish()
    }
}

impl<S> Retry<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, policy: RetryPolicy) -> Self {
        Retry {
            inner,
            policy,
            names_servers: false,
        }
    }

    /// See `names_servers`: set by a client's stack only.
    pub(crate) fn naming_servers(mut self, yes: bool) -> Self {
        self.names_servers = yes;
        self
    }

    pub(crate) fn names_servers(&self) -> bool {
        self.names_servers
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service, unwrapped.
    pub fn into_inner(self) -> S {
        self.inner
    }

    /// The policy.
    pub fn policy(&self) -> &RetryPolicy {
        &self.policy
    }
}

impl<S> Service<Request> for Retry<S>
where
    S: Service<Request, Response = reqwest::Response, Error = GatewayError>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = reqwest::Response;
    type Error = GatewayError;
    type Future = ResponseFuture<S, S::Future>;

    /// Always ready: each attempt waits for the inner service's readiness itself, inside the
    /// request's future, so that a deadline above this layer bounds that wait too (a
    /// concurrency or rate limit below it queues within the deadline). Backpressure is
    /// therefore not passed up, as with tower's `Buffer`.
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> Self::Future {
        ResponseFuture::retrying(
            self.inner.clone(),
            self.policy.clone(),
            request,
            self.names_servers,
        )
    }
}
