//! Starts local servers that fail the ways gateways fail, calls each through the resilient
//! client, and prints what the crate made of it.
//!
//! Run with `cargo run --example demo`.

use reqwest_resilience::{Client, GatewayError};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const IIS_PAGE: &str = "<!DOCTYPE html><html><head><title>IIS 10.0 Detailed Error - 502.3 - Bad Gateway</title></head><body><h3>HTTP Error 502.3 - Bad Gateway</h3><h4>A connection with the server could not be established</h4><table><tr><th>Error Code</th><td>0x80072efd</td></tr></table></body></html>";

#[derive(Clone, Copy)]
enum Behaviour {
    IisPage,
    Reset,
    Hang,
    Healthy,
}

/// A loopback server on an ephemeral port that treats every connection the same way.
async fn start(behaviour: Behaviour) -> std::io::Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/orders", listener.local_addr()?);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf).await;
                match behaviour {
                    Behaviour::IisPage => {
                        let head = format!(
                            "HTTP/1.1 502 Bad Gateway\r\nServer: Microsoft-IIS/10.0\r\nX-Powered-By: ARR/3.0\r\nContent-Type: text/html\r\nContent-Length: {}\r\n\r\n",
                            IIS_PAGE.len()
                        );
                        let _ = stream.write_all(head.as_bytes()).await;
                        let _ = stream.write_all(IIS_PAGE.as_bytes()).await;
                    }
                    Behaviour::Reset => {
                        let _ = stream.set_zero_linger();
                    }
                    Behaviour::Hang => std::future::pending::<()>().await,
                    Behaviour::Healthy => {
                        let _ = stream
                            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                            .await;
                    }
                }
            });
        }
    });
    Ok(url)
}

async fn refused() -> std::io::Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/orders", listener.local_addr()?);
    drop(listener);
    Ok(url)
}

fn describe(err: &GatewayError) -> String {
    let substatus = err
        .substatus()
        .map_or_else(|| "-".to_owned(), |s| s.code().to_owned());
    format!(
        "{:<20} substatus {:<6} status {}  {}",
        format!("{:?}", err.kind()),
        substatus,
        err.status().as_u16(),
        err
    )
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let client = Client::builder()
        .reqwest_builder(reqwest::Client::builder().timeout(Duration::from_secs(1)))
        .build()?;

    let cases = [
        (
            "IIS/ARR answers a 502.3 page",
            start(Behaviour::IisPage).await?,
        ),
        ("nothing listens (refused)", refused().await?),
        (
            "server resets the connection",
            start(Behaviour::Reset).await?,
        ),
        (
            "server never answers (1 s timeout)",
            start(Behaviour::Hang).await?,
        ),
        ("healthy server", start(Behaviour::Healthy).await?),
    ];

    println!("reqwest-resilience demo: one request to each local server\n");
    for (what, url) in cases {
        println!("== {what}: GET {url}");
        match client.get(&url).send().await {
            Ok(response) => println!("   ok: {}", response.status()),
            Err(err) => println!("   {}", describe(&err)),
        }
    }
    Ok(())
}
