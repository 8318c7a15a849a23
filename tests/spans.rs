//! Traces by the OpenTelemetry HTTP client conventions: one `request` span per logical request
//! and one `attempt` span per request on the wire, with the conventions' attributes (and
//! `otel.name` / `otel.kind` for tracing-opentelemetry), no query or credential in them.

mod support;

use reqwest_resilience::Client;
use reqwest_resilience::retry::{ExponentialBackoff, RetryPolicy};
use std::time::Duration;
use wiremock::matchers::path;
use wiremock::{Mock, MockServer, ResponseTemplate};

#[tokio::test]
async fn request_and_attempt_spans_carry_the_conventions_attributes() {
    let capture = support::LogCapture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let server = MockServer::start().await;
    Mock::given(path("/orders"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(path("/orders"))
        .respond_with(ResponseTemplate::new(200))
        .with_priority(2)
        .mount(&server)
        .await;
    let client = Client::builder()
        .retry(RetryPolicy::default().backoff(ExponentialBackoff::new(Duration::from_millis(1))))
        .build()
        .unwrap();
    client
        .get(format!("{}/orders?token=SECRET", server.uri()))
        .send()
        .await
        .unwrap();
    let text = capture.text();
    let port = server.address().port();
    let attempts: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("attempt{") && l.contains("close"))
        .collect();
    assert_eq!(attempts.len(), 2, "{text}");
    for (n, line) in attempts.iter().enumerate() {
        for field in [
            "otel.name=GET".to_owned(),
            "otel.kind=\"client\"".to_owned(),
            "http.request.method=GET".to_owned(),
            "server.address=\"127.0.0.1\"".to_owned(),
            format!("server.port={port}"),
            format!("http.request.resend_count={n}"),
        ] {
            assert!(line.contains(&field), "{field} missing in {line}");
        }
    }
    assert!(
        attempts[0].contains("http.response.status_code=503"),
        "{}",
        attempts[0]
    );
    // The conventions: an error status is its own error.type.
    assert!(
        attempts[0].contains("error.type=\"503\""),
        "{}",
        attempts[0]
    );
    assert!(
        attempts[1].contains("http.response.status_code=200"),
        "{}",
        attempts[1]
    );
    let request = text
        .lines()
        .find(|l| l.contains("request{") && !l.contains("attempt{") && l.contains("close"))
        .unwrap_or_else(|| panic!("no request span closed in {text}"));
    assert!(request.contains("attempts=2"), "{request}");
    assert!(
        request.contains("http.response.status_code=200"),
        "{request}"
    );
    assert!(
        request.contains("http.response.status_code=200"),
        "{request}"
    );
    assert!(
        request.contains(&format!("server.port={port}")),
        "{request}"
    );
    assert!(!text.contains("SECRET"), "the query stays out: {text}");
}
