//! Attempt timeouts and the deadline: expiry, time-left propagation, overrides, stalled
//! bodies, cancellation, and both orders of composition with retry.

mod support;

use bytes::Bytes;
use reqwest_resilience::retry::{ExponentialBackoff, RetryLayer, RetryPolicy};
use reqwest_resilience::timeout::{AttemptTimeoutLayer, DeadlineLayer};
use reqwest_resilience::{Client, ErrorKind, GatewayError, Origin};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use support::{Fault, FaultServer};
use tokio::time::Instant;
use tower::{ServiceBuilder, ServiceExt, service_fn};

fn get() -> reqwest_resilience::Request {
    reqwest::Request::new(
        reqwest::Method::GET,
        "http://a.test/x?token=s3cret".parse().unwrap(),
    )
    .into()
}

type Inner =
    tower::util::BoxCloneSyncService<reqwest_resilience::Request, reqwest::Response, GatewayError>;

/// Call `n` (from 1) fails fast with a 502.3 when `fail_fast(n)`, else hangs.
fn scripted(calls: Arc<AtomicU32>, fail_fast: fn(u32) -> bool) -> Inner {
    Inner::new(service_fn(move |_req: reqwest_resilience::Request| {
        let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
        async move {
            if fail_fast(n) {
                Err(GatewayError::new(
                    ErrorKind::ConnectFailed,
                    "connection refused",
                ))
            } else {
                std::future::pending::<()>().await;
                Ok(reqwest::Response::from(http::Response::new(Bytes::new())))
            }
        }
    }))
}

fn no_jitter(ms: u64) -> RetryPolicy {
    RetryPolicy::default().backoff(
        ExponentialBackoff::new(Duration::from_millis(ms))
            .jitter(reqwest_resilience::retry::Jitter::None),
    )
}

#[tokio::test(start_paused = true)]
async fn attempt_timeout_turns_a_hang_into_timed_out() {
    let calls = Arc::new(AtomicU32::new(0));
    let svc = ServiceBuilder::new()
        .layer(AttemptTimeoutLayer::new(Duration::from_secs(2)))
        .service(scripted(calls, |_| false));
    let started = Instant::now();
    let err = svc.oneshot(get()).await.unwrap_err();
    assert_eq!(started.elapsed(), Duration::from_secs(2));
    assert!(matches!(err, GatewayError::TimedOut(_)), "{err:?}");
    assert_eq!(err.origin(), Origin::Local);
    assert_eq!(err.server(), Some("http://a.test/x"));
}

