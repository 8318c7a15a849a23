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
        Future = impl Future<Output = Result<reqwest::Response, GatewayError>> + Send + use<>,
    >
    + Clone
    + Send
    + 'static
    + use<> {
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
                        GatewayError::new(ErrorKind::ConnectFailed, "connection refused"),
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
        assert_eq!(err.kind(), ErrorKind::ConnectFailed);
    }
    assert!(circuit.is_open(&"http://a.test/x".parse().unwrap()));
    // Open: fails at once, nothing sent.
    let err = send(&mut svc, "http://a.test/").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::CircuitOpen, "{err}");
    assert!(err.is_request_unsent());
    assert!(err.to_string().contains("circuit"), "{err}");
    assert_eq!(
        err.last_cause().map(GatewayError::kind),
        Some(ErrorKind::ConnectFailed)
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
    assert_eq!(err.kind(), ErrorKind::ConnectFailed);
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
        Err::<reqwest::Response, _>(GatewayError::new(ErrorKind::ConnectFailed, "refused"))
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
        assert_eq!(err.kind(), ErrorKind::ConnectFailed);
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

/// A service that is ready only once its gate is open.
#[derive(Clone)]
struct Gated(Arc<std::sync::atomic::AtomicBool>);

impl Service<Request> for Gated {
    type Response = reqwest::Response;
    type Error = GatewayError;
    type Future = std::future::Ready<Result<reqwest::Response, GatewayError>>;

    fn poll_ready(
        &mut self,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), GatewayError>> {
        if self.0.load(Ordering::SeqCst) {
            std::task::Poll::Ready(Ok(()))
        } else {
            std::task::Poll::Pending
        }
    }

    fn call(&mut self, _request: Request) -> Self::Future {
        std::future::ready(Ok(ok()))
    }
}

/// The circuit passes its inner service's readiness on: over a service that is not ready, it
/// is not ready either.
#[test]
fn readiness_is_the_inner_services() {
    let gate = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut svc = layer().layer(Gated(gate.clone()));
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    assert!(Service::poll_ready(&mut svc, &mut cx).is_pending());
    gate.store(true, Ordering::SeqCst);
    assert!(matches!(
        Service::poll_ready(&mut svc, &mut cx),
        std::task::Poll::Ready(Ok(()))
    ));
}

/// A failed probe sends the circuit back out at once, even when its request goes on to retry:
/// meanwhile the host is open again, for longer, not "half-open, probe in flight".
#[tokio::test(start_paused = true)]
async fn a_failed_probe_reopens_the_circuit_before_its_request_ends() {
    use reqwest_resilience::retry::{ExponentialBackoff, Jitter, RetryLayer};
    let upstream = Upstream::new(Mode::Fail);
    let circuit = layer();
    let mut plain = circuit.layer(upstream.service());
    for _ in 0..3 {
        let _ = send(&mut plain, "http://a.test/").await;
    }
    tokio::time::advance(Duration::from_secs(11)).await;
    // The probe's request retries after 5 s.
    let retrying = tower::ServiceBuilder::new()
        .layer(RetryLayer::new(RetryPolicy::default().no_budget().backoff(
            ExponentialBackoff::new(Duration::from_secs(5)).jitter(Jitter::None),
        )))
        .layer(circuit.clone())
        .service(upstream.service());
    let probe = retrying.oneshot(get("http://a.test/"));
    let meanwhile = async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        send(&mut plain, "http://a.test/").await.unwrap_err()
    };
    let (_, err) = tokio::join!(probe, meanwhile);
    assert_eq!(err.kind(), ErrorKind::CircuitOpen);
    assert!(
        err.to_string().contains("open for another"),
        "re-opened at once: {err}"
    );
}

