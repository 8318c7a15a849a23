use super::body;
use crate::error::{Details, ErrorKind, GatewayError, Origin};
use crate::request::{Request, Tracker, instant_after};
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

/// Wraps a service in [`AttemptTimeout`].
///
/// ```
/// use reqwest_resilience::timeout::AttemptTimeoutLayer;
/// use std::time::Duration;
///
/// let layer = AttemptTimeoutLayer::new(Duration::from_secs(5)).include_body(true);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct AttemptTimeoutLayer {
    timeout: Duration,
    include_body: bool,
}

impl AttemptTimeoutLayer {
    /// Bounds each attempt's connect and response head by `timeout` (`Duration::ZERO`: no
    /// limit).
    pub fn new(timeout: Duration) -> Self {
        AttemptTimeoutLayer {
            timeout: super::zero_is_off(timeout),
            include_body: false,
        }
    }

    /// Also bounds reading the response body by the same timer: a body still streaming when
    /// it fires ends with an error (a `reqwest` body error whose source is a `TimedOut`).
    pub fn include_body(mut self, yes: bool) -> Self {
        self.include_body = yes;
        self
    }
}

impl<S> Layer<S> for AttemptTimeoutLayer {
    type Service = AttemptTimeout<S>;

    fn layer(&self, inner: S) -> AttemptTimeout<S> {
        AttemptTimeout {
            inner,
            config: *self,
        }
    }
}

/// Bounds each attempt through the inner service; see [`AttemptTimeoutLayer`].
#[derive(Debug, Clone)]
pub struct AttemptTimeout<S> {
    inner: S,
    config: AttemptTimeoutLayer,
}

impl<S> AttemptTimeout<S> {
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

impl<S> Service<Request> for AttemptTimeout<S>
where
    S: Service<Request, Response = reqwest::Response, Error = GatewayError>,
{
    type Response = reqwest::Response;
    type Error = GatewayError;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    #[inline]
    fn call(&mut self, mut request: Request) -> Self::Future {
        let started = Instant::now();
        let configured = request
            .options()
            .attempt_timeout
            .map_or(self.config.timeout, super::zero_is_off);
        // Cut to the time the deadline leaves: a timer that fires then is the deadline's.
        let left = request
            .state()
            .deadline
            .map(|d| d.at.saturating_duration_since(started));
        let cut = left.is_some_and(|left| left < configured);
        let timeout = left.map_or(configured, |left| left.min(configured));
        let tracker = request.tracker();
        let method = request.method().clone();
        // The URL for a timeout's error, unless the client's retry loop above names it.
        let url = (!request.state().server_named_above).then(|| request.url().clone());
        // Only a body this timer bounds asks whether the request may be sent again.
        let may_resend = self.config.include_body
            && crate::idempotency::may_resend(
                request.method(),
                request.headers(),
                request.options().idempotent,
            );
        // Below, a deadline header tells the server this attempt's own end, if sooner.
        request.state_mut().attempt_ends = Some(ends(started, timeout));
        ResponseFuture {
            may_resend,
            inner: Some(self.inner.call(request)),
            sleep: tokio::time::sleep_until(ends(started, timeout)),
            timeout,
            cut,
            heads: tracker.heads(),
            redirects: tracker.redirects(),
            tracker,
            graced: false,
            include_body: self.config.include_body,
            started,
            method,
            url,
        }
    }
}

pin_project_lite::pin_project! {
    /// The future of [`AttemptTimeout`]: the inner call, raced against the attempt's timer.
    pub struct ResponseFuture<F> {
        // `None` once the timer fired: dropped then, not when this future is.
        #[pin]
        inner: Option<F>,
        #[pin]
        sleep: Sleep,
        timeout: Duration,
        // Whether the deadline cut the timeout short.
        cut: bool,
        // The response heads and redirects the request's tracker had seen when the attempt
        // started.
        heads: u32,
        redirects: u32,
        tracker: Arc<Tracker>,
        // Whether the timer was extended once for a body peek in progress.
        graced: bool,
        include_body: bool,
        started: Instant,
        method: Method,
        // `None` when the retry loop above names the server of a timeout's error.
        url: Option<reqwest::Url>,
        // Whether the request may be sent again: a body error says so.
        may_resend: bool,
    }

    impl<F> PinnedDrop for ResponseFuture<F> {
        fn drop(_this: Pin<&mut Self>) {
            // Its timer goes with it: a deadline layer polling now may not count on it.
            super::scope::timer_dropped();
        }
    }
}

impl<F> std::fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("timeout", &self.timeout)
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
        let timeout = *this.timeout;
        let Some(inner) = this.inner.as_mut().as_pin_mut() else {
            return Poll::Ready(Err(crate::boxed_future::polled_after_end(
                "the attempt timeout's",
            )));
        };
        let polled = inner.poll(cx);
        if polled.is_ready() {
            if !*this.include_body {
                // As it came (not moved out and back).
                return polled;
            }
            return polled.map_ok(|response| {
                body::bound(
                    response,
                    ends(*this.started, timeout),
                    body::Limit::Attempt(timeout),
                    body::Owner {
                        method: this.method.clone(),
                        may_resend: *this.may_resend,
                        attempts: this.tracker.attempts(),
                    },
                )
            });
        }
        // Pending, it tells a deadline layer polling this attempt now when it fires: that
        // layer need not arm a timer that would fire later (see `timeout::scope`).
        ready!(super::scope::poll_timer(this.sleep.as_mut(), cx));
        if !*this.graced && this.tracker.heads() != *this.heads {
            // A response head arrived in time and the transport is reading the start of its
            // body (for at most `BODY_PEEK_WAIT`): that read's outcome is this attempt's, so
            // the timer waits once more, that long.
            *this.graced = true;
            this.sleep
                .as_mut()
                .reset(tokio::time::Instant::now() + PEEK_GRACE);
            ready!(super::scope::poll_timer(this.sleep.as_mut(), cx));
        }
        super::drop_timed_out(this.inner);
        let mut err = timed_out(timeout, this.method.clone(), this.url.as_ref());
        if *this.cut {
            err.details_mut().set_cut_by_deadline();
        }
        if this.tracker.redirects() != *this.redirects {
            // The original request was answered with a redirect; its target timed out.
            err.details_mut()
                .set_redirected(this.tracker.redirect_target());
        }
        Poll::Ready(Err(err))
    }
}

/// How much longer an attempt whose response head arrived in time waits for the start of a
/// 5xx's body being read (`BODY_PEEK_WAIT`, and a margin).
pub(crate) const PEEK_GRACE: Duration =
    Duration::from_millis(crate::BODY_PEEK_WAIT.as_millis() as u64 + 20);

/// The error of an attempt that had no response within `timeout`.
pub(crate) fn timed_out(
    timeout: Duration,
    method: Method,
    url: Option<&reqwest::Url>,
) -> GatewayError {
    let mut details = Details::new(
        ErrorKind::TimedOut,
        Origin::Local,
        format!(
            "no response within the attempt timeout of {}",
            crate::error::Shown(timeout)
        )
        .into(),
    );
    details.set_method(method);
    match url {
        Some(url) => details.set_server(url),
        None => details.leave_server_above(),
    }
    details.set_attempts(1);
    GatewayError::from_details(details)
}

fn ends(started: Instant, timeout: Duration) -> Instant {
    started
        .checked_add(timeout)
        .unwrap_or_else(|| instant_after(timeout))
}
