//! The future of a request sent through a [`Client`](super::Client).

use super::Stack;
use crate::boxed_future::ResponseFuture;
use crate::error::GatewayError;
use crate::request::Request;
use crate::response::Response;
use crate::timeout::body::{BodyLimit, Limit, Owner};
use reqwest::Method;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

/// A request on its way through a [`Client`](super::Client)'s stack: a future of its
/// [`Response`], or the [`GatewayError`] it ended with. `Send`.
///
/// Like an `async fn`, it does nothing until first polled: the request enters the stack then
/// (its deadline starts, the circuit is asked, the first attempt is sent), inside the span
/// current at that poll. Dropped before that, it leaves no trace.
#[must_use = "a request's future does nothing unless polled"]
pub struct Pending {
    state: State,
}

// The unsent request is kept inline: boxing it would cost an allocation per request, where
// its size costs a copy (the `async fn` this future replaces held the same request).
#[allow(clippy::large_enum_variant)]
enum State {
    /// Not polled yet: the request and the stack it goes through.
    Unsent { stack: Stack, request: Request },
    Sent {
        future: ResponseFuture,
        /// When the body must have been read (the deadline), for the response's body.
        limit: Option<BodyLimit>,
        method: Method,
        may_resend: bool,
    },
    /// Failed before it could be sent (a request that does not build); `None` once answered.
    Failed(Option<GatewayError>),
}

impl Pending {
    pub(super) fn new(stack: Stack, request: Request) -> Pending {
        Pending {
            state: State::Unsent { stack, request },
        }
    }

    pub(super) fn failed(err: GatewayError) -> Pending {
        Pending {
            state: State::Failed(Some(err)),
        }
    }
}

/// Sends `request` through `stack`. Its response's body is bounded by the deadline as the
/// caller reads it (see [`Response`]), so the stack's deadline layer hands the response back
/// as it came instead of rebuilding it around a bounded body.
fn dispatch(stack: &Stack, mut request: Request) -> State {
    let limit = stack.deadline_limit().and_then(|layer_limit| {
        // The deadline the stack's deadline layer will settle on (it keeps an earlier one).
        let deadline = crate::timeout::deadline::set_deadline(&mut request, layer_limit);
        // Marked even when there is none: that layer has no body to bound then either.
        request.state_mut().body_bound_by_caller = Some(deadline.at);
        (deadline.total != std::time::Duration::MAX)
            .then(|| BodyLimit::new(deadline.at, Limit::Deadline(deadline.total)))
    });
    let method = request.method().clone();
    let may_resend = crate::idempotency::may_resend(
        request.method(),
        request.headers(),
        request.options().idempotent,
    );
    State::Sent {
        future: stack.send(request),
        limit,
        method,
        may_resend,
    }
}

impl Future for Pending {
    type Output = Result<Response, GatewayError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut self.state;
        if matches!(this, State::Unsent { .. }) {
            if let State::Unsent { stack, request } = std::mem::replace(this, State::Failed(None)) {
                *this = dispatch(&stack, request);
            }
        }
        match this {
            State::Sent {
                future,
                limit,
                method,
                may_resend,
            } => {
                let outcome = ready!(Pin::new(future).poll(cx));
                let method = std::mem::replace(method, Method::GET);
                let (limit, may_resend) = (limit.take(), *may_resend);
                *this = State::Failed(None);
                let response = outcome?;
                let owner = Owner {
                    method,
                    may_resend,
                    attempts: crate::request::attempts(&response),
                };
                Poll::Ready(Ok(Response::new(response, limit, owner)))
            }
            State::Failed(err) => Poll::Ready(Err(err
                .take()
                .unwrap_or_else(|| crate::boxed_future::polled_after_end("the request's")))),
            State::Unsent { .. } => {
                Poll::Ready(Err(crate::boxed_future::polled_after_end("the request's")))
            }
        }
    }
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending").finish_non_exhaustive()
    }
}
