//! Classifying an upstream's 5xx response.

use super::{BODY_PREFIX_LIMIT, Classification, Gateway};
use crate::error::{ErrorKind, Substatus};
use http::{HeaderMap, StatusCode};

/// Classifies an upstream response as a gateway failure, or `None` when it is not one.
///
/// Only 5xx statuses can be gateway failures; among them, an application's own `500`, `501` or
/// `505` is not one and gives `None`. The body is read up to [`BODY_PREFIX_LIMIT`] bytes; any
/// bytes classify without panicking. Explicit evidence wins over the status and the hop's
/// `Server` header, in this order:
///
/// 1. an IIS detailed error page naming a 502 substatus (`HTTP Error 502.3 - Bad Gateway`,
///    `IIS70Error=502,3,…`), with its HRESULT as evidence;
/// 2. Squid's `X-Squid-Error` header;
/// 3. Envoy's local replies (`… reset reason: <reason>`, `no healthy upstream`,
///    `upstream request timeout`), whatever their status;
/// 4. Cloudflare's 520–527 and 530 with its `1xxx` error code;
/// 5. HAProxy's default error pages, Tinyproxy's `500 Unable to connect`, Apache httpd's
///    `mod_proxy` "Proxy Error" pages (with their `Reason:` line) and Varnish's
///    "Backend fetch failed";
/// 6. the status alone: 504 → [`ErrorKind::CgiTimeout`], 502 → [`ErrorKind::BadGateway`],
///    503 → [`ErrorKind::ServiceUnavailable`] (an AWS ALB's 503 means no registered target:
///    [`ErrorKind::NoServer`]).
///
/// ```
/// use http::{HeaderMap, StatusCode};
/// use reqwest_resilience::{ErrorKind, classify::classify_response};
///
/// let page = b"<h3>HTTP Error 502.3 - Bad Gateway</h3><td>0x80072efd</td>";
/// let c = classify_response(StatusCode::BAD_GATEWAY, &HeaderMap::new(), page).unwrap();
/// assert_eq!(c.kind, ErrorKind::ForwarderConnection);
///
/// let ok = classify_response(StatusCode::OK, &HeaderMap::new(), b"fine");
/// assert!(ok.is_none());
/// ```
pub fn classify_response(
    status: StatusCode,
    headers: &HeaderMap,
    body_prefix: &[u8],
) -> Option<Classification> {
    let code = status.as_u16();
    if !(500..=599).contains(&code) {
        return None;
    }
    let body = &body_prefix[..body_prefix.len().min(BODY_PREFIX_LIMIT)];
    let text = String::from_utf8_lossy(body).to_ascii_lowercase();
    let hop = Gateway::from_headers(headers);

    if code == 502 {
        if let Some(found) = iis_page(&text) {
            return Some(found);
        }
    }
    if let Some(found) = squid(headers) {
        return Some(found);
    }
    if let Some(found) = envoy(&text) {
        return Some(found);
    }
    if let Some(found) = cloudflare(code, &text) {
        return Some(found);
    }
    if let Some(found) = haproxy(&text) {
        return Some(found);
    }
    if let Some(found) = tinyproxy(hop, &text) {
        return Some(found);
    }
    if let Some(found) = apache(code, &text) {
        return Some(found);
    }
    if let Some(found) = varnish(headers, &text) {
        return Some(found);
    }
    by_status(code, hop)
}

/// An IIS detailed error page names its substatus in the title, the heading and the
/// `IIS70Error=502,N,0x…` help link.
fn iis_page(text: &str) -> Option<Classification> {
    let number = [
        "http error 502.",
        "detailed error - 502.",
        "iis70error=502,",
    ]
    .iter()
    .find_map(|marker| digit_after(text, marker))?;
    let substatus = Substatus::from_number(number)?;
    let hresult = hresult(text);
    let mut evidence = format!("IIS page: HTTP Error {}", substatus.code());
    if let Some((code, meaning)) = hresult {
        evidence.push_str(&format!(", HRESULT {code} ({meaning})"));
    }
    if substatus == Substatus::WebSocket && text.contains("ancm") {
        // ASP.NET Core Module reuses 502.5 for "process failed to start": the backend exited.
        return Some(Classification::new(
            ErrorKind::PrematureExit,
            Some(Gateway::Iis),
            format!("{evidence}: ANCM out-of-process startup failure"),
        ));
    }
    let kind = ErrorKind::from_substatus(substatus);
    let found = Classification::new(kind, Some(Gateway::Iis), evidence);
    let cannot_connect = matches!(hresult, Some(("0x80072efd", _)) | Some(("0x80072ee7", _)));
    Some(match kind {
        ErrorKind::NoServer => found.unsent(),
        ErrorKind::ForwarderConnection if cannot_connect => found.unsent(),
        _ => found,
    })
}

