//! The steps below HTTP: which proxy applies, name resolution, a TCP connection to each
//! address. They are observations for the reader; the verdict comes from the crate's own
//! classification of the real request (see `exchange`).

use crate::outcome::Outcome;
use crate::report::Report;
use crate::shown;
use reqwest::Url;
use serde_json::json;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

/// At most this many addresses are tried.
const MAX_ADDRESSES: usize = 8;

/// The proxy a request to `url` goes through (`--proxy`, else the environment's, as reqwest
/// decides), reported with where it comes from and whether it accepts a connection. Returns
/// the proxy's shown address when one applies, and whether it accepted a connection.
pub async fn proxy(
    report: &mut Report,
    url: &Url,
    given: Option<&str>,
    timeout: Duration,
) -> (Option<String>, bool) {
    let (proxy, source) = match given {
        Some(given) => (Some(shown_proxy(given)), "--proxy".to_owned()),
        None => (
            reqwest_resilience::diagnosis::environment_proxy(url),
            environment_source(url),
        ),
    };
    let Some(proxy) = proxy else {
        let no_proxy = ["NO_PROXY", "no_proxy"]
            .iter()
            .any(|name| std::env::var_os(name).is_some_and(|v| !v.is_empty()));
        let text = if source.is_empty() {
            "none: the request goes direct".to_owned()
        } else if no_proxy {
            format!(
                "none for this host: {source} set but not used (NO_PROXY lists it, the proxy URL is unusable, or a CGI environment)"
            )
        } else {
            format!(
                "none for this host: {source} set but not used (the proxy URL is unusable, or a CGI environment)"
            )
        };
        report.step("proxy", text, json!({ "proxy": null, "ok": true }));
        return (None, true);
    };
    let Ok(parsed) = Url::parse(&proxy) else {
        report.step(
            "proxy",
            format!("{proxy} (from {source}) is not a usable URL"),
            json!({ "proxy": proxy, "source": source, "ok": false, "error": "not a usable URL" }),
        );
        return (Some(proxy), false);
    };
    let host = parsed
        .host_str()
        .unwrap_or("")
        .trim_matches(['[', ']'])
        .to_owned();
    let port = parsed.port_or_known_default().unwrap_or(80);
    report.waiting(format!("connecting to the proxy {proxy}…"));
    let answer = match resolve(&host, port, timeout).await {
        Err(why) => Err(format!("its name does not resolve: {why}")),
        Ok(addrs) => match addrs.first() {
            None => Err("its name resolves to no address".to_owned()),
            Some(addr) => connect(*addr, timeout)
                .await
                .map(|(_, took)| format!("accepts connections ({})", shown::ms(took)))
                .map_err(|failure| failure.words()),
        },
    };
    let ok = answer.is_ok();
    match answer {
        Ok(text) => report.step(
            "proxy",
            format!("{proxy} (from {source}) {text}"),
            json!({ "proxy": proxy, "source": source, "ok": true }),
        ),
        Err(why) => report.step(
            "proxy",
            format!("{proxy} (from {source}): {why}"),
            json!({ "proxy": proxy, "source": source, "ok": false, "error": why }),
        ),
    }
    (Some(proxy), ok)
}

/// The proxy schemes reqwest accepts.
pub fn usable_proxy_scheme(given: &str) -> bool {
    match given.split_once("://") {
        None => true, // reqwest reads a proxy without a scheme as http://
        Some((scheme, _)) => matches!(
            scheme.to_ascii_lowercase().as_str(),
            "http" | "https" | "socks4" | "socks4a" | "socks5" | "socks5h"
        ),
    }
}

/// A proxy URL shown as scheme, host and port, as reqwest reads it (`http://` when no scheme
/// is given), never with credentials.
fn shown_proxy(given: &str) -> String {
    let parsed = Url::parse(given)
        .ok()
        .filter(Url::has_host)
        .or_else(|| Url::parse(&format!("http://{given}")).ok());
    match parsed {
        Some(url) => format!("{}://{}", url.scheme(), shown::authority(&url)),
        None => "<not a URL>".to_owned(),
    }
}

/// The environment variables (names only) that could give `url` a proxy.
fn environment_source(url: &Url) -> String {
    let names: &[&str] = match url.scheme() {
        "https" | "wss" => &["HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"],
        _ => &["HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"],
    };
    names
        .iter()
        .filter(|name| std::env::var_os(name).is_some_and(|v| !v.is_empty()))
        .copied()
        .collect::<Vec<_>>()
        .join(", ")
}

