//! Bounding time: a timeout per attempt and a deadline for the whole logical request.
//!
//! - [`AttemptTimeoutLayer`] bounds one attempt (connect and response head, and optionally the
//!   body) and turns expiry into [`GatewayError::CgiTimeout`](crate::GatewayError::CgiTimeout)
//!   with a local origin.
//! - [`DeadlineLayer`] bounds everything inside it — every attempt, backoff pause and failover —
//!   and turns expiry into [`GatewayError::DeadlineExceeded`](crate::GatewayError::DeadlineExceeded)
//!   carrying the last failure. It tells the layers inside it the time left: the retry layer
//!   never starts a pause that would end past it, and the attempt timeout is cut to it.
//!
//! # Order
//!
//! `DeadlineLayer` *outside* `RetryLayer` bounds the logical request (the usual choice, and the
//! client's default). *Inside* it, each attempt gets the whole deadline and its expiry is a
//! `DeadlineExceeded`, which the retry layer never retries: use [`AttemptTimeoutLayer`] for a
//! per-attempt bound instead. `AttemptTimeoutLayer` belongs inside `RetryLayer` (each attempt
//! gets its own timer); outside, it would bound all attempts together, like a deadline without
//! the last cause.

mod attempt;
mod body;
mod deadline;

pub use attempt::{AttemptFuture, AttemptTimeout, AttemptTimeoutLayer};
pub use deadline::{Deadline, DeadlineFuture, DeadlineLayer};

/// A per-request attempt timeout, set by the request builder.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AttemptTimeoutOverride(pub(crate) std::time::Duration);

/// A per-request deadline, set by the request builder.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DeadlineOverride(pub(crate) std::time::Duration);
