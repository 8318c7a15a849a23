//! The retry layer: schedule, causes, idempotency, Retry-After, budget, bodies, overrides.

mod support;

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use proptest::prelude::*;
use reqwest_resilience::retry::{
    Backoff, ExponentialBackoff, Jitter, RetryBudget, RetryLayer, RetryPolicy,
};
use reqwest_resilience::{Client, ErrorKind, GatewayError, ResponseSnapshot};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::{Fault, FaultServer, refused_url};
use tokio::time::Instant;
use tower::{ServiceBuilder, ServiceExt, service_fn};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

fn get(url: &str) -> reqwest_resilience::Request {
    reqwest::Request::new(reqwest::Method::GET, url.parse().unwrap()).into()
}

fn ok_response() -> reqwest::Response {
    reqwest::Response::from(http::Response::new(Bytes::from_static(b"ok")))
}

/// A 503 snapshot with these headers, as the transport would have classified it.
fn unavailable(headers: &[(&'static str, &str)]) -> GatewayError {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        map.insert(*name, value.parse().unwrap());
    }
    let snapshot = ResponseSnapshot::new(StatusCode::SERVICE_UNAVAILABLE, map, Bytes::new(), true);
    GatewayError::from_response(snapshot).unwrap()
}

/// An inner service failing with `fail(call)` for the calls it returns `Some` for.
fn scripted(
    calls: Arc<AtomicU32>,
    fail: impl Fn(u32) -> Option<GatewayError> + Clone + Send + Sync + 'static,
) -> impl tower::Service<
    reqwest_resilience::Request,
    Response = reqwest::Response,
    Error = GatewayError,
    Future = impl Send,
> + Clone
+ Send
+ 'static {
    service_fn(move |_req: reqwest_resilience::Request| {
        let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
        let outcome = match fail(n) {
            Some(err) => Err(err),
            None => Ok(ok_response()),
        };
        async move { outcome }
    })
}

fn fast() -> RetryPolicy {
    RetryPolicy::default().backoff(ExponentialBackoff::new(Duration::from_millis(1)))
}

#[tokio::test(start_paused = true)]
async fn retries_until_success() {
    let calls = Arc::new(AtomicU32::new(0));
    let inner = scripted(calls.clone(), |n| {
        (n < 3).then(|| GatewayError::new(ErrorKind::BadGateway, "down"))
    });
    let svc = ServiceBuilder::new()
        .layer(RetryLayer::new(RetryPolicy::default()))
        .service(inner);
    let response = svc.oneshot(get("http://a.test/")).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

#[tokio::test(start_paused = true)]
async fn gives_up_after_max_attempts_and_says_why() {
    let calls = Arc::new(AtomicU32::new(0));
    let inner = scripted(calls.clone(), |_| {
        Some(GatewayError::new(ErrorKind::TimedOut, "slow"))
    });
    let svc = RetryLayer::new(RetryPolicy::default().max_attempts(4)).layer_on(inner);
    let err = svc.oneshot(get("http://a.test/")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut);
    assert_eq!(err.attempts(), 4);
    assert_eq!(calls.load(Ordering::SeqCst), 4);
    assert_eq!(
        err.not_retried_because(),
        Some("all 4 tries of the retry policy failed")
    );
    assert!(err.to_string().contains("after 4 attempts"), "{err}");
}

#[tokio::test(start_paused = true)]
async fn a_retry_with_no_pause_waits_for_no_timer() {
    // A timer of zero still waits for the timer wheel's next millisecond (and wakes the
    // runtime's driver to do so): with the clock paused between two ticks, that wait would
    // move it to the next one.
    tokio::time::advance(Duration::from_micros(500)).await;
    let calls = Arc::new(AtomicU32::new(0));
    let inner = scripted(calls.clone(), |n| {
        (n < 4).then(|| GatewayError::new(ErrorKind::BadGateway, "down"))
    });
    let policy = RetryPolicy::default()
        .max_attempts(4)
        .backoff(ExponentialBackoff::new(Duration::ZERO));
    let started = Instant::now();
    let response = RetryLayer::new(policy)
        .layer_on(inner)
        .oneshot(get("http://a.test/"))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(calls.load(Ordering::SeqCst), 4);
    assert_eq!(started.elapsed(), Duration::ZERO);
}

/// `RetryLayer::layer` by another name, so tests read top to bottom.
trait LayerOn {
    fn layer_on<S>(&self, inner: S) -> reqwest_resilience::retry::Retry<S>;
}

impl LayerOn for RetryLayer {
    fn layer_on<S>(&self, inner: S) -> reqwest_resilience::retry::Retry<S> {
        tower::Layer::layer(self, inner)
    }
}

#[tokio::test(start_paused = true)]
async fn causes_not_retried_by_default() {
    for kind in [
        ErrorKind::InvalidResponse,
        ErrorKind::InvalidRequest,
        ErrorKind::DeadlineExceeded,
        ErrorKind::Other,
    ] {
        let calls = Arc::new(AtomicU32::new(0));
        let inner = scripted(calls.clone(), move |_| Some(GatewayError::new(kind, "x")));
        let err = RetryLayer::default()
            .layer_on(inner)
            .oneshot(get("http://a.test/"))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), kind);
        assert_eq!(calls.load(Ordering::SeqCst), 1, "{kind:?} was retried");
    }
}

