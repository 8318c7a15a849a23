//! The user's own retry rules on responses (`retry_on_status`, `retry_on_response`), against a
//! wiremock server that counts what it receives.

mod support;

use reqwest_resilience::Client;
use reqwest_resilience::retry::{ExponentialBackoff, Jitter, RetryBudget, RetryPolicy};
use std::time::{Duration, Instant};
use wiremock::{MockServer, ResponseTemplate};

fn fast() -> RetryPolicy {
    RetryPolicy::default()
        .max_attempts(3)
        .backoff(ExponentialBackoff::new(Duration::from_millis(1)).jitter(Jitter::None))
}

fn client(policy: RetryPolicy) -> Client {
    Client::builder().retry(policy).build().unwrap()
}

async fn server(first: ResponseTemplate, then: ResponseTemplate) -> MockServer {
    support::once_then(first, then).await
}

async fn hits(server: &MockServer) -> usize {
    server.received_requests().await.unwrap_or_default().len()
}

#[tokio::test]
async fn an_application_500_named_by_the_policy_is_retried() {
    let server = server(ResponseTemplate::new(500), ResponseTemplate::new(200)).await;
    let response = client(fast().retry_on_status([500]))
        .get(server.uri())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(reqwest_resilience::attempts(&response), 2);
    assert_eq!(hits(&server).await, 2);
}

#[tokio::test]
async fn without_the_rule_an_application_500_is_handed_back_at_once() {
    let server = server(ResponseTemplate::new(500), ResponseTemplate::new(200)).await;
    let response = client(fast()).get(server.uri()).send().await.unwrap();
    assert_eq!(response.status(), 500);
    assert_eq!(hits(&server).await, 1);
}

#[tokio::test]
async fn the_last_response_is_handed_back_as_it_is() {
    let server = server(
        ResponseTemplate::new(409).set_body_string("busy"),
        ResponseTemplate::new(409).set_body_string("still busy"),
    )
    .await;
    let response = client(fast().retry_on_status([409u16]))
        .get(server.uri())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 409);
    assert_eq!(reqwest_resilience::attempts(&response), 3);
    assert_eq!(response.text().await.unwrap(), "still busy");
    assert_eq!(hits(&server).await, 3);
}

#[tokio::test]
async fn a_post_is_not_resent_on_a_status_rule() {
    let server = server(ResponseTemplate::new(500), ResponseTemplate::new(200)).await;
    let response = client(fast().retry_on_status([500]))
        .post(server.uri())
        .body("order")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 500, "handed back, not resent");
    assert_eq!(hits(&server).await, 1);
}

#[tokio::test]
async fn a_post_with_an_idempotency_key_is_resent_on_a_status_rule() {
    let server = server(ResponseTemplate::new(500), ResponseTemplate::new(201)).await;
    let response = client(fast().retry_on_status([500]))
        .post(server.uri())
        .header("Idempotency-Key", "order-7")
        .body("order")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    assert_eq!(hits(&server).await, 2);
}

#[tokio::test]
async fn the_response_predicate_sees_status_and_headers() {
    let server = server(
        ResponseTemplate::new(200).insert_header("x-try-again", "1"),
        ResponseTemplate::new(200),
    )
    .await;
    let policy = fast().retry_on_response(|status, headers| {
        status.is_success() && headers.contains_key("x-try-again")
    });
    let response = client(policy).get(server.uri()).send().await.unwrap();
    assert!(!response.headers().contains_key("x-try-again"));
    assert_eq!(hits(&server).await, 2);
}

#[tokio::test]
async fn a_status_rule_draws_from_the_budget() {
    let server = server(ResponseTemplate::new(500), ResponseTemplate::new(200)).await;
    // An empty bucket: no retry may be paid for.
    let policy = fast().retry_on_status([500]).budget(
        RetryBudget::new()
            .capacity(0)
            .retry_cost(5)
            .timeout_retry_cost(10)
            .success_reward(0),
    );
    let response = client(policy).get(server.uri()).send().await.unwrap();
    assert_eq!(response.status(), 500);
    assert_eq!(hits(&server).await, 1);
}

#[tokio::test]
async fn retry_after_on_a_named_status_sets_the_pause() {
    let server = server(
        ResponseTemplate::new(500).insert_header("Retry-After", "1"),
        ResponseTemplate::new(200),
    )
    .await;
    let started = Instant::now();
    let response = client(fast().retry_on_status([500]))
        .get(server.uri())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    // The backoff alone would have waited 1 ms: the server's hint was taken.
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(hits(&server).await, 2);
}

#[tokio::test]
async fn the_rules_leave_other_statuses_alone() {
    let server = server(ResponseTemplate::new(404), ResponseTemplate::new(200)).await;
    let response = client(fast().retry_on_status([500, 409]))
        .get(server.uri())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    assert_eq!(hits(&server).await, 1);
}
