//! 2,000 logical requests at concurrency 64 through the full default stack, against a server
//! that fails a third of attempts in varied ways. Every request ends in time, no POST without
//! an `Idempotency-Key` is delivered twice, the retries stay within the budget, and no
//! connection is left open.

use reqwest_resilience::Client;
use reqwest_resilience::retry::{ExponentialBackoff, RetryPolicy};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const REQUESTS: usize = 2_000;
const CONCURRENCY: usize = 64;
const DEADLINE: Duration = Duration::from_secs(5);

/// Per request id: (is a POST, succeeded, how long it took).
type Outcomes = Arc<Mutex<HashMap<u64, (bool, bool, Duration)>>>;

#[derive(Default)]
struct Counters {
    open: AtomicUsize,
    deliveries: Mutex<HashMap<u64, u32>>,
}

/// Reads one request head; returns (request id, whether complete).
async fn read_head(stream: &mut TcpStream) -> Option<u64> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 2048];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let head = String::from_utf8_lossy(&buf).to_ascii_lowercase();
    head.lines()
        .find_map(|l| l.strip_prefix("x-request-id:"))
        .and_then(|v| v.trim().parse().ok())
}

async fn serve(mut stream: TcpStream, counters: Arc<Counters>, roll: u32) {
    let Some(id) = read_head(&mut stream).await else {
        return;
    };
    *counters.deliveries.lock().unwrap().entry(id).or_default() += 1;
    let answer: &[u8] = match roll % 15 {
        0 => b"HTTP/1.1 502 Bad Gateway\r\nServer: nginx\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
        1 => b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 0\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
        2 => {
            let _ = stream.set_zero_linger();
            return;
        }
        3 => {
            let _ = stream.shutdown().await;
            return;
        }
        4 => {
            // Hang until the client gives up on the attempt.
            let mut sink = [0u8; 64];
            while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
            return;
        }
        _ => b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
    };
    let _ = stream.write_all(answer).await;
    let _ = stream.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_stack_keeps_its_promises_under_load() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let counters = Arc::new(Counters::default());
    let server_counters = counters.clone();
    let rng = Arc::new(Mutex::new(fastrand::Rng::with_seed(7)));
    let server = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let counters = server_counters.clone();
            let roll = rng.lock().unwrap().u32(..);
            counters.open.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                serve(stream, counters.clone(), roll).await;
                counters.open.fetch_sub(1, Ordering::SeqCst);
            });
        }
    });

    let policy = RetryPolicy::default().backoff(ExponentialBackoff::new(Duration::from_millis(2)));
    let budget = policy.retry_budget().cloned().unwrap();
    let client = Client::builder()
        .retry(policy)
        .attempt_timeout(Duration::from_millis(500))
        .deadline(DEADLINE)
        .build()
        .unwrap();

    let outcomes: Outcomes = Arc::default();
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..CONCURRENCY {
        let (client, base, outcomes, next) =
            (client.clone(), base.clone(), outcomes.clone(), next.clone());
        workers.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= REQUESTS {
                    return;
                }
                let id = i as u64;
                let is_post = i % 4 == 0;
                let request = if is_post {
                    client.post(format!("{base}/orders")).body("{}")
                } else {
                    client.get(format!("{base}/items"))
                };
                let started = Instant::now();
                let result = request.header("x-request-id", id.to_string()).send().await;
                let ok = match result {
                    Ok(response) => response.bytes().await.is_ok(),
                    Err(_) => false,
                };
                outcomes
                    .lock()
                    .unwrap()
                    .insert(id, (is_post, ok, started.elapsed()));
            }
        }));
    }
    for worker in workers {
        worker.await.unwrap();
    }
    drop(client);

    let outcomes = outcomes.lock().unwrap().clone();
    let deliveries = counters.deliveries.lock().unwrap().clone();
    assert_eq!(outcomes.len(), REQUESTS, "every logical request ended");

    let slack = Duration::from_secs(2);
    let late: Vec<_> = outcomes
        .iter()
        .filter(|(_, (_, _, took))| *took > DEADLINE + slack)
        .collect();
    assert!(
        late.is_empty(),
        "{} requests outlived the deadline",
        late.len()
    );

    let doubled: Vec<_> = outcomes
        .iter()
        .filter(|(id, (is_post, _, _))| *is_post && deliveries.get(id).copied().unwrap_or(0) > 1)
        .collect();
    assert!(doubled.is_empty(), "POSTs delivered twice: {doubled:?}");

    // Retries of requests that failed in the end are never refunded: they are bounded by the
    // bucket (500 tokens) plus the first-attempt successes' rewards (1 each), at 5+ a retry.
    let total: u32 = deliveries.values().sum();
    let unrefunded: u32 = outcomes
        .iter()
        .filter(|(_, (_, ok, _))| !*ok)
        .map(|(id, _)| deliveries.get(id).copied().unwrap_or(1).saturating_sub(1))
        .sum();
    let first_successes = outcomes
        .iter()
        .filter(|(id, (_, ok, _))| *ok && deliveries.get(id) == Some(&1))
        .count() as u32;
    assert!(
        unrefunded <= (500 + first_successes) / 5,
        "{unrefunded} unrefunded retries"
    );
    assert!(total <= 3 * REQUESTS as u32);
    let succeeded = outcomes.values().filter(|(_, ok, _)| *ok).count();
    assert!(succeeded > REQUESTS * 8 / 10, "only {succeeded} succeeded");
    println!(
        "{succeeded}/{REQUESTS} succeeded, {total} deliveries, budget left {}",
        budget.available()
    );

    // Every connection the client opened is closed again.
    let waited = Instant::now();
    while counters.open.load(Ordering::SeqCst) > 0 && waited.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        counters.open.load(Ordering::SeqCst),
        0,
        "connections left open"
    );
    server.abort();
}

