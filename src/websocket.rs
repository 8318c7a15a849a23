//! Resilient WebSocket connects: the handshake goes through the client's whole stack.
//!
//! [`Client::websocket`] starts a handshake to a `ws://`/`wss://` URL (or `http://`/`https://`);
//! [`WebSocketBuilder::connect`] sends the HTTP/1.1 upgrade request through the same deadline,
//! retry, fallback and attempt timeout as any GET (a handshake is idempotent), checks the
//! answer, and hands back a [`tokio_tungstenite::WebSocketStream`] over reqwest's upgraded
//! connection.
//!
//! Failures keep the crate's taxonomy:
//!
//! - a gateway's 502/503/504 to the upgrade request goes through the classifier, so an IIS
//!   502.5 page, Envoy's or nginx's answer keep their cause (and are retried like any GET);
//! - an answer other than `101 Switching Protocols` with no gateway cause, a missing or wrong
//!   `Sec-WebSocket-Accept`, a connection closed or garbled during the handshake, or a failed
//!   upgrade is [`GatewayError::WebSocket`] (502.5); the server's answer is kept in the error;
//! - refused connections, DNS failures and timeouts keep their transport causes.
//!
//! Once the stream is handed back the crate does not reconnect by itself: a dropped WebSocket
//! is the application's to reopen (`examples/websocket.rs` shows a reconnect loop paced by the
//! crate's backoff schedule).
//!
//! Needs the `websocket` cargo feature.

use crate::client::{Client, RequestBuilder};
use crate::error::{Details, ErrorKind, GatewayError, Origin, ResponseSnapshot};
use crate::retry::RetryPolicy;
use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};
use std::time::Duration;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::client::generate_key;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

/// The WebSocket stream [`WebSocketBuilder::connect`] hands back.
pub type WebSocket = WebSocketStream<reqwest::Upgraded>;

/// What the server answered to the handshake.
#[derive(Debug, Clone)]
pub struct Handshake {
    headers: http::HeaderMap,
    protocol: Option<String>,
}

impl Handshake {
    /// The headers of the `101 Switching Protocols` answer.
    pub fn headers(&self) -> &http::HeaderMap {
        &self.headers
    }

    /// The subprotocol the server chose, if any.
    pub fn protocol(&self) -> Option<&str> {
        self.protocol.as_deref()
    }
}

impl Client {
    /// Starts a WebSocket handshake to `url` (`ws`, `wss`, `http` or `https`).
    ///
    /// ```no_run
    /// use futures_util::{SinkExt, StreamExt};
    /// use tokio_tungstenite::tungstenite::Message;
    ///
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let client = reqwest_resilience::Client::new();
    /// let (mut socket, _handshake) = client.websocket("ws://127.0.0.1:9001/chat").connect().await?;
    /// socket.send(Message::text("hello")).await?;
    /// let echo = socket.next().await;
    /// # Ok(()) }
    /// ```
    #[cfg_attr(docsrs, doc(cfg(feature = "websocket")))]
    pub fn websocket(&self, url: impl AsRef<str>) -> WebSocketBuilder {
        let url = url.as_ref();
        let http_url = match url.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("ws") => format!("http://{rest}"),
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("wss") => format!("https://{rest}"),
            _ => url.to_owned(),
        };
        let key = generate_key();
        // Handshakes go over HTTP/1.1 whatever the server offers: through an HTTP/1-only client.
        let client = self.for_websocket();
        let (client, unusable) = match client {
            Ok(client) => (client, None),
            Err(err) => (self.clone(), Some(err)),
        };
        let request = client
            .get(http_url)
            .version(reqwest::Version::HTTP_11)
            .header(header::CONNECTION, "Upgrade")
            .header(header::UPGRADE, "websocket")
            .header(header::SEC_WEBSOCKET_VERSION, "13")
            .header(header::SEC_WEBSOCKET_KEY, key.as_str());
        WebSocketBuilder {
            request,
            unusable,
            key,
            protocols: Vec::new(),
            config: None,
        }
    }
}

/// A WebSocket handshake being built; see the [module docs](self).
#[must_use = "a WebSocketBuilder does nothing until connected"]
#[derive(Debug)]
pub struct WebSocketBuilder {
    request: RequestBuilder,
    /// Why the HTTP/1-only client could not be made, if it could not.
    unusable: Option<GatewayError>,
    key: String,
    protocols: Vec<String>,
    config: Option<WebSocketConfig>,
}

impl WebSocketBuilder {
    fn map(mut self, f: impl FnOnce(RequestBuilder) -> RequestBuilder) -> Self {
        self.request = f(self.request);
        self
    }

    /// Adds a header to the upgrade request.
    pub fn header<K, V>(self, key: K, value: V) -> Self
    where
        http::HeaderName: TryFrom<K>,
        <http::HeaderName as TryFrom<K>>::Error: Into<http::Error>,
        HeaderValue: TryFrom<V>,
        <HeaderValue as TryFrom<V>>::Error: Into<http::Error>,
    {
        self.map(|r| r.header(key, value))
    }

