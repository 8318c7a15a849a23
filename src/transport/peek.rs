//! Reading the start of a 5xx body to classify it, and putting it back when it is not a failure.

use crate::classify::BODY_PREFIX_LIMIT;
use crate::classify::classify_response;
use crate::error::{GatewayError, ResponseSnapshot};
use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::BodyExt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::response_body::{BoxError, Gathered, rebuild, split};

/// The longest the transport waits for the start of a 5xx body after its head arrived: 50 ms
/// (counted from when the body first keeps it waiting, in the same poll as the head's arrival;
/// a body that came with its head is read without a timer).
///
/// Error pages arrive with their head or right after it; a body still trickling in is
/// classified from what came by then (the status and headers alone, if nothing did). The wait
/// never makes a response whose head arrived into a timeout: the attempt timeout lets it end.
pub const BODY_PEEK_WAIT: std::time::Duration = std::time::Duration::from_millis(50);

/// Classifies a 5xx response: `Err` for a gateway failure, else the same response, whole.
/// (An `async` block over the response it captured: an `async fn` would keep a second copy.)
#[allow(clippy::manual_async_fn)] // an `async fn` would hold its argument twice
pub(super) fn classify(
    response: reqwest::Response,
) -> impl Future<Output = Result<reqwest::Response, GatewayError>> + Send + 'static {
    async move {
        let (url, mut parts, mut body) = split(response);

        let mut prefix = Gathered::Nothing;
        let mut held: Option<Result<Frame<Bytes>, BoxError>> = None;
        let mut complete = false;
        // The wait's end, set when the body first keeps it waiting: a body already here (an
        // error page sent with its head) is read without a timer.
        let mut until = None;
        while prefix.len() < BODY_PREFIX_LIMIT {
            let frame = match next_frame_now(&mut body).await {
                Poll::Ready(frame) => frame,
                Poll::Pending => {
                    let until =
                        *until.get_or_insert_with(|| tokio::time::Instant::now() + BODY_PEEK_WAIT);
                    let Ok(frame) = tokio::time::timeout_at(until, body.frame()).await else {
                        // The body stalls: classify on what came.
                        break;
                    };
                    frame
                }
            };
            match frame {
                None => {
                    complete = true;
                    break;
                }
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => prefix.push(data, 0),
                    Err(trailers) => {
                        held = Some(Ok(trailers));
                        break;
                    }
                },
                Some(Err(err)) => {
                    held = Some(Err(err.into()));
                    break;
                }
            }
        }
        let prefix = prefix.into_bytes();
        let seen = prefix.slice(..prefix.len().min(BODY_PREFIX_LIMIT));
        let whole = complete && seen.len() == prefix.len();

        if let Some(found) = classify_response(parts.status, &parts.headers, &seen) {
            // A gateway's failure: the response ends here, its headers move into the error. The
            // body's start is copied: a frame kept as it came may be a slice of the
            // connection's read buffer, which an error kept as a cause would hold whole.
            let headers = std::mem::take(&mut parts.headers);
            let seen = Bytes::copy_from_slice(&seen);
            let mut err = gateway_failure(found, parts.status, headers, seen, whole);
            err.details_mut().set_server_from(url);
            return Err(err);
        }

        let rest = PrefixedBody {
            prefix: (!prefix.is_empty()).then_some(prefix),
            held,
            rest: (!complete).then_some(body),
        };
        Ok(rebuild(url, parts, rest))
    }
}

/// Classifies a 5xx response whose body is known to be empty (`Content-Length: 0`) as
/// [`classify`] would once it had read that body: from its status and headers, with nothing
/// read. `Err` for a gateway failure, else the response as it came.
pub(super) fn classify_bodiless(
    mut response: reqwest::Response,
) -> Result<reqwest::Response, GatewayError> {
    let Some(found) = classify_response(response.status(), response.headers(), &[]) else {
        return Ok(response);
    };
    let headers = std::mem::take(response.headers_mut());
    let mut err = gateway_failure(found, response.status(), headers, Bytes::new(), true);
    err.details_mut().set_server(response.url());
    Err(err)
}

/// The error of a response classified as a gateway's failure, holding its status, headers and
/// the start of its body (`whole` when that is all of it).
fn gateway_failure(
    found: crate::classify::Classification,
    status: http::StatusCode,
    headers: http::HeaderMap,
    seen: Bytes,
    whole: bool,
) -> GatewayError {
    GatewayError::from_classified(found, ResponseSnapshot::new(status, headers, seen, whole))
}

