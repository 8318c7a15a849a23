//! `gateway-doctor` against real servers on loopback: a refused port, a hang, a reset, TLS
//! servers with an expired, a wrong-name and a good certificate, a redirect to a dead host,
//! forward proxies from the environment, an origin's own error and a gateway's 502. Each case
//! checks the hop and cause named, in text and in `--json`, and the exit status.
//!
//! The real gateways (nginx, HAProxy, Caddy, Apache, tinyproxy) are in `doctor_gateways.rs`.

#[path = "support/doctor.rs"]
mod doctor_run;
mod support;

use doctor_run::{doctor, doctor_json, steps, verdict};

use std::process::Command;
use support::tls::{Leaf, Pki, TlsServer};
use support::{Fault, FaultServer, refused_url};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wiremock::{Mock, MockServer, ResponseTemplate};

#[tokio::test]
async fn a_refused_port_is_no_connection_at_this_clients_own_hop() {
    let url = refused_url("/x").await;
    let (code, text) = doctor(&[&url], &[]).await;
    assert_eq!(code, 6, "{text}");
    assert!(
        text.contains("refused: nothing listens on that port"),
        "{text}"
    );
    assert!(
        text.contains("failed   this client's own connection"),
        "{text}"
    );
    assert!(
        text.contains("variant  ConnectFailed (substatus 502.3)"),
        "{text}"
    );

    let (code, doc) = doctor_json(&[&url], &[]).await;
    assert_eq!(code, 6);
    assert_eq!(verdict(&doc, "outcome"), "connect_failed", "{doc:#}");
    assert_eq!(verdict(&doc, "variant"), "ConnectFailed");
    assert_eq!(verdict(&doc, "substatus"), "502.3");
    assert_eq!(verdict(&doc, "failed_hop_kind"), "own_transport");
    assert_eq!(verdict(&doc, "cause"), "backend misconfiguration");
    assert_eq!(steps(&doc, 1, "connect")[0]["error"], "refused", "{doc:#}");
}

#[tokio::test]
async fn a_hanging_server_is_named_after_the_connection_was_made() {
    let hang = FaultServer::start(Fault::Hang).await;
    let (code, doc) = doctor_json(&["--timeout", "1", &hang.url("/")], &[]).await;
    assert_eq!(code, 8, "{doc:#}");
    assert_eq!(steps(&doc, 1, "connect")[0]["ok"], true, "{doc:#}");
    assert_eq!(verdict(&doc, "variant"), "TimedOut", "{doc:#}");
    assert_eq!(verdict(&doc, "outcome"), "server_failed");
    assert_eq!(verdict(&doc, "cause"), "temporary upstream outage");
}

#[tokio::test]
async fn a_reset_is_a_connection_closed_early() {
    let reset = FaultServer::start(Fault::Reset).await;
    let (code, text) = doctor(&[&reset.url("/")], &[]).await;
    assert_eq!(code, 8, "{text}");
    assert!(
        text.contains("ConnectionClosed (substatus 502.2)"),
        "{text}"
    );
    assert!(
        text.contains("cause    temporary upstream outage"),
        "{text}"
    );
}

/// A TLS server presenting `leaf`, answering `200 ok` once the handshake succeeds; and a
/// `--cacert` file with the CA that signed it.
async fn tls_server(pki: &Pki, leaf: Leaf) -> (TlsServer, std::path::PathBuf) {
    let server = TlsServer::start(pki, leaf, &[b"http/1.1"], |mut tls| async move {
        let mut buf = [0u8; 4096];
        let _ = tls.read(&mut buf).await;
        let _ = tls
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
            .await;
        let _ = tls.shutdown().await;
    })
    .await;
    let dir = support::process::temp_dir("doctor-ca");
    let path = dir.join("ca.pem");
    std::fs::write(&path, pki.ca_pem()).expect("write CA");
    (server, path)
}

