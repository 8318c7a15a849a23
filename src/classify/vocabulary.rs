//! The second stage of the response classifier: network-error texts as runtimes and system
//! libraries print them, found in any gateway's page.
//!
//! A proxy nobody here has heard of still quotes the error its runtime gave it: Go's
//! `dial tcp 10.0.0.5:8080: connect: connection refused`, Node's `ECONNRESET`, Python's
//! `Remote end closed connection without response`, Java's `java.net.SocketTimeoutException:
//! Read timed out`, .NET's `No such host is known`, curl's `Empty reply from server`. Those texts
//! say what failed, whatever the page around them looks like (HTML, JSON, one line of text).
//!
//! Matching: case-insensitive (on the page's lowered text), white space collapsed, on word
//! boundaries (so "timed out" counts and "outage" does not), by Aho-Corasick automata built once
//! (a few, each small enough for a vectorised prefilter: measured in `benches/overhead.rs`),
//! over the page's first
//! [`BODY_PREFIX_LIMIT`](super::BODY_PREFIX_LIMIT) bytes.
//!
//! Precedence when a page names several: the failure nearer the start of the exchange wins,
//! since the later ones follow from it: a DNS failure, then a connect failure, then a failure
//! writing the request, then a reset or early close, then a malformed answer, then a timeout;
//! among phrases of the same cause the longest (most specific) names the evidence.
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

/// Word pieces, without white space, at least one of which every phrase contains (a test
/// checks it): a page without any of them cannot match, whatever its line breaks, and a small automaton finds them with a vectorised prefilter far
/// faster than the whole table's automaton walks a page byte by byte.
const ANCHORS: &[&str] = &[
    "refus",
    "reset",
    "time",
    "resolv",
    "unreach",
    "clos",
    "lookup",
    "host",
    "connect",
    "pipe",
    "hang",
    "malformed",
    "invalid",
    "abort",
    "econn",
    "deadline",
    "disconnect",
    "enotfound",
    "eai_",
    "route",
    "eof",
    "empty",
    "nothing",
    "such",
    "parse",
    "fail",
    "lost",
    "write",
    "weird",
    "badstatus",
    "incomplete",
    "ended",
    "prematur",
    "(os",
    "status",
    "header",
    "unexpected",
    "gaierror",
    "dial",
    "name",
    "epipe",
    "misbehaving",
    "reply",
    "response",
    "upstream",
    "shutdown",
];

/// The anchors' searcher: Teddy (SIMD) where the CPU has it, else an automaton.
enum Gate {
    Packed(aho_corasick::packed::Searcher),
    Automaton(AhoCorasick),
}

impl Gate {
    fn is_match(&self, text: &[u8]) -> bool {
        match self {
            Gate::Packed(searcher) => searcher.find(text).is_some(),
            Gate::Automaton(automaton) => automaton.is_match(text),
        }
    }
}

static GATE: LazyLock<Gate> = LazyLock::new(|| {
    let mut packed = aho_corasick::packed::Config::new().builder();
    match packed.extend(ANCHORS).build() {
        Some(searcher) => Gate::Packed(searcher),
        None => Gate::Automaton(AhoCorasick::new(ANCHORS).expect("the anchors build")),
    }
});

/// Whether `text` may hold a phrase (it holds an anchor), checked before the page is copied
/// with its white space collapsed.
pub(super) fn may_match(text: &[u8]) -> bool {
    GATE.is_match(text)
}

static AUTOMATON: LazyLock<AhoCorasick> = LazyLock::new(|| {
    // The classifier lowers the page's ASCII before matching and the phrases are lower-case,
    // so the automaton matches bytes as they are. Every occurrence is reported, overlapping
    // ones too, so that a longer phrase failing the boundary check hides no shorter one. A
    // DFA: one table lookup per byte, the fastest over a page that matches nothing.
    AhoCorasickBuilder::new()
        .match_kind(MatchKind::Standard)
        .build(TABLE.iter().map(|e| e.phrase))
        .expect("the vocabulary builds")
});

/// The phrase of the table found in `text` that names the failure nearest the start of the
/// exchange, with its cause.
/// The caller checks [`may_match`] first (before copying the page to collapse its white space).
pub(super) fn find(text: &[u8]) -> Option<(ErrorKind, &'static str)> {
    let mut best: Option<(u8, &Entry)> = None;
    for found in AUTOMATON.find_overlapping_iter(text) {
        let entry = &TABLE[found.pattern().as_usize()];
        if !on_word_boundaries(text, found.start(), found.end(), entry.phrase) {
            continue;
        }
        let rank = rank(entry.cause);
        // Nearer the start of the exchange first; among equals, the more specific (longer)
        // phrase names the evidence.
        if best.is_none_or(|(r, e)| rank < r || (rank == r && entry.phrase.len() > e.phrase.len()))
        {
            best = Some((rank, entry));
        }
    }
    best.map(|(_, e)| (e.cause, e.phrase))
}

