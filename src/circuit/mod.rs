//! Failing fast: a circuit per upstream host.
//!
//! A dead upstream costs every caller a connect attempt, a timeout, the backoff. With a
//! [`CircuitLayer`] each host (scheme, host, port) the client talks to has a circuit:
//!
//! - **closed** — requests go through, and their outcomes are counted.
//! - **open** — once the host is judged to be failing (below), for a cool-down
//!   ([`open_for`](CircuitLayer::open_for)): requests to that host fail at once with
//!   [`GatewayError::CircuitOpen`] (never sent: its message says how much longer the circuit
//!   stays open and the last cause, which is also its
//!   [`last_cause`](GatewayError::last_cause) and drives its
//!   [`diagnosis`](GatewayError::diagnosis)), without touching the network.
//! - **half-open** — when the cool-down ends, one request is let through as a probe; the others
//!   still fail at once. The probe's success closes the circuit; its failure opens it again, for
//!   longer (up to [`max_open_for`](CircuitLayer::max_open_for)). Each cool-down's length the
//!   host then stays healthy takes one step off that growth.
//!
//! # When it opens
//!
//! By default, when at least half of the host's outcomes in the last 30 s were failures that
//! count, once at least 10 outcomes were seen in that window
//! ([`failure_ratio`](CircuitLayer::failure_ratio),
//! [`minimum_throughput`](CircuitLayer::minimum_throughput),
//! [`sampling_window`](CircuitLayer::sampling_window), as resilience4j and Polly decide).
//! [`consecutive_failures`](CircuitLayer::consecutive_failures) selects a run of failures
//! instead (its trade-off is in its docs).
//!
//! An outcome is a **logical request's** verdict on the host, not an attempt's: below the retry
//! (or deadline) layer, a failed attempt is held on the request until it ends. If the same
//! host answers a later attempt or a hedge of that request, the failure is forgiven: a host
//! that answers every request after a retry is serving, however flaky. If the request ends
//! without the host's answer (it gave up, its deadline passed, the caller dropped it, another
//! fallback server answered), the host is charged once. A half-open probe's verdict is at once,
//! and so is an attempt that no layer above the circuit tracks (a circuit used without the
//! retry and deadline layers judges each call). One exception makes a dead host fail fast:
//! under the ratio rule, a request whose retry fails on the same host too, while the host has
//! answered nothing at all in the window, is charged at once instead of when it ends — else
//! every request in flight would spend all its attempts before the first verdict. ("In the
//! window" counts from the host's first counted failure, when its circuit is first
//! remembered: the answers of a host nobody has seen fail are not kept, which is what keeps
//! the healthy path free; a host that has served for hours and then fails is judged on what
//! it does from then on.) So the
//! circuit never opens on a host whose logical requests all succeed, unless the host answered
//! none of at least [`minimum_throughput`](CircuitLayer::minimum_throughput) requests' first
//! two attempts before any of its answers was seen: a host that, by every sign seen so far, is
//! down (tested under random concurrent schedules in `tests/circuit_evidence.rs`). Answers
//! still in flight are not seen: a host whose failures come back much faster than its answers
//! can meet that bar by chance in a large first wave, which is why the bar is the whole
//! minimum volume and not less. A first attempt alone is never a verdict: requests waiting
//! out the backoff for a retry that would be answered are in no count a circuit can see (a
//! rule that opened on ten failed first attempts with few attempts in flight was measured and
//! not kept; BENCHMARKS.md, "The cold rule").
//!
//! A [`Client`](crate::Client) with a circuit (and no fallback servers) also holds new
//! requests back, briefly, from a host that looks down before its circuit opens: when at
//! least [`minimum_throughput`](CircuitLayer::minimum_throughput) logical requests hold a
//! failed attempt there (their retries pending) and the host has answered nothing in its
//! window, a new request waits, unsent, until the evidence is in. The host answers: it is
//! sent. The circuit opens: it is refused (`CircuitOpen`, 0 attempts). Every request that
//! held a failure there ends: it is sent. Or its hold's bound passes — 1 s, or half of what its
//! deadline leaves if that is less — and it is sent as if it had not been held. A hold ends
//! no request by itself (only an open circuit refuses it); it delays it, and the time held
//! counts in its deadline, so a held request has less time left for its retries.
//! Nothing is judged on a held request; holding only keeps a dead host's first wave from
//! growing while its verdict comes (BENCHMARKS.md, "Holding the first wave"). A
//! [`consecutive_failures`](CircuitLayer::consecutive_failures) rule holds nothing. Each hold
//! is a `debug` event, and so is its end.
//!
//! Fallback servers have circuits too: a fallback server whose circuit is open is skipped
//! (nothing is sent, so even a POST moves on to the next one), and a single fallback server —
//! how relative paths are used — is failed fast like any other host. The fallback layer's own
//! ejection (a run of failures, never every server) works beside it.
//!
//! # What counts
//!
//! The gateway causes, as for ejection: timeouts, connection failures, premature exits, 502s,
//! 503s, 504s and the 502 substatuses. Not a response (a 4xx or an application's own 500 is an
//! answer: the host is up), not an invalid request, not an exceeded deadline, not an attempt
//! timer that fired early because the caller's deadline left less time than the attempt
//! timeout ([`Details::cut_by_deadline`](crate::Details::cut_by_deadline)), not a request the
//! caller dropped before it failed, not a failure after a followed redirect (the redirect's
//! target failed, not this host), not a proxy's refusal, and not the crate's own refusal (an
//! open circuit). [`counts_if`](CircuitLayer::counts_if) replaces the rule.
//!
//! An open circuit's error is not retried by the [retry layer](crate::retry) (see
//! [`ErrorKind::is_retryable`](crate::ErrorKind::is_retryable)): failing fast is the point. A
//! retry or a hedge that the circuit refuses sent nothing: it is not counted as an attempt,
//! its cost goes back to the retry budget, and the request ends with its own last failure, the
//! open circuit given as the reason it was not retried
//! ([`Details::not_retried_because`](crate::Details::not_retried_because)). A request whose
//! attempt fails while its host's circuit is open (opened by other requests) does not pause
//! for a retry the circuit would refuse.
//!
//! # Cost and memory
//!
//! A host is remembered from its first counted failure only: while no host has failed, a
//! request costs a hash of its scheme, host and port and one atomic load. At most
//! [`max_hosts`](CircuitLayer::max_hosts) hosts are remembered; hosts with nothing to remember
//! are forgotten first (failures still held on requests are something to remember), and an
//! open circuit is never forgotten for a newer failure. A
//! remembered host's window is ten counters of successes and failures (one per tenth of the
//! window), updated without locks.
//!
//! # Tracing
//!
//! `INFO` events `circuit opened` (host, cool-down, cause), `circuit half-open: probing` and
//! `circuit closed`.
//!
//! ```no_run
//! use reqwest_resilience::circuit::CircuitLayer;
//! use reqwest_resilience::{Client, ErrorKind};
//!
//! # async fn run() {
//! let client = Client::builder()
//!     .circuit_breaker(CircuitLayer::new().minimum_throughput(10))
//!     .build()
//!     .unwrap();
//! match client.get("http://127.0.0.1:8080/").send().await {
//!     Err(err) if err.kind() == ErrorKind::CircuitOpen => eprintln!("failing fast: {err}"),
//!     other => println!("{other:?}"),
//! }
//! # }
//! ```

