//! Bounding the reading of a response body by the attempt's timer.

use crate::error::{ErrorKind, GatewayError};
use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::{Instant, Sleep};

use crate::plumbing::{BoxError, rebuild, split};

/// The same response, its body ending with a `CgiTimeout` error if still streaming at `ends`.
pub(super) fn bound(
    response: reqwest::Response,
    ends: Instant,
    timeout: Duration,
) -> reqwest::Response {
    let (url, parts, body) = split(response);
    let body = TimedBody {
        inner: body,
        sleep: Box::pin(tokio::time::sleep_until(ends)),
        timeout,
        done: false,
    };
    rebuild(url, parts, body)
}

struct TimedBody {
    inner: reqwest::Body,
    sleep: Pin<Box<Sleep>>,
    timeout: Duration,
    done: bool,
}

impl HttpBody for TimedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if self.done {
            return Poll::Ready(None);
        }
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        if self.sleep.as_mut().poll(cx).is_ready() {
            self.done = true;
            let err = GatewayError::new(
                ErrorKind::CgiTimeout,
                format!(
                    "the body did not arrive within the attempt timeout of {:?}",
                    self.timeout
                ),
            );
            return Poll::Ready(Some(Err(Box::new(err))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.done || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
