//! The per-request context that travels with a logical request through the layers.
//!
//! `reqwest` 0.13 keeps `Request::extensions` private to itself, so values cannot ride on the
//! `reqwest::Request` the layers pass along. Instead, the outermost layer (or the [`Client`])
//! opens a [`RequestContext`] in a tokio task-local scope around the inner future; every layer
//! polled inside it sees the same context: the deadline, per-request overrides, the attempt
//! counter and the last failure. A layer that moves the inner call to another task (tower's
//! `Buffer`) cuts the link; the layers then fall back to their own configuration.
//!
//! [`Client`]: crate::Client

use crate::error::GatewayError;
use http::Extensions;
use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

tokio::task_local! {
    static CURRENT: Arc<RequestContext>;
}

/// State shared by the layers handling one logical request.
#[derive(Debug, Default)]
pub(crate) struct RequestContext {
    values: Mutex<Extensions>,
    /// The deadline, kept apart from `values` so that setting it allocates nothing.
    deadline: Mutex<Option<DeadlineAt>>,
    /// Sends the transport made.
    sent: AtomicU32,
    /// The highest attempt number a retry layer started.
    started: AtomicU32,
    /// Response heads the transport received (it then reads the start of a 5xx body).
    heads: AtomicU32,
    /// Redirect answers the redirect policy saw, and the last one's target (shown without
    /// secrets).
    redirects: AtomicU32,
    redirect_target: Mutex<Option<Box<str>>>,
    last_error: Mutex<Option<GatewayError>>,
}

impl RequestContext {
    pub(crate) fn with_values(values: Extensions) -> Arc<RequestContext> {
        Arc::new(RequestContext {
            values: Mutex::new(values),
            ..RequestContext::default()
        })
    }

    /// The context of the logical request being polled, if any.
    pub(crate) fn current() -> Option<Arc<RequestContext>> {
        CURRENT.try_with(Arc::clone).ok()
    }

    /// The current context, or a new one when the caller is the outermost layer.
    pub(crate) fn current_or_new() -> Arc<RequestContext> {
        Self::current().unwrap_or_default()
    }

    /// Runs `f` (a service's `call`) with `ctx` as the current context.
    pub(crate) fn sync_scope<R>(ctx: Arc<RequestContext>, f: impl FnOnce() -> R) -> R {
        CURRENT.sync_scope(ctx, f)
    }

    /// Runs `fut` with `ctx` as the current context.
    pub(crate) fn scope<F: Future>(
        ctx: Arc<RequestContext>,
        fut: F,
    ) -> tokio::task::futures::TaskLocalFuture<Arc<RequestContext>, F> {
        CURRENT.scope(ctx, fut)
    }

