//! The resilient [`Client`]: `reqwest`'s API, with every failure a [`GatewayError`].

mod builder;
mod pending;
mod request;
mod stack;

pub use builder::{BuildError, ClientBuilder, DEFAULT_ATTEMPT_TIMEOUT, DEFAULT_DEADLINE};
pub use pending::Pending;
pub use request::RequestBuilder;

use crate::error::GatewayError;
use crate::request::Request;
use reqwest::{IntoUrl, Method};
pub(crate) use stack::Stack;
use tower::util::BoxCloneSyncService;

/// An HTTP client whose requests end in `Result<Response, GatewayError>`, and whose bodies
/// are read with the same error type (see [`Response`](crate::Response)).
///
/// Cloning is cheap and clones share the connection pool and every shared policy state.
///
/// ```no_run
/// # async fn run() -> Result<(), reqwest_resilience::GatewayError> {
/// let client = reqwest_resilience::Client::new();
/// match client.get("http://127.0.0.1:8080/health").send().await {
///     Ok(response) => println!("{}", response.status()),
///     Err(err) => eprintln!("{err}"),
/// }
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Client {
    reqwest: reqwest::Client,
    stack: Stack,
    /// The primary fallback server, for requests given as a path (`/items`).
    primary: Option<std::sync::Arc<str>>,
    /// The stack WebSocket handshakes go through: over an HTTP/1-only reqwest client, built on
    /// first use (an upgrade cannot work over HTTP/2, which TLS may negotiate).
    #[cfg(feature = "websocket")]
    websocket: std::sync::Arc<builder::WebSocketStack>,
}

impl Client {
    /// A client with the default configuration.
    ///
    /// # Panics
    ///
    /// Like `reqwest::Client::new`, when the TLS backend cannot be initialised. Use
    /// [`Client::builder`] to handle that as an error.
    pub fn new() -> Client {
        ClientBuilder::new()
            .build()
            .expect("the default client configuration failed to build (TLS backend unavailable?)")
    }

    /// A builder to configure a client.
    pub fn builder() -> ClientBuilder {
        ClientBuilder::new()
    }

    /// Starts a `GET` request.
    pub fn get<U: IntoUrl + AsRef<str>>(&self, url: U) -> RequestBuilder {
        self.request(Method::GET, url)
    }

    /// Starts a `POST` request.
    pub fn post<U: IntoUrl + AsRef<str>>(&self, url: U) -> RequestBuilder {
        self.request(Method::POST, url)
    }

    /// Starts a `PUT` request.
    pub fn put<U: IntoUrl + AsRef<str>>(&self, url: U) -> RequestBuilder {
        self.request(Method::PUT, url)
    }

    /// Starts a `PATCH` request.
    pub fn patch<U: IntoUrl + AsRef<str>>(&self, url: U) -> RequestBuilder {
        self.request(Method::PATCH, url)
    }

    /// Starts a `DELETE` request.
    pub fn delete<U: IntoUrl + AsRef<str>>(&self, url: U) -> RequestBuilder {
        self.request(Method::DELETE, url)
    }

    /// Starts a `HEAD` request.
    pub fn head<U: IntoUrl + AsRef<str>>(&self, url: U) -> RequestBuilder {
        self.request(Method::HEAD, url)
    }

    /// Starts a request with any method. With [fallback servers](ClientBuilder::fallback_servers),
    /// `url` may also be a path (`/items?page=2`), taken relative to the primary server.
    pub fn request<U: IntoUrl + AsRef<str>>(&self, method: Method, url: U) -> RequestBuilder {
        // With fallback servers, a path alone is relative to the primary (its prefix kept).
        if let (Some(primary), true) = (&self.primary, url.as_ref().starts_with('/')) {
            let absolute = format!("{}{}", primary.trim_end_matches('/'), url.as_ref());
            return self.request(method, absolute);
        }
        RequestBuilder::new(self.clone(), self.reqwest.request(method, url))
    }

    /// Sends an already built request through the client's stack: a [`Request`] from
    /// [`RequestBuilder::build`] (its per-request options kept), or a `reqwest::Request` (the
    /// client's settings).
    pub fn execute(&self, request: impl Into<Request>) -> Pending {
        Pending::new(self.stack.clone(), request.into())
    }

    /// A clone of this client that sends through the WebSocket stack.
    #[cfg(feature = "websocket")]
    pub(crate) fn for_websocket(&self) -> Result<Client, GatewayError> {
        let mut client = self.clone();
        client.stack = self.websocket.get()?;
        Ok(client)
    }

    /// The underlying `reqwest::Client`.
    pub fn reqwest_client(&self) -> &reqwest::Client {
        &self.reqwest
    }

    /// The client's whole stack as one `tower::Service`, to wrap in further layers or to use
    /// inside another stack. Each call is a logical request of its own: its deadline, attempts
    /// and overrides are never shared with a request of an outer stack it runs in.
    ///
    /// It takes this crate's [`Request`]: make one with `Request::from(reqwest_request)` (or
    /// `.into()`), or with [`RequestBuilder::build_request`] to keep per-request options.
    pub fn into_service(self) -> BoxCloneSyncService<Request, reqwest::Response, GatewayError> {
        BoxCloneSyncService::new(crate::request::Isolated(stack::StackService(self.stack)))
    }
}

impl Default for Client {
    fn default() -> Self {
        Client::new()
    }
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").finish_non_exhaustive()
    }
}
