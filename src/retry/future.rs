//! The retry loop of one logical request.
//!
//! The first attempt runs in place, inside [`ResponseFuture`]: a request answered at once
//! costs the retry layer no allocation beyond the copy kept for a retry. Only when that attempt
//! fails (or is answered with a response the policy retries) does the rest of the loop move
//! into a boxed future, where its size and allocation no longer matter.

use super::RetryPolicy;
use crate::boxed_future::ResponseFuture as BoxedFuture;
use crate::error::{Details, ErrorKind, GatewayError, Origin, ResponseSnapshot};
use crate::policy::retry::{AttemptFacts, Next};
use crate::redact::DisplayUrl;
use crate::request::{DeadlineAt, Request, Tracker, record_attempts};
use http::{Method, StatusCode};
use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::Sleep;
use tower::ServiceExt;
use tower_service::Service;
use tracing::{Instrument, Span};

/// What the loop keeps of a logical request between attempts.
pub(crate) struct Loop<S> {
    service: S,
    policy: RetryPolicy,
    /// The copy for the next attempt (none when the body cannot be copied or one attempt is
    /// all there is). A pointer, as every `Request` is.
    spare: Option<Request>,
    tracker: Arc<Tracker>,
    deadline: Option<DeadlineAt>,
    method: Method,
    idempotent: bool,
    replayable: bool,
    /// The `request` span of the logical request.
    span: Span,
    /// When the hedge delay follows the host's latencies: the host and the first attempt's
    /// start, to record its latency.
    learning: Option<(u64, tokio::time::Instant)>,
    /// The host's key for a retry budget per host, once worked out.
    host: Option<u64>,
    /// Whether a hedge was sent: a success then earns the budget no reward.
    hedged: bool,
    /// What the latest retry cost the budget: given back if the crate refuses that retry
    /// itself (an open circuit), since nothing is sent.
    last_charge: u32,
    /// Whether the attempt timeout right below leaves a timed-out attempt's server to this
    /// loop (see `Retry::names_servers`).
    names_servers: bool,
    /// The logical request's metrics, recorded once when it ends, or when it is dropped (at
    /// its deadline, or by the caller).
    #[cfg(feature = "metrics")]
    metrics: EndRecord,
}

/// What the metrics record when a logical request ends: its resends, and a give-up's reason.
/// Recorded once: when the loop ends it, or when the loop is dropped unfinished (a deadline
/// layer dropping it at its deadline records a give-up for the deadline).
#[cfg(feature = "metrics")]
struct EndRecord {
    /// For the budget's gauge, keyed by the request's URL.
    url: reqwest::Url,
    target: crate::metrics::Target,
    tracker: Arc<Tracker>,
    ended: std::cell::Cell<bool>,
}

#[cfg(feature = "metrics")]
impl EndRecord {
    fn ended(&self, failed: Option<(&GatewayError, Option<&str>)>) {
        if self.ended.replace(true) {
            return;
        }
        crate::metrics::resends(&self.target, self.tracker.attempts());
        if let Some((err, why)) = failed {
            // An attempt timer the deadline cut short: the deadline layer above turns it into
            // the deadline's error, which is what the caller gets.
            let error_type = if err.kind() == ErrorKind::TimedOut && err.details().cut_by_deadline()
            {
                ErrorKind::DeadlineExceeded.name()
            } else {
                err.kind().name()
            };
            crate::metrics::give_up(error_type, why);
        }
    }
}

#[cfg(feature = "metrics")]
impl Drop for EndRecord {
    fn drop(&mut self) {
        if self.ended.get() {
            return;
        }
        crate::metrics::resends(&self.target, self.tracker.attempts());
        if crate::metrics::ending_by_timer() {
            crate::metrics::give_up(ErrorKind::DeadlineExceeded.name(), Some("deadline"));
        }
    }
}

pin_project_lite::pin_project! {
    /// The future of [`Retry`](super::Retry): the first attempt in place, the rest of the loop
    /// boxed. `Send` when the service and its future are.
    pub struct ResponseFuture<S, F> {
        #[pin]
        state: State<S, F>,
    }
}

pin_project_lite::pin_project! {
    #[project = StateProj]
    enum State<S, F> {
        // The first attempt, sent; and, when the policy hedges, its timer and its backup copy.
        First {
            #[pin]
            call: F,
            // Boxed, so that a request without hedging carries neither in its future (the
            // healthy path moves this future: its size is a cost).
            hedge_timer: Option<Pin<Box<Sleep>>>,
            hedge_call: Option<Pin<Box<F>>>,
            attempt_span: Span,
            hedge_span: Span,
            // Which of the two calls ended first without a good answer (a failure, or a
            // response the policy retries), while the other runs.
            failed: Option<Which>,
            ctx: Option<Loop<S>>,
        },
        // The rest of the loop (or the whole loop, when the service was not ready at once).
        Rest { future: BoxedFuture },
        // Ended in place (the first attempt's calls dropped: a losing one's connection closed).
        Done { ended: () },
    }
}

/// One of the first attempt's two calls.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Which {
    First,
    Hedge,
}

