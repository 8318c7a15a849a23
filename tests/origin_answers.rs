//! An origin's answer stays the origin's: an application's own 5xx, whatever its page quotes,
//! reaches the caller whole, is sent once, and is never counted against the host.

use reqwest_resilience::circuit::CircuitLayer;
use reqwest_resilience::retry::{ExponentialBackoff, RetryPolicy};
use reqwest_resilience::{Client, ErrorKind};
use std::time::Duration;
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, ResponseTemplate};

/// What a Go service prints when its database is down, as its own 500 (no proxy in front).
const GO_500: &str = r#"{"error":"internal","detail":"query orders: dial tcp 10.0.0.5:5432: connect: connection refused"}"#;

async fn origin(status: u16, body: &str, headers: &[(&str, &str)]) -> MockServer {
    let server = MockServer::start().await;
    let mut template = ResponseTemplate::new(status).set_body_raw(body, "application/json");
    for (name, value) in headers {
        template = template.insert_header(*name, *value);
    }
    Mock::given(any())
        .respond_with(template)
        .mount(&server)
        .await;
    server
}

/// Issue 26, item 1: the 500 is `Ok`, whole, sent once, and the circuit stays closed.
#[tokio::test]
async fn an_applications_500_quoting_its_database_is_its_answer() {
    // Behind nothing, and behind an nginx that writes its own `Server` and a `Via`: still the
    // application's answer (nginx relayed it; it did not make it).
    for headers in [
        &[][..],
        &[("server", "nginx/1.22.1"), ("via", "1.1 edge")][..],
    ] {
        let server = origin(500, GO_500, headers).await;
        let circuit = CircuitLayer::new().consecutive_failures(1);
        let client = Client::builder()
            .retry(RetryPolicy::default().backoff(ExponentialBackoff::new(Duration::ZERO)))
            .circuit_breaker(circuit.clone())
            .build()
            .unwrap();
        for _ in 0..2 {
            let response = client.get(server.uri()).send().await.unwrap();
            assert_eq!(response.status(), 500);
            assert_eq!(response.text().await.unwrap(), GO_500);
        }
        assert_eq!(
            server.received_requests().await.unwrap().len(),
            2,
            "each GET sent once, the second not refused"
        );
        assert!(!circuit.is_open(&server.uri().parse().unwrap()));
    }
}

/// A user behind a proxy that answers upstream failures with a bare 500 opts in with a rule of
/// their own; the response is still handed back as it is once the rule gives up.
#[tokio::test]
async fn a_500_is_retried_only_by_a_rule_the_user_wrote() {
    let server = origin(500, GO_500, &[]).await;
    let client = Client::builder()
        .retry(
            RetryPolicy::default()
                .backoff(ExponentialBackoff::new(Duration::ZERO))
                .retry_on_status([500]),
        )
        .build()
        .unwrap();
    let response = client.get(server.uri()).send().await.unwrap();
    assert_eq!(response.status(), 500);
    assert_eq!(server.received_requests().await.unwrap().len(), 3);
}

/// On a gateway status the same text still refines the cause: a 502 quoting a refused connect
/// is a 502.3.
#[tokio::test]
async fn on_a_gateway_status_the_page_still_names_the_cause() {
    let server = origin(502, GO_500, &[]).await;
    let client = Client::builder()
        .retry(RetryPolicy::never())
        .build()
        .unwrap();
    let err = client.get(server.uri()).send().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectFailed, "{err}");
}

/// Issue 26, item 3, through `?`: a status error keeps its status and cause.
#[tokio::test]
async fn reqwest_errors_converted_with_question_mark_keep_what_they_are() {
    use reqwest_resilience::GatewayError;
    let missing = origin(404, "{}", &[]).await;
    let err = reqwest::get(missing.uri())
        .await
        .unwrap()
        .error_for_status()
        .unwrap_err();
    let err = GatewayError::from(err);
    assert_eq!(err.status(), 404, "{err}");
    assert_eq!(err.kind(), ErrorKind::Other);
    assert!(!err.is_retryable());

    let gateway = origin(502, "", &[]).await;
    let err = reqwest::get(gateway.uri())
        .await
        .unwrap()
        .error_for_status()
        .unwrap_err();
    let err = GatewayError::from(err);
    assert_eq!(
        err.kind(),
        ErrorKind::BadGateway,
        "a 5xx status error is judged by its status"
    );
}

/// The same, for a complete body that does not parse: a decode failure, not a transport one
/// (reqwest's `json` needs the `json` feature).
#[cfg(feature = "json")]
#[tokio::test]
async fn a_reqwest_decode_error_converted_with_question_mark_stays_a_decode_failure() {
    use reqwest_resilience::GatewayError;
    let garbled = origin(200, "{\"orders\": [1, 2,", &[]).await;
    let err = reqwest::get(garbled.uri())
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap_err();
    let err = GatewayError::from(err);
    assert_eq!(err.kind(), ErrorKind::Decode, "{err}");
    assert!(!err.is_retryable(), "the same body would come again");
}