#[tokio::test(start_paused = true)]
async fn a_predicate_overrides_the_causes_but_never_invalid_requests() {
    let calls = Arc::new(AtomicU32::new(0));
    let inner = scripted(calls.clone(), |_| {
        Some(GatewayError::new(ErrorKind::InvalidResponse, "x"))
    });
    let policy = RetryPolicy::default().retry_if(|_| true);
    let _ = RetryLayer::new(policy.clone())
        .layer_on(inner)
        .oneshot(get("http://a.test/"))
        .await;
    assert_eq!(calls.load(Ordering::SeqCst), 3);

    let calls = Arc::new(AtomicU32::new(0));
    let inner = scripted(calls.clone(), |_| {
        Some(GatewayError::new(ErrorKind::InvalidRequest, "x"))
    });
    let _ = RetryLayer::new(policy)
        .layer_on(inner)
        .oneshot(get("http://a.test/"))
        .await;
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn retry_after_seconds_sets_the_pause() {
    let calls = Arc::new(AtomicU32::new(0));
    let inner = scripted(calls.clone(), |n| {
        (n == 1).then(|| unavailable(&[("retry-after", "7")]))
    });
    let started = Instant::now();
    RetryLayer::default()
        .layer_on(inner)
        .oneshot(get("http://a.test/"))
        .await
        .unwrap();
    assert_eq!(started.elapsed(), Duration::from_secs(7));
}

#[tokio::test(start_paused = true)]
async fn retry_after_http_date_sets_the_pause() {
    let calls = Arc::new(AtomicU32::new(0));
    let inner = scripted(calls.clone(), |n| {
        let at = std::time::SystemTime::now() + Duration::from_secs(5);
        (n == 1).then(|| unavailable(&[("retry-after", &httpdate::fmt_http_date(at))]))
    });
    let started = Instant::now();
    RetryLayer::default()
        .layer_on(inner)
        .oneshot(get("http://a.test/"))
        .await
        .unwrap();
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(3) && waited <= Duration::from_secs(5),
        "{waited:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn retry_after_past_the_maximum_returns_at_once() {
    let calls = Arc::new(AtomicU32::new(0));
    let inner = scripted(calls.clone(), |_| {
        Some(unavailable(&[("retry-after", "3600")]))
    });
    let started = Instant::now();
    let err = RetryLayer::default()
        .layer_on(inner)
        .oneshot(get("http://a.test/"))
        .await
        .unwrap_err();
    assert_eq!(started.elapsed(), Duration::ZERO);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert!(
        err.not_retried_because().unwrap().contains("3600s"),
        "{err}"
    );
}

#[tokio::test(start_paused = true)]
async fn garbage_retry_after_falls_back_to_backoff() {
    for garbage in ["-1", "soon", "1e9", "Thu, 32 Foo 2024 99:99:99 GMT"] {
        let calls = Arc::new(AtomicU32::new(0));
        let bad = garbage.to_owned();
        let inner = scripted(calls.clone(), move |n| {
            (n == 1).then(|| unavailable(&[("retry-after", &bad)]))
        });
        let policy = RetryPolicy::default()
            .backoff(ExponentialBackoff::new(Duration::from_millis(40)).jitter(Jitter::None));
        let started = Instant::now();
        RetryLayer::new(policy)
            .layer_on(inner)
            .oneshot(get("http://a.test/"))
            .await
            .unwrap();
        assert_eq!(started.elapsed(), Duration::from_millis(40), "{garbage}");
    }
}

#[tokio::test(start_paused = true)]
async fn budget_dries_up_in_a_full_outage() {
    let calls = Arc::new(AtomicU32::new(0));
    let inner = scripted(calls.clone(), |_| {
        Some(GatewayError::new(ErrorKind::BadGateway, "down"))
    });
    let svc = RetryLayer::new(RetryPolicy::default()).layer_on(inner);
    let requests = 2_000u32;
    let mut budget_refusals = 0;
    for _ in 0..requests {
        let err = svc
            .clone()
            .oneshot(get("http://a.test/"))
            .await
            .unwrap_err();
        if err.not_retried_because() == Some("the retry budget is exhausted") {
            budget_refusals += 1;
        }
    }
    let amplification = f64::from(calls.load(Ordering::SeqCst)) / f64::from(requests);
    // Bound: 1 + capacity / cost / requests = 1 + 500 / 5 / 2000 = 1.05 (no success refills it).
    assert!(amplification <= 1.05, "amplification {amplification}");
    assert!(budget_refusals > 1_900);
}

#[tokio::test(start_paused = true)]
async fn budget_lets_every_recoverable_request_through() {
    let attempts: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
    let seen = attempts.clone();
    let inner = service_fn(move |req: reqwest_resilience::Request| {
        let id = req.url().query().unwrap_or("").to_owned();
        let n = {
            let mut map = seen.lock().unwrap();
            let n = map.entry(id.clone()).or_insert(0);
            *n += 1;
            *n
        };
        let number: u32 = id.trim_start_matches("id=").parse().unwrap();
        // 30% of logical requests fail their first attempt.
        let fails = number % 10 < 3 && n == 1;
        async move {
            if fails {
                Err(GatewayError::new(ErrorKind::BadGateway, "flaky"))
            } else {
                Ok(ok_response())
            }
        }
    });
    let svc = RetryLayer::new(RetryPolicy::default()).layer_on(inner);
    let requests = 5_000u32;
    let mut ok = 0;
    for i in 0..requests {
        if svc
            .clone()
            .oneshot(get(&format!("http://a.test/?id={i}")))
            .await
            .is_ok()
        {
            ok += 1;
        }
    }
    assert_eq!(ok, requests);
    let total: u32 = attempts.lock().unwrap().values().sum();
    assert_eq!(total, requests + requests * 3 / 10);
}

/// A budget is per host by default and per client when asked; each setter keeps the scope and
/// gives a full bucket of the new capacity.
#[test]
fn a_budget_says_its_scope_and_setters_keep_it() {
    assert!(RetryBudget::new().is_per_host());
    assert!(!RetryBudget::new().per_client().is_per_host());
    let client = RetryBudget::new().per_client().capacity(40).retry_cost(7);
    assert!(!client.is_per_host());
    assert_eq!(client.available(), 40);
    let per_host = RetryBudget::new().max_hosts(3).capacity(60);
    assert!(per_host.is_per_host());
    assert_eq!(per_host.available(), 60);
}

#[tokio::test(start_paused = true)]
async fn a_shared_budget_is_shared_by_clones() {
    let budget = RetryBudget::new()
        .capacity(10)
        .retry_cost(5)
        .timeout_retry_cost(10)
        .success_reward(0);
    let policy = RetryPolicy::default().budget(budget.clone());
    let calls = Arc::new(AtomicU32::new(0));
    let inner = scripted(calls.clone(), |_| {
        Some(GatewayError::new(ErrorKind::BadGateway, "down"))
    });
    let a = RetryLayer::new(policy.clone()).layer_on(inner.clone());
    let b = RetryLayer::new(policy).layer_on(inner);
    let _ = a.oneshot(get("http://a.test/")).await;
    let _ = b.oneshot(get("http://a.test/")).await;
    assert_eq!(budget.available(), 0);
    assert_eq!(calls.load(Ordering::SeqCst), 4); // 1 + 2 retries, then 1 + 0
    // Per host: a.test's bucket is dry, another host's is full.
    assert_eq!(budget.available_for(&"http://a.test/x".parse().unwrap()), 0);
    assert_eq!(budget.available_for(&"http://b.test/".parse().unwrap()), 10);
}

#[tokio::test(start_paused = true)]
async fn deadline_too_close_for_the_pause_stops_retrying() {
    use reqwest_resilience::timeout::DeadlineLayer;
    #[derive(Debug)]
    struct Fixed;
    impl Backoff for Fixed {
        fn delay(&self, _: u32, _: Duration) -> Option<Duration> {
            Some(Duration::from_secs(10))
        }
    }
    let calls = Arc::new(AtomicU32::new(0));
    let inner = scripted(calls.clone(), |_| {
        Some(GatewayError::new(ErrorKind::BadGateway, "down"))
    });
    let svc = ServiceBuilder::new()
        .layer(DeadlineLayer::new(Duration::from_secs(3)))
        .layer(RetryLayer::new(RetryPolicy::default().backoff(Fixed)))
        .service(inner);
    let started = Instant::now();
    let err = svc.oneshot(get("http://a.test/")).await.unwrap_err();
    assert_eq!(started.elapsed(), Duration::ZERO);
    assert_eq!(err.kind(), ErrorKind::BadGateway);
    assert_eq!(
        err.not_retried_because(),
        Some("the deadline leaves no time for another attempt")
    );
}

proptest! {
    #[test]
    fn every_delay_is_within_zero_and_the_cap(
        base_ms in 0u64..5_000,
        multiplier in 0.0f64..10.0,
        cap_ms in 0u64..60_000,
        retry in 1u32..100,
        previous_ms in 0u64..120_000,
        jitter in prop_oneof![Just(Jitter::None), Just(Jitter::Full), Just(Jitter::Decorrelated)],
    ) {
        let cap = Duration::from_millis(cap_ms);
        let backoff = ExponentialBackoff::new(Duration::from_millis(base_ms))
            .multiplier(multiplier)
            .cap(cap)
            .jitter(jitter);
        let delay = backoff.delay(retry, Duration::from_millis(previous_ms)).unwrap();
        prop_assert!(delay <= cap);
    }

    #[test]
    fn without_jitter_the_schedule_grows_until_the_cap(
        base_ms in 1u64..1_000,
        multiplier in 1.0f64..4.0,
        retry in 1u32..40,
    ) {
        let backoff = ExponentialBackoff::new(Duration::from_millis(base_ms))
            .multiplier(multiplier)
            .cap(Duration::from_secs(30))
            .jitter(Jitter::None);
        let now = backoff.delay(retry, Duration::ZERO).unwrap();
        let next = backoff.delay(retry + 1, Duration::ZERO).unwrap();
        prop_assert!(next >= now);
    }
}

/// The schedule is `base × multiplier^(retry-1)` up to the cap; a multiplier below 1, NaN or
/// infinite is taken as 1 (a constant pause), never a shrinking or endless one.
#[test]
fn the_multiplier_sets_the_growth_and_bad_ones_are_one() {
    let ms = |b: &ExponentialBackoff, retry| b.delay(retry, Duration::ZERO).unwrap().as_millis();
    let base = ExponentialBackoff::new(Duration::from_millis(100))
        .cap(Duration::from_secs(10))
        .jitter(Jitter::None);
    let triple = base.multiplier(3.0);
    assert_eq!(
        [ms(&triple, 1), ms(&triple, 2), ms(&triple, 3)],
        [100, 300, 900]
    );
    assert_eq!(ms(&triple, 10), 10_000, "capped");
    for bad in [0.5, 0.0, -2.0, f64::NAN, f64::INFINITY] {
        let b = base.multiplier(bad);
        assert_eq!([ms(&b, 1), ms(&b, 2), ms(&b, 5)], [100, 100, 100], "{bad}");
    }
    let one = base.multiplier(1.0);
    assert_eq!(ms(&one, 7), 100);
}

#[test]
fn full_jitter_spreads_over_the_whole_range() {
    let backoff = ExponentialBackoff::new(Duration::from_millis(100)).cap(Duration::from_secs(10));
    let ceiling = Duration::from_millis(1_600); // 100 ms × 2^4
    let samples: Vec<Duration> = (0..2_000)
        .map(|_| backoff.delay(5, Duration::ZERO).unwrap())
        .collect();
    let low = samples.iter().filter(|d| **d < ceiling / 4).count();
    let high = samples.iter().filter(|d| **d > ceiling * 3 / 4).count();
    assert!(samples.iter().all(|d| *d <= ceiling));
    assert!(low > 300 && high > 300, "low {low} high {high}");
}

#[test]
fn decorrelated_jitter_stays_between_base_and_three_times_previous() {
    let base = Duration::from_millis(50);
    let backoff = ExponentialBackoff::new(base)
        .jitter(Jitter::Decorrelated)
        .cap(Duration::from_secs(60));
    let previous = Duration::from_millis(400);
    for _ in 0..1_000 {
        let d = backoff.delay(3, previous).unwrap();
        assert!(d >= base && d <= previous * 3, "{d:?}");
    }
}

// --- over real HTTP ---------------------------------------------------------------------

fn client() -> Client {
    Client::builder().retry(fast()).build().unwrap()
}

#[tokio::test]
async fn post_that_may_have_arrived_is_sent_once() {
    let server = FaultServer::start(Fault::Reset).await;
    let err = client()
        .post(server.url("/orders"))
        .body("{}")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionClosed);
    assert_eq!(server.hits(), 1);
    assert!(
        err.not_retried_because()
            .unwrap()
            .contains("not idempotent"),
        "{err}"
    );
}

