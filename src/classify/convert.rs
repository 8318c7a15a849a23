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
        let details = Details::from_classification(found, Origin::Upstream).with_response(response);
        Some(GatewayError::from_details(details))
    }

    /// The error a `reqwest` failure stands for (see [`classify_transport`]). The `reqwest` error
    /// is kept, without its URL, as the `source()`.
    pub fn from_reqwest(err: reqwest::Error) -> GatewayError {
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