impl<S, F> std::fmt::Debug for ResponseFuture<S, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<S> ResponseFuture<S, S::Future>
where
    S: Service<Request, Response = reqwest::Response, Error = GatewayError> + Send + 'static,
    S::Future: Send + 'static,
{
    pub(crate) fn retrying(
        mut service: S,
        policy: RetryPolicy,
        mut request: Request,
        names_servers: bool,
    ) -> Self {
        // The service is asked once without a waker: when it is ready (every service of this
        // crate always is) the first attempt starts now, in place; else the loop waits for it.
        let ready = service.poll_ready(&mut Context::from_waker(std::task::Waker::noop()));
        let mut ctx = Loop::new(service, policy, &mut request);
        ctx.names_servers = names_servers;
        // A hedged first attempt arms its timer (a hedge needs a copy and a second attempt).
        let hedge_timer = ctx
            .policy
            .rules
            .hedge_after
            .as_ref()
            .filter(|_| ctx.idempotent && ctx.spare.is_some() && ctx.policy.rules.max_attempts > 1)
            .map(|delay| {
                let wait = if delay.learns() {
                    let host = crate::host::key(request.url());
                    ctx.learning = Some((host, tokio::time::Instant::now()));
                    delay.for_host(host)
                } else {
                    delay.for_url(request.url())
                };
                Box::pin(tokio::time::sleep(wait))
            });
        let state = match ready {
            Poll::Ready(Ok(())) => {
                let attempt_span = ctx.attempt_span(1, &request);
                ctx.tracker.start_attempt(1);
                ctx.leave_server(&mut request);
                let call = {
                    let _request = ctx.span.enter();
                    let _attempt = attempt_span.enter();
                    ctx.service.call(request)
                };
                State::First {
                    call,
                    hedge_timer,
                    hedge_call: None,
                    attempt_span,
                    hedge_span: Span::none(),
                    failed: None,
                    ctx: Some(ctx),
                }
            }
            Poll::Ready(Err(err)) => {
                // The first attempt failed before it was sent: still attempt 1, with its span.
                let attempt_span = ctx.attempt_span(1, &request);
                ctx.tracker.start_attempt(1);
                State::Rest {
                    future: BoxedFuture::new(ctx.run(Start::Judge(Err(err), attempt_span, 1))),
                }
            }
            Poll::Pending => State::Rest {
                future: BoxedFuture::new(ctx.run(Start::Send(request))),
            },
        };
        ResponseFuture { state }
    }
}

