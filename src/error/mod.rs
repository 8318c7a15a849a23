//! The typed error every request of this crate ends with: [`GatewayError`].
//!
//! # The mapping
//!
//! Each variant is a *cause*, named after the substatus codes IIS and Application Request
//! Routing (ARR) define for `502 Bad Gateway`, whichever hop observed it: a gateway in front of
//! the origin (seen in its response) or this crate's own transport (seen as a connection error).
//!
//! | variant | substatus | upstream answer | our own transport |
//! |---|---|---|---|
//! | [`TimedOut`](GatewayError::TimedOut) | 502.1 | IIS 502.1; any gateway's 504; Envoy `upstream request timeout`; Cloudflare 524; Squid `ERR_READ_TIMEOUT` | response head not received in time; our attempt timeout |
//! | [`ConnectionClosed`](GatewayError::ConnectionClosed) | 502.2 | IIS 502.2; HAProxy "invalid or incomplete response"; Envoy `connection termination`; Cloudflare 520; Apache "Error reading from remote server"; ANCM 502.5 startup failure | reset or close before a complete response; a truncated body |
//! | [`ConnectFailed`](GatewayError::ConnectFailed) | 502.3 | IIS 502.3 / ARR 0x80072efd; Envoy `remote connection failure`; Cloudflare 521, 522, 525, 526; Squid `ERR_CONNECT_FAIL`; Tinyproxy "Unable to connect" | connection refused, connect timeout, TLS handshake failure |
//! | [`NameNotResolved`](GatewayError::NameNotResolved) | 502.4 | Cloudflare 530/1016; Squid `ERR_DNS_FAIL`; Apache "DNS lookup failure"; a runtime's DNS error text in a gateway's page | DNS failure |
//! | [`NoHealthyServer`](GatewayError::NoHealthyServer) | 502.4 | IIS 502.4; Envoy `no healthy upstream`; HAProxy "No server is available"; ALB 503; Cloudflare 523, 530/1033; nginx "no live upstreams" | every fallback server failed or is ejected |
//! | [`WebSocket`](GatewayError::WebSocket) | 502.5 | IIS 502.5 (not ANCM's startup page) | a failed upgrade handshake |
//! | [`SendFailed`](GatewayError::SendFailed) | 502.6 | IIS 502.6; Squid `ERR_WRITE_ERROR` | writing the request or its body failed |
//! | [`InvalidResponse`](GatewayError::InvalidResponse) | 502.7 | IIS 502.7; Envoy `protocol error`; Squid `ERR_INVALID_RESP` | a malformed or protocol-violating response |
//! | [`BadGateway`](GatewayError::BadGateway) | — | a 502 nothing explains (nginx, Caddy, ALB, Google); Varnish "Backend fetch failed" | — |
//! | [`ServiceUnavailable`](GatewayError::ServiceUnavailable) | — | a 503 nothing explains | — |
//! | [`DeadlineExceeded`](GatewayError::DeadlineExceeded) | — | — | the total deadline ran out (carries the last cause) |
//! | [`InvalidRequest`](GatewayError::InvalidRequest) | — | — | bad URL, builder error: never retried |
//! | [`Decode`](GatewayError::Decode) | — | — | a whole body that is not what the caller decodes (`json()`) |
//! | [`Other`](GatewayError::Other) | — | — | a failure with no gateway meaning, e.g. a redirect loop |
//! | [`CircuitOpen`](GatewayError::CircuitOpen) | — | — | the host's [circuit](crate::circuit) is open: failed at once without touching the network |
//!
//! The variants are named by cause, as a Rust caller matches; each 502 cause keeps its IIS
//! substatus ([`GatewayError::substatus`], [`Substatus`]), and the IIS names stay searchable in
//! the docs (`CgiTimeout` finds [`TimedOut`](GatewayError::TimedOut)). IIS's 502.4 "no server"
//! is two variants here, because a caller acts differently on each: a name that does not
//! resolve (fix the name or DNS) and a pool with no server left (wait, or look at each
//! server's failure).
//!
//! Why these mappings follow from the IIS definitions:
//!
//! - 502.1 is "CGI application timeout": the process behind the hop was reached but did not
//!   answer in time. A gateway's 504 says exactly that about its upstream, and so does our own
//!   timeout waiting for a response head after the connection was made.
//! - 502.2 is "premature exit": the process behind started answering (or was handed the request)
//!   and went away before a complete response. A reset or close after the request was written,
//!   and a body cut short, are that fault seen from our side.
//! - 502.3 is ARR's "forwarder connection error" (HRESULTs such as 0x80072efd *cannot connect*):
//!   the hop could not open a connection. Refused connections, connect timeouts and failed TLS
//!   handshakes all happen before a request is delivered. ARR also reports some upstream
//!   *timeouts* (0x80072ee2) as 502.3; when a page names its substatus, we keep it.
//! - 502.4 is "no server": nothing to forward to. A name that does not resolve
//!   ([`NameNotResolved`](GatewayError::NameNotResolved)), or a pool with no healthy member
//!   ([`NoHealthyServer`](GatewayError::NoHealthyServer)), leaves no server.
//! - 502.5 is "WebSocket failure" (ASP.NET Core Module reuses the code for a process that failed
//!   to start; that page is read as 502.2, the process exited).
//! - 502.6 "forwarded request failure" and 502.7 "execute request failure" are failures while the
//!   request travels upstream and while its response is interpreted.
//!
//! # Cost
//!
//! `GatewayError` is two words: every variant holds a boxed [`Details`].
//!
//! # Secrets
//!
//! An error never holds a credential, a query string or request header values: the server is
//! kept as scheme, host, port and path, and `reqwest` errors in the source chain have their URL
//! removed.

