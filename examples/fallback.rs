//! Three local servers; the primary dies, requests fail over, the primary is ejected, comes
//! back, is probed and takes the traffic again.
//!
//! Run with `cargo run --example fallback`.

use reqwest_resilience::Client;
use reqwest_resilience::fallback::FallbackLayer;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Serves `200 <name>` on `addr` until the task is aborted (then the port refuses).
async fn serve(addr: SocketAddr, name: &'static str) -> std::io::Result<JoinHandle<()>> {
    let listener = TcpListener::bind(addr).await?;
    Ok(tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 2048];
                let _ = stream.read(&mut buf).await;
                let reply = format!(
                    "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{name}",
                    name.len()
                );
                let _ = stream.write_all(reply.as_bytes()).await;
            });
        }
    }))
}

async fn free_addr() -> std::io::Result<SocketAddr> {
    TcpListener::bind("127.0.0.1:0").await?.local_addr()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "reqwest_resilience=info".into()),
        )
        .with_target(false)
        .without_time()
        .init();

    let (a, b, c) = (free_addr().await?, free_addr().await?, free_addr().await?);
    let primary = serve(a, "primary").await?;
    let _backup1 = serve(b, "backup-1").await?;
    let _backup2 = serve(c, "backup-2").await?;

    let client = Client::builder()
        .fallback(
            FallbackLayer::builder([
                format!("http://{a}"),
                format!("http://{b}"),
                format!("http://{c}"),
            ])
            .consecutive_failures(3)
            .base_ejection(Duration::from_millis(500)),
        )
        .build()?;
    let url = format!("http://{a}/orders?page=1");

    let call = |label: &'static str| {
        let (client, url) = (client.clone(), url.clone());
        async move {
            match client.get(&url).send().await {
                Ok(r) => println!(
                    "{label:<28} answered by {}",
                    r.text().await.unwrap_or_default()
                ),
                Err(e) => println!("{label:<28} failed: {e}"),
            }
        }
    };

    call("primary healthy").await;
    primary.abort();
    tokio::time::sleep(Duration::from_millis(50)).await;
    println!("-- the primary is down (its port now refuses connections)");
    for _ in 0..4 {
        call("primary down").await;
    }
    println!("-- the primary comes back; its ejection (500 ms) runs out");
    let _primary = serve(a, "primary").await?;
    tokio::time::sleep(Duration::from_millis(600)).await;
    call("probe after ejection").await;
    call("fail-back").await;
    Ok(())
}
