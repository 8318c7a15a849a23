//! The `Response` a `Client` hands back: its body read chunk by chunk or as a stream within
//! the deadline, its failures `GatewayError`s, its attempts, its status judged on request; and
//! the layers used as a service (no `Response` there) still bounding the body themselves.
//! Real TCP servers for the bodies that stall; wiremock for the rest.

mod support;

use futures_util::StreamExt;
use reqwest_resilience::{Client, ErrorKind, GatewayError, Request};
use std::time::Duration;
use support::{Fault, FaultServer};
use tower::ServiceExt;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

/// A head announcing 100 bytes, 3 of them sent, then nothing: the body stalls.
const STALLS: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc";

/// The default client, retrying after 1 ms.
fn retrying_fast() -> Client {
    Client::builder()
        .retry(reqwest_resilience::retry::RetryPolicy::default().backoff(
            reqwest_resilience::retry::ExponentialBackoff::new(Duration::from_millis(1)),
        ))
        .build()
        .unwrap()
}

fn short_deadline() -> Client {
    Client::builder()
        .deadline(Duration::from_millis(300))
        .build()
        .unwrap()
}

#[tokio::test]
async fn chunks_come_until_the_deadline_ends_the_body() {
    let server = FaultServer::start(Fault::RawThenStall(STALLS.to_vec())).await;
    let mut response = short_deadline().get(server.url("/")).send().await.unwrap();
    let first = response.chunk().await.unwrap();
    assert_eq!(first.as_deref(), Some(&b"abc"[..]));
    let err = tokio::time::timeout(Duration::from_secs(5), response.chunk())
        .await
        .expect("the deadline must end the read")
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::DeadlineExceeded, "{err}");
    assert_eq!(err.attempts(), 1, "{err}");
    // The body is over after its error; what is left of it is that error again, not a
    // shorter body.
    assert_eq!(response.chunk().await.unwrap(), None);
    let again = response.bytes().await.unwrap_err();
    assert_eq!(again.kind(), ErrorKind::DeadlineExceeded, "{again}");
}

#[tokio::test]
async fn a_stream_of_chunks_ends_with_the_deadline() {
    let server = FaultServer::start(Fault::RawThenStall(STALLS.to_vec())).await;
    let response = short_deadline().get(server.url("/")).send().await.unwrap();
    let mut stream = response.bytes_stream();
    assert_eq!(stream.next().await.unwrap().unwrap(), &b"abc"[..]);
    let err = tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .expect("the deadline must end the stream")
        .expect("an error before the end")
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::DeadlineExceeded, "{err}");
    assert!(
        stream.next().await.is_none(),
        "the stream ends after its error"
    );
}

#[tokio::test]
async fn a_stream_cut_short_is_a_closed_connection() {
    let server = FaultServer::start(Fault::RawThenReset(STALLS.to_vec())).await;
    let response = Client::new().get(server.url("/")).send().await.unwrap();
    let chunks: Vec<Result<bytes::Bytes, GatewayError>> = response.bytes_stream().collect().await;
    let err = chunks
        .into_iter()
        .find_map(Result::err)
        .expect("the reset is an error of the stream");
    assert_eq!(err.kind(), ErrorKind::ConnectionClosed, "{err}");
}

/// Without a deadline nothing bounds the body, and its failures are still the request's.
#[tokio::test]
async fn without_a_deadline_a_truncated_body_is_still_a_closed_connection() {
    let server = FaultServer::start(Fault::Raw(STALLS.to_vec())).await;
    let client = Client::builder().no_deadline().build().unwrap();
    let response = client.post(server.url("/")).body("x").send().await.unwrap();
    let err = response.bytes().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionClosed, "{err}");
    assert!(
        !err.is_retryable(),
        "a POST that was answered may not be sent again: {err}"
    );
    // The failure names the server, as a read of the whole body by reqwest does.
    let server_url = server.url("/");
    let named = err.server().expect("the body's failure names its server");
    assert!(
        server_url.starts_with(named.trim_end_matches('/')),
        "{named} {server_url}"
    );
}