#[tokio::test]
async fn post_with_idempotency_key_is_retried() {
    let server = FaultServer::start(Fault::Reset).await;
    let err = client()
        .post(server.url("/orders"))
        .header("Idempotency-Key", "a1")
        .body("{}")
        .send()
        .await
        .unwrap_err();
    assert_eq!(server.hits(), 3);
    assert_eq!(err.attempts(), 3);
}

#[tokio::test]
async fn post_opted_in_per_request_is_retried() {
    let server = FaultServer::start(Fault::Reset).await;
    let _ = client()
        .post(server.url("/orders"))
        .idempotent()
        .body("{}")
        .send()
        .await;
    assert_eq!(server.hits(), 3);
}

#[tokio::test]
async fn post_to_a_refused_port_is_retried_because_it_never_arrived() {
    let url = refused_url("/orders").await;
    let err = client().post(&url).body("{}").send().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectFailed);
    assert_eq!(err.attempts(), 3);
}

#[tokio::test]
async fn a_streamed_body_is_sent_once_and_the_error_says_why() {
    let server = FaultServer::start(Fault::Reset).await;
    let body = reqwest::Body::wrap(http_body_util::Full::new(Bytes::from_static(b"stream")));
    let err = client()
        .put(server.url("/blob"))
        .body(body)
        .send()
        .await
        .unwrap_err();
    assert_eq!(server.hits(), 1);
    assert_eq!(
        err.not_retried_because(),
        Some("the request body is a stream and cannot be sent again")
    );
}

