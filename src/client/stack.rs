//! A client's stack, called by reference.

use crate::boxed_future::ResponseFuture;
use crate::circuit::{FastRefusal, Gate, Held};
use crate::clock::{DeadlineAt, instant_after};
use crate::error::GatewayError;
use crate::request::Request;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;
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
    /// The client's deadline (its deadline layer's), which bounds a request held back from a
    /// host that looks down.
    pub(crate) deadline: Option<Duration>,
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
        match self.refusal.as_ref().map(|r| r.check(&request)) {
            None | Some(Gate::Go) => {}
            Some(Gate::Refuse(err)) => {
                return ResponseFuture::failed(crate::retry::refused_before_loop(&request, err));
            }
            Some(Gate::Hold(held)) => {
                return ResponseFuture::new(hold(
                    held,
                    self.service.clone(),
                    request,
                    self.deadline,
                ));
            }
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

/// A request held back from a host that looks down (see [`FastRefusal`]), then sent through
/// the stack, or refused, or ended at its deadline; the deadline it is held under is the one
/// the stack keeps (an outer, earlier deadline of the request stays in force).
async fn hold<S>(
    held: Held,
    service: S,
    mut request: Request,
    client_deadline: Option<Duration>,
) -> Result<reqwest::Response, GatewayError>
where
    S: Service<Request, Response = reqwest::Response, Error = GatewayError>,
{
    let total = match request.options().deadline {
        Some(own) => Some(crate::timeout::zero_is_off(own)),
        None => client_deadline,
    };
    if let Some(total) = total {
        let proposed = DeadlineAt {
            at: instant_after(total),
            total,
        };
        if request.state().deadline.is_none_or(|d| proposed.at < d.at) {
            request.state_mut().deadline = Some(proposed);
        }
    }
    let method = request.method().clone();
    let verdict = match request.state().deadline {
        Some(deadline) => {
            match tokio::time::timeout_at(deadline.at, held.wait(method.clone())).await {
                Ok(verdict) => verdict,
                Err(_elapsed) => {
                    let tracker = request.tracker();
                    let exceeded = crate::timeout::deadline::exceeded(&tracker, deadline, method);
                    return Err(crate::retry::refused_before_loop(&request, exceeded));
                }
            }
        }
        None => held.wait(method).await,
    };
    match verdict {
        None => service.oneshot(request).await,
        Some(refusal) => Err(crate::retry::refused_before_loop(&request, refusal)),
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
