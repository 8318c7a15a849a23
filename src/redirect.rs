//! Knowing when a request was answered with a redirect.
//!
//! A POST answered `303 See Other` was delivered: the redirect is its answer. If following the
//! redirect then fails to connect, that failure must not read as "the request never reached a
//! server", or the POST would be sent again. reqwest reports such a failure with the original
//! URL and no sign of the redirect, so the crate learns of redirects from the redirect policy:
//! [`tracking`] wraps any `reqwest::redirect::Policy` and tells the transport, for the request
//! being sent, that a redirect answer arrived.
//!
//! [`ClientBuilder`](crate::ClientBuilder) installs it on every `reqwest::Client` it builds
//! (see [`ClientBuilder::redirect`](crate::ClientBuilder::redirect)). A `reqwest::Client` built
//! elsewhere (given to [`ClientBuilder::reqwest_client`](crate::ClientBuilder::reqwest_client)
//! or [`Transport::new`](crate::Transport::new)) is not known to track redirects: its transport
//! failures then never count as proof that a request was unsent, so a POST is not resent after
//! one, unless [`Transport::redirects_tracked`](crate::Transport::redirects_tracked) says the
//! client was built with [`tracking`] (or never follows redirects).

use crate::request::Tracker;
use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

thread_local! {
    /// The tracker of the request the transport is sending, while its call into reqwest is
    /// polled ([`Sending`] puts it here and takes it back around each poll). Private to the
    /// transport's call into reqwest: reqwest's redirect policy, which runs inside that poll,
    /// has no other way to tell which request it decides for. No layer reads it, and it never
    /// crosses a layer boundary, a spawn or a nested client.
    static SENDING: Cell<Option<Arc<Tracker>>> = const { Cell::new(None) };
}

pin_project_lite::pin_project! {
    /// The transport's call into reqwest, with the tracker the redirect policy tells while it
    /// is polled. (A `tokio::task_local!` did the same at about twice the cost per poll.)
    pub(crate) struct Sending<F> {
        tracker: Option<Arc<Tracker>>,
        #[pin]
        call: F,
    }
}

/// Runs the transport's call into reqwest with `tracker` as the one the redirect policy tells.
pub(crate) fn sending<F: Future>(tracker: Arc<Tracker>, call: F) -> Sending<F> {
    Sending {
        tracker: Some(tracker),
        call,
    }
}

impl<F: Future> Future for Sending<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        // Put back when the poll ends, even by a panic: an outer request's tracker (a client
        // polled inside another's call, which no transport does) and this one's own.
        struct Restore<'a> {
            slot: &'a mut Option<Arc<Tracker>>,
            outer: Option<Arc<Tracker>>,
        }
        impl Drop for Restore<'_> {
            fn drop(&mut self) {
                *self.slot = SENDING.with(|current| current.replace(self.outer.take()));
            }
        }
        let outer = SENDING.with(|current| current.replace(this.tracker.take()));
        let _restore = Restore {
            slot: this.tracker,
            outer,
        };
        this.call.poll(cx)
    }
}

/// Reads the tracker of the request being sent, if one is.
fn with_sending<T>(read: impl FnOnce(&Tracker) -> T) -> Option<T> {
    SENDING
        .try_with(|current| {
            let tracker = current.take();
            let found = tracker.as_deref().map(read);
            current.set(tracker);
            found
        })
        .ok()
        .flatten()
}

/// `policy`, telling this crate when a request is answered with a redirect. It decides exactly
/// as `policy` does.
///
/// ```
/// use reqwest_resilience::{Transport, redirect};
///
/// let client = reqwest::Client::builder()
///     .redirect(redirect::tracking(reqwest::redirect::Policy::limited(5)))
///     .build()
///     .unwrap();
/// let transport = Transport::new(client).redirects_tracked(true);
/// ```
pub fn tracking(policy: reqwest::redirect::Policy) -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(move |attempt| {
        // A request carrying the deadline header does not follow a redirect to another host:
        // reqwest would copy the header there (see `timeout::DeadlineHeader`).
        let carries = with_sending(Tracker::carries_deadline_header).unwrap_or(false);
        if carries
            && attempt
                .previous()
                .last()
                .is_some_and(|previous| !same_host(previous, attempt.url()))
        {
            return attempt.stop();
        }
        // Asked at all: the request before this one was delivered and answered.
        with_sending(|tracker| tracker.note_redirect(attempt.url()));
        policy.redirect(attempt)
    })
}

/// The same scheme, host and port.
fn same_host(a: &reqwest::Url, b: &reqwest::Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default()
}
