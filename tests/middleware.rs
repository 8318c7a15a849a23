//! The reqwest-middleware adapter inside a chain, with a middleware after it that counts its
//! calls per attempt, against wiremock, a refused port and a server that never answers.

mod support;

use http::Extensions;
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware, Middleware, Next};
use reqwest_resilience::middleware::{ResilienceMiddleware, gateway_error};
use reqwest_resilience::retry::{ExponentialBackoff, RetryPolicy};
use reqwest_resilience::{ErrorKind, Substatus};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use wiremock::{MockServer, ResponseTemplate};

/// Counts the requests it passes on.
#[derive(Clone, Default)]
struct Counting(Arc<AtomicU32>);

#[async_trait::async_trait]
impl Middleware for Counting {
    async fn handle(
        &self,
        req: reqwest::Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        self.0.fetch_add(1, Ordering::SeqCst);
        next.run(req, extensions).await
    }
}

fn fast() -> RetryPolicy {
    RetryPolicy::default().backoff(ExponentialBackoff::new(Duration::from_millis(1)))
}

fn chain(resilience: ResilienceMiddleware, counting: &Counting) -> ClientWithMiddleware {
    ClientBuilder::new(reqwest::Client::new())
        .with(resilience)
        .with(counting.clone())
        .build()
}

async fn server(first: ResponseTemplate, then: ResponseTemplate) -> MockServer {
    support::once_then(first, then).await
}

#[tokio::test]
async fn each_attempt_runs_the_middlewares_after_it() {
    let server = server(ResponseTemplate::new(502), ResponseTemplate::new(200)).await;
    let counting = Counting::default();
    let client = chain(ResilienceMiddleware::new().retry(fast()), &counting);
    let response = client.get(server.uri()).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(counting.0.load(Ordering::SeqCst), 2, "once per attempt");
    assert_eq!(reqwest_resilience::attempts(&response), 2);
}

#[tokio::test]
async fn its_errors_carry_the_gateway_error() {
    let dead = support::refused_url("/").await;
    let counting = Counting::default();
    let client = chain(ResilienceMiddleware::new().retry(fast()), &counting);
    let err = client.get(&dead).send().await.unwrap_err();
    let gateway = gateway_error(&err).expect("a GatewayError inside");
    assert_eq!(gateway.kind(), ErrorKind::ConnectFailed);
    assert_eq!(gateway.substatus(), Some(Substatus::ForwarderConnection));
    assert_eq!(gateway.attempts(), 3);
    assert_eq!(counting.0.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_gateway_page_is_classified_as_by_the_tower_stack() {
    let page = ResponseTemplate::new(502)
        .insert_header("Server", "nginx")
        .set_body_string("<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>");
    let server = server(page.clone(), page).await;
    let counting = Counting::default();
    let client = chain(
        ResilienceMiddleware::new().retry(fast().max_attempts(2)),
        &counting,
    );
    let err = client.get(server.uri()).send().await.unwrap_err();
    let gateway = gateway_error(&err).unwrap();
    assert_eq!(gateway.kind(), ErrorKind::BadGateway);
    assert_eq!(gateway.status(), 502);
    assert_eq!(gateway.attempts(), 2);
}

#[tokio::test]
async fn a_post_is_not_resent() {
    let server = server(ResponseTemplate::new(502), ResponseTemplate::new(200)).await;
    let counting = Counting::default();
    let client = chain(ResilienceMiddleware::new().retry(fast()), &counting);
    let err = client
        .post(server.uri())
        .body("order")
        .send()
        .await
        .unwrap_err();
    assert_eq!(gateway_error(&err).unwrap().kind(), ErrorKind::BadGateway);
    assert_eq!(counting.0.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn the_attempt_timeout_and_the_deadline_bound_a_silent_server() {
    let server = server(
        ResponseTemplate::new(200).set_delay(Duration::from_secs(30)),
        ResponseTemplate::new(200).set_delay(Duration::from_secs(30)),
    )
    .await;
    let counting = Counting::default();
    let client = chain(
        ResilienceMiddleware::new()
            .retry(fast())
            .attempt_timeout(Duration::from_millis(200))
            .deadline(Duration::from_millis(500)),
        &counting,
    );
    let started = std::time::Instant::now();
    let err = client.get(server.uri()).send().await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5));
    let gateway = gateway_error(&err).unwrap();
    // As in the tower stack: the failure at the deadline is the deadline's, carrying the
    // attempt timeout as its last cause.
    assert_eq!(gateway.kind(), ErrorKind::DeadlineExceeded, "{gateway}");
    assert_eq!(
        gateway.last_cause().map(|c| c.kind()),
        Some(ErrorKind::TimedOut)
    );
    assert!(
        counting.0.load(Ordering::SeqCst) >= 2,
        "the attempt timeout ended the first try"
    );
}

#[tokio::test]
async fn response_rules_apply_as_in_the_tower_stack() {
    let server = server(ResponseTemplate::new(500), ResponseTemplate::new(200)).await;
    let counting = Counting::default();
    let client = chain(
        ResilienceMiddleware::new().retry(fast().retry_on_status([500])),
        &counting,
    );
    let response = client.get(server.uri()).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(counting.0.load(Ordering::SeqCst), 2);
}

/// A middleware after the adapter that fails with an error type of its own.
#[derive(Debug)]
struct QuotaExceeded;

impl std::fmt::Display for QuotaExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("quota exceeded")
    }
}