impl<S> Future for ResponseFuture<S, S::Future>
where
    S: Service<Request, Response = reqwest::Response, Error = GatewayError> + Send + 'static,
    S::Future: Send + 'static,
{
    type Output = Result<reqwest::Response, GatewayError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            let mut state = self.as_mut().project().state;
            let (outcome, attempt_span, mut ctx, attempts_made) = match state.as_mut().project() {
                StateProj::Rest { future } => return Pin::new(future).poll(cx),
                StateProj::Done { .. } => {
                    return Poll::Ready(Err(crate::boxed_future::polled_after_end("the retry")));
                }
                StateProj::First {
                    mut call,
                    hedge_timer,
                    hedge_call,
                    attempt_span,
                    hedge_span,
                    failed,
                    ctx,
                } => {
                    // The context is taken when the first attempt ends: polled again after
                    // that, the future says so instead of polling a finished call.
                    let Some(loop_ctx) = ctx.as_mut() else {
                        return Poll::Ready(Err(crate::boxed_future::polled_after_end(
                            "the retry",
                        )));
                    };
                    let _request = loop_ctx.span.clone().entered();
                    let (outcome, which) = loop {
                        if *failed != Some(Which::First) {
                            let _attempt = attempt_span.enter();
                            if let Poll::Ready(outcome) = call.as_mut().poll(cx) {
                                // A good answer wins; so does the later of two that are not.
                                if hedge_call.is_none()
                                    || failed.is_some()
                                    || is_good(&loop_ctx.policy, &outcome)
                                {
                                    break (outcome, Which::First);
                                }
                                *failed = Some(Which::First);
                            }
                        }
                        if let (Some(hedge), false) = (
                            hedge_call.as_mut().map(Pin::as_mut),
                            *failed == Some(Which::Hedge),
                        ) {
                            let _attempt = hedge_span.enter();
                            if let Poll::Ready(outcome) = hedge.poll(cx) {
                                loop_ctx.refund_refused_hedge(&outcome);
                                if failed.is_some() || is_good(&loop_ctx.policy, &outcome) {
                                    break (outcome, Which::Hedge);
                                }
                                *failed = Some(Which::Hedge);
                            }
                        }
                        // No answer yet: when the hedge's delay is over, one backup copy.
                        let due = hedge_timer
                            .as_mut()
                            .is_some_and(|timer| timer.as_mut().poll(cx).is_ready());
                        if !due {
                            return Poll::Pending;
                        }
                        *hedge_timer = None;
                        match loop_ctx.start_hedge(2) {
                            Some((hedge, span)) => {
                                *hedge_span = span;
                                *hedge_call = Some(Box::pin(hedge));
                            }
                            None => return Poll::Pending,
                        }
                    };
                    let attempts_made = if hedge_call.is_some() { 2 } else { 1 };
                    let span = match which {
                        Which::First => std::mem::replace(attempt_span, Span::none()),
                        Which::Hedge => std::mem::replace(hedge_span, Span::none()),
                    };
                    drop(_request);
                    let outcome = match outcome {
                        // The healthy path: done where the loop lies (neither it nor the
                        // response is moved out first).
                        Ok(mut response)
                            if !loop_ctx
                                .policy
                                .retries_response(response.status(), response.headers()) =>
                        {
                            loop_ctx.succeeded(&span, &mut response, attempts_made);
                            // The first attempt's calls are dropped now (a losing hedge has its
                            // connection closed), and the loop with them.
                            state.set(State::Done { ended: () });
                            return Poll::Ready(Ok(response));
                        }
                        mut outcome => {
                            loop_ctx.name_server(&mut outcome);
                            outcome
                        }
                    };
                    let Some(ctx) = ctx.take() else {
                        return Poll::Ready(Err(crate::boxed_future::polled_after_end(
                            "the retry",
                        )));
                    };
                    (outcome, span, ctx, attempts_made)
                }
            };
            // The first attempt's calls are dropped now: a losing hedge (or first call) has
            // its connection closed.
            state.set(State::Done { ended: () });
            match outcome {
                // A failure this policy never retries (an invalid request, an open circuit, a
                // 502.7…): ended here too, without moving into the loop.
                Err(mut err) if !ctx.policy.retries_cause(&err) => {
                    crate::error::record_outcome(&attempt_span, None, Some(&err));
                    let attempts = ctx.tracker.attempts();
                    err.details_mut().set_attempts(attempts);
                    ctx.seal(&mut err);
                    ctx.span.record("attempts", attempts);
                    crate::error::record_outcome(&ctx.span, None, Some(&err));
                    #[cfg(feature = "metrics")]
                    ctx.ended(Some((&err, refusal_reason(&err))));
                    return Poll::Ready(Err(err));
                }
                // Anything else is judged here too: the loop is boxed only when a retry
                // follows (a failure whose retry the budget, the deadline or the attempts left
                // refuse ends here, as a success does).
                outcome => {
                    let mut spent = 0;
                    let step = {
                        let _request = ctx.span.clone().entered();
                        ctx.after(
                            attempts_made,
                            outcome,
                            attempt_span,
                            Duration::ZERO,
                            &mut spent,
                        )
                    };
                    match step {
                        Step::Done(result) => return Poll::Ready(result),
                        Step::Retry(delay, next) => {
                            let future = BoxedFuture::new(ctx.run(Start::Retry {
                                delay,
                                next,
                                attempts_made,
                                spent,
                            }));
                            state.set(State::Rest { future });
                        }
                    }
                }
            }
        }
    }
}

/// A request the client refused before its retry loop began (its host's circuit is open, see
/// `circuit::FastRefusal`): the logical request's span and metrics, as the loop makes them when
/// the circuit layer refuses its first attempt. No attempt was made.
pub(crate) fn refused_before_loop(request: &Request, mut err: GatewayError) -> GatewayError {
    let span = tracing::info_span!(
        "request",
        otel.name = %request.method(),
        http.request.method = %request.method(),
        server.address = request.url().host_str().unwrap_or(""),
        server.port = request.url().port_or_known_default(),
        url.full = %DisplayUrl(request.url()),
        attempts = 0,
        error.type = err.kind().name(),
    );
    drop(span);
    err.details_mut().set_attempts(0);
    #[cfg(feature = "metrics")]
    {
        crate::metrics::resends(
            &crate::metrics::Target::new(request.method(), request.url()),
            0,
        );
        crate::metrics::give_up(err.kind().name(), refusal_reason(&err));
    }
    err
}

/// Why a request the crate refused itself was not retried: its open circuit.
#[cfg(feature = "metrics")]
fn refusal_reason(err: &GatewayError) -> Option<&'static str> {
    (err.kind() == ErrorKind::CircuitOpen).then_some("circuit open")
}

/// Where the boxed loop starts: with a request to send, or with the first attempt's outcome.
// Made once per slow path and moved straight into the boxed loop: its size does not matter.
#[allow(clippy::large_enum_variant)]
enum Start {
    Send(Request),
    /// The outcome, its attempt's span, and the attempts made (2 when a hedge went out).
    Judge(Result<reqwest::Response, GatewayError>, Span, u32),
    /// A retry decided on the first attempt's outcome: its pause, its copy, the attempts made
    /// and what retrying has cost the budget so far.
    Retry {
        delay: Duration,
        next: Request,
        attempts_made: u32,
        spent: u32,
    },
}

/// What follows an attempt: the answer or error to hand back, or a retry.
// Made once per attempt that ends (not on the healthy path's in-place attempt) and matched at
// once: its size does not matter.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Step {
    Done(Result<reqwest::Response, GatewayError>),
    Retry(Duration, Request),
}

