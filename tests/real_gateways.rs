//! nginx, HAProxy and Caddy on loopback as reverse proxies in front of the fault server; the
//! crate's client classifies each gateway's real answer.
//!
//! Needs the Debian packages `nginx-light`, `haproxy`, `caddy` and `apache2`: the tests are
//! `#[ignore]`d (a plain `cargo test` lists them as ignored, with the reason) and run with
//! `cargo test --features full --test real_gateways --test proxy --test doctor_gateways -- --ignored` (as `.ci/run` does), where a missing binary fails
//! the test.

mod support;

use reqwest_resilience::classify::Gateway;
use reqwest_resilience::{Client, ErrorKind, GatewayError};
use std::time::Duration;
use support::gateways::{Upstreams, apache, caddy, haproxy, nginx};
use support::process::Running;

/// Sends one request per case through the gateway and compares the classification. Cases
/// marked `Transport` are answers a gateway passes through unparsed (nginx relays a
/// non-HTTP answer as HTTP/0.9), which our own transport then classifies.
async fn check(gateway: Running, expected: &[(&str, &[ErrorKind])], hop: Option<Gateway>) {
    // A fresh connection per case: a gateway closing after an error answer must not turn the
    // next case into a reused-connection failure.
    let client = Client::builder()
        .no_retry()
        .attempt_timeout(Duration::from_secs(10))
        .reqwest_builder(reqwest::Client::builder().pool_max_idle_per_host(0))
        .build()
        .unwrap();
    let mut failures = Vec::new();
    for (case, kinds) in expected {
        let url = format!("http://127.0.0.1:{}/{case}", gateway.port());
        match client.get(&url).send().await {
            // An empty list: the gateway passes the upstream's answer on as a success.
            Ok(response) if kinds.is_empty() && response.status().is_success() => {}
            Ok(response) => failures.push(format!(
                "{case}: got {} instead of an error",
                response.status()
            )),
            Err(err) => {
                if !kinds.contains(&err.kind()) {
                    failures.push(format!("{case}: expected {kinds:?}, got {err}"));
                }
                if err.origin() == reqwest_resilience::Origin::Transport
                    && kinds.contains(&InvalidResponse)
                {
                    continue;
                }
                if let Some(hop) = hop {
                    if err.gateway() != Some(hop) {
                        failures.push(format!(
                            "{case}: expected the hop {hop}, got {:?}",
                            err.gateway()
                        ));
                    }
                }
                check_upstream_origin(&err, &mut failures, case);
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn check_upstream_origin(err: &GatewayError, failures: &mut Vec<String>, case: &str) {
    if err.origin() != reqwest_resilience::Origin::Upstream || err.response().is_none() {
        failures.push(format!(
            "{case}: not classified from the gateway's response: {err:?}"
        ));
    }
}

use ErrorKind::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the gateway binaries (apt-get install nginx-light haproxy caddy apache2 tinyproxy); run with: cargo test --features full --test real_gateways --test proxy --test doctor_gateways -- --ignored"]
async fn nginx_answers_classify() {
    let up = Upstreams::start().await;
    let gw = nginx(&up);
    let expected: &[(&str, &[ErrorKind])] = &[
        ("refused", &[BadGateway]),
        ("rst", &[BadGateway]),
        ("fin", &[BadGateway]),
        // nginx relays a non-HTTP answer as an HTTP/0.9 body: our transport sees the garbage.
        ("garbage", &[InvalidResponse]),
        ("hang", &[TimedOut]),
        ("dns", &[BadGateway]),
    ];
    check(gw, expected, Some(Gateway::Nginx)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the gateway binaries (apt-get install nginx-light haproxy caddy apache2 tinyproxy); run with: cargo test --features full --test real_gateways --test proxy --test doctor_gateways -- --ignored"]
async fn haproxy_answers_classify() {
    let up = Upstreams::start().await;
    let gw = haproxy(&up);
    let expected: &[(&str, &[ErrorKind])] = &[
        (
            "refused",
            &[NoHealthyServer, ConnectFailed, ServiceUnavailable],
        ),
        ("rst", &[ConnectionClosed]),
        ("fin", &[ConnectionClosed]),
        ("garbage", &[ConnectionClosed]),
        ("hang", &[TimedOut]),
        ("dns", &[NoHealthyServer]),
    ];
    check(gw, expected, Some(Gateway::HaProxy)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the gateway binaries (apt-get install nginx-light haproxy caddy apache2 tinyproxy); run with: cargo test --features full --test real_gateways --test proxy --test doctor_gateways -- --ignored"]
async fn caddy_answers_classify() {
    let up = Upstreams::start().await;
    let gw = caddy(&up);
    let expected: &[(&str, &[ErrorKind])] = &[
        ("refused", &[BadGateway]),
        ("rst", &[BadGateway]),
        ("fin", &[BadGateway]),
        ("garbage", &[BadGateway]),
        ("hang", &[TimedOut]),
        ("dns", &[BadGateway]),
    ];
    check(gw, expected, Some(Gateway::Caddy)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the gateway binaries (apt-get install nginx-light haproxy caddy apache2 tinyproxy); run with: cargo test --features full --test real_gateways --test proxy --test doctor_gateways -- --ignored"]
async fn apache_answers_classify() {
    let up = Upstreams::start().await;
    let gw = apache(&up);
    let expected: &[(&str, &[ErrorKind])] = &[
        // mod_proxy answers a refused backend with its generic 503 page.
        ("refused", &[ServiceUnavailable]),
        ("rst", &[ConnectionClosed]),
        ("fin", &[ConnectionClosed]),
        // Apache relays a non-HTTP answer as an HTTP/0.9 body with status 200: not a failure
        // anyone downstream can see.
        ("garbage", &[]),
        // Its page for a backend that timed out is the same "Error reading from remote server".
        ("hang", &[ConnectionClosed]),
        ("dns", &[NameNotResolved]),
    ];
    check(gw, expected, Some(Gateway::Apache)).await;
}
