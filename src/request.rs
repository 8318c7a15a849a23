//! The request every layer of this crate takes: a `reqwest::Request` and the state of its logical
//! request, carried together.
//!
//! A logical request (what the caller asked for once) may become several HTTP requests:
//! retries, failovers. What the layers must share about it travels *in the request value*
//! they pass down, never in ambient state: the caller's per-request [`RequestOptions`], the
//! deadline a deadline layer set, and a tracker of what happened so far (requests put on the
//! wire, response heads, redirects, the last failure). So the state survives `tower::buffer`,
//! a spawn, or any layer of your own by construction, and two clients never share it: a
//! client's stack used inside another ([`Client::into_service`](crate::Client::into_service))
//! starts each call with fresh state.
//!
//! Why a type of the crate's own rather than `http::Request` with the state in its
//! extensions: `reqwest::Request` keeps its extensions private, and converting to and from
//! `http::Request` on every hop formats and re-parses the URL (`reqwest`'s
//! `TryFrom<http::Request>` calls `Url::parse`), a cost on every healthy request (see
//! `benches/overhead.rs`, `request_state`). Wrapping costs nothing.

pub(crate) use crate::clock::{DeadlineAt, instant_after};
use crate::error::GatewayError;
use crate::policy::retry::RetryPolicy;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// A `reqwest::Request` on its way through the layers, with its logical request's state.
///
/// Make one from a `reqwest::Request` with `Request::from` (or `.into()`); set per-request
/// options with [`options_mut`](Self::options_mut). The [`Client`](crate::Client) does both for
/// you.
///
/// ```
/// use reqwest_resilience::Request;
/// use std::time::Duration;
///
/// let inner = reqwest::Request::new(reqwest::Method::GET, "http://127.0.0.1:8080/".parse().unwrap());
/// let mut request = Request::from(inner);
/// request.options_mut().deadline = Some(Duration::from_secs(2));
/// assert_eq!(request.url().path(), "/");
/// ```
pub struct Request(Box<Parts>);

/// What a [`Request`] holds, in one allocation: the request is moved through every layer (and
/// into each layer's future), and a pointer moves for nothing where the parts (over 400 bytes)
/// would be copied at each move.
struct Parts {
    inner: reqwest::Request,
    options: RequestOptions,
    state: State,
    /// `inner` was built by reqwest's `RequestBuilder` through this crate's and not handed out
    /// mutably since: its extensions hold at most reqwest's timeout setting, so a copy for a
    /// retry need not go through `reqwest::Request::try_clone` (see `copy_built_here`).
    built_here: bool,
}

/// What a caller may set for one request, read by the layers it goes through.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct RequestOptions {
    /// Retry this request by this policy instead of the retry layer's (its budget is its own).
    pub retry: Option<RetryPolicy>,
    /// The request is safe to repeat although its method is not idempotent.
    pub idempotent: bool,
    /// Each attempt's timeout instead of the attempt timeout layer's (`Duration::ZERO`: none).
    pub attempt_timeout: Option<Duration>,
    /// The deadline instead of the deadline layer's (`Duration::ZERO`: none).
    pub deadline: Option<Duration>,
    /// Sent to the server its URL names and no other: a fallback layer neither re-targets it
    /// to the primary nor fails it over (to reach one replica of several, say).
    pub this_server_only: bool,
}