fn digit_after(text: &str, marker: &str) -> Option<u8> {
    let at = text.find(marker)? + marker.len();
    let bytes = text.as_bytes();
    let digit = *bytes.get(at)?;
    let single = !bytes.get(at + 1).is_some_and(u8::is_ascii_digit);
    // Lazily: the subtraction is only valid for a digit.
    (digit.is_ascii_digit() && single).then(|| digit - b'0')
}

/// ARR's WinHTTP HRESULTs and what they mean.
fn hresult(text: &str) -> Option<(&'static str, &'static str)> {
    const KNOWN: [(&str, &str); 6] = [
        ("0x80072ee2", "timeout"),
        ("0x80072efd", "cannot connect"),
        ("0x80072efe", "connection terminated abnormally"),
        ("0x80072f78", "invalid server response"),
        ("0x80072ee7", "name not resolved"),
        ("0x80072f8f", "TLS failure"),
    ];
    KNOWN.into_iter().find(|(code, _)| text.contains(code))
}

/// Squid names its error in `X-Squid-Error`, e.g. `ERR_CONNECT_FAIL 111`.
fn squid(headers: &HeaderMap) -> Option<Classification> {
    let value = headers.get("x-squid-error")?.to_str().ok()?.trim();
    let code = value.split_whitespace().next().unwrap_or("");
    let (kind, unsent) = match code {
        "ERR_CONNECT_FAIL" | "ERR_SECURE_CONNECT_FAIL" => (ErrorKind::ForwarderConnection, true),
        "ERR_DNS_FAIL" | "ERR_CANNOT_FORWARD" => (ErrorKind::NoServer, true),
        "ERR_READ_TIMEOUT" | "ERR_LIFETIME_EXP" => (ErrorKind::CgiTimeout, false),
        "ERR_ZERO_SIZE_OBJECT" | "ERR_READ_ERROR" => (ErrorKind::PrematureExit, false),
        "ERR_WRITE_ERROR" => (ErrorKind::ForwardedRequest, false),
        "ERR_INVALID_RESP" => (ErrorKind::ExecuteRequest, false),
        _ => return None,
    };
    let found = Classification::new(
        kind,
        Some(Gateway::Squid),
        format!("X-Squid-Error: {}", truncate(value, 64)),
    );
    Some(if unsent { found.unsent() } else { found })
}

/// Envoy's local replies; it answers most upstream failures with 503, so the text decides.
fn envoy(text: &str) -> Option<Classification> {
    const RESET: &str = "upstream connect error or disconnect/reset before headers";
    let t = text.trim_start();
    if t.starts_with("no healthy upstream") {
        let c = Classification::new(
            ErrorKind::NoServer,
            Some(Gateway::Envoy),
            "no healthy upstream",
        );
        return Some(c.unsent());
    }
    if t.starts_with("upstream request timeout") {
        return Some(Classification::new(
            ErrorKind::CgiTimeout,
            Some(Gateway::Envoy),
            "upstream request timeout",
        ));
    }
    if !text.contains(RESET) {
        return None;
    }
    let reason = text
        .find("reset reason:")
        .map(|at| &text[at + "reset reason:".len()..])
        .map(|rest| rest.split(['\n', ',', '<']).next().unwrap_or("").trim())
        .unwrap_or("");
    let (kind, unsent) = if reason.contains("connection failure") {
        (ErrorKind::ForwarderConnection, true)
    } else if reason.contains("connection timeout") {
        (ErrorKind::ForwarderConnection, false)
    } else if reason.contains("overflow") {
        (ErrorKind::ServiceUnavailable, false)
    } else if reason.contains("protocol error") {
        (ErrorKind::ExecuteRequest, false)
    } else {
        // connection termination, remote reset, local reset, refused stream reset…
        (ErrorKind::PrematureExit, false)
    };
    let found = Classification::new(
        kind,
        Some(Gateway::Envoy),
        format!("Envoy reset reason: {}", truncate(reason, 64)),
    );
    Some(if unsent { found.unsent() } else { found })
}

