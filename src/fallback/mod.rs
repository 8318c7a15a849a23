//! Failing over to other servers, ejecting unhealthy ones, and returning when they heal.
//!
//! [`FallbackLayer`] knows an ordered list of base URLs: a primary and its fallbacks (scheme,
//! host, port and an optional path prefix). A request to any of them is sent to the first
//! healthy server in that order — the primary whenever it is healthy — and, on a gateway
//! failure, to the next one, each server at most once per call. With
//! [`Balance::P2cPeakEwma`] the order is by load instead (see [`Balance`]); everything else
//! below holds the same. The path below the prefix and
//! the query are kept; scheme, host, port and prefix are swapped; an explicit `Host` header is
//! rewritten to match. Requests to other hosts pass through untouched. Through the
//! [`Client`](crate::Client), a request may also be given as a path alone (`/items?page=2`),
//! relative to the primary.
//!
//! # When it fails over
//!
//! On a failure whose cause is transient ([`GatewayError::is_transient`]), if the request may
//! be sent again — the same rule as the retry layer: an idempotent method, an `Idempotency-Key`, the
//! caller's opt-in, or a failure that proves the request never reached the server — and its
//! body can be replayed. Otherwise that failure is returned as it is.
//!
//! When every server tried failed, the error is [`GatewayError::NoHealthyServer`] whose
//! [`causes`](crate::Details::causes) hold each server's failure in the order tried (its
//! `Display` names the last); with only one server tried, that server's own error is returned.
//!
//! A response is a failure only when the classifier makes it one (a gateway status, or an
//! application status whose headers name the gateway product that wrote it; see
//! [`classify_response`](crate::classify::classify_response)): a 4xx or an application's own
//! 500 is the server's answer, returned as it is, never failed over and never charged to the
//! server's health. A server whose [circuit](crate::circuit) is open is skipped without sending
//! (even a POST moves on, when its body can be copied: a streamed body is given to the first
//! server tried); when every server's circuit is open the error is
//! [`CircuitOpen`](GatewayError::CircuitOpen), failing fast; and once the caller's deadline
//! has passed no other server is tried.
//!
//! # Health
//!
//! Passive, shared by clones, lock-free: after `consecutive_failures` gateway failures in a row
//! (default 5) a server is ejected for `base_ejection × n` (n-th ejection, capped at
//! `max_ejection`); never more than `max_ejection_percent` of the servers at once (at least one,
//! never all). When the time is up, one request probes it: success restores it (INFO event
//! `server restored`), failure ejects it again for longer. A success resets the count.
//!
//! What counts: the gateway failures, as for the [circuit](crate::circuit#what-counts) — not
//! an answer, an invalid request, an exceeded deadline, an attempt timer that the caller's
//! deadline cut short ([`Details::cut_by_deadline`](crate::Details::cut_by_deadline)), a
//! failure after a followed redirect, a proxy's refusal, or an open circuit's refusal. The run
//! of failures is the fallback's rule (as Envoy's `consecutive_gateway_failure`): with other
//! servers to take the traffic and never every server out, ejecting a flaky primary early
//! costs little; the circuit's ratio over logical requests is what keeps a flaky host serving.
//!
//! # With the retry layer
//!
//! - `RetryLayer` **outside** `FallbackLayer` (the client's order): each attempt runs the
//!   failover chain over the healthy servers at once, with no pause between servers; a retry,
//!   after its pause, runs the chain again (ejected servers skipped).
//! - `RetryLayer` **inside**: each server gets its own retries, with pauses, before the request
//!   fails over to the next.
//!
//! # Credentials
//!
//! Credentials meant for one server never reach another: as reqwest does on a redirect to
//! another host, a request moved to another server loses its `Authorization` and `Cookie`
//! headers, whatever set them (a user name and password in the URL, `basic_auth`,
//! `bearer_auth`, a header of your own), unless
//! [`FallbackBuilder::forward_credentials`] says every server takes them — and even then not
//! from `https` to plain `http` without [`FallbackBuilder::cleartext_credentials`]. A base
//! URL's own user name and password are sent to that server only. Other headers travel.
//!
//! # Failures that are not a server's
//!
//! A forward proxy's refusal (`407` or another answer to `CONNECT`) fails every server the
//! same way: it ends the request at once and is not charged to any server's health; nor is a
//! failure that came after a redirect (the server answered). A failure that would repeat on
//! the same server (a rejected certificate) is not retried there but may fail over.

mod balance;
mod layer;
mod target;

pub use balance::Balance;
pub use layer::{FallbackBuilder, FallbackLayer};
pub use target::InvalidBaseUrl;

use crate::error::{Details, ErrorKind, GatewayError, Origin};
use crate::health::{Admission, Pool, counts_against_health};
use crate::request::{Request, record_attempts};
use std::sync::Arc;
use std::task::{Context, Poll};
use target::BaseUrl;
use tower::ServiceExt;
use tower_service::Service;
use tracing::Instrument;