#[tokio::test]
async fn an_expired_certificate_is_named_with_its_dates() {
    let pki = Pki::new();
    let (server, ca) = tls_server(&pki, Leaf::Expired).await;
    let ca = ca.to_str().unwrap();
    let (code, text) = doctor(&["--cacert", ca, &server.url("/")], &[]).await;
    assert_eq!(code, 7, "{text}");
    assert!(text.contains("the certificate has expired"), "{text}");
    assert!(text.contains("NOT VALID NOW"), "{text}");
    assert!(text.contains("2020"), "the expiry date is shown: {text}");

    let (code, doc) = doctor_json(&["--cacert", ca, &server.url("/")], &[]).await;
    assert_eq!(code, 7);
    let tls = steps(&doc, 1, "tls")[0];
    assert_eq!(tls["check"], "expired", "{doc:#}");
    assert!(
        tls["chain"][0]["subject"]
            .as_str()
            .unwrap()
            .contains("Expired")
    );
    assert_eq!(verdict(&doc, "outcome"), "tls_failed");
    assert_eq!(verdict(&doc, "cause"), "backend misconfiguration");
    assert!(
        verdict(&doc, "check").as_str().unwrap().contains("expired"),
        "the crate's diagnosis names the check: {doc:#}"
    );
}

#[tokio::test]
async fn a_certificate_for_another_name_is_named() {
    let pki = Pki::new();
    let (server, ca) = tls_server(&pki, Leaf::WrongName).await;
    let (code, doc) = doctor_json(&["--cacert", ca.to_str().unwrap(), &server.url("/")], &[]).await;
    assert_eq!(code, 7, "{doc:#}");
    let tls = steps(&doc, 1, "tls")[0];
    assert_eq!(tls["check"], "wrong_name", "{doc:#}");
    assert_eq!(tls["chain"][0]["names"][0], "other.test");
    assert_eq!(verdict(&doc, "outcome"), "tls_failed");
    assert!(
        verdict(&doc, "check")
            .as_str()
            .unwrap()
            .contains("host name")
    );
}

#[tokio::test]
async fn a_good_certificate_passes_and_the_answer_is_ok() {
    let pki = Pki::new();
    let (server, ca) = tls_server(&pki, Leaf::Good).await;
    let (code, doc) = doctor_json(&["--cacert", ca.to_str().unwrap(), &server.url("/")], &[]).await;
    assert_eq!(code, 0, "{doc:#}");
    let tls = steps(&doc, 1, "tls")[0];
    assert_eq!(tls["ok"], true, "{doc:#}");
    assert_eq!(tls["alpn"], "http/1.1");
    assert!(tls["version"].as_str().unwrap().starts_with("TLS"));
    assert_eq!(verdict(&doc, "status"), 200);
    // Without the CA, the issuer is not trusted: the check is named, and the crate agrees.
    let (code, doc) = doctor_json(&[&server.url("/")], &[]).await;
    assert_eq!(code, 7, "{doc:#}");
    assert_eq!(steps(&doc, 1, "tls")[0]["check"], "untrusted_issuer");
}

#[tokio::test]
async fn a_redirect_to_a_dead_host_names_the_second_hop() {
    let dead = refused_url("/gone").await;
    let origin = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(ResponseTemplate::new(302).insert_header("location", dead.as_str()))
        .mount(&origin)
        .await;
    let (code, text) = doctor(&[&origin.uri()], &[]).await;
    assert_eq!(code, 6, "{text}");
    assert!(text.contains("redirect 302 →"), "{text}");
    assert!(
        text.contains("hop 2: ") && text.contains("(a redirect's target)"),
        "{text}"
    );
    assert!(text.contains("at hop 2, a redirect's target"), "{text}");

    let (_, doc) = doctor_json(&[&origin.uri()], &[]).await;
    assert_eq!(verdict(&doc, "hop_index"), 2, "{doc:#}");
    assert_eq!(steps(&doc, 1, "http")[0]["status"], 302);
    assert_eq!(steps(&doc, 2, "connect")[0]["error"], "refused");
}

