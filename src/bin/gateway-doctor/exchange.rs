//! The walk: for the URL and each redirect's target, the steps below HTTP (when the server
//! changes), then the HTTP exchange through the crate's own client, one attempt, no redirect
//! followed by it; then the verdict, from the crate's classification and diagnosis.

use crate::outcome::Outcome;
use crate::report::Report;
use crate::{Args, repeat, shown, tls, walk};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, LOCATION};
use reqwest::{Method, StatusCode, Url};
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
        repeat::run(&args, &mut report).await;
    }
    report.finish();
    outcome.code()
}

/// A local problem: said once, as the verdict.
fn local(report: &mut Report, why: String) -> Outcome {
    report.line(format!("verdict: {} — {why}", Outcome::Local.words()));
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
    let client = match client(args, &roots) {
        Ok(client) => client,
        Err(why) => return local(report, why),
    };
    report.line(format!("gateway-doctor: {method} {}", shown::url(&url)));
    report.set("method", json!(method.as_str()));

    let mut previous: Option<String> = None;
    for index in 1..=args.max_redirects + 1 {
        let authority = format!("{}://{}", url.scheme(), shown::authority(&url));
        let same_server = previous.as_deref() == Some(authority.as_str());
        let note = match (index, same_server) {
            (1, _) => "",
            (_, true) => " (a redirect's target, same server)",
            (_, false) => " (a redirect's target)",
        };
        report.hop(index, &shown::url(&url), note);
        if !same_server {
            below_http(args, report, &url, &roots).await;
        }
        previous = Some(authority);

        report.waiting(format!("{method} {}…", shown::url(&url)));
        let started = Instant::now();
        let sent = client
            .request(method.clone(), url.clone())
            .headers(headers.clone())
            .send()
            .await;
        let took = started.elapsed();
        match sent {
            Err(err) => {
                // A gateway's error page is an answer: show it as one, then the crate's reading.
                let text = match err.response() {
                    Some(page) => {
                        let mut line = format!("answered {} in {}", page.status(), shown::ms(took));
                        for name in ["server", "via"] {
                            if let Some(value) =
                                page.headers().get(name).and_then(|v| v.to_str().ok())
                            {
                                line.push_str(&format!("; {name}: {value}"));
                            }
                        }
                        format!("{line} → {}", err.kind().label())
                    }
                    None => format!("no answer: {err}"),
                };
                report.step(
                    "http",
                    text,
                    json!({
                        "ok": false,
                        "ms": took.as_secs_f64() * 1000.0,
                        "status": err.response().map(|page| page.status().as_u16()),
                        "error": err.kind().name(),
                    }),
                );
                return verdict_error(report, index, &url, &err);
            }
            Ok(response) => {
                let status = response.status();
                let text = answer_line(&response, took);
                let location = response
                    .headers()
                    .get(LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|loc| url.join(loc).ok());
                report.step(
                    "http",
                    text,
                    json!({
                        "ok": true,
                        "status": status.as_u16(),
                        "version": format!("{:?}", response.version()),
                        "ms_to_headers": took.as_secs_f64() * 1000.0,
                        "server": header(&response, "server"),
                        "via": header(&response, "via"),
                    }),
                );
                match location {
                    Some(next) if status.is_redirection() && index <= args.max_redirects => {
                        report.line(format!(
                            "  redirect {} → {}",
                            status.as_u16(),
                            shown::url(&next)
                        ));
                        if status == StatusCode::SEE_OTHER
                            || (matches!(status, StatusCode::MOVED_PERMANENTLY | StatusCode::FOUND)
                                && method == Method::POST)
                        {
                            method = Method::GET;
                        }
                        url = next;
                    }
                    Some(_) if status.is_redirection() => {
                        let why = format!("more than {} redirects", args.max_redirects);
                        report.line(format!("verdict: {} — {why}", Outcome::Other.words()));
                        report.set(
                            "verdict",
                            json!({ "outcome": Outcome::Other.name(), "exit_code": Outcome::Other.code(), "hop_index": index, "message": why }),
                        );
                        return Outcome::Other;
                    }
                    _ => return verdict_answer(report, index, &url, status),
                }
            }
        }
    }
    Outcome::Other
}

/// Proxy, then (direct only) name resolution, TCP connections and, for https, TLS.
async fn below_http(
    args: &Args,
    report: &mut Report,
    url: &Url,
    roots: &[CertificateDer<'static>],
) {
    let proxy = walk::proxy(report, url, args.proxy.as_deref(), args.timeout).await;
    if proxy.is_some() {
        report.step(
            "dns",
            "done by the proxy (not from here)",
            json!({ "ok": null, "by_proxy": true }),
        );
        return;
    }
    let stream = walk::dns_and_connect(report, url, args.timeout).await;
    if url.scheme() == "https" {
        match stream {
            Some(stream) => {
                let host = url.host_str().unwrap_or("").trim_matches(['[', ']']);
                tls::handshake(report, stream, host, roots, args.timeout).await;
            }
            None => report.step("tls", "not tried: no connection", json!({ "ok": null })),
        }
    }
}

/// The crate's client for the walk: one attempt, no redirect followed by it (the walk follows
/// them, hop by hop), `--timeout` per attempt, `--cacert` and `--proxy` applied.
pub fn client(args: &Args, roots: &[CertificateDer<'static>]) -> Result<Client, String> {
    builder(args, roots)?
        .no_retry()
        .attempt_timeout(args.timeout)
        .no_deadline()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|err| format!("cannot build the client: {err}"))
}

/// The settings the walk and `--repeat` share: TLS roots, proxy, connect timeout.
pub fn builder(
    args: &Args,
    roots: &[CertificateDer<'static>],
) -> Result<reqwest_resilience::ClientBuilder, String> {
    let certs = roots
        .iter()
        .map(|der| reqwest::Certificate::from_der(der.as_ref()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| format!("a --cacert certificate is not usable: {err}"))?;
    let connect_timeout = args.timeout;
    let mut builder = Client::builder().reqwest_builder_fn(move || {
        let builder = reqwest::Client::builder().connect_timeout(connect_timeout);
        if certs.is_empty() {
            builder
        } else {
            builder.tls_certs_merge(certs.clone())
        }
    });
    if let Some(proxy) = &args.proxy {
        builder = builder.proxy(proxy.clone());
    }
    Ok(builder)
}

fn parse_headers(given: &[String]) -> Result<HeaderMap, String> {
    let mut headers = HeaderMap::new();
    for line in given {
        let Some((name, value)) = line.split_once(':') else {
            return Err("a header is not `Name: value`".to_owned());
        };
        let name = HeaderName::from_bytes(name.trim().as_bytes())
            .map_err(|_| format!("{} is not a header name", name.trim()))?;
        let mut value = HeaderValue::from_str(value.trim())
            .map_err(|_| format!("the value of {name} is not a valid header value"))?;
        value.set_sensitive(true);
        headers.append(name, value);
    }
    Ok(headers)
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
    report.set(
        "verdict",
        json!({
            "outcome": outcome.name(),
            "exit_code": outcome.code(),
            "hop_index": index,
            "url": shown::url(url),
            "status": status.as_u16(),
        }),
    );
    outcome
}

/// The verdict on a failure: the crate's error and diagnosis, as they are.
fn verdict_error(report: &mut Report, index: usize, url: &Url, err: &GatewayError) -> Outcome {
    let outcome = Outcome::of_error(err);
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
    report.set(
        "verdict",
        json!({
            "outcome": outcome.name(),
            "exit_code": outcome.code(),
            "hop_index": index,
            "url": shown::url(url),
            "status": err.status().as_u16(),
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