impl<S> Loop<S> {
    /// The first attempt (or its hedge) was answered with a response the policy takes:
    /// records it (the spans, the hedge delay's latency, the budget's reward, the attempts on
    /// the response, the metrics) before the loop is dropped.
    fn succeeded(
        &mut self,
        attempt_span: &Span,
        response: &mut reqwest::Response,
        attempts_made: u32,
    ) {
        crate::error::record_outcome(attempt_span, Some(response.status()), None);
        if let (Some((host, started)), Some(delay)) =
            (self.learning, self.policy.rules.hedge_after.as_ref())
        {
            delay.record(host, started.elapsed());
        }
        // A first-attempt success earns the budget's reward; a hedge's win does not (its cost
        // is not refunded either).
        if attempts_made == 1 {
            let spare = &self.spare;
            let _moved = self
                .policy
                .settle(0, || spare.as_ref().map(|r| crate::host::key(r.url())));
            #[cfg(feature = "metrics")]
            if _moved {
                self.budget_moved();
            }
        }
        let attempts = self.tracker.attempts();
        self.span.record("attempts", attempts);
        crate::error::record_outcome(&self.span, Some(response.status()), None);
        record_attempts(response, attempts);
        #[cfg(feature = "metrics")]
        self.ended(None);
    }

    /// The loop's state for `request` (the policy: the request's own, else `policy`): the
    /// tracker made, the idempotency decided once, the copy for a retry kept.
    pub(crate) fn new(service: S, policy: RetryPolicy, request: &mut Request) -> Loop<S> {
        let policy = match &request.options().retry {
            // A request's own policy draws on the layer's budget unless it chose one: a fresh,
            // full budget per call would defeat the budget's purpose.
            Some(own) if !own.budget_chosen => own.clone().with_budget(policy.budget.clone()),
            Some(own) => own.clone(),
            None => policy,
        };
        let opted_in = request.options().idempotent;
        // Made before any copy, so that every attempt's copy shares it.
        let tracker = request.tracker();
        let method = request.method().clone();
        let idempotent = policy.is_idempotent(&method, request.headers(), opted_in);
        // Span fields borrow the request: nothing is formatted unless a subscriber records them.
        let span = tracing::info_span!(
            "request",
            otel.name = %method,
            http.request.method = %method,
            server.address = request.url().host_str().unwrap_or(""),
            server.port = request.url().port_or_known_default(),
            url.full = %DisplayUrl(request.url()),
            attempts = tracing::field::Empty,
            http.response.status_code = tracing::field::Empty,
            error.type = tracing::field::Empty,
        );
        // A copy is kept for the next attempt; a streamed body cannot be copied.
        let spare = if policy.rules.max_attempts > 1 {
            request.try_clone()
        } else {
            None
        };
        let replayable = spare.is_some() || policy.rules.max_attempts == 1;
        let deadline = request.state().deadline;
        Loop {
            service,
            policy,
            spare,
            tracker,
            deadline,
            method,
            idempotent,
            replayable,
            span,
            learning: None,
            host: None,
            hedged: false,
            last_charge: 0,
            names_servers: false,
            #[cfg(feature = "metrics")]
            metrics: EndRecord {
                url: request.url().clone(),
                target: crate::metrics::Target::new(request.method(), request.url()),
                tracker: request.tracker(),
                ended: std::cell::Cell::new(false),
            },
        }
    }

    /// The logical request's span.
    #[cfg(feature = "middleware")]
    pub(crate) fn span(&self) -> Span {
        self.span.clone()
    }

    /// Notes on the request's tracker that attempt `number` starts.
    #[cfg(feature = "middleware")]
    pub(crate) fn start_attempt(&self, number: u32) {
        self.tracker.start_attempt(number);
    }

    /// Marks `request`, about to be sent, as one whose timed-out attempt's server this loop
    /// names: when the attempt timeout is right below and the loop keeps a copy of the URL
    /// (the last attempt takes the copy itself, and its timeout names its own server).
    fn leave_server(&self, request: &mut Request) {
        request.state_mut().server_named_above = self.names_servers && self.spare.is_some();
    }

    /// Names the server of an attempt's error that was left to this loop, from its copy.
    fn name_server(&self, outcome: &mut Result<reqwest::Response, GatewayError>) {
        if let (Err(err), Some(spare)) = (outcome, &self.spare) {
            err.details_mut().name_server_left_above(spare.url());
        }
    }

    pub(crate) fn attempt_span(&self, number: u32, request: &Request) -> Span {
        tracing::info_span!(
            parent: &self.span,
            "attempt",
            otel.name = %self.method,
            otel.kind = "client",
            http.request.method = %self.method,
            server.address = request.url().host_str().unwrap_or(""),
            server.port = request.url().port_or_known_default(),
            url.full = %DisplayUrl(request.url()),
            http.request.resend_count = number - 1,
            http.response.status_code = tracing::field::Empty,
            error.type = tracing::field::Empty,
        )
    }

    /// Metrics at the end of the logical request: its resends, and a give-up's reason.
    #[cfg(feature = "metrics")]
    fn ended(&self, failed: Option<(&GatewayError, Option<&str>)>) {
        self.metrics.ended(failed);
    }

