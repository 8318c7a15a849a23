//! The circuit per host: every transition with paused time, one probe under concurrency, hosts
//! kept apart, what counts, bounded memory, and the client with real refused connections.

mod support;

use reqwest_resilience::circuit::CircuitLayer;
use reqwest_resilience::retry::RetryPolicy;
use reqwest_resilience::{Client, ErrorKind, GatewayError, Request};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use tokio::sync::Notify;
use tower::{Layer, Service, ServiceExt, service_fn};

fn get(url: &str) -> Request {
    reqwest::Request::new(reqwest::Method::GET, url.parse().unwrap()).into()
}

fn ok() -> reqwest::Response {
    reqwest::Response::from(http::Response::new(""))
}

/// What the scripted upstream does with the next request.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Fail,
    Succeed,
    Answer404,
}

/// A service that counts the requests reaching it per host and answers by `mode`.
#[derive(Clone)]
struct Upstream {
    mode: Arc<std::sync::Mutex<Mode>>,
    calls: Arc<AtomicU32>,
    hold: Option<Arc<Notify>>,
}

impl Upstream {
    fn new(mode: Mode) -> Upstream {
        Upstream {
            mode: Arc::new(std::sync::Mutex::new(mode)),
            calls: Arc::default(),
            hold: None,
        }
    }
    fn set(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }
    fn calls(&self) -> u32 {
        self.calls.load(Ordering::SeqCst)
    }
    fn service(
        &self,
    ) -> impl Service<
        Request,
        Response = reqwest::Response,
        Error = GatewayError,
        Future = impl Future<Output = Result<reqwest::Response, GatewayError>> + Send,
    > + Clone
    + Send
    + 'static {
        let this = self.clone();
        service_fn(move |req: Request| {
            let this = this.clone();
            async move {
                this.calls.fetch_add(1, Ordering::SeqCst);
                if let Some(hold) = &this.hold {
                    hold.notified().await;
                }
                let dead = req.url().host_str() == Some("dead.test");
                match *this.mode.lock().unwrap() {
                    Mode::Fail if dead || req.url().host_str() == Some("a.test") => Err(
                        GatewayError::new(ErrorKind::ForwarderConnection, "connection refused"),
                    ),
                    Mode::Answer404 => Ok(reqwest::Response::from(
                        http::Response::builder().status(404).body("").unwrap(),
                    )),
                    _ => Ok(ok()),
                }
            }
        })
    }
}

fn layer() -> CircuitLayer {
    CircuitLayer::new()
        .consecutive_failures(3)
        .open_for(Duration::from_secs(10))
        .max_open_for(Duration::from_secs(60))
}

async fn send<S>(svc: &mut S, url: &str) -> Result<reqwest::Response, GatewayError>
where
    S: Service<Request, Response = reqwest::Response, Error = GatewayError>,
{
    svc.ready().await?.call(get(url)).await
}

#[tokio::test(start_paused = true)]
async fn closed_open_half_open_closed() {
    let upstream = Upstream::new(Mode::Fail);
    let circuit = layer();
    let mut svc = circuit.layer(upstream.service());
    for _ in 0..3 {
        let err = send(&mut svc, "http://a.test/").await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ForwarderConnection);
    }
    assert!(circuit.is_open(&"http://a.test/x".parse().unwrap()));
    // Open: fails at once, nothing sent.
    let err = send(&mut svc, "http://a.test/").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::CircuitOpen, "{err}");
    assert!(err.is_request_unsent());
    assert!(err.to_string().contains("circuit"), "{err}");
    assert_eq!(
        err.last_cause().map(GatewayError::kind),
        Some(ErrorKind::ForwarderConnection)
    );
    assert_eq!(upstream.calls(), 3);
    // Still open just before the cool-down ends.
    tokio::time::advance(Duration::from_secs(9)).await;
    assert_eq!(
        send(&mut svc, "http://a.test/").await.unwrap_err().kind(),
        ErrorKind::CircuitOpen
    );
    // Half-open: one probe goes through; its success closes the circuit.
    tokio::time::advance(Duration::from_secs(2)).await;
    upstream.set(Mode::Succeed);
    assert!(send(&mut svc, "http://a.test/").await.is_ok());
    assert_eq!(upstream.calls(), 4);
    assert!(!circuit.is_open(&"http://a.test/".parse().unwrap()));
    assert!(send(&mut svc, "http://a.test/").await.is_ok());
    assert_eq!(upstream.calls(), 5);
}

