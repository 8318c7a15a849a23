//! The future of the services whose work is an `async` block (retry, fallback, transport).

use crate::error::GatewayError;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// The future of a [`Retry`](crate::retry::Retry), a [`Fallback`](crate::fallback::Fallback)
/// or the [`Transport`](crate::Transport): a response or a [`GatewayError`]. `Send`.
pub struct ResponseFuture {
    inner: Pin<Box<dyn Future<Output = Result<reqwest::Response, GatewayError>> + Send>>,
}

impl ResponseFuture {
    pub(crate) fn new(
        future: impl Future<Output = Result<reqwest::Response, GatewayError>> + Send + 'static,
    ) -> Self {
        ResponseFuture {
            inner: Box::pin(future),
        }
    }
}

impl Future for ResponseFuture {
    type Output = Result<reqwest::Response, GatewayError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.inner.as_mut().poll(cx)
    }
}

impl std::fmt::Debug for ResponseFuture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