#[tokio::test]
async fn per_request_overrides() {
    let mock = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(502))
        .mount(&mock)
        .await;
    let client = client();

    let err = client.get(mock.uri()).no_retry().send().await.unwrap_err();
    assert_eq!(err.attempts(), 1);
    assert_eq!(mock.received_requests().await.unwrap().len(), 1);

    let err = client
        .get(mock.uri())
        .retry(fast().max_attempts(5))
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.attempts(), 5);
    assert_eq!(mock.received_requests().await.unwrap().len(), 6);
}

#[tokio::test]
async fn recovers_from_a_flaky_upstream_over_http() {
    let mock = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(2)
        .mount(&mock)
        .await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_string("ok"))
        .mount(&mock)
        .await;
    let response = client().get(mock.uri()).send().await.unwrap();
    assert_eq!(response.text().await.unwrap(), "ok");
    assert_eq!(mock.received_requests().await.unwrap().len(), 3);
}

#[cfg(feature = "backoff")]
#[test]
fn the_backoff_crate_can_drive_the_schedule() {
    use reqwest_resilience::retry::BackoffCrate;
    let template = backoff::ExponentialBackoff {
        initial_interval: Duration::from_millis(10),
        randomization_factor: 0.0,
        multiplier: 2.0,
        max_interval: Duration::from_secs(1),
        max_elapsed_time: None,
        ..backoff::ExponentialBackoff::default()
    };
    let schedule = BackoffCrate(template);
    assert_eq!(
        schedule.delay(1, Duration::ZERO),
        Some(Duration::from_millis(10))
    );
    assert_eq!(
        schedule.delay(3, Duration::ZERO),
        Some(Duration::from_millis(40))
    );
    // Each call starts from a fresh copy: asking again gives the same pause.
    assert_eq!(
        schedule.delay(1, Duration::ZERO),
        Some(Duration::from_millis(10))
    );
}

// --- 429 Too Many Requests ------------------------------------------------------------------

fn too_many(retry_after: &str) -> reqwest::Response {
    let response = http::Response::builder()
        .status(429)
        .header("retry-after", retry_after)
        .body(Bytes::new())
        .unwrap();
    reqwest::Response::from(response)
}