#[tokio::test(start_paused = true)]
async fn a_failed_probe_opens_it_again_for_longer() {
    let upstream = Upstream::new(Mode::Fail);
    let circuit = layer();
    let mut svc = circuit.layer(upstream.service());
    for _ in 0..3 {
        let _ = send(&mut svc, "http://a.test/").await;
    }
    tokio::time::advance(Duration::from_secs(11)).await;
    // The probe fails: open again, now for 20 s.
    let err = send(&mut svc, "http://a.test/").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ForwarderConnection);
    assert_eq!(upstream.calls(), 4);
    tokio::time::advance(Duration::from_secs(11)).await;
    assert_eq!(
        send(&mut svc, "http://a.test/").await.unwrap_err().kind(),
        ErrorKind::CircuitOpen
    );
    assert_eq!(upstream.calls(), 4);
    tokio::time::advance(Duration::from_secs(10)).await;
    upstream.set(Mode::Succeed);
    assert!(send(&mut svc, "http://a.test/").await.is_ok());
    assert_eq!(upstream.calls(), 5);
}

#[tokio::test(start_paused = true)]
async fn only_one_probe_while_half_open() {
    let upstream = Upstream::new(Mode::Fail);
    let circuit = layer();
    let mut svc = circuit.layer(upstream.service());
    for _ in 0..3 {
        let _ = send(&mut svc, "http://a.test/").await;
    }
    tokio::time::advance(Duration::from_secs(11)).await;
    // The probe is held in flight; 20 concurrent requests meanwhile all fail at once.
    let hold = Arc::new(Notify::new());
    let mut held = upstream.clone();
    held.hold = Some(hold.clone());
    held.set(Mode::Succeed);
    let mut svc = circuit.layer(held.service());
    let probe = tokio::spawn({
        let mut svc = svc.clone();
        async move { send(&mut svc, "http://a.test/").await }
    });
    tokio::task::yield_now().await;
    let mut others = Vec::new();
    for _ in 0..20 {
        let mut svc = svc.clone();
        others.push(tokio::spawn(async move {
            send(&mut svc, "http://a.test/").await
        }));
    }
    for other in others {
        assert_eq!(
            other.await.unwrap().unwrap_err().kind(),
            ErrorKind::CircuitOpen
        );
    }
    assert_eq!(upstream.calls(), 4, "only the probe reached the host");
    hold.notify_one();
    assert!(probe.await.unwrap().is_ok());
    held.hold = None;
    let _ = &mut svc;
    let mut svc = circuit.layer(held.service());
    assert!(send(&mut svc, "http://a.test/").await.is_ok());
}

#[tokio::test(start_paused = true)]
async fn a_dropped_probe_gives_its_turn_back() {
    let upstream = Upstream::new(Mode::Fail);
    let circuit = layer();
    let mut svc = circuit.layer(upstream.service());
    for _ in 0..3 {
        let _ = send(&mut svc, "http://a.test/").await;
    }
    tokio::time::advance(Duration::from_secs(11)).await;
    let mut held = upstream.clone();
    held.hold = Some(Arc::new(Notify::new()));
    let mut stuck = circuit.layer(held.service());
    // The probe is cancelled by its caller: no verdict, and the next request may probe.
    let cancelled = tokio::time::timeout(
        Duration::from_millis(10),
        send(&mut stuck, "http://a.test/"),
    )
    .await;
    assert!(cancelled.is_err());
    upstream.set(Mode::Succeed);
    assert!(send(&mut svc, "http://a.test/").await.is_ok());
}

#[tokio::test(start_paused = true)]
async fn hosts_have_circuits_of_their_own() {
    let upstream = Upstream::new(Mode::Fail);
    let circuit = layer();
    let mut svc = circuit.layer(upstream.service());
    for i in 0..40 {
        let url = if i % 2 == 0 {
            "http://dead.test/"
        } else {
            "http://ok.test/"
        };
        let outcome = send(&mut svc, url).await;
        if i % 2 == 1 {
            assert!(outcome.is_ok(), "the healthy host is never refused");
        }
    }
    // The dead host was reached three times, then its circuit stayed open.
    assert_eq!(upstream.calls(), 3 + 20);
    assert!(circuit.is_open(&"http://dead.test/".parse().unwrap()));
    assert!(!circuit.is_open(&"http://ok.test/".parse().unwrap()));
    // Same host name, another port: another circuit.
    assert!(!circuit.is_open(&"http://dead.test:8080/".parse().unwrap()));
}