#[tokio::test]
async fn a_response_says_how_many_attempts_it_took() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(502))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_string("ok"))
        .mount(&server)
        .await;
    let client = retrying_fast();
    let response = client.get(server.uri()).send().await.unwrap();
    assert_eq!(response.attempts(), 2);
    assert_eq!(reqwest_resilience::attempts(&response), 2);
    assert_eq!(response.text().await.unwrap(), "ok");

    let response = client.get(server.uri()).send().await.unwrap();
    assert_eq!(response.attempts(), 1);
}

#[tokio::test]
async fn error_for_status_judges_the_status_and_keeps_a_success() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(404))
        .mount(&server)
        .await;
    let client = Client::new();
    let response = client.get(server.uri()).send().await.unwrap();
    assert_eq!(response.status(), 404, "an origin's 404 is its answer");
    let err = response.error_for_status().unwrap_err();
    assert_eq!(err.status(), 404, "{err}");

    let ok = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_string("fine"))
        .mount(&ok)
        .await;
    let response = client.get(ok.uri()).send().await.unwrap();
    let response = response.error_for_status().unwrap();
    assert_eq!(response.text().await.unwrap(), "fine");
}

/// The client's stack used as a service hands back a `reqwest::Response`: there the deadline
/// layer bounds the body itself (what a `Client` leaves to its `Response` is not left undone).
#[tokio::test]
async fn the_stack_as_a_service_still_bounds_the_body() {
    let server = FaultServer::start(Fault::RawThenStall(STALLS.to_vec())).await;
    let service = short_deadline().into_service();
    let request = Request::from(reqwest::Client::new().get(server.url("/")).build().unwrap());
    let response: reqwest::Response = service.oneshot(request).await.unwrap();
    let err = tokio::time::timeout(Duration::from_secs(5), response.bytes())
        .await
        .expect("the deadline layer must end the body read")
        .unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
    assert_eq!(GatewayError::from(err).kind(), ErrorKind::DeadlineExceeded);
}

/// A request's own shorter deadline bounds its body, not the client's.
#[tokio::test]
async fn a_requests_own_deadline_bounds_its_body() {
    let server = FaultServer::start(Fault::RawThenStall(STALLS.to_vec())).await;
    let client = Client::builder()
        .deadline(Duration::from_secs(60))
        .build()
        .unwrap();
    let response = client
        .get(server.url("/"))
        .deadline(Duration::from_millis(300))
        .send()
        .await
        .unwrap();
    let err = tokio::time::timeout(Duration::from_secs(5), response.text())
        .await
        .expect("the request's deadline must end the body read")
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::DeadlineExceeded, "{err}");
    assert!(err.to_string().contains("300 ms"), "{err}");
}

/// A request that does not build fails when awaited, with the reason.
#[tokio::test]
async fn a_request_that_does_not_build_fails_when_awaited() {
    let pending = Client::new().get("not a url").send();
    let err = pending.await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidRequest, "{err}");
}

/// A request's future does nothing until polled: made outside a runtime it does not panic
/// (no timer is made before the first poll), and its deadline starts when it is polled.
#[test]
fn a_request_future_made_outside_a_runtime_runs_when_polled() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let server = rt.block_on(async {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(200).set_body_string("late but fine"))
            .mount(&server)
            .await;
        server
    });
    let client = Client::builder()
        .deadline(Duration::from_millis(200))
        .build()
        .unwrap();
    // Made here, outside the runtime, and polled only after its deadline would have passed
    // had it started at `send()`.
    let pending = client.get(server.uri()).send();
    std::thread::sleep(Duration::from_millis(300));
    let body = rt.block_on(async { pending.await.unwrap().text().await.unwrap() });
    assert_eq!(body, "late but fine");
    assert_eq!(server_hits(&rt, &server), 1);
}

fn server_hits(rt: &tokio::runtime::Runtime, server: &MockServer) -> usize {
    rt.block_on(server.received_requests()).unwrap().len()
}

