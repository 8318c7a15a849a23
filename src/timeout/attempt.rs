use super::{AttemptTimeoutOverride, BoxFuture, body};
use crate::context::{RequestContext, instant_after};
use crate::error::{Details, ErrorKind, GatewayError, Origin};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::Instant;
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
    /// Bounds each attempt's connect and response head by `timeout`.
    pub fn new(timeout: Duration) -> Self {
        AttemptTimeoutLayer {
            timeout,
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
    S::Future: Send + 'static,
{
    type Response = reqwest::Response;
    type Error = GatewayError;
    type Future = BoxFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: reqwest::Request) -> Self::Future {
        let ctx = RequestContext::current();
        let configured = ctx
            .as_ref()
            .and_then(|c| c.get::<AttemptTimeoutOverride>())
            .map_or(self.config.timeout, |o| o.0);
        let left = ctx
            .as_ref()
            .and_then(|c| c.deadline())
            .map(|d| d.remaining());
        let timeout = left.map_or(configured, |left| left.min(configured));
        let include_body = self.config.include_body;
        let method = request.method().clone();
        let url = request.url().clone();
        let started = Instant::now();
        let fut = self.inner.call(request);
        Box::pin(async move {
            let ends = started
                .checked_add(timeout)
                .unwrap_or_else(|| instant_after(timeout));
            match tokio::time::timeout_at(ends, fut).await {
                Ok(Ok(response)) if include_body => Ok(body::bound(response, ends, timeout)),
                Ok(outcome) => outcome,
                Err(_elapsed) => {
                    let mut details = Details::new(
                        ErrorKind::CgiTimeout,
                        Origin::Local,
                        format!("no response within the attempt timeout of {timeout:?}").into(),
                    );
                    details.set_method(method);
                    details.set_server(&url);
                    details.set_attempts(1);
                    Err(GatewayError::from_details(ErrorKind::CgiTimeout, details))
                }
            }
        })
    }
}