impl std::error::Error for QuotaExceeded {}

struct Refusing;

#[async_trait::async_trait]
impl Middleware for Refusing {
    async fn handle(
        &self,
        _req: reqwest::Request,
        _extensions: &mut Extensions,
        _next: Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        Err(reqwest_middleware::Error::middleware(QuotaExceeded))
    }
}

/// Issue 26, item 2: another middleware's error keeps its identity: its own type is reachable
/// down the source chain, and it is not retried as a gateway failure.
#[tokio::test]
async fn another_middlewares_error_keeps_its_identity() {
    let client = ClientBuilder::new(reqwest::Client::new())
        .with(ResilienceMiddleware::new().retry(fast()))
        .with(Refusing)
        .build();
    let err = client.get("http://127.0.0.1:9/").send().await.unwrap_err();
    let gateway = gateway_error(&err).expect("the adapter's error");
    assert_eq!(gateway.kind(), ErrorKind::Other);
    assert!(!gateway.is_retryable());
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(gateway);
    let mut found = false;
    while let Some(e) = cause {
        found |= e.downcast_ref::<QuotaExceeded>().is_some();
        cause = e.source();
    }
    assert!(found, "QuotaExceeded is in the source chain: {gateway:?}");
}

/// Status errors made after the adapter (a user's `error_for_status` middleware) are judged by
/// their status as a response would be.
struct ErrorForStatus;

#[async_trait::async_trait]
impl Middleware for ErrorForStatus {
    async fn handle(
        &self,
        req: reqwest::Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        let response = next.run(req, extensions).await?;
        response
            .error_for_status()
            .map_err(reqwest_middleware::Error::Reqwest)
    }
}

/// Issue 26, item 3: a 404 status error keeps its status and is not retried; an nginx 502 page
/// turned into a status error is a 502, retried as one.
#[tokio::test]
async fn status_errors_keep_their_status() {
    let counting = Counting::default();
    let client = ClientBuilder::new(reqwest::Client::new())
        .with(ResilienceMiddleware::new().retry(fast()))
        .with(ErrorForStatus)
        .with(counting.clone())
        .build();
    let missing = server(ResponseTemplate::new(404), ResponseTemplate::new(404)).await;
    let err = client.get(missing.uri()).send().await.unwrap_err();
    let gateway = gateway_error(&err).expect("the adapter's error");
    assert_eq!(gateway.status(), 404);
    assert_eq!(gateway.kind(), ErrorKind::Other);
    assert_eq!(counting.0.load(Ordering::SeqCst), 1, "a 404 is not retried");

    let bad = server(
        ResponseTemplate::new(502).insert_header("server", "nginx/1.22.1"),
        ResponseTemplate::new(502).insert_header("server", "nginx/1.22.1"),
    )
    .await;
    let counting_before = counting.0.load(Ordering::SeqCst);
    let err = client.get(bad.uri()).send().await.unwrap_err();
    let gateway = gateway_error(&err).expect("the adapter's error");
    assert_eq!(gateway.kind(), ErrorKind::BadGateway, "{gateway}");
    assert_eq!(gateway.status(), 502);
    assert_eq!(
        counting.0.load(Ordering::SeqCst) - counting_before,
        3,
        "retried as a 502"
    );
}

