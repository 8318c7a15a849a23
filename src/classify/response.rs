//! Classifying an upstream's 5xx response.

use super::{BODY_PREFIX_LIMIT, Classification};
use crate::error::{ErrorKind, Substatus};
use crate::gateway::Gateway;
use crate::gateway::{Named, X_POWERED_BY, X_SQUID_ERROR};
use http::{HeaderMap, StatusCode};

/// Whether `text` contains `needle`. Most 5xx bodies a client sees are short or empty, and
/// the page checks below look for a few dozen phrases: `str::contains` would prepare a searcher
/// for each phrase even in an empty body.
fn has(text: &str, needle: &str) -> bool {
    text.len() >= needle.len() && memchr::memmem::find(text.as_bytes(), needle.as_bytes()).is_some()
}

/// Where `needle` starts in `text` (see [`has`]).
fn find(text: &str, needle: &str) -> Option<usize> {
    if text.len() < needle.len() {
        return None;
    }
    memchr::memmem::find(text.as_bytes(), needle.as_bytes())
}

/// Classifies an upstream response as a gateway failure, or `None` when it is not one.
///
/// Only 5xx statuses can be gateway failures. **Precision comes first**: a status an
/// application sends for its own errors (`500`, `501`, `505`–`511`, anything but the gateway
/// statuses 502, 503, 504, 520–527 and 530) is the origin's answer and gives `None` — whatever
/// its page quotes (`dial tcp …: connection refused` in a service's JSON is its database's
/// failure, not a gateway's) — unless the response shows a gateway made it by evidence an
/// origin's body cannot forge: Squid's `X-Squid-Error` header, Tinyproxy's page with
/// `Server: tinyproxy`, or Apache's `mod_proxy` page with `Server: Apache`. `Server` or `Via`
/// alone do not: nginx writes its own `Server` on the answers it relays, and every proxy on the
/// path adds `Via`. Behind a proxy that answers upstream failures with a bare 500, retry them
/// with [`RetryPolicy::retry_on_status`](crate::retry::RetryPolicy::retry_on_status).
///
/// On the gateway statuses the body is read up to [`BODY_PREFIX_LIMIT`] bytes; any bytes
/// classify without panicking. Explicit evidence wins over the status and the hop's `Server`
/// header, in this order, each product's page only at the status that product sends it with:
///
/// 1. an IIS detailed error page naming a 502 substatus (`HTTP Error 502.3 - Bad Gateway`,
///    `IIS70Error=502,3,…`) at 502, with its HRESULT as evidence;
/// 2. Squid's `X-Squid-Error` header;
/// 3. Envoy's local replies: `no healthy upstream` (503), `upstream request timeout` (504),
///    `… reset reason: <reason>` (503, or 502);
/// 4. Cloudflare's 520–527 and 530 with its `1xxx` error code;
/// 5. HAProxy's default error pages (503, 502, 504), Tinyproxy's `Unable to connect` (500),
///    Apache httpd's `mod_proxy` "Proxy Error" pages (502, 500) with their `Reason:` line,
///    and Varnish's "Backend fetch failed" (503);
/// 6. a network-error text as a runtime prints it, anywhere in the page (see the
///    [module docs](super#how-a-5xx-response-is-read-in-order)): what refines an unknown
///    proxy's 502, 503 or 504;
/// 7. the status alone: 504 → [`ErrorKind::TimedOut`], 502 → [`ErrorKind::BadGateway`],
///    503 → [`ErrorKind::ServiceUnavailable`] (an AWS ALB's 503 means no registered target:
///    [`ErrorKind::NoHealthyServer`]).
///
/// [`Classification::request_unsent`] is set only when the page comes from a product
/// identified by its response headers, at the status that product uses for a request it could
/// not forward at all (see the table in this file's `proves_unsent`): body text informs the
/// cause, never the licence to resend a request that is not idempotent.
///
/// ```
/// use http::{HeaderMap, StatusCode};
/// use reqwest_resilience::{ErrorKind, classify::classify_response};
///
/// let page = b"<h3>HTTP Error 502.3 - Bad Gateway</h3><td>0x80072efd</td>";
/// let c = classify_response(StatusCode::BAD_GATEWAY, &HeaderMap::new(), page).unwrap();
/// assert_eq!(c.kind, ErrorKind::ConnectFailed);
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
    let named = Named::of(headers);
    let hop = Gateway::from_named(headers, named);

    if !is_gateway_status(code) {
        // A status an application sends for its own errors (500, 501, 505…): the origin's
        // answer, unless the response shows a gateway made it, by evidence an origin's body
        // cannot forge: Squid's error header, or a product's own error page at its status
        // from a product its headers name. Page text alone never decides here, and neither do
        // `Server` or `Via` alone: nginx puts its own `Server` on the answers it relays, and
        // every proxy on the path adds `Via`.
        let found = squid(headers, named)
            .or_else(|| tinyproxy(code, hop, &text).filter(|_| hop == Some(Gateway::Tinyproxy)))
            .or_else(|| apache(code, &text).filter(|_| hop == Some(Gateway::Apache)));
        return found.map(|mut found| {
            found.request_unsent =
                found.request_unsent && proves_unsent(code, headers, named, &found);
            found
        });
    }
    // Each product's page in turn (an IIS page names its substatus, so it comes first); the
    // proof below applies to every one of them alike.
    let found = (code == 502)
        .then(|| iis_page(&text))
        .flatten()
        .or_else(|| squid(headers, named))
        .or_else(|| envoy(code, &text))
        .or_else(|| cloudflare(code, &text))
        .or_else(|| haproxy(code, &text))
        .or_else(|| tinyproxy(code, hop, &text))
        .or_else(|| apache(code, &text))
        .or_else(|| varnish(code, headers, named, &text))
        .or_else(|| runtime_error_text(hop, &text))
        .or_else(|| by_status(code, hop));
    found.map(|mut found| {
        found.request_unsent = found.request_unsent && proves_unsent(code, headers, named, &found);
        found
    })
}

