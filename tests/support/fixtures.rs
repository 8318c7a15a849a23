//! The recorded gateway responses: `tests/fixtures/gateway-responses.jsonl` in the repository,
//! plus any case of the shared copy (`../shared/fixtures/`, where new cases appear first) that
//! the repository does not have yet. `scripts/sync-fixtures.sh` copies those in.

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

/// The repository's copy, or `$GATEWAY_FIXTURES` when set.
pub fn path() -> PathBuf {
    match std::env::var("GATEWAY_FIXTURES") {
        Ok(path) => PathBuf::from(path),
        Err(_) => {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gateway-responses.jsonl")
        }
    }
}

/// The shared copy beside the repository, when there is one (there is none in a user's clone
/// or in the published crate).
pub fn shared_path() -> Option<PathBuf> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/fixtures/gateway-responses.jsonl");
    path.is_file().then_some(path)
}

/// Every fixture of the repository's copy, then the shared cases it lacks (by `id`).
pub fn load() -> Vec<Fixture> {
    let mut fixtures = read(&path());
    if let Some(shared) = shared_path() {
        for case in read(&shared) {
            let known = fixtures.iter().find(|f| f.id == case.id);
            let same = known.is_some_and(|f| {
                f.status == case.status
                    && f.headers == case.headers
                    && f.body == case.body
                    && f.expect == case.expect
                    && f.also_ok == case.also_ok
            });
            if !same {
                eprintln!(
                    "note: fixture {} is {} in {}; run scripts/sync-fixtures.sh",
                    case.id,
                    if known.is_some() { "different" } else { "only" },
                    shared.display()
                );
                fixtures.push(case);
            }
        }
    }
    fixtures
}

/// The raw lines of a fixture file by `id`, to compare two copies.
pub fn lines_by_id(path: &std::path::Path) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read the fixtures at {}: {e}", path.display()));
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let case: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
            let id = case["id"].as_str().expect("id").to_owned();
            (id, case.to_string())
        })
        .collect()
}

/// Every fixture of one file; panics with the path when the file cannot be read.
pub fn read(path: &std::path::Path) -> Vec<Fixture> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read the fixtures at {}: {e}", path.display()));
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