#[derive(Debug)]
struct Shared {
    servers: Vec<BaseUrl>,
    pool: Pool,
    credentials: target::CredentialRule,
    /// The servers' loads, when balancing ([`Balance::P2cPeakEwma`]).
    loads: Option<balance::Loads>,
}

/// Sends requests to the first healthy of several servers; see the [module docs](self).
#[derive(Debug, Clone)]
pub struct Fallback<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> Fallback<S> {
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

    /// Whether the server at `index` (0 is the primary) is ejected now.
    pub fn is_ejected(&self, index: usize) -> bool {
        index < self.shared.servers.len() && self.shared.pool.is_ejected(index)
    }
}

pub use crate::boxed_future::ResponseFuture;

impl<S> Service<Request> for Fallback<S>
where
    S: Service<Request, Response = reqwest::Response, Error = GatewayError>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = reqwest::Response;
    type Error = GatewayError;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let inner = take_ready(&mut self.inner);
        ResponseFuture::new(fail_over(inner, self.shared.clone(), request))
    }
}

/// Releases a probe slot if the probing request ends without a verdict (e.g. it is dropped).
struct ProbeGuard<'a> {
    pool: &'a Pool,
    index: usize,
    armed: bool,
}

impl Drop for ProbeGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.pool.release_probe(self.index);
        }
    }
}

async fn fail_over<S>(
    mut inner: S,
    shared: Arc<Shared>,
    mut request: Request,
) -> Result<reqwest::Response, GatewayError>
where
    S: Service<Request, Response = reqwest::Response, Error = GatewayError> + Send,
    S::Future: Send,
{
    // Where the path below the base starts: an offset, so that no copy of it is kept.
    let path_len = request.url().path().len();
    let found = shared.servers.iter().enumerate().find_map(|(i, base)| {
        base.path_below(request.url())
            .map(|rest| (i, path_len - rest.len()))
    });
    let Some((home, rest_at)) = found.filter(|_| !request.options().this_server_only) else {
        // Not for these servers, or for the one its URL names only: passed through as it is.
        return inner.ready().await?.call(request).await;
    };
    let opted_in = request.options().idempotent;
    let may_resend = crate::idempotency::may_resend(request.method(), request.headers(), opted_in);
    // Made before any copy, so that every server's copy shares it.
    let tracker = request.tracker();
    let method = request.method().clone();

    let mut original = Some(request);
    let mut causes: Vec<GatewayError> = Vec::new();
    let pool = &shared.pool;
    // A hedge's backup copy starts at the next server, so that it does not queue behind the
    // slow one.
    let n = shared.servers.len();
    let hedge = original.as_ref().is_some_and(|r| r.state().hedge);
    // The server after the first one not ejected (where the first copy went).
    let first = if hedge {
        (0..n).find(|&i| !pool.is_ejected(i)).map_or(0, |f| f + 1)
    } else {
        0
    };
    let deadline = original.as_ref().and_then(|r| r.state().deadline);
    // Balancing: the order by load, servers out last (for their probes); a hedge avoids the
    // server its first copy went to. Primary-first: in the order given.
    let mut balanced = shared.loads.as_ref().map(|loads| {
        let avoid = if hedge { tracker.balanced_to() } else { None };
        // Out: ejected with time still to serve. A server whose ejection time is up is in,
        // to be picked for its probe like any other.
        loads
            .order(n, |i| pool.ejected_for(i).is_some(), avoid)
            .into_iter()
    });
    let mut in_order = (0..n).map(|k| (k + first) % n);
    let mut next = || match &mut balanced {
        Some(order) => order.next(),
        None => in_order.next(),
    };
    while let Some(i) = next() {
        let base = &shared.servers[i];
        if !causes.is_empty() && deadline.is_some_and(|d| d.remaining().is_zero()) {
            // The caller's deadline is over: no other server is tried (the deadline layer
            // reports it, with this failure as its last cause).
            break;
        }
        let ticket = pool.admit(i);
        let admission = ticket.admission;
        if admission == Admission::No {
            continue;
        }
        let mut guard = ProbeGuard {
            pool,
            index: i,
            armed: admission == Admission::Probe,
        };
        // Keep the original for the next server when the body allows a copy.
        let Some(template) = original.take() else {
            break;
        };
        let mut this = match template.try_clone() {
            Some(copy) => {
                original = Some(template);
                copy
            }
            None => template,
        };
        if i != home {
            base.retarget(this.url_and_headers_mut(), rest_at, shared.credentials);
        }
        this.state_mut().health_judged = true;
        let span = tracing::info_span!(
            "server",
            server.address = this.url().host_str().unwrap_or(""),
            url.full = %base.display(),
            fallback.index = i,
            probe = admission == Admission::Probe,
            http.response.status_code = tracing::field::Empty,
            error.type = tracing::field::Empty,
        );
        if !hedge {
            tracker.note_balanced(i);
        }
        let flight = shared.loads.as_ref().map(|loads| loads.start(i));
        let outcome = async { inner.ready().await?.call(this).await }
            .instrument(span.clone())
            .await;
        if let Some(flight) = flight {
            match &outcome {
                // A server shedding load answers fast: not a cheap one.
                Ok(response) if response.status() == http::StatusCode::TOO_MANY_REQUESTS => {
                    flight.failed()
                }
                Ok(_) => flight.answered(),
                Err(err) if counts_against_health(err) => flight.failed(),
                // No verdict (the deadline cut it, an answer-like failure): its time so far
                // is still what it took (dropped, it is recorded the same way).
                Err(_) => drop(flight),
            }
        }
        match &outcome {
            Ok(response) => crate::error::record_outcome(&span, Some(response.status()), None),
            Err(err) => crate::error::record_outcome(&span, None, Some(err)),
        };
        drop(span);
        let mut err = match outcome {
            Ok(mut response) => {
                guard.armed = false;
                if pool.success(i, ticket) {
                    tracing::info!(server = %base.display(), "server restored");
                    #[cfg(feature = "metrics")]
                    crate::metrics::fallback(base.display(), false);
                }
                record_attempts(&mut response, tracker.attempts());
                return Ok(response);
            }
            Err(err) => err,
        };
        if counts_against_health(&err) {
            guard.armed = false;
            if let Some(time) = pool.failure(i, ticket) {
                tracing::info!(server = %base.display(), ejected_for_ms = time.as_millis() as u64, error = %err, "server ejected");
                #[cfg(feature = "metrics")]
                crate::metrics::fallback(base.display(), true);
            }
        }
        drop(guard);
        if err.kind() == ErrorKind::CircuitOpen {
            // The server's circuit is open: nothing was sent, the next server is tried. The
            // refusal is no failure of this request's (the tracker keeps the last real one).
            causes.push(err);
            continue;
        }
        // This logical request's count so far (servers tried, and earlier attempts).
        err.details_mut().set_attempts(tracker.attempts());
        tracker.record_failure(&err);
        // A permanent failure (a rejected certificate) may not be another server's: the kind
        // decides whether to fail over; a proxy's refusal is every server's.
        if !err.kind().is_retryable() || err.details().is_proxy_refusal() {
            return Err(err);
        }
        if !may_resend && !err.is_request_unsent() {
            err.details_mut().set_gave_up(
                "the method is not idempotent and the request may have reached the server; not sent to another server",
            );
            return Err(err);
        }
        if original.is_none() {
            err.details_mut()
                .set_gave_up("the request body is a stream and cannot be sent to another server");
            return Err(err);
        }
        causes.push(err);
    }
    Err(all_failed(causes, &method, tracker.attempts()))
}

