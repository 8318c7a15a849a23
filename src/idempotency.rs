//! The idempotency rule: which requests may be sent again. One rule, used by the retry layer
//! (another attempt) and the fallback layer (another server).
//!
//! A request may be sent again when sending it twice cannot do harm: its method is idempotent
//! (RFC 9110 §9.2.2: GET, HEAD, OPTIONS, TRACE, PUT, DELETE, and QUERY where `http` knows it),
//! it carries an `Idempotency-Key` the server deduplicates by, or the caller declared it safe
//! ([`RequestBuilder::idempotent`](crate::RequestBuilder::idempotent)). Any other request is
//! sent again only when the failure proves it never reached the origin
//! ([`GatewayError::is_request_unsent`](crate::GatewayError::is_request_unsent)), which only
//! evidence an origin's body cannot forge establishes.

use http::{HeaderName, Method};

const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");

/// Whether `method` with `headers` may be sent again whatever the failure (see the module docs).
pub(crate) fn may_resend(method: &Method, headers: &http::HeaderMap, opted_in: bool) -> bool {
    opted_in || method.is_idempotent() || headers.contains_key(&IDEMPOTENCY_KEY)
}
