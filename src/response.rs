//! The response a [`Client`](crate::Client) hands back: reqwest's response, whose body is read
//! within the request's deadline and fails with a [`GatewayError`].

use crate::error::GatewayError;
use crate::response_body::Gathered;
use crate::timeout::body::{BodyLimit, Owner, TimedBody, owned_cause};
use bytes::Bytes;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// A response from a [`Client`](crate::Client): one error type, [`GatewayError`], from
/// `send()` to the body's last byte.
///
/// It dereferences to `reqwest::Response` for the head (`status()`, `headers()`, `url()`,
/// `version()`, `content_length()`, `remote_addr()`, `extensions()`); its own methods read the
/// body — [`bytes`](Self::bytes), [`text`](Self::text), [`json`](Self::json),
/// [`chunk`](Self::chunk), [`bytes_stream`](Self::bytes_stream) — and fail with the
/// `GatewayError` of what happened:
///
/// - the request's deadline passing while the body is read: `DeadlineExceeded` (the body is
///   part of the logical request, so the client's deadline bounds it too);
/// - the connection failing mid-body (a reset, a close before the announced length):
///   `ConnectionClosed`, saying whether the request may be sent again;
/// - a body that does not parse (`json`): `Decode`.
///
/// ```no_run
/// # async fn run() -> Result<(), reqwest_resilience::GatewayError> {
/// let client = reqwest_resilience::Client::new();
/// let response = client.get("http://127.0.0.1:8080/orders/17").send().await?;
/// println!("{} after {} attempt(s)", response.status(), response.attempts());
/// let body: String = response.text().await?;
/// # Ok(()) }
/// ```
///
/// [`into_reqwest`](Self::into_reqwest) (or `reqwest::Response::from`) gives the
/// `reqwest::Response` itself, its body still bounded by the deadline (its errors are then
/// `reqwest::Error`s whose `source()` is the `GatewayError`; `GatewayError::from` recovers it).
pub struct Response {
    inner: reqwest::Response,
    bound: Bound,
}

/// What bounds the reading of a body, and whose failures its errors are.
struct Bound {
    /// When the body must have been read (`None`: no deadline); its timer, once made, is kept
    /// for the next chunk.
    limit: Option<BodyLimit>,
    owner: Owner,
    /// The error a read of the body failed with: the body is over (as a bounded body stream
    /// ends after its error), and a read of what is left gives that error again.
    failed: Option<GatewayError>,
}

impl Bound {
    /// Polls `read`, a read of the body, within the bound; a failure is the owner's.
    fn poll_read<T>(
        &mut self,
        read: Pin<&mut impl Future<Output = Result<T, reqwest::Error>>>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<T, GatewayError>> {
        // The body first: a body already there is read even at the deadline.
        if let Poll::Ready(outcome) = read.poll(cx) {
            return Poll::Ready(outcome.map_err(|err| {
                let err = owned_cause(err, &self.owner);
                self.failed = Some(err.clone());
                err
            }));
        }
        let Some(limit) = self.limit.as_mut() else {
            return Poll::Pending;
        };
        let limit = std::task::ready!(limit.poll_ran_out(cx));
        let err = self.owner.own(limit.error());
        self.failed = Some(err.clone());
        Poll::Ready(Err(err))
    }
}

/// The whole body, chunk by chunk: what `reqwest::Response::bytes` gives, read by a future
/// less than half the size of that one's (a caller's future awaiting it holds it whole: one
/// await point, so the generator keeps one read in flight and what came so far). A body that
/// comes in one chunk is handed on as it came. A failure names the URL, as reqwest's `bytes`
/// does (its `chunk` does not).
#[allow(clippy::manual_async_fn)] // an `async fn` would hold its argument twice
fn collect(mut response: reqwest::Response) -> impl Future<Output = Result<Bytes, reqwest::Error>> {
    // An `async` block using the response it captured in place: an `async fn` would keep a
    // second copy of its argument in its future.
    async move {
        // The announced length (read before the body: it counts down as chunks come), when there
        // is one, sizes the buffer once; a wrong one only costs a reallocation.
        let announced = response.content_length().unwrap_or(0).min(1 << 20) as usize;
        let mut read = Gathered::Nothing;
        loop {
            let chunk = match response.chunk().await {
                Ok(Some(chunk)) => chunk,
                Ok(None) => break,
                Err(err) => return Err(err.with_url(response.url().clone())),
            };
            read.push(chunk, announced);
        }
        Ok(read.into_bytes())
    }
}

pin_project_lite::pin_project! {
    /// A read of a body within its bound: what [`Response`]'s body reads return. One future,
    /// written out rather than nested `async` blocks, so that it is no bigger than reqwest's
    /// read and the bound (a caller's future that awaits it holds it whole).
    struct BoundRead<R, B> {
        // The read; `None` when an earlier read failed (that failure is the answer), and once
        // this read ended (polled again, it says so instead of polling a finished read).
        #[pin]
        read: Option<R>,
        bound: B,
    }
}

impl<R, B, T> Future for BoundRead<R, B>
where
    R: Future<Output = Result<T, reqwest::Error>>,
    B: std::borrow::BorrowMut<Bound>,
{
    type Output = Result<T, GatewayError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let bound = this.bound.borrow_mut();
        match this.read.as_mut().as_pin_mut() {
            Some(read) => {
                let outcome = std::task::ready!(bound.poll_read(read, cx));
                this.read.set(None);
                Poll::Ready(outcome)
            }
            None => Poll::Ready(Err(bound.failed.clone().unwrap_or_else(|| {
                crate::boxed_future::polled_after_end("the body read's")
            }))),
        }
    }
}

