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
///
/// The head is moved into an `http::response::Builder` whole, so that reqwest's URL extension
/// goes into the response's own extension map (no second map is made and merged).
pub(crate) fn rebuild<B>(
    url: reqwest::Url,
    parts: http::response::Parts,
    body: B,
) -> reqwest::Response
where
    B: HttpBody<Data = bytes::Bytes, Error = BoxError> + Send + Sync + 'static,
{
    let http::response::Parts {
        status,
        version,
        headers,
        extensions,
        ..
    } = parts;
    let mut builder = http::Response::builder().status(status).version(version);
    if let Some(slot) = builder.extensions_mut() {
        *slot = extensions;
    }
    if let Some(slot) = builder.headers_mut() {
        *slot = headers;
    }
    let body = reqwest::Body::wrap(body);
    match builder.url(url).body(body) {
        Ok(response) => reqwest::Response::from(response),
        // Not reachable: every part was taken from a valid response.
        Err(_) => reqwest::Response::from(http::Response::new(reqwest::Body::from(""))),
    }
}