/// A request's verdict reaches its host's circuit when the request ends, not when the caller
/// drops its finished future (kept, as `select!` on `&mut` keeps it): the request's deadline,
/// raced by that future, lets go of the request then too.
#[tokio::test]
async fn a_finished_request_kept_by_its_caller_still_gives_its_verdict() {
    let dead = support::refused_url("/").await;
    let client = Client::builder()
        .retry(RetryPolicy::never())
        .circuit_breaker(CircuitLayer::new().consecutive_failures(1))
        .build()
        .unwrap();
    let mut first = Box::pin(client.get(&dead).send());
    let err = (&mut first).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectFailed, "{err}");
    // `first` is finished but not dropped.
    let err = client.get(&dead).send().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::CircuitOpen, "{err}");
    drop(first);
}

/// The same through the tower layers: a deadline layer's finished future, kept by its
/// caller, lets go of the request (its tracker, whose end gives the circuit its verdict).
#[tokio::test]
async fn a_finished_request_kept_through_the_deadline_layer_still_gives_its_verdict() {
    use reqwest_resilience::retry::RetryLayer;
    use reqwest_resilience::timeout::DeadlineLayer;
    let upstream = Upstream::new(Mode::Fail);
    let stack = tower::ServiceBuilder::new()
        .layer(DeadlineLayer::new(Duration::from_secs(10)))
        .layer(RetryLayer::new(RetryPolicy::never()))
        .layer(CircuitLayer::new().consecutive_failures(1))
        .service(upstream.service());
    let mut first = Box::pin(stack.clone().oneshot(get("http://a.test/")));
    let err = (&mut first).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectFailed, "{err}");
    // `first` is finished but not dropped.
    let err = stack.oneshot(get("http://a.test/")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::CircuitOpen, "{err}");
    assert_eq!(upstream.calls(), 1);
    drop(first);
}

/// An open circuit's error names the host it is for (scheme, host, port), not a path.
#[tokio::test]
async fn the_open_circuit_names_its_host() {
    let dead = support::refused_url("/orders/17").await;
    let client = Client::builder()
        .retry(RetryPolicy::never())
        .circuit_breaker(CircuitLayer::new().consecutive_failures(1))
        .build()
        .unwrap();
    let _ = client.get(&dead).send().await;
    let err = client.get(&dead).send().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::CircuitOpen, "{err}");
    let host = dead.trim_end_matches("/orders/17");
    assert_eq!(err.server(), Some(host), "{err}");
    assert!(
        err.to_string()
            .contains(&format!("the circuit of {host} is open")),
        "{err}"
    );
    // A gateway's answer names the URL with its path: the circuit still names the host.
    let server = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::any())
        .respond_with(wiremock::ResponseTemplate::new(502).insert_header("server", "nginx"))
        .mount(&server)
        .await;
    let url = format!("{}/orders/17", server.uri());
    let first = client.get(&url).send().await.unwrap_err();
    assert!(
        first.server().unwrap_or("").ends_with("/orders/17"),
        "{first}"
    );
    let err = client.get(&url).send().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::CircuitOpen, "{err}");
    assert_eq!(err.server(), Some(server.uri().as_str()), "{err}");
}

/// A success from a request admitted before its host was tracked still counts: here it keeps
/// the failure ratio (2 of 3) under the rule's 70%, where without it (2 of 2) the circuit
/// would open.
#[tokio::test(start_paused = true)]
async fn a_success_admitted_before_the_host_was_tracked_counts() {
    use reqwest_resilience::retry::RetryLayer;
    let circuit = CircuitLayer::new().minimum_throughput(2).failure_ratio(0.7);
    let gate = Arc::new(Notify::new());
    let g = gate.clone();
    let upstream = service_fn(move |req: Request| {
        let g = g.clone();
        async move {
            if req.url().path() == "/slow" {
                g.notified().await;
                return Ok(ok());
            }
            Err(GatewayError::new(ErrorKind::ConnectFailed, "refused"))
        }
    });
    let svc = tower::ServiceBuilder::new()
        .layer(RetryLayer::new(RetryPolicy::never()))
        .layer(circuit.clone())
        .service(upstream);
    // A is admitted while the host is untracked, and held.
    let a = tokio::spawn(svc.clone().oneshot(get("http://h.test/slow")));
    tokio::task::yield_now().await;
    // B fails: the host is tracked from now on.
    let _ = svc.clone().oneshot(get("http://h.test/b")).await;
    // A succeeds.
    gate.notify_one();
    assert!(a.await.unwrap().is_ok());
    // D fails: 2 failures of 3 outcomes, under 70%.
    let _ = svc.clone().oneshot(get("http://h.test/d")).await;
    assert!(!circuit.is_open(&"http://h.test/".parse().unwrap()));
}

