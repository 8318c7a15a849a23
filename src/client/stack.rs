//! A client's stack, called by reference.

use crate::boxed_future::ResponseFuture;
use crate::circuit::FastRefusal;
use crate::error::GatewayError;
use crate::request::Request;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use tower::ServiceExt;
use tower_service::Service;

/// The service stack a [`Client`](super::Client) sends through. Cloning it (with the client,
/// for every request) only counts a reference; each request clones the concrete services (more
/// reference counts) and boxes the whole request's future once.
pub(crate) type Stack = Arc<dyn Sender>;

/// Sends a request through a stack held by reference.
pub(crate) trait Sender: Send + Sync {
    fn send(&self, request: Request) -> ResponseFuture;
}

/// The concrete stack behind a [`Stack`], and the circuit's check made before it (a client
/// whose circuit has no fallback layer beside it: see [`FastRefusal`]).
pub(crate) struct ServiceSender<S> {
    pub(crate) service: S,
    pub(crate) refusal: Option<FastRefusal>,
}

impl<S> Sender for ServiceSender<S>
where
    S: Service<Request, Response = reqwest::Response, Error = GatewayError>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
{
    fn send(&self, request: Request) -> ResponseFuture {
        if let Some(err) = self.refusal.as_ref().and_then(|r| r.check(&request)) {
            return ResponseFuture::failed(crate::retry::refused_before_loop(&request, err));
        }
        let mut service = self.service.clone();
        // Asked once without a waker: the crate's stacks are always ready, so the call starts
        // at once; a stack that is not waits for readiness inside the future.
        match service.poll_ready(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(Ok(())) => ResponseFuture::new(service.call(request)),
            Poll::Ready(Err(err)) => ResponseFuture::new(std::future::ready(Err(err))),
            Poll::Pending => ResponseFuture::new(service.oneshot(request)),
        }
    }
}

/// A [`Stack`] as a `tower::Service`.
#[derive(Clone)]
pub(crate) struct StackService(pub(crate) Stack);

impl Service<Request> for StackService {
    type Response = reqwest::Response;
    type Error = GatewayError;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), GatewayError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> ResponseFuture {
        self.0.send(request)
    }
}