mod details;
mod kind;
mod snapshot;
mod substatus;

pub use details::{Details, Origin};
pub use kind::ErrorKind;
pub use snapshot::ResponseSnapshot;
pub use substatus::{ParseSubstatusError, Substatus};

use crate::gateway::Gateway;
use http::StatusCode;
use std::borrow::Cow;

/// The error a resilient request ends with: one variant per cause.
///
/// Match on the variant for the cause; call the accessors for the details (they work on every
/// variant). See the [module documentation](self) for the full mapping.
///
/// ```
/// use reqwest_resilience::{ErrorKind, GatewayError, Substatus};
///
/// let err = GatewayError::new(ErrorKind::ConnectFailed, "connection refused");
/// match &err {
///     GatewayError::ConnectFailed(_) => {}
///     other => panic!("unexpected {other}"),
/// }
/// assert_eq!(err.substatus(), Some(Substatus::ForwarderConnection));
/// assert_eq!(err.status().as_u16(), 502);
/// assert!(err.is_retryable());
/// assert_eq!(err.to_string(), "502.3 could not connect: connection refused");
/// ```
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum GatewayError {
    /// No answer in time (502.1): the server behind the hop was reached but did not answer
    /// before a timer fired. A gateway's 504 or IIS 502.1 ([`origin`](Self::origin)
    /// `Upstream`), or this crate's own per-attempt timeout (`Local`).
    #[doc(alias = "CgiTimeout")]
    #[doc(alias = "504")]
    #[doc(alias = "GatewayTimeout")]
    #[error(transparent)]
    TimedOut(Box<Details>),
    /// The connection closed before a complete response (502.2): a reset, a close, a body cut
    /// short, a server that exited while handling the request.
    #[doc(alias = "PrematureExit")]
    #[error(transparent)]
    ConnectionClosed(Box<Details>),
    /// Could not connect (502.3): refused, connect timeout, TLS handshake failure; the request
    /// was not delivered.
    #[doc(alias = "ForwarderConnection")]
    #[error(transparent)]
    ConnectFailed(Box<Details>),
    /// The server's name did not resolve (502.4): a DNS failure, here or at a gateway that
    /// says so (Squid `ERR_DNS_FAIL`, Apache's "DNS lookup failure", Cloudflare 1016).
    #[doc(alias = "NoServer")]
    #[doc(alias = "DNS")]
    #[error(transparent)]
    NameNotResolved(Box<Details>),
    /// No server left to send to (502.4): every fallback server failed or is ejected (each
    /// one's failure is in [`Details::causes`]), or a gateway says it has no healthy
    /// upstream (Envoy, HAProxy, an AWS ALB's 503, IIS 502.4).
    #[doc(alias = "NoServer")]
    #[error(transparent)]
    NoHealthyServer(Box<Details>),
    /// A WebSocket upgrade failed (502.5).
    #[error(transparent)]
    WebSocket(Box<Details>),
    /// Sending the request failed (502.6): writing the request or its body broke.
    #[doc(alias = "ForwardedRequest")]
    #[error(transparent)]
    SendFailed(Box<Details>),
    /// A malformed or protocol-violating response (502.7).
    #[doc(alias = "ExecuteRequest")]
    #[error(transparent)]
    InvalidResponse(Box<Details>),
    /// A 502 whose cause nothing tells.
    #[error(transparent)]
    BadGateway(Box<Details>),
    /// A 503 whose cause nothing tells.
    #[error(transparent)]
    ServiceUnavailable(Box<Details>),
    /// The total deadline of the logical request ran out; [`last_cause`](Self::last_cause) tells
    /// what the last attempt failed with, if one had failed.
    #[error(transparent)]
    DeadlineExceeded(Box<Details>),
    /// The request was invalid as given (bad URL, builder error); it was never sent.
    #[error(transparent)]
    InvalidRequest(Box<Details>),
    /// The response arrived whole, but its body could not be decoded as the caller asked:
    /// `json::<T>()` of a body that is not that JSON. The server answered; nothing is wrong
    /// with the way there, so it is never retried. Its [`status`](Self::status) is 502 (the
    /// answer could not be used); the `reqwest` error is its `source()`.
    #[error(transparent)]
    Decode(Box<Details>),
    /// A failure with no gateway meaning, such as a redirect loop.
    #[error(transparent)]
    Other(Box<Details>),
    /// The circuit of the request's host is open (see [`circuit`](crate::circuit)): recent
    /// attempts to it failed, so this one failed at once without touching the network. The
    /// message says since when and the last cause ([`last_cause`](Self::last_cause)); the
    /// request was never sent.
    #[error(transparent)]
    CircuitOpen(Box<Details>),
}

