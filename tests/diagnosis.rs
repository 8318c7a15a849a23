//! Every variant, every recognised gateway of the recorded fixtures, and real failures get a
//! diagnosis: the hop, the likely cause, what to check, and the evidence.

mod support;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use reqwest_resilience::classify::Gateway;
use reqwest_resilience::diagnosis::{Hop, LikelyCause};
use reqwest_resilience::{Client, ErrorKind, GatewayError, ResponseSnapshot};
use std::time::Duration;
use support::{Fault, FaultServer, refused_url};

fn client() -> Client {
    Client::builder()
        .no_retry()
        .attempt_timeout(Duration::from_millis(300))
        .build()
        .unwrap()
}

fn upstream(status: u16, headers: &[(&str, &str)], body: &str) -> GatewayError {
    let mut map = HeaderMap::new();
    for (n, v) in headers {
        map.append(
            HeaderName::from_bytes(n.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    let snapshot = ResponseSnapshot::new(
        StatusCode::from_u16(status).unwrap(),
        map,
        Bytes::from(body.to_owned()),
        true,
    );
    GatewayError::from_response(snapshot).expect("a gateway failure")
}

#[tokio::test]
async fn refused_points_at_the_backend_with_the_address() {
    let url = refused_url("/x?token=s3cret").await;
    let err = client().get(&url).send().await.unwrap_err();
    let d = err.diagnosis();
    assert_eq!(d.hop(), &Hop::OwnTransport);
    assert_eq!(d.cause(), LikelyCause::BackendMisconfiguration);
    let port = url.split(':').nth(2).unwrap().split('/').next().unwrap();
    assert!(
        d.evidence()[0].contains(&format!("connection refused (127.0.0.1:{port})")),
        "{d}"
    );
    assert!(!d.to_string().contains("s3cret"));
    // One attempt: the message counts none.
    assert_eq!(err.attempts(), 1);
    assert!(!err.to_string().contains(" attempts"), "{err}");
    // A refusal is not a TLS failure: nothing about certificates to check.
    assert!(!err.details().is_tls_failure());
    let shown = d.to_string().to_ascii_lowercase();
    assert!(
        !shown.contains("certificate") && !shown.contains("tls"),
        "{d}"
    );
}

#[tokio::test]
async fn dns_failure_is_dns() {
    let err = Client::builder()
        .no_retry()
        .reqwest_builder(support::unresolving())
        .build()
        .unwrap()
        .get("http://no-such-host.invalid/")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NameNotResolved, "{err}");
    assert_eq!(err.diagnosis().cause(), LikelyCause::Dns);
}

#[tokio::test]
async fn transport_faults() {
    let reset = FaultServer::start(Fault::Reset).await;
    let garbage = FaultServer::start(Fault::Garbage).await;
    let hang = FaultServer::start(Fault::Hang).await;
    let c = client();
    let cases = [
        (
            reset.url("/"),
            ErrorKind::ConnectionClosed,
            LikelyCause::UpstreamOutage,
        ),
        (
            garbage.url("/"),
            ErrorKind::InvalidResponse,
            LikelyCause::BackendMisconfiguration,
        ),
        (
            hang.url("/"),
            ErrorKind::TimedOut,
            LikelyCause::UpstreamOutage,
        ),
    ];
    for (url, kind, cause) in cases {
        let err = c.get(&url).send().await.unwrap_err();
        assert_eq!(err.kind(), kind);
        let d = err.diagnosis();
        assert_eq!(
            (d.hop(), d.cause()),
            (&Hop::OwnTransport, cause),
            "{url}: {d}"
        );
        assert!(!d.suggestion().is_empty());
    }
}

/// The deadline fires during the second attempt (the first was refused, the second hangs):
/// the error is the deadline's, and its diagnosis reads the last cause (a refused connection:
/// the backend), not a generic timeout.
#[tokio::test(start_paused = true)]
async fn deadline_diagnoses_its_last_cause() {
    use reqwest_resilience::retry::{ExponentialBackoff, Jitter, RetryLayer, RetryPolicy};
    use reqwest_resilience::timeout::DeadlineLayer;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};
    use tower::{ServiceBuilder, ServiceExt, service_fn};
    let calls = Arc::new(AtomicU32::new(0));
    let c = calls.clone();
    let svc = ServiceBuilder::new()
        .layer(DeadlineLayer::new(Duration::from_millis(150)))
        .layer(RetryLayer::new(RetryPolicy::default().no_budget().backoff(
            ExponentialBackoff::new(Duration::from_millis(10)).jitter(Jitter::None),
        )))
        .service(service_fn(move |_req: reqwest_resilience::Request| {
            let n = c.fetch_add(1, Ordering::SeqCst) + 1;
            async move {
                if n == 1 {
                    return Err(GatewayError::new(
                        ErrorKind::ConnectFailed,
                        "connection refused",
                    ));
                }
                std::future::pending::<()>().await;
                Ok(reqwest::Response::from(http::Response::new("")))
            }
        }));
    let request =
        reqwest::Request::new(reqwest::Method::GET, "http://10.0.0.9/".parse().unwrap()).into();
    let err = svc.oneshot(request).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::DeadlineExceeded, "{err}");
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "the deadline fired in the second attempt"
    );
    assert_eq!(
        err.last_cause().map(GatewayError::kind),
        Some(ErrorKind::ConnectFailed)
    );
    let d = err.diagnosis();
    assert_eq!(
        d.cause(),
        LikelyCause::BackendMisconfiguration,
        "the last cause decides: {err}: {d}"
    );
    assert!(d.evidence().iter().any(|e| e.contains("deadline")), "{d}");
    let empty = GatewayError::new(
        ErrorKind::DeadlineExceeded,
        "deadline of 1s exceeded after 1 attempt",
    );
    assert_eq!(empty.diagnosis().cause(), LikelyCause::UpstreamOutage);
}

