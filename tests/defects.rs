//! The promises of the first defects issue, each over real loopback sockets with the public API:
//! the deadline bounds the body, a 5xx peek never becomes a timeout or a resend, URL credentials
//! stay with their server on every entry point, nested clients share nothing, an origin's words
//! never license resending a POST, readiness and zero durations, 408, truncated bodies.
//! (The fallback ejection cap under random interleavings and racing threads is checked in `src/health.rs`.)

mod support;

use http::header::{AUTHORIZATION, COOKIE};
use reqwest_resilience::retry::{ExponentialBackoff, Jitter, RetryLayer, RetryPolicy};
use reqwest_resilience::timeout::DeadlineLayer;
use reqwest_resilience::{Client, ErrorKind, GatewayError};
use std::time::Duration;
use support::{Fault, FaultServer, refused_url};
use tower::{ServiceBuilder, ServiceExt};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

/// The first `GatewayError` in `err`'s source chain.
fn gateway_cause<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a GatewayError> {
    let mut source = Some(err);
    while let Some(e) = source {
        if let Some(g) = e.downcast_ref::<GatewayError>() {
            return Some(g);
        }
        source = e.source();
    }
    None
}

/// A response whose body stalls after 3 of 100 bytes, from a client with a 500 ms deadline
/// (and the server, kept alive with it).
async fn stalled_body_within_500_ms() -> (FaultServer, reqwest_resilience::Response) {
    let server = FaultServer::start(Fault::RawThenStall(
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc".to_vec(),
    ))
    .await;
    let client = Client::builder()
        .deadline(Duration::from_millis(500))
        .build()
        .unwrap();
    let response = client.get(server.url("/")).send().await.unwrap();
    (server, response)
}

// 1. The deadline bounds reading the body.
#[tokio::test]
async fn the_deadline_bounds_reading_the_body() {
    let (_server, response) = stalled_body_within_500_ms().await;
    let err = tokio::time::timeout(Duration::from_secs(5), response.bytes())
        .await
        .expect("the deadline must end the body read")
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::DeadlineExceeded, "{err}");
}

// 1b. The `reqwest::Response` a `Response` converts into keeps the bound: its body error is
// reqwest's timeout, the deadline's `GatewayError` its cause.
#[tokio::test]
async fn the_deadline_bounds_the_body_of_the_reqwest_response_too() {
    let (_server, response) = stalled_body_within_500_ms().await;
    let response: reqwest::Response = response.into_reqwest();
    let err = tokio::time::timeout(Duration::from_secs(5), response.bytes())
        .await
        .expect("the deadline must end the body read")
        .unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
    let cause = gateway_cause(&err).expect("a GatewayError in the chain");
    assert_eq!(cause.kind(), ErrorKind::DeadlineExceeded, "{cause}");
    assert_eq!(GatewayError::from(err).kind(), ErrorKind::DeadlineExceeded);
}

// 2. An application's own 500 with a slow body is its response, sent once.
#[tokio::test]
async fn an_origin_500_with_a_stalled_body_is_handed_back_after_one_send() {
    let server = FaultServer::start(Fault::RawThenStall(
        b"HTTP/1.1 500 Internal Server Error\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"
            .to_vec(),
    ))
    .await;
    let client = Client::builder()
        .attempt_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let mut response = client
        .get(server.url("/"))
        .send()
        .await
        .expect("the 500 itself");
    assert_eq!(response.status(), 500);
    assert_eq!(server.hits(), 1, "sent once");
    let first = response.chunk().await.unwrap().unwrap();
    assert_eq!(&first[..], b"hello", "the peeked bytes are put back");
}

// 2b. A gateway's 502 whose body stalls is still classified, from its head, within the attempt.
#[tokio::test]
async fn a_502_with_a_stalled_body_is_classified_not_timed_out() {
    let server = FaultServer::start(Fault::RawThenStall(
        b"HTTP/1.1 502 Bad Gateway\r\nServer: nginx\r\nContent-Length: 1000\r\n\r\n<html>".to_vec(),
    ))
    .await;
    let client = Client::builder()
        .no_retry()
        .attempt_timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let err = client.get(server.url("/")).send().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BadGateway, "{err}");
}

