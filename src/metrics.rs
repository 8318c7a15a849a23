//! Metrics through the [`metrics`](https://docs.rs/metrics) facade, version 0.24 (feature
//! `metrics`).
//!
//! With the feature on, the crate emits, to whatever recorder the application installed (a
//! Prometheus or OpenTelemetry exporter built on `metrics` 0.24, or your own), with
//! OpenTelemetry's HTTP semantic-convention names and attributes where they exist, and the
//! crate's own instruments in the `reqwest_resilience.` namespace:
//!
//! | name | kind, unit | attributes | what |
//! |---|---|---|---|
//! | `http.client.request.duration` | histogram, `s` | `http.request.method`, `server.address`, `server.port`, `url.scheme`, `http.response.status_code` (when a response came), `error.type` (see below), `reqwest_resilience.cause` (a failure's cause) | each HTTP request put on the wire (each attempt, each hedge), exactly once, whatever ended it: its response head, its failure, its attempt timeout or the deadline (`error.type` `timeout`), a lost hedge race or the caller dropping it (`cancelled`) |
//! | `reqwest_resilience.request.resends` | histogram, `{request}` | `http.request.method`, `server.address`, `server.port`, `url.scheme` | per logical request, however it ended (the deadline included): the requests sent beyond the first (retries and hedges); the last attempt's number is also each attempt span's `http.request.resend_count` |
//! | `reqwest_resilience.retries` | counter, `{retry}` | `error.type` (a cause, or `http_429`, `http_408`, `http_response` for a response rule) | retries decided |
//! | `reqwest_resilience.give_ups` | counter, `{request}` | `error.type`, `reason` (`not_retryable`, `attempts`, `budget`, `not_idempotent`, `body_not_replayable`, `retry_after_too_long`, `circuit_open`, `deadline`, `backoff_ended`, `other`) | failures returned, by why retrying stopped; a request that ends at its deadline counts here (`deadline_exceeded`, `deadline`) |
//! | `reqwest_resilience.retry_budget.available` | gauge, `{token}` | `server.address`, `server.port`, `url.scheme` (none with a per-client budget) | the tokens left in a host's bucket, set whenever they move: a retry or a hedge withdrawn, a refund, a first-attempt success's reward, the bucket forgotten (back to the capacity) |
//! | `reqwest_resilience.hedges` | counter, `{request}` | `server.address`, `server.port`, `url.scheme` | backup copies sent |
//! | `reqwest_resilience.fallback.ejections`, `reqwest_resilience.fallback.restorations` | counters, `{server}` | `server.address`, `server.port`, `url.scheme` | fallback servers ejected and restored |
//! | `reqwest_resilience.circuit.transitions` | counter, `{transition}` | `server.address`, `server.port`, `url.scheme`, `state` (`open`, `half_open`, `closed`) | circuit state changes |
//!
//! `error.type` on `http.client.request.duration` follows the conventions: the status code
//! (`"404"`, `"502"`) when a response with an error status came (≥ 400), `timeout` when a
//! timer ended the request, `cancelled` when it was dropped, and otherwise the cause's
//! [`ErrorKind::name`](crate::ErrorKind::name) (`connect_failed`, `name_not_resolved`…); the
//! crate's reading of a failed response is in `reqwest_resilience.cause` (`bad_gateway`,
//! `connect_failed` for an IIS 502.3 page…).
//!
//! A host's bucket forgotten to make room (past `RetryBudget::max_hosts`) sets its gauge back
//! to the capacity: its next bucket starts full. Known gap: the instruments' descriptions and
//! units go to the recorder in place at the first recording only (install the exporter before
//! the first request).
//!
//! Every attribute has a bounded set of values: hosts and ports, never a path, a query, a
//! credential or a value a user sends; a method other than the nine standard ones is
//! `_OTHER`. With the feature off, none of this is compiled. With it on and no recorder
//! installed, the facade's calls are no-ops apart from building the labels (measured in
//! BENCHMARKS.md).
//!
//! ```no_run
//! // Install any `metrics` 0.24 recorder once at start-up, e.g.
//! // metrics_exporter_prometheus::PrometheusBuilder::new().install().unwrap(); then:
//! # async fn run() {
//! let client = reqwest_resilience::Client::new();
//! let _ = client.get("http://127.0.0.1:8080/").send().await;
//! # }
//! ```
//! `cargo run --example metrics --features metrics` prints what a run records, with
//! `metrics-exporter-prometheus`.

use metrics::{Label, SharedString};
use std::cell::Cell;
use std::sync::{Arc, LazyLock, OnceLock, PoisonError, RwLock};
use std::time::{Duration, Instant};