#[tokio::test]
async fn all_fallback_servers_failing_lists_each() {
    let (a, b) = (refused_url("").await, refused_url("").await);
    let client = Client::builder()
        .no_retry()
        .fallback_servers([&a, &b])
        .build()
        .unwrap();
    let err = client.get(format!("{a}/x")).send().await.unwrap_err();
    let d = err.diagnosis();
    assert_eq!(d.cause(), LikelyCause::BackendMisconfiguration);
    assert_eq!(d.evidence().len(), 3, "{d}");
    assert!(d.evidence()[1].contains(a.trim_start_matches("http://")));
}

#[test]
fn every_variant_has_a_diagnosis() {
    use ErrorKind::*;
    use LikelyCause::*;
    let cases = [
        (TimedOut, UpstreamOutage),
        (ConnectionClosed, UpstreamOutage),
        (ConnectFailed, BackendMisconfiguration),
        (NameNotResolved, Dns),
        (NoHealthyServer, UpstreamOutage),
        (WebSocket, BackendMisconfiguration),
        (SendFailed, NetworkConnectivity),
        (InvalidResponse, BackendMisconfiguration),
        (BadGateway, Unknown),
        (ServiceUnavailable, Unknown),
        (DeadlineExceeded, UpstreamOutage),
        (InvalidRequest, Unknown),
        (Other, Unknown),
    ];
    for (kind, cause) in cases {
        let d = GatewayError::new(kind, "x").diagnosis();
        assert_eq!(d.cause(), cause, "{kind:?}");
        let text = d.to_string();
        assert!(
            text.starts_with("Reported by ") && text.contains("Check: "),
            "{text}"
        );
    }
    // Upstream answers of the variants with no transport counterpart.
    let ws = upstream(
        502,
        &[("server", "Microsoft-IIS/10.0")],
        "<h3>HTTP Error 502.5 - Bad Gateway</h3>",
    );
    assert_eq!(ws.diagnosis().cause(), ProxyMisconfiguration);
    let plain = upstream(503, &[], "down for maintenance");
    assert_eq!(plain.diagnosis().hop(), &Hop::Origin);
    assert_eq!(plain.diagnosis().cause(), Overload);
    // A connection attempt that got no answer at all: dropped packets, as a firewall does.
    let silent = GatewayError::new(ConnectFailed, "tcp connect error: connect timed out");
    assert_eq!(
        silent.diagnosis().cause(),
        Firewall,
        "{}",
        silent.diagnosis()
    );
    let bad = upstream(502, &[("server", "nginx")], "");
    assert_eq!(bad.diagnosis().hop(), &Hop::Gateway(Some(Gateway::Nginx)));
    assert_eq!(bad.diagnosis().cause(), UpstreamOutage);
    assert!(bad.diagnosis().suggestion().contains("nginx forwards to"));
    // An unnamed gateway's 502 gives no cause.
    let unnamed = upstream(502, &[], "");
    assert_eq!(
        unnamed.diagnosis().cause(),
        Unknown,
        "{}",
        unnamed.diagnosis()
    );
}