/// A full table forgets a host whose last counted failure is older than the longest cool-down
/// (its circuit ended long ago and nothing probed it), open or not, before refusing a new host.
#[tokio::test(start_paused = true)]
async fn a_stale_circuit_makes_room_for_a_new_host() {
    let circuit = CircuitLayer::new()
        .consecutive_failures(1)
        .open_for(Duration::from_secs(1))
        .max_open_for(Duration::from_secs(2))
        .max_hosts(1);
    let mut svc = circuit.layer(service_fn(|_req: Request| async {
        Err::<reqwest::Response, _>(GatewayError::new(ErrorKind::ConnectFailed, "refused"))
    }));
    let _ = send(&mut svc, "http://a.test/").await;
    assert!(circuit.is_open(&"http://a.test/".parse().unwrap()));
    tokio::time::advance(Duration::from_secs(3)).await;
    let _ = send(&mut svc, "http://b.test/").await;
    assert!(
        circuit.is_open(&"http://b.test/".parse().unwrap()),
        "the new host took the stale one's place"
    );
}

/// A [`Client`] refuses a request to an open circuit before it enters its stack (no retry
/// loop, no deadline, no copy): the error is the one the circuit layer gives in a stack of the
/// same layers, field for field, and nothing is sent.
#[tokio::test]
async fn the_clients_early_refusal_is_the_layers_refusal() {
    use reqwest_resilience::retry::RetryLayer;
    let dead = support::refused_url("/orders").await;
    let circuit = CircuitLayer::new().consecutive_failures(1);
    let client = Client::builder()
        .retry(RetryPolicy::never())
        .circuit_breaker(circuit.clone())
        .build()
        .unwrap();
    let first = client.get(&dead).send().await.unwrap_err();
    assert_eq!(first.kind(), ErrorKind::ConnectFailed, "{first}");
    // The same circuit (clones share their hosts) in a plain stack over a service that must
    // never be called.
    let called = Arc::new(AtomicU32::new(0));
    let counter = called.clone();
    let stack = tower::ServiceBuilder::new()
        .layer(RetryLayer::new(RetryPolicy::never()))
        .layer(circuit)
        .service(service_fn(move |_req: Request| {
            counter.fetch_add(1, Ordering::SeqCst);
            async { Ok::<_, GatewayError>(ok()) }
        }));
    let by_layer = stack.oneshot(get(&dead)).await.unwrap_err();
    let by_client = client.get(&dead).send().await.unwrap_err();
    assert_eq!(called.load(Ordering::SeqCst), 0);
    for err in [&by_layer, &by_client] {
        assert_eq!(err.kind(), ErrorKind::CircuitOpen, "{err}");
        assert!(err.is_request_unsent(), "{err}");
        assert_eq!(err.attempts(), 0, "{err}");
        assert!(!err.is_retryable(), "{err}");
    }
    let head = |e: &GatewayError| {
        let text = e.to_string();
        text.split(" open for another")
            .next()
            .unwrap_or("")
            .to_owned()
    };
    assert_eq!(head(&by_client), head(&by_layer));
    assert_eq!(by_client.server(), by_layer.server());
    assert_eq!(
        by_client.last_cause().map(GatewayError::kind),
        Some(ErrorKind::ConnectFailed)
    );
    assert_eq!(
        by_client.last_cause().map(GatewayError::kind),
        by_layer.last_cause().map(GatewayError::kind)
    );
    assert_eq!(
        by_client.diagnosis().to_string(),
        by_layer.diagnosis().to_string()
    );
}

