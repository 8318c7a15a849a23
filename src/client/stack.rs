//! A client's stack, called by reference.

use crate::boxed_future::ResponseFuture;
use crate::circuit::{FastRefusal, Gate, Held};
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

    /// The stack's deadline layer's limit (`Duration::MAX`: none), if it has one.
    fn deadline_limit(&self) -> Option<Duration>;
}

/// The concrete stack behind a [`Stack`], and the circuit's check made before it (a client
/// whose circuit has no fallback layer beside it: see [`FastRefusal`]).
pub(crate) struct ServiceSender<S> {
    pub(crate) service: S,
    pub(crate) refusal: Option<FastRefusal>,
    /// The client's deadline layer's limit (`Duration::MAX`: none), if it has one: a request
    /// held back from a host that looks down is held within it.
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

    fn deadline_limit(&self) -> Option<Duration> {
        self.deadline
    }
}

/// The longest a request is held back from a host that looks down (see [`FastRefusal`]):
/// a hold only delays a request, so it is short. A request with a deadline is held at most
/// half of what its deadline leaves, whichever is less.
pub(crate) const MAX_HOLD: Duration = Duration::from_secs(1);

/// A request held back from a host that looks down (see [`FastRefusal`]), then sent through
/// the stack, or refused because the host's circuit opened meanwhile.
///
/// A hold never ends a request by itself: when its bound passes ([`MAX_HOLD`], or half of what
/// the request's deadline leaves), the request is sent as if it had not been held. The time
/// held counts in the deadline: the deadline the stack's deadline layer would set is set here,
/// before the wait (an outer, earlier deadline of the request stays in force). A client
/// without a deadline layer sets none.
async fn hold<S>(
    held: Held,
    service: S,
    mut request: Request,
    deadline_layer: Option<Duration>,
) -> Result<reqwest::Response, GatewayError>
where
    S: Service<Request, Response = reqwest::Response, Error = GatewayError>,
{
    if let Some(limit) = deadline_layer {
        crate::timeout::deadline::set_deadline(&mut request, limit);
    }
    let bound = match request.state().deadline {
        Some(deadline) => MAX_HOLD.min(
            deadline
                .at
                .saturating_duration_since(tokio::time::Instant::now())
                / 2,
        ),
        None => MAX_HOLD,
    };
    tracing::debug!(
        host = held.host(),
        failing = held.failing(),
        bound_ms = bound.as_millis() as u64,
        "request held back: the host answered nothing and its failing requests' verdict is coming"
    );
    match tokio::time::timeout(bound, held.wait(request.method())).await {
        Ok(Some(refusal)) => {
            tracing::debug!(
                host = held.host(),
                "held request refused: the host's circuit opened"
            );
            return Err(crate::retry::refused_before_loop(&request, refusal));
        }
        Ok(None) => {
            tracing::debug!(
                host = held.host(),
                "held request sent: the host answered, or its failing requests ended"
            );
        }
        Err(_elapsed) => {
            tracing::debug!(
                host = held.host(),
                "held request sent: its hold's bound passed"
            );
        }
    }
    service.oneshot(request).await
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
