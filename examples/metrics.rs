//! Prints the metrics one run records: a healthy server, a server that fails once per
//! request, and a dead port, through a client with retries, hedging and a circuit.
//!
//! `cargo run --example metrics --features metrics`

use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use reqwest_resilience::Client;
use reqwest_resilience::circuit::CircuitLayer;
use reqwest_resilience::retry::{ExponentialBackoff, RetryPolicy};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A recorder that keeps, for every metric and label set, a count and a sum.
#[derive(Default, Clone)]
struct Printing(Arc<Mutex<BTreeMap<String, (u64, f64)>>>);

struct Handle(Printing, String);

impl Printing {
    fn add(&self, key: &str, value: f64, set: bool) {
        let mut all = self.0.lock().unwrap();
        let entry = all.entry(key.to_owned()).or_default();
        entry.0 += 1;
        entry.1 = if set { value } else { entry.1 + value };
    }
}

impl metrics::CounterFn for Handle {
    fn increment(&self, value: u64) {
        self.0.add(&self.1, value as f64, false);
    }
    fn absolute(&self, value: u64) {
        self.0.add(&self.1, value as f64, true);
    }
}

impl metrics::GaugeFn for Handle {
    fn increment(&self, value: f64) {
        self.0.add(&self.1, value, false);
    }
    fn decrement(&self, value: f64) {
        self.0.add(&self.1, -value, false);
    }
    fn set(&self, value: f64) {
        self.0.add(&self.1, value, true);
    }
}

impl metrics::HistogramFn for Handle {
    fn record(&self, value: f64) {
        self.0.add(&self.1, value, false);
    }
}

fn name(key: &Key) -> String {
    let labels: Vec<String> = key
        .labels()
        .map(|l| format!("{}={}", l.key(), l.value()))
        .collect();
    format!("{}{{{}}}", key.name(), labels.join(","))
}

impl Recorder for Printing {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(Arc::new(Handle(self.clone(), name(key))))
    }
    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::from_arc(Arc::new(Handle(self.clone(), name(key))))
    }
    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::from_arc(Arc::new(Handle(self.clone(), name(key))))
    }
}

/// A server answering 200, or 502 to every first attempt of a path when `flaky`.
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
    let recorder = Printing::default();
    metrics::set_global_recorder(recorder.clone()).expect("no other recorder");
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
    println!("metric{{labels}}: records, sum (or last value for a gauge)");
    for (key, (count, sum)) in recorder.0.lock().unwrap().iter() {
        println!("{key}: {count}, {sum:.4}");
    }
}