impl GatewayError {
    /// An error of this kind observed locally (by the caller's own code), with a one-line
    /// message. Useful in a custom inner service.
    pub fn new(kind: ErrorKind, message: impl Into<Cow<'static, str>>) -> GatewayError {
        GatewayError::from_details(Details::new(kind, Origin::Local, message.into()))
    }

    /// The one constructor: the variant is the kind the details were made for.
    pub(crate) fn from_details(details: Details) -> GatewayError {
        let kind = details.kind();
        let d = Box::new(details);
        match kind {
            ErrorKind::TimedOut => GatewayError::TimedOut(d),
            ErrorKind::ConnectionClosed => GatewayError::ConnectionClosed(d),
            ErrorKind::ConnectFailed => GatewayError::ConnectFailed(d),
            ErrorKind::NameNotResolved => GatewayError::NameNotResolved(d),
            ErrorKind::NoHealthyServer => GatewayError::NoHealthyServer(d),
            ErrorKind::WebSocket => GatewayError::WebSocket(d),
            ErrorKind::SendFailed => GatewayError::SendFailed(d),
            ErrorKind::InvalidResponse => GatewayError::InvalidResponse(d),
            ErrorKind::BadGateway => GatewayError::BadGateway(d),
            ErrorKind::ServiceUnavailable => GatewayError::ServiceUnavailable(d),
            ErrorKind::DeadlineExceeded => GatewayError::DeadlineExceeded(d),
            ErrorKind::InvalidRequest => GatewayError::InvalidRequest(d),
            ErrorKind::Decode => GatewayError::Decode(d),
            ErrorKind::Other => GatewayError::Other(d),
            ErrorKind::CircuitOpen => GatewayError::CircuitOpen(d),
        }
    }

    /// The cause, without details.
    pub fn kind(&self) -> ErrorKind {
        match self {
            GatewayError::TimedOut(_) => ErrorKind::TimedOut,
            GatewayError::ConnectionClosed(_) => ErrorKind::ConnectionClosed,
            GatewayError::ConnectFailed(_) => ErrorKind::ConnectFailed,
            GatewayError::NameNotResolved(_) => ErrorKind::NameNotResolved,
            GatewayError::NoHealthyServer(_) => ErrorKind::NoHealthyServer,
            GatewayError::WebSocket(_) => ErrorKind::WebSocket,
            GatewayError::SendFailed(_) => ErrorKind::SendFailed,
            GatewayError::InvalidResponse(_) => ErrorKind::InvalidResponse,
            GatewayError::BadGateway(_) => ErrorKind::BadGateway,
            GatewayError::ServiceUnavailable(_) => ErrorKind::ServiceUnavailable,
            GatewayError::DeadlineExceeded(_) => ErrorKind::DeadlineExceeded,
            GatewayError::InvalidRequest(_) => ErrorKind::InvalidRequest,
            GatewayError::Decode(_) => ErrorKind::Decode,
            GatewayError::Other(_) => ErrorKind::Other,
            GatewayError::CircuitOpen(_) => ErrorKind::CircuitOpen,
        }
    }

