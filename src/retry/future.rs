//! The retry loop of one logical request.

use super::RetryPolicy;
use crate::error::{Details, ErrorKind, GatewayError, Origin, ResponseSnapshot};
use crate::redact::DisplayUrl;
use crate::request::{DeadlineAt, Request, record_attempts};
use http::StatusCode;
use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};
use tower::ServiceExt;
use tower_service::Service;
use tracing::Instrument;

/// The future of [`Retry`](super::Retry).
pub struct ResponseFuture {
    inner: Pin<Box<dyn Future<Output = Result<reqwest::Response, GatewayError>> + Send>>,
}

impl ResponseFuture {
    pub(super) fn new<S>(service: S, policy: RetryPolicy, request: Request) -> Self
    where
        S: Service<Request, Response = reqwest::Response, Error = GatewayError> + Send + 'static,
        S::Future: Send + 'static,
    {
        ResponseFuture {
            inner: Box::pin(run(service, policy, request)),
        }
    }
}

impl Future for ResponseFuture {
    type Output = Result<reqwest::Response, GatewayError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.inner.as_mut().poll(cx)
    }
}

impl std::fmt::Debug for ResponseFuture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

/// What to do after a failed attempt.
enum Next {
    RetryAfter(Duration, &'static str),
    GiveUp(Option<Cow<'static, str>>),
}

async fn run<S>(
    mut service: S,
    policy: RetryPolicy,
    mut request: Request,
) -> Result<reqwest::Response, GatewayError>
where
    S: Service<Request, Response = reqwest::Response, Error = GatewayError> + Send,
    S::Future: Send,
{
    let policy = request.options().retry.clone().unwrap_or(policy);
    let opted_in = request.options().idempotent;
    // Made before any copy, so that every attempt's copy shares it.
    let tracker = request.tracker();
    let deadline = request.state().deadline;
    let method = request.method().clone();
    let idempotent = policy.is_idempotent(&method, request.headers(), opted_in);

    // Span fields borrow the request: nothing is formatted unless a subscriber records them.
    let span = tracing::info_span!(
        "request",
        http.request.method = %method,
        url.full = %DisplayUrl(request.url()),
        attempts = tracing::field::Empty,
    );
    async move {
        // A copy is kept for the next attempt; a streamed body cannot be copied.
        let mut spare = if policy.max_attempts > 1 { request.try_clone() } else { None };
        let replayable = spare.is_some() || policy.max_attempts == 1;
        let mut next_request = Some(request);
        let mut attempt: u32 = 0;
        let mut previous_delay = Duration::ZERO;
        let mut spent: u32 = 0;

        loop {
            attempt += 1;
            tracker.start_attempt(attempt);
            let Some(request) = next_request.take() else {
                // Not reachable: a copy is prepared before every retry. Never a panic, though.
                return Err(GatewayError::new(ErrorKind::Other, "no request left to send"));
            };
            let attempt_span = tracing::info_span!(
                "attempt",
                http.request.method = %method,
                server.address = request.url().host_str().unwrap_or(""),
                url.full = %DisplayUrl(request.url()),
                http.request.resend_count = attempt - 1,
                http.response.status_code = tracing::field::Empty,
                error.type = tracing::field::Empty,
            );
            let outcome = async {
                let ready = service.ready().await?;
                ready.call(request).await
            }
            .instrument(attempt_span.clone())
            .await;

            let mut err = match outcome {
                Ok(response) => {
                    attempt_span.record("http.response.status_code", response.status().as_u16());
                    drop(attempt_span);
                    if policy.retries_response(response.status()) {
                        // A 429 or 408 is not a gateway failure: it is retried like one (hints,
                        // budget, deadline, idempotency), and handed back as it is when not
                        // retried.
                        let limited = refused_response(&response);
                        let next = decide(&policy, &limited, true, attempt, idempotent, replayable, previous_delay, deadline);
                        if let Next::RetryAfter(delay, reason) = charge(&policy, next, false, &mut spent) {
                            if let Some(copy) = next_copy(&mut spare, attempt, policy.max_attempts) {
                                tracing::warn!(attempt, delay_ms = delay.as_millis() as u64, reason, http.response.status_code = response.status().as_u16(), "retrying after a refused response");
                                next_request = Some(copy);
                                previous_delay = delay;
                                drop(response);
                                tokio::time::sleep(delay).await;
                                continue;
                            }
                        }
                        tracing::Span::current().record("attempts", attempt);
                        let mut response = response;
                        record_attempts(&mut response, tracker.attempts());
                        return Ok(response);
                    }
                    if let Some(budget) = &policy.budget {
                        if spent > 0 {
                            budget.refund(spent);
                        } else {
                            budget.reward();
                        }
                    }
                    tracing::Span::current().record("attempts", attempt);
                    let mut response = response;
                    record_attempts(&mut response, tracker.attempts());
                    return Ok(response);
                }
                Err(err) => err,
            };
            attempt_span.record("http.response.status_code", err.status().as_u16());
            attempt_span.record("error.type", err.kind().name());
            // The attempt ends here: the pause before the next one is not part of it.
            drop(attempt_span);
            let attempts = tracker.attempts();
            if err.attempts() < attempts {
                err.details_mut().set_attempts(attempts);
            }
            tracker.record_failure(&err);

            let cause_retried = policy.retries_cause(&err);
            let next = decide(&policy, &err, cause_retried, attempt, idempotent, replayable, previous_delay, deadline);
            match charge(&policy, next, err.kind() == ErrorKind::CgiTimeout, &mut spent) {
                Next::RetryAfter(delay, reason) => {
                    tracing::warn!(
                        attempt,
                        delay_ms = delay.as_millis() as u64,
                        reason,
                        error.type = err.kind().name(),
                        error = %err,
                        "retrying"
                    );
                    // `decide` only retries when a copy exists.
                    next_request = next_copy(&mut spare, attempt, policy.max_attempts);
                    if next_request.is_none() {
                        return Err(give_up(err, Some("the request could not be copied".into())));
                    }
                    previous_delay = delay;
                    tokio::time::sleep(delay).await;
                }
                Next::GiveUp(why) => {
                    if let Some(why) = &why {
                        tracing::warn!(attempt, error.type = err.kind().name(), error = %err, why = %why, "giving up");
                    }
                    tracing::Span::current().record("attempts", attempt);
                    return Err(give_up(err, why));
                }
            }
        }
    }
    .instrument(span)
    .await
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

/// Takes a retry's cost from the budget, or turns the retry into a give-up.
fn charge(policy: &RetryPolicy, next: Next, after_timeout: bool, spent: &mut u32) -> Next {
    match (next, &policy.budget) {
        (Next::RetryAfter(delay, reason), Some(budget)) => {
            let cost = budget.cost(after_timeout);
            if budget.try_withdraw(cost) {
                *spent += cost;
                Next::RetryAfter(delay, reason)
            } else {
                Next::GiveUp(Some("the retry budget is exhausted".into()))
            }
        }
        (next, _) => next,
    }
}

/// A 429 or 408 seen as a failure, only to decide on a retry with the same rules.
fn refused_response(response: &reqwest::Response) -> GatewayError {
    let snapshot = ResponseSnapshot::new(
        response.status(),
        response.headers().clone(),
        bytes::Bytes::new(),
        false,
    );
    let details = Details::new(
        ErrorKind::ServiceUnavailable,
        Origin::Upstream,
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            "429 Too Many Requests".into()
        } else {
            "408 Request Timeout".into()
        },
    )
    .with_response(snapshot);
    GatewayError::from_details(details)
}

/// The error handed back, with the reason retrying stopped (its attempt count is already set).
fn give_up(mut err: GatewayError, why: Option<Cow<'static, str>>) -> GatewayError {
    if let Some(why) = why {
        err.details_mut().set_gave_up(why);
    }
    err
}

#[allow(clippy::too_many_arguments)]
fn decide(
    policy: &RetryPolicy,
    err: &GatewayError,
    cause_retried: bool,
    attempt: u32,
    idempotent: bool,
    replayable: bool,
    previous_delay: Duration,
    deadline: Option<DeadlineAt>,
) -> Next {
    if !cause_retried {
        return Next::GiveUp(None);
    }
    if attempt >= policy.max_attempts {
        // With retries off there is nothing to explain.
        let why = (policy.max_attempts > 1)
            .then(|| format!("all {} attempts failed", policy.max_attempts).into());
        return Next::GiveUp(why);
    }
    if !idempotent && !err.is_request_unsent() {
        return Next::GiveUp(Some(
            "the method is not idempotent and the request may have reached the server (send an Idempotency-Key to allow retries)".into(),
        ));
    }
    if !replayable {
        return Next::GiveUp(Some(
            "the request body is a stream and cannot be sent again".into(),
        ));
    }
    let hint = policy
        .honor_retry_after
        .then(|| err.response())
        .flatten()
        .filter(|r| matches!(r.status().as_u16(), 503 | 429))
        .and_then(|r| super::retry_after(r.headers(), SystemTime::now()));
    let (delay, reason) = match hint {
        Some(asked) if asked > policy.max_retry_after => {
            return Next::GiveUp(Some(
                format!(
                    "the server asked to wait {}s, more than the {}s allowed",
                    asked.as_secs(),
                    policy.max_retry_after.as_secs()
                )
                .into(),
            ));
        }
        Some(asked) => (asked, "Retry-After"),
        None => match policy.backoff.delay(attempt, previous_delay) {
            Some(delay) => (delay, "backoff"),
            None => return Next::GiveUp(Some("the backoff schedule ended".into())),
        },
    };
    if let Some(deadline) = deadline {
        if delay >= deadline.remaining() {
            return Next::GiveUp(Some(
                "the deadline leaves no time for another attempt".into(),
            ));
        }
    }
    Next::RetryAfter(delay, reason)
}
