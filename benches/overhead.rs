//! The cost of our code alone: the classifier on typical responses, and each layer (and the
//! full default stack) over an in-memory inner service, no network.

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http::{HeaderMap, StatusCode};
use reqwest_resilience::GatewayError;
use reqwest_resilience::classify::classify_response;
use reqwest_resilience::fallback::FallbackLayer;
use reqwest_resilience::retry::{RetryLayer, RetryPolicy};
use reqwest_resilience::timeout::{AttemptTimeoutLayer, DeadlineLayer};
use std::hint::black_box;
use std::time::Duration;
use tower::{Service, ServiceBuilder, ServiceExt, service_fn};

const IIS_502_3: &str = "<!DOCTYPE html><html><head><title>IIS 10.0 Detailed Error - 502.3 - Bad Gateway</title></head><body><div id=\"content\"><div class=\"content-container\"><h3>HTTP Error 502.3 - Bad Gateway</h3><h4>A connection with the server could not be established</h4></div><div class=\"content-container\"><fieldset><h4>Detailed Error Information:</h4><table><tr><th>Module</th><td>&nbsp;&nbsp;&nbsp;ApplicationRequestRouting</td></tr><tr><th>Error Code</th><td>&nbsp;&nbsp;&nbsp;0x80072efd</td></tr></table></fieldset></div><a href=\"https://go.microsoft.com/fwlink/?LinkID=62293&amp;IIS70Error=502,3,0x80072efd,17763\">More</a></div></body></html>";
const NGINX_502: &str = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx/1.22.1</center>\r\n</body>\r\n</html>\r\n";

fn classifier(c: &mut Criterion) {
    let mut nginx = HeaderMap::new();
    nginx.insert("server", "nginx/1.22.1".parse().unwrap());
    let mut iis = HeaderMap::new();
    iis.insert("server", "Microsoft-IIS/10.0".parse().unwrap());
    let big_503 = "x".repeat(4096);
    let mut group = c.benchmark_group("classify");
    group.bench_function("200", |b| {
        b.iter(|| {
            classify_response(
                black_box(StatusCode::OK),
                black_box(&nginx),
                black_box(b"ok"),
            )
        })
    });
    group.bench_function("nginx 502", |b| {
        b.iter(|| {
            classify_response(
                black_box(StatusCode::BAD_GATEWAY),
                &nginx,
                black_box(NGINX_502.as_bytes()),
            )
        })
    });
    group.bench_function("IIS 502.3 page", |b| {
        b.iter(|| {
            classify_response(
                black_box(StatusCode::BAD_GATEWAY),
                &iis,
                black_box(IIS_502_3.as_bytes()),
            )
        })
    });
    group.bench_function("4 KiB 503", |b| {
        b.iter(|| {
            classify_response(
                black_box(StatusCode::SERVICE_UNAVAILABLE),
                &HeaderMap::new(),
                black_box(big_503.as_bytes()),
            )
        })
    });
    group.finish();
}

type Inner =
    tower::util::BoxCloneSyncService<reqwest_resilience::Request, reqwest::Response, GatewayError>;

fn ok_service() -> Inner {
    Inner::new(service_fn(|_req: reqwest_resilience::Request| async {
        Ok::<_, GatewayError>(reqwest::Response::from(http::Response::new(
            Bytes::from_static(b"ok"),
        )))
    }))
}

fn request() -> reqwest_resilience::Request {
    reqwest::Request::new(
        reqwest::Method::GET,
        "http://primary.test/items?id=1".parse().unwrap(),
    )
    .into()
}

fn layers(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("per request (in-memory inner service)");
    let mut run = |name: &str, mut svc: Inner| {
        group.bench_function(name, |b| {
            b.iter(|| {
                rt.block_on(async { svc.ready().await.unwrap().call(request()).await.unwrap() })
            })
        });
    };
    run("bare service_fn", ok_service());
    run(
        "retry",
        Inner::new(RetryLayer::new(RetryPolicy::default()).layer_on(ok_service())),
    );
    run(
        "deadline",
        Inner::new(DeadlineLayer::new(Duration::from_secs(30)).layer_on(ok_service())),
    );
    run(
        "attempt timeout",
        Inner::new(AttemptTimeoutLayer::new(Duration::from_secs(10)).layer_on(ok_service())),
    );
    let fallback = FallbackLayer::new(["http://primary.test", "http://backup.test"]).unwrap();
    run(
        "fallback",
        Inner::new(fallback.clone().layer_on(ok_service())),
    );
    let full = ServiceBuilder::new()
        .layer(DeadlineLayer::new(Duration::from_secs(30)))
        .layer(RetryLayer::new(RetryPolicy::default()))
        .layer(fallback)
        .layer(AttemptTimeoutLayer::new(Duration::from_secs(10)))
        .service(ok_service());
    run("full default stack", Inner::new(full));
    group.finish();
}

/// The two ways per-request state could travel (issue: request state): wrapped in this crate's
/// `Request` (what the layers take), or in the extensions of an `http::Request` converted to
/// and from reqwest's at every hop (reqwest keeps its own extensions private). One hop each.
fn request_state(c: &mut Criterion) {
    #[derive(Clone)]
    struct State;
    let mut group = c.benchmark_group("request state, one hop");
    group.bench_function("wrap in reqwest_resilience::Request", |b| {
        b.iter(|| {
            let mut request = reqwest_resilience::Request::from(black_box(raw_request()));
            request.options_mut().idempotent = true;
            black_box(request.into_inner())
        })
    });
    group.bench_function("http::Request extensions round trip", |b| {
        b.iter(|| {
            let mut http: http::Request<reqwest::Body> =
                black_box(raw_request()).try_into().unwrap();
            http.extensions_mut().insert(State);
            let back: reqwest::Request = http.try_into().unwrap();
            black_box(back)
        })
    });
    group.finish();
}

fn raw_request() -> reqwest::Request {
    reqwest::Request::new(
        reqwest::Method::GET,
        "http://primary.test/items?id=1".parse().unwrap(),
    )
}

/// `Layer::layer`, read left to right.
trait LayerOn: Sized {
    fn layer_on<S>(self, inner: S) -> <Self as tower::Layer<S>>::Service
    where
        Self: tower::Layer<S>,
    {
        tower::Layer::layer(&self, inner)
    }
}
impl<L> LayerOn for L {}

criterion_group!(benches, classifier, layers, request_state);
criterion_main!(benches);
