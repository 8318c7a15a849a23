//! The classifier's second stage: network-error texts of runtimes and system libraries, quoted in
//! the pages of gateways nobody here has seen, at 502, 503, 504 and 500, in three layouts each;
//! and pages that must stay what they are.

use http::{HeaderMap, StatusCode};
use reqwest_resilience::ErrorKind::{self, *};
use reqwest_resilience::classify::classify_response;

/// An error as the runtime prints it, and the cause it names.
struct Case {
    runtime: &'static str,
    printed: &'static str,
    cause: ErrorKind,
}

const fn case(runtime: &'static str, printed: &'static str, cause: ErrorKind) -> Case {
    Case {
        runtime,
        printed,
        cause,
    }
}

const CASES: &[Case] = &[
    // glibc strerror / gai_strerror
    case(
        "glibc",
        "connect() failed: Connection refused",
        ConnectFailed,
    ),
    case("glibc", "Connection reset by peer", ConnectionClosed),
    case("glibc", "Connection timed out", ConnectFailed),
    case("glibc", "No route to host", ConnectFailed),
    case("glibc", "Network is unreachable", ConnectFailed),
    case("glibc", "Name or service not known", NameNotResolved),
    case(
        "glibc",
        "Temporary failure in name resolution",
        NameNotResolved,
    ),
    case("glibc", "write: Broken pipe", SendFailed),
    // errno names
    case("errno", "upstream error: ECONNREFUSED", ConnectFailed),
    case("errno", "upstream error: ECONNRESET", ConnectionClosed),
    case("errno", "upstream error: ETIMEDOUT", TimedOut),
    case("errno", "upstream error: EHOSTUNREACH", ConnectFailed),
    // Go net / net/http
    case(
        "go",
        "dial tcp 10.0.0.5:8080: connect: connection refused",
        ConnectFailed,
    ),
    case(
        "go",
        "dial tcp: lookup backend.internal on 127.0.0.11:53: no such host",
        NameNotResolved,
    ),
    case(
        "go",
        "read tcp 10.0.0.2:41234->10.0.0.5:8080: read: connection reset by peer",
        ConnectionClosed,
    ),
    case("go", "context deadline exceeded", TimedOut),
    case(
        "go",
        "net/http: timeout awaiting response headers",
        TimedOut,
    ),
    case("go", "dial tcp 10.0.0.5:8080: i/o timeout", ConnectFailed),
    case(
        "go",
        "malformed HTTP response \"\\x00\\x00\"",
        InvalidResponse,
    ),
    // Node.js
    case(
        "node",
        "Error: connect ECONNREFUSED 127.0.0.1:3000",
        ConnectFailed,
    ),
    case(
        "node",
        "Error: getaddrinfo ENOTFOUND api.internal",
        NameNotResolved,
    ),
    case(
        "node",
        "Error: getaddrinfo EAI_AGAIN api.internal",
        NameNotResolved,
    ),
    case("node", "Error: socket hang up", ConnectionClosed),
    case("node", "Error: read ECONNRESET", ConnectionClosed),
    // Python
    case(
        "python",
        "ConnectionRefusedError: [Errno 111] Connection refused",
        ConnectFailed,
    ),
    case(
        "python",
        "http.client.RemoteDisconnected: Remote end closed connection without response",
        ConnectionClosed,
    ),
    case(
        "python",
        "socket.gaierror: [Errno -2] Name or service not known",
        NameNotResolved,
    ),
    case(
        "python",
        "requests.exceptions.ReadTimeout: HTTPConnectionPool(host='api', port=80): Read timed out.",
        TimedOut,
    ),
    // Java
    case(
        "java",
        "java.net.ConnectException: Connection refused",
        ConnectFailed,
    ),
    case(
        "java",
        "java.net.UnknownHostException: backend.internal",
        NameNotResolved,
    ),
    case(
        "java",
        "java.net.SocketTimeoutException: Read timed out",
        TimedOut,
    ),
    case(
        "java",
        "java.net.SocketException: Connection reset",
        ConnectionClosed,
    ),
    case(
        "java",
        "java.net.NoRouteToHostException: No route to host",
        ConnectFailed,
    ),
    // .NET
    case(
        ".net",
        "No connection could be made because the target machine actively refused it.",
        ConnectFailed,
    ),
    case(".net", "No such host is known.", NameNotResolved),
    case(
        ".net",
        "An existing connection was forcibly closed by the remote host.",
        ConnectionClosed,
    ),
    case(".net", "The response ended prematurely.", ConnectionClosed),
    // Rust std::io / hyper
    case(
        "rust",
        "error trying to connect: tcp connect error: Connection refused (os error 111)",
        ConnectFailed,
    ),
    case(
        "rust",
        "connection closed before message completed",
        ConnectionClosed,
    ),
    // curl
    case(
        "curl",
        "curl: (7) Failed to connect to api port 80: Connection refused",
        ConnectFailed,
    ),
    case(
        "curl",
        "curl: (6) Could not resolve host: api.internal",
        NameNotResolved,
    ),
    case(
        "curl",
        "curl: (52) Empty reply from server",
        ConnectionClosed,
    ),
    case(
        "curl",
        "curl: (28) Operation timed out after 5001 milliseconds",
        TimedOut,
    ),
    // proxies' plain English
    case(
        "plain",
        "Request failed: could not connect to upstream",
        ConnectFailed,
    ),
    case(
        "plain",
        "The backend closed the connection before answering",
        ConnectionClosed,
    ),
    case("plain", "The upstream server timed out", TimedOut),
    // edges of punctuation, and phrases hidden by a longer one
    case(
        "python",
        "urllib3.exceptions.ConnectTimeoutError: Connection to api timed out. (connect timeout=5)",
        ConnectFailed,
    ),
    case(
        "nginx",
        "api.internal could not be resolved (3: Host not found)",
        NameNotResolved,
    ),
    case(
        "node",
        "Error: connect ETIMEDOUT 10.0.0.5:443",
        ConnectFailed,
    ),
];

