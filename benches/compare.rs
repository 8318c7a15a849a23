//! Side by side on one machine: raw reqwest (twice, for the noise), this crate, reqwest's own
//! `retry` module, reqwest-middleware + reqwest-retry, and a plain tower retry stack, against an
//! in-process HTTP/1.1 server on loopback. Run with `cargo bench --bench compare`
//! (`-- --quick` for a short run).
//!
//! Each client run is a child process (this binary with `--child`), so that its peak RSS and its
//! CPU time are its own; the server stays in the parent and counts the attempts it sees.
//!
//! What a user pays is measured with the client's CPU as the bottleneck: the server runs on a
//! current-thread runtime pinned to the last CPU, the client on a one-worker runtime pinned to
//! the others, and each client run reports its process CPU time (user + system) over the
//! measured requests, per request and per attempt. Ratios to raw reqwest are taken within each
//! round, then the median over rounds. `--shared-cores` runs the old layout (no pinning, two
//! client workers), where the server's CPU hides the client's.

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::collections::HashMap;
use std::convert::Infallible;
use std::process::Command;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const CLIENTS: [&str; 10] = [
    "raw",
    "raw (A/A)",
    // This crate's reqwest-middleware adapter (built with `--features middleware`), in S1–S3
    // beside reqwest-middleware + reqwest-retry.
    "resilience middleware",
    // This crate with hedging after 20 ms: run in S1 (its healthy-path cost) and S5 only.
    "reqwest-resilience hedged",
    "reqwest-resilience",
    // This crate with its circuit on (default rule), and with the circuit and hedging after
    // 20 ms: in S1 (the healthy path's cost, which S6's estimate needs), S2, S3, S5 and S6.
    "reqwest-resilience circuit",
    "reqwest-resilience circuit+hedged",
    "reqwest retry",
    "middleware+retry",
    "tower retry",
];

#[derive(Clone, Copy, PartialEq)]
enum Scenario {
    Healthy,
    /// S1 with one request at a time.
    Healthy1,
    /// S1 with 256 at a time.
    Healthy256,
    Flaky,
    Outage,
    Failover,
    /// S5: the first attempt of 5% of the requests waits 200 ms.
    Tail,
    /// S6: requests alternate between a healthy host and one that always answers 502.
    OneHostDown,
}

impl Scenario {
    fn name(self) -> &'static str {
        match self {
            Scenario::Healthy => "S1 healthy",
            Scenario::Healthy1 => "S1 healthy c=1",
            Scenario::Healthy256 => "S1 healthy c=256",
            Scenario::Flaky => "S2 flaky 30%",
            Scenario::Outage => "S3 outage",
            Scenario::Failover => "S4 failover",
            Scenario::Tail => "S5 tail",
            Scenario::OneHostDown => "S6 one host down",
        }
    }
    fn key(self) -> &'static str {
        match self {
            Scenario::Healthy => "healthy",
            Scenario::Healthy1 => "healthy1",
            Scenario::Healthy256 => "healthy256",
            Scenario::Flaky => "flaky",
            Scenario::Outage => "outage",
            Scenario::Failover => "failover",
            Scenario::Tail => "tail",
            Scenario::OneHostDown => "onedown",
        }
    }
    fn from_key(s: &str) -> Scenario {
        match s {
            "healthy" => Scenario::Healthy,
            "healthy1" => Scenario::Healthy1,
            "healthy256" => Scenario::Healthy256,
            "flaky" => Scenario::Flaky,
            "outage" => Scenario::Outage,
            "tail" => Scenario::Tail,
            "onedown" => Scenario::OneHostDown,
            _ => Scenario::Failover,
        }
    }
    fn requests(self, quick: bool) -> usize {
        let n = match self {
            Scenario::Healthy | Scenario::Healthy256 => 20_000,
            Scenario::Healthy1 | Scenario::Flaky => 5_000,
            Scenario::Outage | Scenario::Failover | Scenario::Tail | Scenario::OneHostDown => 2_000,
        };
        if quick { n / 5 } else { n }
    }
    fn concurrency(self) -> usize {
        match self {
            Scenario::Healthy1 => 1,
            Scenario::Healthy256 => 256,
            _ => 32,
        }
    }
}

// ----- CPUs and CPU time (Linux) -----------------------------------------------------------------

/// The CPUs this process may run on.
fn cpus() -> Vec<usize> {
    // SAFETY: a zeroed cpu_set_t is a valid empty set, filled by the kernel.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return Vec::new();
        }
        (0..libc::CPU_SETSIZE as usize)
            .filter(|&c| libc::CPU_ISSET(c, &set))
            .collect()
    }
}