#[tokio::test]
async fn an_unreachable_proxy_from_the_environment_is_the_proxys_hop() {
    let dead = refused_url("").await;
    let port = dead.rsplit(':').next().unwrap().trim_end_matches('/');
    let proxy = format!("http://user:pr0xy-secret@127.0.0.1:{port}");
    let env = [("HTTP_PROXY", proxy.as_str())];
    let (code, text) = doctor(&["http://origin.test/"], &env).await;
    assert_eq!(code, 4, "{text}");
    assert!(
        text.contains("(from HTTP_PROXY)") && text.contains("refused"),
        "{text}"
    );
    assert!(text.contains("done by the proxy"), "{text}");
    assert!(!text.contains("pr0xy-secret"), "{text}");

    let (code, doc) = doctor_json(&["http://origin.test/"], &env).await;
    assert_eq!(code, 4);
    assert_eq!(verdict(&doc, "failed_hop_kind"), "forward_proxy", "{doc:#}");
    assert_eq!(verdict(&doc, "cause"), "proxy misconfiguration");
    assert!(!doc.to_string().contains("pr0xy-secret"));
    // NO_PROXY takes the proxy away, as reqwest decides.
    let (code, text) = doctor(
        &["--timeout", "2", "http://127.0.0.1:9/"],
        &[("HTTP_PROXY", proxy.as_str()), ("NO_PROXY", "127.0.0.1")],
    )
    .await;
    assert!(text.contains("NO_PROXY lists it"), "{text}");
    assert_eq!(
        code, 6,
        "went direct, to a port where nothing listens: {text}"
    );
}

#[tokio::test]
async fn a_proxy_that_answers_with_its_own_error_page_is_named() {
    let squid = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(
            ResponseTemplate::new(503)
                .insert_header("server", "squid/5.7")
                .insert_header("x-squid-error", "ERR_CONNECT_FAIL 111")
                .set_body_string("<html>The system returned: (111) Connection refused</html>"),
        )
        .mount(&squid)
        .await;
    let env = [("HTTP_PROXY", squid.uri())];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (code, doc) = doctor_json(&["http://origin.test/"], &env).await;
    assert_eq!(code, 4, "{doc:#}");
    assert_eq!(
        steps(&doc, 1, "proxy")[0]["ok"],
        true,
        "the proxy answers: {doc:#}"
    );
    assert_eq!(verdict(&doc, "failed_hop_kind"), "forward_proxy");
    assert_eq!(verdict(&doc, "variant"), "ConnectFailed");
    assert_eq!(verdict(&doc, "gateway"), "Squid");
}

#[tokio::test]
async fn a_proxy_that_wants_credentials_is_the_proxys_hop_not_the_origins() {
    let proxy = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(
            ResponseTemplate::new(407).insert_header("proxy-authenticate", "Basic realm=\"p\""),
        )
        .mount(&proxy)
        .await;
    let env = [("HTTP_PROXY", proxy.uri())];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (code, doc) = doctor_json(&["http://origin.test/"], &env).await;
    assert_eq!(code, 4, "{doc:#}");
    assert_eq!(verdict(&doc, "failed_hop_kind"), "forward_proxy");
    assert_eq!(verdict(&doc, "cause"), "proxy misconfiguration");
    assert_eq!(verdict(&doc, "status"), 407);
}

#[tokio::test]
async fn an_origins_own_500_is_the_origins_answer() {
    let origin = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(ResponseTemplate::new(500).set_body_string("NullPointerException"))
        .mount(&origin)
        .await;
    let (code, text) = doctor(&[&origin.uri()], &[]).await;
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("the application's own error"), "{text}");
    let (_, doc) = doctor_json(&[&origin.uri()], &[]).await;
    assert_eq!(verdict(&doc, "outcome"), "origin_error");
    assert_eq!(verdict(&doc, "status"), 500);
}

#[tokio::test]
async fn a_gateways_502_names_the_gateway() {
    let nginx = support::nginx_502().await;
    let (code, doc) = doctor_json(&[&nginx.uri()], &[]).await;
    assert_eq!(code, 9, "{doc:#}");
    assert_eq!(verdict(&doc, "failed_hop_kind"), "gateway");
    assert_eq!(verdict(&doc, "gateway"), "nginx");
    assert_eq!(steps(&doc, 1, "http")[0]["ok"], false);
}

#[tokio::test]
async fn credentials_cookies_and_query_strings_are_never_printed() {
    let dead = refused_url("").await;
    let origin = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(ResponseTemplate::new(500))
        .mount(&origin)
        .await;
    for base in [dead.trim_end_matches('/').to_owned(), origin.uri()] {
        let url = base.replacen("http://", "http://alice:hunter2@", 1) + "/p?token=s3cret";
        let args = [
            url.as_str(),
            "-H",
            "Authorization: Bearer t0ken-value",
            "-H",
            "Cookie: session=c00kie",
        ];
        let (_, text) = doctor(&args, &[]).await;
        let (_, doc) = doctor_json(&args, &[]).await;
        for secret in ["hunter2", "s3cret", "t0ken-value", "c00kie", "alice"] {
            assert!(!text.contains(secret), "{secret} in {text}");
            assert!(!doc.to_string().contains(secret), "{secret} in {doc}");
        }
    }
}

