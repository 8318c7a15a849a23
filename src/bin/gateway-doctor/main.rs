//! `gateway-doctor`: the 502 troubleshooting guide as one command.
//!
//! It walks a request to a URL hop by hop — the forward proxy that applies, name resolution,
//! a TCP connection to every address, the TLS handshake, the HTTP exchange through the crate's
//! own client, each redirect — printing each step as it happens, then the crate's own
//! classification and diagnosis of the outcome: the variant, the hop that failed, the likely
//! cause and what to check. `--repeat N` then sends N requests through the crate's default
//! client (retry, deadline) and shows each attempt; `--json` prints one document for scripts.
//!
//! Built with the `cli` feature: `cargo install reqwest-resilience --features cli`.

mod exchange;
mod outcome;
mod repeat;
mod report;
mod settings;
mod shown;
mod tls;
mod tunnel;
mod walk;

use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// What the exit status means; printed at the end of `--help`.
const EXIT_CODES: &str = "\
Exit status:
  0   the server answered (1xx, 2xx or 3xx)
  1   the origin answered with an error of its own (4xx, or a 5xx returned as its answer)
  2   the command line is wrong
  3   a local problem: the URL, the CA file, the request as built
  4   the forward proxy failed (unreachable, refused, or its own error)
  5   the server's host name did not resolve
  6   no TCP connection to the server (refused, no answer, no route)
  7   the TLS handshake with the server failed (certificate, protocol)
  8   the server's connection failed after connecting (reset, closed, hang, not HTTP)
  9   a gateway in front of the server reported that its upstream failed
  10  another failure (too many redirects, a redirect loop, …)";

/// Walks a request to URL hop by hop and says which hop failed, the likely cause and what to
/// check. Credentials, cookies and query strings are never printed.
#[derive(Parser, Debug)]
#[command(name = "gateway-doctor", version, after_help = EXIT_CODES)]
pub struct Args {
    /// The URL to diagnose (http:// or https://).
    pub url: String,

    /// The request's method; no body is sent.
    #[arg(short = 'X', long, default_value = "GET")]
    pub method: String,

    /// An extra request header, `Name: value` (repeatable; values are never printed).
    #[arg(short = 'H', long = "header", value_name = "HEADER")]
    pub headers: Vec<String>,

    /// Seconds each step may take: a name lookup, a connection, a TLS handshake; an HTTP
    /// exchange (a request's attempt, with `--repeat` too) gets twice that.
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = seconds)]
    pub timeout: Duration,

    /// Trust the CA certificates in this PEM file, besides the system's.
    #[arg(long, value_name = "FILE")]
    pub cacert: Option<PathBuf>,

    /// Go through this forward proxy instead of the environment's (HTTP_PROXY, HTTPS_PROXY,
    /// ALL_PROXY, NO_PROXY).
    #[arg(long, value_name = "URL")]
    pub proxy: Option<String>,

    /// Follow at most this many redirects (up to 100).
    #[arg(long, value_name = "N", default_value_t = 10, value_parser = clap::value_parser!(u32).range(0..=100))]
    pub max_redirects: u32,

    /// Then send N requests (up to 100) through the crate's default client — its retry
    /// policy, `--deadline`, twice `--timeout` per attempt — and show what it did: attempts,
    /// backoff, outcome.
    #[arg(long, value_name = "N", default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=100))]
    pub repeat: u32,

    /// The deadline of each `--repeat` request, in seconds.
    #[arg(long, value_name = "SECS", default_value = "30", value_parser = seconds)]
    pub deadline: Duration,

    /// Print one JSON document on standard output instead of text.
    #[arg(long)]
    pub json: bool,
}

/// A positive, finite number of seconds.
fn seconds(given: &str) -> Result<Duration, String> {
    given
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.001 && *s < 86_400.0)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| format!("not a number of seconds between 0.001 and 86400: {given}"))
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("gateway-doctor: cannot start the async runtime: {err}");
            return ExitCode::from(outcome::Outcome::Local.code());
        }
    };
    let code = runtime.block_on(exchange::diagnose(args));
    // A name lookup still blocked in the resolver must not keep the process past its verdict.
    runtime.shutdown_timeout(Duration::from_millis(100));
    ExitCode::from(code)
}