/// The request's span is made when its future is first polled, inside the span current then:
/// `send().instrument(span)` puts the request's events under `span`.
#[tokio::test]
async fn the_request_runs_inside_the_span_it_is_polled_in() {
    use tracing::Instrument;
    let (capture, _guard) = support::LogCapture::install(tracing::Level::INFO);
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(502))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let client = retrying_fast();
    let pending = client.get(server.uri()).send();
    let response = pending
        .instrument(tracing::info_span!("checkout"))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let text = capture.text();
    let retrying = text
        .lines()
        .find(|l| l.contains("retrying"))
        .unwrap_or_else(|| panic!("a retry event: {text}"));
    assert!(
        retrying.contains("checkout"),
        "the retry is told inside the caller's span: {retrying}"
    );
}

/// A request's own `Duration::ZERO` deadline turns the deadline off for its body too.
#[tokio::test]
async fn a_request_without_a_deadline_reads_its_body_unbounded() {
    let server = FaultServer::start(Fault::RawThenStall(STALLS.to_vec())).await;
    let response = short_deadline()
        .get(server.url("/"))
        .deadline(Duration::ZERO)
        .send()
        .await
        .unwrap();
    let read = tokio::time::timeout(Duration::from_secs(1), response.bytes()).await;
    assert!(
        read.is_err(),
        "no deadline bounds the body: the read still waits after the client's 300 ms"
    );
}

/// A body failure reports the logical request: its method and every attempt it took.
#[tokio::test]
async fn a_body_failure_after_a_retry_counts_both_attempts() {
    let server = FaultServer::start(Fault::FirstThen(
        b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n".to_vec(),
        STALLS.to_vec(),
    ))
    .await;
    let client = retrying_fast();
    let response = client.get(server.url("/")).send().await.unwrap();
    assert_eq!(response.attempts(), 2);
    let err = response.bytes().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionClosed, "{err}");
    assert_eq!(err.attempts(), 2, "{err}");
    assert!(err.to_string().contains("after 2 attempts"), "{err}");
}

#[tokio::test]
async fn a_whole_body_read_is_every_chunk_in_order() {
    // One byte at a time, so that the body arrives in many chunks; then a chunked body whose
    // chunks come together; then an empty one.
    let slow = FaultServer::start(Fault::Slow(
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789".to_vec(),
        Duration::from_millis(2),
    ))
    .await;
    let chunked = FaultServer::start(Fault::Raw(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n3\r\ndef\r\n1\r\ng\r\n0\r\n\r\n"
            .to_vec(),
    ))
    .await;
    let empty = FaultServer::start(Fault::Raw(
        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n".to_vec(),
    ))
    .await;
    let client = Client::builder().no_retry().build().unwrap();
    let read = |url: String| {
        let client = client.clone();
        async move { client.get(url).send().await.unwrap().bytes().await.unwrap() }
    };
    assert_eq!(read(slow.url("/")).await, "0123456789");
    assert_eq!(read(chunked.url("/")).await, "abcdefg");
    assert_eq!(read(empty.url("/")).await, "");
}