// 3. Credentials meant for one server never reach a fallback server, whichever entry point
// the request came in by and whatever set them.
#[tokio::test]
async fn credentials_never_reach_a_fallback_server_on_any_entry_point() {
    let backup = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&backup)
        .await;
    let refused = refused_url("").await;
    let client = Client::builder()
        .no_retry()
        .fallback_servers([refused.as_str(), &backup.uri()])
        .build()
        .unwrap();
    let with_creds = refused.replacen("http://", "http://alice:s3cret@", 1) + "/x";

    let sent = client.get(&with_creds).send().await.unwrap();
    assert_eq!(sent.status(), 200);
    let built = client.get(&with_creds).build().unwrap();
    assert_eq!(client.execute(built).await.unwrap().status(), 200);
    let built = client.get(&with_creds).build().unwrap();
    let service = client.clone().into_service();
    assert_eq!(service.oneshot(built).await.unwrap().status(), 200);
    // Built by reqwest's own builder: the credentials are already a header.
    let by_reqwest = reqwest::Client::new().get(&with_creds).build().unwrap();
    assert_eq!(client.execute(by_reqwest).await.unwrap().status(), 200);
    // Set as a header by the caller.
    let bearer = client
        .get(format!("{refused}/x"))
        .bearer_auth("token-1")
        .header(COOKIE, "session=abc");
    assert_eq!(bearer.send().await.unwrap().status(), 200);

    let received = backup.received_requests().await.unwrap();
    assert_eq!(received.len(), 5);
    for request in received {
        assert!(
            !request.headers.contains_key(AUTHORIZATION) && !request.headers.contains_key(COOKIE),
            "the backup got credentials: {:?}",
            request.headers
        );
    }
}

#[tokio::test]
async fn url_credentials_reach_their_own_server_as_a_header() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let client = Client::builder().no_retry().build().unwrap();
    let url = server.uri().replacen("http://", "http://alice:s3cret@", 1) + "/x";
    client.get(&url).send().await.unwrap();
    client
        .execute(client.get(&url).build().unwrap())
        .await
        .unwrap();
    // A request made by hand with credentials in its URL: the transport sends them as reqwest's
    // builder would have.
    let by_hand = reqwest::Request::new(reqwest::Method::GET, url.parse().unwrap());
    client.execute(by_hand).await.unwrap();
    let received = server.received_requests().await.unwrap();
    assert_eq!(received.len(), 3);
    for request in received {
        assert_eq!(request.headers[AUTHORIZATION], "Basic YWxpY2U6czNjcmV0");
    }
}

#[tokio::test]
async fn forwarded_credentials_stay_off_a_downgrade_to_http_unless_allowed() {
    let backup = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&backup)
        .await;
    // An https primary on a port with nothing listening: refused before any byte is sent.
    let primary = refused_url("").await.replacen("http://", "https://", 1);
    for (forward, cleartext) in [(true, false), (true, true)] {
        let fallback =
            reqwest_resilience::fallback::FallbackLayer::builder([primary.as_str(), &backup.uri()])
                .forward_credentials(forward)
                .cleartext_credentials(cleartext);
        let client = Client::builder()
            .no_retry()
            .fallback(fallback)
            .build()
            .unwrap();
        client
            .get(format!("{primary}/x"))
            .bearer_auth("token-1")
            .header(COOKIE, "session=abc")
            .send()
            .await
            .unwrap();
    }
    let received = backup.received_requests().await.unwrap();
    assert!(!received[0].headers.contains_key(AUTHORIZATION));
    assert!(!received[0].headers.contains_key(COOKIE));
    assert_eq!(received[1].headers[AUTHORIZATION], "Bearer token-1");
    assert_eq!(received[1].headers[COOKIE], "session=abc");
}

// 4. A client inside another stack keeps its deadline and attempt count to itself.
#[tokio::test]
async fn nested_clients_keep_separate_deadlines_and_attempt_counts() {
    let upstream = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&upstream)
        .await;
    let inner = Client::builder()
        .deadline(Duration::from_millis(150))
        .no_retry()
        .build()
        .unwrap();
    let policy = RetryPolicy::default()
        .no_budget()
        .backoff(ExponentialBackoff::new(Duration::from_millis(200)).jitter(Jitter::None));
    let outer = ServiceBuilder::new()
        .layer(DeadlineLayer::new(Duration::from_secs(10)))
        .layer(RetryLayer::new(policy))
        .service(inner.clone().into_service());
    let request = inner.get(format!("{}/x", upstream.uri())).build().unwrap();
    let err = outer.oneshot(request).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ServiceUnavailable, "{err}");
    assert_eq!(err.attempts(), 3, "{err}");
    assert_eq!(upstream.received_requests().await.unwrap().len(), 3);
}

// 6. An origin's 500 quoting a proxy's words never licenses resending a POST.
#[tokio::test]
async fn a_post_is_delivered_once_when_an_origin_500_quotes_a_proxy() {
    let bodies: [&[u8]; 2] = [
        b"<p>payment provider failed:</p><p>No server is available to handle this request.</p>",
        b"{\"error\":\"upstream connect error or disconnect/reset before headers. reset reason: connection failure\"}",
    ];
    for body in bodies {
        let mut answer = format!(
            "HTTP/1.1 500 Internal Server Error\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .into_bytes();
        answer.extend_from_slice(body);
        let server = FaultServer::start(Fault::Raw(answer)).await;
        let response = Client::new()
            .post(server.url("/pay"))
            .body("amount=10")
            .send()
            .await
            .expect("the origin's own 500");
        assert_eq!(response.status(), 500);
        assert_eq!(server.hits(), 1, "POST delivered once");
    }
}

#[tokio::test]
async fn a_post_answered_522_is_not_resent() {
    let answer = b"HTTP/1.1 522 Origin Connection Time-out\r\nServer: cloudflare\r\nCF-RAY: 8f1a2b3c4d5e6f70-FRA\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec();
    let server = FaultServer::start(Fault::Raw(answer)).await;
    let err = Client::new()
        .post(server.url("/pay"))
        .body("amount=10")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectFailed, "{err}");
    assert!(!err.is_request_unsent());
    assert_eq!(server.hits(), 1);
}

