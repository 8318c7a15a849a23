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
    let budget = RetryBudget::new(10, 5, 5, 0).per_client();
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
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_millis(400)))
        .mount(&server)
        .await;
    let client = Client::builder()
        .retry(zero())
        .attempt_timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let request = client
        .get(server.uri())
        .timeout(Duration::from_millis(50))
        .no_retry()
        .build()
        .unwrap();
    let err = client.execute(request).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::CgiTimeout, "{err}");
    assert_eq!(err.attempts(), 1);
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
}