    /// Offers these subprotocols, in order of preference (`Sec-WebSocket-Protocol`).
    pub fn protocols<I, P>(mut self, protocols: I) -> Self
    where
        I: IntoIterator<Item = P>,
        P: Into<String>,
    {
        self.protocols = protocols.into_iter().map(Into::into).collect();
        self
    }

    /// The WebSocket protocol settings (message and frame size limits…).
    pub fn config(mut self, config: WebSocketConfig) -> Self {
        self.config = Some(config);
        self
    }

    /// Retries the handshake by `policy` instead of the client's.
    pub fn retry(self, policy: RetryPolicy) -> Self {
        self.map(|r| r.retry(policy))
    }

    /// Tries the handshake once.
    pub fn no_retry(self) -> Self {
        self.map(RequestBuilder::no_retry)
    }

    /// The timeout of each handshake attempt.
    pub fn timeout(self, timeout: Duration) -> Self {
        self.map(|r| r.timeout(timeout))
    }

    /// The deadline of the whole handshake, retries included.
    pub fn deadline(self, deadline: Duration) -> Self {
        self.map(|r| r.deadline(deadline))
    }

    /// Performs the handshake through the client's stack and opens the WebSocket.
    pub async fn connect(self) -> Result<(WebSocket, Handshake), GatewayError> {
        if let Some(err) = self.unusable {
            return Err(err);
        }
        let mut request = self.request;
        if !self.protocols.is_empty() {
            request = request.header(header::SEC_WEBSOCKET_PROTOCOL, self.protocols.join(", "));
        }
        let response = request.send().await.map_err(handshake_failure)?;
        let url = response.url().clone();
        if response.version() == http::Version::HTTP_2 {
            // Only with a client that may negotiate HTTP/2 (one given to `reqwest_builder` or
            // `reqwest_client`): the upgrade cannot work over it, whatever the retries.
            let mut details = Details::new(
                ErrorKind::WebSocket,
                Origin::Transport,
                "the server negotiated HTTP/2, over which a WebSocket upgrade cannot work; give the client an HTTP/1-only reqwest client for WebSockets (websocket_reqwest_client or reqwest_builder_fn)".into(),
            )
            .with_permanent(true);
            details.set_server(&url);
            details.set_method(http::Method::GET);
            return Err(GatewayError::from_details(details));
        }
        let fail = |message: &'static str, response: &reqwest::Response| {
            let snapshot = ResponseSnapshot::new(
                response.status(),
                response.headers().clone(),
                Bytes::new(),
                false,
            );
            let mut details = Details::new(ErrorKind::WebSocket, Origin::Upstream, message.into())
                .with_response(snapshot);
            details.set_server(&url);
            details.set_method(http::Method::GET);
            GatewayError::from_details(details)
        };
        if response.status() != StatusCode::SWITCHING_PROTOCOLS {
            return Err(fail(
                "the server answered without switching to WebSocket",
                &response,
            ));
        }
        let expected = derive_accept_key(self.key.as_bytes());
        let accept = response.headers().get(header::SEC_WEBSOCKET_ACCEPT);
        if accept.map(HeaderValue::as_bytes) != Some(expected.as_bytes()) {
            return Err(fail("missing or wrong Sec-WebSocket-Accept", &response));
        }
        let protocol = response
            .headers()
            .get(header::SEC_WEBSOCKET_PROTOCOL)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        if let Some(chosen) = &protocol {
            if !self.protocols.iter().any(|p| p == chosen) {
                return Err(fail(
                    "the server chose a subprotocol that was not offered",
                    &response,
                ));
            }
        }
        let handshake = Handshake {
            headers: response.headers().clone(),
            protocol,
        };
        let upgraded = response.into_unbounded().upgrade().await.map_err(|err| {
            let mut e = GatewayError::from_details(
                Details::new(
                    ErrorKind::WebSocket,
                    Origin::Transport,
                    "the connection could not be upgraded".into(),
                )
                .with_source(std::sync::Arc::new(err.without_url())),
            );
            e.details_mut().set_server(&url);
            e
        })?;
        let socket = WebSocketStream::from_raw_socket(upgraded, Role::Client, self.config).await;
        Ok((socket, handshake))
    }
}

/// A failure of the upgrade request itself: a connection closed or garbled during the
/// handshake becomes 502.5 (keeping the transport failure as its cause); gateway answers,
/// refused connections, DNS failures and timeouts keep their own cause.
fn handshake_failure(err: GatewayError) -> GatewayError {
    let during_handshake = err.origin() == Origin::Transport
        && matches!(
            err.kind(),
            ErrorKind::ConnectionClosed | ErrorKind::InvalidResponse
        );
    if !during_handshake {
        return err;
    }
    let mut details = Details::new(
        ErrorKind::WebSocket,
        Origin::Transport,
        "the connection broke during the WebSocket handshake".into(),
    );
    details.set_method(http::Method::GET);
    details.set_attempts(err.attempts());
    if let Some(server) = err.server().and_then(|s| reqwest::Url::parse(s).ok()) {
        details.set_server(&server);
    }
    GatewayError::from_details(details.with_causes(vec![err]))
}
