//! Test support: a real TCP server on loopback that fails in the ways a peer can.
#![allow(dead_code)]

pub mod fixtures;
pub mod gateways;
pub mod process;
pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The environment variables that give reqwest a forward proxy, or take it away.
pub const PROXY_VARS: [&str; 8] = [
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "ALL_PROXY",
    "all_proxy",
    "NO_PROXY",
    "no_proxy",
];

/// How the server treats each connection.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Accept, read the request head, then reset (RST via SO_LINGER 0).
    Reset,
    /// Accept, read the request head, then close without answering (FIN).
    CloseAfterRequest,
    /// Answer bytes that are not HTTP, then close.
    Garbage,
    /// Answer a response head, then stall forever.
    HeadThenStall,
    /// Answer a head announcing 100 body bytes, send 3, then reset.
    TruncatedBodyThenReset,
    /// Read the request and never answer (counts the client closing the connection).
    Hang,
    /// Answer `200` with a header block of about 1 MiB.
    OversizedHeaders,
    /// Answer `503` with this `Retry-After` value.
    RetryAfter(String),
    /// Answer these exact bytes, then close.
    Raw(Vec<u8>),
    /// Answer these exact bytes, then stall without closing.
    RawThenStall(Vec<u8>),
    /// Answer these exact bytes, then reset (RST).
    RawThenReset(Vec<u8>),
    /// Answer these bytes to the first request and the second to every later one, then close.
    FirstThen(Vec<u8>, Vec<u8>),
    /// Answer one byte at a time with this pause between bytes.
    Slow(Vec<u8>, Duration),
}

/// A running fault server; it stops when dropped.
pub struct FaultServer {
    pub addr: SocketAddr,
    hits: Arc<AtomicUsize>,
    closed: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl FaultServer {
    pub async fn start(fault: Fault) -> FaultServer {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        let hits = Arc::new(AtomicUsize::new(0));
        let closed = Arc::new(AtomicUsize::new(0));
        let (counter, closes) = (hits.clone(), closed.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let fault = fault.clone();
                let (counter, closes) = (counter.clone(), closes.clone());
                tokio::spawn(async move { serve(stream, fault, counter, closes).await });
            }
        });
        FaultServer {
            addr,
            hits,
            closed,
            task,
        }
    }

    /// `http://127.0.0.1:PORT` followed by `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Requests whose head was fully received.
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    /// Connections of `Fault::Hang` that the client closed.
    pub fn closed_by_client(&self) -> usize {
        self.closed.load(Ordering::SeqCst)
    }
}

impl Drop for FaultServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A loopback port with nothing listening: connections are refused.
///
/// The port stays bound (a socket that never listens, held until the test process ends), so
/// it keeps refusing: a port merely freed could be handed to another test's listener (CI once
/// met another test's fault server there, behind HAProxy), or be picked as a connection's own
/// source port (TCP's self-connect, which reads its own request back as the answer).
pub async fn refused_url(path: &str) -> String {
    static HELD: std::sync::Mutex<Vec<tokio::net::TcpSocket>> = std::sync::Mutex::new(Vec::new());
    let socket = tokio::net::TcpSocket::new_v4().expect("a TCP socket");
    socket
        .bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .expect("bind loopback");
    let addr = socket.local_addr().expect("local addr");
    HELD.lock().unwrap_or_else(|e| e.into_inner()).push(socket);
    format!("http://{addr}{path}")
}

async fn read_head(stream: &mut TcpStream) -> bool {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        if buf.windows(4).any(|w| w == b"\r\n\r\n") {
            return true;
        }
    }
}

fn reset(stream: TcpStream) {
    let _ = stream.set_zero_linger();
    drop(stream);
}