#[test]
fn envoy_and_squid_evidence_is_quoted() {
    let envoy = upstream(
        503,
        &[("server", "envoy")],
        "upstream connect error or disconnect/reset before headers. reset reason: remote connection failure",
    );
    let d = envoy.diagnosis();
    assert_eq!(d.hop(), &Hop::Gateway(Some(Gateway::Envoy)));
    assert_eq!(d.cause(), LikelyCause::BackendMisconfiguration);
    assert!(
        d.to_string()
            .contains("Envoy reset reason: remote connection failure"),
        "{d}"
    );

    let squid = upstream(
        503,
        &[
            ("server", "squid/5.7"),
            ("x-squid-error", "ERR_CONNECT_FAIL 111"),
        ],
        "",
    );
    let d = squid.diagnosis();
    assert!(
        d.to_string()
            .contains("X-Squid-Error: ERR_CONNECT_FAIL 111"),
        "{d}"
    );
}

/// The hop each recognised gateway in the recorded fixtures is diagnosed as.
#[test]
fn every_recognised_gateway_in_the_fixtures_is_named() {
    let mut named = std::collections::BTreeSet::new();
    for case in support::fixtures::load() {
        if case.expect == "none" {
            continue;
        }
        let err = GatewayError::from_response(case.snapshot()).unwrap();
        let d = err.diagnosis();
        let id = &case.id;
        if let Some(gateway) = err.gateway() {
            assert_eq!(d.hop(), &Hop::Gateway(Some(gateway)), "{id}");
            assert!(d.to_string().contains(gateway.name()), "{id}: {d}");
            named.insert(gateway.name());
        }
        assert!(!d.evidence().is_empty(), "{id}");
    }
    for expected in [
        "nginx",
        "HAProxy",
        "Caddy",
        "IIS/ARR",
        "Envoy",
        "AWS ALB",
        "Cloudflare",
        "Google Front End",
        "Azure Application Gateway",
    ] {
        assert!(named.contains(expected), "{expected} never recognised");
    }
}

/// A bare `Transport` over a caller's reqwest client cannot see the redirects that client
/// follows: a failure's diagnosis says the hop that failed may be a redirect's target. The
/// crate's own client tracks its redirects, and says nothing of the kind.
#[tokio::test]
async fn a_transport_that_cannot_see_redirects_says_so() {
    use tower::ServiceExt;
    const UNSEEN: &str = "does not report the redirects it follows";
    let url = refused_url("/x").await;
    let request: reqwest_resilience::Request =
        reqwest::Request::new(reqwest::Method::GET, url.parse().unwrap()).into();
    let err = reqwest_resilience::Transport::new(reqwest::Client::new())
        .oneshot(request)
        .await
        .unwrap_err();
    let d = err.diagnosis();
    assert!(d.evidence().iter().any(|e| e.contains(UNSEEN)), "{d}");
    let err = client().get(&url).send().await.unwrap_err();
    let d = err.diagnosis();
    assert!(!d.evidence().iter().any(|e| e.contains(UNSEEN)), "{d}");
}
