//! The boxed context every `GatewayError` carries.

use super::{ErrorKind, GatewayError, ResponseSnapshot};
use crate::gateway::Gateway;
use http::{Method, StatusCode};
use std::borrow::Cow;
use std::error::Error as StdError;
use std::fmt::{self, Write as _};
use std::sync::Arc;

/// Where a failure was observed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Origin {
    /// A hop upstream answered with a response that says it failed (a gateway's 502, 503, 504…).
    Upstream,
    /// This crate's own connection to the server failed (refused, reset, DNS, TLS, malformed).
    Transport,
    /// A local policy ended the request: an attempt timeout, the deadline, the retry budget, an
    /// invalid request, or the caller's own service.
    Local,
}

/// The details of a [`GatewayError`]: what was seen, where, and what was done about it.
///
/// Its `Display` is the error's whole line (the [`GatewayError`]'s `Display`), and
/// [`message`](Self::message) the one-line message (e.g. `connection refused`); its `source()`
/// (and so the `GatewayError`'s) is the cause below, if any: the last earlier failure, or the
/// underlying error (a `reqwest` error without its URL, with hyper and `std::io` below). An
/// error report therefore prints each line once.
#[derive(Clone)]
pub struct Details {
    kind: ErrorKind,
    status: StatusCode,
    origin: Origin,
    message: Cow<'static, str>,
    response: Option<ResponseSnapshot>,
    gateway: Option<Gateway>,
    evidence: Option<Cow<'static, str>>,
    server: Option<Box<str>>,
    proxy: Option<Box<str>>,
    method: Option<Method>,
    attempts: u32,
    request_unsent: bool,
    permanent: bool,
    tls: bool,
    proxy_refused: bool,
    redirected: bool,
    deadline_cut: bool,
    resend_forbidden: bool,
    redirects_unseen: bool,
    /// The server is left to the retry loop above, which kept a copy of the attempt's URL
    /// (an attempt timeout's error under a client's loop; see `request::State`).
    server_left_above: bool,
    gave_up: Option<Cow<'static, str>>,
    /// Shared: copies of an error (a circuit's refusals quoting the same last cause) do not
    /// copy its causes.
    causes: Option<Arc<[GatewayError]>>,
    source: Option<Arc<dyn StdError + Send + Sync>>,
}

impl Details {
    pub(crate) fn new(kind: ErrorKind, origin: Origin, message: Cow<'static, str>) -> Details {
        Details {
            kind,
            status: kind.default_status(),
            origin,
            message,
            response: None,
            gateway: None,
            evidence: None,
            server: None,
            proxy: None,
            method: None,
            attempts: 0,
            request_unsent: kind == ErrorKind::InvalidRequest,
            permanent: false,
            tls: false,
            proxy_refused: false,
            redirected: false,
            deadline_cut: false,
            resend_forbidden: false,
            redirects_unseen: false,
            server_left_above: false,
            gave_up: None,
            causes: None,
            source: None,
        }
    }

    /// The cause these details are of (the error's variant).
    pub(crate) fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The HTTP status the error stands for.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// Where the failure was observed.
    pub fn origin(&self) -> Origin {
        self.origin
    }

    /// The one-line message: what happened, in words.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The upstream response the error was classified from.
    pub fn response(&self) -> Option<&ResponseSnapshot> {
        self.response.as_ref()
    }

    /// The gateway product that reported the failure, when recognised.
    pub fn gateway(&self) -> Option<Gateway> {
        self.gateway
    }

    /// What the classification rests on, e.g. `Envoy reset reason: remote connection failure`
    /// or `HRESULT 0x80072efd (cannot connect)`.
    pub fn evidence(&self) -> Option<&str> {
        self.evidence.as_deref()
    }

    /// The server of the failing attempt: scheme, host, port and path, nothing secret.
    pub fn server(&self) -> Option<&str> {
        self.server.as_deref()
    }

    /// The forward proxy the request went through (scheme, host and port), when the client
    /// knows of one.
    pub fn proxy(&self) -> Option<&str> {
        self.proxy.as_deref()
    }

    /// The method of the request.
    pub fn method(&self) -> Option<&Method> {
        self.method.as_ref()
    }

    /// How many attempts were made for the logical request.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Whether the failure proves the request never reached a server.
    pub fn is_request_unsent(&self) -> bool {
        self.request_unsent
    }

