//! The metrics the crate emits (feature `metrics`), captured with a recorder of the test's own
//! against wiremock and a refused port.

mod support;

use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use reqwest_resilience::Client;
use reqwest_resilience::circuit::CircuitLayer;
use reqwest_resilience::retry::{ExponentialBackoff, RetryPolicy};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use wiremock::matchers::path;
use wiremock::{Mock, MockServer, ResponseTemplate};

/// One value recorded: the metric's name, its labels, the value.
type Recorded = (String, BTreeMap<String, String>, f64);

/// Every value recorded, in order.
#[derive(Default, Clone)]
struct Capture(Arc<Mutex<Vec<Recorded>>>);

struct Handle(Capture, Key);

impl Handle {
    fn push(&self, value: f64) {
        let labels = self
            .1
            .labels()
            .map(|l| (l.key().to_owned(), l.value().to_owned()))
            .collect();
        self.0
            .0
            .lock()
            .unwrap()
            .push((self.1.name().to_owned(), labels, value));
    }
}

impl metrics::CounterFn for Handle {
    fn increment(&self, value: u64) {
        self.push(value as f64);
    }
    fn absolute(&self, value: u64) {
        self.push(value as f64);
    }
}
impl metrics::GaugeFn for Handle {
    fn increment(&self, value: f64) {
        self.push(value);
    }
    fn decrement(&self, value: f64) {
        self.push(-value);
    }
    fn set(&self, value: f64) {
        self.push(value);
    }
}
impl metrics::HistogramFn for Handle {
    fn record(&self, value: f64) {
        self.push(value);
    }
}

impl Recorder for Capture {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(Arc::new(Handle(self.clone(), key.clone())))
    }
    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::from_arc(Arc::new(Handle(self.clone(), key.clone())))
    }
    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::from_arc(Arc::new(Handle(self.clone(), key.clone())))
    }
}

impl Capture {
    fn named(&self, name: &str) -> Vec<(BTreeMap<String, String>, f64)> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|(n, _, _)| n == name)
            .map(|(_, l, v)| (l.clone(), *v))
            .collect()
    }
}

/// Runs `f` on a current-thread runtime with `capture` as this thread's recorder.
fn capturing<F: std::future::Future>(capture: &Capture, f: impl FnOnce() -> F) -> F::Output {
    metrics::with_local_recorder(capture, || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(f())
    })
}

fn fast() -> RetryPolicy {
    RetryPolicy::default().backoff(ExponentialBackoff::new(Duration::from_millis(1)))
}

#[test]
fn a_healthy_request_records_its_duration_and_no_resend() {
    let capture = Capture::default();
    let port = capturing(&capture, || async {
        let server = MockServer::start().await;
        Mock::given(path("/"))
            .respond_with(ResponseTemplate::new(200))
            .mount(&server)
            .await;
        let client = Client::builder().retry(fast()).build().unwrap();
        client.get(server.uri()).send().await.unwrap();
        server.address().port()
    });
    let durations = capture.named("http.client.request.duration");
    assert_eq!(durations.len(), 1, "{durations:?}");
    let (labels, seconds) = &durations[0];
    assert_eq!(labels["http.request.method"], "GET");
    assert_eq!(labels["server.address"], "127.0.0.1");
    assert_eq!(labels["server.port"], port.to_string());
    assert_eq!(labels["http.response.status_code"], "200");
    assert!(!labels.contains_key("error.type"));
    assert!(*seconds > 0.0 && *seconds < 10.0);
    assert_eq!(labels["url.scheme"], "http");
    let resends = capture.named("reqwest_resilience.request.resends");
    assert_eq!(resends.len(), 1);
    assert_eq!(resends[0].1, 0.0);
    assert_eq!(resends[0].0["server.port"], port.to_string());
    assert!(capture.named("http.client.request.resend_count").is_empty());
    assert!(capture.named("reqwest_resilience.retries").is_empty());
}

