//! Keeping secrets out of errors, logs and spans.

use reqwest::Url;

/// The URL as it may be shown: scheme, host, port and path, never the user name, password, query
/// or fragment.
pub(crate) fn display_url(url: &Url) -> String {
    DisplayUrl(url).to_string()
}

/// Formats a URL as [`display_url`] does, without allocating: for span fields, which are only
/// formatted when a subscriber records them.
pub(crate) struct DisplayUrl<'a>(pub(crate) &'a Url);

impl std::fmt::Display for DisplayUrl<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let url = self.0;
        write!(f, "{}://{}", url.scheme(), url.host_str().unwrap_or(""))?;
        if let Some(port) = url.port() {
            write!(f, ":{port}")?;
        }
        f.write_str(url.path())
    }
}

/// Response headers whose values are secrets and never printed.
pub(crate) fn is_sensitive_header(name: &http::HeaderName) -> bool {
    use http::header;
    name == header::AUTHORIZATION
        || name == header::PROXY_AUTHORIZATION
        || name == header::COOKIE
        || name == header::SET_COOKIE
        || name == header::WWW_AUTHENTICATE
        || name == header::PROXY_AUTHENTICATE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_credentials_query_and_fragment() {
        let url =
            Url::parse("https://user:hunter2@example.com:8443/a/b?token=s3cret#frag").unwrap();
        assert_eq!(display_url(&url), "https://example.com:8443/a/b");
    }

    #[test]
    fn keeps_default_port_implicit() {
        let url = Url::parse("http://127.0.0.1/x").unwrap();
        assert_eq!(display_url(&url), "http://127.0.0.1/x");
    }
}