    /// Sets the budget gauge of the request's host to what its bucket holds now.
    #[cfg(feature = "metrics")]
    fn budget_moved(&self) {
        if let Some(budget) = &self.policy.budget {
            let url = &self.metrics.url;
            budget.note_url(url);
            crate::metrics::budget(url, budget.is_per_host(), budget.available_for(url));
        }
    }

    /// Metrics for a retry decided after `error_type`: the retry, and the budget left.
    #[cfg(feature = "metrics")]
    fn retried(&self, error_type: &'static str) {
        crate::metrics::retry(error_type);
        self.budget_moved();
    }

    /// Marks an error the request ends with as one that must not be sent again when the
    /// request is not idempotent and may have been delivered.
    fn seal(&self, err: &mut GatewayError) {
        if err.is_request_unsent() && self.tracker.maybe_delivered() {
            // This attempt never left, but an earlier copy may have been delivered: the
            // request as a whole is not provably unsent.
            err.details_mut().clear_unsent();
        }
        if !self.idempotent && !err.is_request_unsent() {
            err.details_mut().forbid_resend();
        }
    }

    /// Gives a hedge's cost back to the budget when the crate refused the hedge itself (an open
    /// circuit, or a half-open one whose probe is the first copy): nothing was sent.
    fn refund_refused_hedge(&mut self, outcome: &Result<reqwest::Response, GatewayError>) {
        if !matches!(outcome, Err(err) if err.kind() == ErrorKind::CircuitOpen) {
            return;
        }
        let host = self.host();
        if let Some(budget) = &self.policy.budget {
            budget.refund(|| host, budget.cost(false));
            #[cfg(feature = "metrics")]
            self.budget_moved();
        }
    }

    /// The request's host key (see `circuit`), from the kept copy: worked out on the first
    /// failure and kept, since the last attempt takes the copy itself.
    fn host(&mut self) -> Option<u64> {
        if self.host.is_none() {
            self.host = self.spare.as_ref().map(|r| crate::host::key(r.url()));
        }
        self.host
    }

