//! Allocations per request added by each layer on the healthy path, with no tracing
//! subscriber, counted by a global allocator. Run with `cargo bench --bench allocations`.
//!
//! `TRACE_STACK="<row name>" cargo bench --bench allocations` also prints, for one request
//! through that row's stack, where each allocation is made (the first frames of a backtrace).

use bytes::Bytes;
use reqwest_resilience::GatewayError;
use reqwest_resilience::fallback::FallbackLayer;
use reqwest_resilience::retry::{RetryLayer, RetryPolicy};
use reqwest_resilience::timeout::{AttemptTimeoutLayer, DeadlineLayer};
use std::alloc::{GlobalAlloc, Layout, System};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tower::{Layer, Service, ServiceBuilder, ServiceExt, service_fn};

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static TRACE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        if TRACE.load(Ordering::Relaxed) {
            TRACE.store(false, Ordering::Relaxed);
            // Where each allocation of one traced request comes from (see `TRACE_STACK`).
            let trace = std::backtrace::Backtrace::force_capture().to_string();
            let frames: Vec<&str> = trace
                .lines()
                .filter(|l| l.contains(": ") && !l.contains("backtrace") && !l.contains("Counting"))
                .take(6)
                .collect();
            eprintln!(
                "allocation of {} bytes\n   {}",
                layout.size(),
                frames.join("\n   ")
            );
            TRACE.store(true, Ordering::Relaxed);
        }
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

type Inner =
    tower::util::BoxCloneSyncService<reqwest_resilience::Request, reqwest::Response, GatewayError>;

fn ok_service() -> Inner {
    Inner::new(service_fn(|_req: reqwest_resilience::Request| async {
        Ok::<_, GatewayError>(reqwest::Response::from(http::Response::new(
            Bytes::from_static(b"ok"),
        )))
    }))
}

fn main() {
    const N: u64 = 10_000;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let template = reqwest::Request::new(
        reqwest::Method::GET,
        "http://primary.test/items?id=1".parse().unwrap(),
    );
    let fallback = FallbackLayer::new(["http://primary.test", "http://backup.test"]).unwrap();
    let stacks: Vec<(&str, Inner)> = vec![
        ("bare service_fn (baseline)", ok_service()),
        (
            "retry",
            Inner::new(RetryLayer::new(RetryPolicy::default()).layer(ok_service())),
        ),
        (
            "deadline",
            Inner::new(DeadlineLayer::new(Duration::from_secs(30)).layer(ok_service())),
        ),
        (
            "attempt timeout",
            Inner::new(AttemptTimeoutLayer::new(Duration::from_secs(10)).layer(ok_service())),
        ),
        ("fallback", Inner::new(fallback.clone().layer(ok_service()))),
        (
            "full default stack",
            Inner::new(
                ServiceBuilder::new()
                    .layer(DeadlineLayer::new(Duration::from_secs(30)))
                    .layer(RetryLayer::new(RetryPolicy::default()))
                    .layer(fallback)
                    .layer(AttemptTimeoutLayer::new(Duration::from_secs(10)))
                    .service(ok_service()),
            ),
        ),
    ];
    println!("| stack | allocations per request | added over the baseline |");
    println!("|---|---|---|");
    let mut baseline = 0.0;
    for (name, mut svc) in stacks {
        let per_request = rt.block_on(async {
            // Warm up, then count.
            for _ in 0..100 {
                let req = template.try_clone().unwrap();
                svc.ready().await.unwrap().call(req.into()).await.unwrap();
            }
            let mut counted = 0;
            if std::env::var("TRACE_STACK").ok().as_deref() == Some(name) {
                let req = template.try_clone().unwrap();
                TRACE.store(true, Ordering::Relaxed);
                let response = svc.ready().await.unwrap().call(req.into()).await.unwrap();
                TRACE.store(false, Ordering::Relaxed);
                drop(response);
            }
            for _ in 0..N {
                let req = template.try_clone().unwrap();
                let before = ALLOCATIONS.load(Ordering::Relaxed);
                let response = svc.ready().await.unwrap().call(req.into()).await.unwrap();
                counted += ALLOCATIONS.load(Ordering::Relaxed) - before;
                drop(response);
            }
            counted as f64 / N as f64
        });
        if baseline == 0.0 {
            baseline = per_request;
        }
        println!(
            "| {name} | {per_request:.1} | {:+.1} |",
            per_request - baseline
        );
    }
    clients_over_loopback(&rt);
}