#[tokio::test(start_paused = true)]
async fn each_retry_gets_its_own_attempt_timer() {
    let calls = Arc::new(AtomicU32::new(0));
    let svc = ServiceBuilder::new()
        .layer(RetryLayer::new(no_jitter(100)))
        .layer(AttemptTimeoutLayer::new(Duration::from_secs(1)))
        .service(scripted(calls.clone(), |_| false));
    let started = Instant::now();
    let err = svc.oneshot(get()).await.unwrap_err();
    // 1 s + 100 ms + 1 s + 200 ms + 1 s
    assert_eq!(started.elapsed(), Duration::from_millis(3_300));
    assert_eq!(err.kind(), ErrorKind::TimedOut);
    assert_eq!(err.attempts(), 3);
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

#[tokio::test(start_paused = true)]
async fn deadline_ends_a_hang_with_no_cause_yet() {
    let calls = Arc::new(AtomicU32::new(0));
    let svc = ServiceBuilder::new()
        .layer(DeadlineLayer::new(Duration::from_secs(2)))
        .service(scripted(calls, |_| false));
    let started = Instant::now();
    let err = svc.oneshot(get()).await.unwrap_err();
    assert_eq!(started.elapsed(), Duration::from_secs(2));
    assert!(matches!(err, GatewayError::DeadlineExceeded(_)));
    assert!(err.last_cause().is_none());
    assert!(!err.is_retryable());
}

#[tokio::test(start_paused = true)]
async fn deadline_carries_the_last_cause_and_the_attempts() {
    let calls = Arc::new(AtomicU32::new(0));
    let svc = ServiceBuilder::new()
        .layer(DeadlineLayer::new(Duration::from_secs(2)))
        .layer(RetryLayer::new(no_jitter(100)))
        .service(scripted(calls.clone(), |n| n == 1));
    let started = Instant::now();
    let err = svc.oneshot(get()).await.unwrap_err();
    assert_eq!(started.elapsed(), Duration::from_secs(2));
    assert_eq!(err.kind(), ErrorKind::DeadlineExceeded);
    assert_eq!(
        err.last_cause().map(GatewayError::kind),
        Some(ErrorKind::ConnectFailed)
    );
    assert_eq!(err.attempts(), 2);
    let text = err.to_string();
    assert!(
        text.starts_with("deadline exceeded: deadline of 2 s exceeded after 2 attempts"),
        "{text}"
    );
    assert!(text.contains("last: 502.3 could not connect"), "{text}");
    assert!(!text.contains("s3cret"));
}

#[tokio::test(start_paused = true)]
async fn deadline_cuts_the_attempt_timeout_to_the_time_left() {
    let calls = Arc::new(AtomicU32::new(0));
    let svc = ServiceBuilder::new()
        .layer(DeadlineLayer::new(Duration::from_secs(3)))
        .layer(RetryLayer::new(no_jitter(100)))
        .layer(AttemptTimeoutLayer::new(Duration::from_secs(10)))
        .service(scripted(calls.clone(), |_| false));
    let started = Instant::now();
    let err = svc.oneshot(get()).await.unwrap_err();
    assert_eq!(started.elapsed(), Duration::from_secs(3));
    // The attempt's own timer, cut to the 3 s left, fired; the deadline reports it.
    assert_eq!(err.kind(), ErrorKind::DeadlineExceeded, "{err}");
    let last = err.last_cause().unwrap();
    assert_eq!(last.kind(), ErrorKind::TimedOut);
    assert!(last.details().message().contains("of 3 s"), "{last}");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn deadline_cuts_backoff_short() {
    let calls = Arc::new(AtomicU32::new(0));
    let svc = ServiceBuilder::new()
        .layer(DeadlineLayer::new(Duration::from_millis(1_500)))
        .layer(RetryLayer::new(no_jitter(1_000).max_attempts(5)))
        .service(scripted(calls.clone(), |_| true));
    let started = Instant::now();
    let err = svc.oneshot(get()).await.unwrap_err();
    // Fail, pause 1 s, fail, then a 2 s pause would pass the deadline: stop at 1 s.
    assert_eq!(started.elapsed(), Duration::from_secs(1));
    assert_eq!(err.kind(), ErrorKind::ConnectFailed);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn retry_outside_the_deadline_bounds_each_attempt_and_does_not_retry_its_expiry() {
    let calls = Arc::new(AtomicU32::new(0));
    let svc = ServiceBuilder::new()
        .layer(RetryLayer::new(no_jitter(100)))
        .layer(DeadlineLayer::new(Duration::from_secs(1)))
        .service(scripted(calls.clone(), |_| false));
    let err = svc.oneshot(get()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::DeadlineExceeded);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

/// Answers each call after one `Pending` that wakes the task at once (so that an attempt timer
/// above is armed first), or (`never`) is pending forever and wakes nothing.
fn answers_after_a_poll(never: bool) -> Inner {
    Inner::new(service_fn(
        move |_req: reqwest_resilience::Request| async move {
            if never {
                std::future::pending::<()>().await;
            }
            tokio::task::yield_now().await;
            Ok(reqwest::Response::from(http::Response::new(Bytes::new())))
        },
    ))
}

/// What a layer between the deadline and the attempt timeout does with its inner call before
/// it waits forever with no timer of its own.
#[derive(Clone, Copy, Debug)]
enum Then {
    /// Awaits the call to its end, keeps it, and waits.
    KeepsItEnded,
    /// Polls the call once (its timer armed), drops it, and waits.
    DropsIt,
    /// Polls the call once, keeps it without polling it again, and waits.
    KeepsItUnpolled,
    /// Runs the call to its end on another task, then waits there.
    SpawnsIt,
    /// Polls the call once, then once more with a waker that wakes nothing, keeps it, waits.
    PollsItWithoutAWaker,
}

#[derive(Clone)]
struct HangsAfter<S> {
    inner: S,
    then: Then,
}

impl<S> tower::Service<reqwest_resilience::Request> for HangsAfter<S>
where
    S: tower::Service<
            reqwest_resilience::Request,
            Response = reqwest::Response,
            Error = GatewayError,
        > + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = reqwest::Response;
    type Error = GatewayError;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<reqwest::Response, GatewayError>> + Send>,
    >;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), GatewayError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: reqwest_resilience::Request) -> Self::Future {
        let mut call = Box::pin(self.inner.call(request));
        let then = self.then;
        Box::pin(async move {
            match then {
                Then::KeepsItEnded => {
                    let _ = call.as_mut().await;
                    std::future::pending::<()>().await;
                }
                Then::DropsIt => {
                    std::future::poll_fn(|cx| {
                        let _ = call.as_mut().poll(cx);
                        std::task::Poll::Ready(())
                    })
                    .await;
                    drop(call);
                    std::future::pending::<()>().await;
                }
                Then::KeepsItUnpolled => {
                    std::future::poll_fn(|cx| {
                        let _ = call.as_mut().poll(cx);
                        std::task::Poll::Ready(())
                    })
                    .await;
                    std::future::pending::<()>().await;
                    drop(call);
                }
                Then::PollsItWithoutAWaker => {
                    std::future::poll_fn(|cx| {
                        let _ = call.as_mut().poll(cx);
                        let mut none = std::task::Context::from_waker(std::task::Waker::noop());
                        let _ = call.as_mut().poll(&mut none);
                        std::task::Poll::Ready(())
                    })
                    .await;
                    std::future::pending::<()>().await;
                    drop(call);
                }
                Then::SpawnsIt => {
                    let _ = tokio::spawn(async move {
                        let _ = call.await;
                        std::future::pending::<()>().await;
                    })
                    .await;
                }
            }
            unreachable!()
        })
    }
}

// The deadline layer arms no timer while an attempt timer polled within its own poll (with its
// waker) fires first (see `timeout::scope`); whatever the stack waits for once that attempt has
// ended, was dropped (in the very poll that armed its timer, the inner call waking nothing), is
// kept unpolled, was last polled without a waker or runs on another task, the deadline's own
// timer bounds it.
#[tokio::test(start_paused = true)]
async fn the_deadline_bounds_a_wait_after_an_attempt_whatever_became_of_it() {
    for (then, never) in [
        (Then::KeepsItEnded, false),
        (Then::DropsIt, false),
        (Then::DropsIt, true),
        (Then::KeepsItUnpolled, true),
        (Then::PollsItWithoutAWaker, true),
        (Then::SpawnsIt, true),
    ] {
        let svc = ServiceBuilder::new()
            .layer(DeadlineLayer::new(Duration::from_secs(1)))
            .layer_fn(|inner| HangsAfter { inner, then })
            .layer(AttemptTimeoutLayer::new(Duration::from_secs(10)))
            .service(answers_after_a_poll(never));
        let started = Instant::now();
        let outcome = tokio::time::timeout(Duration::from_secs(60), svc.oneshot(get())).await;
        let err = outcome
            .unwrap_or_else(|_| panic!("{then:?}: the deadline did not end the request"))
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::DeadlineExceeded, "{then:?}");
        assert_eq!(started.elapsed(), Duration::from_secs(1), "{then:?}");
    }
}

