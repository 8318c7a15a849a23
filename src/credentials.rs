//! Credentials written in a URL (`http://user:password@host/`) belong to that URL's server only.
//!
//! They stay in the request's URL while it travels through the layers, so that whatever moves a
//! request to another server (the fallback layer re-targeting it, a user's own layer) drops them
//! with the URL it replaces, by construction and whichever door the request came in by. The
//! transport turns them into an `Authorization: Basic` header (marked sensitive) just before
//! sending, as reqwest would have done.

use base64::Engine as _;
use http::header::{AUTHORIZATION, HeaderValue};
use reqwest::Url;

/// The user name and password of a URL, percent-decoded; `None` when it has neither.
pub(crate) fn from_url(url: &Url) -> Option<(String, Option<String>)> {
    let user = url.username();
    let password = url.password();
    if user.is_empty() && password.is_none() {
        return None;
    }
    Some((decode(user), password.map(decode)))
}

/// Removes the user name and password from `url`.
pub(crate) fn strip(url: &mut Url) {
    // Both only fail for URLs that cannot have credentials, which then have none to remove.
    let _ = url.set_username("");
    let _ = url.set_password(None);
}

/// Puts credentials back into `url` (as given to [`from_url`]'s caller).
pub(crate) fn restore(url: &mut Url, credentials: &(String, Option<String>)) {
    let _ = url.set_username(&credentials.0);
    let _ = url.set_password(credentials.1.as_deref());
}

/// Moves the URL's credentials, if any, into the `Authorization` header: they replace any
/// `Authorization` the request carries, because they name this very server.
pub(crate) fn apply(request: &mut reqwest::Request) {
    let Some((user, password)) = from_url(request.url()) else {
        return;
    };
    strip(request.url_mut());
    if let Some(value) = basic_auth(&user, password.as_deref()) {
        request.headers_mut().insert(AUTHORIZATION, value);
    }
}

/// `Basic base64(user:password)`, marked sensitive.
pub(crate) fn basic_auth(user: &str, password: Option<&str>) -> Option<HeaderValue> {
    let token = base64::engine::general_purpose::STANDARD
        .encode(format!("{user}:{}", password.unwrap_or("")).as_bytes());
    let mut value = HeaderValue::from_str(&format!("Basic {token}")).ok()?;
    value.set_sensitive(true);
    Some(value)
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
    fn a_url_without_credentials_is_left_alone() {
        let mut request =
            reqwest::Request::new(http::Method::GET, Url::parse("http://a.test/").unwrap());
        request
            .headers_mut()
            .insert(AUTHORIZATION, HeaderValue::from_static("Bearer t"));
        apply(&mut request);
        assert_eq!(request.headers()[AUTHORIZATION], "Bearer t");
    }
}