/// Pins the calling thread to `cpus` (best effort: a failure only makes the run noisier).
fn pin_current_thread(cpus: &[usize]) {
    if cpus.is_empty() {
        return;
    }
    // SAFETY: the set is built from CPU numbers the kernel gave and passed by pointer.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for &c in cpus {
            libc::CPU_SET(c, &mut set);
        }
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// The layout: the server's CPU and the clients' CPUs, when there are two or more and the
/// run is not `--shared-cores`.
fn layout(shared: bool) -> Option<(usize, Vec<usize>)> {
    let all = cpus();
    match all.split_last() {
        Some((server, clients)) if !shared && !clients.is_empty() => {
            Some((*server, clients.to_vec()))
        }
        _ => None,
    }
}

/// CPU time (user + system) of this whole process so far, in nanoseconds.
fn process_cpu_ns() -> u64 {
    // SAFETY: a zeroed timespec is valid and clock_gettime fills it.
    unsafe {
        let mut ts: libc::timespec = std::mem::zeroed();
        libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts);
        ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
    }
}

// ----- the server (parent process) -----------------------------------------------------------

#[derive(Default)]
struct ServerState {
    attempts: AtomicU64,
    seen: Mutex<HashMap<u64, u32>>,
    /// The dead host of S6: every request gets a 502.
    dead: bool,
    /// Attempts for the second half of a run's ids (S6's "late" phase), from `late_from` on.
    late_attempts: AtomicU64,
    late_from: AtomicU64,
    /// Attempts for S6's second phase (ids from `PHASE2`), counted apart.
    phase2_attempts: AtomicU64,
}

/// The first id of S6's second phase: requests to the dead host only.
const PHASE2: u64 = 1_000_000;

fn start_server(state: Arc<ServerState>, cpu: Option<usize>) -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        if let Some(cpu) = cpu {
            pin_current_thread(&[cpu]);
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap().to_string()).unwrap();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let state = state.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        let state = state.clone();
                        async move {
                            let (response, wait) = answer(&state, req.uri());
                            if let Some(wait) = wait {
                                tokio::time::sleep(wait).await;
                            }
                            Ok::<_, Infallible>(response)
                        }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
    });
    rx.recv().unwrap()
}

/// The answer, and how long to wait before sending it.
fn answer(
    state: &ServerState,
    uri: &hyper::Uri,
) -> (hyper::Response<Full<Bytes>>, Option<Duration>) {
    let id: u64 = uri
        .query()
        .and_then(|q| q.strip_prefix("id="))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    if id >= PHASE2 {
        state.phase2_attempts.fetch_add(1, Ordering::Relaxed);
    } else if uri.path() != "/warmup" {
        state.attempts.fetch_add(1, Ordering::Relaxed);
        if id >= state.late_from.load(Ordering::Relaxed) {
            state.late_attempts.fetch_add(1, Ordering::Relaxed);
        }
    }
    let mut wait = None;
    let fail = match uri.path() {
        _ if state.dead => true,
        "/down" => true,
        "/tail" => {
            // The first attempt of 5% of logical requests (by id) waits 200 ms.
            let mut seen = state.seen.lock().unwrap();
            let n = seen.entry(id).or_insert(0);
            *n += 1;
            if id % 20 == 0 && *n == 1 {
                wait = Some(Duration::from_millis(200));
            }
            false
        }
        "/flaky" => {
            // Exactly 30% of logical requests (by id) fail their first attempt only.
            let mut seen = state.seen.lock().unwrap();
            let n = seen.entry(id).or_insert(0);
            *n += 1;
            id % 10 < 3 && *n == 1
        }
        _ => false,
    };
    let (status, body) = if fail {
        (
            502,
            Bytes::from_static(b"<html><body><h1>502 Bad Gateway</h1></body></html>"),
        )
    } else {
        (200, Bytes::from_static(&[b'x'; 64]))
    };
    let response = hyper::Response::builder()
        .status(status)
        .body(Full::new(body))
        .unwrap();
    (response, wait)
}

// ----- a client run (child process) ------------------------------------------------------------

struct RunResult {
    ok: usize,
    total: usize,
    elapsed: Duration,
    p50: Duration,
    p99: Duration,
    rss_kb: u64,
    cpu_ns: u64,
    p999: Duration,
    cpu_late_ns: u64,
    healthy_ok: usize,
    /// S6's second phase: CPU per request to the dead host alone.
    cpu_dead_ns: u64,
}