/// Whether the match does not cut a word: a phrase edge that is a letter or digit must not
/// touch another; an edge of punctuation (`(os error 111)`, `failed to resolve '`) needs no
/// check on that side.
fn on_word_boundaries(text: &[u8], start: usize, end: usize, phrase: &str) -> bool {
    let edges = phrase.as_bytes();
    let first = edges.first().copied().is_some_and(is_word);
    let last = edges.last().copied().is_some_and(is_word);
    let before = start.checked_sub(1).map(|i| text[i]);
    let after = text.get(end).copied();
    let cuts_before = first && before.is_some_and(is_word);
    let cuts_after = last && after.is_some_and(is_word);
    !(cuts_before || cuts_after)
}

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Nearer the start of the exchange first.
fn rank(cause: ErrorKind) -> u8 {
    match cause {
        ErrorKind::NameNotResolved | ErrorKind::NoHealthyServer => 0,
        ErrorKind::ConnectFailed => 1,
        ErrorKind::SendFailed => 2,
        ErrorKind::ConnectionClosed => 3,
        ErrorKind::InvalidResponse => 4,
        ErrorKind::TimedOut => 5,
        _ => 6,
    }
}

/// The phrases, lower-case, each with its source.
pub(super) static TABLE: &[Entry] = &[
    Entry {
        phrase: "connection refused",
        cause: ErrorKind::ConnectFailed,
        source: "glibc strerror(ECONNREFUSED); Rust io::ErrorKind::ConnectionRefused; Java ConnectException",
    },
    Entry {
        phrase: "connection reset by peer",
        cause: ErrorKind::ConnectionClosed,
        source: "glibc strerror(ECONNRESET); curl (56) Recv failure",
    },
    Entry {
        phrase: "connection reset",
        cause: ErrorKind::ConnectionClosed,
        source: "Java SocketException \"Connection reset\"; Rust io::ErrorKind::ConnectionReset",
    },
    Entry {
        phrase: "connection timed out",
        cause: ErrorKind::ConnectFailed,
        source: "glibc strerror(ETIMEDOUT)",
    },
    Entry {
        phrase: "no route to host",
        cause: ErrorKind::ConnectFailed,
        source: "glibc strerror(EHOSTUNREACH); Java NoRouteToHostException",
    },
    Entry {
        phrase: "network is unreachable",
        cause: ErrorKind::ConnectFailed,
        source: "glibc strerror(ENETUNREACH)",
    },
    Entry {
        phrase: "host is unreachable",
        cause: ErrorKind::ConnectFailed,
        source: "Rust io::ErrorKind::HostUnreachable display",
    },
    Entry {
        phrase: "network unreachable",
        cause: ErrorKind::ConnectFailed,
        source: "Rust io::ErrorKind::NetworkUnreachable display",
    },
    Entry {
        phrase: "connection aborted",
        cause: ErrorKind::ConnectionClosed,
        source: "Rust io::ErrorKind::ConnectionAborted; glibc strerror(ECONNABORTED) \"Software caused connection abort\"",
    },
    Entry {
        phrase: "software caused connection abort",
        cause: ErrorKind::ConnectionClosed,
        source: "glibc strerror(ECONNABORTED)",
    },
    Entry {
        phrase: "name or service not known",
        cause: ErrorKind::NameNotResolved,
        source: "glibc gai_strerror(EAI_NONAME)",
    },
    Entry {
        phrase: "temporary failure in name resolution",
        cause: ErrorKind::NameNotResolved,
        source: "glibc gai_strerror(EAI_AGAIN)",
    },
    Entry {
        phrase: "no address associated with hostname",
        cause: ErrorKind::NameNotResolved,
        source: "glibc gai_strerror(EAI_NODATA)",
    },
    Entry {
        phrase: "nodename nor servname provided",
        cause: ErrorKind::NameNotResolved,
        source: "BSD/macOS gai_strerror(EAI_NONAME)",
    },
    Entry {
        phrase: "failed to lookup address information",
        cause: ErrorKind::NameNotResolved,
        source: "Rust std::net to_socket_addrs error text",
    },
    Entry {
        phrase: "econnrefused",
        cause: ErrorKind::ConnectFailed,
        source: "POSIX errno name; Node.js error code",
    },
    Entry {
        phrase: "econnreset",
        cause: ErrorKind::ConnectionClosed,
        source: "POSIX errno name; Node.js error code",
    },
    Entry {
        phrase: "etimedout",
        cause: ErrorKind::TimedOut,
        source: "POSIX errno name; Node.js error code",
    },
    Entry {
        phrase: "ehostunreach",
        cause: ErrorKind::ConnectFailed,
        source: "POSIX errno name; Node.js error code",
    },
    Entry {
        phrase: "enetunreach",
        cause: ErrorKind::ConnectFailed,
        source: "POSIX errno name; Node.js error code",
    },
    Entry {
        phrase: "econnaborted",
        cause: ErrorKind::ConnectionClosed,
        source: "POSIX errno name; Node.js error code",
    },
    Entry {
        phrase: "epipe",
        cause: ErrorKind::SendFailed,
        source: "POSIX errno name; Node.js error code",
    },
    Entry {
        phrase: "dial tcp",
        cause: ErrorKind::ConnectFailed,
        source: "Go net.OpError for the \"dial\" op: every failure to connect",
    },
    Entry {
        phrase: "no such host",
        cause: ErrorKind::NameNotResolved,
        source: "Go net.DNSError errNoSuchHost \"no such host\"",
    },
    Entry {
        phrase: "i/o timeout",
        cause: ErrorKind::TimedOut,
        source: "Go net/internal poll.ErrDeadlineExceeded \"i/o timeout\"",
    },
    Entry {
        phrase: "context deadline exceeded",
        cause: ErrorKind::TimedOut,
        source: "Go context.DeadlineExceeded",
    },
    Entry {
        phrase: "timeout awaiting response headers",
        cause: ErrorKind::TimedOut,
        source: "Go net/http transport \"net/http: timeout awaiting response headers\"",
    },
    Entry {
        phrase: "server closed idle connection",
        cause: ErrorKind::ConnectionClosed,
        source: "Go net/http errServerClosedIdle",
    },
    Entry {
        phrase: "malformed http response",
        cause: ErrorKind::InvalidResponse,
        source: "Go net/http transport \"malformed HTTP response\"",
    },
    Entry {
        phrase: "malformed http status code",
        cause: ErrorKind::InvalidResponse,
        source: "Go net/http \"malformed HTTP status code\"",
    },
    Entry {
        phrase: "enotfound",
        cause: ErrorKind::NameNotResolved,
        source: "Node.js getaddrinfo ENOTFOUND (dns.NOTFOUND)",
    },
    Entry {
        phrase: "eai_again",
        cause: ErrorKind::NameNotResolved,
        source: "Node.js getaddrinfo EAI_AGAIN (dns.TIMEOUT/temporary failure)",
    },
    Entry {
        phrase: "socket hang up",
        cause: ErrorKind::ConnectionClosed,
        source: "Node.js _http_client.js connResetException(\"socket hang up\")",
    },
    Entry {
        phrase: "remote end closed connection without response",
        cause: ErrorKind::ConnectionClosed,
        source: "Python http.client.RemoteDisconnected",
    },
    Entry {
        phrase: "connectionrefusederror",
        cause: ErrorKind::ConnectFailed,
        source: "Python builtin ConnectionRefusedError",
    },
    Entry {
        phrase: "connectionreseterror",
        cause: ErrorKind::ConnectionClosed,
        source: "Python builtin ConnectionResetError",
    },
    Entry {
        phrase: "remotedisconnected",
        cause: ErrorKind::ConnectionClosed,
        source: "Python http.client.RemoteDisconnected",
    },
    Entry {
        phrase: "newconnectionerror",
        cause: ErrorKind::ConnectFailed,
        source: "urllib3.exceptions.NewConnectionError",
    },
    Entry {
        phrase: "failed to establish a new connection",
        cause: ErrorKind::ConnectFailed,
        source: "urllib3 NewConnectionError message",
    },
    Entry {
        phrase: "connecttimeout",
        cause: ErrorKind::ConnectFailed,
        source: "requests.exceptions.ConnectTimeout / urllib3 ConnectTimeoutError",
    },
    Entry {
        phrase: "read timed out",
        cause: ErrorKind::TimedOut,
        source: "urllib3 ReadTimeoutError \"Read timed out.\"; Java SocketTimeoutException",
    },
    Entry {
        phrase: "readtimeout",
        cause: ErrorKind::TimedOut,
        source: "requests.exceptions.ReadTimeout; httpx.ReadTimeout",
    },
    Entry {
        phrase: "gaierror",
        cause: ErrorKind::NameNotResolved,
        source: "Python socket.gaierror",
    },
    Entry {
        phrase: "connectexception",
        cause: ErrorKind::ConnectFailed,
        source: "java.net.ConnectException",
    },
    Entry {
        phrase: "unknownhostexception",
        cause: ErrorKind::NameNotResolved,
        source: "java.net.UnknownHostException",
    },
    Entry {
        phrase: "sockettimeoutexception",
        cause: ErrorKind::TimedOut,
        source: "java.net.SocketTimeoutException",
    },
    Entry {
        phrase: "noroutetohostexception",
        cause: ErrorKind::ConnectFailed,
        source: "java.net.NoRouteToHostException",
    },
    Entry {
        phrase: "connect timed out",
        cause: ErrorKind::ConnectFailed,
        source: "java.net.SocketTimeoutException \"connect timed out\"",
    },
    Entry {
        phrase: "httptimeoutexception",
        cause: ErrorKind::TimedOut,
        source: "java.net.http.HttpTimeoutException",
    },
    Entry {
        phrase: "actively refused it",
        cause: ErrorKind::ConnectFailed,
        source: ".NET SocketError.ConnectionRefused \"No connection could be made because the target machine actively refused it\"",
    },
    Entry {
        phrase: "no such host is known",
        cause: ErrorKind::NameNotResolved,
        source: ".NET SocketError.HostNotFound \"No such host is known\"",
    },
    Entry {
        phrase: "forcibly closed by the remote host",
        cause: ErrorKind::ConnectionClosed,
        source: ".NET SocketError.ConnectionReset \"An existing connection was forcibly closed by the remote host\"",
    },
    Entry {
        phrase: "the response ended prematurely",
        cause: ErrorKind::ConnectionClosed,
        source: ".NET HttpIOException net_http_invalid_response_premature_eof",
    },
    Entry {
        phrase: "connection attempt failed because the connected party did not properly respond",
        cause: ErrorKind::ConnectFailed,
        source: ".NET SocketError.TimedOut message",
    },
    Entry {
        phrase: "connection closed before message completed",
        cause: ErrorKind::ConnectionClosed,
        source: "hyper Error::IncompleteMessage display",
    },
    Entry {
        phrase: "error trying to connect",
        cause: ErrorKind::ConnectFailed,
        source: "hyper 0.14 client connect error display",
    },
    Entry {
        phrase: "tcp connect error",
        cause: ErrorKind::ConnectFailed,
        source: "hyper-util HttpConnector ConnectError",
    },
    Entry {
        phrase: "invalid http version parsed",
        cause: ErrorKind::InvalidResponse,
        source: "hyper Error::Parse(Version) display",
    },
    Entry {
        phrase: "invalid http status-code parsed",
        cause: ErrorKind::InvalidResponse,
        source: "hyper Error::Parse(Status) display",
    },
    Entry {
        phrase: "couldn't connect to server",
        cause: ErrorKind::ConnectFailed,
        source: "curl_easy_strerror(CURLE_COULDNT_CONNECT)",
    },
    Entry {
        phrase: "could not resolve host",
        cause: ErrorKind::NameNotResolved,
        source: "curl CURLE_COULDNT_RESOLVE_HOST \"Could not resolve host\"",
    },
    Entry {
        phrase: "couldn't resolve host name",
        cause: ErrorKind::NameNotResolved,
        source: "curl_easy_strerror(CURLE_COULDNT_RESOLVE_HOST)",
    },
    Entry {
        phrase: "operation timed out",
        cause: ErrorKind::TimedOut,
        source: "curl CURLE_OPERATION_TIMEDOUT; macOS strerror(ETIMEDOUT)",
    },
    Entry {
        phrase: "empty reply from server",
        cause: ErrorKind::ConnectionClosed,
        source: "curl CURLE_GOT_NOTHING",
    },
    Entry {
        phrase: "while connecting to upstream",
        cause: ErrorKind::ConnectFailed,
        source: "nginx ngx_http_upstream error log context",
    },
    Entry {
        phrase: "upstream timed out",
        cause: ErrorKind::TimedOut,
        source: "nginx \"upstream timed out (110: Connection timed out)\"",
    },
    Entry {
        phrase: "upstream prematurely closed connection",
        cause: ErrorKind::ConnectionClosed,
        source: "nginx ngx_http_upstream error log",
    },
    Entry {
        phrase: "upstream sent invalid header",
        cause: ErrorKind::InvalidResponse,
        source: "nginx ngx_http_upstream error log",
    },
    Entry {
        phrase: "no live upstreams",
        cause: ErrorKind::NoHealthyServer,
        source: "nginx \"no live upstreams while connecting to upstream\"",
    },
    Entry {
        phrase: "connection closed unexpectedly",
        cause: ErrorKind::ConnectionClosed,
        source: "plain English used by proxies",
    },
    Entry {
        phrase: "invalid response from upstream",
        cause: ErrorKind::InvalidResponse,
        source: "plain English used by proxies",
    },
    Entry {
        phrase: "non-recoverable failure in name resolution",
        cause: ErrorKind::NameNotResolved,
        source: "glibc gai_strerror EAI_FAIL: bminor/glibc sysdeps/posix/gai_strerror-strs.h",
    },
    Entry {
        phrase: "name does not resolve",
        cause: ErrorKind::NameNotResolved,
        source: "musl gai_strerror EAI_NONAME: musl src/network/gai_strerror.c (seen via copies in code corpus, e.g. NuttX libc netdb)",
    },
    Entry {
        phrase: "getaddrinfo failed",
        cause: ErrorKind::NameNotResolved,
        source: "CPython socket.gaierror on Windows ([Errno 11001]): urllib3 NewConnectionError texts in code corpus ('[Errno 11001] getaddrinfo failed')",
    },
    Entry {
        phrase: "getaddrinfo enotfound",
        cause: ErrorKind::NameNotResolved,
        source: "Node.js dns/net: nodejs/node lib/internal/errors.js (dnsException/errnoException/exceptionWithHostPort: `${syscall} ${code} ...`)",
    },
    Entry {
        phrase: "getaddrinfo eai_again",
        cause: ErrorKind::NameNotResolved,
        source: "Node.js dns/net: nodejs/node lib/internal/errors.js (dnsException/errnoException/exceptionWithHostPort: `${syscall} ${code} ...`)",
    },
    Entry {
        phrase: "nameresolutionerror",
        cause: ErrorKind::NameNotResolved,
        source: ".NET HttpRequestError.NameResolutionError; urllib3 NameResolutionError: dotnet/runtime src/libraries/System.Net.Http/src/System/Net/Http/HttpRequestError.cs ; urllib3/urllib3 src/urllib3/exceptions.py",
    },
    Entry {
        phrase: "failed to resolve '",
        cause: ErrorKind::NameNotResolved,
        source: "urllib3 2.x NameResolutionError message: urllib3/urllib3 src/urllib3/exceptions.py",
    },
    Entry {
        phrase: "dial tcp: lookup",
        cause: ErrorKind::NameNotResolved,
        source: "Go net.OpError wrapping DNSError (\"lookup <host> on <server>: ...\"): golang/go src/net/net.go (DNSError.Error: \"lookup \" + name ...)",
    },
    Entry {
        phrase: "server misbehaving",
        cause: ErrorKind::NameNotResolved,
        source: "Go net DNS errServerMisbehaving: golang/go src/net/dnsclient_unix.go",
    },
    Entry {
        phrase: "resolving timed out after",
        cause: ErrorKind::NameNotResolved,
        source: "curl (DNS phase timeout): curl/curl lib/multi.c",
    },
    Entry {
        phrase: "could not be resolved (",
        cause: ErrorKind::NameNotResolved,
        source: "nginx resolver (e.g. \"could not be resolved (3: Host not found)\"): nginx/nginx src/core/ngx_resolver.c; log lines seen in code corpus",
    },
    Entry {
        phrase: "connect econnrefused",
        cause: ErrorKind::ConnectFailed,
        source: "Node.js net (exceptionWithHostPort): nodejs/node lib/internal/errors.js (dnsException/errnoException/exceptionWithHostPort: `${syscall} ${code} ...`)",
    },
    Entry {
        phrase: "host unreachable",
        cause: ErrorKind::ConnectFailed,
        source: "Rust io::ErrorKind::HostUnreachable: rust-lang/rust library/core/src/io/error.rs (ErrorKind::as_str, re-exported as std::io::ErrorKind)",
    },
    Entry {
        phrase: "connect etimedout",
        cause: ErrorKind::ConnectFailed,
        source: "Node.js net connect timeout: nodejs/node lib/internal/errors.js (dnsException/errnoException/exceptionWithHostPort: `${syscall} ${code} ...`)",
    },
    Entry {
        phrase: "connected party did not properly respond after a period of time",
        cause: ErrorKind::ConnectFailed,
        source: "Windows WSAETIMEDOUT 10060: https://knowledge.mdaemon.com/windows-socket-winsock-error-codes-and-descriptions (copy of learn.microsoft.com Windows Sockets Error Codes)",
    },
    Entry {
        phrase: "(os error 111)",
        cause: ErrorKind::ConnectFailed,
        source: "Rust io::Error Display, Linux ECONNREFUSED: rust-lang/rust library/std/src/io/error.rs (Display: \"{detail} (os error {code})\") ; errno 111 per Linux",
    },
    Entry {
        phrase: "(connect timeout=",
        cause: ErrorKind::ConnectFailed,
        source: "urllib3 \"Connection to <host> timed out. (connect timeout=N)\": urllib3/urllib3 src/urllib3/connection.py",
    },
    Entry {
        phrase: "connect call failed",
        cause: ErrorKind::ConnectFailed,
        source: "CPython asyncio sock_connect (ConnectionRefusedError: [Errno 111] Connect call failed): python/cpython Lib/asyncio/selector_events.py",
    },
    Entry {
        phrase: "cannot connect to host",
        cause: ErrorKind::ConnectFailed,
        source: "aiohttp ClientConnectorError: aio-libs/aiohttp aiohttp/client_exceptions.py",
    },
    Entry {
        phrase: "connect timeout error",
        cause: ErrorKind::ConnectFailed,
        source: "undici ConnectTimeoutError default message: nodejs/undici lib/core/errors.js",
    },
    Entry {
        phrase: "ssl connect error",
        cause: ErrorKind::ConnectFailed,
        source: "curl_easy_strerror CURLE_SSL_CONNECT_ERROR (TLS handshake): curl/curl lib/strerror.c",
    },
    Entry {
        phrase: "tls handshake timeout",
        cause: ErrorKind::ConnectFailed,
        source: "Go \"net/http: TLS handshake timeout\": golang/go src/net/http/transport.go (tlsHandshakeTimeoutError)",
    },
    Entry {
        phrase: "request canceled while waiting for connection",
        cause: ErrorKind::ConnectFailed,
        source: "Go net/http errRequestCanceledConn: golang/go src/net/http/transport.go",
    },
    Entry {
        phrase: "the ssl connection could not be established",
        cause: ErrorKind::ConnectFailed,
        source: ".NET net_http_ssl_connection_failed: dotnet/runtime src/libraries/System.Net.Http/src/Resources/Strings.resx",
    },
    Entry {
        phrase: "connect() failed",
        cause: ErrorKind::ConnectFailed,
        source: "nginx (\"connect() failed (111: Connection refused) while connecting to upstream\"): yaozd/com.yzd.jutils com.yzd.jutils/src/main/java/com/yzd/jutils/nginxExt/README-Nginx-故障.md (nginx error.log lines)",
    },
    Entry {
        phrase: "read econnreset",
        cause: ErrorKind::ConnectionClosed,
        source: "Node.js net read error: nodejs/node lib/internal/errors.js (dnsException/errnoException/exceptionWithHostPort: `${syscall} ${code} ...`)",
    },
    Entry {
        phrase: "an existing connection was forcibly closed by the remote host",
        cause: ErrorKind::ConnectionClosed,
        source: "Windows WSAECONNRESET 10054 (.NET): https://knowledge.mdaemon.com/windows-socket-winsock-error-codes-and-descriptions (copy of learn.microsoft.com Windows Sockets Error Codes)",
    },
    Entry {
        phrase: "(os error 104)",
        cause: ErrorKind::ConnectionClosed,
        source: "Rust io::Error Display, Linux ECONNRESET: rust-lang/rust library/std/src/io/error.rs (Display: \"{detail} (os error {code})\")",
    },
    Entry {
        phrase: "other side closed",
        cause: ErrorKind::ConnectionClosed,
        source: "undici SocketError (UND_ERR_SOCKET): nodejs/undici lib/dispatcher/client-h1.js (older lib/client.js)",
    },
    Entry {
        phrase: "unexpected end of stream on",
        cause: ErrorKind::ConnectionClosed,
        source: "OkHttp Http1ExchangeCodec IOException: square/okhttp Http1ExchangeCodec (seen via copies in code corpus)",
    },
    Entry {
        phrase: "http2: client connection lost",
        cause: ErrorKind::ConnectionClosed,
        source: "Go net/http HTTP/2 (lost ping): golang/go src/net/http/h2_bundle.go (text seen in code corpus)",
    },
    Entry {
        phrase: "incompleteread",
        cause: ErrorKind::ConnectionClosed,
        source: "CPython http.client / urllib3 IncompleteRead: python/cpython Lib/http/client.py ; urllib3/urllib3 src/urllib3/exceptions.py",
    },
    Entry {
        phrase: "server disconnected without sending a response",
        cause: ErrorKind::ConnectionClosed,
        source: "httpcore/httpx RemoteProtocolError: encode/httpcore httpcore/_async/http11.py",
    },
    Entry {
        phrase: "serverdisconnectederror",
        cause: ErrorKind::ConnectionClosed,
        source: "aiohttp ServerDisconnectedError: aio-libs/aiohttp aiohttp/client_exceptions.py",
    },
    Entry {
        phrase: "server returned nothing (no headers, no data)",
        cause: ErrorKind::ConnectionClosed,
        source: "curl_easy_strerror CURLE_GOT_NOTHING: curl/curl lib/strerror.c",
    },
    Entry {
        phrase: "failure when receiving data from the peer",
        cause: ErrorKind::ConnectionClosed,
        source: "curl_easy_strerror CURLE_RECV_ERROR: curl/curl lib/strerror.c",
    },
    Entry {
        phrase: "transfer closed with",
        cause: ErrorKind::ConnectionClosed,
        source: "curl CURLE_PARTIAL_FILE (\"transfer closed with N bytes remaining to read\"): curl/curl lib/transfer.c",
    },
    Entry {
        phrase: "responseended",
        cause: ErrorKind::ConnectionClosed,
        source: ".NET HttpRequestError.ResponseEnded: dotnet/runtime src/libraries/System.Net.Http/src/System/Net/Http/HttpRequestError.cs",
    },
    Entry {
        phrase: "the target server failed to respond",
        cause: ErrorKind::ConnectionClosed,
        source: "Apache HttpClient NoHttpResponseException: Apache HttpClient DefaultHttpResponseParser (seen via copies in code corpus)",
    },
    Entry {
        phrase: "client.timeout exceeded while awaiting headers",
        cause: ErrorKind::TimedOut,
        source: "Go net/http Client.Timeout: golang/go src/net/http/client.go",
    },
    Entry {
        phrase: "servertimeouterror",
        cause: ErrorKind::TimedOut,
        source: "aiohttp ServerTimeoutError: aio-libs/aiohttp aiohttp/client_exceptions.py",
    },
    Entry {
        phrase: "headers timeout error",
        cause: ErrorKind::TimedOut,
        source: "undici HeadersTimeoutError default message: nodejs/undici lib/core/errors.js",
    },
    Entry {
        phrase: "deadline has elapsed",
        cause: ErrorKind::TimedOut,
        source: "tokio time::error::Elapsed: tokio-rs/tokio tokio/src/time/error.rs",
    },
    Entry {
        phrase: "timeout was reached",
        cause: ErrorKind::TimedOut,
        source: "curl_easy_strerror CURLE_OPERATION_TIMEDOUT: curl/curl lib/strerror.c",
    },
    Entry {
        phrase: "the request was canceled due to the configured httpclient.timeout",
        cause: ErrorKind::TimedOut,
        source: ".NET net_http_request_timedout: dotnet/runtime src/libraries/System.Net.Http/src/Resources/Strings.resx",
    },
    Entry {
        phrase: "write epipe",
        cause: ErrorKind::SendFailed,
        source: "Node.js net write error: nodejs/node lib/internal/errors.js (dnsException/errnoException/exceptionWithHostPort: `${syscall} ${code} ...`)",
    },
    Entry {
        phrase: "brokenpipeerror",
        cause: ErrorKind::SendFailed,
        source: "CPython BrokenPipeError: https://www.python.org/pipermail/python-checkins/2012-October/117071.html (Doc/library/exceptions.rst)",
    },
    Entry {
        phrase: "write: connection reset by peer",
        cause: ErrorKind::SendFailed,
        source: "Go net.OpError on write (request write failed): Go error texts in code corpus (net.OpError Op=\"write\")",
    },
    Entry {
        phrase: "cannot send after transport endpoint shutdown",
        cause: ErrorKind::SendFailed,
        source: "glibc strerror ESHUTDOWN: bminor/glibc sysdeps/gnu/errlist.h",
    },
    Entry {
        phrase: "error writing a body to connection",
        cause: ErrorKind::SendFailed,
        source: "hyper Kind::BodyWrite: hyperium/hyper src/error.rs",
    },
    Entry {
        phrase: "failed sending data to the peer",
        cause: ErrorKind::SendFailed,
        source: "curl_easy_strerror CURLE_SEND_ERROR: curl/curl lib/strerror.c",
    },
    Entry {
        phrase: "request body length does not match content-length header",
        cause: ErrorKind::SendFailed,
        source: "undici RequestContentLengthMismatchError: nodejs/undici lib/core/errors.js",
    },
    Entry {
        phrase: "while sending request to upstream",
        cause: ErrorKind::SendFailed,
        source: "nginx error-log context suffix: yaozd/com.yzd.jutils com.yzd.jutils/src/main/java/com/yzd/jutils/nginxExt/README-Nginx-故障.md (nginx error.log lines)",
    },
    Entry {
        phrase: "malformed mime header line",
        cause: ErrorKind::InvalidResponse,
        source: "Go net/textproto: golang/go src/net/textproto/reader.go; text seen in code corpus",
    },
    Entry {
        phrase: "badstatusline",
        cause: ErrorKind::InvalidResponse,
        source: "CPython http.client BadStatusLine: python/cpython Lib/http/client.py",
    },
    Entry {
        phrase: "invalid http header parsed",
        cause: ErrorKind::InvalidResponse,
        source: "hyper Parse::Header: hyperium/hyper src/error.rs",
    },
    Entry {
        phrase: "received unexpected message from connection",
        cause: ErrorKind::InvalidResponse,
        source: "hyper Kind::UnexpectedMessage: hyperium/hyper src/error.rs",
    },
    Entry {
        phrase: "the server returned an invalid or unrecognized response",
        cause: ErrorKind::InvalidResponse,
        source: ".NET net_http_invalid_response: dotnet/runtime src/libraries/System.Net.Http/src/Resources/Strings.resx",
    },
    Entry {
        phrase: "received an invalid status line",
        cause: ErrorKind::InvalidResponse,
        source: ".NET net_http_invalid_response_status_line: dotnet/runtime src/libraries/System.Net.Http/src/Resources/Strings.resx",
    },
    Entry {
        phrase: "received an invalid header line",
        cause: ErrorKind::InvalidResponse,
        source: ".NET net_http_invalid_response_header_line: dotnet/runtime src/libraries/System.Net.Http/src/Resources/Strings.resx",
    },
    Entry {
        phrase: "parse error: expected http/",
        cause: ErrorKind::InvalidResponse,
        source: "Node.js llhttp HPE_INVALID_CONSTANT: nodejs/node HTTP parser error text seen in code corpus (\"Parse Error: Expected HTTP/, RTSP/ or ICE/\")",
    },
    Entry {
        phrase: "hpe_invalid_constant",
        cause: ErrorKind::InvalidResponse,
        source: "Node.js llhttp error code: nodejs/node (llhttp) code seen in code corpus",
    },
    Entry {
        phrase: "weird server reply",
        cause: ErrorKind::InvalidResponse,
        source: "curl CURLE_WEIRD_SERVER_REPLY: curl/curl lib/strerror.c (\"FTP: weird server reply\" in old versions)",
    },
    Entry {
        phrase: "could not connect to upstream",
        cause: ErrorKind::ConnectFailed,
        source: "plain English of proxies (\"could not connect to upstream\")",
    },
    Entry {
        phrase: "could not connect to backend",
        cause: ErrorKind::ConnectFailed,
        source: "plain English of proxies",
    },
    Entry {
        phrase: "unable to connect to upstream",
        cause: ErrorKind::ConnectFailed,
        source: "plain English of proxies",
    },
    Entry {
        phrase: "unable to connect to backend",
        cause: ErrorKind::ConnectFailed,
        source: "plain English of proxies",
    },
    Entry {
        phrase: "failed to connect to upstream",
        cause: ErrorKind::ConnectFailed,
        source: "plain English of proxies",
    },
    Entry {
        phrase: "failed to connect to backend",
        cause: ErrorKind::ConnectFailed,
        source: "plain English of proxies",
    },
    Entry {
        phrase: "upstream closed the connection",
        cause: ErrorKind::ConnectionClosed,
        source: "plain English of proxies",
    },
    Entry {
        phrase: "backend closed the connection",
        cause: ErrorKind::ConnectionClosed,
        source: "plain English of proxies",
    },
    Entry {
        phrase: "backend timed out",
        cause: ErrorKind::TimedOut,
        source: "plain English of proxies",
    },
    Entry {
        phrase: "upstream server timed out",
        cause: ErrorKind::TimedOut,
        source: "plain English of proxies",
    },
    Entry {
        phrase: "write: broken pipe",
        cause: ErrorKind::SendFailed,
        source: "glibc strerror(EPIPE) \"Broken pipe\" after Go's and libc callers' \"write: \" prefix",
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    /// Every entry of the table, in a page of an unknown product, a JSON object and a line of
    /// text, at 502, 503 and 504: its own cause, as evidence, never "unsent" (at an
    /// application's 500 it proves nothing: `tests/vocabulary.rs`).
    #[test]
    fn every_entry_classifies_in_every_layout_and_status() {
        use http::{HeaderMap, StatusCode};
        let mut wrong = Vec::new();
        for e in TABLE {
            let layouts = [
                format!(
                    "<html><body><h1>Wombat Proxy</h1><p>upstream: {}</p></body></html>",
                    e.phrase
                ),
                format!(
                    "{{\"error\":\"bad gateway\",\"detail\":\"{}\"}}",
                    e.phrase.replace('"', "\\\"")
                ),
                format!("{}\n", e.phrase.to_ascii_uppercase()),
            ];
            for status in [502u16, 503, 504] {
                for page in &layouts {
                    let found = super::super::classify_response(
                        StatusCode::from_u16(status).unwrap(),
                        &HeaderMap::new(),
                        page.as_bytes(),
                    );
                    let ok = found.as_ref().is_some_and(|c| {
                        c.kind == e.cause
                            && !c.request_unsent
                            && c.evidence.starts_with("body says: ")
                    });
                    if !ok {
                        wrong.push(format!(
                            "{status} {:?}: {:?}",
                            e.phrase,
                            found.map(|c| (c.kind, c.evidence))
                        ));
                    }
                }
            }
        }
        assert!(
            wrong.is_empty(),
            "{} wrong:\n{}",
            wrong.len(),
            wrong.join("\n")
        );
    }

    #[test]
    fn every_phrase_holds_an_anchor() {
        for e in TABLE {
            assert!(
                ANCHORS.iter().any(|a| e.phrase.contains(a)),
                "{:?} holds no anchor: the gate would hide it",
                e.phrase
            );
        }
    }

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

#[cfg(test)]
mod speed {
    /// The cost of this stage against the whole classifier, in one process (the shared
    /// machines are too noisy to compare two runs): `cargo test --release --lib
    /// vocabulary_cost -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn vocabulary_cost() {
        use http::{HeaderMap, StatusCode};
        let time = |f: &dyn Fn()| {
            f();
            let t = std::time::Instant::now();
            for _ in 0..20_000 {
                f();
            }
            t.elapsed() / 20_000
        };
        // Realistic pages that match nothing, 4 KiB: ordinary text, and text full of the
        // anchor words (which then pays for the whole table's automaton).
        for line in [
            "<p>We are sorry, the page you requested is unavailable right now.</p>\n  ",
            "<p>Connection to the host failed at this time; the response status will follow.</p>\n  ",
        ] {
            let page: Vec<u8> = line.bytes().cycle().take(4096).collect();
            let lowered = String::from_utf8_lossy(&page).to_ascii_lowercase();
            let whole = time(&|| {
                std::hint::black_box(super::super::classify_response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &HeaderMap::new(),
                    std::hint::black_box(&page),
                ));
            });
            let stage = time(&|| {
                std::hint::black_box(super::super::response::runtime_error_text_for_bench(
                    std::hint::black_box(&lowered),
                ));
            });
            eprintln!(
                "4 KiB 503 page matching nothing ({}): whole {whole:?}, this stage {stage:?}: {:.2}x the classifier without it",
                &line[3..30],
                whole.as_secs_f64() / (whole - stage).as_secs_f64()
            );
        }
    }
}