/// Describes the instruments with their units, once, to the recorder of the first thread that
/// records (a recorder installed later still gets the values, without the descriptions).
fn describe() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        use ::metrics::Unit;
        ::metrics::describe_histogram!(
            "http.client.request.duration",
            Unit::Seconds,
            "Duration of HTTP client requests."
        );
        ::metrics::describe_histogram!(
            "reqwest_resilience.request.resends",
            Unit::Count,
            "Requests sent beyond the first for one logical request."
        );
        ::metrics::describe_counter!(
            "reqwest_resilience.retries",
            Unit::Count,
            "Retries decided."
        );
        ::metrics::describe_counter!(
            "reqwest_resilience.give_ups",
            Unit::Count,
            "Failures returned, by why retrying stopped."
        );
        ::metrics::describe_gauge!(
            "reqwest_resilience.retry_budget.available",
            Unit::Count,
            "Tokens left in a host's retry budget."
        );
        ::metrics::describe_counter!(
            "reqwest_resilience.hedges",
            Unit::Count,
            "Backup requests sent."
        );
        ::metrics::describe_counter!(
            "reqwest_resilience.fallback.ejections",
            Unit::Count,
            "Fallback servers ejected."
        );
        ::metrics::describe_counter!(
            "reqwest_resilience.fallback.restorations",
            Unit::Count,
            "Fallback servers restored."
        );
        ::metrics::describe_counter!(
            "reqwest_resilience.circuit.transitions",
            Unit::Count,
            "Circuit state changes."
        );
    });
}

thread_local! {
    /// Why the futures being dropped on this thread are dropped, while a layer drops them.
    static ENDING: Cell<Option<&'static str>> = const { Cell::new(None) };
}

/// Runs `drop` (which drops futures with requests on the wire) with `why` as the `error.type`
/// those requests record: a timer firing drops them as `timeout`; anything else (a lost hedge
/// race, the caller) as `cancelled`.
pub(crate) fn ending<R>(why: &'static str, drop: impl FnOnce() -> R) -> R {
    /// Restores the reason before, even if a drop panics.
    struct Restore(Option<&'static str>);
    impl Drop for Restore {
        fn drop(&mut self) {
            ENDING.set(self.0);
        }
    }
    let _restore = Restore(ENDING.replace(Some(why)));
    drop()
}

/// Why a request is being dropped now.
fn ending_reason() -> &'static str {
    ENDING.get().unwrap_or("cancelled")
}

/// Whether a timer is dropping the requests being dropped now.
pub(crate) fn ending_by_timer() -> bool {
    ENDING.get() == Some("timeout")
}

/// `error.type` of a failure with no response, by the conventions: `timeout` for a timer's,
/// else the cause's name.
pub(crate) fn error_type_of(err: &crate::GatewayError) -> &'static str {
    match err.kind() {
        crate::ErrorKind::TimedOut | crate::ErrorKind::DeadlineExceeded => "timeout",
        kind => kind.name(),
    }
}

/// What a request's instruments are labelled with beside its outcome: its method and its
/// host, worked out once per request (the host's labels from [`host_labels`]' cache).
pub(crate) struct Target {
    method: &'static str,
    host: Arc<HostLabels>,
}

impl Target {
    pub(crate) fn new(method: &reqwest::Method, url: &reqwest::Url) -> Target {
        Target {
            method: method_label(method),
            host: host_labels(url),
        }
    }

    /// The method's label and the host's, for an instrument with `more` labels besides.
    fn labels(&self, more: usize) -> Vec<Label> {
        let mut labels = Vec::with_capacity(4 + more);
        labels.push(Label::from_static_parts("http.request.method", self.method));
        labels.extend(self.host.labels.iter().cloned());
        labels
    }
}

/// A request on the wire, recorded exactly once: when it ends, or when it is dropped.
pub(crate) struct OnWire {
    started: Instant,
    target: Target,
    done: bool,
}

impl OnWire {
    pub(crate) fn new(method: &reqwest::Method, url: &reqwest::Url) -> OnWire {
        OnWire {
            started: Instant::now(),
            target: Target::new(method, url),
            done: false,
        }
    }

    /// Records the request's outcome.
    pub(crate) fn finish(&mut self, outcome: &Result<reqwest::Response, crate::GatewayError>) {
        match outcome {
            Ok(response) => self.record(Some(response.status().as_u16()), None, None),
            Err(err) => self.finish_err(err),
        }
    }