mod layer;
mod registry;

pub use layer::CircuitLayer;

use crate::error::{Details, ErrorKind, GatewayError, Origin};
use crate::health::{Admission, Ticket};
use crate::request::Request;
use registry::{Entry, Registry, Verdict};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tower_service::Service;

/// Fails requests to hosts whose circuit is open; see the [module docs](self).
#[derive(Clone)]
pub struct Circuit<S> {
    inner: S,
    registry: Arc<Registry>,
}

impl<S> Circuit<S> {
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

impl<S> std::fmt::Debug for Circuit<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Circuit").finish_non_exhaustive()
    }
}

impl<S> Service<Request> for Circuit<S>
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
        let key = registry::key(request.url());
        let (entry, ticket) = match self.registry.admit(key) {
            Verdict::Tracked(entry, ticket) if ticket.admission == Admission::No => {
                let error = open_error(&entry, request.method());
                if let Some(tracker) = &request.state().tracker {
                    // Numbered by the retry layer, never sent. (The request ends here: a
                    // refusal is never retried, so the retry layer needs no word of it.)
                    tracker.note_refused();
                }
                return ResponseFuture {
                    state: State::Open { error: Some(error) },
                };
            }
            Verdict::Tracked(entry, ticket) => {
                if ticket.is_probe() {
                    tracing::info!(
                        host = entry.name.as_deref().unwrap_or(""),
                        "circuit half-open: probing"
                    );
                    #[cfg(feature = "metrics")]
                    crate::metrics::circuit(entry.name.as_deref(), "half_open");
                }
                (Some(entry), Some(ticket))
            }
            Verdict::Untracked => (None, None),
        };
        let guard = ProbeGuard {
            entry: entry
                .clone()
                .filter(|_| ticket.is_some_and(Ticket::is_probe)),
        };
        // The logical request's tracker: a failed attempt is charged when the request ends,
        // and forgiven if a later attempt is answered by this host.
        let tracker = request.state().tracker.clone();
        // Where no fallback layer picks the server, the next attempt comes back to this host.
        let same_host_next = !request.state().health_judged;
        ResponseFuture {
            state: State::Watching {
                call: self.inner.call(request),
                watch: Some(Watch {
                    registry: self.registry.clone(),
                    key,
                    entry,
                    ticket,
                    guard,
                    tracker,
                    same_host_next,
                }),
            },
        }
    }
}

