//! Building a `GatewayError` from what was observed.

use super::{Classification, classify_response, classify_transport};
use crate::error::{Details, GatewayError, Origin, ResponseSnapshot};
use std::sync::Arc;

impl GatewayError {
    /// The error an upstream response stands for, or `None` when the response is not a gateway
    /// failure (see [`classify_response`]). The snapshot is kept in the error.
    pub fn from_response(response: ResponseSnapshot) -> Option<GatewayError> {
        let found = classify_response(
            response.status(),
            response.headers(),
            response.body_prefix(),
        )?;
        Some(GatewayError::from_classified(found, response))
    }

    /// The error of `response`, which [`classify_response`] found to be `found`.
    pub(crate) fn from_classified(found: Classification, response: ResponseSnapshot) -> Self {
        let details = Details::from_classification(found, Origin::Upstream).with_response(response);
        GatewayError::from_details(details)
    }

    /// The error a `reqwest` failure stands for (see [`classify_transport`]). The `reqwest` error
    /// is kept, without its URL, as the `source()`.
    ///
    /// Two `reqwest` errors are not transport failures and keep what they are:
    /// - a **status error** (`error_for_status`) is judged by its status as a response would
    ///   be (a 502, 503, 504 or CDN code is that gateway failure; a 404 or an application's
    ///   500 is [`ErrorKind::Other`](crate::ErrorKind::Other)), and keeps its status;
    /// - a **decode error** of a body that arrived whole (JSON that does not parse) is
    ///   [`ErrorKind::Decode`](crate::ErrorKind::Decode), never retryable: sending the request
    ///   again brings the same body.
    ///
    /// A body error of a body this crate bounded (the deadline layer's, on by default) is the
    /// cause it carries: the deadline, the attempt timeout, a reset or a truncation, with the
    /// request's method and attempts, and — for a request that may not be sent twice — not
    /// retryable.
    pub fn from_reqwest(err: reqwest::Error) -> GatewayError {
        // A body this crate bounds fails with its own cause below reqwest's body error (the
        // deadline, the attempt timeout, a reset mid-body): that cause is the answer. Only a
        // body or decode error's: another error's chain may hold a cause of another request's
        // (a response body forwarded as an upload fails with the download's cause).
        // (reqwest reports a body's timeout as a timeout error; an upload's failure is a
        // request error, whatever its chain holds.)
        if (err.is_body() || err.is_decode() || err.is_timeout()) && !err.is_request() {
            if let Some(ours) = own_cause(&err) {
                return ours;
            }
        }
        GatewayError::from_reqwest_sent(err)
    }

    /// [`from_reqwest`](Self::from_reqwest) for an error of this crate's own sending (the
    /// transport): classified by what reqwest says, never by a cause found in its chain.
    pub(crate) fn from_reqwest_sent(err: reqwest::Error) -> GatewayError {
        if let Some(status) = err.status() {
            return from_status_error(err, status);
        }
        if err.is_builder() {
            // The reason is the innermost source ("relative URL without a base"): said in the
            // message, not two `source()` levels down.
            let message = format!("the request could not be built: {}", reason(&err));
            let details = Details::new(
                crate::ErrorKind::InvalidRequest,
                Origin::Local,
                message.into(),
            )
            .with_source(Arc::new(err.without_url()));
            return GatewayError::from_details(details);
        }
        if err.is_decode() && !cut_off_below(&err) {
            let message = format!(
                "the response body arrived whole but could not be decoded: {}",
                reason(&err)
            );
            let mut details = Details::new(crate::ErrorKind::Decode, Origin::Local, message.into())
                .with_source(Arc::new(err.without_url()));
            details.clear_unsent();
            return GatewayError::from_details(details);
        }
        let found = classify_transport(&err);
        let url = err.url().cloned();
        let mut details = Details::from_classification(found, Origin::Transport)
            .with_source(Arc::new(err.without_url()));
        if let Some(url) = url {
            details.set_server(&url);
        }
        GatewayError::from_details(details)
    }
}

/// What went wrong, in the words of the innermost error of `err`'s chain (reqwest's own
/// message, "builder error" or "error decoding response body", says only where).
fn reason(err: &reqwest::Error) -> String {
    let mut innermost: &dyn std::error::Error = err;
    while let Some(next) = innermost.source() {
        innermost = next;
    }
    let text = innermost.to_string();
    // reqwest's own text may name the URL, with its query: never shown.
    if std::ptr::addr_eq(innermost, err) {
        return err
            .to_string()
            .split(" for url")
            .next()
            .unwrap_or("")
            .to_owned();
    }
    text
}

/// The `GatewayError` in `err`'s source chain, if a body of this crate's put it there.
pub(crate) fn own_cause(err: &reqwest::Error) -> Option<GatewayError> {
    use std::error::Error as _;
    let mut source = err.source();
    while let Some(e) = source {
        if let Some(ours) = e.downcast_ref::<GatewayError>() {
            return Some(ours.clone());
        }
        source = e.source();
    }
    None
}

/// A status error (`error_for_status`): its status judged as a response's would be.
fn from_status_error(err: reqwest::Error, status: http::StatusCode) -> GatewayError {
    let url = err.url().cloned();
    let details = match classify_response(status, &http::HeaderMap::new(), b"") {
        Some(found) => Details::from_classification(found, Origin::Upstream),
        None => Details::new(
            crate::ErrorKind::Other,
            Origin::Upstream,
            format!("the server answered {status} (a status error, not a gateway failure)").into(),
        ),
    };
    let mut details = details
        .with_status(status)
        .with_source(Arc::new(err.without_url()));
    if let Some(url) = url {
        details.set_server(&url);
    }
    GatewayError::from_details(details)
}

/// Whether the connection failed below a decode error (a body cut off, a decompression
/// stream that ended early): then it is the transport's failure, not the content's.
fn cut_off_below(err: &reqwest::Error) -> bool {
    let mut cause = std::error::Error::source(err);
    while let Some(e) = cause {
        if e.is::<std::io::Error>() || e.is::<hyper::Error>() {
            return true;
        }
        cause = e.source();
    }
    false
}

impl Details {
    fn from_classification(found: Classification, origin: Origin) -> Details {
        Details::new(found.kind, origin, found.evidence.clone())
            .with_gateway(found.gateway)
            .with_evidence(Some(found.evidence))
            .with_request_unsent(found.request_unsent)
            .with_permanent(found.permanent)
            .with_tls(found.tls)
            .with_proxy_refused(found.proxy_refused)
    }
}

impl From<reqwest::Error> for GatewayError {
    fn from(err: reqwest::Error) -> Self {
        GatewayError::from_reqwest(err)
    }
}