    /// What follows attempt `attempt`'s outcome, by the policy: the answer or error to hand
    /// back, or a retry after a pause with the copy to send. The whole retry decision of one
    /// attempt, shared by the tower layer's loop and the reqwest-middleware adapter.
    pub(crate) fn after(
        &mut self,
        attempt: u32,
        mut outcome: Result<reqwest::Response, GatewayError>,
        attempt_span: Span,
        previous_delay: Duration,
        spent: &mut u32,
    ) -> Step {
        self.name_server(&mut outcome);
        // The host's key for its retry budget, while the kept copy is there to tell it.
        let host = self.host();
        let facts = AttemptFacts {
            number: attempt,
            idempotent: self.idempotent,
            replayable: self.replayable,
            previous_delay,
            deadline: self.deadline,
        };
        let policy = &self.policy;
        let tracker = &self.tracker;
        let (delay, next) = match outcome {
            Ok(mut response) => {
                crate::error::record_outcome(&attempt_span, Some(response.status()), None);
                drop(attempt_span);
                let mut retry = None;
                if !policy.retries_response(response.status(), response.headers()) {
                    // Retries are refunded; a first attempt's success is rewarded, unless a
                    // hedge went out (its cost is never refunded).
                    if *spent > 0 || !self.hedged {
                        let _moved = policy.settle(*spent, || host);
                        #[cfg(feature = "metrics")]
                        if _moved {
                            self.budget_moved();
                        }
                    }
                } else {
                    // A 429, a 408 or a status the user's rules name is not a gateway
                    // failure: it is retried like one (hints, budget, deadline,
                    // idempotency), and handed back as it is when not.
                    let mut refused = refused_response(&response);
                    refused.details_mut().set_attempts(tracker.attempts());
                    let before = *spent;
                    let step =
                        policy.charge(policy.decide(&refused, true, &facts), false, spent, host);
                    self.last_charge = *spent - before;
                    if let Next::RetryAfter(delay, reason) = step {
                        if let Some(copy) =
                            next_copy(&mut self.spare, attempt, policy.rules.max_attempts)
                        {
                            tracing::warn!(
                                attempt,
                                delay_ms = delay.as_millis() as u64,
                                reason,
                                http.response.status_code = response.status().as_u16(),
                                "retrying after a refused response"
                            );
                            #[cfg(feature = "metrics")]
                            self.retried(match response.status().as_u16() {
                                429 => "http_429",
                                408 => "http_408",
                                _ => "http_response",
                            });
                            // The deadline's last cause, should it end during the pause.
                            tracker.record_failure_owned(refused);
                            retry = Some((delay, copy));
                        }
                    }
                }
                match retry {
                    Some(next) => next,
                    None => {
                        let attempts = tracker.attempts();
                        self.span.record("attempts", attempts);
                        crate::error::record_outcome(&self.span, Some(response.status()), None);
                        record_attempts(&mut response, attempts);
                        #[cfg(feature = "metrics")]
                        self.ended(None);
                        return Step::Done(Ok(response));
                    }
                }
            }
            Err(mut err) => {
                crate::error::record_outcome(&attempt_span, None, Some(&err));
                // The attempt ends here: the pause before the next one is not part of it.
                drop(attempt_span);
                if err.kind() == ErrorKind::CircuitOpen && attempt > 1 {
                    // A retry the crate refused itself sent nothing: its cost goes back, and
                    // the request ends with its own last failure, the refusal as the reason it
                    // was not retried (an earlier copy may have been delivered: not "unsent").
                    if let Some(budget) = &policy.budget {
                        if self.last_charge > 0 {
                            budget.refund(|| host, self.last_charge);
                            *spent = spent.saturating_sub(self.last_charge);
                            #[cfg(feature = "metrics")]
                            self.budget_moved();
                        }
                    }
                    self.last_charge = 0;
                    if let Some(mut earlier) = tracker.last_failure() {
                        earlier.details_mut().set_attempts(tracker.attempts());
                        let why = err.details().message().to_owned();
                        self.span.record("attempts", tracker.attempts());
                        crate::error::record_outcome(&self.span, None, Some(&earlier));
                        #[cfg(feature = "metrics")]
                        self.ended(Some((&earlier, Some("circuit open"))));
                        self.seal(&mut earlier);
                        return Step::Done(Err(give_up(earlier, Some(why.into()))));
                    }
                }
                // This logical request's count (an inner client's error carries its own).
                err.details_mut().set_attempts(tracker.attempts());
                let mut next = policy.decide(&err, policy.retries_cause(&err), &facts);
                if let (Next::RetryAfter(delay, _), Some(open)) = (&next, tracker.open_circuit()) {
                    // This request's host has its circuit open past the pause: the retry
                    // would be refused, so none is slept for.
                    let now = tokio::time::Instant::now();
                    if open.until > now + *delay {
                        next = Next::GiveUp(Some(
                            format!(
                                "the circuit of {} is open for another {}",
                                open.host.as_deref().unwrap_or("this host"),
                                crate::error::Shown(open.until - now)
                            )
                            .into(),
                        ));
                    }
                }
                let before = *spent;
                let next = policy.charge(next, err.kind() == ErrorKind::TimedOut, spent, host);
                self.last_charge = *spent - before;
                match next {
                    Next::RetryAfter(delay, reason) => {
                        tracing::warn!(
                            attempt,
                            delay_ms = delay.as_millis() as u64,
                            reason,
                            error.type = err.kind().name(),
                            error = %err,
                            "retrying"
                        );
                        #[cfg(feature = "metrics")]
                        self.retried(err.kind().name());
                        // `decide` only retries when a copy exists.
                        match next_copy(&mut self.spare, attempt, policy.rules.max_attempts) {
                            Some(copy) => {
                                // Kept for a deadline that ends during the pause or the next
                                // attempt (its last cause): moved, not copied. An error handed
                                // back is not recorded: the deadline layer records one that
                                // ends at the deadline itself.
                                tracker.record_failure_owned(err);
                                (delay, copy)
                            }
                            None => {
                                self.seal(&mut err);
                                let why = Some("the request could not be copied".into());
                                #[cfg(feature = "metrics")]
                                self.ended(Some((&err, Some("the request could not be copied"))));
                                return Step::Done(Err(give_up(err, why)));
                            }
                        }
                    }
                    Next::GiveUp(why) => {
                        if let Some(why) = &why {
                            tracing::warn!(attempt, error.type = err.kind().name(), error = %err, why = %why, "giving up");
                        }
                        self.span.record("attempts", tracker.attempts());
                        crate::error::record_outcome(&self.span, None, Some(&err));
                        #[cfg(feature = "metrics")]
                        self.ended(Some((&err, why.as_deref())));
                        self.seal(&mut err);
                        return Step::Done(Err(give_up(err, why)));
                    }
                }
            }
        };
        Step::Retry(delay, next)
    }
}