/// Whether a page that says the request was never forwarded may be believed: only when the
/// product that makes such pages is identified by the response's *headers* and the status is
/// the one that product uses for it. An origin can quote any page text in its own body (an
/// application's 500 reading "No server is available to handle this request" is no proof of
/// anything), so the body alone never licenses resending a request that is not idempotent.
///
/// | product | identified by | status |
/// |---|---|---|
/// | IIS / ARR | `Server: Microsoft-IIS/…` or `X-Powered-By: ARR/…` | 502 |
/// | Squid | `Server: squid…` (and its `X-Squid-Error`) | 503 |
/// | Envoy | `server: envoy` without `x-envoy-upstream-service-time` (a reply it made itself) | 503 |
/// | Cloudflare | `server: cloudflare` or `cf-ray` | 521, 523, 525, 526, 530 (each means no request reached the origin; 522 does not: the connection may have been made) |
/// | Tinyproxy | `Server: tinyproxy/…` | 500 |
///
/// HAProxy sends no header that names it on its own error pages, and Apache's `Server` header
/// is also on the answers it relays: their "no server" and "DNS lookup failure" pages inform
/// the cause (Apache's 500 only with its `Server` header) but never prove the request unsent.
fn proves_unsent(code: u16, headers: &HeaderMap, named: Named, found: &Classification) -> bool {
    let server_is = |product: &str| {
        named.server
            && headers
                .get_all(http::header::SERVER)
                .iter()
                .any(|v| starts_with_ignore_case(v.as_bytes(), product.as_bytes()))
    };
    match found.gateway {
        Some(Gateway::Iis) => {
            code == 502
                && (server_is("microsoft-iis")
                    || named.powered_by
                        && headers
                            .get_all(&X_POWERED_BY)
                            .iter()
                            .any(|v| starts_with_ignore_case(v.as_bytes(), b"arr/")))
        }
        Some(Gateway::Squid) => code == 503 && server_is("squid"),
        Some(Gateway::Envoy) => code == 503 && server_is("envoy") && !named.envoy_service_time,
        Some(Gateway::Cloudflare) => {
            matches!(code, 521 | 523 | 525 | 526 | 530) && (server_is("cloudflare") || named.cf_ray)
        }
        Some(Gateway::Tinyproxy) => code == 500 && server_is("tinyproxy"),
        _ => false,
    }
}

/// The statuses gateways answer with when the hop behind them failed: 502, 503, 504 and the
/// CDN codes (Cloudflare's 520–527 and 530). On these, page text refines the cause; any other
/// 5xx is an application's to send.
pub(crate) fn is_gateway_status(code: u16) -> bool {
    matches!(code, 502..=504 | 520..=527 | 530)
}

fn starts_with_ignore_case(value: &[u8], prefix: &[u8]) -> bool {
    value.len() >= prefix.len() && value[..prefix.len()].eq_ignore_ascii_case(prefix)
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
    if substatus == Substatus::WebSocket && has(text, "ancm") {
        // ASP.NET Core Module reuses 502.5 for "process failed to start": the backend exited.
        return Some(Classification::new(
            ErrorKind::ConnectionClosed,
            Some(Gateway::Iis),
            format!("{evidence}: ANCM out-of-process startup failure"),
        ));
    }
    let kind = ErrorKind::from_substatus(substatus);
    let found = Classification::new(kind, Some(Gateway::Iis), evidence);
    let cannot_connect = matches!(hresult, Some(("0x80072efd", _)) | Some(("0x80072ee7", _)));
    Some(match kind {
        ErrorKind::NoHealthyServer => found.unsent(),
        ErrorKind::ConnectFailed if cannot_connect => found.unsent(),
        _ => found,
    })
}

fn digit_after(text: &str, marker: &str) -> Option<u8> {
    let at = find(text, marker)? + marker.len();
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
    KNOWN.into_iter().find(|(code, _)| has(text, code))
}

