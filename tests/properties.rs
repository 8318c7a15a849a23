//! Properties over arbitrary input: the classifier reads only its prefix and the hint parser
//! never panics and reads what it is given; the fallback layer's re-targeting keeps path and
//! query and never moves a credential.

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use proptest::prelude::*;
use reqwest_resilience::classify::classify_response;
use reqwest_resilience::fallback::FallbackLayer;
use reqwest_resilience::retry::retry_after;
use reqwest_resilience::{ErrorKind, GatewayError};
use std::sync::{Arc, Mutex};
use tower::{Layer, ServiceExt, service_fn};

fn headers(pairs: &[(String, Vec<u8>)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_bytes(value),
        ) {
            map.append(name, value);
        }
    }
    map
}

fn header_pairs() -> impl Strategy<Value = Vec<(String, Vec<u8>)>> {
    let name = prop_oneof![
        Just("server".to_owned()),
        Just("x-squid-error".to_owned()),
        Just("x-powered-by".to_owned()),
        Just("cf-ray".to_owned()),
        Just("retry-after".to_owned()),
        "[a-z-]{1,20}",
    ];
    prop::collection::vec((name, prop::collection::vec(any::<u8>(), 0..64)), 0..8)
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    let marker = prop_oneof![
        Just(b"HTTP Error 502.".to_vec()),
        Just(b"IIS70Error=502,".to_vec()),
        Just(b"reset reason: ".to_vec()),
        Just(b"upstream connect error or disconnect/reset before headers".to_vec()),
        Just(b"error code 1".to_vec()),
        Just(b"0x80072e".to_vec()),
        // The runtime-error vocabulary (the classifier's second stage).
        Just(b"connect: connection refused".to_vec()),
        Just(b"getaddrinfo ENOTFOUND".to_vec()),
        Just(b"(os error 111)".to_vec()),
        Just(b"failed to resolve '".to_vec()),
        Just(b"context deadline exceeded".to_vec()),
        prop::collection::vec(any::<u8>(), 0..16),
    ];
    (
        prop::collection::vec(any::<u8>(), 0..300),
        marker,
        prop::collection::vec(any::<u8>(), 0..300),
    )
        .prop_map(|(a, m, b)| [a, m, b].concat())
}

