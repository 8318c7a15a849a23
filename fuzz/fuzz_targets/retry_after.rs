//! The `Retry-After` / rate-limit hint parser on arbitrary header values.
#![no_main]

use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use reqwest_resilience::retry::retry_after;
use std::time::{Duration, UNIX_EPOCH};

fuzz_target!(|data: &[u8]| {
    let Ok(value) = HeaderValue::from_bytes(data) else { return };
    let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    for name in ["retry-after", "ratelimit-reset", "x-ratelimit-reset"] {
        let mut headers = HeaderMap::new();
        headers.insert(name, value.clone());
        let _ = retry_after(&headers, now);
    }
});