/// Squid names its error in `X-Squid-Error`, e.g. `ERR_CONNECT_FAIL 111`.
fn squid(headers: &HeaderMap, named: Named) -> Option<Classification> {
    if !named.squid_error {
        return None;
    }
    let value = headers.get(&X_SQUID_ERROR)?.to_str().ok()?.trim();
    let code = value.split_whitespace().next().unwrap_or("");
    let (kind, unsent) = match code {
        "ERR_CONNECT_FAIL" | "ERR_SECURE_CONNECT_FAIL" => (ErrorKind::ConnectFailed, true),
        "ERR_DNS_FAIL" => (ErrorKind::NameNotResolved, true),
        "ERR_CANNOT_FORWARD" => (ErrorKind::NoHealthyServer, true),
        "ERR_READ_TIMEOUT" | "ERR_LIFETIME_EXP" => (ErrorKind::TimedOut, false),
        "ERR_ZERO_SIZE_OBJECT" | "ERR_READ_ERROR" => (ErrorKind::ConnectionClosed, false),
        "ERR_WRITE_ERROR" => (ErrorKind::SendFailed, false),
        "ERR_INVALID_RESP" => (ErrorKind::InvalidResponse, false),
        _ => return None,
    };
    let found = Classification::new(
        kind,
        Some(Gateway::Squid),
        format!("X-Squid-Error: {}", truncate(value, 64)),
    );
    Some(if unsent { found.unsent() } else { found })
}

