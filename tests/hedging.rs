//! Hedging: a backup copy when no answer came in time, against servers that count what they
//! receive and tell when a connection was closed.

use reqwest_resilience::retry::{ExponentialBackoff, RetryBudget, RetryPolicy};
use reqwest_resilience::{Client, ErrorKind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A loopback server whose first request never gets an answer (the connection stays open
/// until the client closes it) and whose later requests get a 200 at once.
struct SlowFirst {
    url: String,
    requests: Arc<AtomicU32>,
    first_closed: Arc<AtomicBool>,
}

impl SlowFirst {
    async fn start() -> SlowFirst {
        SlowFirst::slow_at(1).await
    }

    /// The `slow`-th request (from 1) never gets an answer.
    async fn slow_at(slow: u32) -> SlowFirst {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(AtomicU32::new(0));
        let first_closed = Arc::new(AtomicBool::new(false));
        let (r, c) = (requests.clone(), first_closed.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    return;
                };
                let (r, c) = (r.clone(), c.clone());
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 8192];
                    let mut seen = Vec::new();
                    // Read the head (and a small body, if any).
                    while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => seen.extend_from_slice(&buf[..n]),
                        }
                    }
                    let n = r.fetch_add(1, Ordering::SeqCst) + 1;
                    if n == slow {
                        // Never answer; note when the client closes the connection.
                        loop {
                            match stream.read(&mut buf).await {
                                Ok(0) | Err(_) => {
                                    c.store(true, Ordering::SeqCst);
                                    return;
                                }
                                Ok(_) => {}
                            }
                        }
                    }
                    let _ = stream
                        .write_all(
                            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                        )
                        .await;
                });
            }
        });
        SlowFirst {
            url,
            requests,
            first_closed,
        }
    }

    fn requests(&self) -> u32 {
        self.requests.load(Ordering::SeqCst)
    }

    /// Whether the client closed the first (slow) connection within `within`.
    async fn first_closed_within(&self, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        while tokio::time::Instant::now() < deadline {
            if self.first_closed.load(Ordering::SeqCst) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        false
    }
}

fn hedging(delay_ms: u64) -> RetryPolicy {
    RetryPolicy::default()
        .backoff(ExponentialBackoff::new(Duration::from_millis(1)))
        .hedge_after(Duration::from_millis(delay_ms))
}

#[tokio::test]
async fn a_slow_answer_is_hedged_and_the_losers_connection_closed() {
    let server = SlowFirst::start().await;
    let client = Client::builder().retry(hedging(50)).build().unwrap();
    let response = client.get(&server.url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "ok");
    assert_eq!(server.requests(), 2);
    assert!(
        server.first_closed_within(Duration::from_secs(5)).await,
        "the slow attempt's connection is closed once the hedge won"
    );
}

#[tokio::test]
async fn the_response_counts_the_hedge_as_an_attempt() {
    let server = SlowFirst::start().await;
    let client = Client::builder().retry(hedging(50)).build().unwrap();
    let response = client.get(&server.url).send().await.unwrap();
    assert_eq!(reqwest_resilience::attempts(&response), 2);
}

#[tokio::test]
async fn a_post_is_never_hedged() {
    let server = SlowFirst::start().await;
    let client = Client::builder()
        .retry(hedging(50))
        .attempt_timeout(Duration::from_millis(400))
        .build()
        .unwrap();
    let err = client
        .post(&server.url)
        .body("order")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut, "{err}");
    assert_eq!(server.requests(), 1, "a POST is delivered once");
}

#[tokio::test]
async fn a_post_with_an_idempotency_key_is_hedged() {
    let server = SlowFirst::start().await;
    let client = Client::builder().retry(hedging(50)).build().unwrap();
    let response = client
        .post(&server.url)
        .header("Idempotency-Key", "k-1")
        .body("order")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(server.requests(), 2);
}

#[tokio::test]
async fn a_streamed_body_is_never_hedged() {
    let server = SlowFirst::start().await;
    let client = Client::builder()
        .retry(hedging(50))
        .attempt_timeout(Duration::from_millis(400))
        .build()
        .unwrap();
    // A body reqwest cannot copy.
    let stream = http_body_util::Full::new(bytes::Bytes::from_static(b"stream"));
    let err = client
        .put(&server.url)
        .body(reqwest::Body::wrap(stream))
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut, "{err}");
    assert_eq!(server.requests(), 1);
}

