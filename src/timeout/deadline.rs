use crate::error::{Details, ErrorKind, GatewayError, Origin};
use crate::request::{DeadlineAt, Request, Tracker, instant_after};
use http::Method;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;
use tokio::time::Instant;
use tokio::time::Sleep;
use tower_layer::Layer;
use tower_service::Service;

/// Wraps a service in [`Deadline`].
///
/// ```
/// use reqwest_resilience::timeout::DeadlineLayer;
/// use std::time::Duration;
///
/// let layer = DeadlineLayer::new(Duration::from_secs(10));
/// ```
#[derive(Debug, Clone, Copy)]
pub struct DeadlineLayer {
    deadline: Duration,
}

impl DeadlineLayer {
    /// Bounds the whole logical request by `deadline`, its body included (`Duration::ZERO`:
    /// no limit). See [what the deadline bounds](super#what-the-deadline-bounds).
    pub fn new(deadline: Duration) -> Self {
        DeadlineLayer {
            deadline: super::zero_is_off(deadline),
        }
    }

    /// The deadline (`Duration::MAX`: none).
    pub(crate) fn limit(&self) -> Duration {
        self.deadline
    }
}

impl<S> Layer<S> for DeadlineLayer {
    type Service = Deadline<S>;

    fn layer(&self, inner: S) -> Deadline<S> {
        Deadline {
            inner,
            deadline: self.deadline,
        }
    }
}

/// Bounds the logical request through the inner service; see [`DeadlineLayer`].
#[derive(Debug, Clone)]
pub struct Deadline<S> {
    inner: S,
    deadline: Duration,
}

impl<S> Deadline<S> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service, unwrapped.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S> Service<Request> for Deadline<S>
where
    S: Service<Request, Response = reqwest::Response, Error = GatewayError>,
{
    type Response = reqwest::Response;
    type Error = GatewayError;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let inner = &mut self.inner;
        start(self.deadline, request, |request| inner.call(request))
    }
}

/// The future of a deadline layer of `limit` over the call `call` starts.
pub(crate) fn start<F>(
    limit: Duration,
    mut request: Request,
    call: impl FnOnce(Request) -> F,
) -> ResponseFuture<F> {
    let race = Race::new(&mut request, limit);
    ResponseFuture {
        inner: Some(call(request)),
        race: Some(race),
    }
}

/// Sets the deadline of the logical request `request` under a deadline layer of `limit`
/// (`Duration::MAX`: none): the request's own deadline if it has one, else `limit`, from now;
/// an outer, earlier deadline of the same logical request stays in force. Returns the one set.
/// Also used by a client that holds a request back before its stack, so that the time held
/// counts in the deadline.
pub(crate) fn set_deadline(request: &mut Request, limit: Duration) -> DeadlineAt {
    let total = request.options().deadline.map_or(limit, super::zero_is_off);
    if let Some(earlier) = request.state().deadline
        && earlier.total <= total
    {
        // Set before now with no longer a limit: it falls first, and no clock is read (a
        // client sets its deadline layer's deadline before its stack, the layer again).
        return earlier;
    }
    let proposed = DeadlineAt {
        at: instant_after(total),
        total,
    };
    let deadline = match request.state().deadline {
        Some(earlier) if earlier.at <= proposed.at => earlier,
        _ => proposed,
    };
    request.state_mut().deadline = Some(deadline);
    deadline
}

pin_project_lite::pin_project! {
    /// The future of [`Deadline`]: the inner call, raced against the deadline.
    pub struct ResponseFuture<F> {
        // `None` once the deadline passed, or the call ended: dropped then, not when this
        // future is.
        #[pin]
        inner: Option<F>,
        // `None` once the call ended: the request's tracker goes with it, so that its end
        // gives the circuit its verdict even if the caller keeps this future.
        race: Option<Race>,
    }
}

impl<F> std::fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture")
            .field(
                "deadline",
                &self.race.as_ref().map(|race| race.deadline.total),
            )
            .finish_non_exhaustive()
    }
}

impl<F> Future for ResponseFuture<F>
where
    F: Future<Output = Result<reqwest::Response, GatewayError>>,
{
    type Output = Result<reqwest::Response, GatewayError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let Some(race) = this.race.as_mut() else {
            return Poll::Ready(Err(crate::boxed_future::polled_after_end("the deadline's")));
        };
        let outcome = ready!(race.poll(this.inner.as_mut(), cx));
        // The request is over: the call and the race let go of it now (a caller may keep
        // this future long after, as `select!` on `&mut` does).
        this.inner.set(None);
        *this.race = None;
        Poll::Ready(outcome)
    }
}

/// A logical request's call raced against its deadline: what a deadline layer's future does,
/// also done by a [`Client`](crate::Client)'s own request future around its stack (a client's
/// deadline is not a layer of its stack, so that its request's future is built in one piece).
pub(crate) struct Race {
    // Armed only when no attempt timer below is sure to fire first (the healthy path's
    // attempt runs under its own timer, cut to the deadline): see `poll`. Boxed, so that a
    // timer seldom made takes no room in the future (moved whole as the stack builds it).
    sleep: Option<Pin<Box<Sleep>>>,
    tracker: Arc<Tracker>,
    deadline: DeadlineAt,
    method: Method,
    // Whether the request may be sent again: a body error says so.
    may_resend: bool,
    // Whether the response's body is bounded here (not by the caller as it reads it).
    bound_body: bool,
}