/// What a request watched by the circuit needs when it ends.
struct Watch {
    registry: Arc<Registry>,
    key: u64,
    entry: Option<Arc<Entry>>,
    ticket: Option<Ticket>,
    guard: ProbeGuard,
    /// The logical request's tracker, if a layer above made one.
    tracker: Option<Arc<crate::request::Tracker>>,
    /// Whether the request's next attempt comes back to this host (no fallback layer).
    same_host_next: bool,
}

/// A logical request's failed attempt on a host, charged to the host's circuit when the
/// request ends without an answer from it (see [`Tracker`](crate::request::Tracker)'s drop).
struct Pending {
    key: u64,
    entry: Arc<Entry>,
    ticket: Ticket,
    err: GatewayError,
    registry: Arc<Registry>,
    /// Charged already (see [`again`](Self::again)): not charged again when the request ends.
    charged: bool,
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl crate::request::HostCharge for Pending {
    fn host(&self) -> u64 {
        self.key
    }

    /// The same request failed on the same host again (its retry did not help). Its latest
    /// failure is the cause kept; and when the host answers nothing at all in its window (no
    /// success from any request), the request is charged now rather than when it ends: a host
    /// that is down is then failed fast once the minimum volume of such requests is reached,
    /// instead of after every request in flight has spent all its attempts. A host that
    /// answers anything is not judged before its requests end.
    fn again(&mut self, err: GatewayError) {
        self.err = err;
        if !self.charged && self.entry.pool.answers_nothing(0) {
            charge(&self.registry, &self.entry, self.ticket, &self.err);
            self.charged = true;
        }
    }

    /// Charges the failure to the host's circuit now, unless it was charged already.
    fn charge(self: Box<Self>) {
        if !self.charged {
            charge(&self.registry, &self.entry, self.ticket, &self.err);
        }
    }
}

impl Drop for Pending {
    /// The request no longer holds a failure here (charged, forgiven, or ended): requests
    /// held back from the host look again.
    fn drop(&mut self) {
        self.entry
            .failing
            .fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
        self.entry.changed();
    }
}

/// Gives the probe slot back if the probe ends without a verdict (dropped, or not counted).
struct ProbeGuard {
    entry: Option<Arc<Entry>>,
}

impl Drop for ProbeGuard {
    fn drop(&mut self) {
        if let Some(entry) = self.entry.take() {
            entry.pool.release_probe(0);
        }
    }
}

pin_project_lite::pin_project! {
    /// The future of [`Circuit`]: the inner call, watched for the host's verdict; or the open
    /// circuit's error at once.
    pub struct ResponseFuture<F> {
        #[pin]
        state: State<F>,
    }
}

pin_project_lite::pin_project! {
    #[project = StateProj]
    enum State<F> {
        Watching { #[pin] call: F, watch: Option<Watch> },
        Open { error: Option<GatewayError> },
    }
}

impl<F> std::fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F> Future for ResponseFuture<F>
where
    F: Future<Output = Result<reqwest::Response, GatewayError>>,
{
    type Output = Result<reqwest::Response, GatewayError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Open { error } => Poll::Ready(Err(error.take().unwrap_or_else(ended))),
            StateProj::Watching { call, watch } => {
                if watch.is_none() {
                    return Poll::Ready(Err(ended()));
                }
                let outcome = std::task::ready!(call.poll(cx));
                if let Some(watch) = watch.take() {
                    judge(watch, &outcome);
                }
                Poll::Ready(outcome)
            }
        }
    }
}

fn ended() -> GatewayError {
    crate::boxed_future::polled_after_end("the circuit")
}

