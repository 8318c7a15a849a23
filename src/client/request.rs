//! Building and sending one request.

use super::Client;
use super::Pending;
use crate::error::{ErrorKind, GatewayError};
use crate::request::{Request, RequestOptions};
use crate::retry::RetryPolicy;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use std::fmt;
use std::time::Duration;

/// A request being built; [`send`](RequestBuilder::send) runs it through the client's stack.
///
/// The methods mirror `reqwest::RequestBuilder`; per-request policy overrides sit beside them.
#[must_use = "a RequestBuilder does nothing until sent"]
pub struct RequestBuilder {
    client: Client,
    inner: reqwest::RequestBuilder,
    options: RequestOptions,
}

impl RequestBuilder {
    pub(super) fn new(client: Client, inner: reqwest::RequestBuilder) -> RequestBuilder {
        RequestBuilder {
            client,
            inner,
            options: RequestOptions::default(),
        }
    }

    fn map(mut self, f: impl FnOnce(reqwest::RequestBuilder) -> reqwest::RequestBuilder) -> Self {
        self.inner = f(self.inner);
        self
    }

    /// Adds a header.
    pub fn header<K, V>(self, key: K, value: V) -> RequestBuilder
    where
        HeaderName: TryFrom<K>,
        <HeaderName as TryFrom<K>>::Error: Into<http::Error>,
        HeaderValue: TryFrom<V>,
        <HeaderValue as TryFrom<V>>::Error: Into<http::Error>,
    {
        self.map(|b| b.header(key, value))
    }

    /// Adds headers.
    pub fn headers(self, headers: HeaderMap) -> RequestBuilder {
        self.map(|b| b.headers(headers))
    }

    /// Sets HTTP basic authentication (the header is marked sensitive).
    pub fn basic_auth<U: fmt::Display, P: fmt::Display>(
        self,
        username: U,
        password: Option<P>,
    ) -> RequestBuilder {
        self.map(|b| b.basic_auth(username, password))
    }

    /// Sets bearer authentication (the header is marked sensitive).
    pub fn bearer_auth<T: fmt::Display>(self, token: T) -> RequestBuilder {
        self.map(|b| b.bearer_auth(token))
    }

    /// Sets the body. A buffered body can be replayed on a retry; a stream cannot.
    pub fn body<T: Into<reqwest::Body>>(self, body: T) -> RequestBuilder {
        self.map(|b| b.body(body))
    }

    /// Sets the HTTP version.
    pub fn version(self, version: reqwest::Version) -> RequestBuilder {
        self.map(|b| b.version(version))
    }

    /// Adds query parameters (needs the `query` feature).
    #[cfg(feature = "query")]
    #[cfg_attr(docsrs, doc(cfg(feature = "query")))]
    pub fn query<T: serde::Serialize + ?Sized>(self, query: &T) -> RequestBuilder {
        self.map(|b| b.query(query))
    }

    /// Sends a JSON body (needs the `json` feature).
    #[cfg(feature = "json")]
    #[cfg_attr(docsrs, doc(cfg(feature = "json")))]
    pub fn json<T: serde::Serialize + ?Sized>(self, json: &T) -> RequestBuilder {
        self.map(|b| b.json(json))
    }

    /// Sends a form body (needs the `form` feature).
    #[cfg(feature = "form")]
    #[cfg_attr(docsrs, doc(cfg(feature = "form")))]
    pub fn form<T: serde::Serialize + ?Sized>(self, form: &T) -> RequestBuilder {
        self.map(|b| b.form(form))
    }

    fn option(mut self, set: impl FnOnce(&mut RequestOptions)) -> RequestBuilder {
        set(&mut self.options);
        self
    }

    /// Retries this request by `policy` instead of the client's. It draws on the client's
    /// retry budget unless the policy was given a budget of its own
    /// ([`RetryPolicy::budget`](crate::retry::RetryPolicy::budget), or
    /// [`no_budget`](crate::retry::RetryPolicy::no_budget)): a per-request policy does not
    /// bring a fresh, full budget with every call.
    pub fn retry(self, policy: RetryPolicy) -> RequestBuilder {
        self.option(|o| o.retry = Some(policy))
    }