impl Response {
    pub(crate) fn new(inner: reqwest::Response, limit: Option<BodyLimit>, owner: Owner) -> Self {
        Response {
            inner,
            bound: Bound {
                limit,
                owner,
                failed: None,
            },
        }
    }

    /// Reads what is left of the body with `read_body` (the earlier failure of a read, if one
    /// failed), within the bound.
    fn read_rest<T, R>(
        self,
        read_body: impl FnOnce(reqwest::Response) -> R,
    ) -> impl Future<Output = Result<T, GatewayError>> + Send
    where
        R: Future<Output = Result<T, reqwest::Error>> + Send,
    {
        let Response { inner, bound } = self;
        BoundRead {
            read: bound.failed.is_none().then(|| read_body(inner)),
            bound,
        }
    }

    /// How many attempts the request took (1 when the first one answered).
    pub fn attempts(&self) -> u32 {
        self.bound.owner.attempts.max(1)
    }

    /// The whole body (what is left of it after [`chunk`](Self::chunk)s).
    ///
    /// # Errors
    ///
    /// The body's failure: the deadline passing, the connection failing mid-body; after a
    /// [`chunk`](Self::chunk) failed, that failure again.
    #[inline]
    pub fn bytes(self) -> impl Future<Output = Result<Bytes, GatewayError>> + Send {
        self.read_rest(collect)
    }

    /// The whole body as text, decoded by the `Content-Type`'s charset (with the `charset`
    /// feature, the default), invalid sequences replaced. Without the feature, reqwest's own
    /// `text` decodes it: as UTF-8, unless another crate gave reqwest its `charset` feature.
    ///
    /// # Errors
    ///
    /// The body's failure, as for [`bytes`](Self::bytes).
    pub fn text(self) -> impl Future<Output = Result<String, GatewayError>> + Send {
        // With the `charset` feature: the body collected as `bytes` collects it (not by
        // reqwest's `text`, whose futures hold the response twice and whose collect allocates a
        // list of the chunks), then decoded as reqwest's `text` decodes it.
        #[cfg(feature = "charset")]
        {
            self.text_with_charset("utf-8")
        }
        // Without this crate's `charset` feature, reqwest's own `text` decides (reqwest may
        // have its `charset` feature from another crate, and its text follows it then).
        #[cfg(not(feature = "charset"))]
        {
            self.read_rest(reqwest::Response::text)
        }
    }

