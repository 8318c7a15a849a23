//! The innermost service: one HTTP exchange over a `reqwest::Client`, speaking [`GatewayError`].

mod future;
mod peek;

pub use peek::BODY_PEEK_WAIT;

use crate::error::{Details, ErrorKind, GatewayError, Origin};
use crate::proxy::ProxyMap;
use crate::request::{Request, Tracker};
use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tower_service::Service;

/// A `tower::Service<`[`Request`]`>` that sends each request once with a `reqwest::Client`.
///
/// Transport failures become their [`GatewayError`] variant. A 5xx response has the start of
/// its body read and classified: up to
/// [`BODY_PREFIX_LIMIT`](crate::classify::BODY_PREFIX_LIMIT) bytes, or what arrives within
/// [`BODY_PEEK_WAIT`] of the head, whichever ends first (a stalled body is classified from
/// what came, never waited for). A gateway failure becomes `Err` with the response snapshot in
/// the error; any other response (including an application's own 500) reaches the caller whole,
/// the bytes read put back in front of the rest of the body. Responses below 500 are passed on
/// untouched. Credentials written in the request's URL are sent as its `Authorization` header.
///
/// ```no_run
/// use reqwest_resilience::Transport;
/// use tower::ServiceExt;
///
/// # async fn run() -> Result<(), reqwest_resilience::GatewayError> {
/// let transport = Transport::new(reqwest::Client::new());
/// let request = reqwest::Request::new(reqwest::Method::GET, "http://127.0.0.1:8080/".parse().unwrap());
/// let response = transport.oneshot(request.into()).await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Default)]
pub struct Transport {
    client: reqwest::Client,
    proxies: Option<Arc<ProxyMap>>,
    redirects_tracked: bool,
    deadline_header: Option<Arc<crate::timeout::DeadlineHeader>>,
}

impl Transport {
    /// A transport sending with `client`.
    pub fn new(client: reqwest::Client) -> Transport {
        Transport {
            client,
            proxies: None,
            redirects_tracked: false,
            deadline_header: None,
        }
    }

    /// Puts `header` on each request sent, with the time its deadline leaves (see
    /// [`DeadlineHeader`](crate::timeout::DeadlineHeader)); an attempt below its minimum is not
    /// sent. Redirects to another host are refused only when `client` was built with
    /// [`redirect::tracking`](crate::redirect::tracking); otherwise its redirect policy decides
    /// (reqwest's default follows them, header included).
    pub fn propagate_deadline(mut self, header: crate::timeout::DeadlineHeader) -> Transport {
        self.deadline_header = Some(Arc::new(header));
        self
    }

    pub(crate) fn with_deadline_header(
        mut self,
        header: Option<Arc<crate::timeout::DeadlineHeader>>,
    ) -> Transport {
        self.deadline_header = header;
        self
    }

    /// Declares that `client` tells this crate about redirects: it was built with
    /// [`redirect::tracking`](crate::redirect::tracking) (or never follows redirects). Only
    /// then does a connection failure prove that a request was never sent, which licenses
    /// resending a POST (see [`redirect`](crate::redirect)). Clients built by
    /// [`ClientBuilder`](crate::ClientBuilder) are.
    pub fn redirects_tracked(mut self, tracked: bool) -> Transport {
        self.redirects_tracked = tracked;
        self
    }

    /// Tells the transport that `client` sends through the forward proxy at `proxy_url` (for
    /// every scheme), so that errors name it and [`diagnosis`](GatewayError::diagnosis) can
    /// tell the proxy's failures from failures behind it. It does not configure the proxy:
    /// `reqwest::ClientBuilder::proxy` does. Credentials in the URL are never kept.
    pub fn with_proxy(mut self, proxy_url: &str) -> Transport {
        self.proxies = ProxyMap::all(proxy_url).map(Arc::new);
        self
    }

    pub(crate) fn with_proxy_map(mut self, proxies: Option<Arc<ProxyMap>>) -> Transport {
        self.proxies = proxies;
        self
    }

    /// The `reqwest::Client` used.
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }
}

pub use future::ResponseFuture;

/// The future reqwest gives for one exchange, nameable through its `tower::Service` impl.
type Pending = <reqwest::Client as Service<reqwest::Request>>::Future;

