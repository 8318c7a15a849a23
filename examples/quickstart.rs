//! The five lines: a resilient GET with the default stack (deadline, retries with backoff and
//! a budget, attempt timeouts). Run with `cargo run --example quickstart -- URL`.

#[tokio::main]
async fn main() -> Result<(), reqwest_resilience::GatewayError> {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "http://127.0.0.1:9/".into());
    let client = reqwest_resilience::Client::new();
    match client.get(&url).send().await {
        Ok(response) => println!(
            "{} {}",
            response.status(),
            response.text().await.unwrap_or_default()
        ),
        Err(err) => println!("{err}\n{}", err.diagnosis()),
    }
    Ok(())
}