fn peak_rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(str::to_owned)
        })
        .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

type Send = Arc<
    dyn Fn(String) -> std::pin::Pin<Box<dyn std::future::Future<Output = bool> + std::marker::Send>>
        + std::marker::Send
        + Sync,
>;

/// The sender for a client with reqwest's `get(url).send()` (raw, ours, reqwest-middleware).
macro_rules! sends_gets {
    ($client:expr) => {{
        let c = $client;
        Arc::new(move |url: String| {
            let c = c.clone();
            Box::pin(async move { done(c.get(url).send().await).await })
                as std::pin::Pin<Box<dyn std::future::Future<Output = bool> + std::marker::Send>>
        })
    }};
}

fn client_for(name: &str, scenario: Scenario, fallback: Option<String>) -> Send {
    use reqwest_resilience::retry::{ExponentialBackoff, RetryPolicy};
    let reqwest = || reqwest::Client::builder().no_proxy().build().unwrap();
    async fn done<R: Read, E>(outcome: Result<R, E>) -> bool {
        match outcome {
            Ok(r) => r.read().await,
            Err(_) => false,
        }
    }
    match name {
        "raw" | "raw (A/A)" => {
            let c = reqwest();
            sends_gets!(c)
        }
        "reqwest-resilience"
        | "reqwest-resilience hedged"
        | "reqwest-resilience circuit"
        | "reqwest-resilience circuit+hedged" => {
            let mut policy =
                RetryPolicy::default().backoff(ExponentialBackoff::new(Duration::ZERO));
            if name.ends_with("hedged") {
                policy = policy.hedge_after(Duration::from_millis(20));
            }
            if let Some(fallback) = fallback.filter(|_| scenario == Scenario::Failover) {
                return failover_stack(policy, reqwest(), fallback);
            }
            let mut builder = reqwest_resilience::Client::builder()
                .reqwest_client(reqwest())
                .retry(policy);
            if name.contains("circuit") {
                // One client for every host: in S6 the dead one's circuit opens, the healthy
                // one's not.
                builder = builder.circuit_breaker(reqwest_resilience::circuit::CircuitLayer::new());
            }
            let c = builder.build().unwrap();
            sends_gets!(c)
        }
        "reqwest retry" => {
            let policy =
                reqwest::retry::for_host("127.0.0.1").classify_fn(|rr| match rr.status() {
                    Some(s) if s.is_server_error() => rr.retryable(),
                    _ => rr.success(),
                });
            let c = reqwest::Client::builder()
                .no_proxy()
                .retry(policy)
                .build()
                .unwrap();
            sends_gets!(c)
        }
        #[cfg(feature = "middleware")]
        "resilience middleware" => {
            use reqwest_resilience::middleware::ResilienceMiddleware;
            let policy = RetryPolicy::default().backoff(ExponentialBackoff::new(Duration::ZERO));
            let c = reqwest_middleware::ClientBuilder::new(reqwest())
                .with(ResilienceMiddleware::new().retry(policy))
                .build();
            sends_gets!(c)
        }
        "middleware+retry" => {
            use reqwest_retry::RetryTransientMiddleware;
            use reqwest_retry::policies::ExponentialBackoff as Policy;
            let policy = Policy::builder()
                .retry_bounds(Duration::ZERO, Duration::ZERO)
                .build_with_max_retries(2);
            let c = reqwest_middleware::ClientBuilder::new(reqwest())
                .with(RetryTransientMiddleware::new_with_policy(policy))
                .build();
            sends_gets!(c)
        }
        "tower retry" => {
            let svc = tower::retry::Retry::new(TowerPolicy(2), reqwest());
            Arc::new(move |url| {
                let svc = svc.clone();
                Box::pin(async move {
                    use tower::ServiceExt;
                    let req = reqwest::Request::new(reqwest::Method::GET, url.parse().unwrap());
                    done(svc.oneshot(req).await).await
                })
            })
        }
        other => panic!("unknown client {other}"),
    }
}

/// Attempts that went to the dead primary in S4: all of them, and those started after its
/// ejection (the 5th consecutive failure, the default threshold).
#[derive(Default)]
struct PrimaryCount {
    total: AtomicU64,
    after_ejection: AtomicU64,
    failures: AtomicU64,
    ejected_at: Mutex<Option<Instant>>,
}

static PRIMARY: std::sync::OnceLock<PrimaryCount> = std::sync::OnceLock::new();