/// The same text in a page of an unknown product, a JSON error object, and one line of text.
fn layouts(printed: &str) -> [(&'static str, String); 3] {
    let json = printed.replace('\\', "\\\\").replace('"', "\\\"");
    [
        (
            "html",
            format!(
                "<!DOCTYPE html><html><head><title>Gateway error</title></head><body><h1>Zephyr Edge</h1><p>The request could not be completed.</p><pre>{printed}</pre><footer>zephyr-edge/4.2</footer></body></html>"
            ),
        ),
        (
            "json",
            format!("{{\"status\":\"error\",\"proxy\":\"quokka-gw\",\"message\":\"{json}\"}}"),
        ),
        ("text", format!("{printed}\n")),
    ]
}

#[test]
fn runtime_error_texts_in_unfamiliar_pages_name_their_cause() {
    let mut wrong = Vec::new();
    for case in CASES {
        for status in [502u16, 503, 504] {
            for (layout, body) in layouts(case.printed) {
                let status = StatusCode::from_u16(status).unwrap();
                let found = classify_response(status, &HeaderMap::new(), body.as_bytes());
                let ok = found.as_ref().is_some_and(|c| {
                    c.kind == case.cause
                        && !c.request_unsent
                        && c.evidence.starts_with("body says: ")
                });
                if !ok {
                    wrong.push(format!(
                        "{} {status} {layout}: {:?} -> {:?}",
                        case.runtime,
                        case.printed,
                        found.map(|c| (c.kind, c.evidence))
                    ));
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{} misread:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

/// The same texts in an application's own 500 or 501 (its dependency's failure, quoted in its
/// error page) are the application's answer: no gateway is identified, whatever the layout,
/// and neither `Server: nginx` (nginx writes it on the answers it relays) nor `Via` makes one.
#[test]
fn the_same_texts_in_an_applications_own_error_stay_its_answer() {
    let mut relayed = HeaderMap::new();
    relayed.insert("server", "nginx/1.22.1".parse().unwrap());
    relayed.insert("via", "1.1 proxy.internal".parse().unwrap());
    let mut wrong = Vec::new();
    for case in CASES {
        for status in [500u16, 501, 505, 507] {
            for headers in [HeaderMap::new(), relayed.clone()] {
                for (layout, body) in layouts(case.printed) {
                    let status = StatusCode::from_u16(status).unwrap();
                    if let Some(c) = classify_response(status, &headers, body.as_bytes()) {
                        wrong.push(format!("{} {status} {layout}: {:?}", case.runtime, c.kind));
                    }
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{} misread:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

#[test]
fn pages_without_such_evidence_stay_what_they_are() {
    let none = HeaderMap::new();
    let at = |code: u16, body: &str| {
        classify_response(StatusCode::from_u16(code).unwrap(), &none, body.as_bytes())
            .map(|c| c.kind)
    };
    // An application's own 500s.
    assert_eq!(
        at(
            500,
            r#"{"error":"internal","detail":"null pointer in handler"}"#
        ),
        None
    );
    assert_eq!(
        at(
            500,
            "<h1>Internal Server Error</h1><p>We are looking into it.</p>"
        ),
        None
    );
    assert_eq!(at(501, "Not Implemented"), None);
    // Ordinary application pages with words a runtime also uses.
    assert_eq!(at(500, "Could not resolve view with name 'home'"), None);
    assert_eq!(
        at(
            500,
            "Parse error: syntax error, unexpected end of file in index.php"
        ),
        None
    );
    assert_eq!(at(500, r#"{"error":"unexpected EOF"}"#), None);
    assert_eq!(
        at(500, "Your session has timed out. Please sign in again."),
        None
    );
    assert_eq!(
        at(
            503,
            "Down for maintenance. If you cannot connect after 10:00, call us."
        ),
        Some(ServiceUnavailable)
    );
    // Words that contain the vocabulary's words, or talk about it.
    assert_eq!(at(500, "Scheduled outage: the shop reopens at 9."), None);
    assert_eq!(
        at(500, "Check your timeout settings and retry policy."),
        None
    );
    assert_eq!(at(500, "The refusedconnectionsreport job failed."), None);
    // A 200 that quotes an error text is no failure.
    assert_eq!(
        at(200, "dial tcp 10.0.0.5:8080: connect: connection refused"),
        None
    );
    // At 502/503 without evidence: the status alone, as before.
    assert_eq!(at(502, "<h1>502 Bad Gateway</h1>"), Some(BadGateway));
    assert_eq!(at(503, "Service Unavailable"), Some(ServiceUnavailable));
}

#[test]
fn a_phrase_broken_across_lines_still_counts() {
    let page = "<p>upstream said:\n   connection\n      refused</p>";
    let c = classify_response(StatusCode::BAD_GATEWAY, &HeaderMap::new(), page.as_bytes()).unwrap();
    assert_eq!(c.kind, ConnectFailed, "{:?}", c.evidence);
}

#[test]
fn the_failure_nearest_the_start_of_the_exchange_wins() {
    let none = HeaderMap::new();
    let page = "retries exhausted: last error: context deadline exceeded; first error: dial tcp: lookup api on 10.0.0.2:53: no such host; then connection refused";
    let c = classify_response(StatusCode::BAD_GATEWAY, &none, page.as_bytes()).unwrap();
    assert_eq!(c.kind, NameNotResolved, "{:?}", c.evidence);
    let page = "read: connection reset by peer (after: i/o timeout)";
    let c = classify_response(StatusCode::BAD_GATEWAY, &none, page.as_bytes()).unwrap();
    assert_eq!(c.kind, ConnectionClosed, "{:?}", c.evidence);
}

#[test]
fn the_diagnosis_names_the_text_it_matched() {
    let page = "<h1>Quokka Gateway</h1><p>dial tcp 10.0.0.5:8080: connect: connection refused</p>";
    let snapshot = reqwest_resilience::ResponseSnapshot::new(
        StatusCode::BAD_GATEWAY,
        HeaderMap::new(),
        bytes::Bytes::from(page),
        true,
    );
    let err = reqwest_resilience::GatewayError::from_response(snapshot).unwrap();
    assert_eq!(err.kind(), ConnectFailed);
    assert!(!err.is_request_unsent());
    let diagnosis = err.diagnosis().to_string();
    assert!(
        diagnosis.contains("body says: connection refused"),
        "{diagnosis}"
    );
}