// With the attempt polled in the deadline's own poll (no layer in between), the attempt
// timer, cut to the deadline, ends the request at the deadline, as the deadline's failure.
#[tokio::test(start_paused = true)]
async fn an_attempt_timer_cut_to_the_deadline_ends_it_as_the_deadline() {
    let svc = ServiceBuilder::new()
        .layer(DeadlineLayer::new(Duration::from_secs(1)))
        .layer(AttemptTimeoutLayer::new(Duration::from_secs(10)))
        .service(answers_after_a_poll(true));
    let started = Instant::now();
    let err = svc.oneshot(get()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::DeadlineExceeded);
    assert_eq!(started.elapsed(), Duration::from_secs(1));
}

// --- over real TCP ----------------------------------------------------------------------

#[tokio::test]
async fn per_request_timeout_and_deadline_override_the_client() {
    let server = FaultServer::start(Fault::Hang).await;
    let client = Client::builder().no_retry().build().unwrap();
    let started = std::time::Instant::now();
    let err = client
        .get(server.url("/"))
        .timeout(Duration::from_millis(200))
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut);
    assert!(started.elapsed() < Duration::from_secs(5));

    let err = client
        .get(server.url("/"))
        .deadline(Duration::from_millis(200))
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::DeadlineExceeded);
}

#[tokio::test]
async fn a_stalled_body_ends_at_the_attempt_timeout_when_asked() {
    let server = FaultServer::start(Fault::HeadThenStall).await;
    let client = Client::builder()
        .no_retry()
        .attempt_timeout(Duration::from_millis(300))
        .attempt_timeout_includes_body(true)
        .build()
        .unwrap();
    let response = client.get(server.url("/")).send().await.unwrap();
    let err = tokio::time::timeout(Duration::from_secs(10), response.bytes())
        .await
        .expect("the body read must end by itself")
        .unwrap_err();
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&err);
    let mut found = false;
    while let Some(e) = source {
        if let Some(g) = e.downcast_ref::<GatewayError>() {
            found = g.kind() == ErrorKind::TimedOut;
        }
        source = e.source();
    }
    assert!(found, "no TimedOut in the chain of {err:?}");
}

