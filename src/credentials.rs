//! Credentials in URLs: turning a URL's user name and password into the `Authorization` header
//! reqwest would send, for the places where a URL with credentials is not seen by reqwest's own
//! request builder (a fallback server's base URL, a `reqwest::Request::new` given to the
//! transport).

use base64::Engine as _;
use http::header::{AUTHORIZATION, HeaderValue};
use reqwest::Url;

/// `Basic base64(user:password)` for the credentials in `url`, percent-decoded and marked
/// sensitive; `None` when the URL has none.
pub(crate) fn basic_auth(url: &Url) -> Option<HeaderValue> {
    let user = url.username();
    let password = url.password();
    if user.is_empty() && password.is_none() {
        return None;
    }
    let plain = format!(
        "{}:{}",
        decode(user),
        password.map(decode).unwrap_or_default()
    );
    let token = base64::engine::general_purpose::STANDARD.encode(plain.as_bytes());
    let mut value = HeaderValue::from_str(&format!("Basic {token}")).ok()?;
    value.set_sensitive(true);
    Some(value)
}

/// Moves credentials still written in the request's URL into its `Authorization` header (as
/// reqwest's builder does; reqwest's `execute` itself would not), so that they never reach the
/// request line or a log of the URL.
pub(crate) fn apply(request: &mut reqwest::Request) {
    if !has_credentials(request.url()) {
        return;
    }
    let Some(value) = basic_auth(request.url()) else {
        return;
    };
    let url = request.url_mut();
    let _ = url.set_username("");
    let _ = url.set_password(None);
    request.headers_mut().entry(AUTHORIZATION).or_insert(value);
}

/// Whether `url` has a user name or a password: its host then follows an `@` (the one check
/// made for every request sent; `username` and `password` are looked at only then).
fn has_credentials(url: &Url) -> bool {
    url[..url::Position::BeforeHost].ends_with('@')
}

fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_found_exactly_when_the_url_has_a_user_name_or_a_password() {
        for (url, has) in [
            ("http://a.test/x", false),
            ("http://u@a.test/x", true),
            ("http://u:p@a.test/x", true),
            ("http://:p@a.test/x", true),
            ("http://u:@a.test/x", true),
            ("http://a.test/x@y", false),
            ("http://a.test/?q=u@v", false),
            ("http://[::1]:8080/", false),
            ("http://u%40x:p@[::1]:8080/", true),
            ("mailto:u@a.test", false),
            ("file:///tmp/x@y", false),
        ] {
            let url = Url::parse(url).unwrap();
            let full = !url.username().is_empty() || url.password().is_some();
            assert_eq!(has_credentials(&url), has, "{url}");
            assert_eq!(full, has, "{url}: the reference disagrees with the table");
        }
    }

    #[test]
    fn the_header_is_the_rfc_7617_form_of_the_decoded_credentials() {
        let mut request = reqwest::Request::new(
            http::Method::GET,
            Url::parse("http://Aladdin:open%20sesame@a.test/x").unwrap(),
        );
        apply(&mut request);
        assert_eq!(request.url().as_str(), "http://a.test/x");
        let header = request.headers().get(AUTHORIZATION).unwrap();
        assert_eq!(header, "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
        assert!(header.is_sensitive());
    }

    #[test]
    fn an_explicit_header_wins_and_a_plain_url_is_left_alone() {
        let mut request =
            reqwest::Request::new(http::Method::GET, Url::parse("http://u:p@a.test/").unwrap());
        request
            .headers_mut()
            .insert(AUTHORIZATION, HeaderValue::from_static("Bearer t"));
        apply(&mut request);
        assert_eq!(request.headers()[AUTHORIZATION], "Bearer t");
        assert_eq!(request.url().password(), None);
    }
}