/// What the layers set for the layers below them.
#[derive(Debug, Clone, Default)]
pub(crate) struct State {
    /// The deadline in force, set by a deadline layer.
    pub(crate) deadline: Option<DeadlineAt>,
    /// Shared by every copy of the logical request (each retry, each server tried).
    pub(crate) tracker: Option<Arc<Tracker>>,
    /// Sent to a fallback server by the fallback layer, which judges that server's health: a
    /// circuit layer below lets it through.
    pub(crate) health_judged: bool,
    /// A hedge's backup copy: a fallback layer sends it to the next server.
    pub(crate) hedge: bool,
    /// When this attempt's own timer fires (the attempt timeout layer's), for a deadline
    /// header: the server is told the sooner of this and the deadline.
    pub(crate) attempt_ends: Option<tokio::time::Instant>,
    /// The deadline (when it falls) whose bound on the response body the caller applies as
    /// the body is read (a [`Client`](crate::Client) does, in its
    /// [`Response`](crate::Response)): a deadline layer that settles on this one hands the
    /// response back as it came, with no body wrapped around it.
    pub(crate) body_bound_by_caller: Option<tokio::time::Instant>,
    /// Set by a client's retry loop on an attempt sent while it keeps a copy of the same URL,
    /// when nothing between the loop and the attempt timeout below it re-targets the request
    /// or reads an error's server (a client without fallback servers or a circuit): the
    /// attempt timeout then keeps no copy of the URL for its error, and the loop names the
    /// server itself.
    pub(crate) server_named_above: bool,
}

impl Request {
    /// The `reqwest::Request`.
    pub fn inner(&self) -> &reqwest::Request {
        &self.0.inner
    }

    /// The `reqwest::Request`, mutably.
    pub fn inner_mut(&mut self) -> &mut reqwest::Request {
        // It may be replaced whole: its copies go through `reqwest::Request::try_clone` now.
        self.0.built_here = false;
        &mut self.0.inner
    }

    /// The `reqwest::Request`, unwrapped.
    pub fn into_inner(self) -> reqwest::Request {
        self.0.inner
    }

    /// The per-request options.
    pub fn options(&self) -> &RequestOptions {
        &self.0.options
    }

    /// The per-request options, mutably.
    pub fn options_mut(&mut self) -> &mut RequestOptions {
        &mut self.0.options
    }

    /// The request's URL.
    pub fn url(&self) -> &reqwest::Url {
        self.0.inner.url()
    }

    /// The request's method.
    pub fn method(&self) -> &reqwest::Method {
        self.0.inner.method()
    }

    /// The request's headers.
    pub fn headers(&self) -> &http::HeaderMap {
        self.0.inner.headers()
    }

    /// Attempts made so far for this logical request (0 before the first).
    pub fn attempts(&self) -> u32 {
        self.0.state.tracker.as_ref().map_or(0, |t| t.attempts())
    }

    /// A copy for another attempt (same options and state), when the body can be copied.
    pub(crate) fn try_clone(&self) -> Option<Request> {
        let parts = &self.0;
        if !parts.built_here || parts.inner.body().is_some() {
            return Some(Request(Box::new(Parts {
                inner: parts.inner.try_clone()?,
                options: parts.options.clone(),
                state: parts.state.clone(),
                built_here: parts.built_here,
            })));
        }
        // Built in its allocation, then completed there (reqwest's request is not moved).
        let mut copy = Box::new(Parts {
            inner: reqwest::Request::new(parts.inner.method().clone(), parts.inner.url().clone()),
            options: parts.options.clone(),
            state: parts.state.clone(),
            built_here: true,
        });
        copy_built_here(&parts.inner, &mut copy.inner);
        Some(Request(copy))
    }

    /// The `reqwest::Request`, for a change of its URL and headers only (a re-targeted copy):
    /// unlike [`inner_mut`](Self::inner_mut), its copies still need no
    /// `reqwest::Request::try_clone`, since its extensions are left as they were.
    pub(crate) fn url_and_headers_mut(&mut self) -> &mut reqwest::Request {
        &mut self.0.inner
    }

    pub(crate) fn state(&self) -> &State {
        &self.0.state
    }

    pub(crate) fn state_mut(&mut self) -> &mut State {
        &mut self.0.state
    }

    /// The tracker, made now if no layer above made one.
    pub(crate) fn tracker(&mut self) -> Arc<Tracker> {
        self.0
            .state
            .tracker
            .get_or_insert_with(Arc::default)
            .clone()
    }

    /// The same HTTP request as a new logical request (for a client's stack used inside
    /// another stack): a request that already went through layers (it has state) belonged to
    /// another logical request, whose options and state are not this one's; a request made for
    /// this call (no state yet) keeps its options.
    pub(crate) fn fresh(self) -> Request {
        let outer = self.0.state.tracker.is_some() || self.0.state.deadline.is_some();
        if outer {
            Request::from(self.0.inner)
        } else {
            self
        }
    }

