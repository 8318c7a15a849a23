//! Classifying this crate's own transport failures.

use super::Classification;
use crate::error::ErrorKind;
use std::error::Error as StdError;
use std::io;

/// Classifies a `reqwest` error by walking its `source()` chain down to hyper and `std::io`.
///
/// | what failed | kind |
/// |---|---|
/// | the request could not be built (bad URL, bad header) | [`ErrorKind::InvalidRequest`] |
/// | the proxy answered `407` to `CONNECT` / refused or failed the tunnel | [`ErrorKind::ForwarderConnection`] (request unsent) |
/// | name resolution | [`ErrorKind::NoServer`] (request unsent) |
/// | connection refused, other connect errors, TLS handshake | [`ErrorKind::ForwarderConnection`] (request unsent) |
/// | connect timeout | [`ErrorKind::ForwarderConnection`] (request unsent) |
/// | timeout after connecting | [`ErrorKind::CgiTimeout`] |
/// | reset or close before a complete response, a truncated body | [`ErrorKind::PrematureExit`] |
/// | writing the request or its body failed | [`ErrorKind::ForwardedRequest`] |
/// | a malformed response (bad status line, bad headers, headers too large) | [`ErrorKind::ExecuteRequest`] |
/// | a redirect loop or policy error | [`ErrorKind::Other`] |
pub fn classify_transport(err: &reqwest::Error) -> Classification {
    let facts = Facts::gather(err);
    let (kind, evidence, unsent): (ErrorKind, &'static str, bool) = if err.is_builder() {
        (
            ErrorKind::InvalidRequest,
            "the request could not be built",
            true,
        )
    } else if err.is_redirect() {
        (ErrorKind::Other, "redirect policy error", false)
    } else if facts.tunnel_auth {
        (
            ErrorKind::ForwarderConnection,
            "the proxy requires authentication (407 to CONNECT)",
            true,
        )
    } else if facts.tunnel_refused {
        (
            ErrorKind::ForwarderConnection,
            "the proxy refused or failed the CONNECT tunnel",
            true,
        )
    } else if err.is_connect() || facts.connect {
        if facts.dns {
            (ErrorKind::NoServer, "DNS resolution failed", true)
        } else if facts.refused {
            (ErrorKind::ForwarderConnection, "connection refused", true)
        } else if err.is_timeout() || facts.timed_out {
            (ErrorKind::ForwarderConnection, "connect timed out", true)
        } else if facts.tls {
            (ErrorKind::ForwarderConnection, "TLS handshake failed", true)
        } else {
            (ErrorKind::ForwarderConnection, "could not connect", true)
        }
    } else if err.is_timeout() || facts.timed_out {
        (
            ErrorKind::CgiTimeout,
            "timed out waiting for the response",
            false,
        )
    } else if facts.parse {
        (ErrorKind::ExecuteRequest, "malformed response", false)
    } else if facts.body_write {
        (
            ErrorKind::ForwardedRequest,
            "writing the request body failed",
            false,
        )
    } else if facts.broken_pipe {
        (
            ErrorKind::ForwardedRequest,
            "writing the request failed (broken pipe)",
            false,
        )
    } else if facts.reset {
        (
            ErrorKind::PrematureExit,
            "connection reset by the server",
            false,
        )
    } else if facts.incomplete {
        (
            ErrorKind::PrematureExit,
            "connection closed before a complete response",
            false,
        )
    } else if err.is_body() || err.is_decode() {
        (
            ErrorKind::PrematureExit,
            "response body incomplete or undecodable",
            false,
        )
    } else {
        (
            ErrorKind::ExecuteRequest,
            "the request failed during execution",
            false,
        )
    };
    let found = Classification::new(kind, None, evidence);
    if unsent { found.unsent() } else { found }
}

#[derive(Default)]
struct Facts {
    connect: bool,
    dns: bool,
    refused: bool,
    timed_out: bool,
    tls: bool,
    parse: bool,
    body_write: bool,
    broken_pipe: bool,
    reset: bool,
    incomplete: bool,
    tunnel_auth: bool,
    tunnel_refused: bool,
}

impl Facts {
    fn gather(err: &reqwest::Error) -> Facts {
        let mut facts = Facts::default();
        let mut next: Option<&(dyn StdError + 'static)> = err.source();
        while let Some(e) = next {
            if let Some(io) = e.downcast_ref::<io::Error>() {
                facts.io(io);
            } else if let Some(h) = e.downcast_ref::<hyper::Error>() {
                facts.parse |= h.is_parse() || h.is_parse_status();
                facts.incomplete |= h.is_incomplete_message() || h.is_canceled() || h.is_closed();
                facts.body_write |= h.is_body_write_aborted() || h.is_user();
                facts.timed_out |= h.is_timeout();
            }
            // Errors of crates we do not link against are recognised by their text.
            let text = e.to_string().to_ascii_lowercase();
            facts.dns |= text.contains("dns error")
                || text.contains("failed to lookup address")
                || text.contains("name or service not known")
                || text.contains("no such host");
            facts.tls |=
                text.contains("tls") || text.contains("certificate") || text.contains("handshake");
            facts.connect |=
                text.starts_with("client error (connect)") || text.contains("tcp connect error");
            facts.tunnel_auth |= text.contains("tunnel error: proxy authorization required");
            facts.tunnel_refused |= text.contains("tunnel error: unsuccessful")
                || text.contains("tunnel error: unexpected end of file");
            next = e.source();
        }
        facts
    }

    fn io(&mut self, e: &io::Error) {
        match e.kind() {
            io::ErrorKind::ConnectionRefused => self.refused = true,
            io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted => self.reset = true,
            io::ErrorKind::BrokenPipe => self.broken_pipe = true,
            io::ErrorKind::UnexpectedEof => self.incomplete = true,
            io::ErrorKind::TimedOut => self.timed_out = true,
            io::ErrorKind::InvalidData => self.parse = true,
            _ => {}
        }
    }
}
