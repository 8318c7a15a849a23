//! Building the stack yourself with tower's `ServiceBuilder`, adding one of tower's own layers
//! (a concurrency limit) between the crate's layers. Run with `cargo run --example custom_stack`.

use reqwest_resilience::fallback::FallbackLayer;
use reqwest_resilience::retry::{RetryLayer, RetryPolicy};
use reqwest_resilience::timeout::{AttemptTimeoutLayer, DeadlineLayer};
use reqwest_resilience::{GatewayError, Transport};
use std::time::Duration;
use tower::limit::ConcurrencyLimitLayer;
use tower::{ServiceBuilder, ServiceExt};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // A local server that answers 200.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                    .await;
            });
        }
    });

    // Outermost first: the same order as `Client::builder()`, plus at most 8 attempts in flight.
    let service = ServiceBuilder::new()
        .layer(DeadlineLayer::new(Duration::from_secs(10)))
        .layer(RetryLayer::new(RetryPolicy::default()))
        .layer(FallbackLayer::new([
            format!("http://{addr}"),
            "http://127.0.0.1:9".to_owned(),
        ])?)
        .layer(ConcurrencyLimitLayer::new(8))
        .layer(AttemptTimeoutLayer::new(Duration::from_secs(2)))
        .service(Transport::new(reqwest::Client::new()));

    let request = reqwest::Request::new(
        reqwest::Method::GET,
        format!("http://{addr}/hello").parse()?,
    );
    let response: Result<reqwest::Response, GatewayError> = service.oneshot(request.into()).await;
    let response = response?;
    println!("{} {}", response.status(), response.text().await?);
    Ok(())
}