    /// Records the request's failure.
    pub(crate) fn finish_err(&mut self, err: &crate::GatewayError) {
        let status = err.response().map(|r| r.status().as_u16());
        let error = match status {
            Some(_) => None,
            None => Some(error_type_of(err)),
        };
        self.record(status, error, Some(err.kind().name()));
    }

    fn record(
        &mut self,
        status: Option<u16>,
        error: Option<&'static str>,
        cause: Option<&'static str>,
    ) {
        if self.done {
            return;
        }
        self.done = true;
        attempt(&self.target, status, error, cause, self.started.elapsed());
    }
}

impl Drop for OnWire {
    fn drop(&mut self) {
        if !self.done {
            let why = ending_reason();
            self.record(None, Some(why), None);
        }
    }
}

/// How many hosts' labels [`host_labels`] keeps: the first hosts the process calls, through
/// any client, kept for its life (none is evicted). Past that, a new host's labels are made for
/// each use, as before the cache: a process calling ever new hosts does not grow the cache.
const MAX_CACHED_HOSTS: usize = 1024;

/// A host's labels, with the port they were made for (the host and the scheme are in the
/// labels): kept under the host's [`crate::host::key`], a key's collision is told by comparing
/// them.
struct HostLabels {
    port: Option<u16>,
    labels: [Label; 3],
}

/// Hosts' labels, each made once, up to `max` hosts.
struct HostCache {
    hosts: RwLock<crate::host::HostMap<Arc<HostLabels>>>,
    max: usize,
}

impl HostCache {
    fn new(max: usize) -> HostCache {
        HostCache {
            hosts: RwLock::new(crate::host::HostMap::default()),
            max,
        }
    }

    /// `url`'s host labels: the ones made for its host before, else made now (and kept while
    /// there is room).
    fn labels(&self, url: &reqwest::Url) -> Arc<HostLabels> {
        let host = url.host_str().unwrap_or("");
        let port = url.port_or_known_default();
        let scheme = url.scheme();
        let key = crate::host::key(url);
        let is_this = |cached: &HostLabels| {
            cached.port == port
                && cached.labels[0].value() == host
                && cached.labels[2].value() == scheme
        };
        // Decided under the read lock: the write lock is taken only to keep a new host's labels,
        // so a host past the bound or a colliding one does not serialise requests on it.
        let room = {
            let hosts = self.hosts.read().unwrap_or_else(PoisonError::into_inner);
            match hosts.get(&key) {
                Some(cached) if is_this(cached) => return cached.clone(),
                // A colliding key keeps the host it holds: this host's are made each time.
                Some(_) => false,
                None => hosts.len() < self.max,
            }
        };
        let shared = |value: String| SharedString::from_shared(Arc::from(value));
        let labels = Arc::new(HostLabels {
            port,
            labels: [
                Label::new("server.address", shared(host.to_owned())),
                Label::new(
                    "server.port",
                    shared(port.map(|p| p.to_string()).unwrap_or_default()),
                ),
                Label::new("url.scheme", shared(scheme.to_owned())),
            ],
        });
        if room {
            let mut hosts = self.hosts.write().unwrap_or_else(PoisonError::into_inner);
            // Checked again: another thread may have filled the room or kept this key meanwhile.
            if hosts.len() < self.max && !hosts.contains_key(&key) {
                hosts.insert(key, labels.clone());
            }
        }
        labels
    }
}

/// A host's identity as the crate keeps state for it: `server.address`, `server.port`,
/// `url.scheme`. Each host's are made once (up to [`MAX_CACHED_HOSTS`] hosts) and cloned after:
/// the values are shared strings, so a clone counts references instead of copying.
fn host_labels(url: &reqwest::Url) -> Arc<HostLabels> {
    static HOSTS: LazyLock<HostCache> = LazyLock::new(|| HostCache::new(MAX_CACHED_HOSTS));
    HOSTS.labels(url)
}

/// A status code as a label's value: each code from 100 to 599 made once, then shared.
fn status_value(status: u16) -> SharedString {
    static CODES: [OnceLock<SharedString>; 500] = [const { OnceLock::new() }; 500];
    let make = || SharedString::from_shared(Arc::from(status.to_string()));
    match status
        .checked_sub(100)
        .and_then(|i| CODES.get(usize::from(i)))
    {
        Some(code) => code.get_or_init(make).clone(),
        None => make(),
    }
}

/// The host labels of a server as the crate shows it (`scheme://host:port/path`).
fn shown_host_labels(server: &str) -> Vec<Label> {
    match reqwest::Url::parse(server) {
        Ok(url) => host_labels(&url).labels.to_vec(),
        Err(_) => Vec::new(),
    }
}

