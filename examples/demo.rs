//! Starts local servers that fail the ways gateways fail, calls each through the resilient
//! client, and prints what the crate made of it.
//!
//! Run with `cargo run --example demo`.

use reqwest_resilience::{Client, GatewayError};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket};

const IIS_PAGE: &str = "<!DOCTYPE html><html><head><title>IIS 10.0 Detailed Error - 502.3 - Bad Gateway</title></head><body><h3>HTTP Error 502.3 - Bad Gateway</h3><h4>A connection with the server could not be established</h4><table><tr><th>Error Code</th><td>0x80072efd</td></tr></table></body></html>";

#[derive(Clone, Copy)]
enum Behaviour {
    IisPage,
    Reset,
    Hang,
    Healthy,
    /// Answers `503` with `Retry-After: 0` to the first `n` connections, then `200`.
    FlakyFirst(usize),
}

/// A loopback server on an ephemeral port that treats every connection the same way.
async fn start(behaviour: Behaviour) -> std::io::Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/orders", listener.local_addr()?);
    tokio::spawn(async move {
        let mut served = 0usize;
        while let Ok((mut stream, _)) = listener.accept().await {
            served += 1;
            let behaviour = match behaviour {
                Behaviour::FlakyFirst(n) if served > n => Behaviour::Healthy,
                other => other,
            };
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
                    Behaviour::FlakyFirst(_) => {
                        let _ = stream
                            .write_all(b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 0\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
                            .await;
                    }
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

/// A port that refuses connections: bound but never listening, and held by the returned
/// socket so nothing else can take it (nor a connection pick it as its own source port).
async fn refused() -> std::io::Result<(String, TcpSocket)> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(([127, 0, 0, 1], 0).into())?;
    let url = format!("http://{}/orders", socket.local_addr()?);
    Ok((url, socket))
}

fn describe(err: &GatewayError) -> String {
    let substatus = err
        .substatus()
        .map_or_else(|| "-".to_owned(), |s| s.code().to_owned());
    format!(
        "{:<20} substatus {:<6} status {}  {}\n   diagnosis: {}",
        format!("{:?}", err.kind()),
        substatus,
        err.status().as_u16(),
        err,
        err.diagnosis()
    )
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Retries and give-ups are logged at WARN by the crate; show them.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "reqwest_resilience=warn".into()),
        )
        .with_target(false)
        .without_time()
        .init();

    // Part 1: one attempt each, to show the classification alone.
    let single = Client::builder()
        .no_retry()
        .attempt_timeout(Duration::from_secs(1))
        .build()?;
    let (refused_url, _refused_port) = refused().await?;
    let cases = [
        (
            "IIS/ARR answers a 502.3 page",
            start(Behaviour::IisPage).await?,
        ),
        ("nothing listens (refused)", refused_url),
        (
            "server resets the connection",
            start(Behaviour::Reset).await?,
        ),
        (
            "server never answers (1 s attempt timeout)",
            start(Behaviour::Hang).await?,
        ),
        ("healthy server", start(Behaviour::Healthy).await?),
    ];
    println!("== Part 1: what each failure is (one attempt, no retry)\n");
    for (what, url) in cases {
        println!("-- {what}: GET {url}");
        match single.get(&url).send().await {
            Ok(response) => println!("   ok: {}", response.status()),
            Err(err) => println!("   {}", describe(&err)),
        }
    }

    // Part 2: the default stack recovers (deadline -> retry -> attempt timeout -> transport).
    println!("\n== Part 2: the same client with retries, timeouts and a deadline\n");
    let client = Client::builder()
        .attempt_timeout(Duration::from_millis(300))
        .deadline(Duration::from_secs(2))
        .build()?;

    let flaky = start(Behaviour::FlakyFirst(2)).await?;
    println!("-- upstream answers 503 twice, then recovers: GET {flaky}");
    match client.get(&flaky).send().await {
        Ok(response) => println!(
            "   recovered: {} (after the retries logged above)",
            response.status()
        ),
        Err(err) => println!("   {}", describe(&err)),
    }

    let (refused, _held_for_the_post) = refused().await?;
    println!("-- POST to a refused port (never delivered, so safe to resend): POST {refused}");
    match client.post(&refused).body("{}").send().await {
        Ok(response) => println!("   ok: {}", response.status()),
        Err(err) => println!("   {}", describe(&err)),
    }

    let reset = start(Behaviour::Reset).await?;
    println!("-- POST reset after it was sent (may have arrived, so never resent): POST {reset}");
    match client.post(&reset).body("{}").send().await {
        Ok(response) => println!("   ok: {}", response.status()),
        Err(err) => println!("   {}", describe(&err)),
    }

    let hang = start(Behaviour::Hang).await?;
    println!("-- upstream hangs: 300 ms per attempt, 2 s deadline: GET {hang}");
    match client.get(&hang).send().await {
        Ok(response) => println!("   ok: {}", response.status()),
        Err(err) => println!("   {}", describe(&err)),
    }
    Ok(())
}