    /// The details every variant carries.
    pub fn details(&self) -> &Details {
        match self {
            GatewayError::TimedOut(d)
            | GatewayError::ConnectionClosed(d)
            | GatewayError::ConnectFailed(d)
            | GatewayError::NameNotResolved(d)
            | GatewayError::NoHealthyServer(d)
            | GatewayError::WebSocket(d)
            | GatewayError::SendFailed(d)
            | GatewayError::InvalidResponse(d)
            | GatewayError::BadGateway(d)
            | GatewayError::ServiceUnavailable(d)
            | GatewayError::DeadlineExceeded(d)
            | GatewayError::InvalidRequest(d)
            | GatewayError::Decode(d)
            | GatewayError::Other(d)
            | GatewayError::CircuitOpen(d) => d,
        }
    }

    pub(crate) fn details_mut(&mut self) -> &mut Details {
        match self {
            GatewayError::TimedOut(d)
            | GatewayError::ConnectionClosed(d)
            | GatewayError::ConnectFailed(d)
            | GatewayError::NameNotResolved(d)
            | GatewayError::NoHealthyServer(d)
            | GatewayError::WebSocket(d)
            | GatewayError::SendFailed(d)
            | GatewayError::InvalidResponse(d)
            | GatewayError::BadGateway(d)
            | GatewayError::ServiceUnavailable(d)
            | GatewayError::DeadlineExceeded(d)
            | GatewayError::InvalidRequest(d)
            | GatewayError::Decode(d)
            | GatewayError::Other(d)
            | GatewayError::CircuitOpen(d) => d,
        }
    }

    /// The HTTP status this error stands for: the upstream's when a response was seen, otherwise
    /// 502 for a transport fault (503, 504 and 400 for the kinds that mean those).
    pub fn status(&self) -> StatusCode {
        self.details().status()
    }

    /// The 502 substatus, for the variants that have one.
    pub fn substatus(&self) -> Option<Substatus> {
        self.kind().substatus()
    }

    /// Where the failure was observed.
    pub fn origin(&self) -> Origin {
        self.details().origin()
    }

    /// The upstream response this error was classified from, if any.
    pub fn response(&self) -> Option<&ResponseSnapshot> {
        self.details().response()
    }

    /// The gateway product that reported the failure, when recognised.
    pub fn gateway(&self) -> Option<Gateway> {
        self.details().gateway()
    }

    /// The server the failing attempt went to: scheme, host, port and path only.
    pub fn server(&self) -> Option<&str> {
        self.details().server()
    }

    /// How many attempts were made for the logical request (at least 1 once anything was sent).
    pub fn attempts(&self) -> u32 {
        self.details().attempts()
    }

    /// Whether this request may be sent again, now that the crate gave it back: its cause is
    /// [transient](Self::is_transient), and sending it again cannot duplicate it — false for a
    /// non-idempotent request (a POST without an `Idempotency-Key` or the caller's opt-in) that
    /// may have been delivered, which the retry layer just declined to resend
    /// ([`Details::is_resend_forbidden`]). Errors that did not come through the retry layer
    /// (a stack of your own without it) are judged by their cause alone.
    ///
    /// ```
    /// use reqwest_resilience::{ErrorKind, GatewayError};
    ///
    /// let err = GatewayError::new(ErrorKind::BadGateway, "502 from the proxy");
    /// assert!(err.is_transient() && err.is_retryable());
    /// ```
    pub fn is_retryable(&self) -> bool {
        self.is_transient() && !self.details().is_resend_forbidden()
    }

    /// Whether the cause is transient, method rules aside (see [`ErrorKind::is_retryable`]), on
    /// the same server: a [permanent](Details::is_permanent) failure is not (a rejected
    /// certificate, a port that does not speak TLS, a proxy refusing the tunnel). This is what
    /// the retry policy's default rule asks; whether the *request* may be sent again is
    /// [`is_retryable`](Self::is_retryable).
    pub fn is_transient(&self) -> bool {
        self.kind().is_retryable() && !self.details().is_permanent()
    }

    /// Whether the failure proves the request never reached a server (refused connection, DNS
    /// failure, no server, invalid request), so that sending it again cannot duplicate it.
    pub fn is_request_unsent(&self) -> bool {
        self.details().is_request_unsent()
    }

    /// For [`DeadlineExceeded`](Self::DeadlineExceeded), and for the per-server causes of a
    /// fallback chain, the last failure before this one.
    pub fn last_cause(&self) -> Option<&GatewayError> {
        self.details().causes().last()
    }

    /// The one-line reason the request was not (or no longer) retried, if a policy gave up.
    pub fn not_retried_because(&self) -> Option<&str> {
        self.details().not_retried_because()
    }
}