#[tokio::test]
async fn a_bad_command_line_and_a_bad_url_have_their_own_statuses() {
    let (code, _) = doctor(&["--no-such-option", "http://127.0.0.1/"], &[]).await;
    assert_eq!(code, 2);
    let (code, text) = doctor(&["not a url"], &[]).await;
    assert_eq!(code, 3, "{text}");
    let (code, doc) = doctor_json(&["ftp://127.0.0.1/"], &[]).await;
    assert_eq!(code, 3);
    assert_eq!(verdict(&doc, "outcome"), "local_problem");
    let (code, _) = doctor(
        &["--cacert", "/no/such/file.pem", "https://127.0.0.1:9/"],
        &[],
    )
    .await;
    assert_eq!(code, 3);
}

#[tokio::test]
async fn repeat_shows_the_default_clients_attempts_and_backoff() {
    // The walk's own request takes the first 502; the first repeated request meets the second
    // and is retried; the second repeated request succeeds at once.
    let server = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(
            ResponseTemplate::new(502)
                .insert_header("server", "nginx/1.22.1")
                .set_body_string("<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center><hr><center>nginx/1.22.1</center></body></html>"),
        )
        .up_to_n_times(2)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(wiremock::matchers::any())
        .respond_with(ResponseTemplate::new(200))
        .with_priority(2)
        .mount(&server)
        .await;
    let (code, doc) = doctor_json(&["--repeat", "2", &server.uri()], &[]).await;
    assert_eq!(code, 9, "the walk's verdict: {doc:#}");
    let runs = doc["repeat"].as_array().expect("repeat runs");
    assert_eq!(runs.len(), 2);
    let first = runs[0]["attempts"].as_array().unwrap();
    assert_eq!(first.len(), 2, "{doc:#}");
    assert!(first[0]["error"].is_string(), "{doc:#}");
    assert!(
        first[1]["waited_ms"].as_f64().unwrap() > 0.0,
        "a backoff: {doc:#}"
    );
    assert_eq!(first[1]["status"], "200");
    assert_eq!(runs[0]["outcome"], "ok");
    assert_eq!(runs[1]["attempts"].as_array().unwrap().len(), 1);
    assert_eq!(server.received_requests().await.unwrap().len(), 4);
}

#[tokio::test]
async fn credentials_stay_behind_on_a_redirect_to_another_host() {
    let other = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(ResponseTemplate::new(200))
        .mount(&other)
        .await;
    let first = MockServer::start().await;
    // Same server first (credentials kept), then `localhost`: another host.
    let elsewhere = format!("http://localhost:{}/landing", other.address().port());
    Mock::given(wiremock::matchers::path("/start"))
        .respond_with(ResponseTemplate::new(302).insert_header("location", "/next"))
        .mount(&first)
        .await;
    Mock::given(wiremock::matchers::path("/next"))
        .respond_with(ResponseTemplate::new(307).insert_header("location", elsewhere.as_str()))
        .mount(&first)
        .await;
    let url = format!("{}/start", first.uri());
    let args = [
        url.as_str(),
        "-H",
        "Authorization: Bearer t0ken",
        "-H",
        "Cookie: sid=c00kie",
        "-H",
        "X-Trace: kept",
    ];
    let (code, text) = doctor(&args, &[]).await;
    assert_eq!(code, 0, "{text}");
    let seen_first = first.received_requests().await.unwrap();
    assert_eq!(seen_first.len(), 2);
    assert!(
        seen_first
            .iter()
            .all(|r| r.headers.contains_key("authorization"))
    );
    let seen_other = other.received_requests().await.unwrap();
    assert_eq!(seen_other.len(), 1, "{text}");
    assert!(!seen_other[0].headers.contains_key("authorization"));
    assert!(!seen_other[0].headers.contains_key("cookie"));
    assert!(seen_other[0].headers.contains_key("x-trace"));
}

