use super::{AttemptTimeoutOverride, body};
use crate::context::{RequestContext, instant_after};
use crate::error::{Details, ErrorKind, GatewayError, Origin};
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
    /// it fires ends with an error (a `reqwest` body error whose source is a `CgiTimeout`).
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

    /// The inner service, unwrapped.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S> Service<reqwest::Request> for AttemptTimeout<S>
where
    S: Service<reqwest::Request, Response = reqwest::Response, Error = GatewayError>,
{
    type Response = reqwest::Response;
    type Error = GatewayError;
    type Future = AttemptFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: reqwest::Request) -> Self::Future {
        let method = request.method().clone();
        let url = request.url().clone();
        let started = Instant::now();
        AttemptFuture {
            inner: self.inner.call(request),
            // Armed on the first poll, when the request's context (its deadline) is in scope.
            sleep: tokio::time::sleep_until(instant_after(self.config.timeout)),
            armed: None,
            heads: 0,
            ctx: None,
            own_scope: false,
            graced: false,
            configured: self.config.timeout,
            include_body: self.config.include_body,
            started,
            method,
            url,
        }
    }
}

pin_project_lite::pin_project! {
    /// The future of [`AttemptTimeout`]: the inner call, raced against the attempt's timer.
    pub struct AttemptFuture<F> {
        #[pin]
        inner: F,
        #[pin]
        sleep: Sleep,
        // The timeout in force, once armed.
        armed: Option<Duration>,
        // The response heads the request's context had seen when armed.
        heads: u32,
        ctx: Option<Arc<RequestContext>>,
        // Whether `ctx` was opened here (no layer above opened one): the inner call is then
        // polled inside it, so that the transport can say when a head arrived.
        own_scope: bool,
        // Whether the timer was extended once for a body peek in progress.
        graced: bool,
        configured: Duration,
        include_body: bool,
        started: Instant,
        method: Method,
        url: reqwest::Url,
    }
}

impl<F> Future for AttemptFuture<F>
where
    F: Future<Output = Result<reqwest::Response, GatewayError>>,
{
    type Output = Result<reqwest::Response, GatewayError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let timeout = match *this.armed {
            Some(timeout) => timeout,
            None => {
                let ctx = RequestContext::current();
                let configured = ctx
                    .as_ref()
                    .and_then(|c| c.get::<AttemptTimeoutOverride>())
                    .map_or(*this.configured, |o| o.0);
                let left = ctx
                    .as_ref()
                    .and_then(|c| c.deadline())
                    .map(|d| d.remaining());
                let timeout = left.map_or(configured, |left| left.min(configured));
                this.sleep.as_mut().reset(ends(*this.started, timeout));
                *this.armed = Some(timeout);
                *this.own_scope = ctx.is_none();
                let ctx = ctx.unwrap_or_default();
                *this.heads = ctx.heads();
                *this.ctx = Some(ctx);
                timeout
            }
        };
        let polled = match this.ctx.as_ref().filter(|_| *this.own_scope) {
            Some(ctx) => RequestContext::sync_scope(ctx.clone(), || this.inner.as_mut().poll(cx)),
            None => this.inner.as_mut().poll(cx),
        };
        if let Poll::Ready(outcome) = polled {
            return Poll::Ready(match outcome {
                Ok(response) if *this.include_body => Ok(body::bound(
                    response,
                    ends(*this.started, timeout),
                    body::Limit::Attempt(timeout),
                )),
                other => other,
            });
        }
        ready!(this.sleep.as_mut().poll(cx));
        if !*this.graced && this.ctx.as_ref().is_some_and(|c| c.heads() != *this.heads) {
            // A response head arrived in time and the transport is reading the start of its
            // body (for at most `BODY_PEEK_WAIT`): that read's outcome is this attempt's, so
            // the timer waits once more, that long.
            *this.graced = true;
            let grace = crate::BODY_PEEK_WAIT + Duration::from_millis(20);
            this.sleep
                .as_mut()
                .reset(tokio::time::Instant::now() + grace);
            ready!(this.sleep.as_mut().poll(cx));
        }
        let mut details = Details::new(
            ErrorKind::CgiTimeout,
            Origin::Local,
            format!("no response within the attempt timeout of {timeout:?}").into(),
        );
        details.set_method(this.method.clone());
        details.set_server(this.url);
        details.set_attempts(1);
        Poll::Ready(Err(GatewayError::from_details(
            ErrorKind::CgiTimeout,
            details,
        )))
    }
}

fn ends(started: Instant, timeout: Duration) -> Instant {
    started
        .checked_add(timeout)
        .unwrap_or_else(|| instant_after(timeout))
}