impl<S> Loop<S>
where
    S: Service<Request, Response = reqwest::Response, Error = GatewayError> + Send + 'static,
    S::Future: Send + 'static,
{
    /// A backup copy as attempt `number`, sent now: when a copy can be made, the service is
    /// ready at once (a hedge never waits for readiness while the first call runs unpolled)
    /// and the budget pays for it, in that order.
    fn start_hedge(&mut self, number: u32) -> Option<(S::Future, Span)> {
        let mut copy = self.spare.as_ref().and_then(Request::try_clone)?;
        let ready = self
            .service
            .poll_ready(&mut Context::from_waker(std::task::Waker::noop()));
        if !matches!(ready, Poll::Ready(Ok(()))) {
            return None;
        }
        let host = self.host();
        if let Some(budget) = &self.policy.budget {
            if !budget.try_withdraw(host.unwrap_or(0), budget.cost(false)) {
                return None;
            }
        }
        copy.state_mut().hedge = true;
        self.leave_server(&mut copy);
        self.hedged = true;
        self.tracker.start_attempt(number);
        let span = self.attempt_span(number, &copy);
        tracing::debug!(
            attempt = number,
            "hedging: no answer yet, a backup copy is sent"
        );
        #[cfg(feature = "metrics")]
        {
            crate::metrics::hedge(&self.metrics.target);
            self.budget_moved();
        }
        let call = {
            let _entered = span.enter();
            self.service.call(copy)
        };
        Some((call, span))
    }

    /// The attempt's call, once the service is ready, running inside its span.
    async fn start(
        &mut self,
        request: Request,
        span: &Span,
    ) -> Result<tracing::instrument::Instrumented<S::Future>, GatewayError> {
        let ready = self.service.ready().instrument(span.clone()).await?;
        let call = {
            let _entered = span.enter();
            ready.call(request)
        };
        Ok(call.instrument(span.clone()))
    }

    /// One attempt (and its hedge, when the policy hedges): waits for the service, sends, and
    /// returns the outcome with the span of the attempt that gave it and how many attempts
    /// were made (2 when a hedge was sent).
    async fn send(
        &mut self,
        number: u32,
        mut request: Request,
    ) -> (Result<reqwest::Response, GatewayError>, Span, u32) {
        self.tracker.start_attempt(number);
        self.leave_server(&mut request);
        let span = self.attempt_span(number, &request);
        let first = match self.start(request, &span).await {
            Ok(call) => call,
            Err(err) => return (Err(err), span, 1),
        };
        // A hedge needs a copy: without the kept one there is none.
        let hedge = match (&self.policy.rules.hedge_after, &self.spare) {
            (Some(delay), Some(spare))
                if self.idempotent && number < self.policy.rules.max_attempts =>
            {
                Some(delay.for_url(spare.url()))
            }
            _ => None,
        };
        let Some(delay) = hedge else {
            return (first.await, span, 1);
        };
        // The race with a hedge, boxed: two calls at once would double the size of this future,
        // which every retried request's loop holds, hedging or not.
        Box::pin(self.hedged(number, first, span, delay)).await
    }

    /// One attempt's `first` call, raced with a hedge sent after `delay` (see [`send`]).
    ///
    /// [`send`]: Loop::send
    async fn hedged(
        &mut self,
        number: u32,
        first: tracing::instrument::Instrumented<S::Future>,
        span: Span,
        delay: Duration,
    ) -> (Result<reqwest::Response, GatewayError>, Span, u32) {
        let mut first = std::pin::pin!(first);
        // The first attempt's answer, if it comes before the hedge's delay.
        let sleep = tokio::time::sleep(delay);
        let mut sleep = std::pin::pin!(sleep);
        let early = std::future::poll_fn(|cx| {
            if let Poll::Ready(outcome) = first.as_mut().poll(cx) {
                return Poll::Ready(Some(outcome));
            }
            sleep.as_mut().poll(cx).map(|()| None)
        })
        .await;
        if let Some(outcome) = early {
            return (outcome, span, 1);
        }
        // No head yet: one backup copy, when it can be sent at once and the budget pays.
        let Some((second, hedge_span)) = self.start_hedge(number + 1) else {
            return (first.await, span, 1);
        };
        let mut second = std::pin::pin!(second.instrument(hedge_span.clone()));
        // The first good answer wins; the other call is dropped (its connection closed). A
        // failure, or a response this policy retries, waits for the other call.
        let mut ended: [Option<Result<reqwest::Response, GatewayError>>; 2] = [None, None];
        let mut refused_hedge = false;
        let policy = &self.policy;
        let (outcome, winner) = std::future::poll_fn(|cx| {
            for (i, call) in [first.as_mut(), second.as_mut()].into_iter().enumerate() {
                if ended[i].is_some() {
                    continue;
                }
                if let Poll::Ready(outcome) = call.poll(cx) {
                    if i == 1
                        && matches!(&outcome, Err(err) if err.kind() == ErrorKind::CircuitOpen)
                    {
                        refused_hedge = true;
                    }
                    if is_good(policy, &outcome) || ended[1 - i].is_some() {
                        // A good answer, or the later of two that are not.
                        return Poll::Ready((outcome, i));
                    }
                    ended[i] = Some(outcome);
                }
            }
            Poll::Pending
        })
        .await;
        if refused_hedge {
            let host = self.host();
            if let Some(budget) = &self.policy.budget {
                budget.refund(|| host, budget.cost(false));
                #[cfg(feature = "metrics")]
                self.budget_moved();
            }
        }
        let span = if winner == 0 { span } else { hedge_span };
        (outcome, span, 2)
    }

    /// The loop from `start` to the end of the logical request.
    fn run(
        mut self,
        start: Start,
    ) -> impl Future<Output = Result<reqwest::Response, GatewayError>> + Send + 'static {
        let span = self.span.clone();
        async move {
            let mut attempt: u32 = 1;
            let mut spent: u32 = 0;
            // The first step: the first attempt's outcome judged, or a retry already decided.
            let mut step = match start {
                Start::Send(request) => {
                    let (outcome, span, used) = self.send(1, request).await;
                    attempt += used - 1;
                    self.after(attempt, outcome, span, Duration::ZERO, &mut spent)
                }
                Start::Judge(outcome, span, made) => {
                    attempt = made;
                    self.after(attempt, outcome, span, Duration::ZERO, &mut spent)
                }
                Start::Retry {
                    delay,
                    next,
                    attempts_made,
                    spent: spent_so_far,
                } => {
                    attempt = attempts_made;
                    spent = spent_so_far;
                    Step::Retry(delay, next)
                }
            };
            loop {
                let (delay, next) = match step {
                    Step::Done(result) => return result,
                    Step::Retry(delay, next) => (delay, next),
                };
                pause(delay).await;
                attempt += 1;
                let (outcome, span, used) = self.send(attempt, next).await;
                attempt += used - 1;
                step = self.after(attempt, outcome, span, delay, &mut spent);
            }
        }
        .instrument(span)
    }
}