    #[inline]
    pub(crate) fn from_parts(inner: reqwest::Request, options: RequestOptions) -> Request {
        Request(Box::new(Parts {
            inner,
            options,
            state: State::default(),
            built_here: false,
        }))
    }

    /// A request whose `reqwest::Request` this crate's
    /// [`RequestBuilder`](crate::RequestBuilder) built (see `built_here`).
    #[inline]
    pub(crate) fn built_here(inner: reqwest::Request, options: RequestOptions) -> Request {
        let mut request = Request::from_parts(inner, options);
        request.0.built_here = true;
        request
    }
}

/// Makes `copy` (a request of `request`'s method and URL) a copy of `request`, which was built
/// by reqwest's `RequestBuilder` through this crate's and has no body: the same as
/// `reqwest::Request::try_clone`, without the extension map `try_clone` makes (and hashes
/// into) to copy a timeout setting even when there is none. Such a request's extensions hold
/// at most that setting (reqwest's builder sets no other, and `reqwest::Request` lets no one
/// else write them but by `timeout_mut`), so the setting is all there is to copy. (A body's
/// copy is reqwest's to make: such a request goes through `try_clone`.)
fn copy_built_here(request: &reqwest::Request, copy: &mut reqwest::Request) {
    // A request without headers of its own (reqwest adds its defaults when sending) keeps
    // the copy's empty map: nothing to clone, and none dropped.
    if !request.headers().is_empty() {
        *copy.headers_mut() = request.headers().clone();
    }
    *copy.version_mut() = request.version();
    if let Some(timeout) = request.timeout() {
        *copy.timeout_mut() = Some(*timeout);
    }
}

impl std::fmt::Debug for Request {
    /// Method, URL as it may be shown (no credentials, query or fragment), and options: never
    /// header values.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("method", self.method())
            .field("url", &crate::redact::DisplayUrl(self.url()).to_string())
            .field("options", self.options())
            .finish_non_exhaustive()
    }
}

impl From<reqwest::Request> for Request {
    fn from(inner: reqwest::Request) -> Self {
        Request::from_parts(inner, RequestOptions::default())
    }
}

/// What happened so far to one logical request, shared by its copies. Each count has one
/// writer: the transport counts sends, response heads and redirects; the retry layer numbers
/// its attempts; the retry and fallback layers record the failures they saw. The attempts
/// reported (on errors, and on responses through [`attempts`]) are
/// [`Tracker::attempts`]: the sends, or the retry layer's attempt number over a service that
/// is not the transport.
#[derive(Debug, Default)]
pub(crate) struct Tracker {
    sends: AtomicU32,
    attempt: AtomicU32,
    heads: AtomicU32,
    redirects: AtomicU32,
    redirect_target: Mutex<Option<Box<str>>>,
    last_failure: Mutex<Option<GatewayError>>,
    /// Attempts the crate refused itself before sending (an open circuit): numbered by the
    /// retry layer, never on the wire.
    refused: AtomicU32,
    /// Whether an earlier failure of this request may have reached a server: then nothing the
    /// request ends with proves it unsent.
    maybe_delivered: std::sync::atomic::AtomicBool,
    /// The circuit that this request's own failures found or left open, with when it closes
    /// (set where no fallback layer picks the server: the next attempt goes to the same host).
    open_circuit: Mutex<Option<OpenCircuit>>,
    /// Failed attempts not charged to their host's circuit yet, one per host: charged when the
    /// logical request ends (this tracker is dropped), forgiven if the host answers it.
    pending: Mutex<Vec<Box<dyn HostCharge>>>,
    /// The fallback server this request's latest copy went to, plus one (0: none yet), so that
    /// a balancing fallback layer sends a hedge elsewhere.
    balanced_to: std::sync::atomic::AtomicUsize,
    /// Whether this request's attempts carry the deadline header: a redirect to another host
    /// is then not followed (reqwest would copy the header to it).
    deadline_header: std::sync::atomic::AtomicBool,
}

