//! Base URLs and re-targeting a request from one to another.

use http::header::{AUTHORIZATION, COOKIE, HOST, HeaderValue};
use reqwest::Url;

/// A base URL was not usable as a fallback server.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid fallback server {url:?}: {reason}")]
pub struct InvalidBaseUrl {
    url: String,
    reason: &'static str,
}

impl InvalidBaseUrl {
    pub(crate) fn empty() -> Self {
        InvalidBaseUrl {
            url: String::new(),
            reason: "at least one server is needed",
        }
    }

    fn new(given: &str, reason: &'static str) -> Self {
        // Never echo a password or query given by mistake.
        let url = match Url::parse(given) {
            Ok(url) => crate::redact::display_url(&url),
            Err(_) => "<not a URL>".to_owned(),
        };
        InvalidBaseUrl { url, reason }
    }
}

/// What travels with a request moved to another server.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct CredentialRule {
    /// Forward `Authorization` and `Cookie` to the other server.
    pub(crate) forward: bool,
    /// Even from `https` to plain `http`.
    pub(crate) cleartext: bool,
}

/// One server: scheme, host, port and an optional path prefix.
#[derive(Clone)]
pub(crate) struct BaseUrl {
    url: Url,
    prefix: String,
    display: String,
}

impl std::fmt::Debug for BaseUrl {
    /// Only what may be shown: the URL's credentials stay out of `Debug` too.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("BaseUrl").field(&self.display).finish()
    }
}

impl BaseUrl {
    pub(crate) fn parse(given: &str) -> Result<BaseUrl, InvalidBaseUrl> {
        let url = Url::parse(given.trim()).map_err(|_| InvalidBaseUrl::new(given, "not a URL"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(InvalidBaseUrl::new(
                given,
                "the scheme must be http or https",
            ));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(InvalidBaseUrl::new(given, "a host is required"));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(InvalidBaseUrl::new(
                given,
                "a base URL has no query or fragment",
            ));
        }
        let prefix = url.path().trim_end_matches('/').to_owned();
        let display = crate::redact::display_url(&url);
        Ok(BaseUrl {
            url,
            prefix,
            display,
        })
    }

    /// Scheme, host, port and prefix, without credentials.
    pub(crate) fn display(&self) -> &str {
        &self.display
    }

    /// The part of `url`'s path below this base, when `url` is on this server.
    pub(crate) fn path_below<'u>(&self, url: &'u Url) -> Option<&'u str> {
        let same_origin = url.scheme() == self.url.scheme()
            && url.host_str() == self.url.host_str()
            && url.port_or_known_default() == self.url.port_or_known_default();
        if !same_origin {
            return None;
        }
        let rest = url.path().strip_prefix(self.prefix.as_str())?;
        (rest.is_empty() || rest.starts_with('/')).then_some(rest)
    }

    /// Moves `request` from the base it was written for onto this one (`rest_at`: where the path
    /// below that base starts): path below the prefix and query kept; scheme, host, port and
    /// prefix swapped; `Host` made consistent. Credentials follow reqwest's rule for a redirect
    /// to another host: `Authorization` and `Cookie` are removed, unless `rule` forwards them
    /// (and never from `https` to plain `http` unless it allows cleartext); this server's own
    /// URL credentials, if its base URL has them, are then sent as its `Authorization`.
    pub(crate) fn retarget(
        &self,
        request: &mut reqwest::Request,
        rest_at: usize,
        rule: CredentialRule,
    ) {
        let downgrade = request.url().scheme() == "https" && self.url.scheme() == "http";
        let keep = rule.forward && (!downgrade || rule.cleartext);
        let rest = request.url().path().get(rest_at..).unwrap_or("");
        let mut url = self.url.clone();
        let _ = url.set_username("");
        let _ = url.set_password(None);
        url.set_path(&format!("{}{}", self.prefix, rest));
        url.set_query(request.url().query());
        *request.url_mut() = url;
        let headers = request.headers_mut();
        if !keep {
            headers.remove(AUTHORIZATION);
            headers.remove(COOKIE);
        }
        if let Some(own) = crate::credentials::basic_auth(&self.url) {
            headers.insert(AUTHORIZATION, own);
        }
        if headers.contains_key(HOST) {
            if let Some(host) = self
                .authority()
                .and_then(|a| HeaderValue::from_str(&a).ok())
            {
                headers.insert(HOST, host);
            }
        }
    }

    fn authority(&self) -> Option<String> {
        let host = self.url.host_str()?;
        Some(match self.url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_matches_at_segment_boundaries() {
        let base = BaseUrl::parse("http://a.test:8080/api/").unwrap();
        let url = |s: &str| Url::parse(s).unwrap();
        assert_eq!(
            base.path_below(&url("http://a.test:8080/api/v1?x=1")),
            Some("/v1")
        );
        assert_eq!(base.path_below(&url("http://a.test:8080/api")), Some(""));
        assert_eq!(base.path_below(&url("http://a.test:8080/apiv1")), None);
        assert_eq!(base.path_below(&url("http://a.test:9090/api/v1")), None);
        assert_eq!(base.path_below(&url("https://a.test:8080/api/v1")), None);
    }

    #[test]
    fn invalid_base_urls_are_errors_without_secrets() {
        for bad in [
            "",
            "nope",
            "ftp://a.test/",
            "http://a.test/?token=s3cret",
            "http://a.test/#x",
        ] {
            let err = BaseUrl::parse(bad).unwrap_err();
            assert!(!err.to_string().contains("s3cret"), "{err}");
        }
    }
}
