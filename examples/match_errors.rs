//! Matching every `GatewayError` variant, with what a caller typically does about each.
//!
//! Run with `cargo run --example match_errors` (it asks a local port where nothing listens, then
//! reads a local server's body that is not the JSON it expects), or
//! `cargo run --example match_errors -- URL` to try your own.

use reqwest_resilience::{Client, GatewayError};

fn advice(err: &GatewayError) -> &'static str {
    match err {
        GatewayError::TimedOut(_) => "502.1: no answer in time; try later or raise the timeout",
        GatewayError::ConnectionClosed(_) => {
            "502.2: the connection closed before a complete answer; the server may be restarting"
        }
        GatewayError::ConnectFailed(_) => {
            "502.3: could not connect; is the server up, is the port right?"
        }
        GatewayError::NameNotResolved(_) => {
            "502.4: the host name did not resolve; check it and DNS"
        }
        GatewayError::NoHealthyServer(_) => {
            "502.4: no server left to try; each one's failure is in err.details().causes()"
        }
        GatewayError::WebSocket(_) => "502.5: a WebSocket upgrade failed",
        GatewayError::SendFailed(_) => "502.6: sending the request failed on the way",
        GatewayError::InvalidResponse(_) => "502.7: the answer was not valid HTTP",
        GatewayError::BadGateway(_) => "502: a gateway failed and did not say why",
        GatewayError::ServiceUnavailable(_) => "503: the service is unavailable for now",
        GatewayError::CircuitOpen(_) => {
            "503: the host is known to be down; failed at once, nothing sent; try later"
        }
        GatewayError::DeadlineExceeded(_) => "the whole request ran out of time",
        GatewayError::InvalidRequest(_) => {
            "the request itself is invalid: fix the code, do not retry"
        }
        GatewayError::Decode(_) => "the server answered, but not with what we expected to decode",
        GatewayError::Other(_) => "a failure with no gateway meaning (e.g. a redirect loop)",
        // `GatewayError` is non-exhaustive: a later version may add causes.
        _ => "an error this program does not know yet",
    }
}

fn report(err: &GatewayError) {
    println!("{err}");
    println!("  what to do: {}", advice(err));
    if let Some(substatus) = err.substatus() {
        println!("  IIS substatus {substatus}");
    }
    if let Some(response) = err.response() {
        println!("  the upstream answered {}", response.status());
    }
    println!(
        "  attempts: {}, may be sent again: {}",
        err.attempts(),
        err.is_retryable()
    );
}

/// One error type from `send()` to the last byte: the body's reading fails with the
/// `GatewayError` of what happened.
async fn fetch_json(client: &Client, url: &str) -> Result<serde_json::Value, GatewayError> {
    let response = client.get(url).send().await?;
    response.json().await
}

#[tokio::main]
async fn main() {
    let client = Client::new();
    if let Some(url) = std::env::args().nth(1) {
        match fetch_json(&client, &url).await {
            Ok(value) => println!("ok: {value}"),
            Err(err) => report(&err),
        }
        return;
    }
    // Nothing listens on port 9 of this machine (the discard service is not run).
    if let Err(err) = fetch_json(&client, "http://127.0.0.1:9/orders").await {
        report(&err);
    }
    // A server whose body is not JSON.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut buf = [0u8; 1024];
            let _ = stream.read(&mut buf).await;
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\nnot json!")
                .await;
        }
    });
    if let Err(err) = fetch_json(&client, &format!("http://{addr}/orders")).await {
        report(&err);
    }
}
