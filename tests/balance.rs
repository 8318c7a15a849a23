//! Balancing across healthy servers (`Balance::P2cPeakEwma`) with real loopback servers: a
//! slow replica gets a small share, an ejected one none, a POST is never sent to a second
//! server without proof, and a hedge goes to another server than its first copy.

use reqwest_resilience::fallback::{Balance, FallbackLayer};
use reqwest_resilience::retry::{ExponentialBackoff, RetryPolicy};
use reqwest_resilience::{Client, ErrorKind};
use std::time::Duration;
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, ResponseTemplate};

async fn server(template: ResponseTemplate) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(any())
        .respond_with(template)
        .mount(&server)
        .await;
    server
}

async fn hits(server: &MockServer) -> usize {
    server.received_requests().await.unwrap_or_default().len()
}

fn client(
    servers: &[&MockServer],
    balance: Balance,
    configure: impl FnOnce(
        reqwest_resilience::fallback::FallbackBuilder,
    ) -> reqwest_resilience::fallback::FallbackBuilder,
) -> Client {
    let urls: Vec<String> = servers.iter().map(|s| s.uri()).collect();
    Client::builder()
        .retry(RetryPolicy::default().backoff(ExponentialBackoff::new(Duration::from_millis(1))))
        .fallback(configure(FallbackLayer::builder(urls).balance(balance)))
        .build()
        .unwrap()
}

