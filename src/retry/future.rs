//! The retry loop of one logical request.

use super::RetryPolicy;
use crate::error::{Details, ErrorKind, GatewayError, Origin, ResponseSnapshot};
use crate::policy::retry::{AttemptFacts, Next};
use crate::redact::DisplayUrl;
use crate::request::{Request, record_attempts};
use http::StatusCode;
use std::borrow::Cow;
use std::time::Duration;
use tower::ServiceExt;
use tower_service::Service;
use tracing::Instrument;

pub use crate::boxed_future::ResponseFuture;

impl ResponseFuture {
    pub(super) fn retrying<S>(service: S, policy: RetryPolicy, request: Request) -> Self
    where
        S: Service<Request, Response = reqwest::Response, Error = GatewayError> + Send + 'static,
        S::Future: Send + 'static,
    {
        ResponseFuture::new(run(service, policy, request))
    }
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

            let facts = AttemptFacts {
                number: attempt,
                idempotent,
                replayable,
                previous_delay,
                deadline,
            };
            let mut err = match outcome {
                Ok(mut response) => {
                    attempt_span.record("http.response.status_code", response.status().as_u16());
                    drop(attempt_span);
                    if !policy.retries_response(response.status()) {
                        policy.settle(spent);
                    } else {
                        // A 429 or 408 is not a gateway failure: it is retried like one (hints,
                        // budget, deadline, idempotency), and handed back as it is when not.
                        let mut refused = refused_response(&response);
                        refused.details_mut().set_attempts(tracker.attempts());
                        tracker.record_failure(&refused);
                        let step = policy.charge(policy.decide(&refused, true, &facts), false, &mut spent);
                        let copy = match step {
                            Next::RetryAfter(..) => next_copy(&mut spare, attempt, policy.max_attempts),
                            Next::GiveUp(_) => None,
                        };
                        if let (Next::RetryAfter(delay, reason), Some(copy)) = (step, copy) {
                            tracing::warn!(attempt, delay_ms = delay.as_millis() as u64, reason, http.response.status_code = response.status().as_u16(), "retrying after a refused response");
                            next_request = Some(copy);
                            previous_delay = delay;
                            drop(response);
                            tokio::time::sleep(delay).await;
                            continue;
                        }
                    }
                    tracing::Span::current().record("attempts", attempt);
                    record_attempts(&mut response, tracker.attempts());
                    return Ok(response);
                }
                Err(err) => err,
            };
            attempt_span.record("http.response.status_code", err.status().as_u16());
            attempt_span.record("error.type", err.kind().name());
            // The attempt ends here: the pause before the next one is not part of it.
            drop(attempt_span);
            // This logical request's count (an inner client's error carries its own).
            err.details_mut().set_attempts(tracker.attempts());
            tracker.record_failure(&err);

            let next = policy.decide(&err, policy.retries_cause(&err), &facts);
            match policy.charge(next, err.kind() == ErrorKind::CgiTimeout, &mut spent) {
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
