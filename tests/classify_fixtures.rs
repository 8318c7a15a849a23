//! Every recorded gateway response in `../shared/fixtures/gateway-responses.jsonl` classifies to
//! its expected cause (or one of the causes the fixture also accepts).

use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use reqwest_resilience::ErrorKind;
use reqwest_resilience::classify::classify_response;
use std::path::PathBuf;

fn fixture_path() -> PathBuf {
    if let Ok(path) = std::env::var("GATEWAY_FIXTURES") {
        return PathBuf::from(path);
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/gateway-responses.jsonl")
}

fn kind_of(name: &str) -> Option<ErrorKind> {
    Some(match name {
        "cgi-timeout" => ErrorKind::CgiTimeout,
        "premature-exit" => ErrorKind::PrematureExit,
        "forwarder-connection" => ErrorKind::ForwarderConnection,
        "no-server" => ErrorKind::NoServer,
        "websocket" => ErrorKind::WebSocket,
        "forwarded-request" => ErrorKind::ForwardedRequest,
        "execute-request" => ErrorKind::ExecuteRequest,
        "bad-gateway" => ErrorKind::BadGateway,
        "service-unavailable" => ErrorKind::ServiceUnavailable,
        "none" => return None,
        other => panic!("fixture names an unknown cause {other:?}"),
    })
}

/// The fixture stores each body byte as one Latin-1 character; characters past U+00FF (a few
/// documented pages carry typographic quotes) are taken as their UTF-8 bytes.
fn latin1_bytes(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    for c in text.chars() {
        match u8::try_from(u32::from(c)) {
            Ok(b) => out.push(b),
            Err(_) => out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
        }
    }
    out
}

#[test]
fn every_shared_fixture_classifies_as_expected() {
    let path = fixture_path();
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read the shared fixtures at {}: {e}", path.display()));
    let mut checked = 0;
    let mut failures = Vec::new();
    for (line_no, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let case: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("line {} is not JSON: {e}", line_no + 1));
        let id = case["id"].as_str().expect("id");
        let status = StatusCode::from_u16(case["status"].as_u64().expect("status") as u16)
            .expect("status code");
        let mut headers = HeaderMap::new();
        for pair in case["headers"].as_array().expect("headers") {
            let name = HeaderName::from_bytes(pair[0].as_str().expect("name").as_bytes())
                .expect("header name");
            let value = HeaderValue::from_bytes(&latin1_bytes(pair[1].as_str().expect("value")))
                .expect("header value");
            headers.append(name, value);
        }
        let body = latin1_bytes(case["body"].as_str().expect("body"));
        let expect = kind_of(case["expect"].as_str().expect("expect"));
        let also_ok: Vec<Option<ErrorKind>> = case["also_ok"]
            .as_array()
            .expect("also_ok")
            .iter()
            .map(|v| kind_of(v.as_str().expect("cause")))
            .collect();

        let got = classify_response(status, &headers, &body).map(|c| c.kind);
        if got != expect && !also_ok.contains(&got) {
            failures.push(format!(
                "{id}: expected {expect:?} (or {also_ok:?}), got {got:?}"
            ));
        }
        checked += 1;
    }
    assert!(
        checked >= 40,
        "only {checked} fixtures read from {}",
        path.display()
    );
    assert!(
        failures.is_empty(),
        "misclassified:\n{}",
        failures.join("\n")
    );
}
