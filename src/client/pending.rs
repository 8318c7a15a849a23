//! The future of a request sent through a [`Client`](super::Client).

use crate::boxed_future::ResponseFuture;
use crate::error::GatewayError;
use crate::response::Response;
use crate::timeout::body::{Limit, Owner};
use reqwest::Method;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use tokio::time::Instant;

/// A request on its way through a [`Client`](super::Client)'s stack: a future of its
/// [`Response`], or the [`GatewayError`] it ended with. `Send`.
///
/// Like reqwest's, the request is handed to the stack when `send` is called, and its deadline
/// runs from then; awaiting it drives the attempts.
#[must_use = "a request's future does nothing unless polled"]
pub struct Pending {
    state: State,
}

enum State {
    Sent {
        future: ResponseFuture,
        /// When the body must have been read (the deadline), for the response's body.
        ends: Option<(Instant, Limit)>,
        method: Method,
        may_resend: bool,
    },
    /// Failed before it could be sent (a request that does not build).
    Failed(Option<GatewayError>),
}

impl Pending {
    pub(super) fn sent(
        future: ResponseFuture,
        ends: Option<(Instant, Limit)>,
        method: Method,
        may_resend: bool,
    ) -> Pending {
        Pending {
            state: State::Sent {
                future,
                ends,
                method,
                may_resend,
            },
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

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.state {
            State::Sent {
                future,
                ends,
                method,
                may_resend,
            } => {
                let response = ready!(Pin::new(future).poll(cx))?;
                let owner = Owner {
                    method: std::mem::replace(method, Method::GET),
                    may_resend: *may_resend,
                    attempts: crate::request::attempts(&response),
                };
                Poll::Ready(Ok(Response::new(response, *ends, owner)))
            }
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