/// The budget binds where it matters: 500 GETs at concurrency 32 to a host that answers every
/// one with a gateway's 502, with ten attempts allowed each. A budget of 50 tokens at 5 a
/// retry pays for 10 retries in all (no success earns more), so the host sees at most 510
/// requests instead of 5,000, and the requests that stopped early say the budget stopped them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_budget_bounds_retries_in_an_outage() {
    use reqwest_resilience::retry::RetryBudget;
    let server = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::any())
        .respond_with(wiremock::ResponseTemplate::new(502).insert_header("server", "nginx/1.22.1"))
        .mount(&server)
        .await;
    let budget = RetryBudget::new()
        .capacity(50)
        .retry_cost(5)
        .timeout_retry_cost(10)
        .success_reward(1)
        .per_client();
    let client = Client::builder()
        .retry(
            RetryPolicy::default()
                .max_attempts(10)
                .backoff(ExponentialBackoff::new(Duration::ZERO))
                .budget(budget.clone()),
        )
        .build()
        .unwrap();
    let stopped_by_budget = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for w in 0..32 {
        let (client, uri, stopped) = (client.clone(), server.uri(), stopped_by_budget.clone());
        workers.push(tokio::spawn(async move {
            for _ in (w..500).step_by(32) {
                let err = client.get(&uri).send().await.unwrap_err();
                if err
                    .not_retried_because()
                    .is_some_and(|why| why.contains("budget"))
                {
                    stopped.fetch_add(1, Ordering::SeqCst);
                }
            }
        }));
    }
    for worker in workers {
        worker.await.unwrap();
    }
    let delivered = server.received_requests().await.unwrap().len();
    assert!(
        delivered <= 500 + 10,
        "{delivered} requests reached the host"
    );
    assert!(delivered >= 500, "every request was sent at least once");
    assert!(stopped_by_budget.load(Ordering::SeqCst) > 400);
    assert_eq!(budget.available(), 0);
}
