//! Drives the retry schedule with the `backoff` crate's `ExponentialBackoff`.
//!
//! Run with `cargo run --example with_backoff_crate --features backoff`. The `backoff` crate is
//! unmaintained (RUSTSEC-2025-0012): the crate's own `ExponentialBackoff` is the default for that
//! reason; this is for code bases that already configure `backoff`.

use reqwest_resilience::Client;
use reqwest_resilience::retry::{BackoffCrate, RetryPolicy};
use std::time::Duration;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let schedule = backoff::ExponentialBackoff {
        initial_interval: Duration::from_millis(50),
        multiplier: 2.0,
        max_interval: Duration::from_secs(2),
        max_elapsed_time: Some(Duration::from_secs(10)),
        ..backoff::ExponentialBackoff::default()
    };
    let client = Client::builder()
        .retry(RetryPolicy::default().backoff(BackoffCrate(schedule)))
        .build()?;

    // Nothing listens on port 9 of loopback: every attempt is refused, and retried by the schedule.
    match client.get("http://127.0.0.1:9/").send().await {
        Ok(response) => println!("unexpected answer: {}", response.status()),
        Err(err) => println!("{err}"),
    }
    Ok(())
}
