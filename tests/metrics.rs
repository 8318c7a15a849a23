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
    let resends = capture.named("http.client.request.resend_count");
    assert_eq!(resends.len(), 1);
    assert_eq!(resends[0].1, 0.0);
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
    assert_eq!(durations[0].0["error.type"], "bad_gateway");
    assert_eq!(durations[0].0["http.response.status_code"], "502");
    assert_eq!(durations[1].0["http.response.status_code"], "200");
    let retries = capture.named("reqwest_resilience.retries");
    assert_eq!(retries.len(), 1);
    assert_eq!(retries[0].0["error.type"], "bad_gateway");
    let budget = capture.named("reqwest_resilience.retry_budget.available");
    assert_eq!(budget.len(), 1);
    assert_eq!(
        budget[0].1, 495.0,
        "a retry took 5 of the host's 500 tokens"
    );
    assert_eq!(capture.named("http.client.request.resend_count")[0].1, 1.0);
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
}
