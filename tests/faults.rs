//! Every fault a peer can produce, through the full client, over real TCP on loopback: the
//! exact variant, the call ending within its deadline, and no panic.
//!
//! Real time is used here because the kernel is involved; the margins are generous, and the
//! timing logic itself is tested with paused time in `timeout.rs` and `retry.rs`.

mod support;

use reqwest_resilience::retry::{ExponentialBackoff, RetryPolicy};
use reqwest_resilience::{Client, ErrorKind, GatewayError};
use std::time::{Duration, Instant};
use support::{Fault, FaultServer, refused_url};

const DEADLINE: Duration = Duration::from_secs(5);
/// Room for a loaded machine on top of the deadline.
const SLACK: Duration = Duration::from_secs(2);

fn client() -> Client {
    Client::builder()
        .retry(RetryPolicy::default().backoff(ExponentialBackoff::new(Duration::from_millis(5))))
        .attempt_timeout(Duration::from_millis(400))
        .deadline(DEADLINE)
        .build()
        .unwrap()
}

/// Runs a GET; returns the error, checking it came within the deadline.
async fn fails(url: &str) -> GatewayError {
    let started = Instant::now();
    let outcome = client().get(url).send().await;
    assert!(
        started.elapsed() <= DEADLINE + SLACK,
        "{url} took {:?}",
        started.elapsed()
    );
    match outcome {
        Ok(response) => panic!("{url}: expected an error, got {}", response.status()),
        Err(err) => err,
    }
}

async fn server(fault: Fault) -> FaultServer {
    FaultServer::start(fault).await
}

#[tokio::test]
async fn refused() {
    let err = fails(&refused_url("/").await).await;
    assert_eq!(err.kind(), ErrorKind::ConnectFailed);
    assert_eq!(err.attempts(), 3);
}

#[tokio::test]
async fn reset_after_the_request() {
    let s = server(Fault::Reset).await;
    let err = fails(&s.url("/")).await;
    assert_eq!(err.kind(), ErrorKind::ConnectionClosed);
    assert_eq!(s.hits(), 3);
}

#[tokio::test]
async fn closed_without_an_answer() {
    let s = server(Fault::CloseAfterRequest).await;
    assert_eq!(fails(&s.url("/")).await.kind(), ErrorKind::ConnectionClosed);
}

#[tokio::test]
async fn non_http_garbage_is_not_retried() {
    let s = server(Fault::Garbage).await;
    let err = fails(&s.url("/")).await;
    assert_eq!(err.kind(), ErrorKind::InvalidResponse);
    assert_eq!(s.hits(), 1);
}

#[tokio::test]
async fn oversized_headers() {
    let s = server(Fault::OversizedHeaders).await;
    let err = fails(&s.url("/")).await;
    assert_eq!(err.kind(), ErrorKind::InvalidResponse, "{err:?}");
}

#[tokio::test]
async fn truncated_502_then_reset() {
    let s = server(Fault::TruncatedBodyThenReset).await;
    let err = fails(&s.url("/")).await;
    assert_eq!(err.kind(), ErrorKind::BadGateway);
    assert_eq!(err.attempts(), 3);
}

#[tokio::test]
async fn hang_times_out_every_attempt() {
    let s = server(Fault::Hang).await;
    let err = fails(&s.url("/")).await;
    assert_eq!(err.kind(), ErrorKind::TimedOut);
    assert_eq!(err.attempts(), 3);
}

#[tokio::test]
async fn hang_past_the_deadline() {
    let s = server(Fault::Hang).await;
    let started = Instant::now();
    let err = client()
        .get(s.url("/"))
        .timeout(Duration::from_secs(60))
        .deadline(Duration::from_millis(500))
        .send()
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_millis(500) + SLACK);
    assert!(matches!(err, GatewayError::DeadlineExceeded(_)), "{err:?}");
}

#[tokio::test]
async fn head_then_stall_bounded_by_the_body_timeout() {
    let s = server(Fault::HeadThenStall).await;
    let client = Client::builder()
        .attempt_timeout(Duration::from_millis(300))
        .attempt_timeout_includes_body(true)
        .build()
        .unwrap();
    let started = Instant::now();
    let response = client.get(s.url("/")).send().await.unwrap();
    assert!(response.bytes().await.is_err());
    assert!(started.elapsed() < Duration::from_millis(300) + SLACK);
}

#[tokio::test]
async fn slow_bytes_within_the_timeout_succeed() {
    let answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec();
    let s = server(Fault::Slow(answer, Duration::from_millis(2))).await;
    let response = client().get(s.url("/")).send().await.unwrap();
    assert_eq!(response.text().await.unwrap(), "ok");
}

#[tokio::test]
async fn slow_bytes_past_the_timeout_are_timed_out() {
    let answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec();
    let s = server(Fault::Slow(answer, Duration::from_millis(50))).await;
    let err = client()
        .get(s.url("/"))
        .no_retry()
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut);
}

#[tokio::test]
async fn retry_after_garbage_and_negative_fall_back_to_backoff() {
    for value in ["soon", "-5", "1.5", ""] {
        let s = server(Fault::RetryAfter(value.to_owned())).await;
        let err = fails(&s.url("/")).await;
        assert_eq!(err.kind(), ErrorKind::ServiceUnavailable);
        assert_eq!(s.hits(), 3, "Retry-After {value:?}");
    }
}

#[tokio::test]
async fn retry_after_huge_returns_at_once() {
    let s = server(Fault::RetryAfter("99999999999999999999".to_owned())).await;
    let started = Instant::now();
    let err = fails(&s.url("/")).await;
    assert!(started.elapsed() < SLACK);
    assert_eq!(s.hits(), 1);
    assert!(
        err.not_retried_because().unwrap().contains("asked to wait"),
        "{err}"
    );
}

#[tokio::test]
async fn retry_after_http_date_is_waited_for() {
    let at = std::time::SystemTime::now() + Duration::from_secs(2);
    let s = server(Fault::RetryAfter(httpdate::fmt_http_date(at))).await;
    let started = Instant::now();
    let err = client()
        .get(s.url("/"))
        .retry(RetryPolicy::default().max_attempts(2))
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ServiceUnavailable);
    assert_eq!(s.hits(), 2);
    // HTTP-dates have whole seconds: the pause is between 1 and 2 s.
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
}
