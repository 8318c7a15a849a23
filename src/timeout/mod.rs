//! Bounding time: a timeout per attempt and a deadline for the whole logical request.
//!
//! - [`AttemptTimeoutLayer`] bounds one attempt (connect and response head, and optionally the
//!   body) and turns expiry into [`GatewayError::TimedOut`](crate::GatewayError::TimedOut)
//!   with a local origin.
//! - [`DeadlineLayer`] bounds everything inside it — every attempt, backoff pause and failover —
//!   and turns expiry into [`GatewayError::DeadlineExceeded`](crate::GatewayError::DeadlineExceeded)
//!   carrying the last failure. It tells the layers inside it the time left: the retry layer
//!   never starts a pause that would end past it, and the attempt timeout is cut to it.
//!
//! A zero duration means "no limit" wherever one is given: on the layers, on
//! [`ClientBuilder`](crate::ClientBuilder) and per request.
//!
//! # What the deadline bounds
//!
//! Everything from the deadline layer's `call` until the caller has read the body: every
//! attempt, backoff pause and failover below it, and the response body, which ends with an
//! error when the deadline passes mid-read (see below). It does not bound waiting for the
//! readiness (`poll_ready`) of the service directly below it, which tower's contract puts
//! before `call`: put a concurrency or rate limit *below* the [retry
//! layer](crate::retry::RetryLayer), which waits for readiness inside each attempt and so
//! inside the deadline.
//!
//! # Body errors
//!
//! Through a [`Client`](crate::Client), the body is read from its
//! [`Response`](crate::Response), which applies the deadline as it reads and fails with the
//! [`GatewayError`](crate::GatewayError) itself (`DeadlineExceeded`, `ConnectionClosed`…);
//! the deadline layer then leaves the response as it came. What follows is the deadline
//! layer's own bound, for a `reqwest::Response` that comes out of the layers as a service.
//!
//! A body bounded by the deadline (always) or the attempt timeout (with
//! [`include_body`](AttemptTimeoutLayer::include_body)) fails, when its timer fires mid-read,
//! with the `reqwest::Error` reqwest makes of a body error: `is_timeout()` is true, and its
//! `source()` is a [`GatewayError`](crate::GatewayError) of kind `DeadlineExceeded` (or
//! `TimedOut` for the attempt timeout). A connection failing mid-body (a reset, a close
//! before the announced length) ends the same way with the transport's cause, usually
//! `ConnectionClosed`. `GatewayError::from(err)`, or `?` in a function returning
//! `Result<_, GatewayError>`, gives that cause itself: one error type from `send()` to the
//! last byte. For an idle limit between chunks of a long download, set reqwest's own
//! `read_timeout` on the `reqwest::ClientBuilder` given to
//! [`ClientBuilder::reqwest_builder`](crate::ClientBuilder::reqwest_builder): it applies to
//! every read, head and body; a head that does not come in time is then a `TimedOut`
//! attempt, retried like any other, and a body that stalls longer ends with reqwest's timeout
//! error (its `source()` a `TimedOut` when the body passed through the deadline layer).
//!
//! # Order
//!
//! `DeadlineLayer` *outside* `RetryLayer` bounds the logical request (the usual choice, and the
//! client's default). *Inside* it, each attempt gets the whole deadline and its expiry is a
//! `DeadlineExceeded`, which the retry layer never retries: use [`AttemptTimeoutLayer`] for a
//! per-attempt bound instead. `AttemptTimeoutLayer` belongs inside `RetryLayer` (each attempt
//! gets its own timer); outside, it would bound all attempts together, like a deadline without
//! the last cause.

pub(crate) mod attempt;
pub(crate) mod body;
pub(crate) mod deadline;
mod propagate;
mod scope;

pub use attempt::{AttemptTimeout, AttemptTimeoutLayer};
pub use deadline::{Deadline, DeadlineLayer};
pub use propagate::DeadlineHeader;

/// The futures of the timeout services.
pub mod future {
    pub use super::attempt::ResponseFuture as AttemptFuture;
    pub use super::deadline::ResponseFuture as DeadlineFuture;
}

/// `Duration::ZERO` means "no limit" everywhere a timeout or deadline is given (the builders,
/// the layers, the per-request overrides): a limit that far away never fires.
pub(crate) fn zero_is_off(limit: std::time::Duration) -> std::time::Duration {
    if limit.is_zero() {
        std::time::Duration::MAX
    } else {
        limit
    }
}

/// Drops a timed-out inner future now, in place, so that the requests it had on the wire end
/// as timed out (their metrics say `timeout`) and their connections close at once.
pub(crate) fn drop_timed_out<F>(mut inner: std::pin::Pin<&mut Option<F>>) {
    #[cfg(feature = "metrics")]
    crate::metrics::ending("timeout", || inner.set(None));
    #[cfg(not(feature = "metrics"))]
    inner.set(None);
}