#[tokio::test]
async fn dropping_the_future_closes_the_connection() {
    let server = FaultServer::start(Fault::Hang).await;
    let client = Client::new();
    let call = client.get(server.url("/")).send();
    assert!(
        tokio::time::timeout(Duration::from_millis(200), call)
            .await
            .is_err()
    );
    for _ in 0..100 {
        if server.closed_by_client() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(server.hits(), 1);
    assert_eq!(
        server.closed_by_client(),
        1,
        "the dropped attempt's connection is still open"
    );
}

#[tokio::test(start_paused = true)]
async fn huge_settings_mean_no_limit_not_a_panic() {
    // Timers of Duration::MAX do not overflow: a hang stays pending.
    let calls = Arc::new(AtomicU32::new(0));
    let svc = ServiceBuilder::new()
        .layer(DeadlineLayer::new(Duration::MAX))
        .layer(AttemptTimeoutLayer::new(Duration::MAX).include_body(true))
        .service(scripted(calls.clone(), |_| false));
    let outcome = tokio::time::timeout(Duration::from_secs(3600), svc.oneshot(get())).await;
    assert!(outcome.is_err(), "nothing should end within the hour");

    // A pause of Duration::MAX cannot fit in any deadline: the error comes back at once.
    let calls = Arc::new(AtomicU32::new(0));
    let svc = ServiceBuilder::new()
        .layer(DeadlineLayer::new(Duration::MAX))
        .layer(RetryLayer::new(
            RetryPolicy::default()
                .backoff(
                    ExponentialBackoff::new(Duration::MAX)
                        .cap(Duration::MAX)
                        .jitter(reqwest_resilience::retry::Jitter::None),
                )
                .max_retry_after(Duration::MAX),
        ))
        .service(scripted(calls.clone(), |_| true));
    let err = svc.oneshot(get()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectFailed);
    assert_eq!(
        err.not_retried_because(),
        Some("the deadline leaves no time for another attempt")
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

/// A last cause without a message is named alone, not followed by empty parentheses.
#[tokio::test(start_paused = true)]
async fn a_last_cause_without_a_message_is_named_alone() {
    let calls = Arc::new(AtomicU32::new(0));
    let c = calls.clone();
    let inner = Inner::new(service_fn(move |_req: reqwest_resilience::Request| {
        let n = c.fetch_add(1, Ordering::SeqCst) + 1;
        async move {
            if n == 1 {
                Err(GatewayError::new(ErrorKind::ConnectFailed, ""))
            } else {
                std::future::pending::<()>().await;
                Ok(reqwest::Response::from(http::Response::new(Bytes::new())))
            }
        }
    }));
    let svc = ServiceBuilder::new()
        .layer(DeadlineLayer::new(Duration::from_secs(2)))
        .layer(RetryLayer::new(no_jitter(100)))
        .service(inner);
    let text = svc.oneshot(get()).await.unwrap_err().to_string();
    assert!(text.contains("last: 502.3 could not connect"), "{text}");
    assert!(!text.contains("()"), "{text}");
}

/// Under a client's retry loop an attempt keeps no copy of the URL for its timeout's error
/// while the loop keeps one: the loop names the server. A POST's only attempt (one that may
/// have arrived is not sent again) and a GET's attempts quoted by its deadline name it, with
/// neither the credentials nor the query.
#[tokio::test]
async fn a_clients_timed_out_attempts_name_their_server_without_its_secrets() {
    let silent = FaultServer::start(Fault::Hang).await;
    let url = silent
        .url("/orders?token=s3cret")
        .replacen("http://", "http://user:hunter2@", 1);
    let shown = silent.url("/orders");
    let client = Client::builder()
        .attempt_timeout(Duration::from_millis(100))
        .build()
        .unwrap();
    let err = client.post(&url).body("item=1").send().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut, "{err}");
    assert_eq!(err.attempts(), 1, "{err}");
    assert_eq!(err.server(), Some(shown.as_str()), "{err}");
    let text = err.to_string();
    assert!(text.contains(&format!(" at {shown}")), "{text}");
    assert!(
        !text.contains("s3cret") && !text.contains("hunter2"),
        "{text}"
    );

    let client = Client::builder()
        .attempt_timeout(Duration::from_millis(100))
        // About seven attempts fit (ten would take over a second): a slow machine still
        // makes three before the deadline.
        .deadline(Duration::from_millis(700))
        .retry(no_jitter(0).max_attempts(10))
        .build()
        .unwrap();
    let err = client.get(&url).send().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::DeadlineExceeded, "{err}");
    assert!(err.attempts() >= 3, "{err}");
    let cause = err
        .last_cause()
        .expect("the deadline quotes the last attempt's failure");
    assert_eq!(cause.kind(), ErrorKind::TimedOut, "{err}");
    assert_eq!(cause.server(), Some(shown.as_str()), "{err}");
    assert_eq!(err.server(), Some(shown.as_str()), "{err}");
}