#[tokio::test(start_paused = true)]
async fn answers_and_local_errors_do_not_count() {
    // A 404 is an answer: the host is up.
    let upstream = Upstream::new(Mode::Answer404);
    let circuit = layer();
    let mut svc = circuit.layer(upstream.service());
    for _ in 0..10 {
        assert_eq!(
            send(&mut svc, "http://a.test/").await.unwrap().status(),
            404
        );
    }
    assert!(!circuit.is_open(&"http://a.test/".parse().unwrap()));
    // An invalid request or an exceeded deadline says nothing about the host.
    let circuit = layer();
    let mut svc = circuit.layer(service_fn(|_req: Request| async {
        Err::<reqwest::Response, _>(GatewayError::new(ErrorKind::InvalidRequest, "bad header"))
    }));
    for _ in 0..10 {
        assert_eq!(
            send(&mut svc, "http://a.test/").await.unwrap_err().kind(),
            ErrorKind::InvalidRequest
        );
    }
    assert!(!circuit.is_open(&"http://a.test/".parse().unwrap()));
}

#[tokio::test(start_paused = true)]
async fn a_success_resets_the_count() {
    let upstream = Upstream::new(Mode::Fail);
    let circuit = layer();
    let mut svc = circuit.layer(upstream.service());
    for _ in 0..10 {
        upstream.set(Mode::Fail);
        let _ = send(&mut svc, "http://a.test/").await;
        let _ = send(&mut svc, "http://a.test/").await;
        upstream.set(Mode::Succeed);
        assert!(send(&mut svc, "http://a.test/").await.is_ok());
    }
    assert!(!circuit.is_open(&"http://a.test/".parse().unwrap()));
}

#[tokio::test(start_paused = true)]
async fn memory_is_bounded_and_open_circuits_are_kept() {
    // (That healthy hosts are never remembered is a unit test of the registry; which host
    // makes room is tests/circuit_evidence.rs.)
    let circuit = CircuitLayer::new().consecutive_failures(1).max_hosts(2);
    let mut svc = circuit.layer(service_fn(|_req: Request| async {
        Err::<reqwest::Response, _>(GatewayError::new(ErrorKind::ForwarderConnection, "refused"))
    }));
    for host in ["a", "b", "c"] {
        let _ = send(&mut svc, &format!("http://{host}.test/")).await;
        tokio::time::advance(Duration::from_millis(10)).await;
    }
    let open = |h: &str| circuit.is_open(&format!("http://{h}.test/").parse().unwrap());
    assert!(
        open("a") && open("b"),
        "open circuits are never forgotten for a new host"
    );
    assert!(
        !open("c"),
        "the table is full of open circuits: the new host waits"
    );
}

#[tokio::test(start_paused = true)]
async fn a_probe_ending_without_a_verdict_lets_the_next_request_probe() {
    let upstream = Upstream::new(Mode::Fail);
    let circuit = layer();
    let mut svc = circuit.layer(upstream.service());
    for _ in 0..3 {
        let _ = send(&mut svc, "http://a.test/").await;
    }
    tokio::time::advance(Duration::from_secs(11)).await;
    // The probe ends with an error that says nothing about the host.
    let mut local = circuit.layer(service_fn(|_req: Request| async {
        Err::<reqwest::Response, _>(GatewayError::new(ErrorKind::InvalidRequest, "bad header"))
    }));
    assert_eq!(
        send(&mut local, "http://a.test/").await.unwrap_err().kind(),
        ErrorKind::InvalidRequest
    );
    // Still half-open: the next request is the probe, and its success closes the circuit.
    upstream.set(Mode::Succeed);
    assert!(send(&mut svc, "http://a.test/").await.is_ok());
    assert!(!circuit.is_open(&"http://a.test/".parse().unwrap()));
}

#[tokio::test]
async fn the_client_fails_fast_on_a_dead_host() {
    let dead = support::refused_url("/").await;
    let client = Client::builder()
        .retry(RetryPolicy::never())
        .circuit_breaker(CircuitLayer::new().consecutive_failures(2))
        .build()
        .unwrap();
    for _ in 0..2 {
        let err = client.get(&dead).send().await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ForwarderConnection);
    }
    let err = client.get(&dead).send().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::CircuitOpen, "{err}");
    let report = format!("{err}\n{}", err.diagnosis());
    assert!(report.contains("circuit"), "{report}");
    assert!(
        report.contains("502.3"),
        "the last cause is named: {report}"
    );
}