impl Service<Request> for Transport {
    type Response = reqwest::Response;
    type Error = GatewayError;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        let tracker = request.tracker();
        if let (Some(header), Some(deadline)) = (&self.deadline_header, request.state().deadline) {
            // The deadline's time left decides whether to send; the header says the sooner of
            // that and this attempt's own timer (the server need not work past either).
            let left = deadline.remaining();
            if left.is_zero() || left < header.minimum {
                return ResponseFuture::failed(too_little_left(
                    &request,
                    &tracker,
                    left,
                    header.minimum,
                ));
            }
            let left = match request.state().attempt_ends {
                Some(ends) => left.min(ends.saturating_duration_since(tokio::time::Instant::now())),
                None => left,
            };
            let value = header.value(left);
            request
                .inner_mut()
                .headers_mut()
                .insert(header.name.clone(), value);
            tracker.note_deadline_header();
        }
        let mut request = request.into_inner();
        // Credentials still written in the URL go to this URL's server, as a header.
        crate::credentials::apply(&mut request);
        let sent = Sent {
            #[cfg(feature = "metrics")]
            metrics: crate::metrics::OnWire::new(request.method(), request.url()),
            method: request.method().clone(),
            // Which URL was sent to, for a client that does not tell of redirects: a failure
            // at another one came after a followed redirect.
            sent_to: (!self.redirects_tracked).then(|| fingerprint(request.url())),
            redirects_before: tracker.redirects(),
            proxies: self.proxies.clone(),
            redirects_tracked: self.redirects_tracked,
        };
        tracker.count_send();
        let call = crate::redirect::sending(tracker.clone(), (&self.client).call(request));
        ResponseFuture::new(call, sent, tracker)
    }
}

/// The error of an attempt not sent because its deadline leaves less than the deadline
/// header's minimum.
fn too_little_left(
    request: &Request,
    tracker: &Tracker,
    left: Duration,
    minimum: Duration,
) -> GatewayError {
    // Nothing was sent: not an attempt (as an open circuit's refusal), and the request's last
    // real failure, if any, is its cause.
    tracker.note_refused();
    let mut details = Details::new(
        ErrorKind::DeadlineExceeded,
        Origin::Local,
        format!(
            "the deadline leaves {}, less than the {} an attempt needs: not sent",
            crate::error::Shown(left),
            crate::error::Shown(minimum)
        )
        .into(),
    )
    .with_request_unsent(true)
    .with_causes(tracker.last_failure().into_iter().collect());
    details.set_method(request.method().clone());
    details.set_server(request.url());
    details.set_attempts(tracker.attempts());
    GatewayError::from_details(details)
}

/// What the transport keeps of a request it sent, to report its failure.
pub(crate) struct Sent {
    /// When it was sent and where, for `http.client.request.duration` (recorded once, when it
    /// ends or when it is dropped).
    #[cfg(feature = "metrics")]
    pub(crate) metrics: crate::metrics::OnWire,
    pub(crate) method: reqwest::Method,
    pub(crate) sent_to: Option<u64>,
    pub(crate) redirects_before: u32,
    pub(crate) proxies: Option<Arc<ProxyMap>>,
    pub(crate) redirects_tracked: bool,
}

impl Sent {
    /// The proxy the request to `url` went through, if the transport knows of one.
    fn proxy_for(&self, url: &reqwest::Url) -> Option<String> {
        self.proxies.as_ref().and_then(|p| p.for_url(url))
    }

    /// Records the request's `http.client.request.duration`, by how it ended.
    #[cfg(feature = "metrics")]
    pub(crate) fn record(&mut self, outcome: &Result<reqwest::Response, GatewayError>) {
        self.metrics.finish(outcome);
    }
}

/// What the transport makes of reqwest's outcome: decided at once (a response below 500, a
/// transport error), or once the start of a 5xx's body is read and classified.
pub(crate) enum Judgement<F> {
    Decided(Result<reqwest::Response, GatewayError>),
    Classifying(F),
}

/// Judges the outcome of reqwest's call: passed on as it is below 500, else classified (a 5xx
/// after reading the start of its body).
///
/// Only a 5xx with a body to read waits (one whose body is known to be empty is judged at
/// once); its future holds the read of the body's start and what the error needs,
/// not the response besides (it would hold it twice). That future is boxed for every 5xx, and at
/// 1,032 bytes or less glibc serves it from its per-thread cache.
pub(crate) fn judge(
    outcome: Result<reqwest::Response, reqwest::Error>,
    #[cfg_attr(not(feature = "metrics"), allow(unused_mut))] mut sent: Sent,
    tracker: Arc<Tracker>,
) -> Judgement<
    Classifying<impl Future<Output = Result<reqwest::Response, GatewayError>> + Send + 'static>,