/// The client's default stack, written out with a counting service in front of the
/// transport so that attempts to the dead primary can be told.
fn failover_stack(
    policy: reqwest_resilience::retry::RetryPolicy,
    reqwest: reqwest::Client,
    servers: String,
) -> Send {
    use reqwest_resilience::fallback::FallbackLayer;
    use reqwest_resilience::timeout::{AttemptTimeoutLayer, DeadlineLayer};
    use tower::ServiceExt;
    let servers: Vec<String> = servers.split(' ').map(str::to_owned).collect();
    let primary_port = reqwest::Url::parse(&servers[0]).unwrap().port();
    let transport = reqwest_resilience::Transport::new(reqwest);
    let counting = tower::service_fn(move |req: reqwest_resilience::Request| {
        let to_primary = req.url().port() == primary_port;
        let count = PRIMARY.get_or_init(PrimaryCount::default);
        if to_primary {
            count.total.fetch_add(1, Ordering::Relaxed);
            if count.ejected_at.lock().unwrap().is_some() {
                count.after_ejection.fetch_add(1, Ordering::Relaxed);
            }
        }
        let call = transport.clone().oneshot(req);
        async move {
            let outcome = call.await;
            if to_primary
                && outcome.is_err()
                && count.failures.fetch_add(1, Ordering::Relaxed) + 1 == 5
            {
                *count.ejected_at.lock().unwrap() = Some(Instant::now());
            }
            outcome
        }
    });
    let stack = tower::ServiceBuilder::new()
        .layer(DeadlineLayer::new(reqwest_resilience::DEFAULT_DEADLINE))
        .layer(reqwest_resilience::retry::RetryLayer::new(policy))
        .layer(FallbackLayer::new(&servers).unwrap())
        .layer(AttemptTimeoutLayer::new(
            reqwest_resilience::DEFAULT_ATTEMPT_TIMEOUT,
        ))
        .service(counting);
    let stack = tower::util::BoxCloneSyncService::new(stack);
    Arc::new(move |url: String| {
        let stack = stack.clone();
        Box::pin(async move {
            let req = reqwest::Request::new(reqwest::Method::GET, url.parse().unwrap());
            match stack.oneshot(req.into()).await {
                Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
                Err(_) => false,
            }
        })
    })
}

/// Retries 5xx answers and errors, up to `n` times, with no pause and no budget.
#[derive(Clone)]
struct TowerPolicy(u32);

impl tower::retry::Policy<reqwest::Request, reqwest::Response, reqwest::Error> for TowerPolicy {
    type Future = std::future::Ready<()>;
    fn retry(
        &mut self,
        _req: &mut reqwest::Request,
        result: &mut Result<reqwest::Response, reqwest::Error>,
    ) -> Option<Self::Future> {
        let failed = match result {
            Ok(r) => r.status().is_server_error(),
            Err(_) => true,
        };
        (failed && self.0 > 0).then(|| {
            self.0 -= 1;
            std::future::ready(())
        })
    }
    fn clone_request(&mut self, req: &reqwest::Request) -> Option<reqwest::Request> {
        req.try_clone()
    }
}

