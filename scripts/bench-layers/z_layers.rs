//! Z0..Z3: the crate's `Client` with layers turned off, to count each layer's share of E
//! (the default client) in `ir.sh`: a harness client, built by `scripts/ir-layers.sh` into a
//! copy of the peer harness (../shared/bench-anchors), not by this crate.
use std::sync::Arc;
use std::time::Duration;

use crate::harness::{BenchClient, BoxFut};
use reqwest_resilience::retry::{ExponentialBackoff, RetryPolicy};

pub struct Z(reqwest_resilience::Client);
impl BenchClient for Z {
    fn get<'a>(&'a self, url: &'a str) -> BoxFut<'a> {
        Box::pin(async move {
            match self.0.get(url).send().await {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    resp.bytes().await.map_err(|e| e.to_string())?;
                    Ok(status)
                }
                Err(e) => Ok(e.status().as_u16()),
            }
        })
    }
}

fn base() -> reqwest_resilience::ClientBuilder {
    let reqwest = reqwest::Client::builder().no_proxy().build().expect("reqwest");
    reqwest_resilience::Client::builder().reqwest_client(reqwest)
}

fn policy() -> RetryPolicy {
    RetryPolicy::default()
        .max_attempts(super::MAX_RETRIES + 1)
        .backoff(ExponentialBackoff::new(Duration::ZERO))
}

/// No retry, no attempt timeout, no deadline.
pub fn make0() -> Arc<dyn BenchClient> {
    Arc::new(Z(base().no_retry().no_attempt_timeout().no_deadline().build().expect("client")))
}
/// The default deadline only.
pub fn make1() -> Arc<dyn BenchClient> {
    Arc::new(Z(base().no_retry().no_attempt_timeout().build().expect("client")))
}
/// The deadline and the attempt timeout, no retry.
pub fn make2() -> Arc<dyn BenchClient> {
    Arc::new(Z(base().no_retry().attempt_timeout(super::TIMEOUT).build().expect("client")))
}
/// The retry loop and the deadline, no attempt timeout.
pub fn make3() -> Arc<dyn BenchClient> {
    Arc::new(Z(base().retry(policy()).no_attempt_timeout().build().expect("client")))
}

/// ZM: not this crate. The least a client with the default client's features must do for a
/// healthy request, written by hand over reqwest as one future: the logical request's future
/// boxed once (a client's `send` returns one type whatever its stack), a deadline set when it
/// starts, a copy of the request kept for a retry, one timer for the attempt (cut to the
/// deadline), the status judged, and the body read within the deadline (its timer made only
/// when the body is not there yet). No layers, no tracker shared between copies, no spans, no
/// budget: the floor a rebuilt request path could start from, to weigh the 1.04x goal against
/// (BENCHMARKS.md, "fifteenth session").
pub struct Minimal(reqwest::Client);

/// What the minimal client's request future hands back: the response and its deadline.
struct MinimalResponse {
    response: reqwest::Response,
    deadline: tokio::time::Instant,
}

type MinimalPending<'a> =
    std::pin::Pin<Box<dyn Future<Output = Result<MinimalResponse, String>> + Send + 'a>>;

impl Minimal {
    fn send<'a>(&'a self, url: &'a str) -> MinimalPending<'a> {
        Box::pin(async move {
            let request = self.0.get(url).build().map_err(|e| e.to_string())?;
            let started = tokio::time::Instant::now();
            let deadline = started + Duration::from_secs(30);
            // The copy as this crate makes one (`reqwest::Request::try_clone` would also make
            // and hash an extension map).
            let mut _spare = reqwest::Request::new(request.method().clone(), request.url().clone());
            if !request.headers().is_empty() {
                *_spare.headers_mut() = request.headers().clone();
            }
            let attempt_ends = deadline.min(started + super::TIMEOUT);
            match tokio::time::timeout_at(attempt_ends, self.0.execute(request)).await {
                Ok(Ok(response)) if !response.status().is_server_error() => {
                    Ok(MinimalResponse { response, deadline })
                }
                // A retry would follow here, with `_spare`: the healthy path never comes.
                Ok(Ok(response)) => Err(format!("status {}", response.status())),
                Ok(Err(err)) => Err(err.to_string()),
                Err(_) => Err("timed out".into()),
            }
        })
    }
}

impl BenchClient for Minimal {
    fn get<'a>(&'a self, url: &'a str) -> BoxFut<'a> {
        Box::pin(async move {
            let MinimalResponse { response, deadline } = self.send(url).await?;
            let status = response.status().as_u16();
            // The body first, its timer made only if it is not there yet (as this crate's
            // `Response` does).
            let mut read = std::pin::pin!(response.bytes());
            let first =
                std::future::poll_fn(|cx| std::task::Poll::Ready(read.as_mut().poll(cx))).await;
            match first {
                std::task::Poll::Ready(body) => body.map_err(|e| e.to_string())?,
                std::task::Poll::Pending => tokio::time::timeout_at(deadline, read)
                    .await
                    .map_err(|_| "deadline".to_string())?
                    .map_err(|e| e.to_string())?,
            };
            Ok(status)
        })
    }
}

/// The minimal client (ZM).
pub fn make_minimal() -> Arc<dyn BenchClient> {
    Arc::new(Minimal(reqwest::Client::builder().no_proxy().build().expect("reqwest")))
}
