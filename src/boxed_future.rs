//! The future of the services whose work is an `async` block (retry, fallback, transport).

use crate::error::GatewayError;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// The future of a [`Retry`](crate::retry::Retry), a [`Fallback`](crate::fallback::Fallback)
/// or the [`Transport`](crate::Transport): a response or a [`GatewayError`]. `Send`.
pub struct ResponseFuture {
    // `None` once it has ended: polled again, it says so instead of resuming a finished future.
    inner: Option<Boxed>,
    /// An error known before any work (a client's refusal of a host whose circuit is open):
    /// answered at the first poll, without boxing a future for it.
    refused: Option<GatewayError>,
}

type Boxed = Pin<Box<dyn Future<Output = Result<reqwest::Response, GatewayError>> + Send>>;

impl ResponseFuture {
    pub(crate) fn new(
        future: impl Future<Output = Result<reqwest::Response, GatewayError>> + Send + 'static,
    ) -> Self {
        ResponseFuture {
            inner: Some(Box::pin(future)),
            refused: None,
        }
    }

    /// A future that fails with `err` at its first poll.
    pub(crate) fn failed(err: GatewayError) -> Self {
        ResponseFuture {
            inner: None,
            refused: Some(err),
        }
    }
}

impl Future for ResponseFuture {
    type Output = Result<reqwest::Response, GatewayError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Some(inner) = self.inner.as_mut() else {
            let err = self.refused.take();
            return Poll::Ready(Err(err.unwrap_or_else(|| polled_after_end("the"))));
        };
        let outcome = std::task::ready!(inner.as_mut().poll(cx));
        self.inner = None;
        Poll::Ready(outcome)
    }
}

impl std::fmt::Debug for ResponseFuture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

/// The error a future of this crate answers with when polled again after it ended (instead of
/// panicking, as a finished `async` block would): `which` names it ("the retry", "the").
pub(crate) fn polled_after_end(which: &str) -> GatewayError {
    GatewayError::new(
        crate::error::ErrorKind::Other,
        format!("{which} future was polled after it ended"),
    )
}
