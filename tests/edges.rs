//! The promises of the second defects issue: redirects, TLS, proxies and wss, over loopback with
//! made-up certificates and hand-written proxies. (The proxy environment table is in
//! `tests/proxy_env.rs`, a process of its own because it sets environment variables.)

mod support;

use reqwest_resilience::diagnosis::Hop;
use reqwest_resilience::fallback::FallbackLayer;
use reqwest_resilience::{Client, ErrorKind, Transport, redirect};
use std::time::Duration;
use support::tls::{Leaf, Pki, TlsServer};
use support::{Fault, FaultServer, refused_url};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tower::{Service, ServiceBuilder, ServiceExt};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

fn redirect_to(status: &str, location: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status}\r\nLocation: {location}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .into_bytes()
}

/// A client trusting only the test CA (with the default retry policy: 3 attempts).
fn trusting(pki: &Pki) -> Client {
    Client::builder()
        .reqwest_builder(reqwest::Client::builder().tls_certs_only([pki.ca()]))
        .build()
        .unwrap()
}

// 1. A POST whose redirect leads to a dead address is delivered once.
#[tokio::test]
async fn a_post_redirected_to_a_dead_address_is_delivered_once() {
    let dead = refused_url("/done").await;
    for status in ["303 See Other", "302 Found", "301 Moved Permanently"] {
        let server = FaultServer::start(Fault::Raw(redirect_to(status, &dead))).await;
        let err = Client::new()
            .post(server.url("/orders"))
            .body("item=1")
            .send()
            .await
            .unwrap_err();
        assert_eq!(server.hits(), 1, "{status}: the POST was sent again");
        assert_eq!(err.kind(), ErrorKind::ConnectFailed, "{err}");
        assert!(!err.is_request_unsent(), "{status}: the POST was delivered");
        assert!(err.details().followed_redirect());
        let dead_port = dead.rsplit(':').next().unwrap().trim_end_matches("/done");
        assert!(
            err.server().is_some_and(|s| s.contains(dead_port)),
            "the error names the redirect's target: {err}"
        );
        let diagnosis = err.diagnosis().to_string();
        assert!(diagnosis.contains("redirect was followed"), "{diagnosis}");
    }
}

// 1a. Over a reqwest client built elsewhere (whose redirect policy is not the crate's
// tracking one), the redirects are not seen: the POST is still delivered once (a connection
// failure proves nothing unsent there), and its failure says the redirects were unseen.
#[tokio::test]
async fn a_post_redirected_to_a_dead_address_over_a_clients_own_reqwest_is_delivered_once() {
    let dead = refused_url("/done").await;
    let server = FaultServer::start(Fault::Raw(redirect_to("303 See Other", &dead))).await;
    let client = Client::builder()
        .reqwest_client(reqwest::Client::builder().no_proxy().build().unwrap())
        .build()
        .unwrap();
    let err = client
        .post(server.url("/orders"))
        .body("item=1")
        .send()
        .await
        .unwrap_err();
    assert_eq!(server.hits(), 1, "the POST was sent again");
    assert!(!err.is_request_unsent(), "the POST was delivered: {err}");
    assert!(err.details().redirects_unseen(), "{err}");
}

// 1b. A redirect to the very same URL, then a gateway's "never forwarded" page: the POST was
// delivered (the redirect is its answer), so it is not sent again.
#[tokio::test]
async fn a_post_redirected_to_itself_then_refused_by_a_gateway_is_not_resent() {
    let envoy = b"HTTP/1.1 503 Service Unavailable\r\nserver: envoy\r\ncontent-length: 19\r\nconnection: close\r\n\r\nno healthy upstream";
    let server = FaultServer::start(Fault::FirstThen(
        redirect_to("303 See Other", "/cart"),
        envoy.to_vec(),
    ))
    .await;
    let err = Client::new()
        .post(server.url("/cart"))
        .body("item=1")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NoHealthyServer, "{err}");
    assert!(err.details().followed_redirect());
    assert!(!err.is_request_unsent());
    assert_eq!(
        server.hits(),
        2,
        "the POST and the redirect's GET, nothing more"
    );
}