#[test]
fn a_retry_records_the_failed_attempt_the_retry_and_the_budget() {
    let capture = Capture::default();
    capturing(&capture, || async {
        let server = MockServer::start().await;
        Mock::given(path("/"))
            .respond_with(ResponseTemplate::new(502))
            .up_to_n_times(1)
            .with_priority(1)
            .mount(&server)
            .await;
        Mock::given(path("/"))
            .respond_with(ResponseTemplate::new(200))
            .with_priority(2)
            .mount(&server)
            .await;
        let client = Client::builder().retry(fast()).build().unwrap();
        client.get(server.uri()).send().await.unwrap();
    });
    let durations = capture.named("http.client.request.duration");
    assert_eq!(durations.len(), 2);
    // The conventions: an error status is its own error.type; the crate's reading beside it.
    assert_eq!(durations[0].0["error.type"], "502");
    assert_eq!(durations[0].0["reqwest_resilience.cause"], "bad_gateway");
    assert_eq!(durations[0].0["http.response.status_code"], "502");
    assert_eq!(durations[1].0["http.response.status_code"], "200");
    let retries = capture.named("reqwest_resilience.retries");
    assert_eq!(retries.len(), 1);
    assert_eq!(retries[0].0["error.type"], "bad_gateway");
    let budget = capture.named("reqwest_resilience.retry_budget.available");
    let values: Vec<f64> = budget.iter().map(|(_, v)| *v).collect();
    assert_eq!(
        values,
        [495.0, 500.0],
        "a retry took 5 of the host's 500 tokens; its success gave them back"
    );
    assert_eq!(
        capture.named("reqwest_resilience.request.resends")[0].1,
        1.0
    );
}

#[test]
fn a_give_up_and_a_circuit_opening_are_counted() {
    let capture = Capture::default();
    capturing(&capture, || async {
        let dead = support::refused_url("/").await;
        let client = Client::builder()
            .retry(fast().max_attempts(2))
            .circuit_breaker(CircuitLayer::new().consecutive_failures(2))
            .build()
            .unwrap();
        // The circuit counts logical requests: two that fail.
        let _ = client.get(&dead).send().await;
        let _ = client.get(&dead).send().await;
    });
    let give_ups = capture.named("reqwest_resilience.give_ups");
    assert_eq!(give_ups.len(), 2);
    assert_eq!(give_ups[0].0["reason"], "attempts");
    assert_eq!(give_ups[0].0["error.type"], "connect_failed");
    let transitions = capture.named("reqwest_resilience.circuit.transitions");
    assert_eq!(transitions.len(), 1);
    assert_eq!(transitions[0].0["state"], "open");
    assert_eq!(transitions[0].0["server.address"], "127.0.0.1");
    // Every attempt on the wire is recorded; connection failures have no status code.
    let durations = capture.named("http.client.request.duration");
    assert_eq!(durations.len(), 4);
    for (labels, _) in durations {
        assert!(!labels.contains_key("http.response.status_code"));
        assert_eq!(labels["error.type"], "connect_failed");
    }
    // The transition names the host as its state is kept: scheme, host and port.
    let port = transitions[0].0["server.port"].clone();
    assert!(port.parse::<u16>().is_ok(), "{port}");
    assert_eq!(transitions[0].0["url.scheme"], "http");
}

/// Case 1: a request that a timer ends still records its duration, once, as a `timeout`:
/// the attempt timeout, and the deadline without any attempt timeout.
#[test]
fn a_hung_upstream_is_recorded_as_timeouts() {
    let capture = Capture::default();
    capturing(&capture, || async {
        let hang = support::FaultServer::start(support::Fault::Hang).await;
        let client = Client::builder()
            .retry(fast().max_attempts(2))
            .attempt_timeout(Duration::from_millis(100))
            .build()
            .unwrap();
        let err = client.get(hang.url("/")).send().await.unwrap_err();
        assert_eq!(err.kind(), reqwest_resilience::ErrorKind::TimedOut);
    });
    let durations = capture.named("http.client.request.duration");
    assert_eq!(durations.len(), 2, "{durations:?}");
    for (labels, seconds) in &durations {
        assert_eq!(labels["error.type"], "timeout");
        assert!(*seconds >= 0.09, "{seconds}");
    }

    let capture = Capture::default();
    capturing(&capture, || async {
        let hang = support::FaultServer::start(support::Fault::Hang).await;
        let client = Client::builder()
            .no_attempt_timeout()
            .deadline(Duration::from_millis(150))
            .build()
            .unwrap();
        let err = client.get(hang.url("/")).send().await.unwrap_err();
        assert_eq!(err.kind(), reqwest_resilience::ErrorKind::DeadlineExceeded);
    });
    let durations = capture.named("http.client.request.duration");
    assert_eq!(durations.len(), 1, "{durations:?}");
    assert_eq!(durations[0].0["error.type"], "timeout");
    // Case 5: the request that ended at its deadline records its resends and its give-up.
    let resends = capture.named("reqwest_resilience.request.resends");
    assert_eq!(resends.len(), 1, "{resends:?}");
    assert_eq!(resends[0].1, 0.0);
    let give_ups = capture.named("reqwest_resilience.give_ups");
    assert_eq!(give_ups.len(), 1, "{give_ups:?}");
    assert_eq!(give_ups[0].0["error.type"], "deadline_exceeded");
    assert_eq!(give_ups[0].0["reason"], "deadline");
}

