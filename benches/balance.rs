//! Primary-first failover against P2C balancing, and tower's `p2c` over three reqwest clients:
//! three loopback servers, one of which answers in 200 ms.
//!
//! Scenario B1: server 0 (the primary) is slow for the whole run: 2,000 GETs at concurrency 32.
//! Scenario B2: it is slow for 1 s, then fast for 4 s, GETs at concurrency 32 all along: does
//! traffic come back to it? Printed: throughput, p50 / p99 latency, and the share of requests
//! server 0 answered (in B2, over the last 2 s). The balancers' decay is 1 s here (10 s by
//! default), so that B2 shows the return within the run.
//!
//! `cargo bench --bench balance`

use reqwest_resilience::Client;
use reqwest_resilience::fallback::{Balance, FallbackLayer};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower::{Service, ServiceExt};

const REQUESTS: usize = 2_000;
const CONCURRENCY: usize = 32;
const SLOW: Duration = Duration::from_millis(200);

/// A keep-alive server answering every request with a 2-byte 200, after `SLOW` while `slow`.
struct Server {
    url: String,
    slow: Arc<AtomicBool>,
    served: Arc<AtomicU64>,
}

async fn server(slow: bool) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let slow = Arc::new(AtomicBool::new(slow));
    let served = Arc::new(AtomicU64::new(0));
    let (s, n) = (slow.clone(), served.clone());
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let (slow, served) = (s.clone(), n.clone());
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                while matches!(stream.read(&mut buf).await, Ok(k) if k > 0) {
                    if slow.load(Ordering::Relaxed) {
                        tokio::time::sleep(SLOW).await;
                    }
                    served.fetch_add(1, Ordering::Relaxed);
                    let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                    if stream.write_all(answer).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    Server { url, slow, served }
}

type Send =
    Arc<dyn Fn(usize) -> futures_util::future::BoxFuture<'static, ()> + std::marker::Send + Sync>;

/// The three clients, each a function sending request `i`.
fn crate_client(servers: &[Server], balance: Balance) -> Send {
    let urls: Vec<String> = servers.iter().map(|s| s.url.clone()).collect();
    let client = Client::builder()
        .reqwest_client(reqwest::Client::builder().no_proxy().build().unwrap())
        .fallback(
            FallbackLayer::builder(urls)
                .balance(balance)
                .balance_decay(Duration::from_secs(1)),
        )
        .build()
        .unwrap();
    Arc::new(move |i| {
        let client = client.clone();
        Box::pin(async move {
            let response = client.get(format!("/items/{i}")).send().await.unwrap();
            response.bytes().await.unwrap();
        })
    })
}

fn tower_p2c(servers: &[Server]) -> Send {
    use tower::load::{CompleteOnResponse, PeakEwmaDiscover};
    let reqwest = reqwest::Client::builder().no_proxy().build().unwrap();
    let services: Vec<_> = servers
        .iter()
        .map(|s| {
            let (reqwest, base) = (reqwest.clone(), s.url.clone());
            tower::service_fn(move |i: usize| {
                let (reqwest, url) = (reqwest.clone(), format!("{base}/items/{i}"));
                async move {
                    let response = reqwest.get(url).send().await?;
                    response.bytes().await
                }
            })
        })
        .collect();
    let discover = PeakEwmaDiscover::new(
        tower::discover::ServiceList::new(services),
        Duration::from_millis(30),
        Duration::from_secs(1),
        CompleteOnResponse::default(),
    );
    let balance = tower::balance::p2c::Balance::new(discover);
    let service = tower::buffer::Buffer::new(balance, 1024);
    Arc::new(move |i| {
        let mut service = service.clone();
        Box::pin(async move {
            service.ready().await.unwrap().call(i).await.unwrap();
        })
    })
}

struct Run {
    per_sec: f64,
    p50: Duration,
    p99: Duration,
    slow_share: f64,
}

/// Sends with `CONCURRENCY` workers until `REQUESTS` were sent (`recover` false), or for 5 s
/// (`recover` true: server 0 turns fast after 1 s; its share is measured over the last 2 s).
async fn run(send: Send, servers: &[Server], recover: bool) -> Run {
    let started = Instant::now();
    let next = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let lat = Arc::new(std::sync::Mutex::new(Vec::with_capacity(REQUESTS)));
    let mut workers = Vec::new();
    for _ in 0..CONCURRENCY {
        let (send, next, lat, stop) = (send.clone(), next.clone(), lat.clone(), stop.clone());
        workers.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                if stop.load(Ordering::Relaxed) || (!recover && i >= REQUESTS) {
                    return;
                }
                let t = Instant::now();
                send(i).await;
                lat.lock().unwrap().push(t.elapsed());
            }
        }));
    }
    let counts = |servers: &[Server]| -> (u64, u64) {
        let slow = servers[0].served.load(Ordering::Relaxed);
        (
            slow,
            servers
                .iter()
                .map(|s| s.served.load(Ordering::Relaxed))
                .sum(),
        )
    };
    let mut from = (0, 0);
    if recover {
        tokio::time::sleep(Duration::from_secs(1)).await;
        servers[0].slow.store(false, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_secs(2)).await;
        from = counts(servers);
        tokio::time::sleep(Duration::from_secs(2)).await;
        stop.store(true, Ordering::Relaxed);
    }
    for w in workers {
        w.await.unwrap();
    }
    let elapsed = started.elapsed();
    let mut latencies = std::mem::take(&mut *lat.lock().unwrap());
    latencies.sort();
    let (slow, total) = counts(servers);
    Run {
        per_sec: latencies.len() as f64 / elapsed.as_secs_f64(),
        p50: latencies[latencies.len() / 2],
        p99: latencies[latencies.len() * 99 / 100],
        slow_share: (slow - from.0) as f64 / (total - from.1).max(1) as f64,
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    println!("| scenario | client | req/s | p50 ms | p99 ms | share answered by server 0 |");
    println!("|---|---|---|---|---|---|");
    for (scenario, recover) in [
        ("B1 primary slow", false),
        ("B2 primary recovers (last 2 s)", true),
    ] {
        for client in ["primary-first", "P2C peak-EWMA", "tower p2c PeakEwma"] {
            let servers = vec![server(true).await, server(false).await, server(false).await];
            let send = match client {
                "primary-first" => crate_client(&servers, Balance::PrimaryFirst),
                "P2C peak-EWMA" => crate_client(&servers, Balance::P2cPeakEwma),
                _ => tower_p2c(&servers),
            };
            let r = run(send, &servers, recover).await;
            println!(
                "| {scenario} | {client} | {:.0} | {:.1} | {:.1} | {:.1}% |",
                r.per_sec,
                r.p50.as_secs_f64() * 1e3,
                r.p99.as_secs_f64() * 1e3,
                r.slow_share * 100.0
            );
        }
    }
}
