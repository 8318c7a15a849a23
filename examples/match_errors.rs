//! Matching every `GatewayError` variant, with what a caller typically does about each.
//! Run with `cargo run --example match_errors -- URL`.

use reqwest_resilience::{Client, GatewayError};

fn advice(err: &GatewayError) -> &'static str {
    match err {
        GatewayError::CgiTimeout(_) => {
            "502.1: the server was too slow; try later or raise the timeout"
        }
        GatewayError::PrematureExit(_) => {
            "502.2: the server dropped the connection; it may be restarting"
        }
        GatewayError::ForwarderConnection(_) => {
            "502.3: could not connect; is the server up, is the port right?"
        }
        GatewayError::NoServer(_) => "502.4: no server to talk to (DNS, or no healthy server left)",
        GatewayError::WebSocket(_) => "502.5: a WebSocket upgrade failed",
        GatewayError::ForwardedRequest(_) => "502.6: sending the request failed on the way",
        GatewayError::ExecuteRequest(_) => "502.7: the answer was not valid HTTP",
        GatewayError::BadGateway(_) => "502: a gateway failed and did not say why",
        GatewayError::ServiceUnavailable(_) => "503: the service is unavailable for now",
        GatewayError::DeadlineExceeded(_) => "the whole request ran out of time",
        GatewayError::InvalidRequest(_) => {
            "the request itself is invalid: fix the code, do not retry"
        }
        GatewayError::Other(_) => "a failure with no gateway meaning (e.g. a redirect loop)",
        // `GatewayError` is non-exhaustive: new causes may be added.
        _ => "an error this program does not know yet",
    }
}

#[tokio::main]
async fn main() {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "http://127.0.0.1:9/".into());
    let client = Client::new();
    match client.get(&url).send().await {
        Ok(response) => println!("ok: {}", response.status()),
        Err(err) => {
            println!("{err}");
            println!("what to do: {}", advice(&err));
            if let Some(substatus) = err.substatus() {
                println!(
                    "substatus {} ({})",
                    substatus.code(),
                    substatus.description()
                );
            }
            if let Some(response) = err.response() {
                println!("the upstream answered {}", response.status());
            }
            println!(
                "attempts: {}, retryable: {}",
                err.attempts(),
                err.is_retryable()
            );
        }
    }
}