    /// Whether the same request to the same server would fail the same way (a rejected
    /// certificate, a port without TLS, a proxy refusing the tunnel): not retried there.
    pub fn is_permanent(&self) -> bool {
        self.permanent
    }

    /// Whether the TLS session with the server failed (handshake or certificate).
    pub fn is_tls_failure(&self) -> bool {
        self.tls
    }

    /// Whether the forward proxy refused the request itself (a `407` or another answer to
    /// `CONNECT`): no other server would fare better.
    pub fn is_proxy_refusal(&self) -> bool {
        self.proxy_refused
    }

    /// Whether the failure came after a redirect was followed: the original request was
    /// delivered (the redirect is its answer), and [`server`](Self::server) names the
    /// redirect's target, the hop that failed.
    pub fn followed_redirect(&self) -> bool {
        self.redirected
    }

    /// Whether this is an attempt timeout that fired early because the caller's deadline left
    /// less time than the attempt timeout: the deadline's doing, no verdict on the server
    /// (never counted by a circuit or a fallback server's health).
    pub fn cut_by_deadline(&self) -> bool {
        self.deadline_cut
    }

    pub(crate) fn set_cut_by_deadline(&mut self) {
        self.deadline_cut = true;
    }

    /// Whether the request must not be sent again: its method is not idempotent (no
    /// `Idempotency-Key`, no opt-in) and it may have reached the server. Set by the retry
    /// layer (and the middleware adapter) when the request ends.
    pub fn is_resend_forbidden(&self) -> bool {
        self.resend_forbidden
    }

    pub(crate) fn forbid_resend(&mut self) {
        self.resend_forbidden = true;
    }

    /// Whether the client that sent the request does not report the redirects it follows (the
    /// reqwest-middleware adapter's chain, or a `reqwest::Client` of your own under
    /// [`Transport`](crate::Transport) without redirect tracking). Then a failure after a
    /// followed redirect cannot be told from the original server's: [`server`](Self::server)
    /// names the URL as requested, and the diagnosis says the redirect's target may be the hop
    /// that failed.
    pub fn redirects_unseen(&self) -> bool {
        self.redirects_unseen
    }

    pub(crate) fn set_redirects_unseen(&mut self) {
        self.redirects_unseen = true;
    }

    /// Why a policy stopped retrying, if one did.
    pub fn not_retried_because(&self) -> Option<&str> {
        self.gave_up.as_deref()
    }

    /// Earlier failures of the same logical request that led to this one, oldest first: the
    /// last cause of an exceeded deadline, or each server's failure behind a `NoHealthyServer`.
    pub fn causes(&self) -> &[GatewayError] {
        self.causes.as_deref().unwrap_or(&[])
    }

    pub(crate) fn with_response(mut self, response: ResponseSnapshot) -> Self {
        self.status = response.status();
        self.response = Some(response);
        self
    }

    pub(crate) fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    pub(crate) fn with_gateway(mut self, gateway: Option<Gateway>) -> Self {
        self.gateway = gateway;
        self
    }

    pub(crate) fn with_evidence(mut self, evidence: Option<Cow<'static, str>>) -> Self {
        self.evidence = evidence;
        self
    }

    pub(crate) fn with_source(mut self, source: Arc<dyn StdError + Send + Sync>) -> Self {
        self.source = Some(source);
        self
    }

    pub(crate) fn with_request_unsent(mut self, unsent: bool) -> Self {
        self.request_unsent = unsent;
        self
    }

    pub(crate) fn with_permanent(mut self, permanent: bool) -> Self {
        self.permanent = permanent;
        self
    }

    pub(crate) fn with_proxy_refused(mut self, refused: bool) -> Self {
        self.proxy_refused = refused;
        self
    }

    pub(crate) fn with_tls(mut self, tls: bool) -> Self {
        self.tls = tls;
        self
    }

    /// Marks the failure as coming after a followed redirect: the original request was
    /// delivered (the redirect is its answer), so nothing proves it unsent any more, and the
    /// server that failed is the redirect's `target` when it is known.
    pub(crate) fn set_redirected(&mut self, target: Option<Box<str>>) {
        self.redirected = true;
        self.request_unsent = false;
        if let Some(target) = target {
            self.server = Some(target);
        }
    }

    /// Withdraws the proof that the request was unsent (it may have been delivered).
    pub(crate) fn clear_unsent(&mut self) {
        self.request_unsent = false;
    }