#[tokio::test(start_paused = true)]
async fn a_429_is_retried_after_its_retry_after() {
    let calls = Arc::new(AtomicU32::new(0));
    let counter = calls.clone();
    let inner = service_fn(move |_req: reqwest_resilience::Request| {
        let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
        async move { Ok::<_, GatewayError>(if n == 1 { too_many("7") } else { ok_response() }) }
    });
    let started = Instant::now();
    let response = RetryLayer::default()
        .layer_on(inner)
        .oneshot(get("http://a.test/"))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(started.elapsed(), Duration::from_secs(7));
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn a_429_not_retried_is_handed_back_as_it_is() {
    for (policy, asked, expected_calls) in [
        (RetryPolicy::default(), "3600", 1), // past the maximum
        (
            RetryPolicy::default().retry_too_many_requests(false),
            "1",
            1,
        ), // switched off
        (RetryPolicy::default(), "0", 3),    // every attempt limited
    ] {
        let calls = Arc::new(AtomicU32::new(0));
        let counter = calls.clone();
        let inner = service_fn(move |_req: reqwest_resilience::Request| {
            counter.fetch_add(1, Ordering::SeqCst);
            async move { Ok::<_, GatewayError>(too_many(asked)) }
        });
        let response = RetryLayer::new(policy)
            .layer_on(inner)
            .oneshot(get("http://a.test/"))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(
            calls.load(Ordering::SeqCst),
            expected_calls,
            "Retry-After {asked}"
        );
    }
}

#[tokio::test]
async fn a_429_to_a_post_without_key_is_not_resent() {
    let mock = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "0"))
        .mount(&mock)
        .await;
    let response = client().post(mock.uri()).body("{}").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(mock.received_requests().await.unwrap().len(), 1);
}

/// Polls `future` once more after it ended: it must answer, not panic.
async fn poll_again<F>(future: std::pin::Pin<&mut F>) -> F::Output
where
    F: std::future::Future,
{
    let mut future = future;
    std::future::poll_fn(|cx| future.as_mut().poll(cx)).await
}

#[tokio::test(start_paused = true)]
async fn a_retry_future_polled_after_it_ended_says_so() {
    use tower::Service;
    // The healthy path (in place) and the retried path (boxed).
    for failures in [0u32, 1] {
        let calls = Arc::new(AtomicU32::new(0));
        let inner = service_fn(move |_req: reqwest_resilience::Request| {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            async move {
                if n < failures {
                    Err(GatewayError::new(ErrorKind::BadGateway, "down"))
                } else {
                    Ok(ok_response())
                }
            }
        });
        let mut svc = ServiceBuilder::new()
            .layer(RetryLayer::new(fast()))
            .service(inner);
        let mut future = std::pin::pin!(svc.call(get("http://a.test/")));
        assert!(future.as_mut().await.is_ok());
        let again = poll_again(future).await.unwrap_err();
        assert_eq!(again.kind(), ErrorKind::Other, "{again}");
    }
}

#[tokio::test]
async fn a_transport_future_polled_after_it_ended_says_so() {
    use tower::Service;
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let mut transport = reqwest_resilience::Transport::new(reqwest::Client::new());
    let mut future = std::pin::pin!(transport.call(get(&server.uri())));
    assert!(future.as_mut().await.is_ok());
    let again = poll_again(future).await.unwrap_err();
    assert_eq!(again.kind(), ErrorKind::Other, "{again}");
}

/// A service whose n-th call (from 1) waits `delays[n-1]` and then fails or succeeds.
fn timed(
    calls: Arc<AtomicU32>,
    script: &'static [(u64, bool)],
) -> impl tower::Service<
    reqwest_resilience::Request,
    Response = reqwest::Response,
    Error = GatewayError,
    Future = impl std::future::Future<Output = Result<reqwest::Response, GatewayError>> + Send,
> + Clone
+ Send
+ 'static {
    service_fn(move |_req: reqwest_resilience::Request| {
        let n = calls.fetch_add(1, Ordering::SeqCst) as usize;
        let (delay_ms, ok) = script.get(n).copied().unwrap_or((0, true));
        async move {
            tokio::time::sleep(Duration::from_millis(delay_ms)).await;
            if ok {
                Ok(ok_response())
            } else {
                Err(GatewayError::new(ErrorKind::BadGateway, "down"))
            }
        }
    })
}

#[tokio::test(start_paused = true)]
async fn a_failed_hedge_leaves_the_first_call_to_answer() {
    let calls = Arc::new(AtomicU32::new(0));
    // The first call answers after 1 s; the hedge (sent at 50 ms) fails at once.
    let svc = ServiceBuilder::new()
        .layer(RetryLayer::new(
            fast().hedge_after(Duration::from_millis(50)),
        ))
        .service(timed(calls.clone(), &[(1000, true), (0, false)]));
    let started = Instant::now();
    let response = svc.oneshot(get("http://a.test/")).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert!(started.elapsed() >= Duration::from_millis(1000));
}