/// The pause before a retry. No pause is no timer: tokio's, even for zero, waits for its wheel's
/// next millisecond and wakes its driver (a syscall) to do so. The task still yields once
/// (`tokio::task::yield_now`): in a task a runtime's scheduler runs (a spawned task, or any on a
/// current-thread runtime), after that scheduler's next look at its I/O, so that answers already
/// in (a circuit's verdict on the host among them) are seen before the retry is sent; elsewhere
/// (the future a multi-thread runtime's `block_on` runs itself, another executor) at once.
/// A retry that fails without I/O (no server left, say) is therefore not spaced out either: its
/// attempts are bounded by the policy's attempts and budget, as with any other pause.
pub(crate) async fn pause(delay: Duration) {
    if delay.is_zero() {
        tokio::task::yield_now().await;
    } else {
        tokio::time::sleep(delay).await;
    }
}

/// The request for the next attempt: the last attempt takes the kept copy itself, earlier ones
/// a copy of it.
fn next_copy(spare: &mut Option<Request>, attempt: u32, max_attempts: u32) -> Option<Request> {
    if attempt + 1 >= max_attempts {
        spare.take()
    } else {
        spare.as_ref().and_then(Request::try_clone)
    }
}

/// A response retried like a failure (a 429, a 408, or one the user's rules name), seen as a
/// failure only to decide on a retry with the same rules.
fn refused_response(response: &reqwest::Response) -> GatewayError {
    let status = response.status();
    let snapshot = ResponseSnapshot::new(
        status,
        response.headers().clone(),
        bytes::Bytes::new(),
        false,
    );
    let (kind, message): (ErrorKind, Cow<'static, str>) = match status {
        StatusCode::TOO_MANY_REQUESTS => (
            ErrorKind::ServiceUnavailable,
            "429 Too Many Requests".into(),
        ),
        StatusCode::REQUEST_TIMEOUT => {
            (ErrorKind::ServiceUnavailable, "408 Request Timeout".into())
        }
        other => (
            ErrorKind::Other,
            format!("{other} (retried by the policy's response rule)").into(),
        ),
    };
    let details = Details::new(kind, Origin::Upstream, message).with_response(snapshot);
    GatewayError::from_details(details)
}

/// The error handed back, with the reason retrying stopped (its attempt count is already set).
fn give_up(mut err: GatewayError, why: Option<Cow<'static, str>>) -> GatewayError {
    if let Some(why) = why {
        err.details_mut().set_gave_up(why);
    }
    err
}

/// Whether an outcome is a good answer (not a failure, nor a response `policy` retries): the
/// answer a race between a call and its hedge ends with.
fn is_good(policy: &RetryPolicy, outcome: &Result<reqwest::Response, GatewayError>) -> bool {
    match outcome {
        Ok(response) => !policy.retries_response(response.status(), response.headers()),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    /// A service whose calls' futures are large (as a real stack's are: the attempt timer, the
    /// transport and reqwest's call), failing at once.
    #[derive(Clone)]
    struct LargeCalls;

    struct LargeCall([u8; CALL]);

    /// The size of one call's future here: larger than the loop's own state, so that two calls
    /// laid out at once cannot fit the bound below whatever the features.
    const CALL: usize = 4096;

    impl Future for LargeCall {
        type Output = Result<reqwest::Response, GatewayError>;

        fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Self::Output> {
            Poll::Ready(Err(GatewayError::new(
                ErrorKind::ConnectFailed,
                format!("refused ({} bytes)", self.0.len()),
            )))
        }
    }

    impl Service<Request> for LargeCalls {
        type Response = reqwest::Response;
        type Error = GatewayError;
        type Future = LargeCall;

        fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), GatewayError>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, _request: Request) -> LargeCall {
            LargeCall([0; CALL])
        }
    }

    #[test]
    fn a_retried_requests_loop_holds_one_call_at_a_time_even_when_it_may_hedge() {
        let inner = reqwest::Request::new(
            http::Method::GET,
            "http://127.0.0.1:9/".parse().expect("url"),
        );
        let mut request = Request::from(inner);
        let policy = RetryPolicy::default().hedge_after(Duration::from_millis(50));
        let ctx = Loop::new(LargeCalls, policy, &mut request);
        let run = ctx.run(Start::Send(request));
        let size = std::mem::size_of_val(&run);
        // A hedge's race holds two calls; it is boxed, so the loop holds one call's size and
        // its own state (under 2 KB with every feature), where it held both before.
        assert!(
            size < 2 * CALL,
            "the loop's future is {size} bytes for calls of {CALL}"
        );
    }
}