impl Race {
    /// Sets `request`'s deadline under a deadline of `limit` (see [`set_deadline`]) and
    /// prepares the race against it.
    pub(crate) fn new(request: &mut Request, limit: Duration) -> Race {
        let deadline = set_deadline(request, limit);
        // The caller bounds the body when it reads it (a `Client`'s `Response`): the response
        // is not rebuilt around a bounded body here.
        let bound_body = request.state().body_bound_by_caller != Some(deadline.at);
        let may_resend = bound_body
            && crate::idempotency::may_resend(
                request.method(),
                request.headers(),
                request.options().idempotent,
            );
        Race::with(request, deadline, bound_body, may_resend)
    }

    /// The race of a [`Client`](crate::Client)'s request against `deadline`, which the client
    /// set on it, and whose body the client's `Response` bounds as it is read.
    pub(crate) fn bounded_by_caller(request: &mut Request, deadline: DeadlineAt) -> Race {
        Race::with(request, deadline, false, false)
    }

    fn with(
        request: &mut Request,
        deadline: DeadlineAt,
        bound_body: bool,
        may_resend: bool,
    ) -> Race {
        Race {
            sleep: None,
            tracker: request.tracker(),
            deadline,
            method: request.method().clone(),
            may_resend,
            bound_body,
        }
    }

    /// The attempts made so far for the request (at least one: as a response records them).
    pub(crate) fn attempts(&self) -> u32 {
        self.tracker.attempts().max(1)
    }

    /// Polls `inner` within the deadline; at the deadline `inner` is dropped and the request
    /// fails with the deadline's error.
    pub(crate) fn poll<F>(
        &mut self,
        mut inner: Pin<&mut Option<F>>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<reqwest::Response, GatewayError>>
    where
        F: Future<Output = Result<reqwest::Response, GatewayError>>,
    {
        let Some(call) = inner.as_mut().as_pin_mut() else {
            return Poll::Ready(Err(crate::boxed_future::polled_after_end("the deadline's")));
        };
        // Until this race's own timer is armed, the call is polled in a scope that tells
        // whether an attempt timer polled within it fires first.
        let mut armed_below = None;
        let outcome = match self.sleep {
            Some(_) => call.poll(cx),
            None => super::scope::polling(cx.waker(), &mut armed_below, || call.poll(cx)),
        };
        if !self.bound_body && matches!(outcome, Poll::Ready(Ok(_))) {
            // A response whose body the caller bounds: handed back as it came (what `settle`
            // does with it, without moving it).
            return outcome;
        }
        if let Poll::Ready(outcome) = outcome {
            return Poll::Ready(settle(
                outcome,
                &self.tracker,
                self.deadline,
                self.method.clone(),
                self.bound_body.then_some(self.may_resend),
            ));
        }
        let sleep = match &mut self.sleep {
            Some(sleep) => sleep,
            // An attempt timer polled just now (with this call's waker) fires no later than
            // the deadline: it wakes this future by then, which checks again.
            None if armed_below.is_some_and(|ends| ends <= self.deadline.at) => {
                return Poll::Pending;
            }
            None => self
                .sleep
                .insert(Box::pin(tokio::time::sleep_until(self.deadline.at))),
        };
        // Pending, it tells an outer deadline (a later one) it need not arm a timer.
        ready!(super::scope::poll_timer(sleep.as_mut(), cx));
        super::drop_timed_out(inner);
        Poll::Ready(Err(exceeded(
            &self.tracker,
            self.deadline,
            self.method.clone(),
        )))
    }
}

/// The outcome of a logical request that ended before its deadline's timer fired: a failure
/// at the deadline (an attempt timer cut to it) is the deadline's; a response has its body
/// bounded by the deadline too, since the body the caller reads is part of the request, unless
/// the caller bounds it as it reads it (`bound_body` is `None` then; else it says whether the
/// request may be sent again). Shared by the deadline layer and the reqwest-middleware adapter.
pub(crate) fn settle(
    outcome: Result<reqwest::Response, GatewayError>,
    tracker: &Arc<Tracker>,
    deadline: DeadlineAt,
    method: Method,
    bound_body: Option<bool>,
) -> Result<reqwest::Response, GatewayError> {
    match (outcome, bound_body) {
        (Err(err), _) if Instant::now() >= deadline.at => {
            tracker.record_failure(&err);
            Err(exceeded(tracker, deadline, method))
        }
        (Ok(response), None) => Ok(response),
        (Ok(response), Some(may_resend)) => Ok(super::body::bound(
            response,
            deadline.at,
            super::body::Limit::Deadline(deadline.total),
            super::body::Owner {
                method,
                may_resend,
                attempts: tracker.attempts(),
            },
        )),
        (Err(err), _) => Err(err),
    }
}

/// The deadline's error; its server is the last failure's (the deadline layer keeps no copy of
/// the URL, to stay allocation-free on the healthy path).
pub(crate) fn exceeded(
    tracker: &Tracker,
    deadline: DeadlineAt,
    method: reqwest::Method,
) -> GatewayError {
    let last = tracker.last_failure();
    // This logical request's count; a failure's own count only when no layer counted.
    let attempts = match tracker.attempts() {
        0 => last.as_ref().map_or(0, GatewayError::attempts),
        n => n,
    };
    let mut details = Details::new(
        ErrorKind::DeadlineExceeded,
        Origin::Local,
        format!(
            "deadline of {} exceeded",
            crate::error::Shown(deadline.total)
        )
        .into(),
    )
    .with_causes(last.into_iter().collect());
    if let Some(server) = details
        .causes()
        .last()
        .and_then(|c| c.details().server_box())
    {
        details.set_server_text(server);
    }
    details.set_method(method);
    details.set_attempts(attempts);
    tracing::warn!(
        deadline_ms = deadline.total.as_millis() as u64,
        attempts,
        "deadline exceeded"
    );
    GatewayError::from_details(details)
}
