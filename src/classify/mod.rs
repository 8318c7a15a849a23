//! Turning what a caller sees into a [`GatewayError`](crate::GatewayError) cause.
//!
//! Two pure functions do the work: [`classify_response`] reads an upstream's status, headers and
//! the first [`BODY_PREFIX_LIMIT`] bytes of its body; [`classify_transport`] reads a `reqwest`
//! error down its `source()` chain to hyper and `std::io`. Both return a [`Classification`]: the
//! [`ErrorKind`], the [`Gateway`] that reported it when recognised, and the evidence.

mod response;
mod transport;
mod vocabulary;

pub use crate::gateway::Gateway;
pub use response::classify_response;
pub use transport::classify_transport;

use crate::error::ErrorKind;
use std::borrow::Cow;

/// How many bytes of a 5xx body are read to classify it: 4 KiB. Error pages put their markers
/// (titles, headings, reason texts) well within it; the rest of the body is never buffered.
pub const BODY_PREFIX_LIMIT: usize = 4096;

/// What a classifier concluded.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Classification {
    /// The cause.
    pub kind: ErrorKind,
    /// The gateway product that reported it, when recognised.
    pub gateway: Option<Gateway>,
    /// What the conclusion rests on, in a short phrase.
    pub evidence: Cow<'static, str>,
    /// Whether the evidence proves the request never reached the origin (the hop could not
    /// connect, or there was no server), so that sending it again cannot duplicate it.
    pub request_unsent: bool,
    /// Whether sending the same request to the same server would fail the same way: a
    /// certificate this client rejects, a port that does not speak TLS, a proxy that refuses
    /// the tunnel or wants credentials. Such a failure is not retried on that server (a
    /// fallback server may still be tried).
    pub permanent: bool,
    /// Whether the TLS session with the server failed (the handshake, or the server's
    /// certificate). Through a forward proxy's tunnel that session is with the origin.
    pub tls: bool,
    /// Whether the forward proxy refused the request itself (a `407` or another answer to
    /// `CONNECT`): no other server would fare better.
    pub proxy_refused: bool,
}

impl Classification {
    pub(crate) fn new(
        kind: ErrorKind,
        gateway: Option<Gateway>,
        evidence: impl Into<Cow<'static, str>>,
    ) -> Self {
        Classification {
            kind,
            gateway,
            evidence: evidence.into(),
            request_unsent: false,
            permanent: false,
            tls: false,
            proxy_refused: false,
        }
    }

    pub(crate) fn unsent(mut self) -> Self {
        self.request_unsent = true;
        self
    }

    pub(crate) fn permanent(mut self) -> Self {
        self.permanent = true;
        self
    }

    pub(crate) fn tls(mut self) -> Self {
        self.tls = true;
        self
    }

    pub(crate) fn proxy_refused(mut self) -> Self {
        self.proxy_refused = true;
        self
    }
}
