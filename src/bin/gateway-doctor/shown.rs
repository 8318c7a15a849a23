//! URLs as the doctor prints them: no credentials, no query string, no fragment.

use reqwest::Url;

/// `scheme://host:port/path`, with `?…` standing for a query string that was there.
pub fn url(url: &Url) -> String {
    if !matches!(url.scheme(), "http" | "https" | "ws" | "wss") {
        // `mailto:`, `javascript:`…: what follows the scheme may be anything.
        return format!("{}:…", url.scheme());
    }
    let mut out = format!("{}://", url.scheme());
    if let Some(host) = url.host_str() {
        out.push_str(host);
    }
    if let Some(port) = url.port() {
        out.push_str(&format!(":{port}"));
    }
    out.push_str(url.path());
    if url.query().is_some() {
        out.push_str("?…");
    }
    out
}

/// `text` with its control characters (newlines, terminal escapes) replaced by `�`: what a
/// server sent cannot write lines or escapes of its own into the output.
pub fn printable(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { '\u{FFFD}' } else { c })
        .collect()
}

/// `host:port` of a URL (an IPv6 address in brackets, as `host_str` gives it).
pub fn authority(url: &Url) -> String {
    let port = url.port_or_known_default().unwrap_or(0);
    format!("{}:{port}", url.host_str().unwrap_or("?"))
}

/// Milliseconds with one decimal under 10 ms, whole above.
pub fn ms(d: std::time::Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms < 10.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{ms:.0} ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_credentials_query_or_fragment() {
        let u = Url::parse("https://user:secret@example.test:8443/a/b?token=abc#frag").unwrap();
        let s = url(&u);
        assert_eq!(s, "https://example.test:8443/a/b?…");
        assert!(!s.contains("secret") && !s.contains("abc") && !s.contains("user"));
        assert_eq!(authority(&u), "example.test:8443");
        let mail = Url::parse("mailto:secret@example.test").unwrap();
        assert_eq!(url(&mail), "mailto:…");
        assert_eq!(
            printable("CN=x\u{1b}[2J\nverdict: ok"),
            "CN=x\u{FFFD}[2J\u{FFFD}verdict: ok"
        );
        let v6 = Url::parse("http://[::1]/").unwrap();
        assert_eq!(authority(&v6), "[::1]:80");
    }
}