    pub(crate) fn with_causes(mut self, causes: Vec<GatewayError>) -> Self {
        self.causes = (!causes.is_empty()).then(|| causes.into());
        self
    }

    /// The causes, shared with other errors quoting them.
    pub(crate) fn with_shared_causes(mut self, causes: Arc<[GatewayError]>) -> Self {
        self.causes = Some(causes);
        self
    }

    pub(crate) fn set_method(&mut self, method: Method) {
        self.method = Some(method);
    }

    pub(crate) fn set_proxy(&mut self, proxy: &str) {
        self.proxy = Some(proxy.into());
    }

    pub(crate) fn server_box(&self) -> Option<Box<str>> {
        self.server.clone()
    }

    pub(crate) fn set_server_text(&mut self, server: Box<str>) {
        self.server = Some(server);
    }

    pub(crate) fn set_server(&mut self, url: &reqwest::Url) {
        self.server = Some(crate::redact::display_url(url).into_boxed_str());
    }

    /// [`set_server`](Self::set_server) from a URL not needed any more: shown from its own
    /// string, without a copy.
    pub(crate) fn set_server_from(&mut self, url: reqwest::Url) {
        self.server = Some(crate::redact::into_display_url(url).into_boxed_str());
    }

    /// Leaves the server to the retry loop above (see `request::State::server_named_above`).
    pub(crate) fn leave_server_above(&mut self) {
        self.server_left_above = true;
    }

    /// Names the server left to the retry loop above, from its copy of the attempt's URL.
    pub(crate) fn name_server_left_above(&mut self, url: &reqwest::Url) {
        if std::mem::take(&mut self.server_left_above) && self.server.is_none() {
            self.set_server(url);
        }
    }

    pub(crate) fn set_attempts(&mut self, attempts: u32) {
        self.attempts = attempts;
    }

    pub(crate) fn set_gave_up(&mut self, why: impl Into<Cow<'static, str>>) {
        self.gave_up = Some(why.into());
    }

    /// The full one-line `Display` of a `GatewayError` of `kind`.
    pub(crate) fn render(&self, kind: ErrorKind) -> String {
        let mut out = String::with_capacity(96);
        out.push_str(kind.label());
        if !self.message.is_empty() {
            out.push_str(": ");
            out.push_str(&self.message);
        }
        if let (Some(gateway), Origin::Upstream) = (self.gateway, self.origin) {
            let _ = write!(out, " (reported by {gateway})");
        }
        if let Some(server) = &self.server {
            out.push_str(" at ");
            out.push_str(server);
        }
        if self.attempts > 1 {
            let _ = write!(out, " after {} attempts", self.attempts);
        }
        if let Some(last) = self.causes().last() {
            let _ = write!(out, "; last: {}", last.kind().label());
            if !last.details().message.is_empty() {
                let _ = write!(out, " ({})", last.details().message);
            }
        }
        if let Some(why) = &self.gave_up {
            let _ = write!(out, "; gave up: {why}");
        }
        out
    }
}

impl fmt::Display for Details {
    /// The error's whole line (what `GatewayError`'s `Display` shows): the cause, the
    /// message, who reported it, the server, the attempts, the last cause and why retrying
    /// stopped.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render(self.kind))
    }
}

impl fmt::Debug for Details {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Details");
        d.field("status", &self.status)
            .field("origin", &self.origin)
            .field("message", &self.message);
        if let Some(server) = &self.server {
            d.field("server", server);
        }
        if let Some(proxy) = &self.proxy {
            d.field("proxy", proxy);
        }
        if let Some(method) = &self.method {
            d.field("method", method);
        }
        if let Some(gateway) = &self.gateway {
            d.field("gateway", gateway);
        }
        if let Some(evidence) = &self.evidence {
            d.field("evidence", evidence);
        }
        d.field("attempts", &self.attempts);
        if let Some(response) = &self.response {
            d.field("response", response);
        }
        if self.permanent {
            d.field("permanent", &true);
        }
        if self.redirected {
            d.field("followed_redirect", &true);
        }
        if let Some(why) = &self.gave_up {
            d.field("gave_up", why);
        }
        if !self.causes().is_empty() {
            d.field("causes", &self.causes());
        }
        if let Some(source) = &self.source {
            d.field("source", source);
        }
        d.finish()
    }
}

impl StdError for Details {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        if let Some(last) = self.causes().last() {
            return Some(last);
        }
        self.source
            .as_deref()
            .map(|e| e as &(dyn StdError + 'static))
    }
}
