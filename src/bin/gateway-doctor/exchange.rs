//! The walk: for the URL and each redirect's target, the steps below HTTP (when the server
//! changes), then the HTTP exchange through the crate's own client, one attempt, no redirect
//! followed by it; then the verdict, from the crate's classification and diagnosis.

use crate::outcome::Outcome;
use crate::report::Report;
use crate::settings::{builder, parse_headers};
use crate::{Args, repeat, shown, tls, tunnel, walk};
use reqwest::header::{AUTHORIZATION, COOKIE, LOCATION, PROXY_AUTHORIZATION, WWW_AUTHENTICATE};
use reqwest::{Method, StatusCode, Url};
use reqwest_resilience::classify::Gateway;
use reqwest_resilience::diagnosis::Hop;
use reqwest_resilience::{Client, GatewayError};
use rustls::pki_types::CertificateDer;
use serde_json::{Value, json};
use std::time::Instant;

/// Runs the whole diagnosis; returns the exit status.
pub async fn diagnose(args: Args) -> u8 {
    let mut report = Report::new(args.json);
    let outcome = walk_all(&args, &mut report).await;
    if args.repeat > 0 && outcome != Outcome::Local {
        let headers = parse_headers(&args.headers).unwrap_or_default();
        repeat::run(&args, &headers, &mut report).await;
    }
    report.finish();
    outcome.code()
}

/// A local problem: said once, as the verdict.
fn local(report: &mut Report, why: String) -> Outcome {
    report.line(format!(
        "verdict: {} — {why} (exit {})",
        Outcome::Local.words(),
        Outcome::Local.code()
    ));
    report.set(
        "verdict",
        json!({ "outcome": Outcome::Local.name(), "exit_code": Outcome::Local.code(), "message": why }),
    );
    Outcome::Local
}