    /// The whole body as text, decoded by the `Content-Type`'s charset or else
    /// `default_encoding` (needs the `charset` feature).
    ///
    /// # Errors
    ///
    /// The body's failure, as for [`bytes`](Self::bytes).
    #[cfg(feature = "charset")]
    #[cfg_attr(docsrs, doc(cfg(feature = "charset")))]
    pub fn text_with_charset(
        self,
        default_encoding: &str,
    ) -> impl Future<Output = Result<String, GatewayError>> + Send + use<> {
        let encoding = charset::encoding(self.headers(), default_encoding);
        ReadThen {
            read: self.bytes(),
            then: move |body: Bytes, _: &mut Context<'_>| {
                // With a byte order mark, the mark's encoding, and the mark dropped.
                let (text, _, _) = encoding.decode(&body);
                Ok(text.into_owned())
            },
        }
    }

    /// The body deserialized from JSON (needs the `json` feature).
    ///
    /// # Errors
    ///
    /// The body's failure, as for [`bytes`](Self::bytes), or `Decode` when it is not the JSON
    /// of a `T`.
    #[cfg(feature = "json")]
    #[cfg_attr(docsrs, doc(cfg(feature = "json")))]
    pub fn json<T: serde::de::DeserializeOwned>(
        self,
    ) -> impl Future<Output = Result<T, GatewayError>> + Send {
        // The body read as `bytes()` reads it and parsed as reqwest's `json` parses it; a body
        // that does not parse is handed to reqwest's `json`, so that its error is reqwest's
        // own decode error, as before.
        let owner = self.bound.owner.clone();
        ReadThen {
            read: self.bytes(),
            then: move |body: Bytes, cx: &mut Context<'_>| parse_json(&body, &owner, cx),
        }
    }

    /// The next chunk of the body (`None` at its end), for a body read as it arrives.
    ///
    /// # Errors
    ///
    /// The body's failure, as for [`bytes`](Self::bytes); the body is over after one.
    pub fn chunk(&mut self) -> impl Future<Output = Result<Option<Bytes>, GatewayError>> + Send {
        let Response { inner, bound } = self;
        // After a failure the body is over: no read, and `None`.
        let over = bound.failed.is_some();
        BoundRead {
            read: Some(async move {
                if over {
                    return Ok(None);
                }
                inner.chunk().await
            }),
            bound,
        }
    }

    /// The body as a stream of chunks (a `futures_core::Stream`), each a
    /// `Result<Bytes, GatewayError>`; the stream ends after an error.
    pub fn bytes_stream(self) -> BytesStream {
        let Response { inner, bound } = self;
        let body = http::Response::<reqwest::Body>::from(inner).into_body();
        let mut body = TimedBody::new(body, bound.limit, bound.owner);
        if bound.failed.is_some() {
            body.end();
        }
        BytesStream { body }
    }

    /// This response, or the [`GatewayError`] its status makes when it is a client or server
    /// error (4xx, 5xx), judged as the client judges any response (`GatewayError::from` a
    /// `reqwest::Response::error_for_status` error gives the same).
    ///
    /// # Errors
    ///
    /// The status's error, when the status is 4xx or 5xx.
    pub fn error_for_status(self) -> Result<Self, GatewayError> {
        self.error_for_status_ref()?;
        Ok(self)
    }

    /// As [`error_for_status`](Self::error_for_status), by reference.
    ///
    /// # Errors
    ///
    /// The status's error, when the status is 4xx or 5xx.
    pub fn error_for_status_ref(&self) -> Result<&Self, GatewayError> {
        match self.inner.error_for_status_ref() {
            Ok(_) => Ok(self),
            Err(err) => Err(self.bound.owner.own(GatewayError::from(err))),
        }
    }

    /// The connection, taken over after a `101 Switching Protocols` (reqwest's
    /// `Response::upgrade`).
    ///
    /// # Errors
    ///
    /// The connection could not be upgraded (the response was not a `101`, or the connection
    /// closed).
    pub async fn upgrade(self) -> Result<reqwest::Upgraded, GatewayError> {
        let Response { inner, bound } = self;
        inner
            .upgrade()
            .await
            .map_err(|err| owned_cause(err, &bound.owner))
    }

    /// The `reqwest::Response`, its body bounded by the request's deadline as this type's is
    /// (a body error is then a `reqwest::Error` whose `source()` is the [`GatewayError`]).
    /// Rebuilding the response around a bounded body costs a few allocations, which reading
    /// the body through this type does not.
    pub fn into_reqwest(self) -> reqwest::Response {
        let Response { inner, bound } = self;
        let ended = bound.failed.is_some();
        if bound.limit.is_none() && !ended {
            return inner;
        }
        crate::timeout::body::bound_body(inner, bound.limit, bound.owner, ended)
    }

    /// The `reqwest::Response` as it came, for a connection taken over (an upgrade): no body
    /// is read through it.
    #[cfg(feature = "websocket")]
    pub(crate) fn into_unbounded(self) -> reqwest::Response {
        self.inner
    }
}

impl std::ops::Deref for Response {
    type Target = reqwest::Response;

    fn deref(&self) -> &reqwest::Response {
        &self.inner
    }
}

impl std::ops::DerefMut for Response {
    fn deref_mut(&mut self) -> &mut reqwest::Response {
        &mut self.inner
    }
}

impl From<Response> for reqwest::Response {
    fn from(response: Response) -> reqwest::Response {
        response.into_reqwest()
    }
}

impl From<Response> for http::Response<reqwest::Body> {
    /// The response as an `http::Response`, its body still bounded (see
    /// [`Response::into_reqwest`]).
    fn from(response: Response) -> http::Response<reqwest::Body> {
        http::Response::from(response.into_reqwest())
    }
}