#[tokio::test(start_paused = true)]
async fn when_both_the_call_and_its_hedge_fail_the_retry_goes_on() {
    let calls = Arc::new(AtomicU32::new(0));
    let svc = ServiceBuilder::new()
        .layer(RetryLayer::new(
            fast()
                .max_attempts(3)
                .hedge_after(Duration::from_millis(50)),
        ))
        .service(timed(calls.clone(), &[(100, false), (0, false), (0, true)]));
    let response = svc.oneshot(get("http://a.test/")).await.unwrap();
    assert_eq!(response.status(), 200);
    // Two attempts in the first round (the call and its hedge), then the retry.
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

#[tokio::test(start_paused = true)]
async fn a_hedge_wins_and_counts_as_an_attempt() {
    let calls = Arc::new(AtomicU32::new(0));
    let svc = ServiceBuilder::new()
        .layer(RetryLayer::new(
            fast().hedge_after(Duration::from_millis(50)),
        ))
        .service(timed(calls.clone(), &[(10_000, true), (5, true)]));
    let started = Instant::now();
    let response = svc.oneshot(get("http://a.test/")).await.unwrap();
    assert!(
        started.elapsed() < Duration::from_millis(100),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(reqwest_resilience::attempts(&response), 2);
}

#[tokio::test(start_paused = true)]
async fn a_hedge_uses_the_last_attempt_allowed() {
    let calls = Arc::new(AtomicU32::new(0));
    let svc = ServiceBuilder::new()
        .layer(RetryLayer::new(
            fast()
                .max_attempts(2)
                .hedge_after(Duration::from_millis(50)),
        ))
        .service(timed(calls.clone(), &[(100, false), (0, false), (0, true)]));
    let err = svc.oneshot(get("http://a.test/")).await.unwrap_err();
    assert_eq!(calls.load(Ordering::SeqCst), 2, "no third attempt");
    assert_eq!(err.attempts(), 2);
}

/// A host that is down (dead.test) and one that fails each request's first attempt only
/// (flaky.test), behind one service.
fn two_hosts(
    flaky_seen: Arc<Mutex<HashMap<String, u32>>>,
) -> impl tower::Service<
    reqwest_resilience::Request,
    Response = reqwest::Response,
    Error = GatewayError,
    Future = impl std::future::Future<Output = Result<reqwest::Response, GatewayError>> + Send,
> + Clone
+ Send
+ 'static {
    service_fn(move |req: reqwest_resilience::Request| {
        let host = req.url().host_str().unwrap_or("").to_owned();
        let first = {
            let mut seen = flaky_seen.lock().unwrap();
            let n = seen.entry(req.url().to_string()).or_insert(0);
            *n += 1;
            *n == 1
        };
        async move {
            match (host.as_str(), first) {
                ("dead.test", _) | ("flaky.test", true) => {
                    Err(GatewayError::new(ErrorKind::BadGateway, "down"))
                }
                _ => Ok(ok_response()),
            }
        }
    })
}

async fn mixed_load(budget: RetryBudget) -> usize {
    let seen = Arc::new(Mutex::new(HashMap::new()));
    let policy = RetryPolicy::default()
        .max_attempts(3)
        .backoff(ExponentialBackoff::new(Duration::ZERO))
        .budget(budget);
    let svc = RetryLayer::new(policy).layer_on(two_hosts(seen));
    let mut flaky_ok = 0;
    // The dead host first drains what it may; then the flaky host's requests.
    for i in 0..400 {
        let _ = svc
            .clone()
            .oneshot(get(&format!("http://dead.test/{i}")))
            .await;
    }
    for i in 0..200 {
        if svc
            .clone()
            .oneshot(get(&format!("http://flaky.test/{i}")))
            .await
            .is_ok()
        {
            flaky_ok += 1;
        }
    }
    flaky_ok
}

#[tokio::test(start_paused = true)]
async fn a_dead_host_does_not_drain_another_hosts_retries() {
    // Per host (the default): every flaky request gets its retry.
    assert_eq!(mixed_load(RetryBudget::default()).await, 200);
    // One bucket for the client: the dead host took the retries.
    assert_eq!(mixed_load(RetryBudget::default().per_client()).await, 0);
}

#[tokio::test(start_paused = true)]
async fn a_response_the_policy_retries_does_not_win_a_hedge_race() {
    let calls = Arc::new(AtomicU32::new(0));
    let counted = calls.clone();
    // The first call answers 200 after 100 ms; its hedge (sent at 50 ms) a 429 at once.
    let inner = service_fn(move |_req: reqwest_resilience::Request| {
        let n = counted.fetch_add(1, Ordering::SeqCst);
        async move {
            if n == 0 {
                tokio::time::sleep(Duration::from_millis(100)).await;
                Ok::<_, GatewayError>(ok_response())
            } else {
                Ok(reqwest::Response::from(
                    http::Response::builder().status(429).body("").unwrap(),
                ))
            }
        }
    });
    let svc = ServiceBuilder::new()
        .layer(RetryLayer::new(
            fast().hedge_after(Duration::from_millis(50)),
        ))
        .service(inner);
    let response = svc.oneshot(get("http://a.test/")).await.unwrap();
    assert_eq!(response.status(), 200, "the 429 waited for the other call");
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

/// The policy's switches each take effect: `attempts()` says the count, and
/// `retry_non_idempotent` resends a POST whose attempt timed out (by default it is not: the
/// server may have acted on it).
#[tokio::test(start_paused = true)]
async fn the_policys_attempts_and_its_non_idempotent_switch() {
    assert_eq!(RetryPolicy::default().attempts(), 3);
    assert_eq!(RetryPolicy::default().max_attempts(5).attempts(), 5);
    assert_eq!(RetryPolicy::never().attempts(), 1);
    assert!(
        RetryPolicy::default().retry_budget().is_some(),
        "a budget by default"
    );
    assert!(RetryPolicy::default().no_budget().retry_budget().is_none());
    for (policy, sent) in [
        (fast().no_budget(), 1),
        (fast().no_budget().retry_non_idempotent(true), 3),
    ] {
        let calls = Arc::new(AtomicU32::new(0));
        let inner = scripted(calls.clone(), |_| {
            Some(GatewayError::new(ErrorKind::TimedOut, "slow"))
        });
        let post: reqwest_resilience::Request =
            reqwest::Request::new(reqwest::Method::POST, "http://a.test/".parse().unwrap()).into();
        let err = RetryLayer::new(policy)
            .layer_on(inner)
            .oneshot(post)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::TimedOut);
        assert_eq!(calls.load(Ordering::SeqCst), sent);
    }
}

/// `honor_retry_after(false)`: the backoff sets the pause, not the 503's `Retry-After`.
#[tokio::test(start_paused = true)]
async fn retry_after_can_be_ignored() {
    let (calls, paused) = retried_once(fast().honor_retry_after(false), || {
        unavailable(&[("retry-after", "7")])
    })
    .await;
    assert_eq!(calls, 2);
    assert!(paused < Duration::from_secs(1), "paused {paused:?}");
}

/// One GET through `policy` over an upstream whose first call fails with `first()` and whose
/// next is answered: the calls made, and how long the request took (its pause).
async fn retried_once(policy: RetryPolicy, first: fn() -> GatewayError) -> (u32, Duration) {
    let calls = Arc::new(AtomicU32::new(0));
    let inner = scripted(calls.clone(), move |n| (n == 1).then(first));
    let started = Instant::now();
    RetryLayer::new(policy)
        .layer_on(inner)
        .oneshot(get("http://a.test/"))
        .await
        .unwrap();
    (calls.load(Ordering::SeqCst), started.elapsed())
}

/// A 408 and a 429 are retried by default and handed back at once when switched off.
#[tokio::test(start_paused = true)]
async fn the_408_and_429_switches_take_effect() {
    for (status, policy, sent) in [
        (408, fast().no_budget(), 3),
        (408, fast().no_budget().retry_request_timeout(false), 1),
        (429, fast().no_budget(), 3),
        (429, fast().no_budget().retry_too_many_requests(false), 1),
    ] {
        let calls = Arc::new(AtomicU32::new(0));
        let c = calls.clone();
        let inner = service_fn(move |_req: reqwest_resilience::Request| {
            c.fetch_add(1, Ordering::SeqCst);
            let response = http::Response::builder()
                .status(status)
                .body(Bytes::new())
                .unwrap();
            async move { Ok::<_, GatewayError>(reqwest::Response::from(response)) }
        });
        let response = RetryLayer::new(policy)
            .layer_on(inner)
            .oneshot(get("http://a.test/"))
            .await
            .unwrap();
        assert_eq!(response.status(), status, "handed back as the answer it is");
        assert_eq!(calls.load(Ordering::SeqCst), sent, "{status}");
    }
}

/// With retries off there is no reason to give for not retrying.
#[tokio::test(start_paused = true)]
async fn a_single_attempt_policy_gives_no_reason() {
    let calls = Arc::new(AtomicU32::new(0));
    let inner = scripted(calls.clone(), |_| {
        Some(GatewayError::new(ErrorKind::TimedOut, "slow"))
    });
    let err = RetryLayer::new(RetryPolicy::never())
        .layer_on(inner)
        .oneshot(get("http://a.test/"))
        .await
        .unwrap_err();
    assert_eq!(err.attempts(), 1);
    assert_eq!(err.not_retried_because(), None, "{err}");
}

/// A `Retry-After` of exactly the most the policy waits is waited for; a second more is not.
#[tokio::test(start_paused = true)]
async fn retry_after_at_the_maximum_is_waited_for() {
    for (asked, retried) in [("7", true), ("8", false)] {
        let calls = Arc::new(AtomicU32::new(0));
        let inner = scripted(calls.clone(), move |n| {
            (n == 1).then(|| unavailable(&[("retry-after", asked)]))
        });
        let started = Instant::now();
        let outcome = RetryLayer::new(fast().max_retry_after(Duration::from_secs(7)))
            .layer_on(inner)
            .oneshot(get("http://a.test/"))
            .await;
        assert_eq!(outcome.is_ok(), retried, "Retry-After: {asked}");
        if retried {
            assert_eq!(started.elapsed(), Duration::from_secs(7));
        }
    }
}

/// `Retry-After` sets the pause on a 503 or a 429, or on an answer the user's rules retry; on
/// a gateway's 502 (retried as the gateway failure it is, even when the user also lists 502)
/// the backoff does.
#[tokio::test(start_paused = true)]
async fn retry_after_on_a_gateways_502_is_not_a_pause() {
    fn nginx_502() -> GatewayError {
        let mut map = HeaderMap::new();
        map.insert("retry-after", "5".parse().unwrap());
        map.insert("server", "nginx/1.24.0".parse().unwrap());
        let body = Bytes::from_static(
            b"<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center><hr><center>nginx/1.24.0</center></body></html>",
        );
        let snapshot = ResponseSnapshot::new(StatusCode::BAD_GATEWAY, map, body, true);
        GatewayError::from_response(snapshot).unwrap()
    }
    assert_eq!(nginx_502().kind(), ErrorKind::BadGateway);
    let (calls, paused) = retried_once(fast().retry_on_status([502]), nginx_502).await;
    assert_eq!(calls, 2);
    assert!(paused < Duration::from_secs(1), "paused {paused:?}");
}

/// Inside the stack, a request says which attempt it is (0 before the first).
#[tokio::test(start_paused = true)]
async fn a_request_knows_its_attempt() {
    assert_eq!(get("http://a.test/").attempts(), 0);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let inner = service_fn(move |req: reqwest_resilience::Request| {
        let n = {
            let mut seen = s.lock().unwrap();
            seen.push(req.attempts());
            seen.len()
        };
        async move {
            if n < 3 {
                Err(GatewayError::new(ErrorKind::BadGateway, "down"))
            } else {
                Ok(ok_response())
            }
        }
    });
    RetryLayer::new(fast())
        .layer_on(inner)
        .oneshot(get("http://a.test/"))
        .await
        .unwrap();
    assert_eq!(*seen.lock().unwrap(), [1, 2, 3]);
}

/// A request that failed spends its retry's tokens for good; a first-attempt success adds the
/// reward back.
#[tokio::test(start_paused = true)]
async fn a_first_attempt_success_earns_the_reward() {
    let budget = RetryBudget::new()
        .capacity(10)
        .retry_cost(5)
        .success_reward(1)
        .per_client();
    let policy = fast().max_attempts(2).budget(budget.clone());
    let calls = Arc::new(AtomicU32::new(0));
    let failing = scripted(calls.clone(), |_| {
        Some(GatewayError::new(ErrorKind::BadGateway, "down"))
    });
    let err = RetryLayer::new(policy.clone())
        .layer_on(failing)
        .oneshot(get("http://a.test/"))
        .await
        .unwrap_err();
    assert_eq!(err.attempts(), 2);
    assert_eq!(budget.available(), 5, "the retry's cost is spent");
    let answering = scripted(calls.clone(), |_| None);
    RetryLayer::new(policy)
        .layer_on(answering)
        .oneshot(get("http://a.test/"))
        .await
        .unwrap();
    assert_eq!(
        budget.available(),
        6,
        "a first-attempt success adds its reward"
    );
}

/// What each attempt of a request carried: its marker extension (seen through reqwest's
/// conversion to `http::Request`, which keeps the extensions), header and URL.
#[derive(Debug, Clone, PartialEq)]
struct Carried {
    marker: Option<u32>,
    header: Option<String>,
    url: String,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Marker(u32);

/// An inner service failing its first call, recording what every call carried.
fn recording(
    seen: Arc<Mutex<Vec<Carried>>>,
) -> impl tower::Service<
    reqwest_resilience::Request,
    Response = reqwest::Response,
    Error = GatewayError,
    Future = impl Send,
> + Clone
+ Send
+ 'static {
    service_fn(move |req: reqwest_resilience::Request| {
        let header = req
            .headers()
            .get("x-order")
            .map(|v| v.to_str().unwrap().to_owned());
        let url = req.url().to_string();
        let http = http::Request::<reqwest::Body>::try_from(req.into_inner()).unwrap();
        let marker = http.extensions().get::<Marker>().map(|m| m.0);
        let mut seen = seen.lock().unwrap();
        seen.push(Carried {
            marker,
            header,
            url,
        });
        let first = seen.len() == 1;
        async move {
            if first {
                Err(GatewayError::new(ErrorKind::BadGateway, "down"))
            } else {
                Ok(ok_response())
            }
        }
    })
}

/// A request built by the client's builder is copied for its retry without reqwest's
/// `try_clone` (no extension map to copy): the copy carries the same URL and headers.
#[tokio::test(start_paused = true)]
async fn a_retry_of_a_built_request_carries_its_url_and_headers() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let svc = RetryLayer::new(fast()).layer_on(recording(seen.clone()));
    let request = Client::new()
        .get("http://a.test/orders?id=17")
        .header("x-order", "17")
        .build()
        .unwrap();
    svc.oneshot(request).await.unwrap();
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0], seen[1], "the retry's copy is the request");
    assert_eq!(seen[1].header.as_deref(), Some("17"));
    assert_eq!(seen[1].url, "http://a.test/orders?id=17");
}

