//! The fallback layer: re-targeting, failover order, no double delivery, ejection, probing,
//! fail-back, the max-ejection rule, credentials, composition and concurrent use.

mod support;

use bytes::Bytes;
use reqwest_resilience::fallback::FallbackLayer;
use reqwest_resilience::retry::{ExponentialBackoff, RetryLayer, RetryPolicy};
use reqwest_resilience::{BuildError, Client, ErrorKind, GatewayError};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::{Fault, FaultServer, refused_url};
use tower::{Layer, Service, ServiceBuilder, ServiceExt, service_fn};
use wiremock::matchers::{header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn fast() -> RetryPolicy {
    RetryPolicy::default().backoff(ExponentialBackoff::new(Duration::from_millis(1)))
}

async fn ok_server() -> MockServer {
    let mock = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_string("ok"))
        .mount(&mock)
        .await;
    mock
}

#[tokio::test]
async fn retargets_path_query_prefix_and_host() {
    let primary = refused_url("").await;
    let backup = MockServer::start().await;
    let backup_authority = backup.uri().trim_start_matches("http://").to_owned();
    Mock::given(method("GET"))
        .and(path("/svc/v1/items"))
        .and(query_param("x", "1"))
        .and(query_param("y", "two words"))
        .and(header("host", backup_authority.as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_string("moved"))
        .mount(&backup)
        .await;
    let client = Client::builder()
        .no_retry()
        .fallback_servers([format!("{primary}/api"), format!("{}/svc/", backup.uri())])
        .build()
        .unwrap();
    let primary_authority = primary.trim_start_matches("http://");
    let response = client
        .get(format!("{primary}/api/v1/items?x=1&y=two%20words"))
        .header("host", primary_authority)
        .send()
        .await
        .unwrap();
    assert_eq!(response.text().await.unwrap(), "moved");
}

#[tokio::test]
async fn fails_over_in_order_and_reports_every_cause() {
    let first = refused_url("").await;
    let second = FaultServer::start(Fault::Reset).await;
    let third = ok_server().await;
    let servers = [first.clone(), second.url(""), third.uri()];
    let client = Client::builder()
        .no_retry()
        .fallback_servers(&servers)
        .build()
        .unwrap();
    let response = client.get(format!("{first}/x")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(second.hits(), 1);

    // Without the healthy one, every server's failure is kept, in order.
    let client = Client::builder()
        .no_retry()
        .fallback_servers(&servers[..2])
        .build()
        .unwrap();
    let err = client.get(format!("{first}/x")).send().await.unwrap_err();
    assert!(matches!(err, GatewayError::NoHealthyServer(_)), "{err:?}");
    let kinds: Vec<ErrorKind> = err
        .details()
        .causes()
        .iter()
        .map(GatewayError::kind)
        .collect();
    assert_eq!(
        kinds,
        [ErrorKind::ConnectFailed, ErrorKind::ConnectionClosed]
    );
    assert!(
        err.to_string().contains("all 2 servers tried failed"),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("last: 502.2 connection closed early"),
        "{err}"
    );
}

#[tokio::test]
async fn a_post_that_may_have_arrived_is_not_sent_to_another_server() {
    let primary = FaultServer::start(Fault::Reset).await;
    let backup = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&backup)
        .await;
    let client = Client::builder()
        .retry(fast())
        .fallback_servers([primary.url(""), backup.uri()])
        .build()
        .unwrap();
    let err = client
        .post(primary.url("/orders"))
        .body("{}")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionClosed);
    assert_eq!(primary.hits(), 1);
    assert!(backup.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_post_that_never_arrived_goes_to_the_next_server() {
    let primary = refused_url("").await;
    let backup = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(201))
        .mount(&backup)
        .await;
    let client = Client::builder()
        .no_retry()
        .fallback_servers([primary.clone(), backup.uri()])
        .build()
        .unwrap();
    let response = client
        .post(format!("{primary}/orders"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    assert_eq!(backup.received_requests().await.unwrap().len(), 1);
}

/// With `forward_credentials`, an `Authorization` header travels to the other servers (every
/// server takes the same token); without it, nothing does. A server's own URL credentials are
/// its own either way.
#[tokio::test]
async fn forwarded_headers_travel_only_when_asked_and_servers_keep_their_own_credentials() {
    let primary = refused_url("").await;
    let backup = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&backup)
        .await;
    let backup_with_password = backup.uri().replace("http://", "http://bob:b4ckup@");
    for forward in [false, true] {
        let client = Client::builder()
            .no_retry()
            .fallback(
                reqwest_resilience::fallback::FallbackLayer::builder([
                    primary.clone(),
                    backup.uri(),
                ])
                .forward_credentials(forward),
            )
            .build()
            .unwrap();
        client
            .get(format!("{primary}/x"))
            .bearer_auth("token-for-all")
            .send()
            .await
            .unwrap();
    }
    let own = Client::builder()
        .no_retry()
        .fallback_servers([primary.clone(), backup_with_password])
        .build()
        .unwrap();
    own.get(format!("{primary}/x"))
        .bearer_auth("token-for-the-primary")
        .send()
        .await
        .unwrap();
    let received = backup.received_requests().await.unwrap();
    assert!(received[0].headers.get("authorization").is_none());
    assert_eq!(
        received[1].headers.get("authorization").unwrap(),
        "Bearer token-for-all"
    );
    assert_eq!(
        received[2].headers.get("authorization").unwrap(),
        "Basic Ym9iOmI0Y2t1cA==",
        "the backup's own credentials"
    );
}

#[tokio::test]
async fn other_hosts_pass_through_untouched() {
    let elsewhere = ok_server().await;
    let client = Client::builder()
        .no_retry()
        .fallback_servers(["http://127.0.0.1:9/"])
        .build()
        .unwrap();
    let response = client
        .get(format!("{}/direct", elsewhere.uri()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[test]
fn invalid_base_urls_are_builder_errors() {
    for bad in ["", "not a url", "ftp://a.test", "http://a.test/?k=v"] {
        let result = Client::builder().fallback_servers([bad]).build();
        assert!(
            matches!(result, Err(BuildError::FallbackServer(_))),
            "{bad:?}"
        );
    }
    let none: [&str; 0] = [];
    assert!(Client::builder().fallback_servers(none).build().is_err());
}

// --- health, with an in-memory inner service and paused time ------------------------------

type Calls = Arc<Mutex<HashMap<String, u32>>>;

/// Answers 200 except for hosts in `down`, which fail with a 502.3.
fn by_host(
    calls: Calls,
    down: Arc<Mutex<Vec<&'static str>>>,
) -> tower::util::BoxCloneSyncService<reqwest_resilience::Request, reqwest::Response, GatewayError>
{
    tower::util::BoxCloneSyncService::new(service_fn(move |req: reqwest_resilience::Request| {
        let host = req.url().host_str().unwrap_or("").to_owned();
        *calls.lock().unwrap().entry(host.clone()).or_default() += 1;
        let failing = down.lock().unwrap().contains(&host.as_str());
        async move {
            if failing {
                Err(GatewayError::new(ErrorKind::ConnectFailed, "refused"))
            } else {
                Ok(reqwest::Response::from(http::Response::new(Bytes::from(
                    host,
                ))))
            }
        }
    }))
}

fn get(url: &str) -> reqwest_resilience::Request {
    reqwest::Request::new(reqwest::Method::GET, url.parse().unwrap()).into()
}

fn count(calls: &Calls, host: &str) -> u32 {
    calls.lock().unwrap().get(host).copied().unwrap_or(0)
}

#[tokio::test(start_paused = true)]
async fn ejects_after_n_failures_probes_and_fails_back() {
    let calls: Calls = Arc::default();
    let down = Arc::new(Mutex::new(vec!["a.test"]));
    let layer = FallbackLayer::builder(["http://a.test", "http://b.test", "http://c.test"])
        .consecutive_failures(3)
        .base_ejection(Duration::from_secs(10))
        .build()
        .unwrap();
    let mut svc = layer.layer(by_host(calls.clone(), down.clone()));

    for _ in 0..3 {
        let body = svc
            .ready()
            .await
            .unwrap()
            .call(get("http://a.test/p"))
            .await
            .unwrap();
        assert_eq!(body.text().await.unwrap(), "b.test");
    }
    assert!(svc.is_ejected(0));
    for _ in 0..5 {
        svc.ready()
            .await
            .unwrap()
            .call(get("http://a.test/p"))
            .await
            .unwrap();
    }
    assert_eq!(count(&calls, "a.test"), 3, "an ejected server got traffic");

    // Time is up; the primary is still down: one probe, then out again for longer (2 × 10 s).
    tokio::time::advance(Duration::from_secs(11)).await;
    svc.ready()
        .await
        .unwrap()
        .call(get("http://a.test/p"))
        .await
        .unwrap();
    assert_eq!(count(&calls, "a.test"), 4);
    tokio::time::advance(Duration::from_secs(11)).await;
    svc.ready()
        .await
        .unwrap()
        .call(get("http://a.test/p"))
        .await
        .unwrap();
    assert_eq!(count(&calls, "a.test"), 4, "re-ejection should last 20 s");

    // It heals: the next probe restores it and traffic returns to the primary.
    down.lock().unwrap().clear();
    tokio::time::advance(Duration::from_secs(10)).await;
    for _ in 0..3 {
        let body = svc
            .ready()
            .await
            .unwrap()
            .call(get("http://a.test/p"))
            .await
            .unwrap();
        assert_eq!(body.text().await.unwrap(), "a.test");
    }
    assert!(!svc.is_ejected(0));
}

#[tokio::test(start_paused = true)]
async fn never_ejects_every_server() {
    let calls: Calls = Arc::default();
    let down = Arc::new(Mutex::new(vec!["a.test", "b.test"]));
    let layer = FallbackLayer::builder(["http://a.test", "http://b.test"])
        .consecutive_failures(2)
        .build()
        .unwrap();
    let mut svc = layer.layer(by_host(calls.clone(), down));
    for _ in 0..10 {
        let err = svc
            .ready()
            .await
            .unwrap()
            .call(get("http://a.test/"))
            .await
            .unwrap_err();
        assert!(matches!(
            err.kind(),
            ErrorKind::NoHealthyServer | ErrorKind::ConnectFailed
        ));
    }
    assert!(
        svc.is_ejected(0) != svc.is_ejected(1),
        "exactly one may be out"
    );
}

#[tokio::test(start_paused = true)]
async fn a_success_resets_the_failure_count() {
    let calls: Calls = Arc::default();
    let down = Arc::new(Mutex::new(vec!["a.test"]));
    let layer = FallbackLayer::builder(["http://a.test", "http://b.test"])
        .consecutive_failures(3)
        .build()
        .unwrap();
    let mut svc = layer.layer(by_host(calls, down.clone()));
    for round in 0..4 {
        for _ in 0..2 {
            svc.ready()
                .await
                .unwrap()
                .call(get("http://a.test/"))
                .await
                .unwrap();
        }
        down.lock().unwrap().clear();
        svc.ready()
            .await
            .unwrap()
            .call(get("http://a.test/"))
            .await
            .unwrap();
        down.lock().unwrap().push("a.test");
        assert!(!svc.is_ejected(0), "ejected in round {round}");
    }
}

#[tokio::test(start_paused = true)]
async fn retry_inside_gives_each_server_its_own_retries() {
    let calls: Calls = Arc::default();
    let down = Arc::new(Mutex::new(vec!["a.test"]));
    let svc = ServiceBuilder::new()
        .layer(FallbackLayer::new(["http://a.test", "http://b.test"]).unwrap())
        .layer(RetryLayer::new(fast()))
        .service(by_host(calls.clone(), down));
    svc.oneshot(get("http://a.test/")).await.unwrap();
    assert_eq!(count(&calls, "a.test"), 3);
    assert_eq!(count(&calls, "b.test"), 1);
}

#[tokio::test(start_paused = true)]
async fn retry_outside_fails_over_without_pausing() {
    let calls: Calls = Arc::default();
    let down = Arc::new(Mutex::new(vec!["a.test"]));
    let svc = ServiceBuilder::new()
        .layer(RetryLayer::new(RetryPolicy::default()))
        .layer(FallbackLayer::new(["http://a.test", "http://b.test"]).unwrap())
        .service(by_host(calls.clone(), down));
    let started = tokio::time::Instant::now();
    svc.oneshot(get("http://a.test/")).await.unwrap();
    assert_eq!(started.elapsed(), Duration::ZERO);
    assert_eq!((count(&calls, "a.test"), count(&calls, "b.test")), (1, 1));
}

/// 64 tasks on two threads, each call yielding in the middle so that calls overlap: the
/// failover and the ejection hold whatever the interleaving, and calls were really in flight
/// together (the peak is measured).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_use_from_many_tasks() {
    let calls: Calls = Arc::default();
    let down = Arc::new(Mutex::new(vec!["a.test"]));
    let layer = FallbackLayer::builder(["http://a.test", "http://b.test", "http://c.test"])
        .consecutive_failures(5)
        .build()
        .unwrap();
    let in_flight = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let peak = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let inner = by_host(calls.clone(), down);
    let (now, top) = (in_flight.clone(), peak.clone());
    let yielding = tower::util::BoxCloneSyncService::new(service_fn(
        move |req: reqwest_resilience::Request| {
            let (inner, now, top) = (inner.clone(), now.clone(), top.clone());
            async move {
                let n = now.fetch_add(1, Ordering::SeqCst) + 1;
                top.fetch_max(n, Ordering::SeqCst);
                tokio::task::yield_now().await;
                let outcome = inner.oneshot(req).await;
                now.fetch_sub(1, Ordering::SeqCst);
                outcome
            }
        },
    ));
    let svc = layer.layer(yielding);
    let failed = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let svc = svc.clone();
        let failed = failed.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..50 {
                if svc.clone().oneshot(get("http://a.test/")).await.is_err() {
                    failed.store(true, Ordering::SeqCst);
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert!(!failed.load(Ordering::SeqCst));
    assert!(
        peak.load(Ordering::SeqCst) > 1,
        "calls overlapped: {}",
        peak.load(Ordering::SeqCst)
    );
    assert_eq!(count(&calls, "b.test"), 64 * 50);
    // At most the threshold plus what was in flight when it tripped.
    assert!(
        count(&calls, "a.test") <= 5 + 64,
        "{}",
        count(&calls, "a.test")
    );
    assert!(svc.is_ejected(0));
}

#[tokio::test]
async fn a_path_alone_is_relative_to_the_primary() {
    let primary = refused_url("").await;
    let backup = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/svc/items"))
        .and(query_param("page", "2"))
        .respond_with(ResponseTemplate::new(200).set_body_string("relative"))
        .mount(&backup)
        .await;
    let client = Client::builder()
        .no_retry()
        .fallback_servers([format!("{primary}/api/"), format!("{}/svc", backup.uri())])
        .build()
        .unwrap();
    let response = client.get("/items?page=2").send().await.unwrap();
    assert_eq!(response.text().await.unwrap(), "relative");
}

/// `this_server_only()` reaches one replica itself: not re-targeted to the healthy primary,
/// and not failed over when that replica fails.
#[tokio::test]
async fn one_replica_can_be_asked_directly() {
    let primary = ok_server().await;
    let replica = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_string("replica"))
        .mount(&replica)
        .await;
    let dead = refused_url("").await;
    let client = Client::builder()
        .retry(fast().max_attempts(2))
        .fallback_servers([primary.uri(), replica.uri(), dead.clone()])
        .build()
        .unwrap();
    let url = format!("{}/health", replica.uri());
    // By default the fallback layer starts at the primary.
    let body = client.get(&url).send().await.unwrap().text().await.unwrap();
    assert_eq!(body, "ok");
    let body = client
        .get(&url)
        .this_server_only()
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(body, "replica");
    // A dead replica asked directly fails as itself, after its own retries: no failover.
    let primary_hits = primary.received_requests().await.unwrap().len();
    let err = client
        .get(format!("{dead}/health"))
        .this_server_only()
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        err.kind(),
        reqwest_resilience::ErrorKind::ConnectFailed,
        "{err}"
    );
    assert_eq!(err.attempts(), 2);
    assert_eq!(
        primary.received_requests().await.unwrap().len(),
        primary_hits
    );
}