impl std::fmt::Debug for Response {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // No URL: it may carry a query or credentials.
        f.debug_struct("Response")
            .field("status", &self.inner.status())
            .field("version", &self.inner.version())
            .field("attempts", &self.attempts())
            .finish_non_exhaustive()
    }
}

pin_project_lite::pin_project! {
    /// The body of a [`Response`] as a stream of chunks: see [`Response::bytes_stream`].
    #[must_use = "streams do nothing unless polled"]
    pub struct BytesStream {
        #[pin]
        body: TimedBody,
    }
}

impl futures_core::Stream for BytesStream {
    type Item = Result<Bytes, GatewayError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        use http_body::Body as _;
        let mut body = self.project().body;
        loop {
            let frame = match body.as_mut().poll_frame(cx) {
                Poll::Ready(Some(frame)) => frame,
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            };
            match frame {
                // Trailers carry no bytes: the next frame, or the end.
                Ok(frame) => match frame.into_data() {
                    Ok(data) => return Poll::Ready(Some(Ok(data))),
                    Err(_trailers) => continue,
                },
                Err(err) => return Poll::Ready(Some(Err(body_error(err)))),
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, None)
    }
}

impl std::fmt::Debug for BytesStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BytesStream").finish_non_exhaustive()
    }
}

/// A bounded body's error: always a [`GatewayError`], boxed for `http_body`.
fn body_error(err: crate::response_body::BoxError) -> GatewayError {
    match err.downcast::<GatewayError>() {
        Ok(ours) => *ours,
        Err(other) => GatewayError::new(crate::ErrorKind::Other, other.to_string()),
    }
}

#[cfg(any(feature = "charset", feature = "json"))]
pin_project_lite::pin_project! {
    /// The body read whole, then made into what the caller asked for (text decoded, JSON
    /// parsed). Written out: an `async` block awaiting the read would hold it twice (as
    /// captured, and as awaited).
    struct ReadThen<R, F> {
        #[pin]
        read: R,
        then: F,
    }
}

#[cfg(any(feature = "charset", feature = "json"))]
impl<R, F, T> Future for ReadThen<R, F>
where
    R: Future<Output = Result<Bytes, GatewayError>>,
    F: FnMut(Bytes, &mut Context<'_>) -> Result<T, GatewayError>,
{
    type Output = Result<T, GatewayError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let body = std::task::ready!(this.read.poll(cx))?;
        Poll::Ready((this.then)(body, cx))
    }
}

/// `body` parsed as the JSON of a `T`, as reqwest's `json` parses it.
#[cfg(feature = "json")]
fn parse_json<T: serde::de::DeserializeOwned>(
    body: &Bytes,
    owner: &Owner,
    cx: &mut Context<'_>,
) -> Result<T, GatewayError> {
    let failure = match serde_json::from_slice::<T>(body) {
        Ok(value) => return Ok(value),
        Err(failure) => failure,
    };
    // Not the JSON of a `T`: reqwest's `json`, given the same body, says why with its own
    // decode error (the error this read gave before it parsed the body itself). Its body is in
    // memory: its future ends at its first poll.
    let again = reqwest::Response::from(http::Response::new(reqwest::Body::from(body.clone())));
    let explain = std::pin::pin!(again.json::<T>());
    match explain.poll(cx) {
        Poll::Ready(Ok(value)) => Ok(value),
        Poll::Ready(Err(err)) => Err(owned_cause(err, owner)),
        // Not reached: an in-memory body is read at the first poll. The parser's words
        // otherwise, in the wording of `GatewayError::from_reqwest_sent` for a decode failure
        // (`classify/convert.rs`).
        Poll::Pending => Err(owner.own(GatewayError::new(
            crate::error::ErrorKind::Decode,
            format!("the response body arrived whole but could not be decoded: {failure}"),
        ))),
    }
}

/// The encoding a response's text is decoded by: its `Content-Type`'s charset, else the
/// default named; UTF-8 when neither names one `encoding_rs` knows (reqwest's own rule).
#[cfg(feature = "charset")]
mod charset {
    use encoding_rs::{Encoding, UTF_8};

    pub(super) fn encoding(headers: &http::HeaderMap, default: &str) -> &'static Encoding {
        let content_type = headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.parse::<mime::Mime>().ok());
        let name = content_type
            .as_ref()
            .and_then(|mime| mime.get_param("charset").map(|charset| charset.as_str()))
            .unwrap_or(default);
        Encoding::for_label(name.as_bytes()).unwrap_or(UTF_8)
    }
}
