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
