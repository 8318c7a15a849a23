#[tokio::main]
async fn main() {
    let c = reqwest_resilience::Client::new();
    let _ = c.get("http://127.0.0.1:9/").send();
    let c = reqwest_resilience::Client::builder()
        .circuit_breaker(reqwest_resilience::circuit::CircuitLayer::new())
        .build()
        .unwrap();
    let _ = c.get("http://127.0.0.1:9/").send();
}