/// 48 GETs, 8 at a time, to three replicas of which the primary answers in 200 ms.
async fn share_of_the_slow_one(balance: Balance) -> (usize, usize) {
    let slow = server(ResponseTemplate::new(200).set_delay(Duration::from_millis(200))).await;
    let fast1 = server(ResponseTemplate::new(200)).await;
    let fast2 = server(ResponseTemplate::new(200)).await;
    let client = client(&[&slow, &fast1, &fast2], balance, |b| b);
    for _ in 0..6 {
        let batch: Vec<_> = (0..8)
            .map(|i| {
                let client = client.clone();
                tokio::spawn(async move { client.get(format!("/orders/{i}")).send().await })
            })
            .collect();
        for request in batch {
            assert_eq!(request.await.unwrap().unwrap().status(), 200);
        }
    }
    let total = hits(&slow).await + hits(&fast1).await + hits(&fast2).await;
    (hits(&slow).await, total)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_replica_gets_a_small_share() {
    let (slow, total) = share_of_the_slow_one(Balance::P2cPeakEwma).await;
    assert_eq!(total, 48);
    // Its first requests show it slow; from then on it loses every pair it is in.
    assert!(slow <= 8, "the slow replica took {slow} of {total}");
    // Primary-first sends it everything: it never fails.
    let (slow, total) = share_of_the_slow_one(Balance::PrimaryFirst).await;
    assert_eq!((slow, total), (48, 48));
}

#[tokio::test]
async fn an_ejected_replica_gets_nothing() {
    let broken = server(ResponseTemplate::new(502).insert_header("server", "nginx")).await;
    let ok1 = server(ResponseTemplate::new(200)).await;
    let ok2 = server(ResponseTemplate::new(200)).await;
    let client = client(&[&broken, &ok1, &ok2], Balance::P2cPeakEwma, |b| {
        b.consecutive_failures(2)
    });
    for i in 0..60 {
        let response = client.get(format!("/items/{i}")).send().await.unwrap();
        assert_eq!(response.status(), 200, "failed over");
    }
    // A failure weighs as a slow answer, and two eject it: it saw at most those two.
    assert!(hits(&broken).await <= 2, "{}", hits(&broken).await);
    assert_eq!(hits(&ok1).await + hits(&ok2).await, 60);
}

#[tokio::test]
async fn a_post_is_not_sent_to_a_second_server_without_proof() {
    let broken = server(ResponseTemplate::new(502).insert_header("server", "nginx")).await;
    let ok = server(ResponseTemplate::new(200)).await;
    let client = client(&[&broken, &ok], Balance::P2cPeakEwma, |b| b);
    let mut refused = 0;
    for i in 0..20 {
        match client.post(format!("/orders/{i}")).body("x").send().await {
            Ok(response) => assert_eq!(response.status(), 200),
            Err(err) => {
                // Answered by a gateway: it may have reached the origin. Not resent.
                assert_eq!(err.kind(), ErrorKind::BadGateway, "{err}");
                assert!(!err.is_retryable(), "{err}");
                refused += 1;
            }
        }
    }
    // Every POST went to exactly one server.
    assert_eq!(hits(&broken).await + hits(&ok).await, 20);
    assert_eq!(hits(&broken).await, refused);
}

#[tokio::test]
async fn a_hedge_goes_to_another_server_than_its_first_copy() {
    let slow: Vec<MockServer> = futures_util::future::join_all(
        (0..3).map(|_| server(ResponseTemplate::new(200).set_delay(Duration::from_millis(150)))),
    )
    .await;
    let urls: Vec<String> = slow.iter().map(|s| s.uri()).collect();
    let client = Client::builder()
        .retry(RetryPolicy::default().hedge_after(Duration::from_millis(30)))
        .fallback(FallbackLayer::builder(urls).balance(Balance::P2cPeakEwma))
        .build()
        .unwrap();
    for round in 1..=4 {
        let response = client.get("/x").send().await.unwrap();
        assert_eq!(reqwest_resilience::attempts(&response), 2, "hedged");
        let mut counts = Vec::new();
        for s in &slow {
            counts.push(hits(s).await);
        }
        assert_eq!(counts.iter().sum::<usize>(), 2 * round);
        // No server got both copies of one request.
        assert!(counts.iter().all(|&c| c <= round), "{counts:?}");
    }
}

/// A replica ejected for a blip comes back: once its ejection time is up it is picked again
/// (its probe), and, answering, takes its share.
#[tokio::test]
async fn an_ejected_replica_is_probed_and_comes_back() {
    let blip = MockServer::start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(502).insert_header("server", "nginx"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&blip)
        .await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(200))
        .with_priority(2)
        .mount(&blip)
        .await;
    let ok1 = server(ResponseTemplate::new(200)).await;
    let ok2 = server(ResponseTemplate::new(200)).await;
    let client = client(&[&blip, &ok1, &ok2], Balance::P2cPeakEwma, |b| {
        b.consecutive_failures(1)
            .base_ejection(Duration::from_millis(100))
            .balance_decay(Duration::from_millis(100))
    });
    // Until the blip's one failure, then past its ejection and its latency's decay.
    while hits(&blip).await == 0 {
        client.get("/warm").send().await.unwrap();
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = hits(&blip).await;
    for i in 0..90 {
        client.get(format!("/items/{i}")).send().await.unwrap();
    }
    // Picked again once its time was up: its probe, at least (before the fix, never).
    assert!(hits(&blip).await > before, "never probed");
    // Restored, it takes a share again: over 1.5 s of steady traffic, each server's estimate
    // decays between its requests, so one slow answer (a new connection's, on a loaded
    // machine) does not keep it out for long.
    let before = hits(&blip).await;
    let started = std::time::Instant::now();
    let mut sent = 0;
    while started.elapsed() < Duration::from_millis(1_500) {
        client.get(format!("/items/{sent}")).send().await.unwrap();
        sent += 1;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(
        hits(&blip).await - before >= 5,
        "the restored replica took {} of {sent}",
        hits(&blip).await - before
    );
}

/// A replica whose requests never finish in time (the deadline cuts them) is the slowest of
/// all, not an unknown: it stays at a small share.
#[tokio::test]
async fn a_replica_cut_off_by_deadlines_stays_at_a_small_share() {
    let slow = server(ResponseTemplate::new(200).set_delay(Duration::from_millis(300))).await;
    let fast1 = server(ResponseTemplate::new(200)).await;
    let fast2 = server(ResponseTemplate::new(200)).await;
    let urls: Vec<String> = [&slow, &fast1, &fast2].iter().map(|s| s.uri()).collect();
    let client = Client::builder()
        .no_retry()
        .deadline(Duration::from_millis(100))
        .fallback(
            FallbackLayer::builder(urls)
                .balance(Balance::P2cPeakEwma)
                .balance_decay(Duration::from_millis(300)),
        )
        .build()
        .unwrap();
    for i in 0..100 {
        let _ = client.get(format!("/items/{i}")).send().await;
    }
    assert!(
        hits(&slow).await <= 10,
        "the slow replica took {}",
        hits(&slow).await
    );
}

/// A hedge avoids its first copy's server even when load alone would send it back there: the
/// first copy's server is much cheaper than the other (paused time, a scripted service).
#[tokio::test(start_paused = true)]
async fn a_hedge_avoids_the_first_copys_server_even_when_it_is_the_cheaper() {
    use reqwest_resilience::retry::{RetryLayer, RetryPolicy};
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    use tower::{ServiceBuilder, ServiceExt};

    let slow_everywhere = Arc::new(AtomicBool::new(false));
    let calls: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
    let (slow, seen) = (slow_everywhere.clone(), calls.clone());
    let inner = tower::service_fn(move |req: reqwest_resilience::Request| {
        let host = req.url().host_str().unwrap_or("").to_owned();
        let (slow, seen) = (slow.clone(), seen.clone());
        async move {
            *seen.lock().unwrap().entry(host.clone()).or_default() += 1;
            // Before: a answers in 1 ms, b in 100 ms. Then both in 200 ms.
            let delay = match (slow.load(Ordering::SeqCst), host.as_str()) {
                (true, _) => 200,
                (false, "a.test") => 1,
                _ => 100,
            };
            tokio::time::sleep(Duration::from_millis(delay)).await;
            Ok::<_, reqwest_resilience::GatewayError>(reqwest::Response::from(http::Response::new(
                "",
            )))
        }
    });
    let layer = FallbackLayer::builder(["http://a.test", "http://b.test"])
        .balance(Balance::P2cPeakEwma)
        .build()
        .unwrap();
    let get = || {
        reqwest_resilience::Request::from(reqwest::Request::new(
            reqwest::Method::GET,
            "http://a.test/x".parse().unwrap(),
        ))
    };
    let warm = ServiceBuilder::new()
        .layer(RetryLayer::new(RetryPolicy::never()))
        .layer(layer.clone())
        .service(inner.clone());
    // Until both have been seen: a cheap, b dear.
    while calls.lock().unwrap().len() < 2 {
        warm.clone().oneshot(get()).await.unwrap();
    }
    slow_everywhere.store(true, Ordering::SeqCst);
    calls.lock().unwrap().clear();
    let hedged = ServiceBuilder::new()
        .layer(RetryLayer::new(
            RetryPolicy::default().hedge_after(Duration::from_millis(30)),
        ))
        .layer(layer)
        .service(inner);
    let response = hedged.oneshot(get()).await.unwrap();
    assert_eq!(reqwest_resilience::attempts(&response), 2, "hedged");
    let calls = calls.lock().unwrap().clone();
    assert_eq!(calls.get("a.test"), Some(&1), "{calls:?}");
    assert_eq!(calls.get("b.test"), Some(&1), "{calls:?}");
}