/// A request the caller drops, and a hedge that loses its race, record their duration once,
/// as `cancelled`.
#[test]
fn dropped_requests_are_recorded_as_cancelled() {
    let capture = Capture::default();
    capturing(&capture, || async {
        let hang = support::FaultServer::start(support::Fault::Hang).await;
        let client = Client::new();
        let url = hang.url("/");
        let gave_up = tokio::time::timeout(Duration::from_millis(100), client.get(&url).send());
        assert!(gave_up.await.is_err(), "the caller stopped waiting");
    });
    let durations = capture.named("http.client.request.duration");
    assert_eq!(durations.len(), 1, "{durations:?}");
    assert_eq!(durations[0].0["error.type"], "cancelled");
}

/// Case 2: error statuses carry their status code as `error.type`; success statuses none.
#[test]
fn error_statuses_are_their_own_error_type() {
    let capture = Capture::default();
    capturing(&capture, || async {
        let server = MockServer::start().await;
        for (p, status) in [("/missing", 404), ("/broken", 500), ("/ok", 204)] {
            Mock::given(path(p))
                .respond_with(ResponseTemplate::new(status))
                .mount(&server)
                .await;
        }
        let client = Client::new();
        for p in ["/missing", "/broken", "/ok"] {
            let response = client.get(format!("{}{p}", server.uri())).send().await;
            assert!(response.is_ok(), "an answer is returned as it is");
        }
    });
    let durations = capture.named("http.client.request.duration");
    let types: Vec<Option<&str>> = durations
        .iter()
        .map(|(l, _)| l.get("error.type").map(String::as_str))
        .collect();
    assert_eq!(types, [Some("404"), Some("500"), None]);
}

/// Cases 3 and 4: the budget gauge is per host *and port*, and moves with every
/// withdrawal, hedges included.
#[test]
fn the_budget_gauge_is_per_port_and_follows_hedges() {
    let capture = Capture::default();
    let (flaky_port, slow_port) = capturing(&capture, || async {
        // Two hosts on 127.0.0.1: one fails once (a retry), one is slow (a hedge).
        let flaky = MockServer::start().await;
        Mock::given(path("/"))
            .respond_with(ResponseTemplate::new(502))
            .up_to_n_times(1)
            .with_priority(1)
            .mount(&flaky)
            .await;
        Mock::given(path("/"))
            .respond_with(ResponseTemplate::new(200))
            .with_priority(2)
            .mount(&flaky)
            .await;
        let slow = MockServer::start().await;
        Mock::given(path("/"))
            .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_millis(300)))
            .mount(&slow)
            .await;
        let client = Client::builder()
            .retry(fast().hedge_after(Duration::from_millis(50)))
            .build()
            .unwrap();
        client.get(flaky.uri()).send().await.unwrap();
        client.get(slow.uri()).send().await.unwrap();
        (flaky.address().port(), slow.address().port())
    });
    let gauge = capture.named("reqwest_resilience.retry_budget.available");
    let for_port = |port: u16| -> Vec<f64> {
        gauge
            .iter()
            .filter(|(l, _)| l["server.port"] == port.to_string())
            .map(|(_, v)| *v)
            .collect()
    };
    // The flaky host: the retry took 5, its success gave them back.
    assert_eq!(for_port(flaky_port), [495.0, 500.0], "{gauge:?}");
    // The slow host: the hedge took 5 (never refunded), in a series of its own.
    assert_eq!(for_port(slow_port), [495.0], "{gauge:?}");
    // The lost hedge race's loser is recorded, as cancelled.
    let durations = capture.named("http.client.request.duration");
    let to_slow: Vec<_> = durations
        .iter()
        .filter(|(l, _)| l["server.port"] == slow_port.to_string())
        .collect();
    assert_eq!(to_slow.len(), 2, "{to_slow:?}");
    assert!(
        to_slow
            .iter()
            .any(|(l, _)| l.get("error.type").map(String::as_str) == Some("cancelled")),
        "{to_slow:?}"
    );
    assert_eq!(capture.named("reqwest_resilience.hedges").len(), 1);
}

