//! A client's stack, called by reference.

use crate::boxed_future::ResponseFuture;
use crate::circuit::{FastRefusal, Gate, Held};
use crate::error::GatewayError;
use crate::request::{DeadlineAt, Request};
use crate::response::Response;
use crate::timeout::body::{BodyLimit, Limit, Owner};
use crate::timeout::deadline::Race;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tower::ServiceExt;
use tower_layer::Layer as _;
use tower_service::Service;

/// The service stack a [`Client`](super::Client) sends through. Cloning it (with the client,
/// for every request) only counts a reference; each request's retry loop clones the concrete
/// services below it (more reference counts), and the whole request's future is boxed once.
pub(crate) type Stack = Arc<dyn Sender>;

/// Sends a request through a stack held by reference.
pub(crate) trait Sender: Send + Sync {
    fn send(&self, request: Request) -> ResponseFuture;

    /// `request` on its way through this stack as a [`Client`](super::Client)'s request, its
    /// whole future allocated now, once, and started in place at its first poll (nothing runs
    /// before: see [`Pending`](super::Pending)).
    fn prepare(self: Arc<Self>, request: Request) -> Prepared;
}

/// The services a client's stack is made of: this crate's request in, reqwest's response or a
/// [`GatewayError`] out, cloned for each request, its future sent across tasks.
pub(crate) trait StackLayers:
    Service<Request, Response = reqwest::Response, Error = GatewayError, Future: Send + 'static>
    + Clone
    + Send
    + Sync
    + 'static
{
}

impl<S> StackLayers for S where
    S: Service<Request, Response = reqwest::Response, Error = GatewayError, Future: Send + 'static>
        + Clone
        + Send
        + Sync
        + 'static
{
}

/// The top of a client's stack, called from a shared reference: the retry loop keeps its own
/// clone of the services below it. The stack is therefore neither cloned for each request nor
/// asked for readiness (the retry layer is always ready; each attempt waits for the services
/// below it). The client's deadline is not a layer of the stack: its request future races the
/// stack's future against it (see [`ServiceSender::deadline`]).
pub(crate) trait CallShared: StackLayers {
    fn call_shared(&self, request: Request) -> Self::Future;
}

impl<S> CallShared for crate::retry::Retry<S>
where
    crate::retry::Retry<S>: StackLayers<Future = crate::retry::ResponseFuture<S, S::Future>>,
    S: Service<Request, Response = reqwest::Response, Error = GatewayError>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    fn call_shared(&self, request: Request) -> Self::Future {
        // As `Retry::call` does, without the `&mut`: the loop keeps its own clone of the
        // layers below.
        crate::retry::ResponseFuture::retrying(
            self.get_ref().clone(),
            self.policy().clone(),
            request,
            self.names_servers(),
        )
    }
}

/// A request prepared by [`Sender::prepare`].
pub(crate) type Prepared =
    Pin<Box<dyn Future<Output = Result<Response, GatewayError>> + Send + 'static>>;

impl<S: CallShared> ServiceSender<S> {
    /// `request`, let through by the client's circuit check; or the request's future when it
    /// is not: refused, or held back from a host that looks down.
    fn let_through(&self, request: Request) -> Result<Request, ResponseFuture> {
        match self.stopped(&request) {
            None => Ok(request),
            Some(stop) => Err(self.stop(stop, request)),
        }
    }

    /// What the client's circuit check says of `request`, when it does not let it through.
    fn stopped(&self, request: &Request) -> Option<Gate> {
        match self.refusal.as_ref()?.check(request) {
            Gate::Go => None,
            stop => Some(stop),
        }
    }

    /// The future of a request `stop` refuses or holds back.
    fn stop(&self, stop: Gate, request: Request) -> ResponseFuture {
        match stop {
            Gate::Refuse(err) => {
                ResponseFuture::failed(crate::retry::refused_before_loop(&request, err))
            }
            Gate::Hold(held) => {
                ResponseFuture::new(hold(held, self.service.clone(), request, self.deadline))
            }
            Gate::Go => ResponseFuture::new(self.service.call_shared(request)),
        }
    }
}

pin_project_lite::pin_project! {
    /// A [`Client`](super::Client)'s request through a [`ServiceSender`]: allocated once when
    /// the request is sent, started in place at its first poll (the stack's future is built
    /// into this allocation instead of being moved into one of its own), its response handed
    /// out as the client's [`Response`], its body bounded by the deadline as it is read.
    struct LazySend<S, F> {
        #[pin]
        state: Lazy<S, F>,
        // The client's deadline, raced against the stack's future (the deadline layer's work,
        // done here so that the request's future is built in one piece).
        race: Option<Race>,
        // When the body must have been read (the deadline), for the response's body.
        limit: Option<BodyLimit>,
        method: http::Method,
        may_resend: bool,
    }
}

