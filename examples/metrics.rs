//! The metrics one run records, in Prometheus' text format: a healthy server, a server that
//! fails once per request, and a dead port, through a client with retries, hedging and a
//! circuit.
//!
//! The crate records through the [`metrics`](https://docs.rs/metrics) facade, **version 0.24**:
//! install any exporter built on that version (here `metrics-exporter-prometheus` 0.18, without
//! its HTTP listener: the text is rendered and printed). An exporter built on another version
//! of the facade installs a recorder this crate cannot see: nothing is recorded, silently. Check
//! with `cargo tree -i metrics` that one `metrics` 0.24 is in your tree.
//!
//! `cargo run --example metrics --features metrics`

use metrics_exporter_prometheus::PrometheusBuilder;
use reqwest_resilience::Client;
use reqwest_resilience::circuit::CircuitLayer;
use reqwest_resilience::retry::{ExponentialBackoff, RetryPolicy};
use std::sync::{Arc, Mutex};
use std::time::Duration;

async fn server(flaky: bool) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(std::collections::HashSet::new()));
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let Ok(n) = stream.read(&mut buf).await else {
                    return;
                };
                let head = String::from_utf8_lossy(&buf[..n]).to_string();
                let path = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
                let first = seen.lock().unwrap().insert(path);
                let answer: &[u8] = if flaky && first {
                    b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                } else {
                    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
                };
                let _ = stream.write_all(answer).await;
            });
        }
    });
    url
}

#[tokio::main]
async fn main() {
    // In a service, `PrometheusBuilder::new().install()` (with its `http-listener` feature)
    // serves the same text on `/metrics`.
    let prometheus = PrometheusBuilder::new()
        .install_recorder()
        .expect("no other recorder is installed");
    let (healthy, flaky) = (server(false).await, server(true).await);
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let client = Client::builder()
        .retry(
            RetryPolicy::default()
                .backoff(ExponentialBackoff::new(Duration::from_millis(5)))
                .hedge_after(Duration::from_millis(200)),
        )
        .circuit_breaker(CircuitLayer::new().consecutive_failures(3))
        .build()
        .unwrap();
    for i in 0..5 {
        let _ = client.get(format!("{healthy}/{i}")).send().await;
        let _ = client.get(format!("{flaky}/{i}")).send().await;
        let _ = client.get(format!("{dead}/{i}")).send().await;
    }
    let text = prometheus.render();
    // The histograms' buckets and quantiles make a long page: print the rest whole, and of the
    // durations their count and sum.
    for line in text.lines() {
        let is_detail = line.starts_with("http_client_request_duration")
            && !(line.contains("_count") || line.contains("_sum"));
        if !is_detail {
            println!("{line}");
        }
    }
}