fn child(args: &[String]) {
    let (client, scenario, base) = (&args[0], Scenario::from_key(&args[1]), args[2].clone());
    let n: usize = args[3].parse().unwrap();
    // S4: the fallback servers; S6: the dead host's base URL.
    let extra = args.get(5).cloned();
    let (fallback, dead) = match scenario {
        Scenario::OneHostDown => (None, extra),
        _ => (extra, None),
    };
    // "-" for the shared-cores layout, else the CPUs the client may use.
    let pinned: Option<Vec<usize>> =
        (args[4] != "-").then(|| args[4].split(',').filter_map(|c| c.parse().ok()).collect());
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    match pinned.clone() {
        Some(cpus) => {
            pin_current_thread(&cpus);
            builder
                .worker_threads(1)
                .on_thread_start(move || pin_current_thread(&cpus));
        }
        None => {
            builder.worker_threads(2);
        }
    }
    let rt = builder.enable_all().build().unwrap();
    let concurrency = scenario.concurrency();
    let send = client_for(client, scenario, fallback);
    let path = match scenario {
        Scenario::Healthy | Scenario::Healthy1 | Scenario::Healthy256 | Scenario::Failover => "/ok",
        Scenario::Flaky => "/flaky",
        Scenario::Outage => "/down",
        Scenario::Tail => "/tail",
        Scenario::OneHostDown => "/ok",
    };
    let result = rt.block_on(async move {
        // Warm the process (threads, allocator, CPU) with a throwaway raw client on a path the
        // server does not count, so that no client pays for running first. The measured client
        // starts cold: its pool and its retry budget see only the measured requests.
        let warm = reqwest::Client::builder().no_proxy().build().unwrap();
        let warmups: Vec<_> = (0..32)
            .map(|_| {
                let (warm, base) = (warm.clone(), base.clone());
                tokio::spawn(async move {
                    for _ in 0..100 {
                        if let Ok(r) = warm.get(format!("{base}/warmup")).send().await {
                            let _ = r.bytes().await;
                        }
                    }
                })
            })
            .collect();
        for w in warmups {
            let _ = w.await;
        }
        drop(warm);
        let next = Arc::new(AtomicUsize::new(0));
        let ok = Arc::new(AtomicUsize::new(0));
        let latencies = Arc::new(Mutex::new(Vec::with_capacity(n)));
        // S6: successes on the healthy host, and the CPU time when the second half starts.
        let healthy_ok = Arc::new(AtomicUsize::new(0));
        let cpu_mid = Arc::new(AtomicU64::new(0));
        let cpu_before = process_cpu_ns();
        let started = Instant::now();
        let mut workers = Vec::new();
        for _ in 0..concurrency {
            let (next, ok, latencies, send, base, dead) = (
                next.clone(),
                ok.clone(),
                latencies.clone(),
                send.clone(),
                base.clone(),
                dead.clone(),
            );
            let (healthy_ok, cpu_mid) = (healthy_ok.clone(), cpu_mid.clone());
            workers.push(tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        return;
                    }
                    if i == n / 2 {
                        cpu_mid.store(process_cpu_ns(), Ordering::Relaxed);
                    }
                    // S6: odd requests go to the dead host.
                    let host = match &dead {
                        Some(dead) if i % 2 == 1 => dead,
                        _ => &base,
                    };
                    let t = Instant::now();
                    if send(format!("{host}{path}?id={i}")).await {
                        ok.fetch_add(1, Ordering::Relaxed);
                        if dead.is_some() && i % 2 == 0 {
                            healthy_ok.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    latencies.lock().unwrap().push(t.elapsed());
                }
            }));
        }
        for w in workers {
            w.await.unwrap();
        }
        let elapsed = started.elapsed();
        let cpu_end = process_cpu_ns();
        let cpu_ns = cpu_end - cpu_before;
        let cpu_late_ns = cpu_end.saturating_sub(cpu_mid.load(Ordering::Relaxed));
        // S6, second phase: requests to the dead host only, its circuit (if any) now open:
        // what a request to a host known to be down costs.
        let mut cpu_dead_ns = 0;
        if let Some(dead) = &dead {
            let phase2 = (n / 2) as u64;
            let next = Arc::new(AtomicU64::new(PHASE2));
            let before = process_cpu_ns();
            let mut workers = Vec::new();
            for _ in 0..concurrency {
                let (next, send, dead) = (next.clone(), send.clone(), dead.clone());
                workers.push(tokio::spawn(async move {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= PHASE2 + phase2 {
                            return;
                        }
                        let _ = send(format!("{dead}{path}?id={i}")).await;
                    }
                }));
            }
            for w in workers {
                w.await.unwrap();
            }
            cpu_dead_ns = (process_cpu_ns() - before) / phase2.max(1);
        }
        let mut l = latencies.lock().unwrap().clone();
        l.sort();
        let pick = |q: f64| l[((l.len() as f64 * q) as usize).min(l.len() - 1)];
        RunResult {
            ok: ok.load(Ordering::Relaxed),
            total: n,
            elapsed,
            p50: pick(0.50),
            p99: pick(0.99),
            p999: pick(0.999),
            rss_kb: peak_rss_kb(),
            cpu_ns,
            cpu_late_ns,
            healthy_ok: healthy_ok.load(Ordering::Relaxed),
            cpu_dead_ns,
        }
    });
    let primary = PRIMARY.get_or_init(PrimaryCount::default);
    println!(
        "RESULT {} {} {} {} {} {} {} {} {} {} {} {} {}",
        result.ok,
        result.total,
        result.elapsed.as_micros(),
        result.p50.as_micros(),
        result.p99.as_micros(),
        result.rss_kb,
        primary.total.load(Ordering::Relaxed),
        primary.after_ejection.load(Ordering::Relaxed),
        result.cpu_ns,
        result.p999.as_micros(),
        result.cpu_late_ns,
        result.healthy_ok,
        result.cpu_dead_ns,
    );
}

// ----- the parent: rounds, medians, the table ------------------------------------------------------

