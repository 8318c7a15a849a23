//! The second stage of the response classifier: network-error texts as runtimes and system
//! libraries print them, found in any gateway's page.
//!
//! A proxy nobody here has heard of still quotes the error its runtime gave it: Go's
//! `dial tcp 10.0.0.5:8080: connect: connection refused`, Node's `ECONNRESET`, Python's
//! `Remote end closed connection without response`, Java's `java.net.SocketTimeoutException:
//! Read timed out`, .NET's `No such host is known`, curl's `Empty reply from server`. Those texts
//! say what failed, whatever the page around them looks like (HTML, JSON, one line of text).
//!
//! Matching: case-insensitive, on word boundaries (so "timed out" counts and "outage" does not),
//! one Aho-Corasick automaton built once for the whole table, over the page's first
//! [`BODY_PREFIX_LIMIT`](super::BODY_PREFIX_LIMIT) bytes.
//!
//! Precedence when a page names several: the failure nearer the start of the exchange wins,
//! since the later ones follow from it: a DNS failure, then a connect failure, then a failure
//! writing the request, then a reset or early close, then a malformed answer, then a timeout.
//!
//! Such text never proves a request unsent: an origin can write any text in its body. It informs
//! the cause and the diagnosis ("body says: connection refused") only.
//!
//! Each entry names where its wording comes from.

use crate::error::ErrorKind;
use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use std::sync::LazyLock;

/// One phrase, the cause it names, and where the wording comes from.
pub(super) struct Entry {
    pub(super) phrase: &'static str,
    pub(super) cause: ErrorKind,
    /// Read by the table's own test only: kept beside each phrase for its reader.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(super) source: &'static str,
}

static AUTOMATON: LazyLock<AhoCorasick> = LazyLock::new(|| {
    AhoCorasickBuilder::new()
        .ascii_case_insensitive(true)
        .match_kind(MatchKind::LeftmostLongest)
        .build(TABLE.iter().map(|e| e.phrase))
        .expect("the vocabulary builds")
});

/// The phrase of the table found in `text` that names the failure nearest the start of the
/// exchange, with its cause.
pub(super) fn find(text: &[u8]) -> Option<(ErrorKind, &'static str)> {
    let mut best: Option<(u8, &Entry)> = None;
    for found in AUTOMATON.find_iter(text) {
        let before = found.start().checked_sub(1).map(|i| text[i]);
        let after = text.get(found.end()).copied();
        if before.is_some_and(is_word) || after.is_some_and(is_word) {
            continue;
        }
        let entry = &TABLE[found.pattern().as_usize()];
        let rank = rank(entry.cause);
        if best.is_none_or(|(r, _)| rank < r) {
            best = Some((rank, entry));
        }
    }
    best.map(|(_, e)| (e.cause, e.phrase))
}

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Nearer the start of the exchange first.
fn rank(cause: ErrorKind) -> u8 {
    match cause {
        ErrorKind::NoServer => 0,
        ErrorKind::ForwarderConnection => 1,
        ErrorKind::ForwardedRequest => 2,
        ErrorKind::PrematureExit => 3,
        ErrorKind::ExecuteRequest => 4,
        ErrorKind::CgiTimeout => 5,
        _ => 6,
    }
}

