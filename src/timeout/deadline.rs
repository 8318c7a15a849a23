use super::DeadlineOverride;
use crate::context::{DeadlineAt, RequestContext, instant_after};
use crate::error::{Details, ErrorKind, GatewayError, Origin};
use http::Method;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;
use tokio::task::futures::TaskLocalFuture;
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

    /// The inner service, unwrapped.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S> Service<reqwest::Request> for Deadline<S>
where
    S: Service<reqwest::Request, Response = reqwest::Response, Error = GatewayError>,
{
    type Response = reqwest::Response;
    type Error = GatewayError;
    type Future = DeadlineFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: reqwest::Request) -> Self::Future {
        let ctx = RequestContext::current_or_new();
        let total = ctx.get::<DeadlineOverride>().map_or(self.deadline, |o| o.0);
        // An outer, earlier deadline stays in force.
        let deadline = ctx.tighten_deadline(DeadlineAt {
            at: instant_after(total),
            total,
        });
        let method = request.method().clone();
        // The inner layers read the context when polled, which happens inside its scope.
        let inner = RequestContext::scope(ctx.clone(), self.inner.call(request));
        DeadlineFuture {
            inner,
            sleep: tokio::time::sleep_until(deadline.at),
            ctx,
            deadline,
            method,
        }
    }
}

pin_project_lite::pin_project! {
    /// The future of [`Deadline`]: the inner call in the request's context, raced against the
    /// deadline.
    pub struct DeadlineFuture<F> {
        #[pin]
        inner: TaskLocalFuture<Arc<RequestContext>, F>,
        #[pin]
        sleep: Sleep,
        ctx: Arc<RequestContext>,
        deadline: DeadlineAt,
        method: Method,
    }
}

impl<F> Future for DeadlineFuture<F>
where
    F: Future<Output = Result<reqwest::Response, GatewayError>>,
{
    type Output = Result<reqwest::Response, GatewayError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(outcome) = this.inner.poll(cx) {
            return Poll::Ready(match outcome {
                // A failure at the deadline (an attempt timer cut to it) is the deadline's.
                Err(err) if Instant::now() >= this.deadline.at => {
                    this.ctx.record_failure(&err);
                    Err(exceeded(this.ctx, *this.deadline, this.method.clone()))
                }
                // The body the caller reads is part of the logical request: bounded too.
                Ok(response) => Ok(super::body::bound(
                    response,
                    this.deadline.at,
                    super::body::Limit::Deadline(this.deadline.total),
                )),
                other => other,
            });
        }
        ready!(this.sleep.poll(cx));
        Poll::Ready(Err(exceeded(this.ctx, *this.deadline, this.method.clone())))
    }
}

/// The deadline's error; its server is the last failure's (the deadline layer keeps no copy of
/// the URL, to stay allocation-free on the healthy path).
fn exceeded(ctx: &RequestContext, deadline: DeadlineAt, method: reqwest::Method) -> GatewayError {
    let last = ctx.last_failure();
    let attempts = ctx
        .attempts()
        .max(last.as_ref().map_or(0, GatewayError::attempts));
    let plural = if attempts == 1 { "" } else { "s" };
    let mut details = Details::new(
        ErrorKind::DeadlineExceeded,
        Origin::Local,
        format!(
            "deadline of {:?} exceeded after {attempts} attempt{plural}",
            deadline.total
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
    GatewayError::from_details(ErrorKind::DeadlineExceeded, details)
}