/// Issue 25, item 7: the chain's client does not report the redirects it follows, so a
/// failure after one names the URL as requested; the error says so and the diagnosis sends the
/// user to check where it redirects, not only at a server that answered. The crate's own
/// client names the redirect's target.
#[tokio::test]
async fn a_failure_after_an_unseen_redirect_says_where_to_look() {
    let dead = support::refused_url("/gone").await;
    let redirecting = MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::any())
        .respond_with(ResponseTemplate::new(302).insert_header("location", dead.as_str()))
        .mount(&redirecting)
        .await;
    let client = ClientBuilder::new(reqwest::Client::new())
        .with(ResilienceMiddleware::new().retry(RetryPolicy::never()))
        .build();
    let err = client.get(redirecting.uri()).send().await.unwrap_err();
    let gateway = gateway_error(&err).expect("the adapter's error");
    assert_eq!(gateway.kind(), ErrorKind::ConnectFailed, "{gateway}");
    assert!(gateway.details().redirects_unseen());
    assert!(
        !gateway.is_request_unsent(),
        "the redirect's source was answered"
    );
    let report = gateway.diagnosis().to_string();
    assert!(report.contains("redirect"), "{report}");

    let own = reqwest_resilience::Client::builder()
        .retry(RetryPolicy::never())
        .build()
        .unwrap();
    let err = own.get(redirecting.uri()).send().await.unwrap_err();
    assert!(err.details().followed_redirect());
    assert!(!err.details().redirects_unseen());
    let port = dead.rsplit(':').next().unwrap().split('/').next().unwrap();
    assert!(err.server().unwrap_or("").contains(port), "{err}");
}

/// Issue 26, item 2: reqwest-retry after the adapter wraps every error it passes on (and its
/// wrapper hides the `reqwest::Error` from the source chain): a refused GET is still a refused
/// connection to the adapter, retried as one.
#[tokio::test]
async fn an_error_wrapped_by_reqwest_retry_keeps_its_cause() {
    use reqwest_retry::RetryTransientMiddleware;
    use reqwest_retry::policies::ExponentialBackoff as RetryBackoff;
    let dead = support::refused_url("/").await;
    let counting = Counting::default();
    let client = ClientBuilder::new(reqwest::Client::new())
        .with(ResilienceMiddleware::new().retry(fast()))
        .with(RetryTransientMiddleware::new_with_policy(
            RetryBackoff::builder().build_with_max_retries(0),
        ))
        .with(counting.clone())
        .build();
    let err = client.get(&dead).send().await.unwrap_err();
    let gateway = gateway_error(&err).expect("the adapter's error");
    assert_eq!(gateway.kind(), ErrorKind::ConnectFailed, "{gateway}");
    assert_eq!(
        counting.0.load(Ordering::SeqCst),
        3,
        "retried as a refused connection"
    );
}

/// Answers the first `fails` requests with a 500 and the rest with a 200, without sending.
struct Scripted {
    calls: Arc<AtomicU32>,
    fails: u32,
}

#[async_trait::async_trait]
impl Middleware for Scripted {
    async fn handle(
        &self,
        _req: reqwest::Request,
        _extensions: &mut Extensions,
        _next: Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        let status = if n <= self.fails { 500 } else { 200 };
        let response = http::Response::builder()
            .status(status)
            .body(bytes::Bytes::new())
            .expect("response");
        Ok(reqwest::Response::from(response))
    }
}

/// As the retry layer's: a retry with no pause goes through no timer, which would wait for the
/// timer wheel's next millisecond (the clock, paused between two ticks, would move).
#[tokio::test(start_paused = true)]
async fn a_retry_with_no_pause_waits_for_no_timer() {
    tokio::time::advance(Duration::from_micros(500)).await;
    let calls = Arc::new(AtomicU32::new(0));
    let policy = RetryPolicy::default()
        .max_attempts(4)
        .retry_on_status([500])
        .backoff(ExponentialBackoff::new(Duration::ZERO));
    let client = ClientBuilder::new(reqwest::Client::new())
        .with(ResilienceMiddleware::new().retry(policy))
        .with(Scripted {
            calls: calls.clone(),
            fails: 3,
        })
        .build();
    let started = tokio::time::Instant::now();
    let response = client.get("http://a.test/").send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(calls.load(Ordering::SeqCst), 4);
    assert_eq!(started.elapsed(), Duration::ZERO);
}
