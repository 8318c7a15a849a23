//! From an error to its diagnosis.

use super::{Diagnosis, Hop, LikelyCause};
use crate::error::{ErrorKind, GatewayError, Origin};
use std::borrow::Cow;

const CHECK_NETWORK: &str = "firewalls, routing and DNS between that hop and the server";
const CHECK_OUTAGE: &str = "wait and retry; if it lasts, contact the server's operator or provider";
const CHECK_BACKEND: &str = "that the application servers behind it are configured and running, on the address and port it uses";

pub(super) fn diagnose(err: &GatewayError) -> Diagnosis {
    match err.kind() {
        ErrorKind::DeadlineExceeded => deadline(err),
        ErrorKind::CircuitOpen => circuit_open(err),
        ErrorKind::NoHealthyServer if !err.details().causes().is_empty() => {
            every_server_failed(err)
        }
        ErrorKind::InvalidRequest => Diagnosis {
            hop: Hop::OwnTransport,
            cause: LikelyCause::Unknown,
            suggestion: "the request as built: its URL, method and headers (it was never sent)"
                .into(),
            evidence: evidence(err),
        },
        _ => match err.origin() {
            Origin::Upstream => upstream(err),
            Origin::Transport | Origin::Local => own_side(err),
        },
    }
}

fn evidence(err: &GatewayError) -> Vec<String> {
    let d = err.details();
    let mut out = Vec::new();
    if let Some(e) = d.evidence().or(Some(d.message()).filter(|m| !m.is_empty())) {
        let mut line = e.to_owned();
        if d.origin() == Origin::Transport {
            if let Some(target) = d.proxy().or(d.server().map(host_port)) {
                line.push_str(&format!(" ({target})"));
            }
        }
        out.push(line);
    }
    if let Some(response) = d.response() {
        out.push(format!("HTTP {}", response.status()));
    }
    if d.followed_redirect() {
        let target = d.server().map(host_port).unwrap_or("another server");
        out.push(format!(
            "a redirect was followed: the original request was answered, and {target} (the redirect's target) failed"
        ));
    } else if d.redirects_unseen() {
        let server = d.server().map(host_port).unwrap_or("the server");
        out.push(format!(
            "this client does not report the redirects it follows: if {server} answers with a redirect, the hop that failed may be its target (check where it redirects)"
        ));
    }
    out
}

/// `scheme://host:port/path` → `host:port`.
fn host_port(server: &str) -> &str {
    let rest = server.split_once("://").map_or(server, |(_, r)| r);
    rest.split('/').next().unwrap_or(rest)
}

fn make(
    hop: Hop,
    cause: LikelyCause,
    suggestion: impl Into<Cow<'static, str>>,
    err: &GatewayError,
) -> Diagnosis {
    Diagnosis {
        hop,
        cause,
        suggestion: suggestion.into(),
        evidence: evidence(err),
    }
}