#[tokio::test]
async fn redirects_are_followed_as_reqwest_follows_them() {
    let server = MockServer::start().await;
    let uri = server.uri();
    // 301 turns a PUT into a GET; 303 keeps a HEAD a HEAD; 307 keeps the method.
    for (path, method, expected) in [
        ("/moved", "PUT", "GET"),
        ("/see-other", "HEAD", "HEAD"),
        ("/keep", "DELETE", "DELETE"),
    ] {
        server.reset().await;
        for (from, status, to) in [
            ("/moved", 301, "/landed"),
            ("/see-other", 303, "/landed"),
            ("/keep", 307, "/landed"),
        ] {
            Mock::given(wiremock::matchers::path(from))
                .respond_with(ResponseTemplate::new(status).insert_header("location", to))
                .mount(&server)
                .await;
        }
        Mock::given(wiremock::matchers::path("/landed"))
            .respond_with(ResponseTemplate::new(200))
            .mount(&server)
            .await;
        let url = format!("{uri}{path}");
        let (code, text) = doctor(&["-X", method, &url], &[]).await;
        assert_eq!(code, 0, "{text}");
        let seen = server.received_requests().await.unwrap();
        let landed = seen
            .iter()
            .find(|r| r.url.path() == "/landed")
            .expect("followed");
        assert_eq!(landed.method.as_str(), expected, "{path} with {method}");
    }
    server.reset().await;
    for (from, status, to) in [
        ("/loop-a", 302, "/loop-b"),
        ("/loop-b", 302, "/loop-a"),
        ("/not-modified", 304, "/landed"),
        ("/mail", 302, "mailto:s3cret@example.test"),
    ] {
        Mock::given(wiremock::matchers::path(from))
            .respond_with(ResponseTemplate::new(status).insert_header("location", to))
            .mount(&server)
            .await;
    }
    let (code, text) = doctor(&[&format!("{uri}/loop-a")], &[]).await;
    assert_eq!(code, 10, "{text}");
    assert!(text.contains("a redirect loop"), "{text}");
    // A 304 is an answer, not a redirect to follow.
    let (code, text) = doctor(&[&format!("{uri}/not-modified")], &[]).await;
    assert_eq!(code, 0, "{text}");
    assert!(!text.contains("hop 2"), "{text}");
    // reqwest follows http and https only: another scheme's Location is the answer.
    let (code, text) = doctor(&[&format!("{uri}/mail")], &[]).await;
    assert_eq!(code, 0, "{text}");
    assert!(!text.contains("s3cret"), "{text}");
    let (code, _) = doctor(&["--max-redirects", "18446744073709551615", &uri], &[]).await;
    assert_eq!(code, 2, "out of range is a wrong command line");
}

#[tokio::test]
async fn a_name_that_does_not_resolve_is_dns() {
    let (code, doc) = doctor_json(&["--timeout", "3", "http://no-such-host.invalid/"], &[]).await;
    assert_eq!(code, 5, "{doc:#}");
    assert_eq!(steps(&doc, 1, "dns")[0]["ok"], false);
    assert_eq!(verdict(&doc, "outcome"), "dns_failed");
}

#[tokio::test]
async fn tls_failures_after_the_connection_are_tls_not_connect() {
    // Accepts, reads the ClientHello, closes.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let closing = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut buf = [0u8; 1024];
            let _ = stream.read(&mut buf).await;
        }
    });
    let (code, doc) = doctor_json(&[&format!("https://{closing}/")], &[]).await;
    assert_eq!(code, 7, "{doc:#}");
    assert_eq!(steps(&doc, 1, "connect")[0]["ok"], true);
    assert_eq!(steps(&doc, 1, "tls")[0]["ok"], false);
    // Accepts and never answers the handshake.
    let hang = FaultServer::start(Fault::Hang).await;
    let url = hang.url("/").replacen("http://", "https://", 1);
    let (code, doc) = doctor_json(&["--timeout", "1", &url], &[]).await;
    assert_eq!(code, 7, "{doc:#}");
    assert_eq!(steps(&doc, 1, "tls")[0]["check"], "no_answer", "{doc:#}");
}

