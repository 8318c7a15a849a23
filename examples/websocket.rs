//! A resilient WebSocket: the handshake goes through retries and fallback servers, and when an
//! open socket drops, the application reconnects, paced by the crate's backoff schedule.
//!
//! Run with `cargo run --example websocket --features websocket`.

use futures_util::{SinkExt, StreamExt};
use reqwest_resilience::Client;
use reqwest_resilience::retry::{Backoff, ExponentialBackoff};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

/// A local echo server that hangs up after two messages per connection.
async fn flaky_echo() -> std::io::Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("ws://{}/feed", listener.local_addr()?);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
                    return;
                };
                for _ in 0..2 {
                    match ws.next().await {
                        Some(Ok(msg)) if msg.is_text() => {
                            let _ = ws.send(msg).await;
                        }
                        _ => return,
                    }
                }
                // Hang up without a close frame, as a crashing server would.
            });
        }
    });
    Ok(url)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = flaky_echo().await?;
    let client = Client::new();
    let schedule = ExponentialBackoff::new(Duration::from_millis(100)).cap(Duration::from_secs(2));

    let mut sent = 0;
    let mut reconnects = 0u32;
    let mut previous = Duration::ZERO;
    while sent < 5 {
        // The handshake itself is retried by the client's policy; this loop handles a socket
        // that dies after it was handed over, which the crate never reconnects by itself.
        let (mut socket, _) = match client.websocket(&url).connect().await {
            Ok(open) => open,
            Err(err) => {
                println!("handshake failed: {err}\n  {}", err.diagnosis());
                return Ok(());
            }
        };
        println!("connected to {url}");
        loop {
            if sent == 5 {
                break;
            }
            let text = format!("message {sent}");
            if socket.send(Message::text(text.clone())).await.is_err() {
                break;
            }
            match socket.next().await {
                Some(Ok(reply)) => {
                    println!(
                        "  sent {text:?}, echoed {:?}",
                        reply.into_text().unwrap_or_default().as_str()
                    );
                    sent += 1;
                    reconnects = 0;
                }
                _ => break,
            }
        }
        if sent < 5 {
            reconnects += 1;
            let pause = schedule
                .delay(reconnects, previous)
                .unwrap_or(Duration::from_secs(1));
            previous = pause;
            println!("socket dropped; reconnecting in {} ms", pause.as_millis());
            tokio::time::sleep(pause).await;
        }
    }
    println!("done: 5 messages echoed");
    Ok(())
}