/// Tells the host's circuit how the request ended.
fn judge(mut watch: Watch, outcome: &Result<reqwest::Response, GatewayError>) {
    match outcome {
        // An answer, whatever its status: the host is up.
        Ok(_) => {
            if let Some(tracker) = &watch.tracker {
                // The host answered this logical request: its earlier failed attempts here
                // were a flaky moment, not an outage.
                tracker.forgive(watch.key);
            }
            if let (Some(entry), Some(ticket)) = (&watch.entry, watch.ticket) {
                watch.guard.entry = None;
                if entry.pool.success(0, ticket) {
                    tracing::info!(host = entry.name.as_deref().unwrap_or(""), "circuit closed");
                    #[cfg(feature = "metrics")]
                    crate::metrics::circuit(entry.name.as_deref(), "closed");
                }
                entry.changed();
            } else if let Some(entry) = watch.registry.tracked(watch.key) {
                // Admitted before the host was tracked: its answer still counts as one.
                entry.pool.note_success(0);
                entry.changed();
            }
        }
        Err(err) if watch.registry.counts(err) => {
            let (entry, ticket) = match (watch.entry.take(), watch.ticket) {
                (Some(entry), Some(ticket)) => (entry, ticket),
                // The host's first counted failure: it is remembered from now on.
                _ => {
                    let name = || -> Option<Box<str>> {
                        err.details().server_box().map(|s| host_of(&s).into())
                    };
                    let Some(entry) = watch.registry.entry(watch.key, name) else {
                        return;
                    };
                    let ticket = entry.pool.admit(0);
                    if ticket.admission != Admission::Yes {
                        // Another request opened it or probes it meanwhile: counted already.
                        if ticket.is_probe() {
                            entry.pool.release_probe(0);
                        }
                        if let Some(tracker) =
                            watch.tracker.as_ref().filter(|_| watch.same_host_next)
                        {
                            note_open(tracker, &entry);
                        }
                        return;
                    }
                    (entry, ticket)
                }
            };
            watch.guard.entry = None;
            match &watch.tracker {
                // A probe's verdict is at once; so is an attempt no layer above tracks (its
                // own logical request).
                Some(tracker) if !ticket.is_probe() => {
                    tracker.defer(watch.key, err, || {
                        entry
                            .failing
                            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
                        Box::new(Pending {
                            key: watch.key,
                            entry: entry.clone(),
                            ticket,
                            err: err.clone(),
                            registry: watch.registry.clone(),
                            charged: false,
                        })
                    });
                    if watch.same_host_next {
                        // Open now (opened by other requests meanwhile, or by this failure's
                        // charge): the retry layer need not pause for a retry the circuit
                        // would refuse.
                        note_open(tracker, &entry);
                    }
                }
                Some(tracker) => {
                    charge(&watch.registry, &entry, ticket, err);
                    if watch.same_host_next {
                        // A failed probe re-opened it.
                        note_open(tracker, &entry);
                    }
                }
                None => charge(&watch.registry, &entry, ticket, err),
            }
        }
        // Not a verdict on the host: a probe gives its slot back (the guard does).
        Err(_) => {}
    }
}

/// Charges a counted failure to the host's circuit, which may open it.
fn charge(registry: &Registry, entry: &Entry, ticket: Ticket, err: &GatewayError) {
    entry.set_last_cause(err, registry.now());
    if let Some(cool_down) = entry.pool.failure(0, ticket) {
        entry.changed();
        tracing::info!(
            host = entry.name.as_deref().unwrap_or(""),
            open_for_ms = cool_down.as_millis() as u64,
            error.type = err.kind().name(),
            error = %err,
            "circuit opened"
        );
        #[cfg(feature = "metrics")]
        crate::metrics::circuit(entry.name.as_deref(), "open");
    }
}

/// `scheme://host:port` of a server as shown (its path dropped).
fn host_of(server: &str) -> &str {
    let after_scheme = server.find("://").map_or(0, |i| i + 3);
    match server[after_scheme..].find('/') {
        Some(i) => &server[..after_scheme + i],
        None => server,
    }
}

/// Tells a request's tracker that its host's circuit is open, and until when.
fn note_open(tracker: &crate::request::Tracker, entry: &Entry) {
    if let Some(left) = entry.pool.ejected_for(0) {
        tracker.note_open_circuit(crate::request::OpenCircuit {
            host: entry.name.clone(),
            until: tokio::time::Instant::now() + left,
        });
    }
}

/// A [`Client`](crate::Client)'s check of a request's host before the request enters the
/// stack (a client with a circuit and no fallback layer). A circuit in its cool-down refuses
/// here: no deadline, no retry loop, no copy of the request, no boxed future; a half-open one
/// (probe due, or in flight) leaves the request to the circuit layer, which alone hands out
/// the probe. The error is the one the layer would give: the same message, cause and fields,
/// 0 attempts.
///
/// A host that looks down but whose circuit is still closed holds new requests back (see
/// the module's docs): a request is held ([`Gate::Hold`]) when at least the minimum volume of
/// logical requests hold a failed attempt there and the host has answered nothing in its
/// window. The client's stack bounds the hold and sends the request when it ends.
#[derive(Clone)]
pub(crate) struct FastRefusal {
    pub(super) registry: Arc<Registry>,
}

