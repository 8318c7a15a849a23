//! Per-request state travels with the request: below `tower::buffer`, inside a spawned task,
//! never shared by nested clients, and a success reports its attempts.

mod support;

use reqwest_resilience::retry::{RetryLayer, RetryPolicy};
use reqwest_resilience::timeout::{AttemptTimeoutLayer, DeadlineLayer};
use reqwest_resilience::{Client, ErrorKind, GatewayError, Request};
use std::time::Duration;
use support::{Fault, FaultServer};
use tokio::time::Instant;
use tower::buffer::BufferLayer;
use tower::util::BoxCloneSyncService;
use tower::{ServiceBuilder, ServiceExt, service_fn};

type Inner = BoxCloneSyncService<Request, reqwest::Response, GatewayError>;

/// A service that never answers.
fn hang() -> Inner {
    Inner::new(service_fn(|_req: Request| async {
        std::future::pending::<()>().await;
        Ok(reqwest::Response::from(http::Response::new("")))
    }))
}

/// Calls `inner` from another task.
fn spawning(inner: Inner) -> Inner {
    Inner::new(service_fn(move |req: Request| {
        let inner = inner.clone();
        async move {
            tokio::spawn(inner.oneshot(req))
                .await
                .expect("the spawned call")
        }
    }))
}

fn request(deadline: Option<Duration>, attempt_timeout: Option<Duration>) -> Request {
    let mut request = Request::from(reqwest::Request::new(
        reqwest::Method::GET,
        "http://a.test/".parse().unwrap(),
    ));
    request.options_mut().deadline = deadline;
    request.options_mut().attempt_timeout = attempt_timeout;
    request
}

#[tokio::test(start_paused = true)]
async fn a_deadline_and_its_override_work_below_a_buffer() {
    let stack = ServiceBuilder::new()
        .layer(BufferLayer::<Request>::new(8))
        .layer(DeadlineLayer::new(Duration::from_secs(10)))
        .service(hang());
    let started = Instant::now();
    let err = stack
        .oneshot(request(Some(Duration::from_millis(300)), None))
        .await
        .unwrap_err();
    let err = err
        .downcast::<GatewayError>()
        .expect("the deadline's error through the buffer");
    assert_eq!(err.kind(), ErrorKind::DeadlineExceeded);
    assert_eq!(
        started.elapsed(),
        Duration::from_millis(300),
        "the override"
    );
}

#[tokio::test(start_paused = true)]
async fn the_deadline_and_an_attempt_timeout_override_reach_below_a_spawn() {
    // Deadline → retry → (a spawn) → attempt timeout → a service that hangs.
    let below = Inner::new(
        ServiceBuilder::new()
            .layer(AttemptTimeoutLayer::new(Duration::from_secs(10)))
            .service(hang()),
    );
    let stack = ServiceBuilder::new()
        .layer(DeadlineLayer::new(Duration::from_secs(1)))
        .layer(RetryLayer::new(RetryPolicy::never()))
        .service(spawning(below));
    let started = Instant::now();
    let err = stack
        .clone()
        .oneshot(request(None, Some(Duration::from_millis(200))))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut, "{err}");
    assert_eq!(
        started.elapsed(),
        Duration::from_millis(200),
        "the override"
    );
    // Without the override, the attempt timeout is cut to the deadline set above the spawn.
    let started = Instant::now();
    let err = stack.oneshot(request(None, None)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::DeadlineExceeded, "{err}");
    assert_eq!(started.elapsed(), Duration::from_secs(1));
}

#[tokio::test]
async fn a_success_reports_its_attempts() {
    let unavailable =
        b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";
    let server = FaultServer::start(Fault::FirstThen(unavailable.to_vec(), ok.to_vec())).await;
    let client =
        Client::builder()
            .retry(RetryPolicy::default().backoff(
                reqwest_resilience::retry::ExponentialBackoff::new(Duration::from_millis(1)),
            ))
            .build()
            .unwrap();
    let response = client.get(server.url("/")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(reqwest_resilience::attempts(&response), 2);
    let again = client.get(server.url("/")).send().await.unwrap();
    assert_eq!(reqwest_resilience::attempts(&again), 1);
}

/// An inner client whose retry pause outlasts the outer deadline: isolated, the inner client
/// pauses (it does not know the outer deadline) and the outer deadline ends the call; had it
/// shared the outer request's state, it would have given up at once with the 503.
#[tokio::test]
async fn a_nested_client_does_not_see_the_outer_deadline() {
    let unavailable =
        b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    let server = FaultServer::start(Fault::Raw(unavailable.to_vec())).await;
    let inner = Client::builder()
        .retry(
            RetryPolicy::default().no_budget().backoff(
                reqwest_resilience::retry::ExponentialBackoff::new(Duration::from_millis(600))
                    .jitter(reqwest_resilience::retry::Jitter::None),
            ),
        )
        .build()
        .unwrap();
    let outer = ServiceBuilder::new()
        .layer(DeadlineLayer::new(Duration::from_millis(300)))
        .service(inner.clone().into_service());
    let request = inner.get(server.url("/")).build_request().unwrap();
    let err = outer.oneshot(request).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::DeadlineExceeded, "{err}");
    assert_eq!(server.hits(), 1);
}

/// A request made for the call keeps its per-request options through `into_service`.
#[tokio::test]
async fn into_service_keeps_the_options_of_a_request_made_for_it() {
    let server = FaultServer::start(Fault::Hang).await;
    let client = Client::builder()
        .attempt_timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let request = client
        .get(server.url("/"))
        .deadline(Duration::from_millis(200))
        .build_request()
        .unwrap();
    let started = std::time::Instant::now();
    let err = client.into_service().oneshot(request).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::DeadlineExceeded, "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the option was dropped"
    );
}

#[test]
fn a_requests_debug_shows_no_secrets() {
    let mut inner = reqwest::Request::new(
        reqwest::Method::GET,
        "http://alice:s3cret@a.test/x?token=t0ken".parse().unwrap(),
    );
    inner
        .headers_mut()
        .insert("cookie", "session=c00kie".parse().unwrap());
    let shown = format!("{:?}", Request::from(inner));
    for secret in ["s3cret", "t0ken", "c00kie", "alice"] {
        assert!(!shown.contains(secret), "{shown}");
    }
}
