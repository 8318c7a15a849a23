//! WebSocket handshakes through the client's policies, against local tokio-tungstenite servers.
#![cfg(feature = "websocket")]

mod support;

use futures_util::{SinkExt, StreamExt};
use reqwest_resilience::retry::{ExponentialBackoff, RetryPolicy};
use reqwest_resilience::{Client, ErrorKind, GatewayError, Substatus};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use support::{Fault, FaultServer, refused_url};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

fn client() -> Client {
    Client::builder()
        .retry(RetryPolicy::default().backoff(ExponentialBackoff::new(Duration::from_millis(1))))
        .build()
        .unwrap()
}

/// An echo server; returns its `host:port` and how many handshakes it accepted.
async fn echo_server() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let count = count.clone();
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
                    return;
                };
                count.fetch_add(1, Ordering::SeqCst);
                while let Some(Ok(msg)) = ws.next().await {
                    if msg.is_text() || msg.is_binary() {
                        let _ = ws.send(msg).await;
                    }
                }
            });
        }
    });
    (addr, accepted)
}

#[tokio::test]
async fn echo_works() {
    let (addr, accepted) = echo_server().await;
    let (mut socket, _) = client()
        .websocket(format!("ws://{addr}/chat"))
        .connect()
        .await
        .unwrap();
    socket.send(Message::text("hello")).await.unwrap();
    let echo = socket.next().await.unwrap().unwrap();
    assert_eq!(echo.into_text().unwrap().as_str(), "hello");
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn an_iis_502_5_page_is_websocket_and_retried() {
    let page = "<h3>HTTP Error 502.5 - Bad Gateway</h3><h4>The WebSocket connection failed</h4>";
    let answer = format!(
        "HTTP/1.1 502 Bad Gateway\r\nServer: Microsoft-IIS/10.0\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{page}",
        page.len()
    );
    let server = FaultServer::start(Fault::Raw(answer.into_bytes())).await;
    let err = client()
        .websocket(server.url("/ws").replace("http", "ws"))
        .connect()
        .await
        .unwrap_err();
    assert!(matches!(err, GatewayError::WebSocket(_)), "{err:?}");
    assert_eq!(err.substatus(), Some(Substatus::WebSocket));
    assert_eq!(server.hits(), 3, "a handshake is a GET: retried");
}

#[tokio::test]
async fn a_200_without_upgrade_is_websocket() {
    let server = FaultServer::start(Fault::Raw(
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi".to_vec(),
    ))
    .await;
    let err = client()
        .websocket(server.url("/ws"))
        .connect()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::WebSocket, "{err:?}");
    assert_eq!(err.response().unwrap().status().as_u16(), 200);
    assert_eq!(server.hits(), 1);
}

#[tokio::test]
async fn a_wrong_accept_key_is_websocket() {
    let server = FaultServer::start(Fault::Raw(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: bm90IHRoZSByaWdodCBrZXk=\r\n\r\n".to_vec(),
    ))
    .await;
    let err = client()
        .websocket(server.url("/ws"))
        .connect()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::WebSocket, "{err:?}");
    assert!(err.to_string().contains("Sec-WebSocket-Accept"), "{err}");
}

#[tokio::test]
async fn a_connection_closed_mid_handshake_is_websocket() {
    let server = FaultServer::start(Fault::CloseAfterRequest).await;
    let err = client()
        .websocket(server.url("/ws"))
        .connect()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::WebSocket, "{err:?}");
    assert_eq!(
        err.last_cause().map(GatewayError::kind),
        Some(ErrorKind::ConnectionClosed)
    );
    assert_eq!(server.hits(), 3);
}

#[tokio::test]
async fn refused_keeps_its_transport_cause() {
    let url = refused_url("/ws").await;
    let err = client()
        .websocket(url.replace("http", "ws"))
        .no_retry()
        .connect()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectFailed);
}

#[tokio::test]
async fn a_dead_primary_fails_over_to_a_healthy_fallback() {
    let (addr, accepted) = echo_server().await;
    let dead = refused_url("").await;
    let client = Client::builder()
        .fallback_servers([dead.clone(), format!("http://{addr}")])
        .build()
        .unwrap();
    let (mut socket, _) = client
        .websocket(format!("{}/chat", dead.replace("http", "ws")))
        .connect()
        .await
        .unwrap();
    socket.send(Message::text("via fallback")).await.unwrap();
    assert_eq!(
        socket
            .next()
            .await
            .unwrap()
            .unwrap()
            .into_text()
            .unwrap()
            .as_str(),
        "via fallback"
    );
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

/// A server that chooses a subprotocol: the first of `preferred` that the client offered, or
/// (when `force` is set) that one whatever was offered. Returns its address and what the
/// client offered.
async fn choosing_server(
    preferred: &'static [&'static str],
    force: Option<&'static str>,
) -> (std::net::SocketAddr, Arc<std::sync::Mutex<Option<String>>>) {
    use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let offered: Arc<std::sync::Mutex<Option<String>>> = Arc::default();
    let seen = offered.clone();
    tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        // The callback's signature is tungstenite's, large error type included.
        #[allow(clippy::result_large_err)]
        let choose = move |request: &Request, mut response: Response| {
            let offer = request
                .headers()
                .get("sec-websocket-protocol")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let chosen = force.or_else(|| {
                let offer = offer.clone().unwrap_or_default();
                let offered: Vec<&str> = offer.split(',').map(str::trim).collect();
                preferred.iter().copied().find(|p| offered.contains(p))
            });
            *seen.lock().unwrap() = offer;
            if let Some(chosen) = chosen {
                response
                    .headers_mut()
                    .insert("sec-websocket-protocol", chosen.parse().unwrap());
            }
            Ok(response)
        };
        let _ws = tokio_tungstenite::accept_hdr_async(stream, choose).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
    });
    (addr, offered)
}

#[tokio::test]
async fn subprotocols_are_offered_and_reported() {
    let (addr, offered) = choosing_server(&["chat.v3", "chat.v1", "chat.v2"], None).await;
    let (_socket, handshake) = client()
        .websocket(format!("ws://{addr}/"))
        .protocols(["chat.v2", "chat.v1"])
        .connect()
        .await
        .unwrap();
    assert_eq!(
        offered.lock().unwrap().as_deref(),
        Some("chat.v2, chat.v1"),
        "the client offered its protocols, in order"
    );
    // The server's preference among those offered.
    assert_eq!(handshake.protocol(), Some("chat.v1"));
}

/// A server that answers with a subprotocol the client did not offer is refused: the
/// handshake fails as a WebSocket failure that names the reason.
#[tokio::test]
async fn a_subprotocol_that_was_not_offered_is_refused() {
    let (addr, _) = choosing_server(&[], Some("chat.v3")).await;
    let err = client()
        .websocket(format!("ws://{addr}/"))
        .protocols(["chat.v1"])
        .connect()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::WebSocket, "{err}");
    assert!(err.to_string().contains("not offered"), "{err}");
}