    /// Sends this request once, whatever the client's retry policy.
    pub fn no_retry(self) -> RequestBuilder {
        self.retry(RetryPolicy::never())
    }

    /// Declares this request safe to repeat although its method is not idempotent (a POST
    /// whose server deduplicates, say), so that it is retried like a GET.
    pub fn idempotent(self) -> RequestBuilder {
        self.option(|o| o.idempotent = true)
    }

    /// The timeout of each attempt of this request, instead of the client's (needs the client's
    /// attempt timeout layer, which the default client has). Unlike reqwest's `timeout`, which
    /// bounds one whole request, this bounds each attempt; [`deadline`](Self::deadline) bounds
    /// them all.
    ///
    /// `Duration::ZERO` turns the attempt timeout off for this request, as on the
    /// [`ClientBuilder`](crate::ClientBuilder).
    pub fn timeout(self, timeout: Duration) -> RequestBuilder {
        self.option(|o| o.attempt_timeout = Some(timeout))
    }

    /// The deadline of this request, instead of the client's (needs the client's deadline
    /// layer, which the default client has).
    ///
    /// `Duration::ZERO` turns the deadline off for this request, as on the
    /// [`ClientBuilder`](crate::ClientBuilder).
    pub fn deadline(self, deadline: Duration) -> RequestBuilder {
        self.option(|o| o.deadline = Some(deadline))
    }

    /// Sends this request to the server its URL names and no other, bypassing the client's
    /// [fallback servers](crate::ClientBuilder::fallback_servers): no re-targeting to the
    /// primary, no failover (to reach one replica of several, say). Retries, timeouts and the
    /// deadline still apply; a circuit, if the client has one, still judges that host.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), reqwest_resilience::GatewayError> {
    /// let client = reqwest_resilience::Client::builder()
    ///     .fallback_servers(["http://10.0.0.1:8080", "http://10.0.0.2:8080"])
    ///     .build()
    ///     .unwrap();
    /// // Asks the second replica itself, even while the first one is healthy.
    /// let health = client
    ///     .get("http://10.0.0.2:8080/health")
    ///     .this_server_only()
    ///     .send()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn this_server_only(self) -> RequestBuilder {
        self.option(|o| o.this_server_only = true)
    }

    /// Builds the request without sending it: this crate's [`Request`], which carries the
    /// per-request options ([`timeout`](Self::timeout), [`deadline`](Self::deadline),
    /// [`retry`](Self::retry), [`no_retry`](Self::no_retry), [`idempotent`](Self::idempotent))
    /// to [`Client::execute`](super::Client::execute) or
    /// [`into_service`](super::Client::into_service), as reqwest's `build()` keeps its
    /// timeout. [`Request::into_inner`] gives the `reqwest::Request` (credentials written in
    /// the URL are in its `Authorization` header, marked sensitive, as reqwest puts them).
    pub fn build(self) -> Result<Request, GatewayError> {
        self.build_request()
    }

    /// Builds the [`Request`] with this builder's per-request options (the same as
    /// [`build`](Self::build)).
    pub fn build_request(self) -> Result<Request, GatewayError> {
        let inner = self.inner.build().map_err(invalid)?;
        Ok(Request::built_here(inner, self.options))
    }

    /// Sends the request through the client's stack: a future of its
    /// [`Response`](crate::Response), which does nothing until first polled (see [`Pending`]).
    #[inline]
    pub fn send(self) -> Pending {
        match self.inner.build() {
            Ok(request) => Pending::new(
                self.client.stack,
                Request::built_here(request, self.options),
            ),
            Err(err) => Pending::failed(invalid(err)),
        }
    }
}

impl fmt::Debug for RequestBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestBuilder").finish_non_exhaustive()
    }
}

fn invalid(err: reqwest::Error) -> GatewayError {
    let mut error = GatewayError::from_reqwest(err);
    if error.kind() != ErrorKind::InvalidRequest {
        // A reqwest builder error is always a problem of the request as given.
        error = GatewayError::new(
            ErrorKind::InvalidRequest,
            error.details().message().to_owned(),
        );
    }
    error
}