/// Envoy's local replies; it answers most upstream failures with 503, so the text decides:
/// `no healthy upstream` (503), `upstream request timeout` (504), and the reset texts (503, or
/// 502 for a protocol error).
fn envoy(code: u16, text: &str) -> Option<Classification> {
    const RESET: &str = "upstream connect error or disconnect/reset before headers";
    let t = text.trim_start();
    if code == 503 && t.starts_with("no healthy upstream") {
        let c = Classification::new(
            ErrorKind::NoHealthyServer,
            Some(Gateway::Envoy),
            "no healthy upstream",
        );
        return Some(c.unsent());
    }
    if code == 504 && t.starts_with("upstream request timeout") {
        return Some(Classification::new(
            ErrorKind::TimedOut,
            Some(Gateway::Envoy),
            "upstream request timeout",
        ));
    }
    if !matches!(code, 502 | 503) || !has(text, RESET) {
        return None;
    }
    let reason = text
        .find("reset reason:")
        .map(|at| &text[at + "reset reason:".len()..])
        .map(|rest| rest.split(['\n', ',', '<']).next().unwrap_or("").trim())
        .unwrap_or("");
    let (kind, unsent) = if has(reason, "connection failure") {
        (ErrorKind::ConnectFailed, true)
    } else if has(reason, "connection timeout") {
        (ErrorKind::ConnectFailed, false)
    } else if has(reason, "overflow") {
        (ErrorKind::ServiceUnavailable, false)
    } else if has(reason, "protocol error") {
        (ErrorKind::InvalidResponse, false)
    } else {
        // connection termination, remote reset, local reset, refused stream reset…
        (ErrorKind::ConnectionClosed, false)
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
            ErrorKind::ConnectionClosed,
            false,
            "520 unknown or empty response from origin",
        ),
        521 => (
            ErrorKind::ConnectFailed,
            true,
            "521 origin refused the connection",
        ),
        // The connection may have been made and the request sent before the timeout.
        522 => (
            ErrorKind::ConnectFailed,
            false,
            "522 connection to origin timed out",
        ),
        523 => (ErrorKind::NoHealthyServer, true, "523 origin unreachable"),
        524 => (
            ErrorKind::TimedOut,
            false,
            "524 origin did not answer in time",
        ),
        525 => (
            ErrorKind::ConnectFailed,
            true,
            "525 TLS handshake with origin failed",
        ),
        526 => (
            ErrorKind::ConnectFailed,
            true,
            "526 invalid origin certificate",
        ),
        527 => (
            ErrorKind::ConnectFailed,
            false,
            "527 Railgun connection error",
        ),
        530 => {
            let number = cloudflare_1xxx(text);
            let (kind, unsent) = match number {
                // 1016: origin DNS error; 1033: the tunnel to the origin is down.
                Some(1016) => (ErrorKind::NameNotResolved, true),
                Some(1033) => (ErrorKind::NoHealthyServer, true),
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
        if let Some(at) = find(text, marker) {
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

/// HAProxy's built-in error pages, each at the status HAProxy sends it with.
fn haproxy(code: u16, text: &str) -> Option<Classification> {
    let hp = Some(Gateway::HaProxy);
    if code == 503 && has(text, "no server is available to handle this request") {
        return Some(Classification::new(
            ErrorKind::NoHealthyServer,
            hp,
            "HAProxy: no server is available",
        ));
    }
    if code == 502
        && has(
            text,
            "the server returned an invalid or incomplete response",
        )
    {
        return Some(Classification::new(
            ErrorKind::ConnectionClosed,
            hp,
            "HAProxy: invalid or incomplete response",
        ));
    }
    if code == 504 && has(text, "the server didn't respond in time") {
        return Some(Classification::new(
            ErrorKind::TimedOut,
            hp,
            "HAProxy: server did not respond in time",
        ));
    }
    None
}

/// Tinyproxy answers `500 Unable to connect` when it cannot reach the server (refused or
/// unresolvable alike), and `504` when the server is too slow.
fn tinyproxy(code: u16, hop: Option<Gateway>, text: &str) -> Option<Classification> {
    if !matches!(code, 500 | 502)
        || (hop != Some(Gateway::Tinyproxy) && !has(text, "generated by tinyproxy"))
    {
        return None;
    }
    let tp = Some(Gateway::Tinyproxy);
    if has(text, "unable to connect") {
        return Some(
            Classification::new(
                ErrorKind::ConnectFailed,
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
    if matches!(code, 500 | 502) && has(text, "dns lookup failure for") {
        return Some(Classification::new(
            ErrorKind::NameNotResolved,
            ap,
            "Apache mod_proxy: DNS lookup failure",
        ));
    }
    // Every mod_proxy error page, whatever its status (502, or 500 for a DNS failure), has
    // this heading; its text wraps lines, so phrases are not matched across them.
    if !matches!(code, 500 | 502) || !has(text, "<h1>proxy error</h1>") {
        return (code == 503
            && has(text, "the server is temporarily unable to service your")
            && has(text, "request due to maintenance downtime or capacity"))
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
    let kind = if has(&reason, "error reading from remote server") {
        ErrorKind::ConnectionClosed
    } else if has(&reason, "timeout") || has(&reason, "timed out") {
        ErrorKind::TimedOut
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
fn varnish(code: u16, headers: &HeaderMap, named: Named, text: &str) -> Option<Classification> {
    if !matches!(code, 502 | 503) {
        return None;
    }
    let from_varnish = named.varnish
        || named.via
            && headers.get_all(http::header::VIA).iter().any(|v| {
                v.as_bytes()
                    .to_ascii_lowercase()
                    .windows(7)
                    .any(|w| w == b"varnish")
            });
    if !(from_varnish || has(text, "guru meditation")) || !has(text, "backend fetch failed") {
        return None;
    }
    Some(Classification::new(
        ErrorKind::BadGateway,
        Some(Gateway::Varnish),
        "Varnish: backend fetch failed",
    ))
}

/// The second stage: a network-error text as a runtime prints it, quoted anywhere in the page
/// (see [`vocabulary`](super::vocabulary)). Never proof that the request was unsent.
fn runtime_error_text(hop: Option<Gateway>, text: &str) -> Option<Classification> {
    // Pages wrap lines and indent: a phrase may be split by a run of white space. When the
    // page has such runs, it is scanned once with each run made one space.
    let bytes = text.as_bytes();
    if !super::vocabulary::may_match(bytes) {
        return None;
    }
    let spaced = memchr::memchr3(b'\n', b'\r', b'\t', bytes).is_some()
        || memchr::memmem::find(bytes, b"  ").is_some();
    let (kind, phrase) = if spaced {
        let mut collapsed = String::with_capacity(text.len());
        for word in text.split_ascii_whitespace() {
            if !collapsed.is_empty() {
                collapsed.push(' ');
            }
            collapsed.push_str(word);
        }
        super::vocabulary::find(collapsed.as_bytes())
    } else {
        super::vocabulary::find(bytes)
    }?;
    Some(Classification::new(
        kind,
        hop,
        format!("body says: {phrase}"),
    ))
}

/// The second stage alone, for the cost measurement in `vocabulary.rs`.
#[cfg(test)]
pub(super) fn runtime_error_text_for_bench(text: &str) -> Option<Classification> {
    runtime_error_text(None, text)
}

fn by_status(code: u16, hop: Option<Gateway>) -> Option<Classification> {
    let found = match code {
        504 => Classification::new(ErrorKind::TimedOut, hop, "status 504 Gateway Timeout"),
        502 => Classification::new(ErrorKind::BadGateway, hop, "status 502 Bad Gateway"),
        503 if hop == Some(Gateway::AwsAlb) => Classification::new(
            ErrorKind::NoHealthyServer,
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

    /// Status, headers, body; the cause, and whether the request is proved unsent.
    type ProofCase<'a> = (u16, &'a [(&'a str, &'a str)], &'a str, ErrorKind, bool);
    /// Status, headers, body; the cause, the product, and the evidence ("" for any).
    type PageCase = (
        u16,
        Vec<(&'static str, &'static str)>,
        String,
        ErrorKind,
        Option<Gateway>,
        String,
    );

    fn with(status: u16, headers: &[(&str, &str)], body: &str) -> Option<Classification> {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.append(
                http::header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        classify_response(StatusCode::from_u16(status).unwrap(), &map, body.as_bytes())
    }

    /// What licenses resending a request that is not idempotent: a product's own page at its
    /// status, the product named by the response's headers. The same page without the header,
    /// with another product's header, or at another status proves nothing.
    #[test]
    fn only_a_product_named_by_its_headers_at_its_status_proves_a_request_unsent() {
        const IIS_CANNOT_CONNECT: &str =
            "<h3>HTTP Error 502.3 - Bad Gateway</h3> error code 0x80072efd";
        const IIS_TIMEOUT: &str = "<h3>HTTP Error 502.3 - Bad Gateway</h3> error code 0x80072ee2";
        const IIS_NO_SERVER: &str = "<h3>HTTP Error 502.4 - Bad Gateway</h3>";
        const TINYPROXY: &str = "<p>Unable to connect to upstream</p> generated by tinyproxy";
        let iis = ("server", "Microsoft-IIS/10.0");
        let arr = ("x-powered-by", "ARR/3.0");
        let squid_err = ("x-squid-error", "ERR_CONNECT_FAIL 111");
        let cases: &[ProofCase] = &[
            (
                502,
                &[iis],
                IIS_CANNOT_CONNECT,
                ErrorKind::ConnectFailed,
                true,
            ),
            (
                502,
                &[arr],
                IIS_CANNOT_CONNECT,
                ErrorKind::ConnectFailed,
                true,
            ),
            (
                502,
                &[],
                IIS_CANNOT_CONNECT,
                ErrorKind::ConnectFailed,
                false,
            ),
            (
                502,
                &[("server", "nginx")],
                IIS_CANNOT_CONNECT,
                ErrorKind::ConnectFailed,
                false,
            ),
            (
                502,
                &[("x-powered-by", "PHP/8")],
                IIS_CANNOT_CONNECT,
                ErrorKind::ConnectFailed,
                false,
            ),
            // A 502.3 that timed out may have reached the backend.
            (502, &[iis], IIS_TIMEOUT, ErrorKind::ConnectFailed, false),
            (502, &[iis], IIS_NO_SERVER, ErrorKind::NoHealthyServer, true),
            (
                503,
                &[("server", "squid/5.7"), squid_err],
                "",
                ErrorKind::ConnectFailed,
                true,
            ),
            (
                503,
                &[("server", "SQUID/5.7"), squid_err],
                "",
                ErrorKind::ConnectFailed,
                true,
            ),
            (
                503,
                &[("server", "sq"), squid_err],
                "",
                ErrorKind::ConnectFailed,
                false,
            ),
            (503, &[squid_err], "", ErrorKind::ConnectFailed, false),
            (
                502,
                &[("server", "squid/5.7"), squid_err],
                "",
                ErrorKind::ConnectFailed,
                false,
            ),
            (
                503,
                &[("server", "envoy")],
                "no healthy upstream",
                ErrorKind::NoHealthyServer,
                true,
            ),
            (
                503,
                &[("server", "envoy"), ("x-envoy-upstream-service-time", "3")],
                "no healthy upstream",
                ErrorKind::NoHealthyServer,
                false,
            ),
            (
                503,
                &[],
                "no healthy upstream",
                ErrorKind::NoHealthyServer,
                false,
            ),
            (
                521,
                &[("server", "cloudflare")],
                "",
                ErrorKind::ConnectFailed,
                true,
            ),
            (
                521,
                &[("cf-ray", "8a1b2c3d4e5f-AMS")],
                "",
                ErrorKind::ConnectFailed,
                true,
            ),
            (521, &[], "", ErrorKind::ConnectFailed, false),
            (
                500,
                &[("server", "tinyproxy/1.11.1")],
                TINYPROXY,
                ErrorKind::ConnectFailed,
                true,
            ),
            (
                502,
                &[("server", "tinyproxy/1.11.1")],
                TINYPROXY,
                ErrorKind::ConnectFailed,
                false,
            ),
            // Named somewhere in `Server`, not as the product that wrote it.
            (
                500,
                &[("server", "my-tinyproxy/1")],
                TINYPROXY,
                ErrorKind::ConnectFailed,
                false,
            ),
        ];
        for (status, headers, body, kind, unsent) in cases {
            let found = with(*status, headers, body)
                .unwrap_or_else(|| panic!("{status} {headers:?} {body:?}: not classified"));
            assert_eq!(found.kind, *kind, "{status} {headers:?} {body:?}");
            assert_eq!(
                found.request_unsent, *unsent,
                "{status} {headers:?} {body:?}: unsent"
            );
        }
        // At a status an application sends for itself, a product's page is the origin's
        // answer unless the headers name the product.
        assert!(with(500, &[], TINYPROXY).is_none());
        assert!(with(500, &[("server", "nginx")], TINYPROXY).is_none());
    }

    /// Each product's own codes map to their cause, with the proof where the code gives one.
    #[test]
    fn squid_cloudflare_and_envoy_codes_map_to_their_causes() {
        use ErrorKind::*;
        let squid = [
            ("ERR_CONNECT_FAIL 111", ConnectFailed, true),
            ("ERR_SECURE_CONNECT_FAIL", ConnectFailed, true),
            ("ERR_DNS_FAIL", NameNotResolved, true),
            ("ERR_CANNOT_FORWARD", NoHealthyServer, true),
            ("ERR_READ_TIMEOUT", TimedOut, false),
            ("ERR_LIFETIME_EXP", TimedOut, false),
            ("ERR_ZERO_SIZE_OBJECT", ConnectionClosed, false),
            ("ERR_READ_ERROR", ConnectionClosed, false),
            ("ERR_WRITE_ERROR", SendFailed, false),
            ("ERR_INVALID_RESP", InvalidResponse, false),
        ];
        for (error, kind, unsent) in squid {
            let found = with(
                503,
                &[("server", "squid/5.7"), ("x-squid-error", error)],
                "",
            )
            .unwrap();
            assert_eq!(
                (found.kind, found.request_unsent),
                (kind, unsent),
                "{error}"
            );
            assert_eq!(found.gateway, Some(Gateway::Squid));
            assert!(found.evidence.contains(error), "{}", found.evidence);
        }
        let cloudflare = [
            (520, "", ConnectionClosed, false, "520"),
            (521, "", ConnectFailed, true, "521"),
            (522, "", ConnectFailed, false, "522"),
            (523, "", NoHealthyServer, true, "523"),
            (524, "", TimedOut, false, "524"),
            (525, "", ConnectFailed, true, "525"),
            (526, "", ConnectFailed, true, "526"),
            (527, "", ConnectFailed, false, "527"),
            (530, "error code 1016", NameNotResolved, true, "error 1016"),
            (530, "error code 1033", NoHealthyServer, true, "error 1033"),
            (530, "", BadGateway, false, "Cloudflare 530"),
        ];
        for (status, body, kind, unsent, evidence) in cloudflare {
            let found = with(status, &[("server", "cloudflare")], body).unwrap();
            assert_eq!(
                (found.kind, found.request_unsent),
                (kind, unsent),
                "{status} {body}"
            );
            assert_eq!(found.gateway, Some(Gateway::Cloudflare));
            assert!(found.evidence.contains(evidence), "{}", found.evidence);
        }
        const RESET: &str =
            "upstream connect error or disconnect/reset before headers. reset reason: ";
        let envoy = [
            (503, "connection failure", ConnectFailed, true),
            (503, "connection timeout", ConnectFailed, false),
            (503, "overflow", ServiceUnavailable, false),
            (502, "protocol error", InvalidResponse, false),
            (503, "connection termination", ConnectionClosed, false),
        ];
        for (status, reason, kind, unsent) in envoy {
            let found = with(status, &[("server", "envoy")], &format!("{RESET}{reason}")).unwrap();
            assert_eq!(
                (found.kind, found.request_unsent),
                (kind, unsent),
                "{reason}"
            );
            assert_eq!(
                found.evidence,
                format!("Envoy reset reason: {reason}"),
                "{reason}"
            );
        }
        let timeout = with(504, &[("server", "envoy")], "upstream request timeout").unwrap();
        assert_eq!(
            (timeout.kind, timeout.gateway, timeout.evidence.as_ref()),
            (TimedOut, Some(Gateway::Envoy), "upstream request timeout")
        );
    }

    /// HAProxy's, Tinyproxy's, Apache's and Varnish's own pages, each only at the status the
    /// product sends it with and with what identifies the product; the cause, the product and
    /// the evidence.
    #[test]
    fn haproxy_tinyproxy_apache_and_varnish_pages() {
        use ErrorKind::*;
        let apache_reason = |reason: &str| {
            format!(
                "<title>502 Proxy Error</title><h1>Proxy Error</h1><p>The proxy server received \
                 an invalid response.</p><p>Reason: <strong>{reason}</strong></p>"
            )
        };
        let long = "x".repeat(100);
        let cases: Vec<PageCase> = vec![
            (503, vec![], "<h1>503 Service Unavailable</h1>\nNo server is available to handle this request.".into(), NoHealthyServer, Some(Gateway::HaProxy), "HAProxy: no server is available".into()),
            (502, vec![], "<h1>502 Bad Gateway</h1>\nThe server returned an invalid or incomplete response.".into(), ConnectionClosed, Some(Gateway::HaProxy), "HAProxy: invalid or incomplete response".into()),
            (504, vec![], "<h1>504 Gateway Time-out</h1>\nThe server didn't respond in time.".into(), TimedOut, Some(Gateway::HaProxy), "HAProxy: server did not respond in time".into()),
            // Each HAProxy page at another status is not HAProxy's.
            (503, vec![], "The server returned an invalid or incomplete response.".into(), ServiceUnavailable, None, "status 503 Service Unavailable".into()),
            (502, vec![], "The server didn't respond in time.".into(), BadGateway, None, "status 502 Bad Gateway".into()),
            // Tinyproxy's page names it in its text, at 500 or 502.
            (502, vec![], "Unable to connect <hr>Generated by tinyproxy version 1.11.1.".into(), ConnectFailed, Some(Gateway::Tinyproxy), "Tinyproxy: unable to connect to the server".into()),
            (503, vec![], "Unable to connect <hr>Generated by tinyproxy version 1.11.1.".into(), ServiceUnavailable, None, "status 503 Service Unavailable".into()),
            // Apache's reasons, read between the tags.
            (502, vec![("server", "Apache/2.4.62")], apache_reason("Error reading from remote server"), ConnectionClosed, Some(Gateway::Apache), "Apache mod_proxy reason: error reading from remote server".into()),
            (502, vec![], apache_reason("proxy: timeout while reading"), TimedOut, Some(Gateway::Apache), "Apache mod_proxy reason: proxy: timeout while reading".into()),
            (502, vec![], apache_reason("the backend timed out"), TimedOut, Some(Gateway::Apache), "Apache mod_proxy reason: the backend timed out".into()),
            (502, vec![], apache_reason(&long), BadGateway, Some(Gateway::Apache), format!("Apache mod_proxy reason: {}", "x".repeat(64))),
            (502, vec![], "<h1>Proxy Error</h1><p>The proxy server received an invalid response.</p>".into(), BadGateway, Some(Gateway::Apache), "Apache mod_proxy: invalid response from an upstream server".into()),
            (500, vec![("server", "Apache/2.4.62")], "<h1>Proxy Error</h1><p>DNS lookup failure for: backend.internal</p>".into(), NameNotResolved, Some(Gateway::Apache), "Apache mod_proxy: DNS lookup failure".into()),
            (503, vec![], "The server is temporarily unable to service your\nrequest due to maintenance downtime or capacity\nproblems.".into(), ServiceUnavailable, Some(Gateway::Apache), "Apache: service unavailable".into()),
            (503, vec![], "The server is temporarily unable to service your request.".into(), ServiceUnavailable, None, "status 503 Service Unavailable".into()),
            // Varnish, named by its header, its `Via` or its Guru Meditation.
            (503, vec![("x-varnish", "32770")], "Backend fetch failed".into(), BadGateway, Some(Gateway::Varnish), "Varnish: backend fetch failed".into()),
            (503, vec![("via", "1.1 varnish (Varnish/7.5)")], "Backend fetch failed".into(), BadGateway, Some(Gateway::Varnish), "Varnish: backend fetch failed".into()),
            (503, vec![("via", "1.1 VARNISH")], "Backend fetch failed".into(), BadGateway, Some(Gateway::Varnish), "Varnish: backend fetch failed".into()),
            (502, vec![], "<h1>Error 503 Backend fetch failed</h1><h3>Guru Meditation:</h3>".into(), BadGateway, Some(Gateway::Varnish), "Varnish: backend fetch failed".into()),
            (503, vec![("via", "1.1 squid")], "Backend fetch failed".into(), ServiceUnavailable, None, "status 503 Service Unavailable".into()),
            (503, vec![("x-varnish", "32770")], "Guru Meditation".into(), ServiceUnavailable, None, "status 503 Service Unavailable".into()),
            (504, vec![], "Backend fetch failed. Guru Meditation".into(), TimedOut, None, "status 504 Gateway Timeout".into()),
            // A runtime's error text, its words split by a line break or a run of spaces.
            (502, vec![], "upstream said: connection  refused".into(), ConnectFailed, None, String::new()),
            (502, vec![], "upstream said: connection\nrefused".into(), ConnectFailed, None, String::new()),
            // An AWS load balancer's 503: no registered target.
            (503, vec![("server", "awselb/2.0")], String::new(), NoHealthyServer, Some(Gateway::AwsAlb), "AWS ALB 503: no registered target".into()),
        ];
        for (status, headers, body, kind, gateway, evidence) in cases {
            let found = with(status, &headers, &body)
                .unwrap_or_else(|| panic!("{status} {body:?}: not classified"));
            assert_eq!(
                (found.kind, found.gateway),
                (kind, gateway),
                "{status} {body:?}"
            );
            if !evidence.is_empty() {
                assert_eq!(found.evidence, evidence, "{status} {body:?}");
            }
        }
    }

    /// An IIS page's HRESULT is named in the evidence; ANCM's reuse of 502.5 is a backend that
    /// exited, and only 502.5.
    #[test]
    fn iis_pages_name_their_hresult_and_ancm() {
        let found = with(
            502,
            &[],
            "<h3>HTTP Error 502.3 - Bad Gateway</h3> error code 0x80072efd",
        )
        .unwrap();
        assert!(
            found
                .evidence
                .contains("HRESULT 0x80072efd (cannot connect)"),
            "{}",
            found.evidence
        );
        let ancm = |n: u8| {
            with(
                502,
                &[],
                &format!("<h3>HTTP Error 502.{n} - ANCM Out-Of-Process Startup Failure</h3>"),
            )
            .unwrap()
            .kind
        };
        assert_eq!(ancm(5), ErrorKind::ConnectionClosed);
        assert_eq!(ancm(3), ErrorKind::ConnectFailed);
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
            Some(ErrorKind::ConnectFailed)
        );
        assert_eq!(
            classify(503, &format!("{reset}overflow")),
            Some(ErrorKind::ServiceUnavailable)
        );
        assert_eq!(
            classify(502, &format!("{reset}protocol error")),
            Some(ErrorKind::InvalidResponse)
        );
        assert_eq!(
            classify(
                503,
                "upstream connect error or disconnect/reset before headers. retried and the latest reset reason: connection termination"
            ),
            Some(ErrorKind::ConnectionClosed)
        );
    }

    #[test]
    fn cloudflare_codes() {
        assert_eq!(classify(522, ""), Some(ErrorKind::ConnectFailed));
        assert_eq!(classify(523, ""), Some(ErrorKind::NoHealthyServer));
        assert_eq!(
            classify(530, "<title>x | 1016: Origin DNS error</title>"),
            Some(ErrorKind::NameNotResolved)
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
            Some(ErrorKind::ConnectionClosed)
        );
        assert_eq!(
            classify(502, &page("something new")),
            Some(ErrorKind::BadGateway)
        );
        let dns = "<title>500 Proxy Error</title>\n</head><body>\n<h1>Proxy Error</h1>\nThe proxy server could not handle the request<p>Reason: <strong>DNS lookup failure for: backend.internal</strong></p><p />";
        // At 500 only with Apache's own `Server` header: without it, an application's 500.
        assert_eq!(classify(500, dns), None);
        let mut apache = HeaderMap::new();
        apache.insert("server", "Apache/2.4.62 (Debian)".parse().unwrap());
        let c = classify_response(StatusCode::INTERNAL_SERVER_ERROR, &apache, dns.as_bytes());
        assert_eq!(c.map(|c| c.kind), Some(ErrorKind::NameNotResolved));
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
        assert_eq!(c.kind, ErrorKind::NameNotResolved);
        assert!(!c.request_unsent, "no Server header names Squid");
        assert_eq!(c.gateway, Some(Gateway::Squid));
        headers.insert("server", "squid/5.7".parse().unwrap());
        let c = classify_response(StatusCode::SERVICE_UNAVAILABLE, &headers, b"").unwrap();
        assert!(c.request_unsent);
    }

    /// Body text an origin can write never proves a request unsent, and a product's page
    /// counts only at the status the product sends it with.
    #[test]
    fn an_origin_quoting_a_proxy_proves_nothing() {
        let none = HeaderMap::new();
        let quoting = [
            (500, &b"<p>payment provider failed:</p><p>No server is available to handle this request.</p>"[..]),
            (500, b"{\"error\":\"upstream connect error or disconnect/reset before headers. reset reason: connection failure\"}"),
            (500, b"no healthy upstream"),
        ];
        for (code, body) in quoting {
            let status = StatusCode::from_u16(code).unwrap();
            assert_eq!(
                classify_response(status, &none, body),
                None,
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        // Apache httpd does answer a DNS failure with 500, but without its `Server` header
        // the page is an origin's 500 quoting it.
        let c = classify_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            &none,
            b"<h1>Proxy Error</h1><p>DNS lookup failure for: db.internal</p>",
        );
        assert_eq!(c, None);
        // At 503 HAProxy's page names the cause, but nothing in the headers names HAProxy.
        let c = classify_response(
            StatusCode::SERVICE_UNAVAILABLE,
            &none,
            b"<h1>503 Service Unavailable</h1>\nNo server is available to handle this request.",
        )
        .unwrap();
        assert_eq!(c.kind, ErrorKind::NoHealthyServer);
        assert!(!c.request_unsent);
        // Envoy's reset text with `server: envoy` but relayed from the origin (it carries
        // `x-envoy-upstream-service-time`) proves nothing either.
        let reset = b"upstream connect error or disconnect/reset before headers. reset reason: connection failure";
        let mut relayed = HeaderMap::new();
        relayed.insert("server", "envoy".parse().unwrap());
        relayed.insert("x-envoy-upstream-service-time", "3".parse().unwrap());
        let c = classify_response(StatusCode::SERVICE_UNAVAILABLE, &relayed, reset).unwrap();
        assert_eq!(c.kind, ErrorKind::ConnectFailed);
        assert!(!c.request_unsent);
        relayed.remove("x-envoy-upstream-service-time");
        let c = classify_response(StatusCode::SERVICE_UNAVAILABLE, &relayed, reset).unwrap();
        assert!(c.request_unsent, "Envoy's own reply");
    }

    /// Cloudflare's 522 ("connection timed out") may follow a delivered request; 521 cannot.
    #[test]
    fn cloudflare_522_is_not_proof_of_an_unsent_request() {
        let mut cf = HeaderMap::new();
        cf.insert("server", "cloudflare".parse().unwrap());
        cf.insert("cf-ray", "8f1a2b3c4d5e6f70-FRA".parse().unwrap());
        let at = |code| classify_response(StatusCode::from_u16(code).unwrap(), &cf, b"").unwrap();
        assert!(!at(522).request_unsent);
        assert!(at(521).request_unsent);
        let bare =
            classify_response(StatusCode::from_u16(521).unwrap(), &HeaderMap::new(), b"").unwrap();
        assert!(!bare.request_unsent, "no header names Cloudflare");
    }

    #[test]
    fn only_the_prefix_is_read() {
        let mut body = vec![b' '; BODY_PREFIX_LIMIT];
        body.extend_from_slice(b"HTTP Error 502.3 - Bad Gateway");
        let c = classify_response(StatusCode::BAD_GATEWAY, &HeaderMap::new(), &body).unwrap();
        assert_eq!(c.kind, ErrorKind::BadGateway);
    }
}