/// A failure seen by this client's own connection (possibly to its forward proxy).
fn own_side(err: &GatewayError) -> Diagnosis {
    let d = err.details();
    let said = d.evidence().unwrap_or(d.message());
    if let Some(proxy) = d.proxy() {
        let hop = Hop::ForwardProxy {
            address: Some(proxy.to_owned()),
            product: None,
        };
        if said.contains("requires authentication") {
            return make(
                hop,
                LikelyCause::ProxyMisconfiguration,
                "the proxy credentials (user name and password in the proxy URL)",
                err,
            );
        }
        if said.contains("tunnel") {
            return make(
                hop,
                LikelyCause::ProxyMisconfiguration,
                "the proxy credentials and the proxy's access rules for this host and port, and that the proxy can reach the server",
                err,
            );
        }
        // Through the proxy's tunnel the TLS session is with the origin: its failures are the
        // origin's (unless the proxy itself is reached over TLS and the origin is not).
        let tls_with_proxy =
            proxy.starts_with("https://") && d.server().is_some_and(|s| s.starts_with("http://"));
        if d.is_tls_failure() && !tls_with_proxy {
            return tls_failure(Hop::Origin, err);
        }
        if err.is_request_unsent() {
            return make(
                hop,
                LikelyCause::ProxyMisconfiguration,
                "the proxy address and port in the client's settings (or HTTP_PROXY / HTTPS_PROXY), and that the proxy is running",
                err,
            );
        }
        return make(hop, LikelyCause::UpstreamOutage, CHECK_OUTAGE, err);
    }
    let hop = Hop::OwnTransport;
    match err.kind() {
        ErrorKind::ConnectFailed if said.contains("timed out") => make(
            hop,
            LikelyCause::Firewall,
            "a firewall or security group dropping connections to that address and port, routing, or a host that is down",
            err,
        ),
        ErrorKind::ConnectFailed if d.is_tls_failure() => tls_failure(hop, err),
        ErrorKind::ConnectFailed => make(
            hop,
            LikelyCause::BackendMisconfiguration,
            "that a server is running and listening at that address and port",
            err,
        ),
        ErrorKind::NameNotResolved => make(
            hop,
            LikelyCause::Dns,
            "the host name, and this machine's DNS resolution (resolv.conf, the resolver, /etc/hosts)",
            err,
        ),
        ErrorKind::NoHealthyServer => make(
            hop,
            LikelyCause::UpstreamOutage,
            "whether any of the servers is up; each one's failure is in the error's causes",
            err,
        ),
        ErrorKind::TimedOut => make(
            hop,
            LikelyCause::UpstreamOutage,
            "whether the server is overloaded or stuck; wait and retry, or raise the timeout if it is just slow",
            err,
        ),
        ErrorKind::ConnectionClosed => make(
            hop,
            LikelyCause::UpstreamOutage,
            "the server's logs: it closed the connection early (restarting, crashing or overloaded)",
            err,
        ),
        ErrorKind::SendFailed => make(hop, LikelyCause::NetworkConnectivity, CHECK_NETWORK, err),
        ErrorKind::InvalidResponse => make(
            hop,
            LikelyCause::BackendMisconfiguration,
            "that the port speaks HTTP (not TLS or another protocol) and the server's answers are valid",
            err,
        ),
        ErrorKind::WebSocket => make(
            hop,
            LikelyCause::BackendMisconfiguration,
            "that the server accepts WebSocket upgrades at this path",
            err,
        ),
        _ => make(hop, LikelyCause::Unknown, "the server's logs", err),
    }
}

/// The TLS session with the server failed: name the check that failed.
fn tls_failure(hop: Hop, err: &GatewayError) -> Diagnosis {
    let said = err.details().evidence().unwrap_or("");
    let suggestion = if said.contains("expired") {
        "the server's certificate: it has expired and must be renewed"
    } else if said.contains("host name") {
        "that the URL's host name is one the server's certificate names (or that the right server answered)"
    } else if said.contains("issuer is not trusted") {
        "the server's certificate chain: a self-signed or private-CA certificate needs its CA added to the client's trust store"
    } else if said.contains("not valid yet") {
        "this machine's clock, and the certificate's validity dates"
    } else if said.contains("does not speak TLS") {
        "the URL's scheme and port: the server answers plain HTTP there (use http://, or the TLS port)"
    } else {
        "the server's TLS certificate and settings, and that the URL's scheme and port are right"
    };
    make(hop, LikelyCause::BackendMisconfiguration, suggestion, err)
}