/// Allocations per request of a whole client against a loopback HTTP/1.1 server in the same
/// process (the server's own allocations are the same for every client): raw reqwest, then
/// the crate's default `Client`, each a GET whose 64-byte body is read whole (as bytes, then
/// as text).
fn clients_over_loopback(rt: &tokio::runtime::Runtime) {
    const N: u64 = 2_000;
    let url = rt.block_on(serve_64_bytes());
    let reqwest = reqwest::Client::builder().no_proxy().build().unwrap();
    let ours = reqwest_resilience::Client::builder()
        .reqwest_client(reqwest.clone())
        .build()
        .unwrap();
    println!();
    println!("| client over loopback | allocations per request | beyond raw reqwest |");
    println!("|---|---|---|");
    let count = |label: &str, one: &dyn Fn() -> std::pin::Pin<Box<dyn Future<Output = ()>>>| {
        rt.block_on(async {
            for _ in 0..100 {
                one().await;
            }
            let trace = std::env::var("TRACE_STACK").ok().as_deref() == Some(label);
            TRACE.store(trace, Ordering::Relaxed);
            if trace {
                one().await;
                TRACE.store(false, Ordering::Relaxed);
            }
            let before = ALLOCATIONS.load(Ordering::Relaxed);
            for _ in 0..N {
                one().await;
            }
            (ALLOCATIONS.load(Ordering::Relaxed) - before) as f64 / N as f64
        })
    };
    let url: std::sync::Arc<str> = url.into();
    let raw = count("raw reqwest", &|| {
        Box::pin(raw_get(reqwest.clone(), url.clone(), Read::Bytes))
    });
    let client = count("default Client", &|| {
        Box::pin(client_get(ours.clone(), url.clone(), Read::Bytes))
    });
    // The same, the body read as text (the 64 bytes are ASCII, with no charset named).
    let raw_text = count("raw reqwest, text", &|| {
        Box::pin(raw_get(reqwest.clone(), url.clone(), Read::Text))
    });
    let client_text = count("default Client, text", &|| {
        Box::pin(client_get(ours.clone(), url.clone(), Read::Text))
    });
    println!(
        "| raw reqwest (baseline; the boxed future of this bench's loop included) | {raw:.1} | +0.0 |"
    );
    println!("| default `Client` | {client:.1} | {:+.1} |", client - raw);
    println!("| raw reqwest, body read by `text()` (baseline) | {raw_text:.1} | +0.0 |");
    println!(
        "| default `Client`, body read by `text()` | {client_text:.1} | {:+.1} |",
        client_text - raw_text
    );
}

/// How a request of the loopback rows reads its body.
#[derive(Clone, Copy)]
enum Read {
    Bytes,
    Text,
}

/// One GET through raw reqwest, its body read whole.
async fn raw_get(client: reqwest::Client, url: std::sync::Arc<str>, read: Read) {
    let response = client.get(&*url).send().await.unwrap();
    match read {
        Read::Bytes => drop(response.bytes().await.unwrap()),
        Read::Text => drop(response.text().await.unwrap()),
    }
}

/// One GET through the crate's `Client`, its body read whole.
async fn client_get(client: reqwest_resilience::Client, url: std::sync::Arc<str>, read: Read) {
    let response = client.get(&*url).send().await.unwrap();
    match read {
        Read::Bytes => drop(response.bytes().await.unwrap()),
        Read::Text => drop(response.text().await.unwrap()),
    }
}

/// A loopback HTTP/1.1 server answering every request with 64 bytes; its URL.
async fn serve_64_bytes() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|_req| async {
                    Ok::<_, std::convert::Infallible>(hyper::Response::new(
                        http_body_util::Full::new(Bytes::from_static(&[b'x'; 64])),
                    ))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    url
}
