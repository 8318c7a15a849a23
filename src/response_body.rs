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

/// The data of a body's frames gathered in order: the first kept as it came (a body that comes
/// in one frame is handed on without a copy), copied into one buffer only when a second comes.
pub(crate) enum Gathered {
    Nothing,
    One(bytes::Bytes),
    Many(bytes::BytesMut),
}

impl Gathered {
    pub(crate) fn len(&self) -> usize {
        match self {
            Gathered::Nothing => 0,
            Gathered::One(one) => one.len(),
            Gathered::Many(many) => many.len(),
        }
    }

    /// Adds `data`; a buffer made now holds at least `expected` bytes (the length announced,
    /// if any: a wrong one only costs a reallocation).
    pub(crate) fn push(&mut self, data: bytes::Bytes, expected: usize) {
        *self = match std::mem::replace(self, Gathered::Nothing) {
            Gathered::Nothing => Gathered::One(data),
            Gathered::One(first) => {
                let mut many =
                    bytes::BytesMut::with_capacity(expected.max(first.len() + data.len()));
                many.extend_from_slice(&first);
                many.extend_from_slice(&data);
                Gathered::Many(many)
            }
            Gathered::Many(mut many) => {
                many.extend_from_slice(&data);
                Gathered::Many(many)
            }
        };
    }

    pub(crate) fn into_bytes(self) -> bytes::Bytes {
        match self {
            Gathered::Nothing => bytes::Bytes::new(),
            Gathered::One(one) => one,
            Gathered::Many(many) => many.freeze(),
        }
    }
}
