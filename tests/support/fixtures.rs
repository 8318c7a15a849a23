//! The recorded gateway responses of `../shared/fixtures/gateway-responses.jsonl`.

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use reqwest_resilience::ResponseSnapshot;
use std::path::PathBuf;

/// One recorded response and the cause a correct classifier gives.
pub struct Fixture {
    pub id: String,
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    /// `cgi-timeout`, `premature-exit`, …, `none`.
    pub expect: String,
    pub also_ok: Vec<String>,
}

impl Fixture {
    /// The response as the transport would have kept it.
    pub fn snapshot(&self) -> ResponseSnapshot {
        ResponseSnapshot::new(
            self.status,
            self.headers.clone(),
            Bytes::from(self.body.clone()),
            true,
        )
    }
}

/// `$GATEWAY_FIXTURES`, else the shared file beside the repository.
pub fn path() -> PathBuf {
    match std::env::var("GATEWAY_FIXTURES") {
        Ok(path) => PathBuf::from(path),
        Err(_) => PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../shared/fixtures/gateway-responses.jsonl"),
    }
}

/// Every fixture; panics with the path when the file cannot be read.
pub fn load() -> Vec<Fixture> {
    let path = path();
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read the shared fixtures at {}: {e}", path.display()));
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(n, line)| {
            let case: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("line {} is not JSON: {e}", n + 1));
            let mut headers = HeaderMap::new();
            for pair in case["headers"].as_array().expect("headers") {
                let name = HeaderName::from_bytes(pair[0].as_str().expect("name").as_bytes())
                    .expect("header name");
                let value =
                    HeaderValue::from_bytes(&latin1_bytes(pair[1].as_str().expect("value")))
                        .expect("header value");
                headers.append(name, value);
            }
            let strings = |v: &serde_json::Value| -> Vec<String> {
                v.as_array()
                    .expect("list")
                    .iter()
                    .map(|s| s.as_str().expect("text").to_owned())
                    .collect()
            };
            Fixture {
                id: case["id"].as_str().expect("id").to_owned(),
                status: StatusCode::from_u16(case["status"].as_u64().expect("status") as u16)
                    .expect("status code"),
                headers,
                body: latin1_bytes(case["body"].as_str().expect("body")),
                expect: case["expect"].as_str().expect("expect").to_owned(),
                also_ok: strings(&case["also_ok"]),
            }
        })
        .collect()
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