    /// A per-request value (an override, the deadline).
    pub(crate) fn get<T: Clone + Send + Sync + 'static>(&self) -> Option<T> {
        self.values
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get::<T>()
            .cloned()
    }

    /// The deadline set by a deadline layer, if any.
    pub(crate) fn deadline(&self) -> Option<DeadlineAt> {
        *self.deadline.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sets the deadline unless an earlier one is already in force; returns the one in force.
    pub(crate) fn tighten_deadline(&self, proposed: DeadlineAt) -> DeadlineAt {
        let mut current = self.deadline.lock().unwrap_or_else(PoisonError::into_inner);
        match *current {
            Some(earlier) if earlier.at <= proposed.at => earlier,
            _ => {
                *current = Some(proposed);
                proposed
            }
        }
    }

    /// Counts one more request put on the wire by the transport.
    pub(crate) fn count_send(&self) {
        self.sent.fetch_add(1, Ordering::Relaxed);
    }

    /// Notes that the transport received a response head.
    pub(crate) fn note_head(&self) {
        self.heads.fetch_add(1, Ordering::Relaxed);
    }

    /// Notes that a request was answered with a redirect to `target`.
    pub(crate) fn note_redirect(&self, target: &reqwest::Url) {
        *self
            .redirect_target
            .lock()
            .unwrap_or_else(PoisonError::into_inner) =
            Some(crate::redact::display_url(target).into_boxed_str());
        self.redirects.fetch_add(1, Ordering::Relaxed);
    }

    /// The last redirect's target.
    pub(crate) fn redirect_target(&self) -> Option<Box<str>> {
        self.redirect_target
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Redirect answers seen so far.
    pub(crate) fn redirects(&self) -> u32 {
        self.redirects.load(Ordering::Relaxed)
    }

    /// Response heads received so far.
    pub(crate) fn heads(&self) -> u32 {
        self.heads.load(Ordering::Relaxed)
    }

    /// Notes that a retry layer started its attempt number `attempt`.
    pub(crate) fn note_attempt(&self, attempt: u32) {
        self.started.fetch_max(attempt, Ordering::Relaxed);
    }

    /// Attempts so far: the transport's sends, or the retry layer's count where the inner
    /// service is not the transport (whichever is higher).
    pub(crate) fn attempts(&self) -> u32 {
        self.sent
            .load(Ordering::Relaxed)
            .max(self.started.load(Ordering::Relaxed))
    }

    /// Remembers the latest failure, for an error that ends the request later (the deadline).
    pub(crate) fn record_failure(&self, err: &GatewayError) {
        *self
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(err.clone());
    }

    /// The latest failure recorded.
    pub(crate) fn last_failure(&self) -> Option<GatewayError> {
        self.last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// When the logical request must end, set by the deadline layer for the layers inside it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DeadlineAt {
    pub(crate) at: tokio::time::Instant,
    pub(crate) total: std::time::Duration,
}

/// `now + duration`, or a time far in the future when that does not fit (a `Duration::MAX`
/// setting means "no limit", not a panic).
pub(crate) fn instant_after(duration: std::time::Duration) -> tokio::time::Instant {
    let now = tokio::time::Instant::now();
    now.checked_add(duration)
        .unwrap_or_else(|| now + std::time::Duration::from_secs(60 * 60 * 24 * 365 * 30))
}

impl DeadlineAt {
    /// Time left, zero when passed.
    pub(crate) fn remaining(&self) -> std::time::Duration {
        self.at
            .saturating_duration_since(tokio::time::Instant::now())
    }
}

/// A client's whole stack as a service of its own: every call opens a new request context, so
/// that a client used inside another stack (through [`Client::into_service`]) never shares the
/// outer request's deadline, overrides or attempt count, and the outer never sees the inner's.
///
/// [`Client::into_service`]: crate::Client::into_service
#[derive(Clone)]
pub(crate) struct Isolated<S>(pub(crate) S);

impl<S> tower_service::Service<reqwest::Request> for Isolated<S>
where
    S: tower_service::Service<reqwest::Request, Response = reqwest::Response, Error = GatewayError>,
    S::Future: Send + 'static,
{
    type Response = reqwest::Response;
    type Error = GatewayError;
    type Future = std::pin::Pin<
        Box<dyn Future<Output = Result<reqwest::Response, GatewayError>> + Send + 'static>,
    >;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), GatewayError>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: reqwest::Request) -> Self::Future {
        let ctx = Arc::new(RequestContext::default());
        let inner = RequestContext::sync_scope(ctx.clone(), || self.0.call(request));
        let attempts = ctx.clone();
        Box::pin(async move {
            RequestContext::scope(ctx, inner)
                .await
                .map_err(|err| with_attempts(err, &attempts))
        })
    }
}

/// The error with the request's attempt count, when the layer that ended it did not know it.
pub(crate) fn with_attempts(mut err: GatewayError, ctx: &RequestContext) -> GatewayError {
    if err.attempts() < ctx.attempts() {
        err.details_mut().set_attempts(ctx.attempts());
    }
    err
}
