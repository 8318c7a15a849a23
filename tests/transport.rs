//! The transport service against wiremock and real TCP faults.

mod support;

use reqwest_resilience::{Client, ErrorKind, GatewayError, Origin, Substatus};
use std::time::Duration;
use support::{Fault, FaultServer, refused_url};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const IIS_502_3: &str = "<!DOCTYPE html><html><head><title>IIS 10.0 Detailed Error - 502.3 - Bad Gateway</title></head><body><h3>HTTP Error 502.3 - Bad Gateway</h3><table><tr><th>Error Code</th><td>0x80072efd</td></tr></table></body></html>";

/// One attempt per request: these tests look at the transport's classification alone.
fn client() -> Client {
    Client::builder()
        .no_retry()
        .reqwest_builder(reqwest::Client::builder().timeout(Duration::from_secs(2)))
        .build()
        .unwrap()
}

#[tokio::test]
async fn refused_connection_is_connect_failed_and_unsent() {
    let url = refused_url("/x?token=s3cret").await;
    let err = client().get(&url).send().await.unwrap_err();
    assert!(matches!(err, GatewayError::ConnectFailed(_)), "{err:?}");
    assert_eq!(err.substatus(), Some(Substatus::ForwarderConnection));
    assert_eq!(err.origin(), Origin::Transport);
    assert_eq!(err.status().as_u16(), 502);
    assert!(err.is_request_unsent());
    assert!(err.is_retryable());
    assert_eq!(err.attempts(), 1);
    let server = err.server().unwrap();
    assert!(server.ends_with("/x"), "{server}");
    assert!(!format!("{err} {err:?}").contains("s3cret"));
}

#[tokio::test]
async fn reset_after_request_is_a_closed_connection() {
    let server = FaultServer::start(Fault::Reset).await;
    let err = client().get(server.url("/")).send().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionClosed, "{err:?}");
    assert!(!err.is_request_unsent());
    assert_eq!(server.hits(), 1);
}

#[tokio::test]
async fn close_without_answer_is_a_closed_connection() {
    let server = FaultServer::start(Fault::CloseAfterRequest).await;
    let err = client().get(server.url("/")).send().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionClosed, "{err:?}");
}

#[tokio::test]
async fn garbage_answer_is_an_invalid_response() {
    let server = FaultServer::start(Fault::Garbage).await;
    let err = client().get(server.url("/")).send().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidResponse, "{err:?}");
}

#[tokio::test]
async fn hang_with_reqwest_timeout_is_timed_out() {
    let server = FaultServer::start(Fault::Hang).await;
    let client = Client::builder()
        .no_retry()
        .reqwest_builder(reqwest::Client::builder().timeout(Duration::from_millis(300)))
        .build()
        .unwrap();
    let err = client.get(server.url("/")).send().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut, "{err:?}");
}

#[tokio::test]
async fn truncated_502_body_still_classifies() {
    let server = FaultServer::start(Fault::TruncatedBodyThenReset).await;
    let err = client().get(server.url("/")).send().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BadGateway, "{err:?}");
    let snapshot = err.response().unwrap();
    assert_eq!(&snapshot.body_prefix()[..], b"abc");
    assert!(!snapshot.is_body_complete());
}

#[tokio::test]
async fn unresolvable_host_is_name_not_resolved() {
    let client = Client::builder()
        .no_retry()
        .reqwest_builder(support::unresolving().connect_timeout(Duration::from_secs(5)))
        .build()
        .unwrap();
    let err = client
        .get("http://no-such-host.invalid/")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NameNotResolved, "{err:?}");
    assert!(err.is_request_unsent());
}

#[tokio::test]
async fn invalid_url_is_invalid_request() {
    let err = client().get("not a url").send().await.unwrap_err();
    assert!(matches!(err, GatewayError::InvalidRequest(_)), "{err:?}");
    assert!(!err.is_retryable());
    assert_eq!(err.attempts(), 0);
}

#[tokio::test]
async fn iis_page_becomes_an_error_with_its_snapshot() {
    let mock = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/app"))
        .respond_with(
            ResponseTemplate::new(502)
                .insert_header("server", "Microsoft-IIS/10.0")
                .set_body_raw(IIS_502_3, "text/html"),
        )
        .mount(&mock)
        .await;
    let err = client()
        .get(format!("{}/app", mock.uri()))
        .send()
        .await
        .unwrap_err();
    assert!(matches!(err, GatewayError::ConnectFailed(_)), "{err:?}");
    assert_eq!(err.origin(), Origin::Upstream);
    assert_eq!(
        err.gateway(),
        Some(reqwest_resilience::classify::Gateway::Iis)
    );
    let snapshot = err.response().unwrap();
    assert_eq!(snapshot.status().as_u16(), 502);
    assert_eq!(snapshot.body_text_lossy(), IIS_502_3);
    assert!(snapshot.is_body_complete());
    assert!(err.details().evidence().unwrap().contains("0x80072efd"));
    assert!(err.to_string().starts_with("502.3 could not connect"));
}

#[tokio::test]
async fn application_500_reaches_the_caller_whole() {
    let body: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
    let mock = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(500).set_body_bytes(body.clone()))
        .mount(&mock)
        .await;
    let url = format!("{}/big", mock.uri());
    let response = client().get(&url).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 500);
    assert_eq!(response.url().as_str(), url);
    assert_eq!(response.bytes().await.unwrap().to_vec(), body);
}

#[tokio::test]
async fn success_passes_untouched() {
    let mock = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_string("hello"))
        .mount(&mock)
        .await;
    let response = client().get(mock.uri()).send().await.unwrap();
    assert_eq!(response.text().await.unwrap(), "hello");
}

#[tokio::test]
async fn plain_503_and_504_are_classified() {
    let mock = MockServer::start().await;
    Mock::given(path("/503"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&mock)
        .await;
    Mock::given(path("/504"))
        .respond_with(ResponseTemplate::new(504))
        .mount(&mock)
        .await;
    let c = client();
    let e503 = c
        .get(format!("{}/503", mock.uri()))
        .send()
        .await
        .unwrap_err();
    let e504 = c
        .get(format!("{}/504", mock.uri()))
        .send()
        .await
        .unwrap_err();
    assert!(matches!(e503, GatewayError::ServiceUnavailable(_)));
    assert_eq!(e503.status().as_u16(), 503);
    assert!(matches!(e504, GatewayError::TimedOut(_)));
    assert_eq!(e504.status().as_u16(), 504);
}