/// Every address `host` resolves to (the system resolver, as reqwest's default), or why not.
pub async fn resolve(host: &str, port: u16, timeout: Duration) -> Result<Vec<SocketAddr>, String> {
    match tokio::time::timeout(timeout, tokio::net::lookup_host((host, port))).await {
        Err(_) => Err(format!(
            "no answer from the resolver in {}",
            shown::ms(timeout)
        )),
        Ok(Err(err)) => Err(err.to_string()),
        Ok(Ok(addrs)) => {
            let mut out: Vec<SocketAddr> = Vec::new();
            for addr in addrs {
                if !out.contains(&addr) {
                    out.push(addr);
                }
            }
            Ok(out)
        }
    }
}

/// Why a TCP connection was not made.
pub enum ConnectFailure {
    Refused,
    NoAnswer(Duration),
    Unreachable(io::Error),
    Other(io::Error),
}

impl ConnectFailure {
    pub fn words(&self) -> String {
        match self {
            ConnectFailure::Refused => "refused: nothing listens on that port".to_owned(),
            ConnectFailure::NoAnswer(after) => format!(
                "no answer in {}: packets dropped (a firewall), or the host is down",
                shown::ms(*after)
            ),
            ConnectFailure::Unreachable(err) => format!("unreachable (no route): {err}"),
            ConnectFailure::Other(err) => err.to_string(),
        }
    }

    fn name(&self) -> &'static str {
        match self {
            ConnectFailure::Refused => "refused",
            ConnectFailure::NoAnswer(_) => "no_answer",
            ConnectFailure::Unreachable(_) => "unreachable",
            ConnectFailure::Other(_) => "error",
        }
    }
}

/// A TCP connection to `addr`, with the time it took.
pub async fn connect(
    addr: SocketAddr,
    timeout: Duration,
) -> Result<(TcpStream, Duration), ConnectFailure> {
    let started = Instant::now();
    match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
        Err(_) => Err(ConnectFailure::NoAnswer(timeout)),
        Ok(Ok(stream)) => Ok((stream, started.elapsed())),
        Ok(Err(err)) => Err(match err.kind() {
            io::ErrorKind::ConnectionRefused => ConnectFailure::Refused,
            io::ErrorKind::TimedOut => ConnectFailure::NoAnswer(started.elapsed()),
            io::ErrorKind::NetworkUnreachable | io::ErrorKind::HostUnreachable => {
                ConnectFailure::Unreachable(err)
            }
            _ => ConnectFailure::Other(err),
        }),
    }
}

/// Name resolution and a TCP connection to every address of `url`'s host; returns the first
/// connection made (for the TLS step), or where the walk stopped (`Dns`, `Connect`).
pub async fn dns_and_connect(
    report: &mut Report,
    url: &Url,
    timeout: Duration,
) -> Result<TcpStream, Outcome> {
    let Some(host) = url.host_str() else {
        report.step(
            "dns",
            "the URL has no host",
            json!({ "ok": false, "error": "no host" }),
        );
        return Err(Outcome::Local);
    };
    let host = host.trim_matches(['[', ']']).to_owned();
    let port = url.port_or_known_default().unwrap_or(80);
    let literal = host.parse::<std::net::IpAddr>().is_ok();
    report.waiting(format!("resolving {host}…"));
    let started = Instant::now();
    let addrs = match resolve(&host, port, timeout).await {
        Ok(addrs) if !addrs.is_empty() => addrs,
        Ok(_) => {
            report.step(
                "dns",
                format!("{host} resolves to no address"),
                json!({ "host": host, "ok": false, "error": "no address" }),
            );
            return Err(Outcome::Dns);
        }
        Err(why) => {
            report.step(
                "dns",
                format!("{host} did not resolve: {why}"),
                json!({ "host": host, "ok": false, "error": why }),
            );
            return Err(Outcome::Dns);
        }
    };
    let listed: Vec<String> = addrs.iter().map(|a| a.ip().to_string()).collect();
    let text = if literal {
        format!("{host} is an IP address: no lookup")
    } else {
        format!(
            "{host} → {} ({})",
            listed.join(", "),
            shown::ms(started.elapsed())
        )
    };
    report.step(
        "dns",
        text,
        json!({ "host": host, "ok": true, "addresses": listed, "lookup": !literal }),
    );

    let mut first = None;
    for addr in addrs.into_iter().take(MAX_ADDRESSES) {
        report.waiting(format!("connecting to {addr}…"));
        match connect(addr, timeout).await {
            Ok((stream, took)) => {
                report.step(
                    "connect",
                    format!("{addr} connected in {}", shown::ms(took)),
                    json!({ "address": addr.to_string(), "ok": true, "ms": took.as_secs_f64() * 1000.0 }),
                );
                if first.is_none() {
                    first = Some(stream);
                }
            }
            Err(failure) => report.step(
                "connect",
                format!("{addr} {}", failure.words()),
                json!({ "address": addr.to_string(), "ok": false, "error": failure.name(), "detail": failure.words() }),
            ),
        }
    }
    first.ok_or(Outcome::Connect)
}