/// The method as OpenTelemetry labels it: the known ones by name, any other as `_OTHER` (a
/// bounded set of values).
fn method_label(method: &reqwest::Method) -> &'static str {
    use reqwest::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        Method::TRACE => "TRACE",
        Method::CONNECT => "CONNECT",
        _ => "_OTHER",
    }
}

/// One HTTP request put on the wire, ended.
fn attempt(
    target: &Target,
    status: Option<u16>,
    error: Option<&'static str>,
    cause: Option<&'static str>,
    took: Duration,
) {
    describe();
    let mut labels = target.labels(3);
    if let Some(status) = status {
        let value = status_value(status);
        labels.push(Label::new("http.response.status_code", value.clone()));
        if status >= 400 && error.is_none() {
            // The conventions: an error status is its own `error.type`.
            labels.push(Label::new("error.type", value));
        }
    }
    if let Some(error) = error {
        labels.push(Label::from_static_parts("error.type", error));
    }
    if let Some(cause) = cause {
        labels.push(Label::from_static_parts("reqwest_resilience.cause", cause));
    }
    ::metrics::histogram!("http.client.request.duration", labels).record(took.as_secs_f64());
}

/// A logical request ended after `attempts` requests on the wire.
pub(crate) fn resends(target: &Target, attempts: u32) {
    describe();
    let labels = target.labels(0);
    ::metrics::histogram!("reqwest_resilience.request.resends", labels)
        .record(f64::from(attempts.saturating_sub(1)));
}

/// A retry was decided after a failure of this kind.
pub(crate) fn retry(error_type: &'static str) {
    describe();
    ::metrics::counter!("reqwest_resilience.retries", "error.type" => error_type).increment(1);
}

/// A failure was returned; `why` is the give-up reason, if retrying stopped for one.
pub(crate) fn give_up(error_type: &'static str, why: Option<&str>) {
    describe();
    ::metrics::counter!(
        "reqwest_resilience.give_ups",
        "error.type" => error_type,
        "reason" => reason_key(why),
    )
    .increment(1);
}

/// A small, fixed set of reason keys (the reasons' texts carry numbers).
fn reason_key(why: Option<&str>) -> &'static str {
    let Some(why) = why else {
        return "not_retryable";
    };
    if why.starts_with("all ") {
        "attempts"
    } else if why.contains("circuit") {
        "circuit_open"
    } else if why.contains("budget") {
        "budget"
    } else if why.contains("idempotent") {
        "not_idempotent"
    } else if why.contains("stream") || why.contains("copied") {
        "body_not_replayable"
    } else if why.contains("asked to wait") {
        "retry_after_too_long"
    } else if why.contains("deadline") {
        "deadline"
    } else if why.contains("backoff") {
        "backoff_ended"
    } else {
        "other"
    }
}

/// The tokens left in the bucket of `url`'s host (`per_host`), or in the client's one.
pub(crate) fn budget(url: &reqwest::Url, per_host: bool, available: u32) {
    describe();
    let labels = if per_host {
        host_labels(url).labels.to_vec()
    } else {
        Vec::new()
    };
    ::metrics::gauge!("reqwest_resilience.retry_budget.available", labels)
        .set(f64::from(available));
}

/// A hedge was sent to `target`'s host.
pub(crate) fn hedge(target: &Target) {
    describe();
    ::metrics::counter!("reqwest_resilience.hedges", target.host.labels.to_vec()).increment(1);
}

/// A fallback server was ejected (`true`) or restored.
pub(crate) fn fallback(server: &str, ejected: bool) {
    let name = if ejected {
        "reqwest_resilience.fallback.ejections"
    } else {
        "reqwest_resilience.fallback.restorations"
    };
    describe();
    ::metrics::counter!(name, shown_host_labels(server)).increment(1);
}

