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
/// | the proxy answered `407` to `CONNECT`, or another non-200 | [`ErrorKind::ConnectFailed`] (request unsent, permanent) |
/// | the proxy closed the connection during `CONNECT` | [`ErrorKind::ConnectFailed`] (request unsent) |
/// | a certificate this client rejects (expired, not yet valid, wrong name, untrusted issuer, revoked, bad signature) | [`ErrorKind::ConnectFailed`] (request unsent, permanent, TLS), the failed check named |
/// | the server answered something that is not TLS (`https://` to a plain-HTTP port) | [`ErrorKind::ConnectFailed`] (request unsent, permanent, TLS) |
/// | name resolution | [`ErrorKind::NameNotResolved`] (request unsent) |
/// | connection refused, other connect errors, another TLS handshake failure | [`ErrorKind::ConnectFailed`] (request unsent) |
/// | connect timeout | [`ErrorKind::ConnectFailed`] (request unsent) |
/// | timeout after connecting | [`ErrorKind::TimedOut`] |
/// | reset or close before a complete response, a truncated body, an HTTP/2 GOAWAY | [`ErrorKind::ConnectionClosed`] |
/// | an HTTP/2 stream refused before processing (`REFUSED_STREAM`) | [`ErrorKind::ConnectionClosed`] (request unsent) |
/// | writing the request or its body failed | [`ErrorKind::SendFailed`] |
/// | a malformed response (bad status line, bad headers, headers too large) | [`ErrorKind::InvalidResponse`] |
/// | a redirect loop or policy error | [`ErrorKind::Other`] |
///
/// TLS failures are read from the TLS library's own error types (rustls's `Error` and
/// `CertificateError`; OpenSSL's verification text through native-tls, which has no typed
/// reason), looked for inside the nested `io::Error`s the connector wraps them in. The
/// connector's, DNS, tunnel and HTTP/2 errors of crates that do not export their types are
/// recognised by their text.
///
/// "Request unsent" here says what the error itself shows; the [`Transport`](crate::Transport)
/// withdraws it when a redirect was (or may have been) followed before the failure: see
/// [`redirect`](crate::redirect).
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

