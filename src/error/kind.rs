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
    /// No answer in time (502.1): see [`GatewayError::TimedOut`](super::GatewayError::TimedOut).
    #[doc(alias = "CgiTimeout")]
    TimedOut,
    /// The connection closed before a complete response (502.2): see
    /// [`GatewayError::ConnectionClosed`](super::GatewayError::ConnectionClosed).
    #[doc(alias = "PrematureExit")]
    ConnectionClosed,
    /// Could not connect (502.3): see
    /// [`GatewayError::ConnectFailed`](super::GatewayError::ConnectFailed).
    #[doc(alias = "ForwarderConnection")]
    ConnectFailed,
    /// The server's name did not resolve (502.4): see
    /// [`GatewayError::NameNotResolved`](super::GatewayError::NameNotResolved).
    #[doc(alias = "NoServer")]
    #[doc(alias = "DNS")]
    NameNotResolved,
    /// No server left to send to (502.4): see
    /// [`GatewayError::NoHealthyServer`](super::GatewayError::NoHealthyServer).
    #[doc(alias = "NoServer")]
    NoHealthyServer,
    /// A WebSocket upgrade failed (502.5): see
    /// [`GatewayError::WebSocket`](super::GatewayError::WebSocket).
    WebSocket,
    /// Sending the request failed (502.6): see
    /// [`GatewayError::SendFailed`](super::GatewayError::SendFailed).
    #[doc(alias = "ForwardedRequest")]
    SendFailed,
    /// A malformed or protocol-violating response (502.7): see
    /// [`GatewayError::InvalidResponse`](super::GatewayError::InvalidResponse).
    #[doc(alias = "ExecuteRequest")]
    InvalidResponse,
    /// A 502 whose cause nothing tells.
    BadGateway,
    /// A 503 whose cause nothing tells.
    ServiceUnavailable,
    /// The total deadline of the logical request ran out.
    DeadlineExceeded,
    /// The request could not be built or sent as given; never retried.
    InvalidRequest,
    /// The response arrived whole but its body could not be decoded as asked (`json()` of a
    /// body that is not that JSON); never retried: see
    /// [`GatewayError::Decode`](super::GatewayError::Decode).
    Decode,
    /// A failure with no gateway meaning (e.g. a redirect loop); never retried.
    Other,
    /// The host's circuit is open: see [`GatewayError::CircuitOpen`](super::GatewayError::CircuitOpen).
    CircuitOpen,
}

impl ErrorKind {
    /// The 502 substatus this kind stands for, if any.
    pub fn substatus(self) -> Option<Substatus> {
        Some(match self {
            ErrorKind::TimedOut => Substatus::CgiTimeout,
            ErrorKind::ConnectionClosed => Substatus::PrematureExit,
            ErrorKind::ConnectFailed => Substatus::ForwarderConnection,
            ErrorKind::NameNotResolved | ErrorKind::NoHealthyServer => Substatus::NoServer,
            ErrorKind::WebSocket => Substatus::WebSocket,
            ErrorKind::SendFailed => Substatus::ForwardedRequest,
            ErrorKind::InvalidResponse => Substatus::ExecuteRequest,
            _ => return None,
        })
    }

    /// The kind for a substatus.
    pub fn from_substatus(s: Substatus) -> ErrorKind {
        match s {
            Substatus::CgiTimeout => ErrorKind::TimedOut,
            Substatus::PrematureExit => ErrorKind::ConnectionClosed,
            Substatus::ForwarderConnection => ErrorKind::ConnectFailed,
            Substatus::NoServer => ErrorKind::NoHealthyServer,
            Substatus::WebSocket => ErrorKind::WebSocket,
            Substatus::ForwardedRequest => ErrorKind::SendFailed,
            Substatus::ExecuteRequest => ErrorKind::InvalidResponse,
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
            ErrorKind::TimedOut
                | ErrorKind::ConnectionClosed
                | ErrorKind::ConnectFailed
                | ErrorKind::NameNotResolved
                | ErrorKind::NoHealthyServer
                | ErrorKind::WebSocket
                | ErrorKind::SendFailed
                | ErrorKind::BadGateway
                | ErrorKind::ServiceUnavailable
        )
    }

    /// A stable snake-case name, used as OpenTelemetry's `error.type`.
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::TimedOut => "timed_out",
            ErrorKind::ConnectionClosed => "connection_closed",
            ErrorKind::ConnectFailed => "connect_failed",
            ErrorKind::NameNotResolved => "name_not_resolved",
            ErrorKind::NoHealthyServer => "no_healthy_server",
            ErrorKind::WebSocket => "websocket",
            ErrorKind::SendFailed => "send_failed",
            ErrorKind::InvalidResponse => "invalid_response",
            ErrorKind::BadGateway => "bad_gateway",
            ErrorKind::ServiceUnavailable => "service_unavailable",
            ErrorKind::DeadlineExceeded => "deadline_exceeded",
            ErrorKind::InvalidRequest => "invalid_request",
            ErrorKind::Decode => "decode",
            ErrorKind::Other => "other",
            ErrorKind::CircuitOpen => "circuit_open",
        }
    }

    /// The short label used at the start of the error's `Display`, e.g.
    /// `"502.3 could not connect"` or `"503 service unavailable"`.
    pub fn label(self) -> &'static str {
        match self {
            ErrorKind::TimedOut => "502.1 timed out",
            ErrorKind::ConnectionClosed => "502.2 connection closed early",
            ErrorKind::ConnectFailed => "502.3 could not connect",
            ErrorKind::NameNotResolved => "502.4 name not resolved",
            ErrorKind::NoHealthyServer => "502.4 no healthy server",
            ErrorKind::WebSocket => "502.5 WebSocket failure",
            ErrorKind::SendFailed => "502.6 sending the request failed",
            ErrorKind::InvalidResponse => "502.7 invalid response",
            ErrorKind::BadGateway => "502 bad gateway",
            ErrorKind::ServiceUnavailable => "503 service unavailable",
            ErrorKind::DeadlineExceeded => "deadline exceeded",
            ErrorKind::InvalidRequest => "invalid request",
            ErrorKind::Decode => "response body could not be decoded",
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