/// Cloudflare's own status codes, and 530 with the `1xxx` code on its page.
fn cloudflare(code: u16, text: &str) -> Option<Classification> {
    let cf = Some(Gateway::Cloudflare);
    let (kind, unsent, what) = match code {
        520 => (
            ErrorKind::PrematureExit,
            false,
            "520 unknown or empty response from origin",
        ),
        521 => (
            ErrorKind::ForwarderConnection,
            true,
            "521 origin refused the connection",
        ),
        522 => (
            ErrorKind::ForwarderConnection,
            true,
            "522 connection to origin timed out",
        ),
        523 => (ErrorKind::NoServer, true, "523 origin unreachable"),
        524 => (
            ErrorKind::CgiTimeout,
            false,
            "524 origin did not answer in time",
        ),
        525 => (
            ErrorKind::ForwarderConnection,
            true,
            "525 TLS handshake with origin failed",
        ),
        526 => (
            ErrorKind::ForwarderConnection,
            true,
            "526 invalid origin certificate",
        ),
        527 => (
            ErrorKind::ForwarderConnection,
            false,
            "527 Railgun connection error",
        ),
        530 => {
            let number = cloudflare_1xxx(text);
            let (kind, unsent) = match number {
                Some(1016) | Some(1033) => (ErrorKind::NoServer, true),
                _ => (ErrorKind::BadGateway, false),
            };
            let evidence = match number {
                Some(n) => format!("Cloudflare 530, error {n}"),
                None => "Cloudflare 530".to_owned(),
            };
            let found = Classification::new(kind, cf, evidence);
            return Some(if unsent { found.unsent() } else { found });
        }
        _ => return None,
    };
    let found = Classification::new(kind, cf, format!("Cloudflare {what}"));
    Some(if unsent { found.unsent() } else { found })
}

fn cloudflare_1xxx(text: &str) -> Option<u16> {
    for marker in ["error code 1", "error 1", "| 1"] {
        if let Some(at) = text.find(marker) {
            let digits: String = text[at + marker.len() - 1..]
                .chars()
                .take_while(char::is_ascii_digit)
                .take(4)
                .collect();
            if digits.len() == 4 {
                return digits.parse().ok();
            }
        }
    }
    None
}

/// HAProxy's built-in error pages.
fn haproxy(text: &str) -> Option<Classification> {
    let hp = Some(Gateway::HaProxy);
    if text.contains("no server is available to handle this request") {
        return Some(
            Classification::new(ErrorKind::NoServer, hp, "HAProxy: no server is available")
                .unsent(),
        );
    }
    if text.contains("the server returned an invalid or incomplete response") {
        return Some(Classification::new(
            ErrorKind::PrematureExit,
            hp,
            "HAProxy: invalid or incomplete response",
        ));
    }
    if text.contains("the server didn't respond in time") {
        return Some(Classification::new(
            ErrorKind::CgiTimeout,
            hp,
            "HAProxy: server did not respond in time",
        ));
    }
    None
}

/// Tinyproxy answers `500 Unable to connect` when it cannot reach the server (refused or
/// unresolvable alike), and `504` when the server is too slow.
fn tinyproxy(hop: Option<Gateway>, text: &str) -> Option<Classification> {
    if hop != Some(Gateway::Tinyproxy) && !text.contains("generated by tinyproxy") {
        return None;
    }
    let tp = Some(Gateway::Tinyproxy);
    if text.contains("unable to connect") {
        return Some(
            Classification::new(
                ErrorKind::ForwarderConnection,
                tp,
                "Tinyproxy: unable to connect to the server",
            )
            .unsent(),
        );
    }
    None
}

