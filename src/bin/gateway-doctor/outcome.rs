//! The outcome class of a diagnosis, and its exit status.
//!
//! The class is read off the crate's own error and diagnosis (the variant and the hop that
//! failed): the doctor has no classifier of its own.

use reqwest_resilience::diagnosis::Hop;
use reqwest_resilience::{ErrorKind, GatewayError};

/// What happened to the request, as a class a script can branch on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The server answered with a success or a redirect that was not followed further.
    Ok,
    /// The origin answered with an error of its own.
    OriginError,
    /// The URL, the CA file or the request as built.
    Local,
    /// The forward proxy failed.
    Proxy,
    /// The server's host name did not resolve.
    Dns,
    /// No TCP connection to the server.
    Connect,
    /// The TLS handshake with the server failed.
    Tls,
    /// The connection to the server failed after it was made.
    Server,
    /// A gateway in front of the server reported that its upstream failed.
    Gateway,
    /// Anything else (too many redirects, …).
    Other,
}

impl Outcome {
    /// The process exit status (see `--help`).
    pub fn code(self) -> u8 {
        match self {
            Outcome::Ok => 0,
            Outcome::OriginError => 1,
            Outcome::Local => 3,
            Outcome::Proxy => 4,
            Outcome::Dns => 5,
            Outcome::Connect => 6,
            Outcome::Tls => 7,
            Outcome::Server => 8,
            Outcome::Gateway => 9,
            Outcome::Other => 10,
        }
    }

    /// A stable name for `--json`.
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::OriginError => "origin_error",
            Outcome::Local => "local_problem",
            Outcome::Proxy => "proxy_failed",
            Outcome::Dns => "dns_failed",
            Outcome::Connect => "connect_failed",
            Outcome::Tls => "tls_failed",
            Outcome::Server => "server_failed",
            Outcome::Gateway => "gateway_failed",
            Outcome::Other => "failed",
        }
    }

    /// The class in words, for the verdict line.
    pub fn words(self) -> &'static str {
        match self {
            Outcome::Ok => "the server answered",
            Outcome::OriginError => "the origin answered with an error of its own",
            Outcome::Local => "a local problem",
            Outcome::Proxy => "the forward proxy failed",
            Outcome::Dns => "the host name did not resolve",
            Outcome::Connect => "no connection to the server",
            Outcome::Tls => "the TLS handshake failed",
            Outcome::Server => "the server's connection failed",
            Outcome::Gateway => "a gateway reported that its upstream failed",
            Outcome::Other => "the request failed",
        }
    }

    /// The class of a failed request, from the crate's error and its diagnosis.
    pub fn of_error(err: &GatewayError) -> Outcome {
        if matches!(
            err.kind(),
            ErrorKind::DeadlineExceeded | ErrorKind::CircuitOpen
        ) {
            return match err.last_cause() {
                Some(last) => Outcome::of_error(last),
                None => Outcome::Server,
            };
        }
        if err.kind() == ErrorKind::InvalidRequest {
            return Outcome::Local;
        }
        let tls = err.details().is_tls_failure();
        match err.diagnosis().hop() {
            Hop::ForwardProxy { .. } => Outcome::Proxy,
            Hop::Gateway(_) => Outcome::Gateway,
            Hop::Origin if tls => Outcome::Tls,
            Hop::Origin => Outcome::OriginError,
            _ => match err.kind() {
                ErrorKind::NameNotResolved => Outcome::Dns,
                ErrorKind::ConnectFailed if tls => Outcome::Tls,
                ErrorKind::ConnectFailed => Outcome::Connect,
                ErrorKind::TimedOut
                | ErrorKind::ConnectionClosed
                | ErrorKind::SendFailed
                | ErrorKind::InvalidResponse
                | ErrorKind::WebSocket => Outcome::Server,
                _ => Outcome::Other,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct_and_skip_clap_usage_status() {
        let all = [
            Outcome::Ok,
            Outcome::OriginError,
            Outcome::Local,
            Outcome::Proxy,
            Outcome::Dns,
            Outcome::Connect,
            Outcome::Tls,
            Outcome::Server,
            Outcome::Gateway,
            Outcome::Other,
        ];
        let mut codes: Vec<u8> = all.iter().map(|o| o.code()).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), all.len());
        assert!(
            !codes.contains(&2),
            "2 is clap's status for a wrong command line"
        );
    }

    #[test]
    fn own_side_failures_by_kind() {
        let cases = [
            (ErrorKind::NameNotResolved, Outcome::Dns),
            (ErrorKind::ConnectFailed, Outcome::Connect),
            (ErrorKind::TimedOut, Outcome::Server),
            (ErrorKind::ConnectionClosed, Outcome::Server),
            (ErrorKind::InvalidRequest, Outcome::Local),
            (ErrorKind::DeadlineExceeded, Outcome::Server),
        ];
        for (kind, outcome) in cases {
            assert_eq!(
                Outcome::of_error(&GatewayError::new(kind, "x")),
                outcome,
                "{kind:?}"
            );
        }
    }
}