#[tokio::test]
async fn a_fast_answer_sends_no_hedge() {
    let server = SlowFirst::start().await;
    // The first request is the slow one: spend it on a client without hedging first.
    let plain = Client::builder()
        .no_retry()
        .attempt_timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let _ = plain.get(&server.url).send().await;
    // A delay no quick answer reaches, even on a machine that stalls for a moment.
    let client = Client::builder().retry(hedging(1_000)).build().unwrap();
    for _ in 0..5 {
        let response = client.get(&server.url).send().await.unwrap();
        assert_eq!(reqwest_resilience::attempts(&response), 1);
    }
    assert_eq!(server.requests(), 1 + 5);
}

#[tokio::test]
async fn no_hedge_without_budget() {
    let server = SlowFirst::start().await;
    let policy = hedging(50).budget(
        RetryBudget::new()
            .capacity(0)
            .retry_cost(5)
            .timeout_retry_cost(10)
            .success_reward(0),
    );
    let client = Client::builder()
        .retry(policy)
        .attempt_timeout(Duration::from_millis(400))
        .build()
        .unwrap();
    let err = client.get(&server.url).send().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut, "{err}");
    assert_eq!(server.requests(), 1, "an empty budget pays for no hedge");
}

#[tokio::test]
async fn a_hedge_goes_to_the_next_fallback_server() {
    let primary = SlowFirst::start().await;
    let backup = SlowFirst::start().await;
    // The backup's own slow first request is spent beforehand.
    let plain = Client::builder()
        .no_retry()
        .attempt_timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let _ = plain.get(&backup.url).send().await;
    let client = Client::builder()
        .retry(hedging(50))
        .fallback_servers([primary.url.as_str(), backup.url.as_str()])
        .build()
        .unwrap();
    let response = client
        .get(format!("{}/item", primary.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        primary.requests(),
        1,
        "the slow primary got only the first copy"
    );
    assert_eq!(backup.requests(), 1 + 1, "the hedge went to the backup");
}

#[tokio::test]
async fn the_hedge_delay_can_follow_the_hosts_latencies() {
    // Twenty quick answers teach the client the host's latency; the 21st request hangs.
    let server = SlowFirst::slow_at(21).await;
    // The lower bound (1 s) is far above a quick answer's latency: a stall of the shared
    // machine during one of the twenty cannot make them hedge (and shift the hanging request).
    let policy = RetryPolicy::default().hedge_at_percentile(
        95.0,
        Duration::from_secs(1),
        Duration::from_secs(30),
    );
    let client = Client::builder().retry(policy).build().unwrap();
    for _ in 0..20 {
        client.get(&server.url).send().await.unwrap();
    }
    let started = std::time::Instant::now();
    let response = client.get(&server.url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    // Hedged after the learned delay (its lower bound, 1 s), not the 30 s upper bound.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(server.requests(), 22);
}

/// The learned delay is the host's own: under paused time, 24 answers that each take 200 ms
/// teach a 95th percentile of 200 ms; the 25th request's first copy hangs and its hedge goes
/// out at 200 ms — not at the 10 ms lower bound, nor the 30 s upper one.
#[tokio::test(start_paused = true)]
async fn the_learned_hedge_delay_is_the_hosts_percentile() {
    use reqwest_resilience::Request;
    use reqwest_resilience::retry::RetryLayer;
    use tower::{Service, ServiceBuilder, ServiceExt, service_fn};
    let calls = Arc::new(AtomicU32::new(0));
    let c = calls.clone();
    let policy = RetryPolicy::default().hedge_at_percentile(
        95.0,
        Duration::from_millis(10),
        Duration::from_secs(30),
    );
    let mut svc = ServiceBuilder::new()
        .layer(RetryLayer::new(policy))
        .service(service_fn(move |_req: Request| {
            let n = c.fetch_add(1, Ordering::SeqCst) + 1;
            async move {
                match n {
                    // The 25th request's first copy never answers.
                    25 => std::future::pending::<()>().await,
                    // Its hedge answers at once.
                    26 => {}
                    _ => tokio::time::sleep(Duration::from_millis(200)).await,
                }
                Ok::<_, reqwest_resilience::GatewayError>(reqwest::Response::from(
                    http::Response::new(""),
                ))
            }
        }));
    let get = || -> Request {
        reqwest::Request::new(reqwest::Method::GET, "http://h.test/".parse().unwrap()).into()
    };
    for _ in 0..24 {
        svc.ready().await.unwrap().call(get()).await.unwrap();
    }
    let started = tokio::time::Instant::now();
    let response = svc.ready().await.unwrap().call(get()).await.unwrap();
    let waited = started.elapsed();
    assert_eq!(reqwest_resilience::attempts(&response), 2, "hedged");
    assert!(
        waited >= Duration::from_millis(200) && waited < Duration::from_millis(250),
        "hedged after {waited:?}, not at the host's 200 ms"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 26);
}