fn all_failed(
    mut causes: Vec<GatewayError>,
    method: &reqwest::Method,
    attempts: u32,
) -> GatewayError {
    match causes.len() {
        0 => {
            let details = Details::new(
                ErrorKind::NoHealthyServer,
                Origin::Local,
                "no healthy server left".into(),
            )
            .with_request_unsent(true);
            GatewayError::from_details(details)
        }
        1 => causes.remove(0),
        n if causes.iter().all(|c| c.kind() == ErrorKind::CircuitOpen) => {
            // Every server's circuit is open: fail fast, as one open circuit does (an open
            // circuit is never retried), not as a transient `NoHealthyServer`.
            let mut details = Details::new(
                ErrorKind::CircuitOpen,
                Origin::Local,
                format!("the circuits of all {n} servers are open: not sent").into(),
            )
            .with_request_unsent(true)
            .with_causes(causes);
            details.set_method(method.clone());
            details.set_attempts(attempts);
            GatewayError::from_details(details)
        }
        n => {
            let unsent = causes.iter().all(GatewayError::is_request_unsent);
            // Every server failed in a way that would repeat: retrying the chain cannot help.
            let permanent = causes.iter().all(|c| c.details().is_permanent());
            let mut details = Details::new(
                ErrorKind::NoHealthyServer,
                Origin::Local,
                format!("all {n} servers tried failed").into(),
            )
            .with_request_unsent(unsent)
            .with_permanent(permanent)
            .with_causes(causes);
            details.set_method(method.clone());
            details.set_attempts(attempts);
            GatewayError::from_details(details)
        }
    }
}

/// Takes the service that `poll_ready` made ready for this call, leaving a fresh clone for the
/// next one (the tower idiom for services moved into a future).
fn take_ready<S: Clone>(service: &mut S) -> S {
    let clone = service.clone();
    std::mem::replace(service, clone)
}