// 1c. A redirect to a host that never answers ends at the attempt timeout, named after the
// redirect's target, and the POST is not sent again.
#[tokio::test]
async fn a_post_redirected_to_a_silent_host_times_out_once() {
    let silent = FaultServer::start(Fault::Hang).await;
    let server = FaultServer::start(Fault::Raw(redirect_to(
        "303 See Other",
        &silent.url("/done"),
    )))
    .await;
    let client = Client::builder()
        .attempt_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let err = client
        .post(server.url("/orders"))
        .body("item=1")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut, "{err}");
    assert!(err.details().followed_redirect());
    assert_eq!(server.hits(), 1, "the POST was sent again");
    let silent_port = silent.addr.port().to_string();
    assert!(
        err.server().is_some_and(|s| s.contains(&silent_port)),
        "named after the redirect's target: {err}"
    );
}

// 2. A primary that answers with a redirect to a dead host is not ejected for it.
#[tokio::test]
async fn a_primary_redirecting_to_a_dead_host_is_not_ejected() {
    let dead = refused_url("/").await;
    let primary = FaultServer::start(Fault::Raw(redirect_to("302 Found", &dead))).await;
    let backup = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&backup)
        .await;
    let layer = FallbackLayer::builder([primary.url(""), backup.uri()])
        .consecutive_failures(2)
        .build()
        .unwrap();
    let tracking = reqwest::Client::builder()
        .redirect(redirect::tracking(reqwest::redirect::Policy::default()))
        .build()
        .unwrap();
    let mut service = ServiceBuilder::new()
        .layer(layer)
        .service(Transport::new(tracking).redirects_tracked(true));
    for _ in 0..5 {
        let request =
            reqwest::Request::new(reqwest::Method::GET, primary.url("/x").parse().unwrap());
        let response = service
            .ready()
            .await
            .unwrap()
            .call(request.into())
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "served by the backup");
    }
    assert_eq!(primary.hits(), 5, "the primary kept being asked");
    assert!(!service.is_ejected(0), "the primary answered every time");
}

// 3. A certificate the client rejects is not retried, and the diagnosis names the check.
#[tokio::test]
async fn rejected_certificates_are_not_retried_and_name_the_failed_check() {
    let pki = Pki::new();
    let client = trusting(&pki);
    let cases = [
        (Leaf::Expired, "expired", "renewed"),
        (Leaf::WrongName, "not valid for this host name", "host name"),
        (Leaf::SelfSigned, "issuer is not trusted", "trust store"),
    ];
    for (leaf, evidence, suggestion) in cases {
        let server = TlsServer::start(&pki, leaf, &[b"http/1.1"], |_| async {}).await;
        let err = client.get(server.url("/")).send().await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ConnectFailed, "{leaf:?}: {err}");
        assert_eq!(err.attempts(), 1, "{leaf:?}: retried: {err}");
        assert_eq!(server.connections(), 1, "{leaf:?}");
        assert!(err.details().is_permanent());
        assert!(err.to_string().contains(evidence), "{leaf:?}: {err}");
        let diagnosis = err.diagnosis();
        assert!(
            diagnosis.suggestion().contains(suggestion),
            "{leaf:?}: {diagnosis}"
        );
    }
    // The same setup with a good certificate works: the failures above are the certificates'.
    let good = TlsServer::start(&pki, Leaf::Good, &[b"http/1.1"], |mut tls| async move {
        let mut buf = [0u8; 1024];
        let _ = tls.read(&mut buf).await;
        let _ = tls
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
            .await;
        let _ = tls.shutdown().await;
    })
    .await;
    let response = client.get(good.url("/")).send().await.unwrap();
    assert_eq!(response.status(), 200);
}

// 4. `https://` to a plain-HTTP port says so.
#[tokio::test]
async fn https_to_a_plain_http_port_says_the_port_does_not_speak_tls() {
    // A plain-HTTP server answers the TLS hello with 400, as nginx and most servers do.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let _server = tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut buf = [0u8; 1024];
            let _ = stream.read(&mut buf).await;
            let _ = stream
                .write_all(
                    b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                )
                .await;
            let _ = stream.shutdown().await;
        }
    });
    let url = format!("https://{addr}/");
    let err = Client::new().get(url).send().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectFailed, "{err}");
    assert!(err.to_string().contains("does not speak TLS"), "{err}");
    assert_eq!(err.attempts(), 1, "not retried: {err}");
    let diagnosis = err.diagnosis();
    assert!(
        diagnosis.suggestion().contains("scheme and port"),
        "{diagnosis}"
    );
}

/// A forward proxy that answers every `CONNECT` with 200 and then relays bytes both ways.
async fn tunnelling_proxy() -> (String, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if client.read(&mut byte).await.unwrap_or(0) == 0 {
                        return;
                    }
                    head.push(byte[0]);
                }
                let line = String::from_utf8_lossy(&head);
                let Some(target) = line.split_whitespace().nth(1) else {
                    return;
                };
                let Ok(mut origin) = tokio::net::TcpStream::connect(target).await else {
                    return;
                };
                let _ = client
                    .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    .await;
                let _ = tokio::io::copy_bidirectional(&mut client, &mut origin).await;
            });
        }
    });
    (format!("http://{addr}"), task)
}

