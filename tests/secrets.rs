//! No credential, cookie or query token reaches the logs, the spans, or an error's `Display`
//! and `Debug`, whatever fails.

mod support;

use reqwest_resilience::retry::{ExponentialBackoff, RetryPolicy};
use reqwest_resilience::{Client, GatewayError};
use std::time::Duration;
use support::{Fault, FaultServer, refused_url};
use wiremock::{Mock, MockServer, ResponseTemplate};

const SECRETS: [&str; 7] = [
    "SECRET-BEARER-1",
    "SECRET-COOKIE-2",
    "SECRET-PROXY-3",
    "SECRET-PASS-4",
    "SECRET-QUERY-5",
    "SECRET-SETCOOKIE-6",
    // base64("alice:SECRET-PASS-4"), the Authorization header reqwest makes from the URL.
    "YWxpY2U6U0VDUkVULVBBU1MtNA",
];

fn with_secrets(url: &str) -> String {
    let url = url.replacen("http://", "http://alice:SECRET-PASS-4@", 1);
    format!("{url}/path?token=SECRET-QUERY-5&x=1")
}

async fn send(client: &Client, url: &str) -> Option<GatewayError> {
    client
        .get(with_secrets(url))
        .header("authorization", "Bearer SECRET-BEARER-1")
        .header("cookie", "session=SECRET-COOKIE-2")
        .header("proxy-authorization", "Basic SECRET-PROXY-3")
        .send()
        .await
        .err()
}

fn everything_about(err: &GatewayError) -> String {
    let mut text = format!("{err}\n{err:?}\n{err:#?}\n");
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = source {
        text.push_str(&format!("{e}\n{e:?}\n"));
        source = e.source();
    }
    text
}

#[tokio::test]
async fn secrets_never_leak() {
    let capture = support::LogCapture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let iis = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(
            ResponseTemplate::new(502)
                .insert_header("set-cookie", "sid=SECRET-SETCOOKIE-6")
                .set_body_string("<h3>HTTP Error 502.3 - Bad Gateway</h3>"),
        )
        .mount(&iis)
        .await;
    let reset = FaultServer::start(Fault::Reset).await;
    let hang = FaultServer::start(Fault::Hang).await;
    let refused = refused_url("").await;

    let client = Client::builder()
        .retry(RetryPolicy::default().backoff(ExponentialBackoff::new(Duration::from_millis(1))))
        .attempt_timeout(Duration::from_millis(200))
        .deadline(Duration::from_millis(700))
        .build()
        .unwrap();
    let failover = Client::builder()
        .fallback_servers([refused.clone(), iis.uri()])
        .build()
        .unwrap();

    let mut errors = Vec::new();
    for url in [refused.as_str(), &iis.uri(), &reset.url(""), &hang.url("")] {
        errors.extend(send(&client, url).await);
    }
    errors.extend(send(&failover, &refused).await);
    assert_eq!(errors.len(), 5, "every case should fail");

    let mut text: String = errors.iter().map(everything_about).collect();
    text.push_str(&capture.text());
    assert!(text.contains("retrying"), "the logs were not captured");
    for secret in SECRETS {
        assert!(!text.contains(secret), "{secret} leaked:\n{text}");
    }
}

#[test]
fn configuration_debug_output_hides_credentials() {
    let builder = Client::builder()
        .proxy("http://proxyuser:SECRET-PROXY-PASS@127.0.0.1:3128")
        .fallback_servers([
            "http://svc:SECRET-BASE-PASS@10.0.0.1:8080/api",
            "http://10.0.0.2:8080",
        ]);
    let layer = reqwest_resilience::fallback::FallbackLayer::new([
        "http://svc:SECRET-BASE-PASS@10.0.0.1:8080",
    ])
    .unwrap();
    let shown = format!("{builder:?} {layer:?}");
    for secret in ["SECRET-PROXY-PASS", "SECRET-BASE-PASS", "proxyuser", "svc:"] {
        assert!(!shown.contains(secret), "{secret} leaked: {shown}");
    }
    assert!(
        shown.contains("127.0.0.1:3128") && shown.contains("10.0.0.1:8080"),
        "{shown}"
    );
}