> {
    // A response names its final URL; a transport error names the URL as requested.
    let response = match outcome {
        Ok(response) if response.status().is_server_error() => response,
        Ok(response) => return Judgement::Decided(handed_on(response, Some(&mut sent))),
        Err(err) => {
            let proxy = err.url().and_then(|url| sent.proxy_for(url));
            let redirected = tracker.redirects() != sent.redirects_before;
            let failed = Err(GatewayError::from_reqwest_sent(err));
            let outcome = finish(failed, &mut sent, &tracker, redirected, proxy, true);
            return Judgement::Decided(outcome);
        }
    };
    // The head is here: an attempt timeout firing while the body's start is read lets this
    // attempt end with what it got.
    tracker.note_head();
    // The redirect policy says so when it tracks redirects; else a response for another URL
    // shows one (a redirect to the same URL then goes unseen, which is why an untracked
    // client's failures never count as unsent).
    let redirected = tracker.redirects() != sent.redirects_before
        || sent
            .sent_to
            .is_some_and(|sent_to| fingerprint(response.url()) != sent_to);
    // Which proxy the request went through: worked out for every 5xx (an origin's answer
    // among them), not for a response below 500.
    let proxy = sent.proxy_for(response.url());
    if has_no_body(&response) {
        // Nothing to read: judged now, from the status and the headers. The response is
        // handed on as it came when it is the origin's answer.
        let outcome = peek::classify_bodiless(response);
        return Judgement::Decided(finish(
            outcome, &mut sent, &tracker, redirected, proxy, false,
        ));
    }
    Judgement::Classifying(Classifying {
        read: peek::classify(response),
        ended: Some(Ended {
            sent,
            tracker,
            redirected,
            proxy,
        }),
    })
}

/// A response below 500, handed on as it is (its exchange recorded in the metrics).
pub(crate) fn handed_on(
    response: reqwest::Response,
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))] sent: Option<&mut Sent>,
) -> Result<reqwest::Response, GatewayError> {
    let outcome = Ok(response);
    #[cfg(feature = "metrics")]
    if let Some(sent) = sent {
        sent.record(&outcome);
    }
    outcome
}

/// Whether the response is known to have no body at all: an HTTP/1 response whose length is
/// 0 (`Content-Length: 0`, or the head of a `HEAD`), which can have neither bytes nor
/// trailers. Over HTTP/2 a `content-length: 0` header says nothing of the stream's end (it may
/// still carry trailers, or fail): such a body is read as any other.
fn has_no_body(response: &reqwest::Response) -> bool {
    response.version() <= http::Version::HTTP_11 && response.content_length() == Some(0)
}

pin_project_lite::pin_project! {
    /// A 5xx being classified from the start of its body, then [`finish`]ed. Written out, not
    /// an `async` block: awaiting the read it captured would move it into a second slot.
    pub(crate) struct Classifying<F> {
        #[pin]
        read: F,
        // Taken when the read ends.
        ended: Option<Ended>,
    }
}

/// What [`finish`] needs besides the outcome.
struct Ended {
    sent: Sent,
    tracker: Arc<Tracker>,
    redirected: bool,
    proxy: Option<String>,
}

impl<F> Future for Classifying<F>
where
    F: Future<Output = Result<reqwest::Response, GatewayError>>,
{
    type Output = Result<reqwest::Response, GatewayError>;

    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Some(ended) = this.ended.as_mut() else {
            return Poll::Ready(Err(crate::boxed_future::polled_after_end(
                "the transport's",
            )));
        };
        let outcome = std::task::ready!(this.read.poll(cx));
        let Ended {
            sent,
            tracker,
            redirected,
            proxy,
        } = ended;
        let outcome = finish(outcome, sent, tracker, *redirected, proxy.take(), false);
        *this.ended = None;
        Poll::Ready(outcome)
    }
}

/// A judged outcome's error completed with what the transport knows of the attempt: its
/// method, its proxy, a redirect followed, whether it can be proved unsent.
fn finish(
    outcome: Result<reqwest::Response, GatewayError>,
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))] sent: &mut Sent,
    tracker: &Tracker,
    redirected: bool,
    proxy: Option<String>,
    named_as_requested: bool,
) -> Result<reqwest::Response, GatewayError> {
    let outcome = outcome.map_err(|mut err| {
        let details = err.details_mut();
        if !sent.redirects_tracked {
            // A redirect may have been followed unseen: nothing proves the request unsent, and
            // a transport error's server may not be the hop that failed.
            details.clear_unsent();
            if named_as_requested && !redirected {
                details.set_redirects_unseen();
            }
        }
        if redirected {
            // reqwest names the original URL of a transport error; the hop that failed is the
            // redirect's target (a response's URL already is).
            details.set_redirected(tracker.redirect_target());
        }
        details.set_method(sent.method.clone());
        details.set_attempts(1);
        if let Some(proxy) = &proxy {
            details.set_proxy(proxy);
        }
        tracing::debug!(error.type = err.kind().name(), error = %err, "attempt failed");
        err
    });
    #[cfg(feature = "metrics")]
    sent.record(&outcome);
    outcome
}