/// The body's next frame if it is here now; `Pending` (the task's waker registered) if not.
async fn next_frame_now(
    body: &mut reqwest::Body,
) -> Poll<Option<Result<Frame<Bytes>, reqwest::Error>>> {
    std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut *body).poll_frame(cx))).await
}

/// The bytes already read, then whatever was held back (trailers or an error), then the rest.
struct PrefixedBody {
    prefix: Option<Bytes>,
    held: Option<Result<Frame<Bytes>, BoxError>>,
    rest: Option<reqwest::Body>,
}

impl HttpBody for PrefixedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if let Some(prefix) = self.prefix.take() {
            return Poll::Ready(Some(Ok(Frame::data(prefix))));
        }
        if let Some(held) = self.held.take() {
            return Poll::Ready(Some(held));
        }
        match self.rest.as_mut() {
            Some(rest) => Pin::new(rest).poll_frame(cx).map_err(Into::into),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.prefix.is_none()
            && self.held.is_none()
            && self.rest.as_ref().is_none_or(|r| r.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        let known = self.prefix.as_ref().map_or(0, |p| p.len() as u64);
        match &self.rest {
            Some(rest) => {
                let inner = rest.size_hint();
                let mut hint = SizeHint::new();
                if let Some(upper) = inner.upper() {
                    hint.set_upper(upper.saturating_add(known));
                }
                hint.set_lower(inner.lower().saturating_add(known));
                hint
            }
            None => SizeHint::with_exact(known),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bodiless(status: u16, headers: &[(&str, &str)]) -> reqwest::Response {
        let mut builder = http::Response::builder().status(status);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let response: reqwest::Response = builder.body(reqwest::Body::from("")).unwrap().into();
        assert_eq!(response.content_length(), Some(0));
        response
    }

    /// A 5xx whose body is known to be empty is judged at once as the body's read would judge
    /// it: the same error (kind, gateway, evidence, snapshot), or the same response as it came.
    #[tokio::test]
    async fn a_bodiless_5xx_is_judged_as_reading_its_empty_body_would() {
        let cases: &[(u16, &[(&str, &str)])] = &[
            (500, &[]),
            (500, &[("server", "nginx/1.25.3")]),
            (502, &[]),
            (502, &[("server", "nginx/1.25.3")]),
            (502, &[("via", "1.1 varnish (Varnish/7.5)")]),
            (503, &[]),
            (503, &[("server", "envoy")]),
            (
                503,
                &[("server", "envoy"), ("x-envoy-upstream-service-time", "3")],
            ),
            (503, &[("retry-after", "2")]),
            (504, &[("server", "awselb/2.0")]),
            (
                521,
                &[("server", "cloudflare"), ("cf-ray", "8a1b2c3d4e5f-AMS")],
            ),
            (530, &[("cf-ray", "8a1b2c3d4e5f-AMS")]),
            (
                502,
                &[
                    ("x-powered-by", "ASP.NET"),
                    ("server", "Microsoft-IIS/10.0"),
                ],
            ),
        ];
        let (mut gateway_failures, mut origin_answers) = (0, 0);
        for (status, headers) in cases {
            let read = classify(bodiless(*status, headers)).await;
            let judged = classify_bodiless(bodiless(*status, headers));
            match (read, judged) {
                (Err(read), Err(judged)) => {
                    gateway_failures += 1;
                    assert_eq!(read.kind(), judged.kind(), "{status} {headers:?}");
                    assert_eq!(read.to_string(), judged.to_string(), "{status} {headers:?}");
                    assert_eq!(
                        format!("{:?}", read.details()),
                        format!("{:?}", judged.details()),
                        "{status} {headers:?}"
                    );
                }
                (Ok(read), Ok(judged)) => {
                    origin_answers += 1;
                    assert_eq!(read.status(), judged.status(), "{status} {headers:?}");
                    assert_eq!(read.headers(), judged.headers(), "{status} {headers:?}");
                    assert_eq!(judged.content_length(), Some(0));
                    assert!(judged.bytes().await.unwrap().is_empty());
                }
                (read, judged) => panic!("{status} {headers:?}: read {read:?}, judged {judged:?}"),
            }
        }
        assert!(
            gateway_failures >= 8 && origin_answers >= 2,
            "both outcomes exercised: {gateway_failures} failures, {origin_answers} answers"
        );
    }
}