#[tokio::test]
async fn a_connection_that_gets_no_answer_is_a_firewall() {
    // A listener whose accept queue is full drops new SYNs, as a firewall does.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = socket.local_addr().unwrap();
    let _listener = socket.listen(0).unwrap();
    let mut held = Vec::new();
    for _ in 0..8 {
        match std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_millis(300)) {
            Ok(stream) => held.push(stream),
            Err(_) => break,
        }
    }
    let url = format!("http://{addr}/");
    let (code, doc) = doctor_json(&["--timeout", "1", "--repeat", "1", &url], &[]).await;
    assert_eq!(code, 6, "{doc:#}");
    assert_eq!(
        steps(&doc, 1, "connect")[0]["error"],
        "no_answer",
        "{doc:#}"
    );
    assert_eq!(verdict(&doc, "cause"), "firewall", "{doc:#}");
    // The default client's attempts meet the same silence, each a connection failure (the
    // attempt's own timer never beats the connection's).
    let run = &doc["repeat"][0];
    assert_eq!(run["outcome"], "connect_failed", "{doc:#}");
    let attempts = run["attempts"].as_array().unwrap();
    assert!(!attempts.is_empty());
    assert!(
        attempts.iter().all(|a| a["error"] == "connect_failed"),
        "{doc:#}"
    );
    drop(held);
}

#[tokio::test]
async fn a_closed_pipe_ends_the_output_not_the_program() {
    let hang = FaultServer::start(Fault::Hang).await;
    let url = hang.url("/");
    let code = tokio::task::spawn_blocking(move || {
        let mut child = Command::new(env!("CARGO_BIN_EXE_gateway-doctor"))
            .args(["--timeout", "1", &url])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn");
        drop(child.stdout.take());
        child.wait().expect("wait").code()
    })
    .await
    .unwrap();
    assert_eq!(code, Some(8), "no panic on a closed pipe");
}

/// A forward proxy that opens `CONNECT` tunnels (and answers `407` when `password` is given
/// and the request does not carry it), on loopback.
async fn connect_proxy(password: Option<&'static str>) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
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
                let head = String::from_utf8_lossy(&head).into_owned();
                let target = head.split_whitespace().nth(1).unwrap_or("").to_owned();
                if let Some(password) = password {
                    let expected = format!("user:{password}");
                    let token = head
                        .lines()
                        .find_map(|l| l.strip_prefix("Proxy-Authorization: Basic "))
                        .map(str::trim)
                        .and_then(|t| {
                            use base64::Engine as _;
                            base64::engine::general_purpose::STANDARD.decode(t).ok()
                        });
                    if token.as_deref() != Some(expected.as_bytes()) {
                        let _ = client
                            .write_all(b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"p\"\r\ncontent-length: 0\r\n\r\n")
                            .await;
                        return;
                    }
                }
                let Ok(mut upstream) = tokio::net::TcpStream::connect(target).await else {
                    let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n").await;
                    return;
                };
                let _ = client
                    .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    .await;
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn through_a_tunnelling_proxy_the_origins_certificate_is_checked() {
    let pki = Pki::new();
    let (server, ca) = tls_server(&pki, Leaf::Expired).await;
    let ca = ca.to_str().unwrap();
    let proxy = connect_proxy(Some("pr0xy-pass")).await;
    let with_credentials = format!("http://user:pr0xy-pass@{proxy}");
    let env = [("HTTPS_PROXY", with_credentials.as_str())];
    let (code, doc) = doctor_json(&["--cacert", ca, &server.url("/")], &env).await;
    assert_eq!(code, 7, "{doc:#}");
    assert_eq!(steps(&doc, 1, "tunnel")[0]["ok"], true, "{doc:#}");
    assert_eq!(steps(&doc, 1, "tls")[0]["check"], "expired", "{doc:#}");
    assert!(!doc.to_string().contains("pr0xy-pass"));
    let (_, text) = doctor(&["--cacert", ca, &server.url("/")], &env).await;
    assert!(
        text.contains("tunnel") && text.contains(": open in"),
        "{text}"
    );
    assert!(!text.contains("pr0xy-pass"), "{text}");

    // Without the credentials the proxy refuses the tunnel: the proxy's hop.
    let without = format!("http://{proxy}");
    let env = [("HTTPS_PROXY", without.as_str())];
    let (code, doc) = doctor_json(&["--cacert", ca, &server.url("/")], &env).await;
    assert_eq!(code, 4, "{doc:#}");
    assert_eq!(steps(&doc, 1, "tunnel")[0]["status"], 407, "{doc:#}");
    assert_eq!(verdict(&doc, "failed_hop_kind"), "forward_proxy", "{doc:#}");
}