async fn serve(
    mut stream: TcpStream,
    fault: Fault,
    hits: Arc<AtomicUsize>,
    closed: Arc<AtomicUsize>,
) {
    if !read_head(&mut stream).await {
        return;
    }
    hits.fetch_add(1, Ordering::SeqCst);
    match fault {
        Fault::Reset => reset(stream),
        Fault::CloseAfterRequest => {
            let _ = stream.shutdown().await;
        }
        Fault::Garbage => {
            let _ = stream
                .write_all(b"SSH-2.0-OpenSSH_9.2\r\n\x00\x01\x02 not http\r\n\r\n")
                .await;
            let _ = stream.shutdown().await;
        }
        Fault::HeadThenStall => {
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n")
                .await;
            std::future::pending::<()>().await;
        }
        Fault::RawThenReset(bytes) => {
            let _ = stream.write_all(&bytes).await;
            let _ = stream.flush().await;
            tokio::time::sleep(Duration::from_millis(20)).await;
            reset(stream);
        }
        Fault::TruncatedBodyThenReset => {
            let _ = stream
                .write_all(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 100\r\n\r\nabc")
                .await;
            let _ = stream.flush().await;
            tokio::time::sleep(Duration::from_millis(20)).await;
            reset(stream);
        }
        Fault::Hang => {
            // Never answer; notice when the client goes away.
            let mut buf = [0u8; 256];
            while matches!(stream.read(&mut buf).await, Ok(n) if n > 0) {}
            closed.fetch_add(1, Ordering::SeqCst);
        }
        Fault::OversizedHeaders => {
            let mut head = b"HTTP/1.1 200 OK\r\n".to_vec();
            let filler = "x".repeat(1000);
            for i in 0..1050 {
                head.extend_from_slice(format!("X-Filler-{i}: {filler}\r\n").as_bytes());
            }
            head.extend_from_slice(b"Content-Length: 0\r\n\r\n");
            let _ = stream.write_all(&head).await;
            let _ = stream.shutdown().await;
        }
        Fault::RetryAfter(value) => {
            let answer = format!(
                "HTTP/1.1 503 Service Unavailable\r\nRetry-After: {value}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
            );
            let _ = stream.write_all(answer.as_bytes()).await;
            let _ = stream.shutdown().await;
        }
        Fault::Raw(bytes) => {
            let _ = stream.write_all(&bytes).await;
            let _ = stream.shutdown().await;
        }
        Fault::RawThenStall(bytes) => {
            let _ = stream.write_all(&bytes).await;
            let _ = stream.flush().await;
            std::future::pending::<()>().await;
        }
        Fault::FirstThen(first, later) => {
            let answer = if hits.load(Ordering::SeqCst) == 1 {
                first
            } else {
                later
            };
            let _ = stream.write_all(&answer).await;
            let _ = stream.shutdown().await;
        }
        Fault::Slow(bytes, pause) => {
            for b in bytes {
                if stream.write_all(&[b]).await.is_err() {
                    return;
                }
                tokio::time::sleep(pause).await;
            }
            let _ = stream.shutdown().await;
        }
    }
}

/// A wiremock server whose path `/` answers `first` once, then `then` for ever.
pub async fn once_then(
    first: wiremock::ResponseTemplate,
    then: wiremock::ResponseTemplate,
) -> wiremock::MockServer {
    use wiremock::{Mock, MockServer, matchers::path};
    let server = MockServer::start().await;
    Mock::given(path("/"))
        .respond_with(first)
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(path("/"))
        .respond_with(then)
        .with_priority(2)
        .mount(&server)
        .await;
    server
}

/// A DNS resolver that fails every lookup as a resolver does for a name that does not exist:
/// DNS failures pinned, whatever the machine's network and resolver do with `.invalid`.
pub struct NoSuchHost;

impl reqwest::dns::Resolve for NoSuchHost {
    fn resolve(&self, _name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        Box::pin(async {
            Err::<reqwest::dns::Addrs, _>(Box::new(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "failed to lookup address information: Name or service not known",
            ))
                as Box<dyn std::error::Error + Send + Sync>)
        })
    }
}

/// A reqwest client builder whose lookups all fail (no proxy, so the failure is the lookup's).
pub fn unresolving() -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .no_proxy()
        .dns_resolver(std::sync::Arc::new(NoSuchHost))
}

/// A server answering every request with nginx's own 502 page (its `Server` header and
/// template), counting them in `received_requests()`.
pub async fn nginx_502() -> wiremock::MockServer {
    let server = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::any())
        .respond_with(
            wiremock::ResponseTemplate::new(502)
                .insert_header("server", "nginx/1.22.1")
                .insert_header("content-type", "text/html")
                .set_body_string(
                    "<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center><hr><center>nginx/1.22.1</center></body></html>",
                ),
        )
        .mount(&server)
        .await;
    server
}

/// What a `tracing` fmt subscriber writes, kept in memory (its writer: `move || capture.clone()`).
#[derive(Clone, Default)]
#[allow(dead_code)]
pub struct LogCapture(pub std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

#[allow(dead_code)]
impl LogCapture {
    /// An fmt subscriber at `level` writing here, the default on this thread while the guard
    /// lives. Other tests of the binary hit the same callsites on other threads with no
    /// subscriber: every callsite's interest is read again now that this thread has one.
    pub fn install(level: tracing::Level) -> (LogCapture, tracing::subscriber::DefaultGuard) {
        // While a single subscriber is registered, `tracing` works out a callsite's interest
        // from the default of whichever thread reaches it first: another test's thread, with
        // none, would mark it "never" for this capture too. A second subscriber, registered
        // once (by `Dispatch::new`) and kept alive here, makes every callsite's interest the
        // union of all that are alive.
        static KEPT: std::sync::OnceLock<tracing::Dispatch> = std::sync::OnceLock::new();
        KEPT.get_or_init(|| tracing::Dispatch::new(tracing::subscriber::NoSubscriber::default()));
        let capture = LogCapture::default();
        let writer = capture.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(level)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        let guard = tracing::subscriber::set_default(subscriber);
        tracing::callsite::rebuild_interest_cache();
        (capture, guard)
    }

    /// Everything written so far, as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
