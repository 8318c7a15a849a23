//! The response classifier on arbitrary status, header and body bytes.
#![no_main]

use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use libfuzzer_sys::fuzz_target;
use reqwest_resilience::classify::classify_response;

fuzz_target!(|data: &[u8]| {
    // Layout: 2 bytes of status, then header lines `name:value\n` up to a blank line, then body.
    if data.len() < 2 {
        return;
    }
    let code = 100 + u16::from_le_bytes([data[0], data[1]]) % 900;
    let Ok(status) = StatusCode::from_u16(code) else { return };
    let rest = &data[2..];
    let split = rest.windows(2).position(|w| w == b"\n\n").unwrap_or(rest.len());
    let (head, body) = rest.split_at(split);
    let mut headers = HeaderMap::new();
    for line in head.split(|b| *b == b'\n') {
        let Some(colon) = line.iter().position(|b| *b == b':') else { continue };
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(&line[..colon]),
            HeaderValue::from_bytes(&line[colon + 1..]),
        ) {
            headers.append(name, value);
        }
    }
    let found = classify_response(status, &headers, body);
    assert!(found.is_none() || status.is_server_error());
});
