//! Deadline propagation: each attempt tells the server how long the caller will still wait,
//! no attempt goes out with less than the minimum, and the header does not follow a redirect
//! to another host. Real loopback servers (wiremock).

use reqwest_resilience::retry::{ExponentialBackoff, Jitter, RetryPolicy};
use reqwest_resilience::timeout::DeadlineHeader;
use reqwest_resilience::{Client, ErrorKind};
use std::time::Duration;
use wiremock::matchers::{any, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const NAME: &str = "x-request-timeout-ms";

fn header() -> DeadlineHeader {
    DeadlineHeader::milliseconds(http::HeaderName::from_static(NAME))
}

/// The first attempt gets nginx's 502, the next ones a 200.
async fn fails_once() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(502).insert_header("server", "nginx"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(200))
        .with_priority(2)
        .mount(&server)
        .await;
    server
}

fn pause(ms: u64) -> RetryPolicy {
    RetryPolicy::default()
        .backoff(ExponentialBackoff::new(Duration::from_millis(ms)).jitter(Jitter::None))
}

async fn values(server: &MockServer, name: &str) -> Vec<String> {
    server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| {
            r.headers
                .get(name)
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default()
        })
        .collect()
}

#[tokio::test]
async fn each_attempt_carries_the_time_the_deadline_leaves() {
    let server = fails_once().await;
    let client = Client::builder()
        .retry(pause(200))
        .deadline(Duration::from_secs(2))
        .propagate_deadline(header())
        .build()
        .unwrap();
    client.get(server.uri()).send().await.unwrap();
    let got: Vec<u64> = values(&server, NAME)
        .await
        .iter()
        .map(|v| v.parse().unwrap())
        .collect();
    assert_eq!(got.len(), 2, "{got:?}");
    // 2 s at the first send (less the moment it took to get there), less the attempt and the
    // 200 ms pause at the second. (Loose margins: a shared CI machine may stall.)
    assert!((1_500..=2_000).contains(&got[0]), "{got:?}");
    assert!(
        got[1] <= got[0] - 200 && got[1] >= got[0] - 1_200,
        "{got:?}"
    );
}

#[tokio::test]
async fn no_attempt_goes_out_below_the_minimum() {
    let server = fails_once().await;
    let client = Client::builder()
        // The first attempt has 500 ms to go out above the minimum; the pause alone takes
        // the second below it.
        .retry(pause(600))
        .deadline(Duration::from_secs(2))
        .propagate_deadline(header().minimum(Duration::from_millis(1_500)))
        .build()
        .unwrap();
    let err = client.get(server.uri()).send().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::DeadlineExceeded, "{err}");
    assert!(err.to_string().contains("not sent"), "{err}");
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
}

#[tokio::test]
async fn grpc_syntax_and_no_header_without_a_deadline() {
    let server = MockServer::start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let grpc = Client::builder()
        .deadline(Duration::from_secs(3))
        .propagate_deadline(DeadlineHeader::grpc_timeout())
        .build()
        .unwrap();
    grpc.get(server.uri()).send().await.unwrap();
    let none = Client::builder()
        .no_deadline()
        .propagate_deadline(DeadlineHeader::grpc_timeout())
        .build()
        .unwrap();
    none.get(server.uri()).send().await.unwrap();
    let got = values(&server, "grpc-timeout").await;
    let (value, unit) = got[0].split_at(got[0].len() - 1);
    assert_eq!(unit, "m", "{got:?}");
    assert!(
        (2_800..=3_000).contains(&value.parse::<u64>().unwrap()),
        "{got:?}"
    );
    assert_eq!(got[1], "", "no deadline, no header");
}

#[tokio::test]
async fn the_header_does_not_follow_a_redirect_to_another_host() {
    let elsewhere = MockServer::start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(200))
        .mount(&elsewhere)
        .await;
    let origin = MockServer::start().await;
    Mock::given(path("/moved"))
        .respond_with(
            ResponseTemplate::new(302).insert_header("location", format!("{}/x", elsewhere.uri())),
        )
        .mount(&origin)
        .await;
    let with = Client::builder()
        .deadline(Duration::from_secs(2))
        .propagate_deadline(header())
        .build()
        .unwrap();
    let response = with
        .get(format!("{}/moved", origin.uri()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 302, "returned, not followed");
    assert!(elsewhere.received_requests().await.unwrap().is_empty());
    // Without the header, the same redirect is followed as reqwest follows it.
    let without = Client::builder()
        .deadline(Duration::from_secs(2))
        .build()
        .unwrap();
    let response = without
        .get(format!("{}/moved", origin.uri()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(elsewhere.received_requests().await.unwrap().len(), 1);
}