pin_project_lite::pin_project! {
    #[project = LazyProj]
    enum Lazy<S, F> {
        Unsent { sender: Option<Arc<ServiceSender<S>>>, request: Option<Request> },
        // `None` once the deadline passed (dropped then).
        Called { #[pin] future: Option<F> },
        Boxed { future: ResponseFuture },
        Done { ended: () },
    }
}

impl<S: CallShared> Future for LazySend<S, S::Future> {
    type Output = Result<Response, GatewayError>;

    fn poll(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let outcome = loop {
            match this.state.as_mut().project() {
                LazyProj::Unsent { sender, request } => {
                    // The request is worked on where it lies, and moved once, into the stack.
                    let (Some(sender), Some(pending)) = (sender.take(), request.as_mut()) else {
                        this.state.set(Lazy::Done { ended: () });
                        continue;
                    };
                    let deadline = bound_by_caller(&sender, pending);
                    *this.limit = deadline.and_then(body_limit);
                    *this.method = pending.method().clone();
                    *this.may_resend = crate::idempotency::may_resend(
                        pending.method(),
                        pending.headers(),
                        pending.options().idempotent,
                    );
                    if let Some(stop) = sender.stopped(pending) {
                        let Some(request) = request.take() else {
                            continue;
                        };
                        let future = sender.stop(stop, request);
                        this.state.set(Lazy::Boxed { future });
                        continue;
                    }
                    *this.race = deadline.map(|at| Race::bounded_by_caller(pending, at));
                    let Some(request) = request.take() else {
                        continue;
                    };
                    // The stack's future built straight into this allocation.
                    this.state.set(Lazy::Called {
                        future: Some(sender.service.call_shared(request)),
                    });
                }
                LazyProj::Called { mut future } => {
                    break std::task::ready!(match this.race.as_mut() {
                        Some(race) => race.poll(future, cx),
                        None => match future.as_mut().as_pin_mut() {
                            Some(future) => future.poll(cx),
                            None => Poll::Ready(Err(crate::boxed_future::polled_after_end(
                                "the request's",
                            ))),
                        },
                    });
                }
                LazyProj::Boxed { future } => break std::task::ready!(Pin::new(future).poll(cx)),
                LazyProj::Done { .. } => {
                    return Poll::Ready(Err(crate::boxed_future::polled_after_end(
                        "the request's",
                    )));
                }
            }
        };
        // The request is over: its deadline's race goes with the stack's future, and with it
        // the tracker, whose end gives the circuit its verdict (the caller may keep this
        // future long after, as `select!` on `&mut` does).
        // The attempts, from the request's tracker when the race holds it: the count the
        // retry layer recorded on the response, without looking it up there.
        let attempts = this.race.take().map(|race| race.attempts());
        this.state.set(Lazy::Done { ended: () });
        let response = outcome?;
        let owner = Owner {
            method: std::mem::replace(this.method, http::Method::GET),
            may_resend: *this.may_resend,
            attempts: attempts.unwrap_or_else(|| crate::request::attempts(&response)),
        };
        Poll::Ready(Ok(Response::new(response, this.limit.take(), owner)))
    }
}

/// Sets the client's deadline (a request's own earlier one is kept) and marks the request's
/// body as bounded by its reader: the [`Response`] bounds it as the caller reads it, so that
/// the deadline's race (or a deadline layer, for a request held back first) hands the response
/// back as it came instead of rebuilding it around a bounded body. Returns the deadline set.
fn bound_by_caller<S>(sender: &ServiceSender<S>, request: &mut Request) -> Option<DeadlineAt> {
    sender.deadline.map(|limit| {
        let deadline = crate::timeout::deadline::set_deadline(request, limit);
        // Marked even when there is none: the race has no body to bound then either.
        request.state_mut().body_bound_by_caller = Some(deadline.at);
        deadline
    })
}

/// The bound on the body of a response to a request with `deadline`, if it has one.
fn body_limit(deadline: DeadlineAt) -> Option<BodyLimit> {
    (deadline.total != Duration::MAX)
        .then(|| BodyLimit::new(deadline.at, Limit::Deadline(deadline.total)))
}

/// The concrete stack behind a [`Stack`], and the circuit's check made before it (a client
/// whose circuit has no fallback layer beside it: see [`FastRefusal`]).
pub(crate) struct ServiceSender<S> {
    pub(crate) service: S,
    pub(crate) refusal: Option<FastRefusal>,
    /// The client's deadline (`Duration::MAX`: none), if it has one: not a layer of
    /// `service` but raced against it, as a deadline layer above it would (a request held back
    /// from a host that looks down is held within it too).
    pub(crate) deadline: Option<Duration>,
}

impl<S: CallShared> Sender for ServiceSender<S> {
    fn send(&self, request: Request) -> ResponseFuture {
        match self.let_through(request) {
            Ok(request) => match self.deadline {
                Some(limit) => ResponseFuture::new(crate::timeout::deadline::start(
                    limit,
                    request,
                    |request| self.service.call_shared(request),
                )),
                None => ResponseFuture::new(self.service.call_shared(request)),
            },
            Err(future) => future,
        }
    }

    fn prepare(self: Arc<Self>, request: Request) -> Prepared {
        Box::pin(LazySend {
            state: Lazy::Unsent {
                sender: Some(self),
                request: Some(request),
            },
            race: None,
            limit: None,
            method: http::Method::GET,
            may_resend: false,
        })
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
/// held counts in the deadline: the client's deadline is set here, before the wait (an outer,
/// earlier deadline of the request stays in force), and raced by a deadline layer around the
/// stack after it. A client without a deadline sets none.
async fn hold<S>(
    held: Held,
    service: S,
    mut request: Request,
    deadline: Option<Duration>,
) -> Result<reqwest::Response, GatewayError>
where
    S: Service<Request, Response = reqwest::Response, Error = GatewayError>,
{
    if let Some(limit) = deadline {
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
    match deadline {
        // The client's deadline, as its request future would race it.
        Some(limit) => {
            crate::timeout::DeadlineLayer::new(limit)
                .layer(service)
                .oneshot(request)
                .await
        }
        None => service.oneshot(request).await,
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