/// A request that came from elsewhere (an `http::Request` with extensions) keeps them in its
/// retry's copy, and so does a built request whose `reqwest::Request` was replaced through
/// `inner_mut`.
#[tokio::test(start_paused = true)]
async fn a_retry_keeps_the_extensions_of_a_request_from_elsewhere() {
    let with_marker = || {
        let mut http = http::Request::get("http://a.test/x")
            .body(reqwest::Body::from(""))
            .unwrap();
        http.extensions_mut().insert(Marker(7));
        let mut request = reqwest::Request::try_from(http).unwrap();
        // No body, like a GET from the builder: its copy could skip reqwest's.
        *request.body_mut() = None;
        request
    };

    let seen = Arc::new(Mutex::new(Vec::new()));
    let svc = RetryLayer::new(fast()).layer_on(recording(seen.clone()));
    svc.oneshot(reqwest_resilience::Request::from(with_marker()))
        .await
        .unwrap();
    let markers: Vec<_> = seen.lock().unwrap().iter().map(|c| c.marker).collect();
    assert_eq!(markers, [Some(7), Some(7)]);

    let seen = Arc::new(Mutex::new(Vec::new()));
    let svc = RetryLayer::new(fast()).layer_on(recording(seen.clone()));
    let mut request = Client::new().get("http://a.test/x").build().unwrap();
    *request.inner_mut() = with_marker();
    svc.oneshot(request).await.unwrap();
    let markers: Vec<_> = seen.lock().unwrap().iter().map(|c| c.marker).collect();
    assert_eq!(markers, [Some(7), Some(7)]);
}