/// A failure a hop upstream answered with.
fn upstream(err: &GatewayError) -> Diagnosis {
    let d = err.details();
    let product = d.gateway();
    let hop = match (d.proxy(), product) {
        (Some(proxy), p) if p.is_none_or(|p| p.is_forward_proxy()) && reported_by_proxy(err) => {
            Hop::ForwardProxy {
                address: Some(proxy.to_owned()),
                product: p,
            }
        }
        (_, Some(p)) => Hop::Gateway(Some(p)),
        (_, None) if err.kind() == ErrorKind::ServiceUnavailable => Hop::Origin,
        (_, None) => Hop::Gateway(None),
    };
    let said = d.evidence().unwrap_or("").to_ascii_lowercase();
    let dns = said.contains("dns") || said.contains("1016") || said.contains("name not resolved");
    let (cause, suggestion): (LikelyCause, Cow<'static, str>) = match err.kind() {
        ErrorKind::ConnectFailed if said.contains("timed out") || said.contains("timeout") => {
            (LikelyCause::NetworkConnectivity, CHECK_NETWORK.into())
        }
        ErrorKind::ConnectFailed if said.contains("tls") || said.contains("certificate") => (
            LikelyCause::BackendMisconfiguration,
            "the origin's TLS certificate and the gateway's TLS settings toward it".into(),
        ),
        ErrorKind::ConnectFailed => (LikelyCause::BackendMisconfiguration, CHECK_BACKEND.into()),
        ErrorKind::NameNotResolved => (
            LikelyCause::ProxyMisconfiguration,
            "the upstream host name the proxy or gateway is configured with, and its DNS".into(),
        ),
        ErrorKind::NoHealthyServer if dns => (
            LikelyCause::ProxyMisconfiguration,
            "the upstream host name the proxy or gateway is configured with, and its DNS".into(),
        ),
        ErrorKind::NoHealthyServer => (
            LikelyCause::BackendMisconfiguration,
            "that the gateway's upstream pool has healthy, registered servers".into(),
        ),
        ErrorKind::TimedOut | ErrorKind::ConnectionClosed => {
            (LikelyCause::UpstreamOutage, CHECK_OUTAGE.into())
        }
        // A gateway's 503 says its upstream is unavailable; the origin's own says it cannot
        // take the request now.
        ErrorKind::ServiceUnavailable if product.is_some() => {
            (LikelyCause::UpstreamOutage, CHECK_OUTAGE.into())
        }
        ErrorKind::ServiceUnavailable => (
            LikelyCause::Overload,
            "the server's load and capacity (or a maintenance window); retry after the time it gives in Retry-After, if any".into(),
        ),
        ErrorKind::InvalidResponse => (
            LikelyCause::BackendMisconfiguration,
            "that the server behind the gateway answers valid HTTP on the port the gateway uses".into(),
        ),
        ErrorKind::SendFailed => (LikelyCause::NetworkConnectivity, CHECK_NETWORK.into()),
        ErrorKind::WebSocket => (
            LikelyCause::ProxyMisconfiguration,
            "that the gateway passes WebSocket upgrades (Upgrade and Connection headers) to the server".into(),
        ),
        // A named gateway's plain 502: it got no valid answer from its upstream and its page
        // does not say why. The classic reading is an upstream that is down or not answering;
        // its error log tells which.
        ErrorKind::BadGateway if product.is_some() => (
            LikelyCause::UpstreamOutage,
            format!(
                "that the servers {} forwards to are running and reachable from it; its error log names the upstream and why it failed (refused, reset, timed out, not resolved)",
                product.map_or("the gateway", |p| p.name())
            )
            .into(),
        ),
        _ => (
            LikelyCause::Unknown,
            "the gateway's error log: its answer gives no cause".into(),
        ),
    };
    let mut diagnosis = make(hop, cause, suggestion, err);
    if let Some(p) = product {
        diagnosis.evidence.push(format!("answered by {p}"));
    }
    diagnosis
}

/// A proxy's own error page: a forward-proxy product, or Squid's header.
fn reported_by_proxy(err: &GatewayError) -> bool {
    err.gateway().is_some_and(|g| g.is_forward_proxy())
        || err
            .response()
            .is_some_and(|r| r.headers().contains_key("x-squid-error"))
}

fn deadline(err: &GatewayError) -> Diagnosis {
    after_last_cause(
        err,
        "whether the server is overloaded or stuck; raise the deadline only if it is just slow",
    )
}

/// An open circuit: what failed before is the diagnosis, the circuit's message its first
/// evidence.
fn circuit_open(err: &GatewayError) -> Diagnosis {
    after_last_cause(
        err,
        "the host failed repeatedly; requests to it fail at once until its cool-down ends and a probe succeeds",
    )
}

/// An error that ended a request because of earlier failures (an exceeded deadline, an open
/// circuit): the last cause's diagnosis with this error's message first in its evidence, or
/// `suggestion` when no attempt had failed.
fn after_last_cause(err: &GatewayError, suggestion: &'static str) -> Diagnosis {
    match err.last_cause() {
        Some(last) => {
            let mut diagnosis = diagnose(last);
            diagnosis
                .evidence
                .insert(0, err.details().message().to_owned());
            diagnosis
        }
        None => make(
            Hop::OwnTransport,
            LikelyCause::UpstreamOutage,
            suggestion,
            err,
        ),
    }
}

fn every_server_failed(err: &GatewayError) -> Diagnosis {
    let causes = err.details().causes();
    let each: Vec<Diagnosis> = causes.iter().map(diagnose).collect();
    let same = each.windows(2).all(|w| w[0].cause == w[1].cause);
    let mut evidence = vec![err.details().message().to_owned()];
    for cause in causes {
        let server = cause.server().map(host_port).unwrap_or("?");
        evidence.push(format!("{server}: {}", cause.kind().label()));
    }
    let (hop, cause, suggestion) = match each.last() {
        Some(last) if same => (last.hop.clone(), last.cause, last.suggestion.clone()),
        _ => (
            Hop::OwnTransport,
            LikelyCause::UpstreamOutage,
            "each server's own failure below; all of them failing at once suggests an outage"
                .into(),
        ),
    };
    Diagnosis {
        hop,
        cause,
        suggestion,
        evidence,
    }
}