/// The phrases, lower-case, each with its source.
pub(super) static TABLE: &[Entry] = &[
    Entry {
        phrase: "connection refused",
        cause: ErrorKind::ForwarderConnection,
        source: "glibc strerror(ECONNREFUSED); Rust io::ErrorKind::ConnectionRefused; Java ConnectException",
    },
    Entry {
        phrase: "connection reset by peer",
        cause: ErrorKind::PrematureExit,
        source: "glibc strerror(ECONNRESET); curl (56) Recv failure",
    },
    Entry {
        phrase: "connection reset",
        cause: ErrorKind::PrematureExit,
        source: "Java SocketException \"Connection reset\"; Rust io::ErrorKind::ConnectionReset",
    },
    Entry {
        phrase: "connection timed out",
        cause: ErrorKind::CgiTimeout,
        source: "glibc strerror(ETIMEDOUT)",
    },
    Entry {
        phrase: "no route to host",
        cause: ErrorKind::ForwarderConnection,
        source: "glibc strerror(EHOSTUNREACH); Java NoRouteToHostException",
    },
    Entry {
        phrase: "network is unreachable",
        cause: ErrorKind::ForwarderConnection,
        source: "glibc strerror(ENETUNREACH)",
    },
    Entry {
        phrase: "host is unreachable",
        cause: ErrorKind::ForwarderConnection,
        source: "Rust io::ErrorKind::HostUnreachable display",
    },
    Entry {
        phrase: "network unreachable",
        cause: ErrorKind::ForwarderConnection,
        source: "Rust io::ErrorKind::NetworkUnreachable display",
    },
    Entry {
        phrase: "connection aborted",
        cause: ErrorKind::PrematureExit,
        source: "Rust io::ErrorKind::ConnectionAborted; glibc strerror(ECONNABORTED) \"Software caused connection abort\"",
    },
    Entry {
        phrase: "software caused connection abort",
        cause: ErrorKind::PrematureExit,
        source: "glibc strerror(ECONNABORTED)",
    },
    Entry {
        phrase: "broken pipe",
        cause: ErrorKind::ForwardedRequest,
        source: "glibc strerror(EPIPE); Rust io::ErrorKind::BrokenPipe",
    },
    Entry {
        phrase: "name or service not known",
        cause: ErrorKind::NoServer,
        source: "glibc gai_strerror(EAI_NONAME)",
    },
    Entry {
        phrase: "temporary failure in name resolution",
        cause: ErrorKind::NoServer,
        source: "glibc gai_strerror(EAI_AGAIN)",
    },
    Entry {
        phrase: "no address associated with hostname",
        cause: ErrorKind::NoServer,
        source: "glibc gai_strerror(EAI_NODATA)",
    },
    Entry {
        phrase: "nodename nor servname provided",
        cause: ErrorKind::NoServer,
        source: "BSD/macOS gai_strerror(EAI_NONAME)",
    },
    Entry {
        phrase: "failed to lookup address information",
        cause: ErrorKind::NoServer,
        source: "Rust std::net to_socket_addrs error text",
    },
    Entry {
        phrase: "econnrefused",
        cause: ErrorKind::ForwarderConnection,
        source: "POSIX errno name; Node.js error code",
    },
    Entry {
        phrase: "econnreset",
        cause: ErrorKind::PrematureExit,
        source: "POSIX errno name; Node.js error code",
    },
    Entry {
        phrase: "etimedout",
        cause: ErrorKind::CgiTimeout,
        source: "POSIX errno name; Node.js error code",
    },
    Entry {
        phrase: "ehostunreach",
        cause: ErrorKind::ForwarderConnection,
        source: "POSIX errno name; Node.js error code",
    },
    Entry {
        phrase: "enetunreach",
        cause: ErrorKind::ForwarderConnection,
        source: "POSIX errno name; Node.js error code",
    },
    Entry {
        phrase: "econnaborted",
        cause: ErrorKind::PrematureExit,
        source: "POSIX errno name; Node.js error code",
    },
    Entry {
        phrase: "epipe",
        cause: ErrorKind::ForwardedRequest,
        source: "POSIX errno name; Node.js error code",
    },
    Entry {
        phrase: "dial tcp",
        cause: ErrorKind::ForwarderConnection,
        source: "Go net.OpError for the \"dial\" op: every failure to connect",
    },
    Entry {
        phrase: "no such host",
        cause: ErrorKind::NoServer,
        source: "Go net.DNSError errNoSuchHost \"no such host\"",
    },
    Entry {
        phrase: "i/o timeout",
        cause: ErrorKind::CgiTimeout,
        source: "Go net/internal poll.ErrDeadlineExceeded \"i/o timeout\"",
    },
    Entry {
        phrase: "context deadline exceeded",
        cause: ErrorKind::CgiTimeout,
        source: "Go context.DeadlineExceeded",
    },
    Entry {
        phrase: "timeout awaiting response headers",
        cause: ErrorKind::CgiTimeout,
        source: "Go net/http transport \"net/http: timeout awaiting response headers\"",
    },
    Entry {
        phrase: "server closed idle connection",
        cause: ErrorKind::PrematureExit,
        source: "Go net/http errServerClosedIdle",
    },
    Entry {
        phrase: "malformed http response",
        cause: ErrorKind::ExecuteRequest,
        source: "Go net/http transport \"malformed HTTP response\"",
    },
    Entry {
        phrase: "malformed http status code",
        cause: ErrorKind::ExecuteRequest,
        source: "Go net/http \"malformed HTTP status code\"",
    },
    Entry {
        phrase: "enotfound",
        cause: ErrorKind::NoServer,
        source: "Node.js getaddrinfo ENOTFOUND (dns.NOTFOUND)",
    },
    Entry {
        phrase: "eai_again",
        cause: ErrorKind::NoServer,
        source: "Node.js getaddrinfo EAI_AGAIN (dns.TIMEOUT/temporary failure)",
    },
    Entry {
        phrase: "socket hang up",
        cause: ErrorKind::PrematureExit,
        source: "Node.js _http_client.js connResetException(\"socket hang up\")",
    },
    Entry {
        phrase: "remote end closed connection without response",
        cause: ErrorKind::PrematureExit,
        source: "Python http.client.RemoteDisconnected",
    },
    Entry {
        phrase: "connectionrefusederror",
        cause: ErrorKind::ForwarderConnection,
        source: "Python builtin ConnectionRefusedError",
    },
    Entry {
        phrase: "connectionreseterror",
        cause: ErrorKind::PrematureExit,
        source: "Python builtin ConnectionResetError",
    },
    Entry {
        phrase: "remotedisconnected",
        cause: ErrorKind::PrematureExit,
        source: "Python http.client.RemoteDisconnected",
    },
    Entry {
        phrase: "newconnectionerror",
        cause: ErrorKind::ForwarderConnection,
        source: "urllib3.exceptions.NewConnectionError",
    },
    Entry {
        phrase: "failed to establish a new connection",
        cause: ErrorKind::ForwarderConnection,
        source: "urllib3 NewConnectionError message",
    },
    Entry {
        phrase: "connecttimeout",
        cause: ErrorKind::ForwarderConnection,
        source: "requests.exceptions.ConnectTimeout / urllib3 ConnectTimeoutError",
    },
    Entry {
        phrase: "read timed out",
        cause: ErrorKind::CgiTimeout,
        source: "urllib3 ReadTimeoutError \"Read timed out.\"; Java SocketTimeoutException",
    },
    Entry {
        phrase: "readtimeout",
        cause: ErrorKind::CgiTimeout,
        source: "requests.exceptions.ReadTimeout; httpx.ReadTimeout",
    },
    Entry {
        phrase: "gaierror",
        cause: ErrorKind::NoServer,
        source: "Python socket.gaierror",
    },
    Entry {
        phrase: "connectexception",
        cause: ErrorKind::ForwarderConnection,
        source: "java.net.ConnectException",
    },
    Entry {
        phrase: "unknownhostexception",
        cause: ErrorKind::NoServer,
        source: "java.net.UnknownHostException",
    },
    Entry {
        phrase: "sockettimeoutexception",
        cause: ErrorKind::CgiTimeout,
        source: "java.net.SocketTimeoutException",
    },
    Entry {
        phrase: "noroutetohostexception",
        cause: ErrorKind::ForwarderConnection,
        source: "java.net.NoRouteToHostException",
    },
    Entry {
        phrase: "connect timed out",
        cause: ErrorKind::ForwarderConnection,
        source: "java.net.SocketTimeoutException \"connect timed out\"",
    },
    Entry {
        phrase: "httptimeoutexception",
        cause: ErrorKind::CgiTimeout,
        source: "java.net.http.HttpTimeoutException",
    },
    Entry {
        phrase: "actively refused it",
        cause: ErrorKind::ForwarderConnection,
        source: ".NET SocketError.ConnectionRefused \"No connection could be made because the target machine actively refused it\"",
    },
    Entry {
        phrase: "no such host is known",
        cause: ErrorKind::NoServer,
        source: ".NET SocketError.HostNotFound \"No such host is known\"",
    },
    Entry {
        phrase: "forcibly closed by the remote host",
        cause: ErrorKind::PrematureExit,
        source: ".NET SocketError.ConnectionReset \"An existing connection was forcibly closed by the remote host\"",
    },
    Entry {
        phrase: "the response ended prematurely",
        cause: ErrorKind::PrematureExit,
        source: ".NET HttpIOException net_http_invalid_response_premature_eof",
    },
    Entry {
        phrase: "connection attempt failed because the connected party did not properly respond",
        cause: ErrorKind::ForwarderConnection,
        source: ".NET SocketError.TimedOut message",
    },
    Entry {
        phrase: "connection closed before message completed",
        cause: ErrorKind::PrematureExit,
        source: "hyper Error::IncompleteMessage display",
    },
    Entry {
        phrase: "error trying to connect",
        cause: ErrorKind::ForwarderConnection,
        source: "hyper 0.14 client connect error display",
    },
    Entry {
        phrase: "tcp connect error",
        cause: ErrorKind::ForwarderConnection,
        source: "hyper-util HttpConnector ConnectError",
    },
    Entry {
        phrase: "unexpected end of file",
        cause: ErrorKind::PrematureExit,
        source: "Rust io::ErrorKind::UnexpectedEof display",
    },
    Entry {
        phrase: "invalid http version parsed",
        cause: ErrorKind::ExecuteRequest,
        source: "hyper Error::Parse(Version) display",
    },
    Entry {
        phrase: "invalid http status-code parsed",
        cause: ErrorKind::ExecuteRequest,
        source: "hyper Error::Parse(Status) display",
    },
    Entry {
        phrase: "failed to connect",
        cause: ErrorKind::ForwarderConnection,
        source: "curl CURLE_COULDNT_CONNECT \"Failed to connect to ...\"",
    },
    Entry {
        phrase: "couldn't connect to server",
        cause: ErrorKind::ForwarderConnection,
        source: "curl_easy_strerror(CURLE_COULDNT_CONNECT)",
    },
    Entry {
        phrase: "could not resolve host",
        cause: ErrorKind::NoServer,
        source: "curl CURLE_COULDNT_RESOLVE_HOST \"Could not resolve host\"",
    },
    Entry {
        phrase: "couldn't resolve host name",
        cause: ErrorKind::NoServer,
        source: "curl_easy_strerror(CURLE_COULDNT_RESOLVE_HOST)",
    },
    Entry {
        phrase: "operation timed out",
        cause: ErrorKind::CgiTimeout,
        source: "curl CURLE_OPERATION_TIMEDOUT; macOS strerror(ETIMEDOUT)",
    },
    Entry {
        phrase: "empty reply from server",
        cause: ErrorKind::PrematureExit,
        source: "curl CURLE_GOT_NOTHING",
    },
    Entry {
        phrase: "recv failure",
        cause: ErrorKind::PrematureExit,
        source: "curl CURLE_RECV_ERROR \"Recv failure\"",
    },
    Entry {
        phrase: "send failure",
        cause: ErrorKind::ForwardedRequest,
        source: "curl CURLE_SEND_ERROR \"Send failure\"",
    },
    Entry {
        phrase: "while connecting to upstream",
        cause: ErrorKind::ForwarderConnection,
        source: "nginx ngx_http_upstream error log context",
    },
    Entry {
        phrase: "upstream timed out",
        cause: ErrorKind::CgiTimeout,
        source: "nginx \"upstream timed out (110: Connection timed out)\"",
    },
    Entry {
        phrase: "upstream prematurely closed connection",
        cause: ErrorKind::PrematureExit,
        source: "nginx ngx_http_upstream error log",
    },
    Entry {
        phrase: "upstream sent invalid header",
        cause: ErrorKind::ExecuteRequest,
        source: "nginx ngx_http_upstream error log",
    },
    Entry {
        phrase: "no live upstreams",
        cause: ErrorKind::NoServer,
        source: "nginx \"no live upstreams while connecting to upstream\"",
    },
    Entry {
        phrase: "could not connect",
        cause: ErrorKind::ForwarderConnection,
        source: "plain English used by proxies (e.g. \"could not connect to backend\")",
    },
    Entry {
        phrase: "unable to connect",
        cause: ErrorKind::ForwarderConnection,
        source: "plain English used by proxies",
    },
    Entry {
        phrase: "cannot connect",
        cause: ErrorKind::ForwarderConnection,
        source: "plain English used by proxies; ARR HRESULT 0x80072efd meaning",
    },
    Entry {
        phrase: "could not resolve",
        cause: ErrorKind::NoServer,
        source: "plain English used by proxies",
    },
    Entry {
        phrase: "closed the connection",
        cause: ErrorKind::PrematureExit,
        source: "plain English used by proxies (\"the backend closed the connection unexpectedly\")",
    },
    Entry {
        phrase: "connection closed unexpectedly",
        cause: ErrorKind::PrematureExit,
        source: "plain English used by proxies",
    },
    Entry {
        phrase: "timed out",
        cause: ErrorKind::CgiTimeout,
        source: "plain English; the end of most runtimes' timeout texts",
    },
    Entry {
        phrase: "invalid response from upstream",
        cause: ErrorKind::ExecuteRequest,
        source: "plain English used by proxies",
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_phrase_is_lower_case_unique_and_sourced() {
        let mut seen = std::collections::HashSet::new();
        for e in TABLE {
            assert_eq!(e.phrase, e.phrase.to_ascii_lowercase(), "{}", e.phrase);
            assert!(seen.insert(e.phrase), "{} twice", e.phrase);
            assert!(!e.source.is_empty(), "{} has no source", e.phrase);
        }
    }
}