async fn walk_all(args: &Args, report: &mut Report) -> Outcome {
    let Ok(mut url) = Url::parse(&args.url) else {
        report.set("url", Value::Null);
        return local(
            report,
            "the URL does not parse (it needs a scheme, e.g. https://)".into(),
        );
    };
    report.set("url", json!(shown::url(&url)));
    if !matches!(url.scheme(), "http" | "https") {
        return local(
            report,
            format!("the scheme {} is not http or https", url.scheme()),
        );
    }
    let Ok(mut method) = Method::from_bytes(args.method.to_ascii_uppercase().as_bytes()) else {
        return local(report, format!("{} is not an HTTP method", args.method));
    };
    let headers = match parse_headers(&args.headers) {
        Ok(headers) => headers,
        Err(why) => return local(report, why),
    };
    let roots = match &args.cacert {
        None => Vec::new(),
        Some(path) => match tls::read_cacert(path) {
            Ok(roots) => roots,
            Err(why) => return local(report, why),
        },
    };
    if let Some(proxy) = &args.proxy {
        if !walk::usable_proxy_scheme(proxy) {
            return local(
                report,
                "--proxy takes an http, https, socks4, socks4a, socks5 or socks5h URL".into(),
            );
        }
    }
    let client = match client(args, &roots) {
        Ok(client) => client,
        Err(why) => return local(report, why),
    };
    report.line(format!("gateway-doctor: {method} {}", shown::url(&url)));
    report.set("method", json!(method.as_str()));

    let mut previous: Option<String> = None;
    let mut visited: Vec<Url> = Vec::new();
    let mut headers = headers;
    let max_redirects = args.max_redirects as usize;
    for index in 1..=max_redirects + 1 {
        let authority = format!("{}://{}", url.scheme(), shown::authority(&url));
        let same_server = previous.as_deref() == Some(authority.as_str());
        if previous.is_some() && !same_server {
            // As reqwest does on a redirect to another host: credentials stay behind.
            for name in [AUTHORIZATION, COOKIE, PROXY_AUTHORIZATION, WWW_AUTHENTICATE] {
                headers.remove(name);
            }
            headers.remove("cookie2");
        }
        let note = match (index, same_server) {
            (1, _) => "",
            (_, true) => " (a redirect's target, same server)",
            (_, false) => " (a redirect's target)",
        };
        report.hop(index, &shown::url(&url), note);
        // Where the doctor's own steps saw the request stop, before HTTP.
        let (stopped, proxied) = if same_server {
            (None, proxy_applies(args, &url))
        } else {
            below_http(args, report, &url, &roots).await
        };
        previous = Some(authority);
        visited.push(url.clone());

        report.waiting(format!("{method} {}…", shown::url(&url)));
        let started = Instant::now();
        let sent = client
            .request(method.clone(), url.clone())
            .headers(headers.clone())
            .send()
            .await;
        let took = started.elapsed();
        let response = match sent {
            Err(err) => {
                report.step("http", failure_line(&err, took), failure_json(&err, took));
                return verdict_error(report, index, &url, &err, stopped);
            }
            Ok(response) => response,
        };
        let status = response.status();
        report.step(
            "http",
            answer_line(&response, took),
            json!({
                "ok": true,
                "status": status.as_u16(),
                "version": format!("{:?}", response.version()),
                "ms_to_headers": took.as_secs_f64() * 1000.0,
                "server": header(&response, "server"),
                "via": header(&response, "via"),
            }),
        );
        if proxied && proxy_answered_itself(&response) {
            return verdict_proxy_answer(report, index, &url, &response);
        }
        // The redirects reqwest follows, and how it changes the method.
        let followed = matches!(
            status,
            StatusCode::MOVED_PERMANENTLY
                | StatusCode::FOUND
                | StatusCode::SEE_OTHER
                | StatusCode::TEMPORARY_REDIRECT
                | StatusCode::PERMANENT_REDIRECT
        );
        let location = response
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|loc| url.join(loc).ok());
        // reqwest follows http and https targets only; another scheme ends the walk with
        // this answer, as reqwest returns it.
        let location = location.filter(|next| matches!(next.scheme(), "http" | "https"));
        let Some(next) = location.filter(|_| followed) else {
            return verdict_answer(report, index, &url, status);
        };
        report.line(format!(
            "  redirect {} → {}",
            status.as_u16(),
            shown::url(&next)
        ));
        let stop = if visited.contains(&next) {
            Some(format!(
                "a redirect loop: {} leads back to {}",
                shown::url(&url),
                shown::url(&next)
            ))
        } else if index > max_redirects {
            Some(format!("more than {max_redirects} redirects"))
        } else {
            None
        };
        if let Some(why) = stop {
            report.line(format!(
                "verdict: {} — {why} (exit {})",
                Outcome::Other.words(),
                Outcome::Other.code()
            ));
            report.set(
                "verdict",
                json!({ "outcome": Outcome::Other.name(), "exit_code": Outcome::Other.code(), "hop_index": index, "message": why }),
            );
            return Outcome::Other;
        }
        if matches!(
            status,
            StatusCode::MOVED_PERMANENTLY | StatusCode::FOUND | StatusCode::SEE_OTHER
        ) && !matches!(method, Method::GET | Method::HEAD)
        {
            method = Method::GET;
        }
        url = next;
    }
    Outcome::Other
}

/// Whether a forward proxy applies to `url` (`--proxy`, else the environment's).
fn proxy_applies(args: &Args, url: &Url) -> bool {
    args.proxy.is_some() || reqwest_resilience::diagnosis::environment_proxy(url).is_some()
}

/// An answer the forward proxy gave itself: `407`, or an answer carrying a forward proxy's
/// signature, as the crate identifies it.
fn proxy_answered_itself(response: &reqwest::Response) -> bool {
    response.status() == StatusCode::PROXY_AUTHENTICATION_REQUIRED
        || (!response.status().is_success()
            && Gateway::from_headers(response.headers()).is_some_and(Gateway::is_forward_proxy))
}

fn failure_line(err: &GatewayError, took: std::time::Duration) -> String {
    // A gateway's error page is an answer: show it as one, then the crate's reading.
    match err.response() {
        Some(page) => {
            let mut line = format!("answered {} in {}", page.status(), shown::ms(took));
            for name in ["server", "via"] {
                if let Some(value) = page.headers().get(name).and_then(|v| v.to_str().ok()) {
                    line.push_str(&format!("; {name}: {value}"));
                }
            }
            format!("{line} → {}", err.kind().label())
        }
        None => format!("no answer: {err}"),
    }
}

fn failure_json(err: &GatewayError, took: std::time::Duration) -> Value {
    json!({
        "ok": false,
        "ms": took.as_secs_f64() * 1000.0,
        "status": err.response().map(|page| page.status().as_u16()),
        "error": err.kind().name(),
    })
}

