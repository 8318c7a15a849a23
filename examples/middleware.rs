//! The crate inside a reqwest-middleware chain, beside reqwest-tracing.
//!
//! Order matters: a middleware *before* `ResilienceMiddleware` runs once per logical request,
//! one *after* it once per attempt. Here `TracingMiddleware` comes first (one span per logical
//! request, however many attempts it took) and a small counting middleware comes after (it sees
//! every attempt). Put `TracingMiddleware` after `ResilienceMiddleware` instead for a span per
//! attempt.
//!
//! A local server answers the first attempt of each request with a gateway's 502 and the retry
//! with 200. Run with `cargo run --example middleware --features middleware`.

use reqwest_middleware::{ClientBuilder, Middleware, Next};
use reqwest_resilience::middleware::{ResilienceMiddleware, gateway_error};
use reqwest_resilience::retry::{ExponentialBackoff, RetryPolicy};
use reqwest_tracing::TracingMiddleware;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Counts the requests that reach it: placed after the resilience middleware, every attempt.
struct CountAttempts(Arc<AtomicU32>);

#[async_trait::async_trait]
impl Middleware for CountAttempts {
    async fn handle(
        &self,
        req: reqwest::Request,
        extensions: &mut http::Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        let n = self.0.fetch_add(1, Ordering::SeqCst) + 1;
        println!(
            "  attempt on the wire #{n}: {} {}",
            req.method(),
            req.url().path()
        );
        next.run(req, extensions).await
    }
}

/// Every odd request gets nginx's 502, every even one a 200.
async fn flaky_server() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(AtomicU32::new(0));
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                while matches!(stream.read(&mut buf).await, Ok(n) if n > 0) {
                    let answer: &[u8] = if seen.fetch_add(1, Ordering::SeqCst) % 2 == 0 {
                        b"HTTP/1.1 502 Bad Gateway\r\nserver: nginx\r\ncontent-length: 0\r\n\r\n"
                    } else {
                        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
                    };
                    if stream.write_all(answer).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    format!("http://{addr}")
}

#[tokio::main]
async fn main() {
    // Spans closing are printed: one "HTTP request" span per logical request (reqwest-tracing),
    // with this crate's "request" and "attempt" spans inside it.
    tracing_subscriber::fmt()
        .with_env_filter("info")
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
        .init();
    let base = flaky_server().await;
    let attempts = Arc::new(AtomicU32::new(0));
    let client = ClientBuilder::new(reqwest::Client::new())
        // Before: once per logical request.
        .with(TracingMiddleware::default())
        .with(
            ResilienceMiddleware::new()
                .retry(
                    RetryPolicy::default()
                        .max_attempts(3)
                        .backoff(ExponentialBackoff::new(Duration::from_millis(10))),
                )
                .deadline(Duration::from_secs(5)),
        )
        // After: once per attempt.
        .with(CountAttempts(attempts.clone()))
        .build();
    for path in ["/orders/1", "/orders/2"] {
        println!("GET {path}");
        match client.get(format!("{base}{path}")).send().await {
            Ok(response) => println!(
                "  {} after {} attempt(s)",
                response.status(),
                reqwest_resilience::attempts(&response)
            ),
            Err(err) => match gateway_error(&err) {
                Some(gateway) => println!("  {gateway}\n  {}", gateway.diagnosis()),
                None => println!("  {err}"),
            },
        }
    }
    println!(
        "2 logical requests, {} attempts on the wire",
        attempts.load(Ordering::SeqCst)
    );
}
