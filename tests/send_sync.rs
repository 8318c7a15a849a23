//! The public types and futures can cross threads: a compile-time check.

use reqwest_resilience::retry::{Retry, RetryLayer, RetryPolicy};
use reqwest_resilience::timeout::{AttemptTimeout, Deadline};
use reqwest_resilience::{Client, GatewayError, Transport};
use tower::Service;

fn send<T: Send>(_: &T) {}
fn send_sync<T: Send + Sync>() {}

#[test]
fn types_are_send_and_sync() {
    send_sync::<Client>();
    send_sync::<GatewayError>();
    send_sync::<RetryPolicy>();
    send_sync::<RetryLayer>();
    send_sync::<Transport>();
    send_sync::<Retry<Transport>>();
    send_sync::<Deadline<Transport>>();
    send_sync::<AttemptTimeout<Transport>>();
    send_sync::<reqwest_resilience::fallback::FallbackLayer>();
    send_sync::<reqwest_resilience::diagnosis::Diagnosis>();
    send_sync::<reqwest_resilience::Response>();
    send_sync::<reqwest_resilience::BytesStream>();
}

#[test]
fn the_request_future_is_send_and_unpin() {
    fn send_unpin<T: Send + Unpin>() {}
    send_unpin::<reqwest_resilience::Pending>();
}

#[tokio::test]
async fn futures_are_send() {
    let client = Client::new();
    let future = client.get("http://127.0.0.1:9/").send();
    send(&future);
    drop(future);
    let mut retry = RetryLayer::default().layer_on(Transport::default());
    let request =
        reqwest::Request::new(reqwest::Method::GET, "http://127.0.0.1:9/".parse().unwrap());
    let future = retry.call(request.into());
    send(&future);
    drop(future);
    #[cfg(feature = "websocket")]
    {
        let future = client.websocket("ws://127.0.0.1:9/").connect();
        send(&future);
    }
}

trait LayerOn: tower::Layer<Transport> + Sized {
    fn layer_on(&self, inner: Transport) -> Self::Service {
        self.layer(inner)
    }
}
impl<L: tower::Layer<Transport>> LayerOn for L {}

/// The body reads' futures cross threads (`bytes` and `text` own what they read, so they are
/// `'static` too). Type-checked, never run.
#[allow(dead_code)]
fn body_reads_are_send(
    a: reqwest_resilience::Response,
    b: reqwest_resilience::Response,
    mut c: reqwest_resilience::Response,
    #[cfg(feature = "json")] d: reqwest_resilience::Response,
) {
    fn send_static<T: Send + 'static>(_: &T) {}
    send_static(&a.bytes());
    send_static(&b.text());
    send(&c.chunk());
    #[cfg(feature = "json")]
    send_static(&d.json::<serde_json::Value>());
}
