//! The diagnosis and reqwest agree on which proxy a request used, for a table of environment
//! settings, on both builder paths. A test process of its own, with one test, because it sets
//! environment variables (never while a request is in flight).

mod support;

use reqwest_resilience::Client;
use support::{Fault, FaultServer, refused_url};

use support::PROXY_VARS as VARS;

/// A name, the environment, and whether reqwest is expected to use the proxy.
type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, bool);

fn set_env(vars: &[(&str, &str)]) {
    // SAFETY: this test binary has a single test, and no request (nor any other thread that
    // reads the environment) runs while the variables change.
    unsafe {
        for name in VARS {
            std::env::remove_var(name);
        }
        for (name, value) in vars {
            std::env::set_var(name, value);
        }
    }
}

#[tokio::test(flavor = "current_thread")]
async fn the_diagnosis_and_reqwest_agree_on_the_proxy_for_each_environment() {
    let proxy = FaultServer::start(Fault::Raw(
        b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec(),
    ))
    .await;
    let with_scheme = proxy.url("");
    let bare = with_scheme.trim_start_matches("http://").to_owned();
    let origin = refused_url("/x").await;
    let cases: Vec<Case> = vec![
        ("HTTP_PROXY", vec![("HTTP_PROXY", &with_scheme)], true),
        (
            "HTTP_PROXY without a scheme",
            vec![("HTTP_PROXY", &bare)],
            true,
        ),
        ("http_proxy", vec![("http_proxy", &with_scheme)], true),
        ("ALL_PROXY", vec![("ALL_PROXY", &with_scheme)], true),
        (
            "HTTPS_PROXY only",
            vec![("HTTPS_PROXY", &with_scheme)],
            false,
        ),
        (
            "NO_PROXY CIDR",
            vec![("HTTP_PROXY", &with_scheme), ("NO_PROXY", "127.0.0.0/8")],
            false,
        ),
        (
            "NO_PROXY address",
            vec![("HTTP_PROXY", &with_scheme), ("NO_PROXY", "127.0.0.1")],
            false,
        ),
        // hyper-util's rule (and so reqwest's): `*` matches every host *name*; an IP address
        // is matched only by IP and CIDR entries, so 127.0.0.1 still goes through the proxy.
        (
            "NO_PROXY *",
            vec![("HTTP_PROXY", &with_scheme), ("NO_PROXY", "*")],
            true,
        ),
        (
            "NO_PROXY another host",
            vec![("HTTP_PROXY", &with_scheme), ("NO_PROXY", "example.com")],
            true,
        ),
        ("no proxy", vec![], false),
    ];
    for (name, vars, expect_proxied) in cases {
        set_env(&vars);
        let paths = [
            ("default", Client::builder().no_retry().build().unwrap()),
            (
                "reqwest_builder",
                Client::builder()
                    .no_retry()
                    .reqwest_builder(reqwest::Client::builder())
                    .build()
                    .unwrap(),
            ),
        ];
        for (path, client) in paths {
            let before = proxy.hits();
            let err = client.get(&origin).send().await.unwrap_err();
            let reqwest_proxied = proxy.hits() > before;
            let diagnosed = err.details().proxy().is_some();
            assert_eq!(reqwest_proxied, expect_proxied, "{name} ({path}): reqwest");
            assert_eq!(
                diagnosed, reqwest_proxied,
                "{name} ({path}): the diagnosis disagrees with reqwest: {err}"
            );
        }
    }
    set_env(&[]);
}
