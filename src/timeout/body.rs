//! Bounding the reading of a response body by a timer, and reporting its failures as causes.
//!
//! The deadline layer bounds every body it hands out by the deadline (unless the caller bounds
//! it as it reads it: a [`Client`](crate::Client)'s [`Response`](crate::Response) does, with
//! the same limit and errors); the attempt timeout does so with its own timer when asked to ([`include_body`](super::AttemptTimeoutLayer::include_body)).
//! A body error (the timer, or the connection failing mid-body: a reset, a close before the
//! announced length) reaches the caller as the `reqwest::Error` reqwest makes of a body error,
//! whose `source()` is the [`GatewayError`](crate::GatewayError): `DeadlineExceeded` or
//! `TimedOut` for the timer (with an `io::Error` of kind `TimedOut` below it, so that
//! `reqwest::Error::is_timeout()` is true), and the transport's cause — `ConnectionClosed` for a
//! truncated or reset body — for the rest.

use crate::error::{Details, ErrorKind, GatewayError, Origin};
use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::time::{Instant, Sleep};

use crate::response_body::{BoxError, rebuild, split};

/// What ran out when a bounded body's timer fires.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Limit {
    /// The logical request's deadline of this length.
    Deadline(std::time::Duration),
    /// The attempt timeout of this length.
    Attempt(std::time::Duration),
}

impl Limit {
    /// The error of a body still streaming when this limit ran out.
    pub(crate) fn error(self) -> GatewayError {
        let (kind, message) = match self {
            Limit::Deadline(total) => (
                ErrorKind::DeadlineExceeded,
                format!(
                    "deadline of {} exceeded while reading the body",
                    crate::error::Shown(total)
                ),
            ),
            Limit::Attempt(timeout) => (
                ErrorKind::TimedOut,
                format!(
                    "the body did not arrive within the attempt timeout of {}",
                    crate::error::Shown(timeout)
                ),
            ),
        };
        let timed_out = std::io::Error::new(std::io::ErrorKind::TimedOut, "timed out");
        let details =
            Details::new(kind, Origin::Local, message.into()).with_source(Arc::new(timed_out));
        GatewayError::from_details(details)
    }
}

/// The logical request a bounded body belongs to: what its body errors must say of it (the
/// body arrived after the request was delivered, so a request that may not be resent says so).
#[derive(Clone)]
pub(crate) struct Owner {
    pub(crate) method: reqwest::Method,
    pub(crate) may_resend: bool,
    /// The request's attempts when its response came (a count, not the tracker: holding the
    /// tracker would keep the logical request open, and its circuit verdict pending, for as
    /// long as the caller keeps the body).
    pub(crate) attempts: u32,
}

impl Owner {
    /// `err` as a failure of this request: delivered, its method, its attempts, and not to be
    /// sent again unless the request may be.
    pub(crate) fn own(&self, mut err: GatewayError) -> GatewayError {
        let details = err.details_mut();
        details.clear_unsent();
        details.set_method(self.method.clone());
        details.set_attempts(self.attempts.max(1));
        if !self.may_resend {
            details.forbid_resend();
        }
        err
    }
}

/// The same response, its body ending with `limit`'s error if still streaming at `ends`.
pub(crate) fn bound(
    response: reqwest::Response,
    ends: Instant,
    limit: Limit,
    owner: Owner,
) -> reqwest::Response {
    bound_body(response, Some(BodyLimit::new(ends, limit)), owner, false)
}

/// The same response, its body's errors `owner`'s, ending with `limit`'s error if still
/// streaming when it runs out (`None`: nothing bounds it), or already over when `ended` (a
/// read of it failed).
pub(crate) fn bound_body(
    response: reqwest::Response,
    limit: Option<BodyLimit>,
    owner: Owner,
    ended: bool,
) -> reqwest::Response {
    let (url, parts, body) = split(response);
    let mut body = TimedBody::new(body, limit, owner);
    if ended {
        body.end();
    }
    rebuild(url, parts, body)
}

/// When a body must have been read, and what runs out then; shared by a bounded body and a
/// client's [`Response`](crate::Response), which bounds its reads the same way.
pub(crate) struct BodyLimit {
    ends: Instant,
    limit: Limit,
    // Made the first time a read has to wait: a body that is already there (most small
    // responses) never registers a timer.
    sleep: Option<Pin<Box<Sleep>>>,
}

impl BodyLimit {
    pub(crate) fn new(ends: Instant, limit: Limit) -> Self {
        BodyLimit {
            ends,
            limit,
            sleep: None,
        }
    }

    /// `Ready` with the limit once it has run out; else `cx` is woken when it does. Asked only
    /// after the body itself had nothing ready: a body already there is read even at the end.
    pub(crate) fn poll_ran_out(&mut self, cx: &mut Context<'_>) -> Poll<Limit> {
        let ends = self.ends;
        if ends <= Instant::now()
            || self
                .sleep
                .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(ends)))
                .as_mut()
                .poll(cx)
                .is_ready()
        {
            return Poll::Ready(self.limit);
        }
        Poll::Pending
    }
}

pin_project_lite::pin_project! {
    /// A response body whose errors are its request's, ending with its limit's error if still
    /// streaming when the limit runs out.
    pub(crate) struct TimedBody {
        #[pin]
        inner: reqwest::Body,
        // `None`: nothing bounds it.
        limit: Option<BodyLimit>,
        done: bool,
        owner: Owner,
    }
}

impl TimedBody {
    pub(crate) fn new(inner: reqwest::Body, limit: Option<BodyLimit>, owner: Owner) -> Self {
        TimedBody {
            inner,
            limit,
            done: false,
            owner,
        }
    }

    /// Ends the body: no more frames (a read of it already failed).
    pub(crate) fn end(&mut self) {
        self.done = true;
    }
}

impl HttpBody for TimedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.project();
        if *this.done {
            return Poll::Ready(None);
        }
        if let Poll::Ready(frame) = this.inner.poll_frame(cx) {
            let owner = &*this.owner;
            return Poll::Ready(frame.map(|f| {
                // The body is over after an error, whatever the body below would do next.
                *this.done |= f.is_err();
                f.map_err(|e| cause(e, owner))
            }));
        }
        let Some(limit) = this.limit.as_mut() else {
            return Poll::Pending;
        };
        let limit = std::task::ready!(limit.poll_ran_out(cx));
        *this.done = true;
        Poll::Ready(Some(Err(Box::new(this.owner.own(limit.error())))))
    }

    fn is_end_stream(&self) -> bool {
        self.done || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        if self.done {
            return SizeHint::with_exact(0);
        }
        self.inner.size_hint()
    }
}

/// A body error from below as this crate's cause (already one, when an inner layer bounded
/// the body too).
fn cause(err: reqwest::Error, owner: &Owner) -> BoxError {
    Box::new(owned_cause(err, owner))
}

/// A body error from below as a failure of `owner`'s request (or the cause an inner layer
/// that bounded the body too already made of it).
pub(crate) fn owned_cause(err: reqwest::Error, owner: &Owner) -> GatewayError {
    // This body's own chain: an inner bounded body's cause is in it.
    match crate::classify::convert::own_cause(&err) {
        Some(ours) => ours,
        None => owner.own(GatewayError::from_reqwest_sent(err)),
    }
}
