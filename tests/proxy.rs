//! A real forward proxy (Debian's `tinyproxy`) on loopback: its failures are told apart from
//! failures behind it. The tests that start tinyproxy are `#[ignore]`d; run them with
//! `cargo test --features full --test real_gateways --test proxy --test doctor_gateways -- --ignored` (a missing tinyproxy then fails them).

mod support;

use reqwest_resilience::classify::Gateway;
use reqwest_resilience::diagnosis::{Hop, LikelyCause};
use reqwest_resilience::{Client, ErrorKind};
use std::time::Duration;
use support::gateways::tinyproxy;
use support::refused_url;
use wiremock::{Mock, MockServer, ResponseTemplate};

fn client_via(proxy: &str) -> Client {
    Client::builder()
        .no_retry()
        .attempt_timeout(Duration::from_secs(5))
        .proxy(proxy)
        .build()
        .unwrap()
}

#[tokio::test]
#[ignore = "needs the gateway binaries (apt-get install nginx-light haproxy caddy apache2 tinyproxy); run with: cargo test --features full --test real_gateways --test proxy --test doctor_gateways -- --ignored"]
async fn requests_pass_through_a_healthy_proxy() {
    let proxy = tinyproxy("");
    let origin = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(ResponseTemplate::new(200).set_body_string("via proxy"))
        .mount(&origin)
        .await;
    let client = client_via(&format!("http://127.0.0.1:{}", proxy.port()));
    let response = client.get(origin.uri()).send().await.unwrap();
    assert_eq!(response.text().await.unwrap(), "via proxy");
}

#[tokio::test]
#[ignore = "needs the gateway binaries (apt-get install nginx-light haproxy caddy apache2 tinyproxy); run with: cargo test --features full --test real_gateways --test proxy --test doctor_gateways -- --ignored"]
async fn a_proxy_that_cannot_reach_the_origin_is_a_failure_behind_it() {
    let proxy = tinyproxy("");
    let origin = refused_url("/x").await;
    let address = format!("http://127.0.0.1:{}", proxy.port());
    let err = client_via(&address).get(&origin).send().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectFailed, "{err:?}");
    assert_eq!(err.gateway(), Some(Gateway::Tinyproxy));
    let d = err.diagnosis();
    assert_eq!(
        d.hop(),
        &Hop::ForwardProxy {
            address: Some(address.clone()),
            product: Some(Gateway::Tinyproxy)
        }
    );
    assert_eq!(d.cause(), LikelyCause::BackendMisconfiguration, "{d}");
}

#[tokio::test]
async fn an_unreachable_proxy_is_proxy_misconfiguration() {
    let closed = refused_url("").await;
    let origin = MockServer::start().await;
    let err = client_via(&closed)
        .get(origin.uri())
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectFailed, "{err:?}");
    let d = err.diagnosis();
    assert!(matches!(d.hop(), Hop::ForwardProxy { .. }), "{d}");
    assert_eq!(d.cause(), LikelyCause::ProxyMisconfiguration, "{d}");
    assert!(origin.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
#[ignore = "needs the gateway binaries (apt-get install nginx-light haproxy caddy apache2 tinyproxy); run with: cargo test --features full --test real_gateways --test proxy --test doctor_gateways -- --ignored"]
async fn a_proxy_refusing_the_tunnel_is_proxy_misconfiguration() {
    // Only CONNECT to port 443 is allowed: a tunnel to any other port is refused (403).
    let proxy = tinyproxy("ConnectPort 443");
    let err = client_via(&format!("http://127.0.0.1:{}", proxy.port()))
        .get("https://127.0.0.1:8443/")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectFailed, "{err:?}");
    let d = err.diagnosis();
    assert_eq!(
        d.cause(),
        LikelyCause::ProxyMisconfiguration,
        "{d} {err:#?}"
    );
    assert!(d.suggestion().contains("access rules"), "{d}");
}

#[tokio::test]
#[ignore = "needs the gateway binaries (apt-get install nginx-light haproxy caddy apache2 tinyproxy); run with: cargo test --features full --test real_gateways --test proxy --test doctor_gateways -- --ignored"]
async fn a_proxy_demanding_credentials_is_proxy_misconfiguration() {
    let proxy = tinyproxy("BasicAuth alice s3cret-proxy-pass");
    let address = format!("http://bob:wrong-pass@127.0.0.1:{}", proxy.port());
    let err = client_via(&address)
        .get("https://127.0.0.1:8443/")
        .send()
        .await
        .unwrap_err();
    let d = err.diagnosis();
    assert_eq!(d.cause(), LikelyCause::ProxyMisconfiguration, "{d}");
    assert!(d.suggestion().contains("credentials"), "{d}");
    let shown = format!("{err} {err:?} {d}");
    assert!(
        !shown.contains("wrong-pass") && !shown.contains("bob:"),
        "{shown}"
    );
}

#[tokio::test]
async fn a_407_to_connect_names_the_credentials() {
    // tinyproxy answers a bad CONNECT login with 401; this proxy answers 407, as Squid does.
    let proxy = support::FaultServer::start(support::Fault::Raw(
        b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"p\"\r\nContent-Length: 0\r\n\r\n".to_vec(),
    ))
    .await;
    let err = client_via(&proxy.url(""))
        .get("https://127.0.0.1:8443/")
        .send()
        .await
        .unwrap_err();
    let d = err.diagnosis();
    assert_eq!(d.cause(), LikelyCause::ProxyMisconfiguration, "{d}");
    assert!(d.evidence()[0].contains("requires authentication"), "{d}");
}
