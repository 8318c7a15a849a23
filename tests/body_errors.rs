//! One error type from `send()` to the last byte: a body that fails while it is read through
//! the client's `Response` gives the `GatewayError` of what happened:
//! truncation and resets as a closed connection, the deadline as the deadline, a body that
//! arrived whole but is not what the caller decodes as a decode failure. Real TCP servers.

mod support;

use reqwest_resilience::{Client, ErrorKind, GatewayError};
use std::time::Duration;
use support::{Fault, FaultServer};

/// What a handler writes: one `?` for the request, the body's own `GatewayError` after it.
async fn read(client: &Client, url: &str) -> Result<bytes::Bytes, GatewayError> {
    let response = client.get(url).send().await?;
    response.bytes().await
}

#[tokio::test]
async fn a_body_cut_short_by_a_close_is_a_closed_connection() {
    let server = FaultServer::start(Fault::Raw(
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc".to_vec(),
    ))
    .await;
    let err = read(&Client::new(), &server.url("/")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionClosed, "{err}");
    assert!(!err.is_request_unsent(), "the request was answered: {err}");
}

#[tokio::test]
async fn a_body_cut_short_by_a_reset_is_a_closed_connection() {
    let server = FaultServer::start(Fault::RawThenReset(
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc".to_vec(),
    ))
    .await;
    let err = read(&Client::new(), &server.url("/")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionClosed, "{err}");
}

#[tokio::test]
async fn the_deadline_firing_while_the_body_is_read_is_the_deadline() {
    let server = FaultServer::start(Fault::RawThenStall(
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc".to_vec(),
    ))
    .await;
    let client = Client::builder()
        .deadline(Duration::from_millis(300))
        .build()
        .unwrap();
    let err = read(&client, &server.url("/")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::DeadlineExceeded, "{err}");
    // Durations read as people read them, not as `Debug` prints them (`300ms`, `164.010689ms`).
    assert!(
        err.to_string()
            .contains("deadline of 300 ms exceeded while reading the body"),
        "{err}"
    );
}

/// The attempt timeout bounds the body too when asked to: its firing is the attempt's timeout.
#[tokio::test]
async fn the_attempt_timeout_firing_while_the_body_is_read_is_a_timeout() {
    let server = FaultServer::start(Fault::RawThenStall(
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc".to_vec(),
    ))
    .await;
    let client = Client::builder()
        .attempt_timeout(Duration::from_millis(300))
        .attempt_timeout_includes_body(true)
        .build()
        .unwrap();
    let err = read(&client, &server.url("/")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut, "{err}");
    assert!(
        err.to_string()
            .contains("the body did not arrive within the attempt timeout of 300 ms"),
        "{err}"
    );
}

#[tokio::test]
async fn a_chunked_body_that_stops_is_a_closed_connection() {
    let server = FaultServer::start(Fault::Raw(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n".to_vec(),
    ))
    .await;
    let client = Client::new();
    let mut response = client.get(server.url("/")).send().await.unwrap();
    let mut got = Vec::new();
    let err = loop {
        match response.chunk().await {
            Ok(Some(chunk)) => got.extend_from_slice(&chunk),
            Ok(None) => panic!("the body ended cleanly"),
            Err(err) => break err,
        }
    };
    assert_eq!(got, b"hello");
    assert_eq!(err.kind(), ErrorKind::ConnectionClosed, "{err}");
}

#[cfg(feature = "json")]
#[tokio::test]
async fn a_whole_body_that_is_not_json_is_a_decode_failure() {
    let server = FaultServer::start(Fault::Raw(
        b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\nContent-Type: application/json\r\n\r\nnot json"
            .to_vec(),
    ))
    .await;
    let client = Client::new();
    let response = client.get(server.url("/")).send().await.unwrap();
    let err: GatewayError = response.json::<serde_json::Value>().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Decode, "{err}");
    assert!(!err.is_retryable(), "{err}");
    assert!(err.to_string().contains("decode"), "{err}");
}

/// A body error is the logical request's: a POST whose body was cut short was delivered (it was
/// answered), so it may not be sent again; its method and its attempt are said.
#[tokio::test]
async fn a_posts_body_cut_short_says_it_may_not_be_sent_again() {
    let server = FaultServer::start(Fault::Raw(
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc".to_vec(),
    ))
    .await;
    let client = Client::new();
    let post = async {
        let response = client.post(server.url("/pay")).body("x").send().await?;
        response.bytes().await
    };
    let err = post.await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionClosed, "{err}");
    assert!(!err.is_retryable(), "a delivered POST: {err:?}");
    assert!(err.is_transient(), "the cause itself is transient");
    assert_eq!(err.attempts(), 1, "{err:?}");
    assert_eq!(err.details().method(), Some(&reqwest::Method::POST));
    // A GET's may be sent again.
    let get = async {
        let response = client.get(server.url("/x")).send().await?;
        response.bytes().await
    };
    assert!(get.await.unwrap_err().is_retryable());
}

/// `?` on an upload's error never takes a cause of another request's out of its chain: a
/// response body forwarded as a request body fails with the upload's own cause.
#[tokio::test]
async fn a_forwarded_body_does_not_carry_another_requests_cause() {
    let download = FaultServer::start(Fault::RawThenStall(
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc".to_vec(),
    ))
    .await;
    let upload = FaultServer::start(Fault::Hang).await;
    let short = Client::builder()
        .deadline(Duration::from_millis(200))
        .build()
        .unwrap();
    let response = short.get(download.url("/")).send().await.unwrap();
    let plain = reqwest::Client::builder().no_proxy().build().unwrap();
    let err = plain
        .put(upload.url("/"))
        .body(reqwest::Body::from(response.into_reqwest()))
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .unwrap_err();
    let err = GatewayError::from(err);
    assert!(
        !err.to_string().contains("deadline of 200 ms"),
        "the download's deadline is not the upload's: {err}"
    );
}
