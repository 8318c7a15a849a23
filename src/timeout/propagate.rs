//! Telling the server how long the caller will wait: a header with the time the deadline
//! leaves, set on each attempt as it is sent.

use http::{HeaderName, HeaderValue};
use std::time::Duration;

/// The header a [`Client`](crate::Client) (or a [`Transport`](crate::Transport)) puts on each
/// attempt with the time its deadline leaves at the moment the attempt is sent, so that the
/// server can stop work nobody will read (gRPC's `grpc-timeout`, Envoy's
/// `x-envoy-expected-rq-timeout-ms`). Off by default: turn it on with
/// [`ClientBuilder::propagate_deadline`](crate::ClientBuilder::propagate_deadline).
///
/// - The value is the deadline of the logical request (a deadline layer's, or the request's
///   own `.deadline(..)`) less the time already spent, retries and pauses included — or the
///   attempt timeout's time left, when that ends the attempt sooner (as Envoy sends its
///   per-try timeout); a request without a deadline carries no header. It is worked out when
///   the attempt is handed to reqwest: the connection's setup (pool wait, connect, TLS) still
///   comes off it.
/// - An attempt that would carry less than [`minimum`](Self::minimum) is not sent at all: it
///   fails as [`DeadlineExceeded`](crate::GatewayError::DeadlineExceeded), unsent.
/// - It goes only where the request is addressed: its own server, or the fallback servers you
///   configured. A redirect to another host is not followed while the header is on (the `3xx`
///   is returned as the response): reqwest would copy the header to it. With a
///   `reqwest::Client` the crate did not build, reqwest's redirect policy is yours and decides.
///
/// ```
/// use reqwest_resilience::timeout::DeadlineHeader;
/// use std::time::Duration;
///
/// let client = reqwest_resilience::Client::builder()
///     .deadline(Duration::from_secs(2))
///     .propagate_deadline(
///         DeadlineHeader::milliseconds(http::HeaderName::from_static("x-request-timeout-ms"))
///             .minimum(Duration::from_millis(20)),
///     )
///     .build()
///     .unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct DeadlineHeader {
    pub(crate) name: HeaderName,
    format: Format,
    pub(crate) minimum: Duration,
}

#[derive(Debug, Clone, Copy)]
enum Format {
    Milliseconds,
    Grpc,
}

impl DeadlineHeader {
    /// The time left in whole milliseconds (`1500`), under `name` (e.g.
    /// `x-request-timeout-ms`, or Envoy's `x-envoy-expected-rq-timeout-ms`).
    pub fn milliseconds(name: HeaderName) -> DeadlineHeader {
        DeadlineHeader {
            name,
            format: Format::Milliseconds,
            minimum: Duration::ZERO,
        }
    }

    /// gRPC's `grpc-timeout` header and syntax: at most eight digits and a unit (`1500m`,
    /// `120S`).
    pub fn grpc_timeout() -> DeadlineHeader {
        DeadlineHeader {
            name: HeaderName::from_static("grpc-timeout"),
            format: Format::Grpc,
            minimum: Duration::ZERO,
        }
    }

    /// An attempt that would carry less than this is not sent (default zero: any time left).
    pub fn minimum(mut self, minimum: Duration) -> DeadlineHeader {
        self.minimum = minimum;
        self
    }

    /// The header's value for `left`.
    pub(crate) fn value(&self, left: Duration) -> HeaderValue {
        let text = match self.format {
            Format::Milliseconds => left.as_millis().to_string(),
            Format::Grpc => grpc(left),
        };
        // Digits and a unit letter: always a valid header value.
        HeaderValue::from_str(&text).unwrap_or(HeaderValue::from_static("0"))
    }
}

/// `left` in gRPC's timeout syntax: the finest unit whose value fits in eight digits.
fn grpc(left: Duration) -> String {
    const MAX: u128 = 99_999_999;
    let millis = left.as_millis();
    if millis <= MAX {
        return format!("{millis}m");
    }
    let secs = u128::from(left.as_secs());
    if secs <= MAX {
        return format!("{secs}S");
    }
    let mins = secs / 60;
    if mins <= MAX {
        return format!("{mins}M");
    }
    format!("{}H", (secs / 3600).min(MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_syntax() {
        assert_eq!(grpc(Duration::from_millis(1500)), "1500m");
        assert_eq!(grpc(Duration::ZERO), "0m");
        assert_eq!(grpc(Duration::from_secs(200_000)), "200000S");
        assert_eq!(grpc(Duration::from_secs(u64::MAX)), "99999999H");
        let header = DeadlineHeader::grpc_timeout();
        assert_eq!(header.value(Duration::from_millis(42)), "42m");
        let ms = DeadlineHeader::milliseconds(HeaderName::from_static("x-t"));
        assert_eq!(ms.value(Duration::from_micros(1_999_999)), "1999");
    }
}