/// The same series through a real exporter: metrics-exporter-prometheus renders them.
#[test]
fn a_prometheus_exporter_renders_the_series() {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    metrics::with_local_recorder(&recorder, || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async {
                let hang = support::FaultServer::start(support::Fault::Hang).await;
                let client = Client::builder()
                    .no_retry()
                    .attempt_timeout(Duration::from_millis(50))
                    .build()
                    .unwrap();
                let _ = client.get(hang.url("/")).send().await;
            })
    });
    let text = handle.render();
    assert!(text.contains("http_client_request_duration"), "{text}");
    assert!(text.contains("error_type=\"timeout\""), "{text}");
    assert!(
        text.contains("reqwest_resilience_request_resends"),
        "{text}"
    );
    // Bounded labels: no path or query in any series.
    assert!(
        !text.contains("url_full") && !text.contains("url_path"),
        "{text}"
    );
}

/// Through the reqwest-middleware adapter too: an attempt its timer ends records `timeout`.
#[test]
fn the_middleware_records_its_timeouts_as_timeouts() {
    use reqwest_resilience::middleware::ResilienceMiddleware;
    let capture = Capture::default();
    capturing(&capture, || async {
        let hang = support::FaultServer::start(support::Fault::Hang).await;
        let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
            .with(
                ResilienceMiddleware::new()
                    .retry(RetryPolicy::never())
                    .attempt_timeout(Duration::from_millis(100)),
            )
            .build();
        assert!(client.get(hang.url("/")).send().await.is_err());
    });
    let durations = capture.named("http.client.request.duration");
    assert_eq!(durations.len(), 1, "{durations:?}");
    assert_eq!(durations[0].0["error.type"], "timeout");
}

/// A host's bucket forgotten to make room (one bucket at most here) sets its gauge back to the
/// capacity: its next bucket starts full.
#[test]
fn a_forgotten_bucket_resets_its_gauge() {
    use reqwest_resilience::retry::RetryBudget;
    let capture = Capture::default();
    let (first_port, second_port) = capturing(&capture, || async {
        let mut ports = Vec::new();
        // Both kept until the end: a port freed could be the next server's.
        let mut servers = Vec::new();
        let client = Client::builder()
            .retry(fast().budget(RetryBudget::new().max_hosts(1)))
            .build()
            .unwrap();
        for _ in 0..2 {
            let server = MockServer::start().await;
            Mock::given(path("/"))
                .respond_with(ResponseTemplate::new(502))
                .up_to_n_times(1)
                .with_priority(1)
                .mount(&server)
                .await;
            Mock::given(path("/"))
                .respond_with(ResponseTemplate::new(503).insert_header("server", "envoy"))
                .with_priority(2)
                .mount(&server)
                .await;
            // Retried twice, never answered: the bucket keeps its debt.
            let _ = client.get(server.uri()).send().await;
            ports.push(server.address().port());
            servers.push(server);
        }
        (ports[0], ports[1])
    });
    let gauge = capture.named("reqwest_resilience.retry_budget.available");
    let for_port = |port: u16| -> Vec<f64> {
        gauge
            .iter()
            .filter(|(l, _)| l["server.port"] == port.to_string())
            .map(|(_, v)| *v)
            .collect()
    };
    assert_eq!(for_port(first_port), [495.0, 490.0, 500.0], "{gauge:?}");
    assert_eq!(for_port(second_port), [495.0, 490.0], "{gauge:?}");
}
