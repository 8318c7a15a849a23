//! Reading a server's "come back later" hints.

use http::HeaderMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The pause a response asks for, from `Retry-After` (delta-seconds or an HTTP-date), else
/// `RateLimit-Reset` (delta-seconds), else `X-RateLimit-Reset` (delta-seconds, or a Unix time
/// when the number is past 1,000,000,000). Malformed values are ignored; a date in the past
/// means no pause.
pub fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    if let Some(value) = header_text(headers, "retry-after") {
        if let Some(secs) = delta_seconds(value) {
            return Some(secs);
        }
        if let Ok(at) = httpdate::parse_http_date(value) {
            return Some(at.duration_since(now).unwrap_or(Duration::ZERO));
        }
    }
    if let Some(secs) = header_text(headers, "ratelimit-reset").and_then(delta_seconds) {
        return Some(secs);
    }
    let value = header_text(headers, "x-ratelimit-reset").and_then(delta_seconds)?;
    const EPOCH_THRESHOLD: Duration = Duration::from_secs(1_000_000_000);
    if value > EPOCH_THRESHOLD {
        let at = UNIX_EPOCH.checked_add(value)?;
        return Some(at.duration_since(now).unwrap_or(Duration::ZERO));
    }
    Some(value)
}

fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name)?.to_str().ok().map(str::trim)
}

/// A non-negative whole number of seconds; numbers too large to hold saturate.
fn delta_seconds(value: &str) -> Option<Duration> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(Duration::from_secs(
        value.parse::<u64>().unwrap_or(u64::MAX),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(name: &'static str, value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, value.parse().unwrap());
        h
    }

    #[test]
    fn both_retry_after_forms() {
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(
            retry_after(&with("retry-after", " 7 "), now),
            Some(Duration::from_secs(7))
        );
        let date = httpdate::fmt_http_date(now + Duration::from_secs(30));
        assert_eq!(
            retry_after(&with("retry-after", &date), now),
            Some(Duration::from_secs(30))
        );
        let past = httpdate::fmt_http_date(now - Duration::from_secs(30));
        assert_eq!(
            retry_after(&with("retry-after", &past), now),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn garbage_is_ignored() {
        let now = SystemTime::now();
        for bad in ["-5", "1.5", "soon", "", "5 s", "Thu, 99 Foo 2024"] {
            assert_eq!(retry_after(&with("retry-after", bad), now), None, "{bad:?}");
        }
        let huge = retry_after(&with("retry-after", "99999999999999999999999"), now);
        assert_eq!(huge, Some(Duration::from_secs(u64::MAX)));
    }

    #[test]
    fn rate_limit_headers() {
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(
            retry_after(&with("ratelimit-reset", "3"), now),
            Some(Duration::from_secs(3))
        );
        assert_eq!(
            retry_after(&with("x-ratelimit-reset", "4"), now),
            Some(Duration::from_secs(4))
        );
        assert_eq!(
            retry_after(&with("x-ratelimit-reset", "1700000010"), now),
            Some(Duration::from_secs(10))
        );
        // Exactly 1,000,000,000 is not "past" it: still a number of seconds, not a time.
        assert_eq!(
            retry_after(&with("x-ratelimit-reset", "1000000000"), now),
            Some(Duration::from_secs(1_000_000_000))
        );
        assert_eq!(
            retry_after(&with("x-ratelimit-reset", "1000000001"), now),
            Some(Duration::ZERO),
            "a Unix time in the past means no pause"
        );
    }
}
