//! The cause of a failure, without its details.

use super::Substatus;
use http::StatusCode;

/// The cause a [`GatewayError`](super::GatewayError) stands for, as a small `Copy` value.
///
/// Each kind matches one variant of `GatewayError`; use it where the details do not matter:
/// retry predicates, metrics, `tracing` fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// 502.1: see [`GatewayError::CgiTimeout`](super::GatewayError::CgiTimeout).
    CgiTimeout,
    /// 502.2: see [`GatewayError::PrematureExit`](super::GatewayError::PrematureExit).
    PrematureExit,
    /// 502.3: see [`GatewayError::ForwarderConnection`](super::GatewayError::ForwarderConnection).
    ForwarderConnection,
    /// 502.4: see [`GatewayError::NoServer`](super::GatewayError::NoServer).
    NoServer,
    /// 502.5: see [`GatewayError::WebSocket`](super::GatewayError::WebSocket).
    WebSocket,
    /// 502.6: see [`GatewayError::ForwardedRequest`](super::GatewayError::ForwardedRequest).
    ForwardedRequest,
    /// 502.7: see [`GatewayError::ExecuteRequest`](super::GatewayError::ExecuteRequest).
    ExecuteRequest,
    /// A 502 whose cause nothing tells.
    BadGateway,
    /// A 503 whose cause nothing tells.
    ServiceUnavailable,
    /// The total deadline of the logical request ran out.
    DeadlineExceeded,
    /// The request could not be built or sent as given; never retried.
    InvalidRequest,
    /// A failure with no gateway meaning (e.g. a redirect loop); never retried.
    Other,
    /// The host's circuit is open: see [`GatewayError::CircuitOpen`](super::GatewayError::CircuitOpen).
    CircuitOpen,
}

impl ErrorKind {
    /// The 502 substatus this kind stands for, if any.
    pub fn substatus(self) -> Option<Substatus> {
        Some(match self {
            ErrorKind::CgiTimeout => Substatus::CgiTimeout,
            ErrorKind::PrematureExit => Substatus::PrematureExit,
            ErrorKind::ForwarderConnection => Substatus::ForwarderConnection,
            ErrorKind::NoServer => Substatus::NoServer,
            ErrorKind::WebSocket => Substatus::WebSocket,
            ErrorKind::ForwardedRequest => Substatus::ForwardedRequest,
            ErrorKind::ExecuteRequest => Substatus::ExecuteRequest,
            _ => return None,
        })
    }

    /// The kind for a substatus.
    pub fn from_substatus(s: Substatus) -> ErrorKind {
        match s {
            Substatus::CgiTimeout => ErrorKind::CgiTimeout,
            Substatus::PrematureExit => ErrorKind::PrematureExit,
            Substatus::ForwarderConnection => ErrorKind::ForwarderConnection,
            Substatus::NoServer => ErrorKind::NoServer,
            Substatus::WebSocket => ErrorKind::WebSocket,
            Substatus::ForwardedRequest => ErrorKind::ForwardedRequest,
            Substatus::ExecuteRequest => ErrorKind::ExecuteRequest,
        }
    }

    /// The status a local failure of this kind stands for: 503 for
    /// [`ServiceUnavailable`](Self::ServiceUnavailable), 504 for an exceeded deadline, 400 for an
    /// invalid request, 502 for everything else.
    pub fn default_status(self) -> StatusCode {
        match self {
            ErrorKind::ServiceUnavailable | ErrorKind::CircuitOpen => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ErrorKind::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
            ErrorKind::InvalidRequest => StatusCode::BAD_REQUEST,
            _ => StatusCode::BAD_GATEWAY,
        }
    }

    /// Whether a failure of this kind is worth sending again, all else being equal.
    ///
    /// Timeouts, premature exits, connection failures, missing servers, plain 502/503, failed
    /// WebSocket upgrades and failed forwarding are transient by nature. A 502.7 (a malformed or
    /// protocol-violating answer) tends to repeat and the request did run upstream, so it is not
    /// retried by default; neither are an invalid request, an exceeded deadline, `Other`, or an
    /// open circuit (it fails fast so that callers do not wait on a host known to be down).
    /// Method and idempotency rules are the retry policy's business, not this one's.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            ErrorKind::CgiTimeout
                | ErrorKind::PrematureExit
                | ErrorKind::ForwarderConnection
                | ErrorKind::NoServer
                | ErrorKind::WebSocket
                | ErrorKind::ForwardedRequest
                | ErrorKind::BadGateway
                | ErrorKind::ServiceUnavailable
        )
    }

    /// A stable snake-case name, used as OpenTelemetry's `error.type`.
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::CgiTimeout => "cgi_timeout",
            ErrorKind::PrematureExit => "premature_exit",
            ErrorKind::ForwarderConnection => "forwarder_connection",
            ErrorKind::NoServer => "no_server",
            ErrorKind::WebSocket => "websocket",
            ErrorKind::ForwardedRequest => "forwarded_request",
            ErrorKind::ExecuteRequest => "execute_request",
            ErrorKind::BadGateway => "bad_gateway",
            ErrorKind::ServiceUnavailable => "service_unavailable",
            ErrorKind::DeadlineExceeded => "deadline_exceeded",
            ErrorKind::InvalidRequest => "invalid_request",
            ErrorKind::Other => "other",
            ErrorKind::CircuitOpen => "circuit_open",
        }
    }

    /// The short label used at the start of the error's `Display`, e.g.
    /// `"502.3 forwarder connection error"` or `"503 service unavailable"`.
    pub fn label(self) -> &'static str {
        match self {
            ErrorKind::CgiTimeout => "502.1 CGI application timeout",
            ErrorKind::PrematureExit => "502.2 premature exit",
            ErrorKind::ForwarderConnection => "502.3 forwarder connection error",
            ErrorKind::NoServer => "502.4 no server",
            ErrorKind::WebSocket => "502.5 WebSocket failure",
            ErrorKind::ForwardedRequest => "502.6 forwarded request failure",
            ErrorKind::ExecuteRequest => "502.7 execute request failure",
            ErrorKind::BadGateway => "502 bad gateway",
            ErrorKind::ServiceUnavailable => "503 service unavailable",
            ErrorKind::DeadlineExceeded => "deadline exceeded",
            ErrorKind::InvalidRequest => "invalid request",
            ErrorKind::Other => "request failed",
            ErrorKind::CircuitOpen => "503 circuit open",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_start_with_the_substatus_code() {
        for s in Substatus::ALL {
            let kind = ErrorKind::from_substatus(s);
            assert_eq!(kind.substatus(), Some(s));
            assert!(kind.label().starts_with(s.code()));
        }
    }
}
