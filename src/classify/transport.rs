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
/// | reset or close before a complete response, a truncated body, an HTTP/2 GOAWAY | [`ErrorKind::PrematureExit`] |
/// | an HTTP/2 stream refused before processing (`REFUSED_STREAM`) | [`ErrorKind::PrematureExit`] (request unsent) |
/// | writing the request or its body failed | [`ErrorKind::ForwardedRequest`] |
/// | a malformed response (bad status line, bad headers, headers too large) | [`ErrorKind::ExecuteRequest`] |
/// | a redirect loop or policy error | [`ErrorKind::Other`] |
pub fn classify_transport(err: &reqwest::Error) -> Classification {
    let flags = Flags {
        builder: err.is_builder(),
        redirect: err.is_redirect(),
        connect: err.is_connect(),
        timeout: err.is_timeout(),
        body: err.is_body() || err.is_decode(),
    };
    conclude(flags, &Facts::gather(err.source()))
}

/// What reqwest itself says about its error.
#[derive(Debug, Clone, Copy, Default)]
struct Flags {
    builder: bool,
    redirect: bool,
    connect: bool,
    timeout: bool,
    body: bool,
}

fn conclude(flags: Flags, facts: &Facts) -> Classification {
    let (kind, evidence, unsent): (ErrorKind, &'static str, bool) = if flags.builder {
        (
            ErrorKind::InvalidRequest,
            "the request could not be built",
            true,
        )
    } else if flags.redirect {
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
    } else if flags.connect || facts.connect {
        if facts.dns {
            (ErrorKind::NoServer, "DNS resolution failed", true)
        } else if facts.refused {
            (ErrorKind::ForwarderConnection, "connection refused", true)
        } else if flags.timeout || facts.timed_out {
            (ErrorKind::ForwarderConnection, "connect timed out", true)
        } else if facts.tls {
            (ErrorKind::ForwarderConnection, "TLS handshake failed", true)
        } else {
            (ErrorKind::ForwarderConnection, "could not connect", true)
        }
    } else if facts.refused_stream {
        // RFC 9113 §8.7: a refused stream was not processed, so it is safe to send again.
        (
            ErrorKind::PrematureExit,
            "the server refused the HTTP/2 stream before processing it",
            true,
        )
    } else if flags.timeout || facts.timed_out {
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
    } else if facts.goaway {
        (
            ErrorKind::PrematureExit,
            "the server closed the HTTP/2 connection (GOAWAY or connection error)",
            false,
        )
    } else if facts.incomplete {
        (
            ErrorKind::PrematureExit,
            "connection closed before a complete response",
            false,
        )
    } else if flags.body {
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
    refused_stream: bool,
    goaway: bool,
}

impl Facts {
    fn gather(source: Option<&(dyn StdError + 'static)>) -> Facts {
        let mut facts = Facts::default();
        let mut next = source;
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
            // h2's texts: "stream error received: refused stream before processing any
            // application logic", "connection error received: …".
            facts.refused_stream |= text.contains("refused stream");
            facts.goaway |= text.contains("connection error received")
                || text.contains("go away")
                || text.contains("goaway");
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

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Text(&'static str);

    impl std::fmt::Display for Text {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }

    impl StdError for Text {}

    fn classify_text(flags: Flags, text: &'static str) -> Classification {
        let err = Text(text);
        conclude(flags, &Facts::gather(Some(&err)))
    }

    #[test]
    fn http2_refused_stream_is_safe_to_resend() {
        let c = classify_text(
            Flags::default(),
            "stream error received: refused stream before processing any application logic",
        );
        assert_eq!(c.kind, ErrorKind::PrematureExit);
        assert!(c.request_unsent);
    }

    #[test]
    fn http2_goaway_is_a_premature_exit_that_may_have_arrived() {
        let c = classify_text(
            Flags::default(),
            "connection error received: not a result of an error",
        );
        assert_eq!(c.kind, ErrorKind::PrematureExit);
        assert!(!c.request_unsent);
    }

    #[test]
    fn io_kinds_decide_connect_failures() {
        let refused = std::io::Error::from(io::ErrorKind::ConnectionRefused);
        let connect = Flags {
            connect: true,
            ..Flags::default()
        };
        let c = conclude(connect, &Facts::gather(Some(&refused)));
        assert_eq!(
            (c.kind, c.request_unsent),
            (ErrorKind::ForwarderConnection, true)
        );
        let dns = classify_text(connect, "dns error: failed to lookup address information");
        assert_eq!(dns.kind, ErrorKind::NoServer);
        let timeout = Flags {
            timeout: true,
            ..Flags::default()
        };
        assert_eq!(
            classify_text(timeout, "operation timed out").kind,
            ErrorKind::CgiTimeout
        );
        assert_eq!(
            classify_text(Flags::default(), "something else").kind,
            ErrorKind::ExecuteRequest
        );
    }
}
