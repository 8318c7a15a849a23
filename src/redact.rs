//! Keeping secrets out of errors, logs and spans.

use reqwest::Url;

/// The URL as it may be shown: scheme, host, port and path, never the user name, password, query
/// or fragment.
pub(crate) fn display_url(url: &Url) -> String {
    if !url.has_host() {
        return from_parts(url);
    }
    let (scheme, rest) = shown_parts(url);
    let mut shown = String::with_capacity(scheme.len() + 3 + rest.len());
    shown.push_str(scheme);
    shown.push_str("://");
    shown.push_str(rest);
    shown
}

/// [`display_url`] of a URL that is not needed any more: its serialization is cut down where
/// it lies (the user name and password, the query and the fragment taken out) instead of
/// copied into a new string.
pub(crate) fn into_display_url(url: Url) -> String {
    if !url.has_host() {
        return from_parts(&url);
    }
    // A URL with a host is serialized `scheme://[userinfo@]host[:port]path[?query][#fragment]`.
    let scheme_end = url.scheme().len() + "://".len();
    let before_host = url[..url::Position::BeforeHost].len();
    let after_path = url[..url::Position::AfterPath].len();
    let mut shown = String::from(url);
    shown.truncate(after_path);
    shown.replace_range(scheme_end..before_host, "");
    shown
}

/// [`display_url`] from the URL's parts: for a URL without a host, whose serialization may
/// hold a `/.` before its path that its parts do not.
fn from_parts(url: &Url) -> String {
    let mut shown = format!("{}://{}", url.scheme(), url.host_str().unwrap_or(""));
    if let Some(port) = url.port() {
        use std::fmt::Write as _;
        let _ = write!(shown, ":{port}");
    }
    shown.push_str(url.path());
    shown
}

/// The scheme, and host, port and path as a URL with a host writes them: slices of its
/// serialization, which leaves the user name and password before the host and the query and
/// fragment after the path (and a default port out).
fn shown_parts(url: &Url) -> (&str, &str) {
    (
        url.scheme(),
        &url[url::Position::BeforeHost..url::Position::AfterPath],
    )
}

/// Formats a URL as [`display_url`] does, without allocating for a URL with a host: for span
/// fields, which are only formatted when a subscriber records them.
pub(crate) struct DisplayUrl<'a>(pub(crate) &'a Url);

impl std::fmt::Display for DisplayUrl<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if !self.0.has_host() {
            return f.write_str(&from_parts(self.0));
        }
        let (scheme, rest) = shown_parts(self.0);
        f.write_str(scheme)?;
        f.write_str("://")?;
        f.write_str(rest)
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
        assert_eq!(into_display_url(url), "https://example.com:8443/a/b");
    }

    #[test]
    fn a_url_is_shown_as_its_scheme_host_port_and_path_whatever_else_it_holds() {
        // What the URL's own parts give, formatted (how it was computed before it was cut from
        // the serialization); a URL without a host is still shown so.
        let reference = from_parts;
        for raw in [
            "http://a.test/",
            "http://a.test",
            "http://a.test:80/x",
            "https://a.test:443/x",
            "http://a.test:8080/x/y?q=1#f",
            "https://user@a.test/p",
            "https://user:pw@a.test:8443/p%20q?token=s#frag",
            "https://:pw@a.test/",
            "http://[::1]:3000/v6?x",
            "http://[2001:db8::1]/",
            "http://127.0.0.1:1/",
            "http://xn--nxasmq6b.test/caf%C3%A9",
            "http://a.test/?only=query",
            "http://a.test/#only-fragment",
            "file:///etc/hosts",
            "unix:/run/socket",
            "foo:/.//p",
            "mailto:someone@a.test",
        ] {
            let url = Url::parse(raw).unwrap();
            assert_eq!(display_url(&url), reference(&url), "{raw}");
            assert_eq!(DisplayUrl(&url).to_string(), reference(&url), "{raw}");
            assert_eq!(into_display_url(url.clone()), reference(&url), "{raw}");
        }
    }

    #[test]
    fn keeps_default_port_implicit() {
        let url = Url::parse("http://127.0.0.1/x").unwrap();
        assert_eq!(display_url(&url), "http://127.0.0.1/x");
    }
}