/// Through a [`Client`], once the cool-down ends the next request is let through as the
/// probe (the client's early refusal refuses only during the cool-down), and its success
/// closes the circuit.
#[tokio::test]
async fn the_client_probes_when_the_cool_down_ends() {
    use wiremock::{Mock, MockServer, ResponseTemplate, matchers::any};
    let server = MockServer::start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(502).insert_header("server", "nginx"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    // No timers of the client's own: time is paused below, and an idle runtime would jump to
    // them.
    let client = Client::builder()
        .retry(RetryPolicy::never())
        .attempt_timeout(Duration::ZERO)
        .deadline(Duration::ZERO)
        .circuit_breaker(
            CircuitLayer::new()
                .consecutive_failures(1)
                .open_for(Duration::from_secs(10)),
        )
        .build()
        .unwrap();
    let url = format!("{}/x", server.uri());
    assert_eq!(
        client.get(&url).send().await.unwrap_err().kind(),
        ErrorKind::BadGateway
    );
    tokio::time::pause();
    tokio::time::advance(Duration::from_secs(9)).await;
    let refused = client.get(&url).send().await.unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::CircuitOpen, "{refused}");
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
    tokio::time::advance(Duration::from_secs(2)).await;
    let probe = client.get(&url).send().await.unwrap();
    assert_eq!(probe.status(), 200);
    assert_eq!(server.received_requests().await.unwrap().len(), 2);
    assert!(client.get(&url).send().await.is_ok(), "closed again");
}

/// Fails `n` requests to `a.test` through `svc`, each its own logical request (no layer above
/// tracks them, so each failure is judged at once).
async fn fail<S>(svc: &mut S, upstream: &Upstream, n: u32)
where
    S: Service<Request, Response = reqwest::Response, Error = GatewayError>,
{
    upstream.set(Mode::Fail);
    for _ in 0..n {
        let _ = send(svc, "http://a.test/").await;
    }
}

fn is_open(circuit: &CircuitLayer) -> bool {
    circuit.is_open(&"http://a.test/".parse().unwrap())
}

/// Each parameter of the ratio rule takes effect, and setting one keeps the others.
#[tokio::test(start_paused = true)]
async fn the_ratio_rules_parameters_take_effect() {
    // The minimum volume: 3 failures open a circuit whose minimum is 3, not the default's 10.
    for (circuit, opens) in [
        (CircuitLayer::new().minimum_throughput(3), true),
        (CircuitLayer::new(), false),
    ] {
        let upstream = Upstream::new(Mode::Fail);
        let mut svc = circuit.layer(upstream.service());
        fail(&mut svc, &upstream, 3).await;
        assert_eq!(is_open(&circuit), opens);
    }
    // The ratio, kept when the minimum is set after it: 3 failures in 4 outcomes (75%) open a
    // 70% circuit, not a 90% one.
    for (circuit, opens) in [
        (
            CircuitLayer::new().failure_ratio(0.7).minimum_throughput(4),
            true,
        ),
        (
            CircuitLayer::new().failure_ratio(0.9).minimum_throughput(4),
            false,
        ),
    ] {
        let upstream = Upstream::new(Mode::Succeed);
        let mut svc = circuit.layer(upstream.service());
        fail(&mut svc, &upstream, 1).await;
        upstream.set(Mode::Succeed);
        assert!(send(&mut svc, "http://a.test/").await.is_ok());
        fail(&mut svc, &upstream, 2).await;
        assert_eq!(is_open(&circuit), opens, "{circuit:?}");
    }
    // The window: two failures, then two more after the window has slid past the first
    // ones, do not reach a minimum of 3 in a 1 s window; in the default 30 s window they do.
    // And the 1 s window keeps the minimum set before it: a third failure inside it opens.
    for (circuit, opens) in [
        (
            CircuitLayer::new()
                .minimum_throughput(3)
                .sampling_window(Duration::from_secs(1)),
            false,
        ),
        (CircuitLayer::new().minimum_throughput(3), true),
    ] {
        let upstream = Upstream::new(Mode::Fail);
        let mut svc = circuit.layer(upstream.service());
        fail(&mut svc, &upstream, 2).await;
        tokio::time::advance(Duration::from_secs(2)).await;
        fail(&mut svc, &upstream, 2).await;
        assert_eq!(is_open(&circuit), opens, "{circuit:?}");
        if !opens {
            fail(&mut svc, &upstream, 1).await;
            assert!(
                is_open(&circuit),
                "three failures in the window: {circuit:?}"
            );
        }
    }
    // From a run-of-failures rule, setting a ratio parameter selects the ratio rule with the
    // defaults for the others: 2 failures in a row no longer open it (minimum 3).
    let circuit = CircuitLayer::new()
        .consecutive_failures(2)
        .minimum_throughput(3);
    let upstream = Upstream::new(Mode::Fail);
    let mut svc = circuit.layer(upstream.service());
    fail(&mut svc, &upstream, 2).await;
    assert!(!is_open(&circuit));
    fail(&mut svc, &upstream, 1).await;
    assert!(is_open(&circuit));
}