/// Records an outcome on a span by OpenTelemetry's HTTP conventions: the response's status
/// when one came (a failure read from a response included), and `error.type` — the status code
/// for an error status (≥ 400), `timeout` for a timer's failure, else the cause's name.
pub(crate) fn record_outcome(
    span: &tracing::Span,
    ok_status: Option<StatusCode>,
    err: Option<&GatewayError>,
) {
    let status = ok_status.or_else(|| err.and_then(|e| e.response()).map(|r| r.status()));
    if let Some(status) = status {
        span.record("http.response.status_code", status.as_u16());
        if status.as_u16() >= 400 {
            span.record("error.type", status.as_str());
            return;
        }
    }
    if let Some(err) = err {
        let error_type = match err.kind() {
            ErrorKind::TimedOut | ErrorKind::DeadlineExceeded => "timeout",
            kind => kind.name(),
        };
        span.record("error.type", error_type);
    }
}

/// A duration as a person reads it: `183 ms`, `2 s`, `12.4 s`, `5 min 3 s`.
pub(crate) struct Shown(pub(crate) std::time::Duration);

impl std::fmt::Display for Shown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut out = String::new();
        push_duration(&mut out, self.0);
        f.write_str(&out)
    }
}

/// Appends `d` as a person reads it (`183 ms`, `12.4 s`, `5 min 3 s`), with integer
/// arithmetic only: a circuit formats one on every refusal.
pub(crate) fn push_duration(out: &mut String, d: std::time::Duration) {
    fn push_int(out: &mut String, mut n: u64) {
        let mut digits = [0u8; 20];
        let mut at = digits.len();
        loop {
            at -= 1;
            digits[at] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        out.push_str(std::str::from_utf8(&digits[at..]).unwrap_or("?"));
    }
    let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    if ms < 1_000 {
        push_int(out, ms);
        out.push_str(" ms");
    } else if ms < 60_000 {
        // Tenths rounded as `{:.1}` rounds them; whole seconds without them.
        let tenths = (ms + 50) / 100;
        push_int(out, tenths / 10);
        if tenths % 10 != 0 {
            out.push('.');
            push_int(out, tenths % 10);
        }
        out.push_str(" s");
    } else {
        let secs = d.as_secs();
        push_int(out, secs / 60);
        out.push_str(" min ");
        push_int(out, secs % 60);
        out.push_str(" s");
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn durations_read_as_people_read_them() {
        let shown = |ms| super::Shown(std::time::Duration::from_millis(ms)).to_string();
        assert_eq!(shown(0), "0 ms");
        assert_eq!(shown(183), "183 ms");
        assert_eq!(shown(1_000), "1 s");
        assert_eq!(shown(1_049), "1 s");
        assert_eq!(shown(1_050), "1.1 s");
        assert_eq!(shown(29_950), "30 s");
        assert_eq!(shown(2_345), "2.3 s");
        assert_eq!(shown(60_000), "1 min 0 s");
        assert_eq!(shown(303_000), "5 min 3 s");
    }

    use super::*;

    #[test]
    fn an_error_report_prints_each_line_once() {
        use std::error::Error as _;
        let cause = GatewayError::new(ErrorKind::ConnectFailed, "connection refused");
        let details = Details::new(
            ErrorKind::DeadlineExceeded,
            Origin::Local,
            "deadline of 1s exceeded".into(),
        )
        .with_causes(vec![cause]);
        let err = GatewayError::from_details(details);
        let mut lines = vec![err.to_string()];
        let mut source = err.source();
        while let Some(e) = source {
            lines.push(e.to_string());
            source = e.source();
        }
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(lines[0].starts_with("deadline exceeded"), "{lines:?}");
        assert!(lines[1].starts_with("502.3"), "{lines:?}");
    }

    #[test]
    fn is_two_words() {
        assert!(std::mem::size_of::<GatewayError>() <= 2 * std::mem::size_of::<usize>());
    }

    #[test]
    fn every_kind_round_trips_through_its_variant() {
        for kind in [
            ErrorKind::TimedOut,
            ErrorKind::ConnectionClosed,
            ErrorKind::ConnectFailed,
            ErrorKind::NameNotResolved,
            ErrorKind::NoHealthyServer,
            ErrorKind::WebSocket,
            ErrorKind::SendFailed,
            ErrorKind::InvalidResponse,
            ErrorKind::BadGateway,
            ErrorKind::ServiceUnavailable,
            ErrorKind::DeadlineExceeded,
            ErrorKind::InvalidRequest,
            ErrorKind::Other,
            ErrorKind::CircuitOpen,
        ] {
            let err = GatewayError::new(kind, "x");
            assert_eq!(err.kind(), kind);
            assert_eq!(err.status(), kind.default_status());
            assert!(err.to_string().starts_with(kind.label()));
        }
    }
}