// Also seen: the deadline bounds readiness when the limit sits below the retry layer, as the
// docs now say; a zero duration means "off" everywhere.
#[tokio::test(start_paused = true)]
async fn queued_requests_below_the_retry_layer_end_at_the_deadline() {
    let slow = tower::service_fn(|_req: reqwest_resilience::Request| async {
        tokio::time::sleep(Duration::from_secs(10)).await;
        Ok::<_, GatewayError>(reqwest::Response::from(http::Response::new(
            bytes::Bytes::new(),
        )))
    });
    let stack = ServiceBuilder::new()
        .layer(DeadlineLayer::new(Duration::from_millis(300)))
        .layer(RetryLayer::new(RetryPolicy::never()))
        .layer(tower::limit::ConcurrencyLimitLayer::new(1))
        .service(slow);
    let start = tokio::time::Instant::now();
    let calls = (0..5).map(|_| {
        let request =
            reqwest::Request::new(reqwest::Method::GET, "http://a.test/".parse().unwrap());
        stack.clone().oneshot(request.into())
    });
    for outcome in futures_util::future::join_all(calls).await {
        assert_eq!(outcome.unwrap_err().kind(), ErrorKind::DeadlineExceeded);
    }
    assert_eq!(start.elapsed(), Duration::from_millis(300));
}

#[tokio::test]
async fn a_zero_per_request_timeout_or_deadline_means_off() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let client = Client::new();
    let response = client
        .get(server.uri())
        .timeout(Duration::ZERO)
        .deadline(Duration::ZERO)
        .send()
        .await
        .expect("zero turns the limits off");
    assert_eq!(response.status(), 200);
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_408_is_retried_by_the_idempotency_rules() {
    let timeout = b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";
    let server = FaultServer::start(Fault::FirstThen(timeout.to_vec(), ok.to_vec())).await;
    let response = Client::new().get(server.url("/")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(server.hits(), 2);

    let server = FaultServer::start(Fault::FirstThen(timeout.to_vec(), ok.to_vec())).await;
    let response = Client::new()
        .post(server.url("/"))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 408, "a POST is handed back, not resent");
    assert_eq!(server.hits(), 1);
}

#[tokio::test]
async fn a_truncated_body_surfaces_as_a_closed_connection() {
    let server = FaultServer::start(Fault::Raw(
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc".to_vec(),
    ))
    .await;
    let response = Client::new().get(server.url("/")).send().await.unwrap();
    let err = response.bytes().await.unwrap_err();
    let cause = gateway_cause(&err).expect("a GatewayError in the chain");
    assert_eq!(cause.kind(), ErrorKind::ConnectionClosed, "{cause}");
}

/// An IIS "cannot connect" page (502.3, WinHTTP 0x80072efd) proves a POST never reached the
/// backend only when IIS's own headers say IIS wrote it: the same page from an origin that
/// does not name IIS is text it could have copied, and the POST is not sent again.
#[tokio::test]
async fn an_iis_page_without_iis_headers_never_licenses_resending_a_post() {
    const PAGE: &str = "<html><head><title>502 - Web server received an invalid response</title></head><body><h3>HTTP Error 502.3 - Bad Gateway</h3><p>Error Code 0x80072efd</p></body></html>";
    for (server, sent) in [(None, 1), (Some("Microsoft-IIS/10.0"), 2)] {
        let upstream = MockServer::start().await;
        let mut answer = ResponseTemplate::new(502).set_body_string(PAGE);
        if let Some(server) = server {
            answer = answer.insert_header("server", server);
        }
        Mock::given(method("POST"))
            .respond_with(answer)
            .mount(&upstream)
            .await;
        let client = Client::builder()
            .retry(
                RetryPolicy::default()
                    .max_attempts(2)
                    .backoff(ExponentialBackoff::new(Duration::from_millis(1))),
            )
            .build()
            .unwrap();
        let err = client
            .post(format!("{}/orders", upstream.uri()))
            .body("order")
            .send()
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ConnectFailed, "{server:?}");
        assert_eq!(err.is_request_unsent(), server.is_some(), "{server:?}");
        let posts = upstream.received_requests().await.unwrap().len();
        assert_eq!(posts, sent, "Server: {server:?}");
    }
}
