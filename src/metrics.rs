//! Metrics through the [`metrics`](https://docs.rs/metrics) facade (feature `metrics`).
//!
//! With the feature on, the crate emits, to whatever recorder the application installed
//! (a Prometheus or OpenTelemetry exporter, or your own), with OpenTelemetry's HTTP
//! semantic-convention names and attributes where they exist:
//!
//! | name | kind | labels | what |
//! |---|---|---|---|
//! | `http.client.request.duration` | histogram, seconds | `http.request.method`, `server.address`, `server.port`, `http.response.status_code` (when a response came), `error.type` (on failure) | each HTTP request put on the wire (each attempt, each hedge), to its response head or failure |
//! | `http.client.request.resend_count` | histogram | `http.request.method`, `server.address` | per logical request: the requests sent beyond the first (retries and hedges) |
//! | `reqwest_resilience.retries` | counter | `error.type` (`http_429`, `http_408`, `http_response` for a response rule) | retries decided |
//! | `reqwest_resilience.give_ups` | counter | `error.type`, `reason` | failures returned, by why retrying stopped (`not_retryable`, `attempts`, `budget`, `not_idempotent`, `body_not_replayable`, `retry_after_too_long`, `circuit_open`, `deadline`, `backoff_ended`, `other`) |
//! | `reqwest_resilience.retry_budget.available` | gauge | `server.address` | tokens left in the bucket a retry or hedge was charged to |
//! | `reqwest_resilience.hedges` | counter | `server.address` | backup copies sent |
//! | `reqwest_resilience.fallback.ejections`, `.restorations` | counters | `server.address` | fallback servers ejected and restored |
//! | `reqwest_resilience.circuit.transitions` | counter | `server.address`, `state` (`open`, `half_open`, `closed`) | circuit state changes |
//!
//! Labels never carry credentials, paths or query strings; a method other than the nine
//! standard ones is `_OTHER`. A request dropped before it ended (its attempt timeout fired, it
//! lost a hedge race, the caller dropped it) records no duration. With the feature off, none of this
//! is compiled. With it on and no recorder installed, the facade's calls are no-ops apart from
//! building the labels (measured in BENCHMARKS.md).
//!
//! ```no_run
//! // Install any `metrics` recorder, e.g. a Prometheus exporter, once at start-up; then:
//! # async fn run() {
//! let client = reqwest_resilience::Client::new();
//! let _ = client.get("http://127.0.0.1:8080/").send().await;
//! # }
//! ```
//! `cargo run --example metrics --features metrics` prints what a run records.

use std::time::Duration;

/// A host's `server.address` label from a URL (no credentials, no path).
pub(crate) fn host(url: &reqwest::Url) -> String {
    url.host_str().unwrap_or("").to_owned()
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

/// One HTTP request put on the wire, ended (a request dropped before it ended, by a timeout
/// or a lost hedge race, is not recorded).
pub(crate) fn attempt(
    method: &reqwest::Method,
    url: Option<&reqwest::Url>,
    status: Option<u16>,
    error: Option<&'static str>,
    took: Duration,
) {
    let mut labels = vec![
        ("http.request.method", method_label(method).to_owned()),
        ("server.address", url.map(host).unwrap_or_default()),
        (
            "server.port",
            url.and_then(reqwest::Url::port_or_known_default)
                .map(|p| p.to_string())
                .unwrap_or_default(),
        ),
    ];
    if let Some(status) = status {
        labels.push(("http.response.status_code", status.to_string()));
    }
    if let Some(error) = error {
        labels.push(("error.type", error.to_owned()));
    }
    let labels: Vec<::metrics::Label> = labels
        .into_iter()
        .map(|(k, v)| ::metrics::Label::new(k, v))
        .collect();
    ::metrics::histogram!("http.client.request.duration", labels).record(took.as_secs_f64());
}

/// A logical request ended after `attempts` requests on the wire.
pub(crate) fn resends(method: &reqwest::Method, url: Option<&reqwest::Url>, attempts: u32) {
    ::metrics::histogram!(
        "http.client.request.resend_count",
        "http.request.method" => method_label(method),
        "server.address" => url.map(host).unwrap_or_default(),
    )
    .record(f64::from(attempts.saturating_sub(1)));
}

/// A retry was decided after a failure of this kind.
pub(crate) fn retry(error_type: &'static str) {
    ::metrics::counter!("reqwest_resilience.retries", "error.type" => error_type).increment(1);
}

/// A failure was returned; `why` is the give-up reason, if retrying stopped for one.
pub(crate) fn give_up(error_type: &'static str, why: Option<&str>) {
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

/// The tokens left in the bucket a retry or hedge to `url`'s host was charged to.
pub(crate) fn budget(url: Option<&reqwest::Url>, available: u32) {
    ::metrics::gauge!(
        "reqwest_resilience.retry_budget.available",
        "server.address" => url.map(host).unwrap_or_default(),
    )
    .set(f64::from(available));
}

/// A hedge was sent to `url`'s host.
pub(crate) fn hedge(url: Option<&reqwest::Url>) {
    ::metrics::counter!(
        "reqwest_resilience.hedges",
        "server.address" => url.map(host).unwrap_or_default(),
    )
    .increment(1);
}

/// A fallback server was ejected (`true`) or restored.
pub(crate) fn fallback(server: &str, ejected: bool) {
    let name = if ejected {
        "reqwest_resilience.fallback.ejections"
    } else {
        "reqwest_resilience.fallback.restorations"
    };
    ::metrics::counter!(name, "server.address" => host_of_display(server)).increment(1);
}

/// A host's circuit changed state.
pub(crate) fn circuit(server: Option<&str>, state: &'static str) {
    ::metrics::counter!(
        "reqwest_resilience.circuit.transitions",
        "server.address" => server.map(host_of_display).unwrap_or_default(),
        "state" => state,
    )
    .increment(1);
}

/// The host of a server as the crate shows it (`scheme://host:port/path`).
fn host_of_display(server: &str) -> String {
    reqwest::Url::parse(server)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

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