/// What a client does with a request before its stack.
pub(crate) enum Gate {
    /// Into the stack.
    Go,
    /// Refused: the host's circuit is open.
    Refuse(GatewayError),
    /// Held back until the host's standing changes (see [`FastRefusal`]).
    Hold(Held),
}

/// A request held back from a host that looks down.
pub(crate) struct Held {
    entry: Arc<Entry>,
}

impl FastRefusal {
    /// What to do with `request` before the stack.
    pub(crate) fn check(&self, request: &Request) -> Gate {
        if !self.registry.any_tracked() {
            // No host has failed: nothing to refuse, and no key to hash.
            return Gate::Go;
        }
        let Some(entry) = self.registry.tracked(registry::key(request.url())) else {
            return Gate::Go;
        };
        if entry.pool.ejected_for(0).is_some() {
            return Gate::Refuse(open_error(&entry, request.method()));
        }
        match self.registry.hold_at() {
            Some(hold_at) if looks_down(&entry, hold_at) => Gate::Hold(Held { entry }),
            _ => Gate::Go,
        }
    }
}

/// Whether requests are held back from the host: its circuit is closed, it has answered
/// nothing in its window, and at least `hold_at` logical requests hold a failure there.
fn looks_down(entry: &Entry, hold_at: u32) -> bool {
    !entry.pool.is_ejected(0)
        && entry.failing.load(std::sync::atomic::Ordering::Acquire) >= hold_at
        && entry.pool.answers_nothing(0)
}

impl Held {
    /// The host's name as its first counted failure gave it (for events; no secrets: scheme,
    /// host and port).
    pub(crate) fn host(&self) -> &str {
        self.entry.name.as_deref().unwrap_or("")
    }

    /// How many logical requests hold a failure at the host now.
    pub(crate) fn failing(&self) -> u32 {
        self.entry
            .failing
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Waits until the host's standing changes: `None` when the request may go, or the open
    /// circuit's error.
    pub(crate) async fn wait(&self, method: &reqwest::Method) -> Option<GatewayError> {
        struct Counted<'a>(&'a Entry);
        impl Drop for Counted<'_> {
            fn drop(&mut self) {
                self.0
                    .held
                    .fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
            }
        }
        self.entry
            .held
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let _counted = Counted(&self.entry);
        loop {
            let notified = self.entry.changed.notified();
            let mut notified = std::pin::pin!(notified);
            // Registered before looking, so that a change after the look wakes it (and
            // ordered with `Entry::changed`, which wakes only counted requests).
            notified.as_mut().enable();
            std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
            if self.entry.pool.ejected_for(0).is_some() {
                return Some(open_error(&self.entry, method));
            }
            // Held until the evidence is in: an answer, the circuit's opening, or the end of
            // every request that held a failure here (not of the first: the others' failures
            // may be about to open it).
            if !looks_down(&self.entry, 1) {
                return None;
            }
            notified.await;
        }
    }
}

/// The error of a request refused by an open (or half-open, probe in flight) circuit. Its
/// `Display` says how long the circuit stays open and ends with the last cause.
fn open_error(entry: &Entry, method: &reqwest::Method) -> GatewayError {
    let last = entry.last_cause();
    let host = entry.name.as_deref().unwrap_or("this host");
    // Built by hand: this is the whole cost of failing fast, paid on every refusal.
    let mut message = String::with_capacity(host.len() + 64);
    message.push_str("the circuit of ");
    message.push_str(host);
    match entry.pool.ejected_for(0) {
        Some(left) => {
            message.push_str(" is open for another ");
            crate::error::push_duration(&mut message, left);
            message.push_str(": not sent");
        }
        None => message.push_str(" is half-open, its probe in flight: not sent"),
    }
    let mut details = Details::new(ErrorKind::CircuitOpen, Origin::Local, message.into())
        .with_request_unsent(true);
    if let Some(last) = last {
        details = details.with_shared_causes(last);
    }
    if let Some(name) = &entry.name {
        details.set_server_text(name.clone());
    }
    details.set_method(method.clone());
    GatewayError::from_details(details)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_server_shown_is_cut_to_its_host() {
        assert_eq!(super::host_of("http://a.b/x/y"), "http://a.b");
        assert_eq!(
            super::host_of("https://127.0.0.1:8443/orders/17"),
            "https://127.0.0.1:8443"
        );
        assert_eq!(super::host_of("http://h:1"), "http://h:1");
    }
}
