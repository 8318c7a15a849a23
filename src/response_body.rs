//! Taking a response apart to work on its body (the 5xx peek, the bounded body), and putting it
//! back together with its URL and extensions.

use http_body::Body as HttpBody;
use reqwest::ResponseBuilderExt;

/// The error type of the response bodies the layers build.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A response taken apart to work on its body: its URL, head and body.
pub(crate) fn split(
    response: reqwest::Response,
) -> (reqwest::Url, http::response::Parts, reqwest::Body) {
    let url = response.url().clone();
    let (parts, body) = http::Response::<reqwest::Body>::from(response).into_parts();
    (url, parts, body)
}

/// Puts a response back together with a new body, keeping its URL and extensions (among them
/// hyper's upgrade handle and the connection info).
pub(crate) fn rebuild<B>(
    url: reqwest::Url,
    mut parts: http::response::Parts,
    body: B,
) -> reqwest::Response
where
    B: HttpBody<Data = bytes::Bytes, Error = BoxError> + Send + Sync + 'static,
{
    if let Ok(with_url) = http::Response::builder().url(url).body(()) {
        parts.extensions.extend(with_url.into_parts().0.extensions);
    }
    reqwest::Response::from(http::Response::from_parts(parts, reqwest::Body::wrap(body)))
}