/// `text()` and `text_with_charset()` decode exactly as reqwest's own do (they read the body
/// as `bytes()` does, then decode it): the `Content-Type`'s charset, a byte order mark, an
/// unknown charset, bytes that are not valid in the charset, an empty body.
#[cfg(feature = "charset")]
#[tokio::test]
async fn text_decodes_as_reqwest_does() {
    let cases: [(Option<&str>, &[u8]); 11] = [
        (Some("text/plain; charset=iso-8859-1"), b"caf\xe9"),
        (None, "h\u{e9}llo".as_bytes()),
        (Some("text/plain"), b"\xef\xbb\xbfabc"),
        (
            Some("text/plain; charset=iso-8859-1"),
            b"\xff\xfeh\x00i\x00",
        ),
        (Some("text/plain; charset=utf-8"), b"f\xffo"),
        (Some("text/plain; charset=x-nonsense"), b"caf\xc3\xa9"),
        (
            Some("application/json; charset=\"Shift_JIS\""),
            b"\x82\xa0\x82\xa2",
        ),
        (Some("text/plain; charset=utf-16le"), b"h\x00i\x00"),
        (Some("not a media type"), b"caf\xe9"),
        (None, b"caf\xe9"),
        (Some("text/plain"), b""),
    ];
    let client = Client::builder().build().unwrap();
    let raw = reqwest::Client::new();
    for (content_type, body) in cases {
        let server = MockServer::start().await;
        let mut answer = ResponseTemplate::new(200).set_body_bytes(body.to_vec());
        if let Some(content_type) = content_type {
            answer = answer.insert_header("content-type", content_type);
        }
        Mock::given(method("GET"))
            .respond_with(answer)
            .mount(&server)
            .await;
        let url = server.uri();
        let expected = raw.get(&url).send().await.unwrap().text().await.unwrap();
        let got = client.get(&url).send().await.unwrap().text().await.unwrap();
        assert_eq!(got, expected, "{content_type:?} {body:?}");
        let theirs = raw.get(&url).send().await.unwrap();
        let expected = theirs.text_with_charset("windows-1252").await.unwrap();
        let ours = client.get(&url).send().await.unwrap();
        let got = ours.text_with_charset("windows-1252").await.unwrap();
        assert_eq!(got, expected, "with a default: {content_type:?} {body:?}");
    }
}

/// `json()` parses as reqwest's own does and fails as it does: the same value, or a decode
/// failure whose cause is reqwest's own decode error with the same words.
#[cfg(feature = "json")]
#[tokio::test]
async fn json_parses_and_fails_as_reqwest_does() {
    #[derive(Debug, PartialEq, serde::Deserialize)]
    struct Order {
        id: u32,
        items: Vec<String>,
    }
    let bodies: [&[u8]; 7] = [
        br#"{"id": 7, "items": ["a", "b"]}"#,
        br#"{"id": 7, "items": ["a", "b"],}"#,
        br#"{"id": "seven", "items": []}"#,
        br#"[1, 2, 3]"#,
        b"",
        b"\xef\xbb\xbf{\"id\": 1, \"items\": []}",
        b"{\"id\": 1, \"items\": [\"caf\xe9\"]}",
    ];
    let client = Client::builder().build().unwrap();
    let raw = reqwest::Client::new();
    for body in bodies {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(
                ResponseTemplate::new(200)
                    .insert_header("content-type", "application/json")
                    .set_body_bytes(body.to_vec()),
            )
            .mount(&server)
            .await;
        let url = server.uri();
        let expected = raw.get(&url).send().await.unwrap().json::<Order>().await;
        let got = client.get(&url).send().await.unwrap().json::<Order>().await;
        match (expected, got) {
            (Ok(expected), Ok(got)) => assert_eq!(got, expected),
            (Err(expected), Err(got)) => {
                assert_eq!(got.kind(), ErrorKind::Decode, "{got}");
                assert!(!got.is_retryable(), "{got}");
                let cause = std::error::Error::source(&got)
                    .and_then(|cause| cause.downcast_ref::<reqwest::Error>())
                    .expect("reqwest's own error as the cause");
                assert!(cause.is_decode(), "{cause}");
                assert_eq!(
                    std::error::Error::source(cause).map(ToString::to_string),
                    std::error::Error::source(&expected).map(ToString::to_string),
                    "{body:?}"
                );
            }
            (expected, got) => panic!("{body:?}: reqwest {expected:?}, the crate {got:?}"),
        }
    }
}

/// A body read polled again after it ended says so (an error), as the crate's other futures
/// do, instead of polling a finished read (a panic).
#[tokio::test]
async fn a_body_read_polled_after_it_ended_says_so() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_string("hello"))
        .mount(&server)
        .await;
    let client = Client::builder().build().unwrap();
    let response = client.get(server.uri()).send().await.unwrap();
    let mut read = std::pin::pin!(response.bytes());
    assert_eq!((&mut read).await.unwrap(), "hello");
    let again = std::future::poll_fn(|cx| read.as_mut().poll(cx)).await;
    let err = again.unwrap_err();
    assert!(err.to_string().contains("polled after it ended"), "{err}");
}
