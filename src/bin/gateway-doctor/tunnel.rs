//! Through an HTTP forward proxy, an `https` request's TLS session is with the origin, inside a
//! `CONNECT` tunnel: the doctor opens one of its own (with the proxy URL's credentials, never
//! printed) so that the TLS step can show the origin's certificate.

use crate::report::Report;
use crate::shown;
use base64::Engine as _;
use reqwest::Url;
use serde_json::json;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The longest proxy answer head read.
const MAX_HEAD: usize = 16 * 1024;

/// The proxy URL, credentials included, that `shown` (scheme, host and port) stands for:
/// `--proxy`, else the environment variable reqwest reads for `https`.
pub fn proxy_url(given: Option<&str>, shown: &str) -> Option<Url> {
    let candidates: Vec<String> = match given {
        Some(given) => vec![given.to_owned()],
        None => ["HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"]
            .iter()
            .filter_map(|name| std::env::var(name).ok())
            .collect(),
    };
    candidates.into_iter().find_map(|text| {
        let url = Url::parse(&text)
            .ok()
            .filter(Url::has_host)
            .or_else(|| Url::parse(&format!("http://{text}")).ok())?;
        (format!("{}://{}", url.scheme(), shown::authority(&url)) == shown).then_some(url)
    })
}

/// Opens a `CONNECT` tunnel to `target` (`host:port`) through the HTTP proxy `proxy`; reported
/// as the `tunnel` step. `None` when the proxy refused it or did not answer.
pub async fn open(
    report: &mut Report,
    proxy: &Url,
    target: &str,
    timeout: Duration,
) -> Option<TcpStream> {
    let host = proxy.host_str()?.trim_matches(['[', ']']).to_owned();
    let port = proxy.port_or_known_default().unwrap_or(80);
    report.waiting(format!("opening a tunnel to {target}…"));
    let started = Instant::now();
    let result = tokio::time::timeout(timeout, async {
        let mut stream = TcpStream::connect((host.as_str(), port))
            .await
            .map_err(|err| format!("cannot connect to the proxy: {err}"))?;
        let mut head = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n");
        if !proxy.username().is_empty() {
            let user = percent_decode(proxy.username());
            let password = percent_decode(proxy.password().unwrap_or(""));
            let token =
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
            head.push_str(&format!("Proxy-Authorization: Basic {token}\r\n"));
        }
        head.push_str("\r\n");
        stream
            .write_all(head.as_bytes())
            .await
            .map_err(|err| format!("cannot send CONNECT: {err}"))?;
        // Byte by byte up to the blank line: nothing of the tunnel's own bytes is consumed.
        let mut answer = Vec::new();
        let mut byte = [0u8; 1];
        while !answer.ends_with(b"\r\n\r\n") {
            if answer.len() > MAX_HEAD {
                return Err("the proxy's answer head is too long".to_owned());
            }
            match stream.read(&mut byte).await {
                Ok(0) => return Err("the proxy closed the connection without an answer".to_owned()),
                Ok(_) => answer.push(byte[0]),
                Err(err) => return Err(format!("reading the proxy's answer: {err}")),
            }
        }
        let status_line = String::from_utf8_lossy(&answer)
            .lines()
            .next()
            .unwrap_or("")
            .to_owned();
        let status = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|code| code.parse::<u16>().ok());
        Ok((stream, status, status_line))
    })
    .await;
    let took = started.elapsed();
    match result {
        Err(_) => {
            report.step(
                "tunnel",
                format!(
                    "CONNECT {target}: no answer from the proxy in {}",
                    shown::ms(timeout)
                ),
                json!({ "ok": false, "target": target, "error": "no_answer" }),
            );
            None
        }
        Ok(Err(why)) => {
            report.step(
                "tunnel",
                format!("CONNECT {target}: {why}"),
                json!({ "ok": false, "target": target, "error": why }),
            );
            None
        }
        Ok(Ok((stream, Some(200..=299), _))) => {
            report.step(
                "tunnel",
                format!("CONNECT {target}: open in {}", shown::ms(took)),
                json!({ "ok": true, "target": target, "ms": took.as_secs_f64() * 1000.0 }),
            );
            Some(stream)
        }
        Ok(Ok((_, status, line))) => {
            let why = match status {
                Some(407) => " (the proxy wants credentials)".to_owned(),
                Some(403) => " (the proxy's rules refuse this host or port)".to_owned(),
                _ => String::new(),
            };
            report.step(
                "tunnel",
                format!(
                    "CONNECT {target}: refused, {}{why}",
                    shown::printable(&line)
                ),
                json!({ "ok": false, "target": target, "status": status, "error": "refused" }),
            );
            None
        }
    }
}

fn percent_decode(text: &str) -> String {
    percent_encoding::percent_decode_str(text)
        .decode_utf8_lossy()
        .into_owned()
}