#[derive(Clone, Copy, Default)]
struct Sample {
    throughput: f64,
    success: f64,
    amplification: f64,
    p50_ms: f64,
    p99_ms: f64,
    rss_mb: f64,
    primary: f64,
    primary_after: f64,
    /// Client CPU per logical request and per attempt, microseconds.
    cpu_us: f64,
    cpu_per_attempt_us: f64,
    round: usize,
    p999_ms: f64,
    /// S6: the share of the healthy host's requests that succeeded.
    healthy_success: f64,
    /// S6: attempts the dead host received per request sent to it, in all and in the second
    /// half.
    dead_amplification: f64,
    late_dead_amplification: f64,
    /// S6's second phase: client CPU per request to the dead host alone, and the attempts it
    /// received per request.
    dead_only_us: f64,
    dead_only_attempts: f64,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    if v.is_empty() {
        f64::NAN
    } else {
        v[v.len() / 2]
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|a| a == "--child") {
        child(&args[at + 1..]);
        return;
    }
    let quick = args.iter().any(|a| a == "--quick");
    let rounds = if quick { 1 } else { 5 };
    let layout = layout(args.iter().any(|a| a == "--shared-cores"));
    let client_cpus = layout.as_ref().map_or("-".to_owned(), |(_, c)| {
        c.iter()
            .map(|c| c.to_string())
            .collect::<Vec<_>>()
            .join(",")
    });
    match &layout {
        Some((server, _)) => eprintln!(
            "pinned: server on CPU {server}, clients (one tokio worker) on CPU(s) {client_cpus}"
        ),
        None => eprintln!("shared cores: no pinning, two client workers"),
    }
    let state = Arc::new(ServerState::default());
    let base = format!(
        "http://{}",
        start_server(state.clone(), layout.as_ref().map(|(s, _)| *s))
    );
    // S4's dead primary: a port nobody listens on (connections refused).
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    // S6's dead host: a server that answers every request with a 502, counting them.
    let down_state = Arc::new(ServerState {
        dead: true,
        ..ServerState::default()
    });
    let down = format!(
        "http://{}",
        start_server(down_state.clone(), layout.as_ref().map(|(s, _)| *s))
    );
    let exe = std::env::current_exe().unwrap();
    let scenarios = [
        Scenario::Healthy,
        Scenario::Healthy1,
        Scenario::Healthy256,
        Scenario::Flaky,
        Scenario::Outage,
        Scenario::Failover,
        Scenario::Tail,
        Scenario::OneHostDown,
    ];
    // `-- --only <key>`: one scenario (healthy, healthy1, healthy256, flaky, outage, failover,
    // tail, onedown) and S1 beside it, which S6's estimate needs.
    let only = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|at| args.get(at + 1))
        .map(|key| Scenario::from_key(key));
    let mut samples: HashMap<(&str, &str), Vec<Sample>> = HashMap::new();
    for round in 0..rounds {
        for scenario in scenarios {
            if only.is_some_and(|o| o != scenario && scenario != Scenario::Healthy) {
                continue;
            }
            // Rotate the order each round so no client always runs first.
            for k in 0..CLIENTS.len() {
                let client = CLIENTS[(k + round) % CLIENTS.len()];
                if scenario == Scenario::Failover && client != "reqwest-resilience" {
                    continue;
                }
                // The middleware adapter: S1–S3, when built with it.
                if client == "resilience middleware"
                    && (!cfg!(feature = "middleware")
                        || !matches!(
                            scenario,
                            Scenario::Healthy | Scenario::Flaky | Scenario::Outage
                        ))
                {
                    continue;
                }
                // The hedging client: its healthy-path cost (S1) and the tail (S5).
                if client == "reqwest-resilience hedged"
                    && !matches!(scenario, Scenario::Healthy | Scenario::Tail)
                {
                    continue;
                }
                // The circuit clients: S1, S2, S3, S5, S6.
                if client.contains("circuit")
                    && !matches!(
                        scenario,
                        Scenario::Healthy
                            | Scenario::Flaky
                            | Scenario::Outage
                            | Scenario::Tail
                            | Scenario::OneHostDown
                    )
                {
                    continue;
                }
                let n = scenario.requests(quick);
                for s in [&state, &down_state] {
                    s.attempts.store(0, Ordering::Relaxed);
                    s.late_attempts.store(0, Ordering::Relaxed);
                    s.late_from.store(n as u64 / 2, Ordering::Relaxed);
                    s.phase2_attempts.store(0, Ordering::Relaxed);
                    s.seen.lock().unwrap().clear();
                }
                let (target, fallback) = match scenario {
                    Scenario::Failover => (dead.clone(), Some(format!("{dead} {base}"))),
                    Scenario::OneHostDown => (base.clone(), Some(down.clone())),
                    _ => (base.clone(), None),
                };
                let mut cmd = Command::new(&exe);
                cmd.args([
                    "--child",
                    client,
                    scenario.key(),
                    &target,
                    &n.to_string(),
                    &client_cpus,
                ]);
                if let Some(f) = &fallback {
                    cmd.arg(f);
                }
                let out = cmd.output().expect("run a client");
                let text = String::from_utf8_lossy(&out.stdout);
                let Some(line) = text.lines().find(|l| l.starts_with("RESULT ")) else {
                    eprintln!(
                        "{client} / {}: no result\n{}",
                        scenario.name(),
                        String::from_utf8_lossy(&out.stderr)
                    );
                    continue;
                };
                let f: Vec<f64> = line
                    .split_whitespace()
                    .skip(1)
                    .map(|v| v.parse().unwrap())
                    .collect();
                let attempts = (state.attempts.load(Ordering::Relaxed)
                    + down_state.attempts.load(Ordering::Relaxed))
                    as f64;
                let half = (n / 2) as f64;
                let sample = Sample {
                    dead_only_us: f[12] / 1e3,
                    dead_only_attempts: down_state.phase2_attempts.load(Ordering::Relaxed) as f64
                        / half,
                    p999_ms: f[9] / 1e3,
                    healthy_success: f[11] / half,
                    dead_amplification: down_state.attempts.load(Ordering::Relaxed) as f64 / half,
                    late_dead_amplification: down_state.late_attempts.load(Ordering::Relaxed)
                        as f64
                        / (half / 2.0),
                    success: f[0] / f[1],
                    throughput: f[1] / (f[2] / 1e6),
                    p50_ms: f[3] / 1e3,
                    p99_ms: f[4] / 1e3,
                    rss_mb: f[5] / 1024.0,
                    // In S4 the dead primary refuses: its attempts are counted by the client.
                    amplification: (attempts + f[6]) / f[1],
                    primary: f[6],
                    primary_after: f[7],
                    cpu_us: f[8] / 1e3 / f[1],
                    cpu_per_attempt_us: f[8] / 1e3 / (attempts + f[6]).max(1.0),
                    round,
                };
                eprintln!(
                    "round {} {:<16} {:<20} {:>9.0} req/s  cpu {:>6.1} us/req  ok {:>6.2}%  ampl {:.3}  p50 {:.2} ms  p99 {:.2} ms",
                    round + 1,
                    scenario.name(),
                    client,
                    sample.throughput,
                    sample.cpu_us,
                    sample.success * 100.0,
                    sample.amplification,
                    sample.p50_ms,
                    sample.p99_ms
                );
                samples
                    .entry((scenario.name(), client))
                    .or_default()
                    .push(sample);
            }
        }
    }
    println!(
        "\nMedians of {rounds} round(s). \"vs raw\" and \"CPU vs raw\": the ratio to raw reqwest in the same round, median over rounds. Client CPU: the client process's CPU time (user + system) over the measured requests.\n"
    );
    if let Some(s) = samples.get(&(Scenario::Failover.name(), "reqwest-resilience")) {
        let total = median(s.iter().map(|x| x.primary).collect());
        let after = median(s.iter().map(|x| x.primary_after).collect());
        let all = median(s.iter().map(|x| x.amplification).collect())
            * Scenario::Failover.requests(quick) as f64;
        println!(
            "S4: {total:.0} attempts went to the dead primary ({:.2}% of {all:.0}); {after:.0} of them started after its ejection.\n",
            100.0 * total / all
        );
    }
    println!(
        "| scenario | client | req/s | vs raw | client CPU µs/req | CPU vs raw | CPU µs/attempt | success | amplification | p50 ms | p99 ms | peak RSS MiB |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    for scenario in scenarios {
        if matches!(scenario, Scenario::Tail | Scenario::OneHostDown) {
            continue;
        }
        let raw = samples.get(&(scenario.name(), "raw"));
        // The ratio to raw reqwest within each round, then the median over rounds.
        let per_round = |s: &[Sample], f: fn(&Sample) -> f64| -> Option<f64> {
            let raw = raw?;
            let ratios: Vec<f64> = s
                .iter()
                .filter_map(|x| {
                    let r = raw.iter().find(|r| r.round == x.round)?;
                    Some(f(x) / f(r))
                })
                .collect();
            (!ratios.is_empty()).then(|| median(ratios))
        };
        for client in CLIENTS {
            let Some(s) = samples.get(&(scenario.name(), client)) else {
                if scenario == Scenario::Failover {
                    println!(
                        "| {} | {client} | — | — | — | — | — | cannot express fallback servers | — | — | — | — |",
                        scenario.name()
                    );
                }
                continue;
            };
            let m = |f: fn(&Sample) -> f64| median(s.iter().map(f).collect());
            let show = |v: Option<f64>| v.map_or("—".to_owned(), |v| format!("{v:.3}"));
            println!(
                "| {} | {client} | {:.0} | {} | {:.1} | {} | {:.1} | {:.2}% | {:.3} | {:.2} | {:.2} | {:.1} |",
                scenario.name(),
                m(|x| x.throughput),
                show(per_round(s, |x| x.throughput)),
                m(|x| x.cpu_us),
                show(per_round(s, |x| x.cpu_us)),
                m(|x| x.cpu_per_attempt_us),
                m(|x| x.success) * 100.0,
                m(|x| x.amplification),
                m(|x| x.p50_ms),
                m(|x| x.p99_ms),
                m(|x| x.rss_mb),
            );
        }
    }

    // S5: the tail, with and without hedging.
    println!(
        "\n{}: 2,000 GETs at concurrency 32; the first attempt of 5% of them waits 200 ms.\n",
        Scenario::Tail.name()
    );
    println!(
        "| client | amplification | p50 ms | p99 ms | p99.9 ms | client CPU µs/req | CPU vs raw |"
    );
    println!("|---|---|---|---|---|---|---|");
    let raw_tail = samples.get(&(Scenario::Tail.name(), "raw"));
    for client in CLIENTS {
        let Some(s) = samples.get(&(Scenario::Tail.name(), client)) else {
            continue;
        };
        let m = |f: fn(&Sample) -> f64| median(s.iter().map(f).collect());
        let vs_raw = raw_tail.map_or(f64::NAN, |raw| {
            median(
                s.iter()
                    .filter_map(|x| {
                        let r = raw.iter().find(|r| r.round == x.round)?;
                        Some(x.cpu_us / r.cpu_us)
                    })
                    .collect(),
            )
        });
        println!(
            "| {client} | {:.3} | {:.2} | {:.2} | {:.2} | {:.1} | {vs_raw:.3} |",
            m(|x| x.amplification),
            m(|x| x.p50_ms),
            m(|x| x.p99_ms),
            m(|x| x.p999_ms),
            m(|x| x.cpu_us),
        );
    }
    // S6: one client, two hosts, one of them down.
    println!(
        "\n{}: 2,000 GETs at concurrency 32 from one client, alternating between a healthy host and one that answers every request with a 502 (this crate with its circuit off and on); \"late\": the second half of the run. Then 1,000 more GETs to the dead host alone: what a request to a host known to be down costs.\n",
        Scenario::OneHostDown.name()
    );
    println!(
        "| client | healthy-host success | dead-host attempts per request | late | client CPU µs/req | dead host alone: attempts per request | its CPU µs/req | vs a healthy request (S1) |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for client in CLIENTS {
        let Some(s) = samples.get(&(Scenario::OneHostDown.name(), client)) else {
            continue;
        };
        let healthy = samples.get(&(Scenario::Healthy.name(), client));
        let m = |f: fn(&Sample) -> f64| median(s.iter().map(f).collect());
        let dead_ratio = median(
            s.iter()
                .filter_map(|x| {
                    let h = healthy?.iter().find(|r| r.round == x.round)?.cpu_us;
                    Some(x.dead_only_us / h)
                })
                .collect(),
        );
        println!(
            "| {client} | {:.2}% | {:.3} | {:.3} | {:.1} | {:.3} | {:.1} | {dead_ratio:.2} |",
            m(|x| x.healthy_success) * 100.0,
            m(|x| x.dead_amplification),
            m(|x| x.late_dead_amplification),
            m(|x| x.cpu_us),
            m(|x| x.dead_only_attempts),
            m(|x| x.dead_only_us),
        );
    }
}

/// A response of one of the compared clients: whether it succeeded, its body read whole.
trait Read {
    fn read(self) -> impl std::future::Future<Output = bool> + std::marker::Send;
}

impl Read for reqwest::Response {
    async fn read(self) -> bool {
        self.status().is_success() && self.bytes().await.is_ok()
    }
}

impl Read for reqwest_resilience::Response {
    async fn read(self) -> bool {
        self.status().is_success() && self.bytes().await.is_ok()
    }
}