/// Proxy, then (direct only) name resolution, TCP connections and, for https, TLS. Returns
/// where these steps saw the request stop, if they did, and whether a proxy applies.
async fn below_http(
    args: &Args,
    report: &mut Report,
    url: &Url,
    roots: &[CertificateDer<'static>],
) -> (Option<Outcome>, bool) {
    let (proxy, answers) = walk::proxy(report, url, args.proxy.as_deref(), args.timeout).await;
    if let Some(proxy) = proxy {
        report.step(
            "dns",
            "done by the proxy (not from here)",
            json!({ "ok": null, "by_proxy": true }),
        );
        if !answers {
            return (Some(Outcome::Proxy), true);
        }
        // https through an HTTP proxy: the TLS session is the origin's, inside a tunnel.
        let tunnelled = url.scheme() == "https" && proxy.starts_with("http://");
        if let Some(proxy_url) = tunnelled
            .then(|| tunnel::proxy_url(args.proxy.as_deref(), &proxy))
            .flatten()
        {
            let target = shown::authority(url);
            let Some(stream) = tunnel::open(report, &proxy_url, &target, args.timeout).await else {
                return (Some(Outcome::Proxy), true);
            };
            let host = url.host_str().unwrap_or("").trim_matches(['[', ']']);
            if tls::handshake(report, stream, host, roots, args.timeout).await == Some(false) {
                return (Some(Outcome::Tls), true);
            }
        } else if url.scheme() == "https" {
            report.step(
                "tls",
                "inside the proxy's own connection (not checked from here)",
                json!({ "ok": null, "by_proxy": true }),
            );
        }
        return (None, true);
    }
    let stream = match walk::dns_and_connect(report, url, args.timeout).await {
        Ok(stream) => stream,
        Err(stopped) => {
            if url.scheme() == "https" {
                report.step("tls", "not tried: no connection", json!({ "ok": null }));
            }
            return (Some(stopped), false);
        }
    };
    if url.scheme() == "https" {
        let host = url.host_str().unwrap_or("").trim_matches(['[', ']']);
        if tls::handshake(report, stream, host, roots, args.timeout).await == Some(false) {
            return (Some(Outcome::Tls), false);
        }
    }
    (None, false)
}

/// The crate's client for the walk: one attempt, no redirect followed by it (the walk follows
/// them, hop by hop), `--cacert` and `--proxy` applied. The connection gets `--timeout`, the
/// attempt twice that: a hang while connecting is told from a hang after it, every time.
pub fn client(args: &Args, roots: &[CertificateDer<'static>]) -> Result<Client, String> {
    builder(args, roots)?
        .no_retry()
        .attempt_timeout(args.timeout * 2)
        .no_deadline()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|err| format!("cannot build the client: {err}"))
}

fn header(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// `HTTP/1.1 200 OK in 3 ms; server nginx; via 1.1 proxy`.
fn answer_line(response: &reqwest::Response, took: std::time::Duration) -> String {
    let status = response.status();
    let mut line = format!(
        "{:?} {} {} in {} (to the headers)",
        response.version(),
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        shown::ms(took)
    );
    for name in ["server", "via"] {
        if let Some(value) = header(response, name) {
            line.push_str(&format!("; {name}: {value}"));
        }
    }
    line
}

/// The verdict on an answer the crate returned as the origin's.
/// The fields every verdict has: its class, exit status, and the hop it ended at.
fn verdict_fields(outcome: Outcome, index: usize, url: &Url) -> serde_json::Map<String, Value> {
    let mut fields = serde_json::Map::new();
    fields.insert("outcome".into(), json!(outcome.name()));
    fields.insert("exit_code".into(), json!(outcome.code()));
    fields.insert("hop_index".into(), json!(index));
    fields.insert("url".into(), json!(shown::url(url)));
    fields
}

/// Sets the JSON verdict: the common fields and `more`.
fn set_verdict(report: &mut Report, outcome: Outcome, index: usize, url: &Url, more: Value) {
    let mut fields = verdict_fields(outcome, index, url);
    if let Value::Object(more) = more {
        fields.extend(more);
    }
    report.set("verdict", Value::Object(fields));
}

/// The verdict on an answer the forward proxy gave itself (a `407`, or its own error page).
fn verdict_proxy_answer(
    report: &mut Report,
    index: usize,
    url: &Url,
    response: &reqwest::Response,
) -> Outcome {
    let outcome = Outcome::Proxy;
    let status = response.status();
    let product = Gateway::from_headers(response.headers());
    let check = if status == StatusCode::PROXY_AUTHENTICATION_REQUIRED {
        "the proxy credentials (user name and password in the proxy URL)"
    } else {
        "the proxy's access rules for this client, host and port, and its logs"
    };
    report.line(format!(
        "verdict: {} (exit {}) — it answered {} itself{}",
        outcome.words(),
        outcome.code(),
        status.as_u16(),
        product.map(|p| format!(" ({p})")).unwrap_or_default()
    ));
    report.line("  cause    proxy misconfiguration");
    report.line(format!("  check    {check}"));
    set_verdict(
        report,
        outcome,
        index,
        url,
        json!({
            "status": status.as_u16(),
            "failed_hop_kind": "forward_proxy",
            "gateway": product.map(|g| g.to_string()),
            "cause": reqwest_resilience::diagnosis::LikelyCause::ProxyMisconfiguration.name(),
            "check": check,
        }),
    );
    outcome
}

fn verdict_answer(report: &mut Report, index: usize, url: &Url, status: StatusCode) -> Outcome {
    let outcome = if status.is_client_error() || status.is_server_error() {
        Outcome::OriginError
    } else {
        Outcome::Ok
    };
    let mut line = format!("verdict: {} ({})", outcome.words(), status.as_u16());
    if status.is_server_error() {
        line.push_str(
            " — no gateway is identified in this answer: it is the application's own error; check its logs",
        );
    }
    report.line(line);
    set_verdict(
        report,
        outcome,
        index,
        url,
        json!({
            "status": status.as_u16(),
        }),
    );
    outcome
}

/// The verdict on a failure: the crate's error and diagnosis, as they are. The outcome class
/// is where the doctor's own steps saw the request stop before HTTP (a lookup, every
/// connection or the TLS handshake failed), else the crate's.
fn verdict_error(
    report: &mut Report,
    index: usize,
    url: &Url,
    err: &GatewayError,
    stopped: Option<Outcome>,
) -> Outcome {
    let outcome = stopped.unwrap_or_else(|| Outcome::of_error(err));
    let diagnosis = err.diagnosis();
    let hop_kind = match diagnosis.hop() {
        Hop::OwnTransport => "own_transport",
        Hop::ForwardProxy { .. } => "forward_proxy",
        Hop::Gateway(_) => "gateway",
        Hop::Origin => "origin",
        _ => "other",
    };
    let where_ = if index == 1 {
        format!("hop 1 ({})", shown::url(url))
    } else {
        format!("hop {index}, a redirect's target ({})", shown::url(url))
    };
    report.line(format!(
        "verdict: {} (exit {})",
        outcome.words(),
        outcome.code()
    ));
    if let Some(step) = stopped {
        report.line(format!(
            "  seen     the doctor's own {} step failed, before HTTP",
            match step {
                Outcome::Dns => "name resolution",
                Outcome::Connect => "connection",
                Outcome::Tls => "TLS",
                Outcome::Proxy => "proxy",
                _ => "first",
            }
        ));
    }
    report.line(format!("  error    {err}"));
    let substatus = err.substatus().map(|s| s.code());
    report.line(format!(
        "  variant  {:?}{}",
        err.kind(),
        substatus
            .map(|s| format!(" (substatus {s})"))
            .unwrap_or_default()
    ));
    report.line(format!("  failed   {} — at {where_}", diagnosis.hop()));
    report.line(format!("  cause    {}", diagnosis.cause()));
    report.line(format!("  check    {}", diagnosis.suggestion()));
    for evidence in diagnosis.evidence() {
        report.line(format!("  evidence {evidence}"));
    }
    set_verdict(
        report,
        outcome,
        index,
        url,
        json!({
            // The status of an answer, when one came; `null` when nothing answered.
            "status": err.response().map(|page| page.status().as_u16()),
            "error_status": err.status().as_u16(),
            "seen_step": stopped.map(Outcome::name),
            "variant": format!("{:?}", err.kind()),
            "error_type": err.kind().name(),
            "substatus": substatus,
            "message": err.to_string(),
            "failed_hop": diagnosis.hop().to_string(),
            "failed_hop_kind": hop_kind,
            "gateway": err.gateway().map(|g| g.to_string()),
            "cause": diagnosis.cause().name(),
            "check": diagnosis.suggestion(),
            "evidence": diagnosis.evidence(),
        }),
    );
    outcome
}