/// A host's circuit changed state.
pub(crate) fn circuit(server: Option<&str>, state: &'static str) {
    describe();
    let mut labels = server.map(shown_host_labels).unwrap_or_default();
    labels.push(Label::from_static_parts("state", state));
    ::metrics::counter!("reqwest_resilience.circuit.transitions", labels).increment(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> reqwest::Url {
        s.parse().unwrap()
    }

    fn values(host: &HostLabels) -> Vec<(&str, &str)> {
        host.labels.iter().map(|l| (l.key(), l.value())).collect()
    }

    #[test]
    fn a_hosts_labels_are_made_once_and_shared() {
        // The process's cache gives the same values (its room depends on the other tests).
        assert_eq!(
            values(&host_labels(&url("http://labels-once.test:8080/a?q=1"))),
            [
                ("server.address", "labels-once.test"),
                ("server.port", "8080"),
                ("url.scheme", "http"),
            ]
        );
        let cache = HostCache::new(MAX_CACHED_HOSTS);
        let first = cache.labels(&url("http://labels-once.test:8080/a?q=1"));
        let again = cache.labels(&url("http://labels-once.test:8080/b"));
        // The same strings, not copies: the second request cloned the first one's labels.
        assert!(Arc::ptr_eq(&first, &again));
        let other_port = cache.labels(&url("http://labels-once.test:8081/"));
        assert_eq!(values(&other_port)[1], ("server.port", "8081"));
        let https = cache.labels(&url("https://labels-once.test/"));
        assert_eq!(
            values(&https)[1..],
            [("server.port", "443"), ("url.scheme", "https")]
        );
        let ipv6 = cache.labels(&url("http://[::1]:8080/"));
        assert_eq!(
            values(&ipv6)[..2],
            [("server.address", "[::1]"), ("server.port", "8080")]
        );
    }

    #[test]
    fn no_port_and_port_zero_share_a_key_but_not_labels() {
        // `host::key` hashes a missing port as 0: the labels compare the port itself.
        let cache = HostCache::new(MAX_CACHED_HOSTS);
        let none = cache.labels(&url("foo://h/"));
        let zero = cache.labels(&url("foo://h:0/"));
        assert_eq!(values(&none)[1], ("server.port", ""));
        assert_eq!(values(&zero)[1], ("server.port", "0"));
        assert!(Arc::ptr_eq(&none, &cache.labels(&url("foo://h/x"))));
    }

    #[test]
    fn a_colliding_key_never_lends_another_hosts_labels() {
        let cache = HostCache::new(MAX_CACHED_HOSTS);
        // Another host's labels planted under this host's key, as a hash collision would.
        let victim = url("http://collision-victim.test/");
        let planted = Arc::new(HostLabels {
            port: Some(80),
            labels: [
                Label::new("server.address", "collision-other.test"),
                Label::new("server.port", "80"),
                Label::new("url.scheme", "http"),
            ],
        });
        cache
            .hosts
            .write()
            .unwrap()
            .insert(crate::host::key(&victim), planted.clone());
        let got = cache.labels(&victim);
        assert_eq!(values(&got)[0], ("server.address", "collision-victim.test"));
        assert!(!Arc::ptr_eq(&got, &planted));
        // The planted entry stays: the victim's labels are made each time.
        assert!(!Arc::ptr_eq(&got, &cache.labels(&victim)));
        assert_eq!(cache.hosts.read().unwrap().len(), 1);
    }

    #[test]
    fn the_cache_stops_growing_at_its_bound() {
        let cache = HostCache::new(4);
        for i in 0..10 {
            let labels = cache.labels(&url(&format!("http://bound-{i}.test/")));
            assert_eq!(
                values(&labels)[0],
                ("server.address", format!("bound-{i}.test").as_str())
            );
        }
        assert_eq!(cache.hosts.read().unwrap().len(), 4);
        // The first four are kept; a host past the bound gets labels of its own each time.
        let kept = url("http://bound-0.test/");
        assert!(Arc::ptr_eq(&cache.labels(&kept), &cache.labels(&kept)));
        let late = url("http://bound-9.test/");
        assert!(!Arc::ptr_eq(&cache.labels(&late), &cache.labels(&late)));
        assert_eq!(
            values(&cache.labels(&late))[0],
            ("server.address", "bound-9.test")
        );
    }

    #[test]
    fn status_values_are_the_codes_as_text() {
        for code in [100, 200, 204, 404, 502, 599, 99, 600, 999] {
            assert_eq!(status_value(code).as_ref(), code.to_string());
        }
        let (a, b) = (status_value(502), status_value(502));
        assert!(std::ptr::eq(a.as_ref().as_ptr(), b.as_ref().as_ptr()));
    }

    #[test]
    fn reasons_have_few_keys() {
        assert_eq!(reason_key(None), "not_retryable");
        assert_eq!(
            reason_key(Some("all 3 tries of the retry policy failed")),
            "attempts"
        );
        assert_eq!(
            reason_key(Some("the circuit of http://h:1 is open for another 3.0 s")),
            "circuit_open"
        );
        assert_eq!(reason_key(Some("the retry budget is exhausted")), "budget");
        assert_eq!(
            reason_key(Some(
                "the server asked to wait 99s, more than the 30s allowed"
            )),
            "retry_after_too_long"
        );
    }
}
