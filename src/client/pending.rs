//! The future of a request sent through a [`Client`](super::Client).

use super::Stack;
use super::stack::Prepared;
use crate::error::GatewayError;
use crate::request::Request;
use crate::response::Response;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

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

enum State {
    /// The request and its stack's whole future, in one allocation made when it was sent
    /// (small to move: the request's future is built in place there at the first poll).
    Prepared(Prepared),
    /// Failed before it could be sent (a request that does not build); `None` once answered.
    Failed(Option<GatewayError>),
}

impl Pending {
    #[inline]
    pub(super) fn new(stack: Stack, request: Request) -> Pending {
        Pending {
            state: State::Prepared(stack.prepare(request)),
        }
    }

    pub(super) fn failed(err: GatewayError) -> Pending {
        Pending {
            state: State::Failed(Some(err)),
        }
    }
}

impl Future for Pending {
    type Output = Result<Response, GatewayError>;

    #[inline]
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.state {
            State::Prepared(future) => future.as_mut().poll(cx),
            State::Failed(err) => Poll::Ready(Err(err
                .take()
                .unwrap_or_else(|| crate::boxed_future::polled_after_end("the request's")))),
        }
    }
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending").finish_non_exhaustive()
    }
}
