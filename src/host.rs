//! A host's key: the identity (scheme, host, port) the circuit, the retry budget and the hedge
//! delay keep their per-host state under.

use std::hash::{Hash, Hasher};

/// A 64-bit hash of `url`'s scheme, host and port (no copy of the host is made on the healthy
/// path; two hosts would share state only on a 64-bit collision).
pub(crate) fn key(url: &reqwest::Url) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    url.scheme().hash(&mut hasher);
    url.host_str().unwrap_or("").hash(&mut hasher);
    url.port_or_known_default().hash(&mut hasher);
    hasher.finish()
}
