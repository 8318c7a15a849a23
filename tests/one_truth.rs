//! What an error says holds for the whole logical request: `is_retryable` answers "may this
//! request be sent again", a per-request policy shares the client's budget, and per-request
//! options survive `build()` → `execute()`.

mod support;

use reqwest_resilience::retry::{ExponentialBackoff, RetryBudget, RetryPolicy};
use reqwest_resilience::{Client, ErrorKind};
use std::time::Duration;
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, ResponseTemplate};

fn zero() -> RetryPolicy {
    RetryPolicy::default().backoff(ExponentialBackoff::new(Duration::ZERO))
}

/// Issue 25, item 4: a POST the crate declined to resend is not "retryable"; its cause is
/// still transient. A GET's is both.
#[tokio::test]
async fn is_retryable_answers_whether_the_request_may_be_sent_again() {
    let server = support::nginx_502().await;
    let client = Client::builder().retry(zero()).build().unwrap();
    let err = client
        .post(server.uri())
        .body("order")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BadGateway);
    assert_eq!(err.attempts(), 1, "not resent");
    assert!(err.is_transient(), "a 502 is transient");
    assert!(!err.is_retryable(), "but this POST may have been delivered");
    assert!(err.details().is_resend_forbidden());

    let err = client.get(server.uri()).send().await.unwrap_err();
    assert!(err.is_transient() && err.is_retryable());
    let err = client
        .post(server.uri())
        .header("idempotency-key", "order-17")
        .body("order")
        .send()
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "a keyed POST may be sent again");
}

/// Issue 25, item 5: a per-request policy without a budget of its own draws on the client's.
#[tokio::test]
async fn a_per_request_policy_shares_the_clients_budget() {
    let dead = support::refused_url("/").await;
    // Two retries' worth of budget for the whole client.
    let budget = RetryBudget::new()
        .capacity(10)
        .retry_cost(5)
        .timeout_retry_cost(5)
        .success_reward(0)
        .per_client();
    let client = Client::builder()
        .retry(zero().budget(budget.clone()))
        .build()
        .unwrap();
    let mut attempts = 0;
    for _ in 0..20 {
        let err = client
            .get(&dead)
            .retry(zero().max_attempts(4))
            .send()
            .await
            .unwrap_err();
        attempts += err.attempts();
    }
    assert_eq!(
        attempts,
        20 + 2,
        "20 first attempts and the 2 retries the budget pays for"
    );
    assert_eq!(budget.available(), 0);
}

/// Issue 25, item 6: `build()` then `execute()` keeps `.timeout()` and `.no_retry()`.
#[tokio::test]
async fn per_request_options_survive_build_and_execute() {
    let server = MockServer::start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(5)))
        .mount(&server)
        .await;
    let client = Client::builder()
        .retry(zero())
        .attempt_timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    // Long enough for the server to have seen the request (it is counted below), well short
    // of its answer.
    let request = client
        .get(server.uri())
        .timeout(Duration::from_millis(300))
        .no_retry()
        .build()
        .unwrap();
    let err = client.execute(request).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut, "{err}");
    assert_eq!(err.attempts(), 1);
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
}

/// "Unsent" holds for the whole request: a GET answered 504 (delivered), whose retry then finds
/// the port closed (that attempt never left), was not provably unsent.
#[tokio::test]
async fn unsent_is_the_whole_requests() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let url = format!("http://{addr}/");
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 4096];
        let _ = stream.read(&mut buf).await;
        let _ = stream
            .write_all(b"HTTP/1.1 504 Gateway Time-out\r\nserver: nginx\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
            .await;
        // The listener is closed: the retry's connection is refused. The port stays bound
        // (never listening) so that no other test's server can be given it meanwhile.
        drop((stream, listener));
        let held = tokio::net::TcpSocket::new_v4().unwrap();
        held.set_reuseaddr(true).unwrap();
        let _ = held.bind(addr);
        // Held while the test runs (this task ends with the test's runtime).
        std::future::pending::<()>().await
    });
    let client = Client::builder().retry(zero()).build().unwrap();
    let err = client.get(&url).send().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectFailed, "{err}");
    assert!(err.attempts() >= 2, "{err}");
    assert!(
        !err.is_request_unsent(),
        "the first copy was delivered: {err}"
    );
}

/// With a single fallback server, a keyed POST answered 502 whose retry the circuit (opened by
/// this request's own failures) refuses ends with its 502, not an "unsent" `CircuitOpen`.
#[tokio::test]
async fn a_refused_retry_behind_a_fallback_server_keeps_the_cause() {
    use reqwest_resilience::circuit::CircuitLayer;
    let server = support::nginx_502().await;
    let client = Client::builder()
        .retry(zero().max_attempts(4))
        .fallback_servers([server.uri().as_str()])
        .circuit_breaker(CircuitLayer::new().minimum_throughput(1))
        .build()
        .unwrap();
    let err = client
        .post("/orders")
        .header("idempotency-key", "order-17")
        .body("order")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BadGateway, "{err}");
    assert!(!err.is_request_unsent(), "{err}");
    let sent = server.received_requests().await.unwrap().len() as u32;
    assert_eq!(
        err.attempts(),
        sent,
        "attempts are the requests on the wire: {err}"
    );
    assert!(sent < 4, "the circuit cut the retries short");
    assert!(
        err.not_retried_because().unwrap_or("").contains("circuit"),
        "{err}"
    );
}