/// `counts_if` replaces the rule of what counts: failures it rejects never open the circuit.
#[tokio::test(start_paused = true)]
async fn counts_if_decides_what_counts() {
    let circuit = layer().counts_if(|err| err.kind() != ErrorKind::ConnectFailed);
    let upstream = Upstream::new(Mode::Fail);
    let mut svc = circuit.layer(upstream.service());
    fail(&mut svc, &upstream, 10).await;
    assert!(!is_open(&circuit), "refused connects do not count here");
    assert_eq!(upstream.calls(), 10);
    let circuit = layer().counts_if(|err| err.kind() == ErrorKind::ConnectFailed);
    let mut svc = circuit.layer(upstream.service());
    fail(&mut svc, &upstream, 3).await;
    assert!(is_open(&circuit));
}

/// The circuit tells its transitions as `INFO` events: opened (with the cool-down and the
/// cause), half-open when its probe goes, closed when the probe is answered.
#[tokio::test(start_paused = true)]
async fn the_circuit_tells_when_it_opens_probes_and_closes() {
    let (capture, _guard) = support::LogCapture::install(tracing::Level::INFO);
    let circuit = CircuitLayer::new()
        .minimum_throughput(3)
        .open_for(Duration::from_secs(5));
    let upstream = Upstream::new(Mode::Fail);
    let mut svc = circuit.layer(upstream.service());
    fail(&mut svc, &upstream, 2).await;
    assert!(
        !capture.text().contains("circuit opened"),
        "{}",
        capture.text()
    );
    fail(&mut svc, &upstream, 1).await;
    let text = capture.text();
    let opened: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("circuit opened"))
        .collect();
    assert_eq!(opened.len(), 1, "{text}");
    for field in ["open_for_ms=5000", "error.type=\"connect_failed\""] {
        assert!(
            opened[0].contains(field),
            "{field} missing in {}",
            opened[0]
        );
    }
    assert!(!text.contains("half-open"), "{text}");
    tokio::time::advance(Duration::from_secs(6)).await;
    upstream.set(Mode::Succeed);
    tracing::callsite::rebuild_interest_cache();
    assert!(send(&mut svc, "http://a.test/").await.is_ok());
    let text = capture.text();
    let probing = text.find("circuit half-open: probing");
    let closed = text.find("circuit closed");
    assert!(
        matches!((probing, closed), (Some(p), Some(c)) if p < c),
        "probe then close: {text}"
    );
    assert!(!is_open(&circuit));
}
