//! What was kept of an upstream's failed response.

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use std::fmt;

/// The status, headers and first bytes of the body of an upstream response that was classified
/// as a gateway failure.
///
/// The body prefix is at most [`BODY_PREFIX_LIMIT`](crate::classify::BODY_PREFIX_LIMIT) bytes.
/// `Debug` prints no `Set-Cookie` or authentication header values.
#[derive(Clone)]
pub struct ResponseSnapshot {
    status: StatusCode,
    headers: HeaderMap,
    body_prefix: Bytes,
    body_complete: bool,
}

impl ResponseSnapshot {
    /// A snapshot of a response; `body_complete` says whether `body_prefix` is the whole body.
    pub fn new(
        status: StatusCode,
        headers: HeaderMap,
        body_prefix: Bytes,
        body_complete: bool,
    ) -> Self {
        ResponseSnapshot {
            status,
            headers,
            body_prefix,
            body_complete,
        }
    }

    /// The status the upstream answered.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The headers the upstream answered.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The first bytes of the body, as received.
    pub fn body_prefix(&self) -> &Bytes {
        &self.body_prefix
    }

    /// Whether [`body_prefix`](Self::body_prefix) holds the whole body.
    pub fn is_body_complete(&self) -> bool {
        self.body_complete
    }

    /// The body prefix as text, with invalid UTF-8 replaced.
    pub fn body_text_lossy(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.body_prefix)
    }
}

impl fmt::Debug for ResponseSnapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Headers<'a>(&'a HeaderMap);
        impl fmt::Debug for Headers<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let mut map = f.debug_map();
                for (name, value) in self.0 {
                    if crate::redact::is_sensitive_header(name) {
                        map.entry(name, &"<redacted>");
                    } else {
                        map.entry(name, value);
                    }
                }
                map.finish()
            }
        }
        f.debug_struct("ResponseSnapshot")
            .field("status", &self.status)
            .field("headers", &Headers(&self.headers))
            .field("body_prefix_len", &self.body_prefix.len())
            .field("body_complete", &self.body_complete)
            .finish()
    }
}
