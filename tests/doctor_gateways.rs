//! `gateway-doctor` against real gateways on loopback — nginx, HAProxy, Caddy and Apache in
//! front of a dead (refused), a resetting, a hanging and an unresolvable upstream, and
//! tinyproxy as the forward proxy from the environment: each names the gateway's hop and the
//! crate's cause, in `--json`, and exits with the gateway's status.
//!
//! Needs the Debian packages `nginx-light`, `haproxy`, `caddy`, `apache2` and `tinyproxy`: the
//! tests are `#[ignore]`d and run with
//! `cargo test --features full --test real_gateways --test proxy --test doctor_gateways -- --ignored`
//! (as `.ci/run` does), where a missing binary fails the test.

#[path = "support/doctor.rs"]
mod doctor_run;
mod support;

use doctor_run::{doctor, doctor_json, steps, verdict};
use reqwest_resilience::ErrorKind::{self, *};
use support::gateways::{Upstreams, apache, caddy, haproxy, nginx, tinyproxy, tinyproxy_allowing};
use support::process::Running;
use support::refused_url;

/// For each upstream case, the variants the crate gives that gateway's answer (the same as
/// `real_gateways.rs` checks for the library).
type Expected<'a> = &'a [(&'a str, &'a [ErrorKind])];

/// Runs the doctor on each case behind `gateway` and checks the verdict: the gateway's hop,
/// named; one of the expected variants; the crate's own cause for that answer; exit status 9.
async fn check(gateway: Running, name: &str, expected: Expected<'_>) {
    let mut failures = Vec::new();
    for (case, kinds) in expected {
        let url = format!("http://127.0.0.1:{}/{case}", gateway.port());
        let (code, doc) = doctor_json(&["--timeout", "10", &url], &[]).await;
        let variant = verdict(&doc, "variant")
            .as_str()
            .unwrap_or("none")
            .to_owned();
        let kind = kinds.iter().find(|k| format!("{k:?}") == variant);
        let Some(kind) = kind else {
            failures.push(format!("{case}: expected one of {kinds:?}, got {doc:#}"));
            continue;
        };
        if code != 9 || verdict(&doc, "outcome") != "gateway_failed" {
            failures.push(format!("{case}: exit {code}, {}", verdict(&doc, "outcome")));
        }
        if verdict(&doc, "failed_hop_kind") != "gateway" || verdict(&doc, "gateway") != name {
            failures.push(format!(
                "{case}: hop {} / {}, expected the gateway {name}",
                verdict(&doc, "failed_hop_kind"),
                verdict(&doc, "gateway")
            ));
        }
        // The cause is the crate's for that variant from a gateway: no second classifier.
        let cause = expected_cause(*kind);
        if cause.is_some_and(|cause| verdict(&doc, "cause") != cause) {
            failures.push(format!(
                "{case}: cause {}, expected {cause:?}",
                verdict(&doc, "cause")
            ));
        }
        if steps(&doc, 1, "connect").first().map(|s| &s["ok"]) != Some(&true.into()) {
            failures.push(format!("{case}: the gateway itself was reachable: {doc:#}"));
        }
        // The text says the same.
        let (text_code, text) = doctor(&["--timeout", "10", &url], &[]).await;
        let hop_line = format!("failed   the gateway in front of the server ({name})");
        let cause_line = format!(
            "cause    {}",
            verdict(&doc, "cause").as_str().unwrap_or("?")
        );
        if text_code != code || !text.contains(&hop_line) || !text.contains(&cause_line) {
            failures.push(format!("{case}: the text disagrees with --json:\n{text}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The cause the crate's diagnosis gives a gateway's answer of this variant (`None`: depends
/// on the page's words).
fn expected_cause(kind: ErrorKind) -> Option<&'static str> {
    match kind {
        TimedOut | ConnectionClosed | ServiceUnavailable | BadGateway => {
            Some("temporary upstream outage")
        }
        ConnectFailed | NoHealthyServer => Some("backend misconfiguration"),
        NameNotResolved => Some("proxy misconfiguration"),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the gateway binaries (apt-get install nginx-light haproxy caddy apache2 tinyproxy); run with: cargo test --features full --test real_gateways --test proxy --test doctor_gateways -- --ignored"]
async fn doctor_behind_nginx() {
    let up = Upstreams::start().await;
    let expected: Expected = &[
        ("refused", &[BadGateway]),
        ("rst", &[BadGateway]),
        ("hang", &[TimedOut]),
        ("dns", &[BadGateway]),
    ];
    check(nginx(&up), "nginx", expected).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the gateway binaries (apt-get install nginx-light haproxy caddy apache2 tinyproxy); run with: cargo test --features full --test real_gateways --test proxy --test doctor_gateways -- --ignored"]
async fn doctor_behind_haproxy() {
    let up = Upstreams::start().await;
    let expected: Expected = &[
        (
            "refused",
            &[NoHealthyServer, ConnectFailed, ServiceUnavailable],
        ),
        ("rst", &[ConnectionClosed]),
        ("hang", &[TimedOut]),
        ("dns", &[NoHealthyServer]),
    ];
    check(haproxy(&up), "HAProxy", expected).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the gateway binaries (apt-get install nginx-light haproxy caddy apache2 tinyproxy); run with: cargo test --features full --test real_gateways --test proxy --test doctor_gateways -- --ignored"]
async fn doctor_behind_caddy() {
    let up = Upstreams::start().await;
    let expected: Expected = &[
        ("refused", &[BadGateway]),
        ("rst", &[BadGateway]),
        ("hang", &[TimedOut]),
        ("dns", &[BadGateway]),
    ];
    check(caddy(&up), "Caddy", expected).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the gateway binaries (apt-get install nginx-light haproxy caddy apache2 tinyproxy); run with: cargo test --features full --test real_gateways --test proxy --test doctor_gateways -- --ignored"]
async fn doctor_behind_apache() {
    let up = Upstreams::start().await;
    let expected: Expected = &[
        ("refused", &[ServiceUnavailable]),
        ("rst", &[ConnectionClosed]),
        ("hang", &[ConnectionClosed]),
        ("dns", &[NameNotResolved]),
    ];
    check(apache(&up), "Apache httpd", expected).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the gateway binaries (apt-get install nginx-light haproxy caddy apache2 tinyproxy); run with: cargo test --features full --test real_gateways --test proxy --test doctor_gateways -- --ignored"]
async fn doctor_through_tinyproxy_from_the_environment() {
    let proxy = tinyproxy("");
    let address = format!("http://127.0.0.1:{}", proxy.port());
    let env = [("HTTP_PROXY", address.as_str())];
    // A dead origin behind a working proxy: the proxy answers, and reports the failure.
    let dead = refused_url("/x").await;
    let (code, doc) = doctor_json(&[&dead], &env).await;
    assert_eq!(code, 4, "{doc:#}");
    assert_eq!(steps(&doc, 1, "proxy")[0]["ok"], true, "{doc:#}");
    assert_eq!(verdict(&doc, "failed_hop_kind"), "forward_proxy");
    assert_eq!(verdict(&doc, "gateway"), "Tinyproxy");
    assert_eq!(verdict(&doc, "variant"), "ConnectFailed");
    let (_, text) = doctor(&[&dead], &env).await;
    assert!(
        text.contains(&format!("{address} (from HTTP_PROXY) accepts connections")),
        "{text}"
    );
    assert!(
        text.contains("failed   the forward proxy (Tinyproxy)"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the gateway binaries (apt-get install nginx-light haproxy caddy apache2 tinyproxy); run with: cargo test --features full --test real_gateways --test proxy --test doctor_gateways -- --ignored"]
async fn doctor_through_a_proxy_that_refuses_this_client() {
    // tinyproxy allowing another address only: its own 403, not the origin's.
    let proxy = tinyproxy_allowing("10.9.9.9", "");
    let address = format!("http://127.0.0.1:{}", proxy.port());
    let (code, doc) = doctor_json(
        &["http://origin.test/"],
        &[("HTTP_PROXY", address.as_str())],
    )
    .await;
    assert_eq!(code, 4, "{doc:#}");
    assert_eq!(verdict(&doc, "failed_hop_kind"), "forward_proxy");
    assert_eq!(verdict(&doc, "cause"), "proxy misconfiguration");
}