proptest! {
    #[test]
    fn the_classifier_is_total(status in 100u16..1000, pairs in header_pairs(), body in body()) {
        let status = StatusCode::from_u16(status).unwrap();
        let found = classify_response(status, &headers(&pairs), &body);
        if !status.is_server_error() {
            prop_assert!(found.is_none());
        }
    }

    /// A runtime's error text in a gateway status's page, whatever surrounds it, gives a cause
    /// and never proves the request unsent; in any other 5xx without a gateway's headers it is
    /// the origin's answer.
    #[test]
    fn runtime_error_texts_never_prove_unsent(
        status in 500u16..600,
        before in "[a-z <>/\"{}:,.\n]{0,200}",
        after in "[a-z <>/\"{}:,.\n]{0,200}",
        text in prop_oneof![
            Just("connection refused"),
            Just("econnreset"),
            Just("no such host"),
            Just("read timed out"),
            Just("malformed http response"),
        ],
    ) {
        let page = format!("{before} {text} {after}");
        let gateway_status = matches!(status, 502..=504 | 520..=527 | 530);
        let status = StatusCode::from_u16(status).unwrap();
        let found = classify_response(status, &HeaderMap::new(), page.as_bytes());
        if gateway_status {
            prop_assert!(found.is_some(), "{page:?}");
            prop_assert!(!found.unwrap().request_unsent);
        } else {
            prop_assert!(found.is_none(), "{status} {page:?}: {found:?}");
        }
    }

    /// Only the first `BODY_PREFIX_LIMIT` bytes are read: any body classifies as its prefix
    /// does, and a page's marker past the prefix is never seen.
    #[test]
    fn huge_bodies_classify_within_the_prefix(
        status in 500u16..600,
        body in prop::collection::vec(any::<u8>(), 0..20_000),
        pad in 0usize..8_000,
    ) {
        use reqwest_resilience::classify::BODY_PREFIX_LIMIT;
        let status = StatusCode::from_u16(status).unwrap();
        let whole = classify_response(status, &HeaderMap::new(), &body);
        let prefix = classify_response(status, &HeaderMap::new(), &body[..body.len().min(BODY_PREFIX_LIMIT)]);
        prop_assert_eq!(whole, prefix);
        // A 502 whose IIS substatus heading starts past the prefix is a plain 502.
        let mut late = vec![b' '; BODY_PREFIX_LIMIT + pad];
        late.extend_from_slice(b"<h3>HTTP Error 502.3 - Bad Gateway</h3>");
        let found = classify_response(StatusCode::BAD_GATEWAY, &HeaderMap::new(), &late);
        prop_assert_eq!(found.map(|c| c.kind), Some(ErrorKind::BadGateway));
    }

    /// The hint parser is total (any bytes, never a panic) and right: delta-seconds give that
    /// many seconds, and an HTTP date that many seconds ahead gives the same, to the second.
    #[test]
    fn the_hint_parser_is_total_and_right(
        value in prop::collection::vec(any::<u8>(), 0..64),
        seconds in 0u64..100_000,
    ) {
        let now = std::time::SystemTime::now();
        let mut map = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_bytes(&value) {
            map.insert("retry-after", v.clone());
            map.insert("x-ratelimit-reset", v);
        }
        let _ = retry_after(&map, now);

        let mut delta = HeaderMap::new();
        delta.insert("retry-after", HeaderValue::from(seconds));
        prop_assert_eq!(retry_after(&delta, now), Some(std::time::Duration::from_secs(seconds)));

        let at = now + std::time::Duration::from_secs(seconds);
        let mut dated = HeaderMap::new();
        dated.insert("retry-after", HeaderValue::from_str(&httpdate::fmt_http_date(at)).unwrap());
        let got = retry_after(&dated, now).expect("an HTTP date parses");
        // The date has whole seconds: at most one second short.
        prop_assert!(got.as_secs() + 1 >= seconds && got.as_secs() <= seconds, "{got:?} for {seconds}");
    }

    #[test]
    fn retargeting_keeps_path_and_query_and_never_moves_credentials(
        segments in prop::collection::vec("[a-zA-Z0-9][a-zA-Z0-9._~-]{0,11}", 0..5),
        query in prop::option::of("[a-z]{1,8}=[a-zA-Z0-9%]{0,12}(&[a-z]{1,8}=[a-z0-9]{0,8}){0,3}"),
        prefix in prop::option::of("[a-z]{1,8}"),
        user in prop::option::of("[a-z]{1,8}"),
    ) {
        let path = format!("/{}", segments.join("/"));
        let primary_prefix = prefix.as_ref().map(|p| format!("/{p}")).unwrap_or_default();
        let mut url = format!("http://primary.test{primary_prefix}{path}");
        if let Some(q) = &query {
            url.push('?');
            url.push_str(q);
        }
        if let Some(user) = &user {
            url = url.replace("http://", &format!("http://{user}:pw-secret@"));
        }
        let seen: Arc<Mutex<Option<reqwest::Url>>> = Arc::default();
        let record = seen.clone();
        let inner = service_fn(move |req: reqwest_resilience::Request| {
            let primary = req.url().host_str() == Some("primary.test");
            if !primary {
                *record.lock().unwrap() = Some(req.url().clone());
            }
            async move {
                if primary {
                    Err(GatewayError::new(ErrorKind::ConnectFailed, "down"))
                } else {
                    Ok(reqwest::Response::from(http::Response::new(Bytes::new())))
                }
            }
        });
        let layer = FallbackLayer::new([
            format!("http://primary.test{primary_prefix}"),
            "http://backup.test:8080/base".to_owned(),
        ]).unwrap();
        let request = reqwest::Request::new(reqwest::Method::GET, url.parse().unwrap());
        let expected_path = format!("/base{}", request.url().path().strip_prefix(primary_prefix.as_str()).unwrap_or(""));
        let expected_query = request.url().query().map(str::to_owned);
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        runtime.block_on(layer.layer(inner).oneshot(request.into())).unwrap();
        let moved = seen.lock().unwrap().clone().unwrap();
        prop_assert_eq!(moved.host_str(), Some("backup.test"));
        prop_assert_eq!(moved.path(), expected_path.as_str());
        prop_assert_eq!(moved.query().map(str::to_owned), expected_query);
        prop_assert_eq!(moved.username(), "");
        prop_assert_eq!(moved.password(), None);
    }
}
