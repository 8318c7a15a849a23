//! The sizes of the futures a caller holds. A caller's future that awaits `send()` and then
//! reads the body holds these whole, and is often boxed (a spawned task, a `Box::pin`): glibc
//! serves an allocation of up to 1,032 bytes from its per-thread cache, and one larger costs
//! several hundred instructions more to make and to free (see BENCHMARKS.md, "eleventh
//! session"). These bounds keep the crate's share under that line. Counted, not timed.

use reqwest_resilience::{Client, Response};
use std::mem::size_of_val;

/// A caller's future shaped as the benchmark's client (`../shared/bench-anchors`, client E):
/// send, keep the status, read the whole body, turn a failure into text. Never polled: only
/// its size is looked at.
#[allow(clippy::manual_async_fn)] // the benchmark's shape: an `async move` block
fn send_then_bytes(client: &Client, url: &str) -> impl Future<Output = Result<u16, String>> {
    async move {
        match client.get(url).send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                response.bytes().await.map_err(|e| e.to_string())?;
                Ok(status)
            }
            Err(err) => Ok(err.status().as_u16()),
        }
    }
}

/// The same, reading the body as text.
#[allow(clippy::manual_async_fn)] // the benchmark's shape: an `async move` block
fn send_then_text(client: &Client, url: &str) -> impl Future<Output = Result<usize, String>> {
    async move {
        match client.get(url).send().await {
            Ok(response) => Ok(response.text().await.map_err(|e| e.to_string())?.len()),
            Err(err) => Ok(usize::from(err.status().as_u16())),
        }
    }
}

/// Asserts that a caller's future of `size` bytes is at most `limit`.
fn assert_caller_fits(size: usize, limit: usize) {
    assert!(
        size <= limit,
        "the caller's future is {size} bytes (limit {limit})"
    );
}

#[test]
fn a_future_that_sends_and_reads_the_body_as_text_fits_the_allocators_per_thread_cache() {
    let client = Client::builder().build().expect("client");
    // As for `bytes()` (below): reqwest's own `text()` made it 1,472 bytes.
    assert_caller_fits(
        size_of_val(&send_then_text(&client, "http://127.0.0.1:9/")),
        960,
    );
}

#[test]
fn a_future_that_sends_and_reads_the_body_fits_the_allocators_per_thread_cache() {
    let client = Client::builder().build().expect("client");
    // 1,032 bytes is glibc's largest cached size; the bound leaves the caller some room (it
    // was 1,048 before the body read was written with one await point).
    assert_caller_fits(
        size_of_val(&send_then_bytes(&client, "http://127.0.0.1:9/")),
        960,
    );
}

/// A real response with `body` (to size the reads of its body), and its server, which must
/// live while the body is read.
async fn answered(client: &Client, body: &str) -> (wiremock::MockServer, Response) {
    let server = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::method("GET"))
        .respond_with(wiremock::ResponseTemplate::new(200).set_body_string(body))
        .mount(&server)
        .await;
    let response = client.get(server.uri()).send().await.expect("response");
    (server, response)
}

/// Asserts that a body read (`what`) of `read_size` bytes holds its response of
/// `response_size` bytes once: at most `extra` bytes besides it.
fn assert_holds_the_response_once(
    what: &str,
    read_size: usize,
    response_size: usize,
    extra: usize,
) {
    assert!(
        read_size <= response_size + extra,
        "the {what} read is {read_size} bytes for a {response_size}-byte response"
    );
}

#[tokio::test]
async fn the_whole_body_read_holds_the_response_once() {
    let client = Client::builder().build().expect("client");
    let (_server, response) = answered(&client, "hello").await;
    let response_size = std::mem::size_of_val(&response);
    let read = response.bytes();
    let read_size = size_of_val(&read);
    // The response, what came so far and one chunk read in flight: an `async fn` taking the
    // response would hold it twice (over 500 bytes).
    assert_holds_the_response_once("body", read_size, response_size, 160);
    assert_eq!(read.await.expect("body"), "hello");
}

#[tokio::test]
async fn the_whole_body_read_as_text_holds_the_response_once() {
    let client = Client::builder().build().expect("client");
    let (_server, response) = answered(&client, "h\u{e9}llo").await;
    let response_size = std::mem::size_of_val(&response);
    let read = response.text();
    let read_size = size_of_val(&read);
    // The body read as `bytes()` reads it, and the encoding: reqwest's own `text()` future
    // holds the response twice (over 500 bytes).
    assert_holds_the_response_once("text", read_size, response_size, 176);
    assert_eq!(read.await.expect("body"), "h\u{e9}llo");
}

/// The same, reading the body as JSON.
#[cfg(feature = "json")]
#[allow(clippy::manual_async_fn)] // the benchmark's shape: an `async move` block
fn send_then_json(
    client: &Client,
    url: &str,
) -> impl Future<Output = Result<serde_json::Value, String>> {
    async move {
        match client.get(url).send().await {
            Ok(response) => response.json().await.map_err(|e| e.to_string()),
            Err(err) => Err(err.to_string()),
        }
    }
}

#[cfg(feature = "json")]
#[tokio::test]
async fn the_body_read_as_json_holds_the_response_once() {
    let client = Client::builder().build().expect("client");
    // 624 bytes when written; reqwest's own `json()` made it 936.
    assert_caller_fits(
        size_of_val(&send_then_json(&client, "http://127.0.0.1:9/")),
        800,
    );
    let (_server, response) = answered(&client, "[1, 2]").await;
    let response_size = std::mem::size_of_val(&response);
    let read = response.json::<Vec<u32>>();
    let read_size = size_of_val(&read);
    assert_holds_the_response_once("JSON", read_size, response_size, 176);
    assert_eq!(read.await.expect("body"), vec![1, 2]);
}