/// A cheap fingerprint of a URL without its fragment (which reqwest drops from a response's
/// URL), to tell whether a response is for another URL than the one sent to without keeping a
/// copy of it.
pub(crate) fn fingerprint(url: &reqwest::Url) -> u64 {
    use std::hash::Hasher;
    let mut hasher = crate::host::FastHasher::default();
    // The fragment is known to the URL: cut without searching for its '#'.
    let whole = url.as_str();
    let without_fragment = match url.fragment() {
        Some(fragment) => whole
            .get(..whole.len().saturating_sub(fragment.len() + 1))
            .unwrap_or(whole),
        None => whole,
    };
    hasher.write(without_fragment.as_bytes());
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::{Judgement, Sent, fingerprint, judge};

    fn sent() -> Sent {
        Sent {
            #[cfg(feature = "metrics")]
            metrics: crate::metrics::OnWire::new(
                &http::Method::GET,
                &"http://a.test/".parse().unwrap(),
            ),
            method: http::Method::GET,
            sent_to: None,
            redirects_before: 0,
            proxies: None,
            redirects_tracked: true,
        }
    }

    /// A 5xx is judged at once only when it cannot have a body: an HTTP/1 response of length
    /// 0. Over HTTP/2 a `content-length: 0` may still be followed by trailers or a reset, and
    /// a body of unknown length may hold anything: both are read.
    #[tokio::test]
    async fn only_an_http1_5xx_of_length_0_is_judged_without_reading_its_body() {
        let response = |version, body: reqwest::Body| -> reqwest::Response {
            http::Response::builder()
                .status(502)
                .version(version)
                .header("server", "nginx")
                .body(body)
                .unwrap()
                .into()
        };
        let judged = |response| {
            let tracker = std::sync::Arc::new(crate::request::Tracker::default());
            match judge(Ok(response), sent(), tracker) {
                Judgement::Decided(outcome) => Some(outcome),
                Judgement::Classifying(_) => None,
            }
        };
        for version in [http::Version::HTTP_10, http::Version::HTTP_11] {
            let outcome = judged(response(version, reqwest::Body::from("")))
                .expect("an HTTP/1 502 of length 0 is judged at once");
            let err = outcome.expect_err("nginx's bodiless 502 is its failure");
            assert_eq!(err.kind(), crate::ErrorKind::BadGateway, "{err}");
            assert_eq!(err.details().method(), Some(&http::Method::GET));
            assert!(
                err.details()
                    .response()
                    .is_some_and(|r| r.is_body_complete())
            );
        }
        assert!(
            judged(response(http::Version::HTTP_2, reqwest::Body::from(""))).is_none(),
            "an HTTP/2 502 is read, whatever its length"
        );
        let unknown_length = reqwest::Body::wrap(http_body_util::StreamBody::new(
            futures_util::stream::empty::<Result<http_body::Frame<bytes::Bytes>, std::io::Error>>(),
        ));
        assert!(
            judged(response(http::Version::HTTP_11, unknown_length)).is_none(),
            "a body of unknown length is read"
        );
    }

    #[tokio::test]
    async fn a_5xx_is_classified_by_a_future_that_fits_the_allocators_per_thread_cache() {
        // Boxed for every 5xx an attempt gets: glibc serves up to 1,032 bytes from its
        // per-thread cache, and a larger allocation costs several hundred instructions more
        // to make and to free. (As an `async fn` it was 1,224 bytes.)
        let sent = sent();
        let page = http::Response::builder()
            .status(502)
            .body(reqwest::Body::from("<html>502 Bad Gateway</html>"))
            .unwrap();
        let tracker = std::sync::Arc::new(crate::request::Tracker::default());
        let Judgement::Classifying(future) = judge(Ok(page.into()), sent, tracker) else {
            panic!("a 502 is classified from its body");
        };
        let size = std::mem::size_of_val(&future);
        assert!(size <= 1_032, "the classifying future is {size} bytes");
        // And it still judges, and completes the error with what the transport knows.
        let err = future.await.expect_err("a 502 page is a gateway's failure");
        assert_eq!(err.kind(), crate::ErrorKind::BadGateway);
        assert_eq!(err.details().method(), Some(&http::Method::GET));
    }

    #[test]
    fn a_fingerprint_ignores_the_fragment_only() {
        let url = |s: &str| reqwest::Url::parse(s).unwrap();
        let plain = fingerprint(&url("http://a.test/x?q=1"));
        assert_eq!(plain, fingerprint(&url("http://a.test/x?q=1#part")));
        assert_eq!(plain, fingerprint(&url("http://a.test/x?q=1#")));
        assert_ne!(plain, fingerprint(&url("http://a.test/x?q=2")));
        assert_ne!(plain, fingerprint(&url("http://a.test/x?q=1%23part")));
        assert_ne!(plain, fingerprint(&url("http://a.test/y?q=1#part")));
    }
}
