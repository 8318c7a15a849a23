//! Turning what a caller sees into a [`GatewayError`](crate::GatewayError) cause.
//!
//! Two pure functions do the work: [`classify_response`] reads an upstream's status, headers and
//! the first [`BODY_PREFIX_LIMIT`] bytes of its body; [`classify_transport`] reads a `reqwest`
//! error down its `source()` chain to hyper and `std::io`. Both return a [`Classification`]: the
//! [`ErrorKind`], the [`Gateway`] that reported it when recognised, and the evidence.
//!
//! # Whose answer it is
//!
//! A response is a gateway's failure only when a gateway is identified; otherwise it is the
//! origin's answer, returned as it is. On the gateway statuses (502, 503, 504 and the CDN codes
//! 520–527, 530) the page refines the cause, as below. Any other 5xx (an application's 500,
//! 501…) is the origin's answer unless its headers name the product whose own error page it is
//! (Squid's `X-Squid-Error`, Tinyproxy, Apache's `mod_proxy`): a JSON 500 quoting its database's
//! `connection refused` reaches the caller as `Ok(response)`, whole, is never counted by a
//! circuit or an ejection, and is retried only by a rule the user wrote
//! ([`retry_on_status`](crate::retry::RetryPolicy::retry_on_status)).
//!
//! # How a gateway-status response is read, in order
//!
//! 1. **Products.** The pages of the products the crate knows (IIS/ARR, Squid, Envoy,
//!    Cloudflare, HAProxy, Tinyproxy, Apache httpd, Varnish), each at the statuses the product
//!    sends it with (see [`classify_response`]).
//! 2. **Runtime error texts.** Any gateway's page (HTML, JSON or plain text) that quotes a
//!    network error as a runtime or system library prints it: glibc's `strerror` and
//!    `gai_strerror`, errno names, Go's `net` and `net/http`, Node.js, Python, Java, .NET, Rust's
//!    `std::io` and hyper, curl, nginx's log texts, proxies' plain English. Matched
//!    case-insensitively on word boundaries across line breaks; when a page names several,
//!    the failure nearest the start of the exchange wins: a DNS failure, then a failed
//!    connect, then a failed write, then a reset or early close, then a malformed answer, then
//!    a timeout. The evidence reads `body says: connection refused`. This stage is what
//!    refines an unknown proxy's 502, 503 or 504.
//! 3. **The status.** 502, 503 and 504 by themselves.
//!
//! No body text ever proves a request unsent (only a product identified by its headers at its
//! own status does): it informs the cause and the diagnosis, never the licence to resend a
//! request that is not idempotent.

pub(crate) mod convert;
mod response;
mod transport;
mod vocabulary;

pub use crate::gateway::Gateway;
pub use response::classify_response;
#[cfg(feature = "middleware")]
pub(crate) use transport::classify_chain;
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