/// A failure known only by its source chain (a `reqwest::Error` hidden behind another
/// crate's transparent wrapper, as reqwest-retry's): what the chain itself proves, or `None`
/// when it names nothing (no connect, DNS, TLS, reset, timeout or parse error in it).
#[cfg(feature = "middleware")]
pub(crate) fn classify_chain(err: &(dyn StdError + 'static)) -> Option<Classification> {
    let facts = Facts::gather(Some(err));
    let found = conclude(Flags::default(), &facts);
    (found.kind != ErrorKind::InvalidResponse || facts.parse).then_some(found)
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
    let found = |kind, evidence: &'static str| Classification::new(kind, None, evidence);
    use ErrorKind::*;
    if flags.builder {
        return found(InvalidRequest, "the request could not be built").unsent();
    }
    if flags.redirect {
        return found(Other, "redirect policy error");
    }
    if facts.tunnel_auth {
        return found(
            ConnectFailed,
            "the proxy requires authentication (407 to CONNECT)",
        )
        .unsent()
        .permanent()
        .proxy_refused();
    }
    if facts.tunnel_unsuccessful {
        return found(
            ConnectFailed,
            "the proxy refused the CONNECT tunnel (an answer other than 200 or 407: an access rule, or it cannot reach the server)",
        )
        .unsent()
        // hyper-util does not say which status the proxy answered, so a 403 (an access rule,
        // which no retry changes) and a passing 502 look the same: not retried, as a 403
        // must not be.
        .permanent()
        .proxy_refused();
    }
    if facts.tunnel_eof {
        return found(
            ConnectFailed,
            "the proxy closed the connection during the CONNECT tunnel",
        )
        .unsent();
    }
    // TLS failures while connecting: a rejected certificate will be rejected again on that
    // server. (The same library errors later, mid-response, are the response's.)
    let connecting = flags.connect || facts.connect;
    if let (Some(check), true) = (facts.certificate, connecting) {
        return found(ConnectFailed, check).unsent().permanent().tls();
    }
    if facts.not_tls && connecting {
        return found(
            ConnectFailed,
            "TLS handshake failed: the server does not speak TLS on this port (plain HTTP?)",
        )
        .unsent()
        .permanent()
        .tls();
    }
    if connecting {
        return if facts.dns {
            found(NameNotResolved, "DNS resolution failed").unsent()
        } else if facts.refused {
            found(ConnectFailed, "connection refused").unsent()
        } else if flags.timeout || facts.timed_out {
            found(ConnectFailed, "connect timed out").unsent()
        } else if facts.tls {
            found(ConnectFailed, "TLS handshake failed").unsent().tls()
        } else {
            found(ConnectFailed, "could not connect").unsent()
        };
    }
    if facts.refused_stream {
        // RFC 9113 §8.7: a refused stream was not processed, so it is safe to send again.
        return found(
            ConnectionClosed,
            "the server refused the HTTP/2 stream before processing it",
        )
        .unsent();
    }
    if flags.timeout || facts.timed_out {
        found(TimedOut, "timed out waiting for the response")
    } else if facts.parse {
        found(InvalidResponse, "malformed response")
    } else if facts.body_write {
        found(SendFailed, "writing the request body failed")
    } else if facts.broken_pipe {
        found(SendFailed, "writing the request failed (broken pipe)")
    } else if facts.reset {
        found(ConnectionClosed, "connection reset by the server")
    } else if facts.goaway {
        found(
            ConnectionClosed,
            "the server closed the HTTP/2 connection (GOAWAY or connection error)",
        )
    } else if facts.incomplete {
        found(
            ConnectionClosed,
            "connection closed before a complete response",
        )
    } else if flags.body {
        found(ConnectionClosed, "response body incomplete or undecodable")
    } else {
        found(InvalidResponse, "the request failed during execution")
    }
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
    tunnel_unsuccessful: bool,
    tunnel_eof: bool,
    /// The certificate check that failed, in plain words.
    certificate: Option<&'static str>,
    /// The server answered something that is not TLS.
    not_tls: bool,
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
            facts.tls_library(e);
            facts.http2(e);
            // `io::Error::source()` skips the error it wraps (and io errors nest: tokio-rustls
            // wraps rustls's error in one, the connector in another): look inside them too.
            let mut wrapped = e.downcast_ref::<io::Error>().and_then(io::Error::get_ref);
            while let Some(inner) = wrapped {
                let inner: &(dyn StdError + 'static) = inner;
                facts.tls_library(inner);
                if let Some(io) = inner.downcast_ref::<io::Error>() {
                    facts.io(io);
                }
                wrapped = inner
                    .downcast_ref::<io::Error>()
                    .and_then(io::Error::get_ref);
            }
            // Errors of crates that do not export their error types (hyper-util's connector,
            // DNS and tunnel errors) are recognised by their text.
            let text = e.to_string().to_ascii_lowercase();
            facts.dns |= text.contains("dns error")
                || text.contains("failed to lookup address")
                || text.contains("name or service not known")
                || text.contains("no such host");
            facts.connect |=
                text.starts_with("client error (connect)") || text.contains("tcp connect error");
            facts.tunnel_auth |= text.contains("tunnel error: proxy authorization required");
            facts.tunnel_unsuccessful |= text.contains("tunnel error: unsuccessful");
            facts.tunnel_eof |= text.contains("tunnel error: unexpected end of file");
            // Without this crate's `http2` feature (reqwest's may still be on), h2's error type
            // is not linked: its texts, "stream error received: refused stream before
            // processing any application logic", "connection error received: …".
            #[cfg(not(feature = "http2"))]
            {
                facts.refused_stream |= text.contains("refused stream");
                facts.goaway |= text.contains("connection error received")
                    || text.contains("stream error received");
            }
            next = e.source();
        }
        facts
    }

    /// HTTP/2's own error, when `e` is one: a stream the server refused before processing it
    /// (`REFUSED_STREAM`, RFC 9113 §8.7), or the connection going away.
    fn http2(&mut self, e: &(dyn StdError + 'static)) {
        #[cfg(feature = "http2")]
        if let Some(err) = e.downcast_ref::<h2::Error>() {
            // The server reset the stream with REFUSED_STREAM (a GOAWAY carrying that code
            // reaches streams the server did process: not a refusal of this one).
            let refused = err.reason() == Some(h2::Reason::REFUSED_STREAM)
                && err.is_reset()
                && err.is_remote();
            self.refused_stream |= refused;
            // Any other stream or connection error (a GOAWAY, a reset, the connection's
            // I/O failing): the server went away mid-exchange; the request may have arrived.
            self.goaway |= !refused;
        }
        let _ = e;
    }

    /// The TLS library's own error, when `e` is one.
    fn tls_library(&mut self, e: &(dyn StdError + 'static)) {
        #[cfg(feature = "default-tls")]
        if let Some(err) = e.downcast_ref::<rustls::Error>() {
            self.rustls(err);
        }
        #[cfg(feature = "native-tls")]
        if let Some(err) = e.downcast_ref::<native_tls::Error>() {
            self.native_tls(err);
        }
        let _ = e;
    }

    #[cfg(feature = "default-tls")]
    fn rustls(&mut self, err: &rustls::Error) {
        use rustls::{CertificateError as C, Error as E};
        self.tls = true;
        match err {
            E::InvalidCertificate(cert) => {
                self.certificate = Some(match cert {
                    C::Expired | C::ExpiredContext { .. } => "certificate rejected: it has expired",
                    C::NotValidYet | C::NotValidYetContext { .. } => {
                        "certificate rejected: it is not valid yet (check this machine's clock)"
                    }
                    C::NotValidForName | C::NotValidForNameContext { .. } => {
                        "certificate rejected: it is not valid for this host name"
                    }
                    C::UnknownIssuer => {
                        "certificate rejected: its issuer is not trusted (self-signed, or a private CA missing from the trust store)"
                    }
                    C::Revoked => "certificate rejected: it has been revoked",
                    C::BadSignature => "certificate rejected: its signature is invalid",
                    // An answer the verifier could not get (revocation status unknown, a
                    // platform verifier's own error) may differ next time: not permanent.
                    C::UnknownRevocationStatus | C::Other(_) => return,
                    _ => "certificate rejected",
                });
            }
            // What a plain-HTTP server's answer looks like to a TLS client; other malformed
            // messages come from real TLS peers.
            E::InvalidMessage(
                rustls::InvalidMessage::InvalidContentType
                | rustls::InvalidMessage::UnknownProtocolVersion,
            ) => self.not_tls = true,
            _ => {}
        }
    }

    /// OpenSSL (behind native-tls) exposes no typed reason: its verification text is read.
    #[cfg(feature = "native-tls")]
    fn native_tls(&mut self, err: &native_tls::Error) {
        self.tls = true;
        let text = err.to_string().to_ascii_lowercase();
        if text.contains("wrong version number") || text.contains("packet length too long") {
            self.not_tls = true;
        } else if text.contains("certificate verify failed") {
            self.certificate = Some(if text.contains("expired") {
                "certificate rejected: it has expired"
            } else if text.contains("hostname mismatch") || text.contains("ip address mismatch") {
                "certificate rejected: it is not valid for this host name"
            } else if text.contains("self-signed")
                || text.contains("self signed")
                || text.contains("unable to get local issuer")
            {
                "certificate rejected: its issuer is not trusted (self-signed, or a private CA missing from the trust store)"
            } else if text.contains("not yet valid") {
                "certificate rejected: it is not valid yet (check this machine's clock)"
            } else {
                "certificate rejected"
            });
        }
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

    /// Only the server's own reset of the stream with `REFUSED_STREAM` proves it unprocessed
    /// (h2's public API cannot make such an error here; the rule is in `Facts::http2`). The
    /// same code reaching a stream any other way (a GOAWAY, a local reason) proves nothing.
    #[cfg(feature = "http2")]
    #[test]
    fn http2_refused_stream_code_not_from_a_reset_is_no_proof() {
        let err = h2::Error::from(h2::Reason::REFUSED_STREAM);
        let c = conclude(Flags::default(), &Facts::gather(Some(&err)));
        assert_eq!(c.kind, ErrorKind::ConnectionClosed);
        assert!(!c.request_unsent);
    }

    #[cfg(feature = "http2")]
    #[test]
    fn http2_connection_errors_are_a_closed_connection_that_may_have_arrived() {
        let err = h2::Error::from(h2::Reason::INTERNAL_ERROR);
        let c = conclude(Flags::default(), &Facts::gather(Some(&err)));
        assert_eq!(c.kind, ErrorKind::ConnectionClosed);
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
        assert_eq!((c.kind, c.request_unsent), (ErrorKind::ConnectFailed, true));
        let dns = classify_text(connect, "dns error: failed to lookup address information");
        assert_eq!(dns.kind, ErrorKind::NameNotResolved);
        let timeout = Flags {
            timeout: true,
            ..Flags::default()
        };
        assert_eq!(
            classify_text(timeout, "operation timed out").kind,
            ErrorKind::TimedOut
        );
        assert_eq!(
            classify_text(Flags::default(), "something else").kind,
            ErrorKind::InvalidResponse
        );
    }
}