/// Apache httpd's `mod_proxy` error pages: "Proxy Error" with a `Reason:` line, or "DNS lookup
/// failure for:", and the 503 it answers when the backend refuses.
fn apache(code: u16, text: &str) -> Option<Classification> {
    let ap = Some(Gateway::Apache);
    if text.contains("dns lookup failure for") {
        return Some(
            Classification::new(
                ErrorKind::NoServer,
                ap,
                "Apache mod_proxy: DNS lookup failure",
            )
            .unsent(),
        );
    }
    // Every mod_proxy error page, whatever its status (502, or 500 for a DNS failure), has
    // this heading; its text wraps lines, so phrases are not matched across them.
    if !text.contains("<h1>proxy error</h1>") {
        return (code == 503
            && text.contains("the server is temporarily unable to service your")
            && text.contains("request due to maintenance downtime or capacity"))
        .then(|| {
            Classification::new(
                ErrorKind::ServiceUnavailable,
                ap,
                "Apache: service unavailable",
            )
        });
    }
    let reason = text
        .find("reason:")
        .map(|at| &text[at + "reason:".len()..])
        .map(|rest| strip_tags(rest.split("</p>").next().unwrap_or(rest)))
        .unwrap_or_default();
    let kind = if reason.contains("error reading from remote server") {
        ErrorKind::PrematureExit
    } else if reason.contains("timeout") || reason.contains("timed out") {
        ErrorKind::CgiTimeout
    } else {
        ErrorKind::BadGateway
    };
    let evidence = if reason.is_empty() {
        "Apache mod_proxy: invalid response from an upstream server".to_owned()
    } else {
        format!("Apache mod_proxy reason: {}", truncate(reason.trim(), 64))
    };
    Some(Classification::new(kind, ap, evidence))
}

fn strip_tags(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out
}

/// Varnish's synthetic "Backend fetch failed" page (a "Guru Meditation"): the backend did not
/// give a usable answer.
fn varnish(headers: &HeaderMap, text: &str) -> Option<Classification> {
    let from_varnish = headers.contains_key("x-varnish")
        || headers.get_all(http::header::VIA).iter().any(|v| {
            v.as_bytes()
                .to_ascii_lowercase()
                .windows(7)
                .any(|w| w == b"varnish")
        });
    if !(from_varnish || text.contains("guru meditation")) || !text.contains("backend fetch failed")
    {
        return None;
    }
    Some(Classification::new(
        ErrorKind::BadGateway,
        Some(Gateway::Varnish),
        "Varnish: backend fetch failed",
    ))
}

fn by_status(code: u16, hop: Option<Gateway>) -> Option<Classification> {
    let found = match code {
        504 => Classification::new(ErrorKind::CgiTimeout, hop, "status 504 Gateway Timeout"),
        502 => Classification::new(ErrorKind::BadGateway, hop, "status 502 Bad Gateway"),
        503 if hop == Some(Gateway::AwsAlb) => Classification::new(
            ErrorKind::NoServer,
            hop,
            "AWS ALB 503: no registered target",
        ),
        503 => Classification::new(
            ErrorKind::ServiceUnavailable,
            hop,
            "status 503 Service Unavailable",
        ),
        _ => return None,
    };
    Some(found)
}

fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classify(status: u16, body: &str) -> Option<ErrorKind> {
        let status = StatusCode::from_u16(status).unwrap();
        classify_response(status, &HeaderMap::new(), body.as_bytes()).map(|c| c.kind)
    }

    #[test]
    fn iis_substatus_in_heading() {
        for s in Substatus::ALL {
            let page = format!("<h3>HTTP Error {} - Bad Gateway</h3>", s.code());
            assert_eq!(
                classify(502, &page),
                Some(ErrorKind::from_substatus(s)),
                "{page}"
            );
        }
    }

    #[test]
    fn substatus_needs_a_single_digit() {
        assert_eq!(
            classify(502, "HTTP Error 502.35 - x"),
            Some(ErrorKind::BadGateway)
        );
        assert_eq!(
            classify(502, "HTTP Error 502."),
            Some(ErrorKind::BadGateway)
        );
    }

    #[test]
    fn non_failures() {
        assert_eq!(classify(200, "HTTP Error 502.3 - Bad Gateway"), None);
        assert_eq!(classify(500, "oops"), None);
        assert_eq!(classify(404, ""), None);
    }

    #[test]
    fn envoy_reasons() {
        let reset = "upstream connect error or disconnect/reset before headers. reset reason: ";
        assert_eq!(
            classify(503, &format!("{reset}remote connection failure")),
            Some(ErrorKind::ForwarderConnection)
        );
        assert_eq!(
            classify(503, &format!("{reset}overflow")),
            Some(ErrorKind::ServiceUnavailable)
        );
        assert_eq!(
            classify(502, &format!("{reset}protocol error")),
            Some(ErrorKind::ExecuteRequest)
        );
        assert_eq!(
            classify(
                503,
                "upstream connect error or disconnect/reset before headers. retried and the latest reset reason: connection termination"
            ),
            Some(ErrorKind::PrematureExit)
        );
    }

    #[test]
    fn cloudflare_codes() {
        assert_eq!(classify(522, ""), Some(ErrorKind::ForwarderConnection));
        assert_eq!(classify(523, ""), Some(ErrorKind::NoServer));
        assert_eq!(
            classify(530, "<title>x | 1016: Origin DNS error</title>"),
            Some(ErrorKind::NoServer)
        );
        assert_eq!(classify(530, "nothing"), Some(ErrorKind::BadGateway));
    }

    #[test]
    fn apache_mod_proxy_pages() {
        let page = |reason: &str| {
            format!(
                "<html><head>\n<title>502 Proxy Error</title>\n</head><body>\n<h1>Proxy Error</h1>\n<p>The proxy server received an invalid\nresponse from an upstream server.<br />\nThe proxy server could not handle the request<p>Reason: <strong>{reason}</strong></p></p>\n</body></html>"
            )
        };
        assert_eq!(
            classify(502, &page("Error reading from remote server")),
            Some(ErrorKind::PrematureExit)
        );
        assert_eq!(
            classify(502, &page("something new")),
            Some(ErrorKind::BadGateway)
        );
        let dns = "<title>500 Proxy Error</title>\n</head><body>\n<h1>Proxy Error</h1>\nThe proxy server could not handle the request<p>Reason: <strong>DNS lookup failure for: backend.internal</strong></p><p />";
        assert_eq!(classify(500, dns), Some(ErrorKind::NoServer));
        let busy = "<h1>Service Unavailable</h1><p>The server is temporarily unable to service your\nrequest due to maintenance downtime or capacity\nproblems. Please try again later.</p>";
        let c = classify_response(
            StatusCode::SERVICE_UNAVAILABLE,
            &HeaderMap::new(),
            busy.as_bytes(),
        )
        .unwrap();
        assert_eq!(
            (c.kind, c.gateway),
            (ErrorKind::ServiceUnavailable, Some(Gateway::Apache))
        );
    }

    #[test]
    fn varnish_backend_fetch_failed() {
        let mut headers = HeaderMap::new();
        headers.insert("x-varnish", "32770".parse().unwrap());
        let page = b"<html><head><title>503 Backend fetch failed</title></head><body><h1>Error 503 Backend fetch failed</h1><h3>Guru Meditation:</h3><p>XID: 32770</p></body></html>";
        let c = classify_response(StatusCode::SERVICE_UNAVAILABLE, &headers, page).unwrap();
        assert_eq!(
            (c.kind, c.gateway),
            (ErrorKind::BadGateway, Some(Gateway::Varnish))
        );
    }

    #[test]
    fn squid_header_decides() {
        let mut headers = HeaderMap::new();
        headers.insert("x-squid-error", "ERR_DNS_FAIL 0".parse().unwrap());
        let c = classify_response(StatusCode::SERVICE_UNAVAILABLE, &headers, b"").unwrap();
        assert_eq!(c.kind, ErrorKind::NoServer);
        assert!(c.request_unsent);
        assert_eq!(c.gateway, Some(Gateway::Squid));
    }

    #[test]
    fn only_the_prefix_is_read() {
        let mut body = vec![b' '; BODY_PREFIX_LIMIT];
        body.extend_from_slice(b"HTTP Error 502.3 - Bad Gateway");
        let c = classify_response(StatusCode::BAD_GATEWAY, &HeaderMap::new(), &body).unwrap();
        assert_eq!(c.kind, ErrorKind::BadGateway);
    }
}