impl Drop for Tracker {
    fn drop(&mut self) {
        let pending = std::mem::take(
            self.pending
                .get_mut()
                .unwrap_or_else(PoisonError::into_inner),
        );
        for failure in pending {
            failure.charge();
        }
    }
}

/// A failed attempt's charge against its host, held until the logical request ends (the
/// circuit's, which this module need not know).
pub(crate) trait HostCharge: Send + Sync + std::fmt::Debug {
    /// The host's key (see `host::key`).
    fn host(&self) -> u64;
    /// The same request failed on the same host again, with `err`.
    fn again(&mut self, err: GatewayError);
    /// The request ended without the host's answer: charge it now.
    fn charge(self: Box<Self>);
}

/// A host's circuit, open until `until`, as a request met it.
#[derive(Debug, Clone)]
pub(crate) struct OpenCircuit {
    pub(crate) host: Option<Box<str>>,
    pub(crate) until: tokio::time::Instant,
}

impl Tracker {
    /// Notes that this request's attempts carry the deadline header.
    pub(crate) fn note_deadline_header(&self) {
        self.deadline_header.store(true, Ordering::Relaxed);
    }

    /// Whether this request's attempts carry the deadline header.
    pub(crate) fn carries_deadline_header(&self) -> bool {
        self.deadline_header.load(Ordering::Relaxed)
    }

    /// Notes the fallback server (by index) this request's copy goes to.
    pub(crate) fn note_balanced(&self, server: usize) {
        self.balanced_to
            .store(server.saturating_add(1), Ordering::Relaxed);
    }

    /// The fallback server this request's latest copy went to.
    pub(crate) fn balanced_to(&self) -> Option<usize> {
        self.balanced_to.load(Ordering::Relaxed).checked_sub(1)
    }

