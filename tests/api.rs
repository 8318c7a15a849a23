//! The 1.0 API as a newcomer guesses it: variants named by cause (each with its substatus),
//! reasons said in messages.

use reqwest_resilience::{Client, ErrorKind, GatewayError};

/// The variant's name, by matching on it: every variant of 1.0 by its name.
fn variant(err: &GatewayError) -> &'static str {
    match err {
        GatewayError::TimedOut(_) => "TimedOut",
        GatewayError::ConnectionClosed(_) => "ConnectionClosed",
        GatewayError::ConnectFailed(_) => "ConnectFailed",
        GatewayError::NameNotResolved(_) => "NameNotResolved",
        GatewayError::NoHealthyServer(_) => "NoHealthyServer",
        GatewayError::WebSocket(_) => "WebSocket",
        GatewayError::SendFailed(_) => "SendFailed",
        GatewayError::InvalidResponse(_) => "InvalidResponse",
        GatewayError::BadGateway(_) => "BadGateway",
        GatewayError::ServiceUnavailable(_) => "ServiceUnavailable",
        GatewayError::CircuitOpen(_) => "CircuitOpen",
        GatewayError::DeadlineExceeded(_) => "DeadlineExceeded",
        GatewayError::InvalidRequest(_) => "InvalidRequest",
        GatewayError::Decode(_) => "Decode",
        GatewayError::Other(_) => "Other",
        _ => "unknown",
    }
}

#[test]
fn every_variant_by_its_name_with_its_substatus_and_labels() {
    use ErrorKind::*;
    let all = [
        (TimedOut, "TimedOut", Some("502.1"), "timed_out", 502),
        (
            ConnectionClosed,
            "ConnectionClosed",
            Some("502.2"),
            "connection_closed",
            502,
        ),
        (
            ConnectFailed,
            "ConnectFailed",
            Some("502.3"),
            "connect_failed",
            502,
        ),
        (
            NameNotResolved,
            "NameNotResolved",
            Some("502.4"),
            "name_not_resolved",
            502,
        ),
        (
            NoHealthyServer,
            "NoHealthyServer",
            Some("502.4"),
            "no_healthy_server",
            502,
        ),
        (WebSocket, "WebSocket", Some("502.5"), "websocket", 502),
        (SendFailed, "SendFailed", Some("502.6"), "send_failed", 502),
        (
            InvalidResponse,
            "InvalidResponse",
            Some("502.7"),
            "invalid_response",
            502,
        ),
        (BadGateway, "BadGateway", None, "bad_gateway", 502),
        (
            ServiceUnavailable,
            "ServiceUnavailable",
            None,
            "service_unavailable",
            503,
        ),
        (CircuitOpen, "CircuitOpen", None, "circuit_open", 503),
        (
            DeadlineExceeded,
            "DeadlineExceeded",
            None,
            "deadline_exceeded",
            504,
        ),
        (
            InvalidRequest,
            "InvalidRequest",
            None,
            "invalid_request",
            400,
        ),
        (Decode, "Decode", None, "decode", 502),
        (Other, "Other", None, "other", 502),
    ];
    let mut names = std::collections::HashSet::new();
    for (kind, name, substatus, snake, status) in all {
        let err = GatewayError::new(kind, "x");
        assert_eq!(variant(&err), name);
        assert_eq!(err.kind(), kind);
        assert_eq!(err.substatus().map(|s| s.code()), substatus, "{name}");
        assert_eq!(kind.name(), snake);
        assert_eq!(err.status().as_u16(), status, "{name}");
        // The label says the cause in words, after the substatus when there is one.
        let label = kind.label();
        if let Some(code) = substatus {
            assert!(label.starts_with(code), "{label}");
        }
        assert!(err.to_string().starts_with(label), "{err}");
        assert!(names.insert(snake), "two kinds named {snake}");
    }
    // IIS's 502.4 is two causes here; from the substatus alone, the pool's.
    assert_eq!(
        ErrorKind::from_substatus(reqwest_resilience::Substatus::NoServer),
        NoHealthyServer
    );
}

#[tokio::test]
async fn an_invalid_request_says_why_in_its_message() {
    let client = Client::new();
    let err = client.get("/no/base").send().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidRequest);
    assert!(
        err.to_string().contains("relative URL without a base"),
        "{err}"
    );
    let err = client
        .get("http://127.0.0.1:9/")
        .header("bad header", "x")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidRequest);
    assert!(
        err.to_string().contains("invalid HTTP header name"),
        "{err}"
    );
}
