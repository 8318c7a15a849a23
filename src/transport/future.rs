//! The transport's future: reqwest's call in place, and only a 5xx (its body's start read and
//! classified) boxed; a transport error is judged at once.

use super::{Judgement, Pending, Sent, judge};
use crate::boxed_future::ResponseFuture as BoxedFuture;
use crate::error::GatewayError;
use crate::request::Tracker;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

pin_project_lite::pin_project! {
    /// The future of the [`Transport`](super::Transport): a response, or the [`GatewayError`]
    /// of a failed exchange. `Send`.
    pub struct ResponseFuture {
        #[pin]
        state: State,
    }
}

pin_project_lite::pin_project! {
    #[project = StateProj]
    enum State {
        // reqwest's call, with the request's tracker in scope for the redirect policy.
        Sending {
            #[pin]
            call: crate::redirect::Sending<Pending>,
            sent: Option<(Sent, Arc<Tracker>)>,
        },
        // A 5xx being classified, or an error known before sending.
        Judging { future: BoxedFuture },
    }
}

impl ResponseFuture {
    pub(super) fn new(
        call: crate::redirect::Sending<Pending>,
        sent: Sent,
        tracker: Arc<Tracker>,
    ) -> ResponseFuture {
        ResponseFuture {
            state: State::Sending {
                call,
                sent: Some((sent, tracker)),
            },
        }
    }
}

impl ResponseFuture {
    /// A future that fails with `err` (nothing was sent).
    pub(super) fn failed(err: GatewayError) -> ResponseFuture {
        ResponseFuture {
            state: State::Judging {
                future: BoxedFuture::failed(err),
            },
        }
    }
}

impl std::fmt::Debug for ResponseFuture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl Future for ResponseFuture {
    type Output = Result<reqwest::Response, GatewayError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.as_mut().project().state;
        let (outcome, sent) = match state.as_mut().project() {
            StateProj::Judging { future } => return Pin::new(future).poll(cx),
            StateProj::Sending { call, sent } => {
                // Taken when reqwest's call ends: polled again after that, the future says so
                // instead of polling a finished call.
                if sent.is_none() {
                    return Poll::Ready(Err(ended()));
                }
                let outcome = std::task::ready!(call.poll(cx));
                let sent = sent.take();
                match outcome {
                    // Below 500: the response as it is, with nothing more to do.
                    Ok(response) if !response.status().is_server_error() => {
                        let mut sent = sent;
                        return Poll::Ready(super::handed_on(
                            response,
                            sent.as_mut().map(|(sent, _)| sent),
                        ));
                    }
                    outcome => (outcome, sent),
                }
            }
        };
        match (outcome, sent) {
            (outcome, Some((sent, tracker))) => match judge(outcome, sent, tracker) {
                Judgement::Decided(outcome) => Poll::Ready(outcome),
                Judgement::Classifying(future) => {
                    let mut future = BoxedFuture::new(future);
                    let poll = Pin::new(&mut future).poll(cx);
                    state.set(State::Judging { future });
                    poll
                }
            },
            (_, None) => Poll::Ready(Err(ended())),
        }
    }
}

fn ended() -> GatewayError {
    crate::boxed_future::polled_after_end("the transport")
}