    /// Counts one more request put on the wire.
    pub(crate) fn count_send(&self) {
        self.sends.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn sends(&self) -> u32 {
        self.sends.load(Ordering::Relaxed)
    }

    /// Notes that the retry layer started its attempt number `n`.
    pub(crate) fn start_attempt(&self, n: u32) {
        self.attempt.store(n, Ordering::Relaxed);
    }

    /// Attempts so far: requests put on the wire, or attempts started where no transport
    /// counts (a service of your own below the retry layer), less those the crate refused
    /// itself (an open circuit).
    pub(crate) fn attempts(&self) -> u32 {
        let started = self
            .attempt
            .load(Ordering::Relaxed)
            .saturating_sub(self.refused.load(Ordering::Relaxed));
        self.sends().max(started)
    }

    /// Notes that an attempt was refused before it was sent (an open circuit).
    pub(crate) fn note_refused(&self) {
        self.refused.fetch_add(1, Ordering::Relaxed);
    }

    /// Notes that the host this request's next attempt goes to has its circuit open.
    pub(crate) fn note_open_circuit(&self, circuit: OpenCircuit) {
        *self
            .open_circuit
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(circuit);
    }

    /// Holds a failed attempt's charge to its host's circuit until the logical request ends
    /// (one per host: the latest failure is the cause kept, the first admission's ticket).
    pub(crate) fn defer(
        &self,
        host: u64,
        err: &GatewayError,
        first: impl FnOnce() -> Box<dyn HostCharge>,
    ) {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        match pending.iter_mut().find(|p| p.host() == host) {
            Some(earlier) => earlier.again(err.clone()),
            None => pending.push(first()),
        }
    }

    /// Drops the pending charge to the host of `key`: it answered this logical request.
    pub(crate) fn forgive(&self, key: u64) {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        if !pending.is_empty() {
            pending.retain(|p| p.host() != key);
        }
    }

    /// The open circuit this request met, if any.
    pub(crate) fn open_circuit(&self) -> Option<OpenCircuit> {
        self.open_circuit
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Notes that the transport received a response head (it then reads the start of a 5xx
    /// body).
    pub(crate) fn note_head(&self) {
        self.heads.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn heads(&self) -> u32 {
        self.heads.load(Ordering::Relaxed)
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

    pub(crate) fn redirects(&self) -> u32 {
        self.redirects.load(Ordering::Relaxed)
    }

    /// The last redirect's target (scheme, host, port, path).
    pub(crate) fn redirect_target(&self) -> Option<Box<str>> {
        self.redirect_target
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Whether a failure recorded so far may have reached a server.
    pub(crate) fn maybe_delivered(&self) -> bool {
        self.maybe_delivered.load(Ordering::Relaxed)
    }

    fn note_delivery(&self, err: &GatewayError) {
        if !err.is_request_unsent() {
            self.maybe_delivered.store(true, Ordering::Relaxed);
        }
    }

    /// Remembers the latest failure, for an error that ends the request later (the deadline).
    pub(crate) fn record_failure(&self, err: &GatewayError) {
        self.note_delivery(err);
        *self
            .last_failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(err.clone());
    }

    /// Remembers the latest failure, given up by its owner (no copy).
    pub(crate) fn record_failure_owned(&self, err: GatewayError) {
        self.note_delivery(&err);
        *self
            .last_failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(err);
    }

    pub(crate) fn last_failure(&self) -> Option<GatewayError> {
        self.last_failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// How many requests were put on the wire for the logical request that `response` answers: the
/// retry and fallback layers record it on the response when it is more than one (an
/// `http.request.resend_count` of `attempts - 1`), so a response they did not mark took one.
///
/// ```
/// let response = reqwest::Response::from(http::Response::new(""));
/// assert_eq!(reqwest_resilience::attempts(&response), 1);
/// ```
pub fn attempts(response: &reqwest::Response) -> u32 {
    response.extensions().get::<Attempts>().map_or(1, |a| a.0)
}

/// The attempts recorded on a response (see [`attempts`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Attempts(pub(crate) u32);

/// Records `n` attempts on `response`: as an extension when more than one, none when one (so a
/// count an inner client recorded for its own logical request does not stay).
pub(crate) fn record_attempts(response: &mut reqwest::Response, n: u32) {
    if n > 1 {
        response.extensions_mut().insert(Attempts(n));
    } else if response.extensions().get::<Attempts>().is_some() {
        response.extensions_mut().remove::<Attempts>();
    }
}

/// A client's whole stack as a service of its own: every call is a new logical request, so
/// that a client used inside another stack never shares the outer request's deadline, tracker
/// or attempt count.
#[derive(Clone)]
pub(crate) struct Isolated<S>(pub(crate) S);

impl<S> tower_service::Service<Request> for Isolated<S>
where
    S: tower_service::Service<Request, Response = reqwest::Response, Error = GatewayError>,
{
    type Response = reqwest::Response;
    type Error = GatewayError;
    type Future = S::Future;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), GatewayError>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        self.0.call(request.fresh())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A body-less request the client's builder made is copied field by field (not through
    /// `reqwest::Request::try_clone`): the copy is the same request, headers or none.
    #[test]
    fn a_copy_of_a_request_built_here_is_the_same_request() {
        let url: reqwest::Url = "http://user:pw@a.test:8080/p?q=1#f".parse().unwrap();
        let mut with_headers = reqwest::Request::new(http::Method::PUT, url.clone());
        with_headers
            .headers_mut()
            .insert("x-one", http::HeaderValue::from_static("1"));
        with_headers
            .headers_mut()
            .append("x-one", http::HeaderValue::from_static("2"));
        *with_headers.version_mut() = http::Version::HTTP_2;
        *with_headers.timeout_mut() = Some(std::time::Duration::from_millis(1500));
        let bare = reqwest::Request::new(http::Method::GET, url);
        for inner in [with_headers, bare] {
            let original = Request::built_here(inner, RequestOptions::default());
            let copy = original.try_clone().expect("a body-less request is copied");
            let (a, b) = (original.inner(), copy.inner());
            assert_eq!(a.method(), b.method());
            assert_eq!(a.url(), b.url());
            assert_eq!(a.headers(), b.headers());
            assert_eq!(a.version(), b.version());
            assert_eq!(a.timeout(), b.timeout());
            assert!(b.body().is_none());
        }
    }
}