// 5. An origin's certificate error through a working proxy is the origin's.
#[tokio::test]
async fn an_origins_certificate_error_through_a_working_proxy_blames_the_origin() {
    let pki = Pki::new();
    let origin = TlsServer::start(&pki, Leaf::SelfSigned, &[b"http/1.1"], |_| async {}).await;
    let (proxy, _task) = tunnelling_proxy().await;
    let client = Client::builder()
        .reqwest_builder(reqwest::Client::builder().tls_certs_only([pki.ca()]))
        .proxy(proxy)
        .build()
        .unwrap();
    let err = client.get(origin.url("/")).send().await.unwrap_err();
    assert_eq!(origin.connections(), 1, "the tunnel reached the origin");
    let diagnosis = err.diagnosis();
    assert_eq!(diagnosis.hop(), &Hop::Origin, "{diagnosis}");
    assert!(
        diagnosis.suggestion().contains("trust store"),
        "{diagnosis}"
    );
}

// 6. A proxy's 407 or 403 to CONNECT is not retried, and the error says which.
#[tokio::test]
async fn a_proxys_407_or_403_to_connect_is_not_retried() {
    let cases = [
        (
            "407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"p\"",
            "requires authentication",
        ),
        ("403 Forbidden", "refused the CONNECT tunnel"),
    ];
    for (answer, says) in cases {
        let proxy = FaultServer::start(Fault::Raw(
            format!("HTTP/1.1 {answer}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                .into_bytes(),
        ))
        .await;
        let client = Client::builder().proxy(proxy.url("")).build().unwrap();
        let err = client
            .get("https://127.0.0.1:9/x")
            .send()
            .await
            .unwrap_err();
        assert_eq!(proxy.hits(), 1, "{answer}: retried: {err}");
        assert_eq!(err.attempts(), 1);
        assert!(err.to_string().contains(says), "{err}");
        assert!(matches!(err.diagnosis().hop(), Hop::ForwardProxy { .. }));
    }
}

// 6b. With fallback servers, a proxy's refusal ends the request at once: every server would be
// refused the same way.
#[tokio::test]
async fn a_proxys_refusal_is_not_failed_over_or_retried() {
    let proxy = FaultServer::start(Fault::Raw(
        b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec(),
    ))
    .await;
    let client = Client::builder()
        .proxy(proxy.url(""))
        .fallback_servers(["https://127.0.0.1:9", "https://127.0.0.1:10"])
        .build()
        .unwrap();
    let err = client
        .get("https://127.0.0.1:9/x")
        .send()
        .await
        .unwrap_err();
    assert!(err.details().is_proxy_refusal(), "{err}");
    assert_eq!(proxy.hits(), 1, "{err}");
}

// 8. A wss:// handshake goes over HTTP/1.1 even when the server offers HTTP/2.
#[cfg(feature = "websocket")]
#[tokio::test]
async fn wss_works_against_a_server_that_offers_http2() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;

    let pki = Pki::new();
    let server = TlsServer::start(&pki, Leaf::Good, &[b"h2", b"http/1.1"], |tls| async move {
        if tls.get_ref().1.alpn_protocol() != Some(b"http/1.1") {
            return; // HTTP/2 negotiated: no WebSocket upgrade is possible over it.
        }
        if let Ok(mut socket) = tokio_tungstenite::accept_async(tls).await {
            while let Some(Ok(message)) = socket.next().await {
                if message.is_text() && socket.send(message).await.is_err() {
                    return;
                }
            }
        }
    })
    .await;
    let ca = pki.ca();
    let client = Client::builder()
        .reqwest_builder_fn(move || reqwest::Client::builder().tls_certs_only([ca.clone()]))
        .build()
        .unwrap();
    let url = server.url("/chat").replacen("https://", "wss://", 1);
    let (mut socket, _) =
        tokio::time::timeout(Duration::from_secs(10), client.websocket(url).connect())
            .await
            .expect("the handshake ends")
            .expect("the handshake succeeds over HTTP/1.1");
    socket.send(Message::text("hello")).await.unwrap();
    let echo = socket.next().await.unwrap().unwrap();
    assert_eq!(echo.into_text().unwrap().as_str(), "hello");
}
